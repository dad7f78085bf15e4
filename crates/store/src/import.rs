//! Bringing in the models of an Ollama store (`hearth import --from-ollama`):
//! its layout is ours (`blobs/sha256-HEX`, `manifests/HOST/NS/MODEL/TAG`),
//! so each blob is hard-linked into this store (copied, and its SHA-256
//! checked on the way, only when the two are on different file systems)
//! and each manifest copied unchanged, so models keep their IDs. Blobs are
//! immutable in both stores, so sharing them by link is safe; deleting a
//! model in one store leaves the other's link intact.
//!
//! A linked blob is checked by size only: hashing hundreds of gigabytes
//! would defeat starting at once, and the files were verified by Ollama
//! when it pulled them.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use crate::create::Progress;
use crate::error::{Result, StoreError, io_err};
use crate::fsutil::LockMode;
use crate::manifest::Manifest;
use crate::name::ModelName;
use crate::store::Store;

/// What [`Store::import_ollama`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Models brought in.
    pub imported: Vec<ModelName>,
    /// Models left out, with why (already present, a blob missing, ...).
    pub skipped: Vec<(ModelName, String)>,
}

impl Store {
    /// Imports every model of the Ollama store at `dir` (the directory that
    /// holds `blobs/` and `manifests/`). A model whose name this store has
    /// already is left as it is.
    pub fn import_ollama(
        &self,
        dir: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ImportReport> {
        if !dir.join("manifests").is_dir() {
            return Err(StoreError::Unsupported(format!(
                "{}: not an Ollama model directory (no manifests/ in it)",
                dir.display()
            )));
        }
        let source = Store::view(dir);
        let _guard = self.lock(LockMode::Shared)?;
        let mut report = ImportReport::default();
        let mut names = source.names()?;
        names.sort();
        for name in names {
            progress(Progress::status(format!(
                "importing {}",
                name.display_short()
            )));
            match self.import_one(&source, &name) {
                Ok(None) => report.imported.push(name),
                Ok(Some(reason)) => report.skipped.push((name, reason)),
                Err(e) => report.skipped.push((name, e.to_string())),
            }
        }
        progress(Progress::status("success"));
        Ok(report)
    }

    /// Imports one model; `Some(reason)` if it is left out.
    fn import_one(&self, source: &Store, name: &ModelName) -> Result<Option<String>> {
        if self.find(name)?.is_some() {
            return Ok(Some("a model of this name exists already".to_owned()));
        }
        let path = source.manifest_path(name);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::CorruptManifest {
                path: path.clone(),
                msg: e.to_string(),
            })?;
        let layers = std::iter::once(&manifest.config).chain(&manifest.layers);
        for layer in layers {
            if self.has_blob(&layer.digest) {
                continue;
            }
            let from = source.blob_path(&layer.digest);
            let size = match fs::metadata(&from) {
                Ok(meta) => meta.len(),
                Err(_) => return Ok(Some(format!("blob {} is missing", layer.digest))),
            };
            if size != layer.size {
                return Ok(Some(format!(
                    "blob {} has {size} bytes, the manifest says {}",
                    layer.digest, layer.size
                )));
            }
            let to = self.blob_path(&layer.digest);
            match fs::hard_link(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                // Another file system (or one without links): copy, checking
                // the digest as the bytes stream.
                Err(_) => {
                    let mut file = File::open(&from).map_err(io_err(&from))?;
                    self.put_blob_locked(&layer.digest, &mut file, &mut |_| {})?;
                }
            }
        }
        self.write_manifest_bytes(name, &manifest, &bytes)?;
        Ok(None)
    }
}
