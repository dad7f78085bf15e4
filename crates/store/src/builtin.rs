//! Built-in models: models every store has without a pull (hearth's
//! `hearth-tiny`), installed as ordinary models (listed, copied, removable)
//! and refreshed when a newer program carries a newer version.
//!
//! Installing a built-in creates it from its GGUF with its Modelfile
//! parameters and records, beside the manifests, what was installed:
//!
//! ```text
//! builtins/<host>/<namespace>/<model>/<tag>   {"version":"sha256:…","manifest":"sha256:…"}
//! ```
//!
//! `version` is a digest over the GGUF's digest and the parameters (see
//! [`Builtin::version`]); `manifest` is the digest of the manifest written.
//!
//! Removing a built-in (`hearth rm`) is remembered: an empty file
//!
//! ```text
//! builtins-removed/<host>/<namespace>/<model>/<tag>
//! ```
//!
//! keeps [`Store::install_builtins`] from bringing it back, so listings stop
//! showing it. Using the name on purpose (`hearth run hearth-tiny`, or FROM
//! in a Modelfile) installs it again and forgets the removal.
//! When a program registers a built-in whose version differs from the
//! recorded one, [`Store::install_builtins`] installs it again, but only if
//! the model's manifest is still the recorded one: a model the user created
//! or copied under that name has another manifest and is left alone.
//!
//! A record that is missing, unreadable or not valid JSON counts as "not
//! installed by the store": the model is kept as it is, because replacing it
//! garbage-collects its blobs and we cannot tell it from the user's own. This
//! includes models installed by a program that kept no records; removing the
//! model (`hearth rm`) and using it again brings back the current version,
//! recorded. A crash between writing the manifest and the record leaves the
//! same state.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::digest::{self, Digest};
use crate::error::{Result, StoreError, io_err};
use crate::fsutil::{self, LockMode};
use crate::modelfile::Modelfile;
use crate::name::ModelName;
use crate::params::Parameters;
use crate::store::Store;

/// A model every store has without a pull (see [`Store::with_builtin`]).
#[derive(Debug, Clone)]
pub(crate) struct Builtin {
    name: ModelName,
    weights: BuiltinWeights,
    parameters: Parameters,
}

/// Where a built-in model's GGUF comes from.
#[derive(Debug, Clone)]
enum BuiltinWeights {
    /// A file on disk.
    File(PathBuf),
    /// Bytes compiled into the program.
    Bytes(&'static [u8]),
}

/// What the store installed under a built-in's name (the JSON record file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    /// [`Builtin::version`] of what was installed.
    version: Digest,
    /// SHA-256 of the manifest written.
    manifest: Digest,
}

/// How a store's model compares with a registered built-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No model of that name.
    Absent,
    /// The model the store installed, of the registered version.
    Current,
    /// The model the store installed, of another version.
    Stale,
    /// A model the store did not install (or has no valid record of).
    NotOurs,
}

impl Builtin {
    /// The digest of the GGUF. Compiled-in bytes are hashed once per process.
    fn weights_digest(&self) -> Result<Digest> {
        match &self.weights {
            BuiltinWeights::File(path) => {
                let mut file = File::open(path).map_err(io_err(path))?;
                let (digest, _) =
                    digest::copy_hashing(&mut file, &mut std::io::sink(), &mut |_| {})
                        .map_err(io_err(path))?;
                Ok(digest)
            }
            BuiltinWeights::Bytes(bytes) => Ok(static_digest(bytes)),
        }
    }

    /// What identifies this version of the built-in: the SHA-256 of the GGUF's
    /// digest, a newline and the params layer's JSON. A new GGUF or a changed
    /// parameter makes a new version.
    fn version(&self) -> Result<Digest> {
        let mut text = self.weights_digest()?.to_string().into_bytes();
        text.push(b'\n');
        text.extend(self.parameters.to_json());
        Ok(Digest::of(&text))
    }
}

/// The digest of compiled-in bytes, computed at most once per process for
/// each slice (every store opened registers the same bytes).
fn static_digest(bytes: &'static [u8]) -> Digest {
    // Keyed by address and length: 'static data is never freed, so a key
    // never comes to name other bytes.
    static DIGESTS: Mutex<Vec<((usize, usize), Digest)>> = Mutex::new(Vec::new());
    let key = (bytes.as_ptr() as usize, bytes.len());
    let mut digests = DIGESTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, digest)) = digests.iter().find(|(k, _)| *k == key) {
        return *digest;
    }
    let digest = Digest::of(bytes);
    digests.push((key, digest));
    digest
}

impl Store {
    /// Registers a model that every store has without a pull: when `name` is
    /// resolved (or used in FROM) and no manifest of that name exists, the GGUF
    /// file at `path` is imported under `name` first, so from then on it is an
    /// ordinary model (listed, copied, removable; it comes back on next use).
    /// If the file changes, [`Store::install_builtins`] refreshes the model.
    pub fn with_builtin(mut self, name: ModelName, path: impl Into<PathBuf>) -> Store {
        self.builtins.push(Builtin {
            name,
            weights: BuiltinWeights::File(path.into()),
            parameters: Parameters::new(),
        });
        self
    }

    /// [`Store::with_builtin`] for a GGUF compiled into the program, with the
    /// Modelfile parameters the model is created with.
    pub fn with_builtin_bytes(
        mut self,
        name: ModelName,
        gguf: &'static [u8],
        parameters: Parameters,
    ) -> Store {
        self.builtins.push(Builtin {
            name,
            weights: BuiltinWeights::Bytes(gguf),
            parameters,
        });
        self
    }

    /// Brings every registered built-in model up to date, so that listings
    /// show it before its first use:
    ///
    /// - no model of that name: installed, unless the user removed it (see
    ///   the module docs);
    /// - the model this store installed, of another version (the GGUF or the
    ///   parameters changed since): installed again, under the exclusive lock,
    ///   and the blobs nothing references any more are collected;
    /// - the current version, or a model the store did not install (see the
    ///   module docs): left as it is, without taking the lock.
    pub fn install_builtins(&self) -> Result<()> {
        if self.is_read_only() {
            // Served if it was installed before the store became read-only.
            return Ok(());
        }
        for builtin in &self.builtins {
            match self.builtin_state(builtin)? {
                State::Absent if self.removed_path(builtin).exists() => {}
                State::Absent => self.install(builtin)?,
                State::Stale => self.refresh(builtin)?,
                State::Current | State::NotOurs => {}
            }
        }
        Ok(())
    }

    /// Installs the built-in model called `name`, if there is one (a model
    /// that is not in the store is being used). Returns its name.
    pub(crate) fn install_builtin(&self, name: &ModelName) -> Result<ModelName> {
        let Some(builtin) = self
            .builtins
            .iter()
            .find(|b| b.name.eq_fold(name))
            .filter(|_| !self.is_read_only())
        else {
            return Err(StoreError::NotFound(name.display_short()));
        };
        self.install(builtin)?;
        Ok(builtin.name.clone())
    }

    /// How the store's model of `builtin`'s name compares with it.
    fn builtin_state(&self, builtin: &Builtin) -> Result<State> {
        let Some(stored) = self.find(&builtin.name)? else {
            return Ok(State::Absent);
        };
        let path = self.manifest_path(&stored);
        let manifest = match fs::read(&path) {
            Ok(bytes) => Digest::of(&bytes),
            // Removed since `find` saw it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::Absent),
            Err(e) => return Err(io_err(&path)(e)),
        };
        Ok(match self.read_record(builtin) {
            Some(record) if record.manifest == manifest => {
                if record.version == builtin.version()? {
                    State::Current
                } else {
                    State::Stale
                }
            }
            _ => State::NotOurs,
        })
    }

    /// If `name` is a registered built-in's, remembers that the user removed
    /// it, so that opening the store does not install it again. The caller
    /// holds the lock.
    pub(crate) fn note_builtin_removed(&self, name: &ModelName) -> Result<()> {
        let Some(builtin) = self.builtins.iter().find(|b| b.name.eq_fold(name)) else {
            return Ok(());
        };
        let path = self.removed_path(builtin);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        fsutil::write_atomic(&self.tmp_dir(), &path, b"")
    }

    /// Whether `name` is a registered built-in's name (which using brings
    /// back after `hearth rm`).
    pub fn is_builtin(&self, name: &ModelName) -> bool {
        self.builtins.iter().any(|b| b.name.eq_fold(name))
    }

    /// Where the removal of `builtin` is remembered.
    fn removed_path(&self, builtin: &Builtin) -> PathBuf {
        self.root()
            .join("builtins-removed")
            .join(builtin.name.manifest_path())
    }

    /// Where the record of `builtin` is kept.
    fn record_path(&self, builtin: &Builtin) -> PathBuf {
        self.root()
            .join("builtins")
            .join(builtin.name.manifest_path())
    }

    /// The record of `builtin`; `None` if there is none or it cannot be read
    /// or parsed (see the module docs for why that means "not ours").
    fn read_record(&self, builtin: &Builtin) -> Option<Record> {
        let bytes = fs::read(self.record_path(builtin)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes the record of `builtin`, atomically.
    fn write_record(&self, builtin: &Builtin, record: &Record) -> Result<()> {
        let path = self.record_path(builtin);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        // Two digests: serialising cannot fail.
        let json = serde_json::to_vec(record).unwrap_or_default();
        fsutil::write_atomic(&self.tmp_dir(), &path, &json)
    }

    /// Installs `builtin` under the shared lock.
    fn install(&self, builtin: &Builtin) -> Result<()> {
        let _guard = self.lock(LockMode::Shared)?;
        self.install_locked(builtin)
    }

    /// Replaces the stale model of `builtin`'s name with the registered
    /// version and collects the blobs only the old one used, as `delete`
    /// does, under the exclusive lock.
    fn refresh(&self, builtin: &Builtin) -> Result<()> {
        let _guard = self.lock(LockMode::Exclusive)?;
        // Another process may have refreshed it, or the user replaced or
        // removed it, between the unlocked look and the lock.
        match self.builtin_state(builtin)? {
            State::Stale | State::Absent => self.install_locked(builtin)?,
            State::Current | State::NotOurs => return Ok(()),
        }
        // Best effort: the models are complete already, and a collection
        // that fails (a corrupt manifest elsewhere makes it refuse) must not
        // keep the store from opening; the next `rm` or `prune` collects.
        let _ = self.prune_locked();
        Ok(())
    }

    /// Creates the model `builtin` describes (compiled-in bytes are stored as
    /// a blob first and imported from there), then records it. The caller
    /// holds the lock.
    fn install_locked(&self, builtin: &Builtin) -> Result<()> {
        let from = match &builtin.weights {
            BuiltinWeights::File(path) => path.clone(),
            BuiltinWeights::Bytes(bytes) => {
                let digest = static_digest(bytes);
                self.put_blob_locked(&digest, &mut &bytes[..], &mut |_| {})?;
                self.blob_path(&digest)
            }
        };
        let mut modelfile = Modelfile::new(from.display().to_string());
        modelfile.parameters = builtin.parameters.clone();
        let manifest =
            self.create_locked(&builtin.name, &modelfile, Path::new("."), &mut |_| {})?;
        let record = Record {
            version: builtin.version()?,
            manifest: Digest::of(&manifest.to_bytes()),
        };
        self.write_record(builtin, &record)?;
        let removed = self.removed_path(builtin);
        match fs::remove_file(&removed) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&removed)(e)),
            _ => Ok(()),
        }
    }
}
