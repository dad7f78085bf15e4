//! File-system primitives the store is built from: temporary files that become
//! final by an atomic rename, directory syncs, and the store-wide lock.
//!
//! Every file under its final name (a blob, a manifest) is complete: it was
//! written under a temporary name in `tmp/` (same file system as its final
//! place), synced, and renamed. A crash leaves at most a stray file in `tmp/`,
//! which nothing reads and the next exclusive holder of the lock deletes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Result, io_err};

/// A file being written under a temporary name, removed on drop unless
/// [`TempFile::persist`]ed.
pub(crate) struct TempFile {
    path: PathBuf,
    file: Option<File>,
}

impl TempFile {
    /// Creates a fresh, uniquely named file in `dir`.
    pub(crate) fn new(dir: &Path) -> Result<TempFile> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("{}-{n}.partial", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file: Some(file),
                    });
                }
                // Left by an earlier process with the same id that crashed.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
    }

    /// The temporary path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the data and renames the file to `dest` (replacing any file
    /// there), then syncs `dest`'s directory so the rename is durable.
    pub(crate) fn persist(mut self, dest: &Path) -> Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all().map_err(io_err(&self.path))?;
        }
        fs::rename(&self.path, dest).map_err(io_err(dest))?;
        if let Some(dir) = dest.parent() {
            sync_dir(dir)?;
        }
        // Renamed: nothing left to clean up.
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.file {
            Some(file) => file.write(buf),
            // Only `persist` takes the file, and it consumes `self`.
            None => Err(io::Error::other("temporary file already closed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            self.file.take();
            // Best effort: a failure leaves a stray temporary file, which the
            // next cleanup removes.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes `bytes` to `dest` atomically through a temporary file in `tmp_dir`.
pub(crate) fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = TempFile::new(tmp_dir)?;
    let path = tmp.path().to_owned();
    tmp.write_all(bytes).map_err(io_err(&path))?;
    tmp.persist(dest)
}

/// Makes a rename in `dir` durable. Directories cannot be opened as files on
/// Windows, where renames are durable once `MoveFileEx` returns.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The store-wide lock: an OS advisory lock (`flock` on Unix, `LockFileEx` on
/// Windows) on `<root>/lock`, released when the guard drops or the process
/// dies, so a crash never leaves the store locked.
pub(crate) struct LockGuard {
    _file: File,
}

/// Shared: operations that add blobs and manifests (create, copy, put_blob);
/// any number at once. Exclusive: operations that delete (rm and its garbage
/// collection); waits for every shared holder to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    Shared,
    Exclusive,
}

impl LockGuard {
    /// Blocks until the lock is held in `mode`.
    pub(crate) fn acquire(path: &Path, mode: LockMode) -> Result<LockGuard> {
        let file = open_lock_file(path)?;
        match mode {
            LockMode::Shared => file.lock_shared(),
            LockMode::Exclusive => file.lock(),
        }
        .map_err(io_err(path))?;
        Ok(LockGuard { _file: file })
    }

    /// Takes the exclusive lock if nobody holds the lock; `None` otherwise.
    pub(crate) fn try_exclusive(path: &Path) -> Result<Option<LockGuard>> {
        let file = open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LockGuard { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(io_err(path)(e)),
        }
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err(path))
}

/// Removes every file in `dir` (stale temporary files); the caller holds the
/// exclusive lock, so none of them is being written.
pub(crate) fn clear_dir(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io_err(dir))?.path();
        if path.is_file() {
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}
