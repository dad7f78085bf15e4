//! The store on disk: opening it, finding, listing, resolving, copying and
//! deleting models, and blobs. Building models (`create`) is in create.rs.
//!
//! Layout under the root (Ollama's, so its tools and ours read each other's):
//!
//! ```text
//! blobs/sha256-<hex>                          content-addressed, immutable
//! manifests/<host>/<namespace>/<model>/<tag>  JSON, one per model name
//! tmp/                                        files being written
//! builtins/<host>/<namespace>/<model>/<tag>   what was installed as a built-in
//! builtins-removed/<host>/<namespace>/<model>/<tag>   a built-in the user removed
//! lock                                        the store-wide lock
//! ```
//!
//! Built-in models (installing, recording and refreshing them) are in
//! builtin.rs.
//!
//! Concurrency: operations that add (create, copy, put_blob) hold the lock
//! shared; `delete` holds it exclusive while it removes the manifest and
//! collects blobs no manifest references. A create writes its blobs and then
//! its manifest under one shared hold, so a collection can never run between
//! "the blob exists" and "a manifest references it". Readers (list, resolve)
//! take no lock: every file appears complete through a rename, and a model
//! deleted while being read gives a not-found error, never a torn read.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::builtin::Builtin;
use crate::digest::{self, Digest};
use crate::error::{Result, StoreError, io_err};
use crate::fsutil::{self, LockGuard, LockMode, TempFile};
use crate::manifest::{self, Manifest, ModelConfig};
use crate::modelfile::{Message, Modelfile};
use crate::name::ModelName;
use crate::params::Parameters;

/// Environment variable naming the store's root directory.
pub const MODELS_ENV: &str = "HEARTH_MODELS";

/// A model store rooted at one directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Models every store has without a pull (see [`Store::with_builtin`]).
    pub(crate) builtins: Vec<Builtin>,
    /// Whether the store's file system refuses writes (see [`Store::open`]).
    read_only: bool,
}

/// One model in [`Store::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    /// The model's name, with the case it was created with.
    pub name: ModelName,
    /// SHA-256 of the manifest: the model's ID (`ollama list` shows 12 hex digits).
    pub digest: Digest,
    /// Total size of the model's blobs.
    pub size: u64,
    /// When the manifest was last written.
    pub modified: SystemTime,
}

/// Everything needed to run or describe a model.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// The model's name, with the case it was created with.
    pub name: ModelName,
    /// The GGUF weights (a blob; open it read-only, never write it).
    pub gguf_path: PathBuf,
    /// A chat template (Go or Jinja) replacing the file's `tokenizer.chat_template`.
    pub template: Option<String>,
    /// The default system prompt.
    pub system: Option<String>,
    /// Parameters set by the Modelfile.
    pub params: Parameters,
    /// Messages prepended to every conversation.
    pub messages: Vec<Message>,
    /// License texts.
    pub licenses: Vec<String>,
    /// The config blob.
    pub config: ModelConfig,
    /// The manifest.
    pub manifest: Manifest,
    /// SHA-256 of the manifest: the model's ID.
    pub digest: Digest,
}

impl ResolvedModel {
    /// The Modelfile that rebuilds this model (`show --modelfile`): FROM names
    /// the weights blob, so it works in this store without the original file.
    pub fn modelfile(&self) -> Modelfile {
        Modelfile {
            from: self.gguf_path.display().to_string(),
            template: self.template.clone(),
            system: self.system.clone(),
            parameters: self.params.clone(),
            messages: self.messages.clone(),
            licenses: self.licenses.clone(),
            warnings: Vec::new(),
        }
    }
}

/// What [`Store::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Blobs deleted.
    pub blobs: usize,
    /// Their total size.
    pub bytes: u64,
}

impl Store {
    /// Opens (creating if needed) the store at `root`. If no other process is
    /// using the store, temporary files left by a crash are deleted.
    ///
    /// A store on a read-only file system (replicas sharing one volume) opens
    /// read-only: models are listed, shown and run, and every change is a
    /// [`StoreError::ReadOnly`]; built-in models are served only if they
    /// were installed before.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let mut store = Store {
            root: root.into(),
            builtins: Vec::new(),
            read_only: false,
        };
        for dir in [store.blobs_dir(), store.manifests_dir(), store.tmp_dir()] {
            match fs::create_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if read_only_error(&e) && store.manifests_dir().is_dir() => {
                    store.read_only = true;
                    return Ok(store);
                }
                Err(e) => return Err(io_err(&dir)(e)),
            }
        }
        match LockGuard::try_exclusive(&store.lock_path()) {
            Ok(Some(_guard)) => fsutil::clear_dir(&store.tmp_dir())?,
            Ok(None) => {}
            Err(StoreError::Io { source, .. }) if read_only_error(&source) => {
                store.read_only = true;
            }
            Err(e) => return Err(e),
        }
        Ok(store)
    }

    /// Whether the store opened read-only (see [`Store::open`]).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Another store's directory (Ollama's), only to be read: nothing is
    /// created or cleared.
    pub(crate) fn view(root: &Path) -> Store {
        Store {
            root: root.to_owned(),
            builtins: Vec::new(),
            read_only: true,
        }
    }

    /// Opens the store at [`default_root`].
    pub fn from_env() -> Result<Store> {
        Store::open(default_root()?)
    }

    /// Bytes this user may still write on the store's file system
    /// (`statvfs`), where the platform reports it.
    pub fn available_bytes(&self) -> Option<u64> {
        #[cfg(unix)]
        {
            let stat = nix::sys::statvfs::statvfs(self.root()).ok()?;
            // The field types differ between platforms (u32 blocks on macOS).
            #[allow(clippy::useless_conversion)]
            let (blocks, size) = (
                u64::from(stat.blocks_available()),
                u64::from(stat.fragment_size()),
            );
            Some(blocks.saturating_mul(size))
        }
        #[cfg(not(unix))]
        {
            None
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    fn manifests_dir(&self) -> PathBuf {
        self.root.join("manifests")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn lock_path(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// Takes the store-wide lock, which every change holds; a read-only
    /// store refuses here.
    pub(crate) fn lock(&self, mode: LockMode) -> Result<LockGuard> {
        if self.read_only {
            return Err(StoreError::ReadOnly(self.root.clone()));
        }
        LockGuard::acquire(&self.lock_path(), mode)
    }

    /// Where the blob `digest` is (or would be) stored.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.file_name())
    }

    /// Whether the store has the blob `digest` (`HEAD /api/blobs/:digest`).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Stores the bytes of `reader` as the blob `digest` (`POST
    /// /api/blobs/:digest`), verifying the SHA-256 while streaming; nothing is
    /// stored under that name unless the bytes match. Returns the blob's size.
    /// An existing blob is kept and `reader` is not read.
    ///
    /// The blob is unreferenced until a create names it, and a `delete` in
    /// between collects it; clients upload right before they create (as
    /// Ollama's do) and upload again if the create reports it missing.
    pub fn put_blob(&self, digest: &Digest, reader: &mut impl Read) -> Result<u64> {
        let _guard = self.lock(LockMode::Shared)?;
        self.put_blob_locked(digest, reader, &mut |_| {})
    }

    /// [`Store::put_blob`] for callers already holding the lock.
    pub(crate) fn put_blob_locked(
        &self,
        digest: &Digest,
        reader: &mut impl Read,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let dest = self.blob_path(digest);
        if let Ok(meta) = fs::metadata(&dest) {
            return Ok(meta.len());
        }
        let mut tmp = TempFile::new(&self.tmp_dir())?;
        let tmp_path = tmp.path().to_owned();
        let (actual, size) =
            digest::copy_hashing(reader, &mut tmp, progress).map_err(io_err(&tmp_path))?;
        if actual != *digest {
            return Err(StoreError::DigestMismatch {
                expected: *digest,
                actual,
            });
        }
        tmp.persist(&dest)?;
        Ok(size)
    }

    /// Stores `bytes` as a blob (if new) and returns its layer.
    pub(crate) fn put_bytes(&self, media_type: &str, bytes: &[u8]) -> Result<manifest::Layer> {
        let digest = Digest::of(bytes);
        let dest = self.blob_path(&digest);
        if !dest.is_file() {
            fsutil::write_atomic(&self.tmp_dir(), &dest, bytes)?;
        }
        Ok(manifest::Layer {
            media_type: media_type.to_owned(),
            digest,
            size: bytes.len() as u64,
            from: None,
        })
    }

    /// Reads a whole blob.
    fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::BlobNotFound(*digest),
            _ => io_err(&path)(e),
        })
    }

    /// Reads a text blob (template, system prompt, license).
    fn read_text_blob(&self, digest: &Digest) -> Result<String> {
        String::from_utf8(self.read_blob(digest)?).map_err(|_| StoreError::CorruptManifest {
            path: self.blob_path(digest),
            msg: "text layer is not UTF-8".to_owned(),
        })
    }

    /// Reads and parses a JSON blob.
    pub(crate) fn read_json_blob<T: serde::de::DeserializeOwned>(
        &self,
        digest: &Digest,
    ) -> Result<T> {
        serde_json::from_slice(&self.read_blob(digest)?).map_err(|e| StoreError::CorruptManifest {
            path: self.blob_path(digest),
            msg: e.to_string(),
        })
    }

    /// Every model name with a manifest, as stored (unsorted). Entries that are
    /// not four valid name parts deep (stray files, temporary files) are skipped.
    pub(crate) fn names(&self) -> Result<Vec<ModelName>> {
        let mut names = Vec::new();
        let dir = self.manifests_dir();
        for host in sub_entries(&dir, true)? {
            for namespace in sub_entries(&dir.join(&host), true)? {
                for model in sub_entries(&dir.join(&host).join(&namespace), true)? {
                    let model_dir = dir.join(&host).join(&namespace).join(&model);
                    for tag in sub_entries(&model_dir, false)? {
                        if let Ok(name) = ModelName::from_parts(&host, &namespace, &model, &tag) {
                            names.push(name);
                        }
                    }
                }
            }
        }
        Ok(names)
    }

    /// The stored spelling of `name` (matched ignoring case), if it exists.
    pub fn find(&self, name: &ModelName) -> Result<Option<ModelName>> {
        if self.manifest_path(name).is_file() {
            return Ok(Some(name.clone()));
        }
        Ok(self.names()?.into_iter().find(|n| n.eq_fold(name)))
    }

    /// The name to write `name` under: an existing model's spelling if one
    /// matches ignoring case (so `Foo` replaces `foo` rather than shadowing it,
    /// as Ollama's `getExistingName` does), else `name` itself.
    pub(crate) fn spelling_for_write(&self, name: &ModelName) -> Result<ModelName> {
        Ok(self.find(name)?.unwrap_or_else(|| name.clone()))
    }

    pub(crate) fn manifest_path(&self, name: &ModelName) -> PathBuf {
        self.manifests_dir().join(name.manifest_path())
    }

    /// Reads the manifest of `name` (matched ignoring case), importing a
    /// built-in model on first use. Returns the stored name, the manifest and
    /// its digest.
    pub(crate) fn read_manifest(&self, name: &ModelName) -> Result<(ModelName, Manifest, Digest)> {
        let stored = match self.find(name)? {
            Some(stored) => stored,
            None => self.install_builtin(name)?,
        };
        let path = self.manifest_path(&stored);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound(name.display_short()),
            _ => io_err(&path)(e),
        })?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::CorruptManifest {
                path: path.clone(),
                msg: e.to_string(),
            })?;
        Ok((stored, manifest, Digest::of(&bytes)))
    }

    /// Every model, most recently modified first. Unreadable manifests are
    /// left out (a listing should not fail because of one bad file).
    pub fn list(&self) -> Result<Vec<ModelEntry>> {
        let mut entries = Vec::new();
        for name in self.names()? {
            let path = self.manifest_path(&name);
            let Ok(bytes) = fs::read(&path) else { continue };
            let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) else {
                continue;
            };
            let modified = fs::metadata(&path)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            entries.push(ModelEntry {
                name,
                digest: Digest::of(&bytes),
                size: manifest.size(),
                modified,
            });
        }
        entries.sort_by(|a, b| {
            b.modified
                .cmp(&a.modified)
                .then_with(|| a.name.to_string().cmp(&b.name.to_string()))
        });
        Ok(entries)
    }

    /// Everything needed to run the model `name`.
    pub fn resolve(&self, name: &ModelName) -> Result<ResolvedModel> {
        let (stored, manifest, digest) = self.read_manifest(name)?;
        let model = manifest.layer(manifest::MODEL_MEDIA_TYPE).ok_or_else(|| {
            StoreError::CorruptManifest {
                path: self.manifest_path(&stored),
                msg: "no model layer".to_owned(),
            }
        })?;
        let gguf_path = self.blob_path(&model.digest);
        if !gguf_path.is_file() {
            return Err(StoreError::BlobNotFound(model.digest));
        }
        let mut resolved = ResolvedModel {
            name: stored,
            gguf_path,
            template: None,
            system: None,
            params: Parameters::new(),
            messages: Vec::new(),
            licenses: Vec::new(),
            config: self.read_json_blob(&manifest.config.digest)?,
            manifest: manifest.clone(),
            digest,
        };
        for layer in &manifest.layers {
            match layer.media_type.as_str() {
                manifest::TEMPLATE_MEDIA_TYPE => {
                    resolved.template = Some(self.read_text_blob(&layer.digest)?);
                }
                manifest::SYSTEM_MEDIA_TYPE => {
                    resolved.system = Some(self.read_text_blob(&layer.digest)?);
                }
                manifest::LICENSE_MEDIA_TYPE => {
                    resolved.licenses.push(self.read_text_blob(&layer.digest)?);
                }
                manifest::PARAMS_MEDIA_TYPE => {
                    let bytes = self.read_blob(&layer.digest)?;
                    resolved.params = Parameters::from_json(&bytes).map_err(|msg| {
                        StoreError::CorruptManifest {
                            path: self.blob_path(&layer.digest),
                            msg,
                        }
                    })?;
                }
                manifest::MESSAGES_MEDIA_TYPE => {
                    resolved.messages = self.read_json_blob(&layer.digest)?;
                }
                // The weights (found above), and layers later versions add.
                _ => {}
            }
        }
        Ok(resolved)
    }

    /// Makes `dst` another name for `src`'s manifest (tags are cheap pointers:
    /// no blob is copied, and both names have the same ID). An existing `dst`
    /// is replaced.
    pub fn copy(&self, src: &ModelName, dst: &ModelName) -> Result<()> {
        let _guard = self.lock(LockMode::Shared)?;
        let (_, manifest, _) = self.read_manifest(src)?;
        let dst = self.spelling_for_write(dst)?;
        self.write_manifest(&dst, &manifest)
    }

    /// Writes `manifest` under `name`, atomically.
    pub(crate) fn write_manifest(&self, name: &ModelName, manifest: &Manifest) -> Result<()> {
        self.write_manifest_bytes(name, manifest, &manifest.to_bytes())
    }

    /// Writes a manifest received as `bytes` (already parsed as `manifest`)
    /// under `name` unchanged, so the model's ID is the sender's.
    pub(crate) fn write_manifest_bytes(
        &self,
        name: &ModelName,
        manifest: &Manifest,
        bytes: &[u8],
    ) -> Result<()> {
        for digest in manifest.digests() {
            if !self.has_blob(&digest) {
                return Err(StoreError::BlobNotFound(digest));
            }
        }
        let path = self.manifest_path(name);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        fsutil::write_atomic(&self.tmp_dir(), &path, bytes)
    }

    /// Removes the model `name`, then every blob no remaining manifest
    /// references. Waits for creates in progress to finish.
    pub fn delete(&self, name: &ModelName) -> Result<()> {
        let _guard = self.lock(LockMode::Exclusive)?;
        let stored = self
            .find(name)?
            .ok_or_else(|| StoreError::NotFound(name.display_short()))?;
        let path = self.manifest_path(&stored);
        fs::remove_file(&path).map_err(io_err(&path))?;
        // Drop now-empty tag/model/namespace/host directories.
        let manifests = self.manifests_dir();
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != manifests) {
            if fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        self.note_builtin_removed(&stored)?;
        self.prune_locked()?;
        Ok(())
    }

    /// Deletes blobs no manifest references, and stale temporary files.
    pub fn prune(&self) -> Result<PruneReport> {
        let _guard = self.lock(LockMode::Exclusive)?;
        self.prune_locked()
    }

    /// [`Store::prune`] under a held exclusive lock. If any manifest cannot be
    /// read, nothing is deleted: its blobs cannot be told apart from garbage.
    pub(crate) fn prune_locked(&self) -> Result<PruneReport> {
        let mut referenced = HashSet::new();
        for name in self.names()? {
            let path = self.manifest_path(&name);
            let bytes = fs::read(&path).map_err(io_err(&path))?;
            let manifest: Manifest =
                serde_json::from_slice(&bytes).map_err(|e| StoreError::CorruptManifest {
                    path: path.clone(),
                    msg: format!("{e}; not collecting garbage until it is fixed or removed"),
                })?;
            referenced.extend(manifest.digests());
        }
        let mut report = PruneReport::default();
        let blobs = self.blobs_dir();
        for file_name in sub_entries(&blobs, false)? {
            let Ok(digest) = Digest::parse(&file_name) else {
                continue;
            };
            if !referenced.contains(&digest) {
                let path = blobs.join(&file_name);
                let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                fs::remove_file(&path).map_err(io_err(&path))?;
                report.blobs += 1;
                report.bytes += size;
            }
        }
        fsutil::clear_dir(&self.tmp_dir())?;
        Ok(report)
    }
}

/// Whether `e` says the file system (or its permissions) refuses writes.
fn read_only_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied
    )
}

/// The store's root: `$HEARTH_MODELS` if set and not empty, else
/// `$OLLAMA_MODELS` (the layout is Ollama's, so hearth can share an Ollama
/// store), else `hearth/models` under the platform's data directory
/// (`$XDG_DATA_HOME` or `~/.local/share` on Linux, `~/Library/Application
/// Support` on macOS, `%APPDATA%` on Windows; from the `dirs` crate).
pub fn default_root() -> Result<PathBuf> {
    for var in [MODELS_ENV, "OLLAMA_MODELS"] {
        if let Some(root) = std::env::var_os(var).filter(|r| !r.is_empty()) {
            return Ok(PathBuf::from(root));
        }
    }
    dirs::data_dir()
        .map(|d| d.join("hearth").join("models"))
        .ok_or_else(|| {
            StoreError::Unsupported(format!(
                "no data directory for this user; set {MODELS_ENV} to choose where models are stored"
            ))
        })
}

/// Names of the entries of `dir` that are directories (`dirs`) or files
/// (`!dirs`), as UTF-8 strings; a missing directory has none.
fn sub_entries(dir: &Path, dirs: bool) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() == dirs
            && let Ok(name) = entry.file_name().into_string()
        {
            names.push(name);
        }
    }
    Ok(names)
}
