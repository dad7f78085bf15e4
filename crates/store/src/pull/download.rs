//! Downloading one blob into a partial file: the blob is cut into parts
//! fetched in parallel with HTTP range requests (ollama server/download.go:
//! up to 16 at a time, parts of 100 MB to 1 GB), each retried with backoff
//! from the bytes it already wrote. A state file beside the partial file
//! records how much of each part is on disk, so a download killed at any
//! moment resumes where it was instead of starting over.
//!
//! The state is written only after the bytes it counts have been written to
//! the partial file, so after a kill it never claims more than the file
//! holds. Neither file is synced while downloading (that would cost a sync
//! per state save); after a power cut, bytes that never reached the disk
//! fail the SHA-256 check and the blob is fetched again. Partial
//! files live in the store's `partial/` directory under names that are not
//! blob names; only a verified file is renamed into `blobs/` (see mod.rs).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::registry::Remote;
use crate::digest::{self, Digest};
use crate::error::{Result, StoreError, io_err};
use crate::fsutil;

/// Most parts one blob is cut into, whatever its size (bounds the state).
const MAX_PART_COUNT: u64 = 4096;
/// How often progress is reported and the state saved while downloading.
const TICK: Duration = Duration::from_millis(100);
/// Longest pause between two tries of a part.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How a download is split and retried.
#[derive(Debug, Clone)]
pub(crate) struct Tuning {
    /// Parts fetched at once.
    pub(crate) max_parts: usize,
    /// Smallest part (a blob smaller than this is one part).
    pub(crate) min_part_size: u64,
    /// Largest part.
    pub(crate) max_part_size: u64,
    /// Tries of a part after the first that made no progress.
    pub(crate) retries: u32,
    /// Pause before the first retry; doubled after each.
    pub(crate) backoff: Duration,
}

/// What is on disk of one download (the state file's JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// The blob's size.
    size: u64,
    /// Every part but the last has this size.
    part_size: u64,
    /// Bytes of each part written to the partial file, from its start.
    completed: Vec<u64>,
}

impl State {
    fn new(size: u64, tuning: &Tuning) -> State {
        let max_parts = tuning.max_parts.max(1) as u64;
        let min = tuning.min_part_size.max(1);
        let mut part_size = size
            .div_ceil(max_parts)
            .clamp(min, tuning.max_part_size.max(min));
        if size.div_ceil(part_size) > MAX_PART_COUNT {
            part_size = size.div_ceil(MAX_PART_COUNT);
        }
        let count = size.div_ceil(part_size) as usize;
        State {
            size,
            part_size,
            completed: vec![0; count],
        }
    }

    /// Whether a state read from disk fits a blob of `size`.
    fn fits(&self, size: u64) -> bool {
        self.size == size
            && self.part_size > 0
            && self.completed.len() as u64 == size.div_ceil(self.part_size)
            && (0..self.completed.len()).all(|i| self.completed[i] <= self.part_len(i))
    }

    fn part_start(&self, i: usize) -> u64 {
        i as u64 * self.part_size
    }

    fn part_len(&self, i: usize) -> u64 {
        self.part_size.min(self.size - self.part_start(i))
    }
}

/// The files of one download.
#[derive(Debug, Clone)]
pub(crate) struct Partial {
    /// The bytes, written at their offsets.
    pub(crate) data: PathBuf,
    /// The [`State`] as JSON.
    pub(crate) state: PathBuf,
    /// Locked by the process downloading (two pulls of one blob, from the
    /// server and the CLI say, take turns instead of writing one file).
    lock: PathBuf,
}

/// Holds a download's lock until dropped (or the process ends).
pub(crate) struct DownloadLock {
    _file: File,
}

impl Partial {
    /// The files for `key` (a blob's file name, or a URL's digest) in `dir`.
    pub(crate) fn new(dir: &Path, key: &str) -> Partial {
        Partial {
            data: dir.join(format!("{key}.part")),
            state: dir.join(format!("{key}.state")),
            lock: dir.join(format!("{key}.lock")),
        }
    }

    /// Waits until no other process downloads this blob, then holds it.
    pub(crate) fn lock(&self) -> Result<DownloadLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock)
            .map_err(io_err(&self.lock))?;
        file.lock().map_err(io_err(&self.lock))?;
        Ok(DownloadLock { _file: file })
    }

    fn load(&self, size: u64) -> Option<State> {
        let bytes = fs::read(&self.state).ok()?;
        let state: State = serde_json::from_slice(&bytes).ok()?;
        let on_disk = fs::metadata(&self.data).ok()?.len();
        // The file may be shorter than the parts claim only if it was
        // truncated behind our back; then start over.
        let written_end = (0..state.completed.len())
            .filter(|&i| state.completed[i] > 0)
            .map(|i| state.part_start(i) + state.completed[i])
            .max()
            .unwrap_or(0);
        (state.fits(size) && on_disk >= written_end).then_some(state)
    }

    fn save(&self, state: &State) -> Result<()> {
        let bytes = serde_json::to_vec(state)
            .map_err(|e| StoreError::Unsupported(format!("download state: {e}")))?;
        let mut tmp = self.state.clone().into_os_string();
        tmp.push(".new");
        let tmp = PathBuf::from(tmp);
        fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &self.state).map_err(io_err(&self.state))
    }

    /// Removes both files (after a verified move, or a failed verification).
    pub(crate) fn remove(&self) {
        let _ = fs::remove_file(&self.data);
        let _ = fs::remove_file(&self.state);
    }

    /// The SHA-256 of the downloaded bytes, reporting bytes hashed.
    pub(crate) fn digest(&self, progress: &mut dyn FnMut(u64)) -> Result<Digest> {
        let mut file = File::open(&self.data).map_err(io_err(&self.data))?;
        let (digest, _) = digest::copy_hashing(&mut file, &mut io::sink(), progress)
            .map_err(io_err(&self.data))?;
        Ok(digest)
    }

    /// Syncs the data and renames it to `dest` (a blob's final name), then
    /// drops the state.
    pub(crate) fn persist(&self, dest: &Path) -> Result<()> {
        File::open(&self.data)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&self.data))?;
        fs::rename(&self.data, dest).map_err(io_err(dest))?;
        if let Some(dir) = dest.parent() {
            fsutil::sync_dir(dir)?;
        }
        let _ = fs::remove_file(&self.state);
        // Whoever waits on this lock finds the blob in the store.
        let _ = fs::remove_file(&self.lock);
        Ok(())
    }
}

/// Why one try of a part ended without finishing it.
enum Failure {
    /// Worth another try (a dropped connection, a timeout, a 5xx).
    Retry(StoreError),
    /// Not (a 4xx, a local write error).
    Fatal(StoreError),
}

/// Downloads `size` bytes from `url` into `partial`, resuming what is on disk.
/// `progress` is called with the bytes on disk so far, about every
/// [`TICK`], on this thread.
pub(crate) fn download(
    remote: &Remote,
    url: &Url,
    size: u64,
    partial: &Partial,
    tuning: &Tuning,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    remote.check_scheme(url)?;
    let state = match partial.load(size) {
        Some(state) => state,
        None => {
            let _ = fs::remove_file(&partial.data);
            State::new(size, tuning)
        }
    };
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&partial.data)
        .map_err(io_err(&partial.data))?;
    partial.save(&state)?;

    let job = Job {
        remote,
        url,
        partial,
        tuning,
        completed: state.completed.iter().map(|&c| AtomicU64::new(c)).collect(),
        state,
        next_part: AtomicUsize::new(0),
        abort: AtomicBool::new(false),
        error: Mutex::new(None),
    };
    let workers = tuning.max_parts.clamp(1, job.completed.len().max(1));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(|| job.work())).collect();
        loop {
            let done = handles.iter().all(|h| h.is_finished());
            let now = job.snapshot();
            progress(now.completed.iter().sum());
            if let Err(e) = partial.save(&now) {
                job.fail(e);
            }
            if done {
                break;
            }
            std::thread::sleep(TICK);
        }
    });
    match job.error.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One download, shared by its threads.
struct Job<'a> {
    remote: &'a Remote,
    url: &'a Url,
    partial: &'a Partial,
    tuning: &'a Tuning,
    /// The parts (their completed counts as of the start).
    state: State,
    /// Bytes of each part written so far.
    completed: Vec<AtomicU64>,
    /// The next part no thread has taken.
    next_part: AtomicUsize,
    /// Set on the first failure: the other threads stop.
    abort: AtomicBool,
    /// The first failure.
    error: Mutex<Option<StoreError>>,
}

impl Job<'_> {
    /// The state with the counts as they are now.
    fn snapshot(&self) -> State {
        State {
            completed: self
                .completed
                .iter()
                .map(|c| c.load(Ordering::Acquire))
                .collect(),
            ..self.state.clone()
        }
    }

    /// Records a failure and stops every thread.
    fn fail(&self, e: StoreError) {
        self.abort.store(true, Ordering::Release);
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
    }

    /// One download thread: takes parts until none is left, trying each
    /// until it is complete or fails for good.
    fn work(&self) {
        if let Err(e) = self.work_parts() {
            self.fail(e);
        }
    }

    fn work_parts(&self) -> Result<()> {
        let data = &self.partial.data;
        let mut file = OpenOptions::new()
            .write(true)
            .open(data)
            .map_err(io_err(data))?;
        loop {
            let i = self.next_part.fetch_add(1, Ordering::AcqRel);
            if i >= self.completed.len() {
                return Ok(());
            }
            let mut failures = 0;
            loop {
                if self.abort.load(Ordering::Acquire) {
                    return Ok(());
                }
                let before = self.completed[i].load(Ordering::Acquire);
                match self.fetch_part(i, &mut file) {
                    Ok(()) => break,
                    Err(Failure::Fatal(e)) => return Err(e),
                    Err(Failure::Retry(e)) => {
                        // A try that moved forward starts the count again: a
                        // flaky connection that keeps delivering is not a
                        // failure.
                        if self.completed[i].load(Ordering::Acquire) > before {
                            failures = 0;
                        }
                        failures += 1;
                        if failures > self.tuning.retries {
                            return Err(e);
                        }
                        let pause = self
                            .tuning
                            .backoff
                            .saturating_mul(1 << (failures - 1).min(16))
                            .min(MAX_BACKOFF);
                        std::thread::sleep(pause);
                    }
                }
            }
        }
    }

    /// One try at the rest of part `i`.
    fn fetch_part(&self, i: usize, file: &mut File) -> std::result::Result<(), Failure> {
        let (state, remote, url, partial) = (&self.state, self.remote, self.url, self.partial);
        let completed = &self.completed[i];
        let part_end = state.part_start(i) + state.part_len(i);
        let mut pos = state.part_start(i) + completed.load(Ordering::Acquire);
        if pos >= part_end {
            return Ok(());
        }
        let range = format!("bytes={pos}-{}", part_end - 1);
        let headers = super::registry::headers(&[(header::RANGE, range)]);
        let mut response = remote
            .send(Method::GET, url, &headers)
            .map_err(Failure::Retry)?;
        let status = response.status();
        let mut skip = 0;
        match status {
            StatusCode::PARTIAL_CONTENT => {
                if let Some(start) = content_range_start(response.headers())
                    && start != pos
                {
                    return Err(Failure::Fatal(StoreError::Remote(format!(
                        "{}: asked for bytes from {pos}, got bytes from {start}",
                        remote.host()
                    ))));
                }
            }
            // A server that ignores ranges sends the whole blob: skip to ours.
            StatusCode::OK => skip = pos,
            s if s.is_server_error()
                || s == StatusCode::TOO_MANY_REQUESTS
                || s == StatusCode::REQUEST_TIMEOUT =>
            {
                return Err(Failure::Retry(StoreError::Remote(format!(
                    "{}: {url}: {s}",
                    remote.host()
                ))));
            }
            s => {
                return Err(Failure::Fatal(StoreError::Remote(format!(
                    "{}: {url}: {s}: {}",
                    remote.host(),
                    super::registry::error_text(response)
                ))));
            }
        }
        let write_err = |e: io::Error| Failure::Fatal(io_err(&partial.data)(e));
        file.seek(SeekFrom::Start(pos)).map_err(write_err)?;
        let mut buf = vec![0u8; 256 << 10];
        while pos < part_end {
            if self.abort.load(Ordering::Acquire) {
                return Ok(());
            }
            let want = if skip > 0 {
                skip.min(buf.len() as u64)
            } else {
                (part_end - pos).min(buf.len() as u64)
            } as usize;
            let n = match response.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(Failure::Retry(StoreError::Remote(format!(
                        "{}: the connection closed {} bytes before the end of a part",
                        remote.host(),
                        part_end - pos
                    ))));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Failure::Retry(StoreError::Remote(format!(
                        "{}: reading a blob: {e}",
                        remote.host()
                    ))));
                }
            };
            if skip > 0 {
                skip -= n as u64;
                continue;
            }
            file.write_all(&buf[..n]).map_err(write_err)?;
            pos += n as u64;
            // Counted only once written: the state never claims unwritten bytes.
            completed.fetch_add(n as u64, Ordering::AcqRel);
        }
        Ok(())
    }
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` header.
fn content_range_start(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let range = value.trim().strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

/// The total of a `Content-Range: bytes START-END/TOTAL` header.
pub(crate) fn content_range_total(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    value.rsplit('/').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuning(max_parts: usize, min: u64, max: u64) -> Tuning {
        Tuning {
            max_parts,
            min_part_size: min,
            max_part_size: max,
            retries: 0,
            backoff: Duration::ZERO,
        }
    }

    #[test]
    fn parts_follow_ollamas_sizes() {
        let mb = 1_000_000;
        // A small blob is one part; a big one 16; a huge one parts of 1 GB.
        let s = State::new(5 * mb, &tuning(16, 100 * mb, 1000 * mb));
        assert_eq!(s.completed.len(), 1);
        assert_eq!(s.part_len(0), 5 * mb);
        let s = State::new(4000 * mb, &tuning(16, 100 * mb, 1000 * mb));
        assert_eq!((s.completed.len(), s.part_size), (16, 250 * mb));
        let s = State::new(40_000 * mb, &tuning(16, 100 * mb, 1000 * mb));
        assert_eq!(s.completed.len(), 40);
        let s = State::new(1001, &tuning(16, 1, 1 << 30));
        assert_eq!(s.completed.len(), 16);
        assert_eq!((0..16).map(|i| s.part_len(i)).sum::<u64>(), 1001);
        assert!(State::new(0, &tuning(16, 1, 10)).completed.is_empty());
        let s = State::new(u64::MAX, &tuning(16, 1, 1000));
        assert!(s.completed.len() as u64 <= MAX_PART_COUNT);
    }

    #[test]
    fn state_must_fit_the_blob() {
        let s = State::new(1000, &tuning(4, 1, 1000));
        assert!(s.fits(1000));
        assert!(!s.fits(999));
        let mut bad = s.clone();
        bad.completed[0] = 251;
        assert!(!bad.fits(1000));
    }

    #[test]
    fn content_range_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_RANGE, "bytes 100-199/1000".parse().unwrap());
        assert_eq!(content_range_start(&h), Some(100));
        assert_eq!(content_range_total(&h), Some(1000));
    }
}
