//! Pulling models into the store: from any registry that speaks Ollama's
//! protocol (the Docker registry v2 API with Ollama's media types; ollama
//! server/images.go `PullModel`, server/download.go), Hugging Face included,
//! and from a direct URL of a GGUF file.
//!
//! A registry pull: `GET /v2/NS/MODEL/manifests/TAG`, then each blob the
//! store lacks from `/v2/NS/MODEL/blobs/sha256:HEX` (download.rs: parallel
//! ranges, retries, resumable), then every downloaded blob's SHA-256 is
//! checked, the blobs are renamed into the store, and the manifest is
//! written last, atomically, as the registry sent it (so the model's ID is
//! the registry's). A file pull downloads the GGUF the same way and creates
//! a model with one model layer from it. A blob being downloaded is locked
//! (`partial/<blob>.lock`), so two pulls that share it take turns and the
//! second finds it in the store.
//!
//! Progress is reported as [`Progress`] steps with Ollama's statuses
//! (`pulling manifest`, `pulling <digest12>` with byte counts, `verifying
//! sha256 digest`, `writing manifest`, `success`), which the CLI draws as
//! bars and the server streams as they are.

mod download;
mod peek;
pub(crate) mod registry;
mod source;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header;
use reqwest::{Method, StatusCode, Url};

use crate::create::Progress;
use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::fsutil::LockMode;
use crate::gguf_info;
use crate::manifest::{self, Manifest};
use crate::modelfile::Modelfile;
use crate::name::ModelName;
use crate::store::Store;
use download::{Partial, Tuning};
pub use peek::RemoteModel;
use registry::Remote;
pub use source::PullSource;

/// Largest manifest accepted (real ones are a few KiB).
pub(crate) const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Most layers a manifest may list.
pub(crate) const MAX_LAYERS: usize = 1024;
/// Largest blob or file accepted (2 TiB; the largest models are a few
/// hundred GB), so a hostile size cannot fill the disk unchecked.
pub(crate) const MAX_BLOB_SIZE: u64 = 2 << 40;

/// A check of a template layer's text before a pull is accepted (the caller
/// compiles it with the chat-template engine the store does not know).
pub type TemplateCheck = Arc<dyn Fn(&str) -> std::result::Result<(), String> + Send + Sync>;

/// How to pull.
#[derive(Clone)]
pub struct PullOptions {
    /// Allow plain http (registries, redirects, token realms); without it
    /// only https is used.
    pub insecure: bool,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for any read (a stalled transfer fails and is retried).
    pub read_timeout: Duration,
    /// Parts of one blob fetched at once (Ollama: 16).
    pub max_parts: usize,
    /// Smallest part of a blob (Ollama: 100 MB).
    pub min_part_size: u64,
    /// Largest part of a blob (Ollama: 1 GB).
    pub max_part_size: u64,
    /// Tries of a part after the first, while no progress is made.
    pub retries: u32,
    /// Pause before the first retry, doubled after each.
    pub backoff: Duration,
    /// Checks a template layer; a pull whose template fails is refused
    /// before its manifest is written.
    pub template_check: Option<TemplateCheck>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            insecure: false,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            max_parts: 16,
            min_part_size: 100_000_000,
            max_part_size: 1_000_000_000,
            retries: 6,
            backoff: Duration::from_secs(1),
            template_check: None,
        }
    }
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("insecure", &self.insecure)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("max_parts", &self.max_parts)
            .field("retries", &self.retries)
            .field("template_check", &self.template_check.is_some())
            .finish_non_exhaustive()
    }
}

impl PullOptions {
    fn tuning(&self) -> Tuning {
        Tuning {
            max_parts: self.max_parts,
            min_part_size: self.min_part_size,
            max_part_size: self.max_part_size,
            retries: self.retries,
            backoff: self.backoff,
        }
    }

    pub(crate) fn remote(&self, host: &str) -> Result<Remote> {
        Remote::new(host, self.insecure, self.connect_timeout, self.read_timeout)
    }
}

/// `pulling <first 12 hex digits>`, Ollama's status for a blob.
fn pulling_status(digest: &Digest) -> String {
    format!("pulling {}", &digest.hex()[..12])
}

impl Store {
    /// Pulls `source` (a model name or a `.gguf` URL, see [`PullSource`])
    /// into the store and returns the name it was stored under.
    pub fn pull(
        &self,
        source: &str,
        options: &PullOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ModelName> {
        let source = PullSource::parse(source, options.insecure)?;
        let _guard = self.lock(LockMode::Shared)?;
        match &source {
            PullSource::Registry { name, base } => {
                self.pull_registry(name, base, options, progress)?;
                Ok(name.clone())
            }
            PullSource::File { url, name } => {
                self.pull_file(url, name, options, progress)?;
                Ok(name.clone())
            }
        }
    }

    fn partial_dir(&self) -> Result<std::path::PathBuf> {
        let dir = self.root().join("partial");
        std::fs::create_dir_all(&dir).map_err(crate::error::io_err(&dir))?;
        Ok(dir)
    }

    fn pull_registry(
        &self,
        name: &ModelName,
        base: &Url,
        options: &PullOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        let remote = options.remote(&name.host)?;
        progress(Progress::status("pulling manifest"));
        let (manifest, bytes) = fetch_manifest(&remote, base, name)?;

        let partial_dir = self.partial_dir()?;
        let layers: Vec<_> = std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .collect();
        // Each missing blob's download lock, taken in digest order so that
        // pulls sharing blobs cannot wait on each other in a circle.
        let missing: std::collections::BTreeSet<Digest> = layers
            .iter()
            .map(|l| l.digest)
            .filter(|d| !self.has_blob(d))
            .collect();
        let mut held = Vec::new();
        for digest in &missing {
            held.push(Partial::new(&partial_dir, &digest.file_name()).lock()?);
        }

        let mut fetched = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let tuning = options.tuning();
        for layer in layers {
            if !seen.insert(layer.digest) {
                continue;
            }
            let (digest, total) = (layer.digest, layer.size);
            let status = pulling_status(&digest);
            // Present, possibly brought in by a pull this one waited for.
            if self.has_blob(&digest) {
                progress(Progress::bytes(&status, Some(digest), total, total));
                continue;
            }
            let partial = Partial::new(&partial_dir, &digest.file_name());
            let url = blob_url(base, name, &digest)?;
            progress(Progress::bytes(&status, Some(digest), total, 0));
            download::download(&remote, &url, total, &partial, &tuning, &mut |done| {
                progress(Progress::bytes(&status, Some(digest), total, done));
            })?;
            fetched.push((digest, partial));
        }

        progress(Progress::status("verifying sha256 digest"));
        for (digest, partial) in &fetched {
            let actual = partial.digest(&mut |_| {})?;
            if actual != *digest {
                // The bytes are wrong: the next pull fetches them again.
                partial.remove();
                return Err(StoreError::DigestMismatch {
                    expected: *digest,
                    actual,
                });
            }
        }
        for (digest, partial) in &fetched {
            partial.persist(&self.blob_path(digest))?;
        }
        self.check_pulled(&manifest, options)?;

        progress(Progress::status("writing manifest"));
        let name = self.spelling_for_write(name)?;
        self.write_manifest_bytes(&name, &manifest, &bytes)?;
        progress(Progress::status("success"));
        Ok(())
    }

    /// The checks a pulled model passes before its manifest is written: the
    /// model layer is a GGUF file, the template compiles.
    fn check_pulled(&self, manifest: &Manifest, options: &PullOptions) -> Result<()> {
        for layer in &manifest.layers {
            match layer.media_type.as_str() {
                manifest::MODEL_MEDIA_TYPE | manifest::ADAPTER_MEDIA_TYPE => {
                    gguf_info::check(&self.blob_path(&layer.digest))?;
                }
                manifest::TEMPLATE_MEDIA_TYPE => {
                    if let Some(check) = &options.template_check {
                        let path = self.blob_path(&layer.digest);
                        let text =
                            std::fs::read_to_string(&path).map_err(crate::error::io_err(&path))?;
                        check(&text).map_err(StoreError::InvalidTemplate)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn pull_file(
        &self,
        url: &Url,
        name: &ModelName,
        options: &PullOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        let host = url.host_str().unwrap_or_default();
        let remote = options.remote(&match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        })?;
        let file_name = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .unwrap_or("model.gguf")
            .to_owned();
        let status = format!("pulling {file_name}");
        progress(Progress::status(&status));
        let total = file_size(&remote, url)?;
        let key = format!("url-{}", Digest::of(url.as_str().as_bytes()).hex());
        let partial = Partial::new(&self.partial_dir()?, &key);
        let _lock = partial.lock()?;
        progress(Progress::bytes(&status, None, total, 0));
        download::download(
            &remote,
            url,
            total,
            &partial,
            &options.tuning(),
            &mut |done| {
                progress(Progress::bytes(&status, None, total, done));
            },
        )?;

        progress(Progress::status("verifying sha256 digest"));
        if let Err(e) = gguf_info::check(&partial.data) {
            partial.remove();
            return Err(e);
        }
        let digest = partial.digest(&mut |_| {})?;
        let blob = self.blob_path(&digest);
        if self.has_blob(&digest) {
            partial.remove();
        } else {
            partial.persist(&blob)?;
        }
        let modelfile = Modelfile::new(blob.display().to_string());
        self.create_locked(name, &modelfile, self.root(), progress)?;
        Ok(())
    }
}

/// `base/v2/NS/MODEL/blobs/sha256:HEX`.
fn blob_url(base: &Url, name: &ModelName, digest: &Digest) -> Result<Url> {
    join(
        base,
        &format!("v2/{}/{}/blobs/{digest}", name.namespace, name.model),
    )
}

/// `base/v2/NS/MODEL/manifests/TAG`.
pub(crate) fn manifest_url(base: &Url, name: &ModelName) -> Result<Url> {
    join(
        base,
        &format!(
            "v2/{}/{}/manifests/{}",
            name.namespace, name.model, name.tag
        ),
    )
}

pub(crate) fn join(base: &Url, path: &str) -> Result<Url> {
    base.join(path)
        .map_err(|e| StoreError::Remote(format!("{base}{path}: not a URL: {e}")))
}

/// Fetches and parses a manifest; returns it with its bytes as sent.
fn fetch_manifest(remote: &Remote, base: &Url, name: &ModelName) -> Result<(Manifest, Vec<u8>)> {
    let url = manifest_url(base, name)?;
    let headers = registry::headers(&[(header::ACCEPT, manifest::MANIFEST_MEDIA_TYPE.to_owned())]);
    let response = remote.send(Method::GET, &url, &headers)?;
    let status = response.status();
    if status == StatusCode::NOT_FOUND {
        return Err(StoreError::Remote(format!(
            "pull model manifest: model '{}' not found on {} (no such model or tag)",
            name.display_short(),
            remote.host()
        )));
    }
    if !status.is_success() {
        return Err(StoreError::Remote(format!(
            "pull model manifest: {}: {status}: {}",
            remote.host(),
            registry::error_text(response)
        )));
    }
    let bytes = registry::read_capped(response, MAX_MANIFEST_BYTES, remote.host(), "manifest")?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
        StoreError::Remote(format!(
            "{}: the manifest of {name} is not valid: {e}",
            remote.host()
        ))
    })?;
    if manifest.layers.len() > MAX_LAYERS {
        return Err(StoreError::Remote(format!(
            "{}: the manifest of {name} lists {} layers (at most {MAX_LAYERS})",
            remote.host(),
            manifest.layers.len()
        )));
    }
    if let Some(layer) = manifest.layers.iter().find(|l| l.size > MAX_BLOB_SIZE) {
        return Err(StoreError::Remote(format!(
            "{}: the manifest of {name} gives blob {} a size of {} bytes (at most {MAX_BLOB_SIZE})",
            remote.host(),
            layer.digest,
            layer.size
        )));
    }
    if manifest.layer(manifest::MODEL_MEDIA_TYPE).is_none() {
        return Err(StoreError::Remote(format!(
            "{}: the manifest of {name} has no model layer",
            remote.host()
        )));
    }
    Ok((manifest, bytes))
}

/// The size of the file at `url`, from a one-byte range request (servers
/// answer `Content-Range: bytes 0-0/TOTAL`) or, if ranges are ignored, the
/// whole answer's length.
fn file_size(remote: &Remote, url: &Url) -> Result<u64> {
    let headers = registry::headers(&[(header::RANGE, "bytes=0-0".to_owned())]);
    let response = remote.send(Method::GET, url, &headers)?;
    let status = response.status();
    if status == StatusCode::NOT_FOUND {
        return Err(StoreError::Remote(format!("{url}: not found")));
    }
    if !status.is_success() {
        return Err(StoreError::Remote(format!(
            "{url}: {status}: {}",
            registry::error_text(response)
        )));
    }
    let size = if status == StatusCode::PARTIAL_CONTENT {
        download::content_range_total(response.headers())
    } else {
        response.content_length()
    };
    match size {
        Some(size) if size <= MAX_BLOB_SIZE => Ok(size),
        Some(size) => Err(StoreError::Remote(format!(
            "{url}: the file is {size} bytes (at most {MAX_BLOB_SIZE})"
        ))),
        None => Err(StoreError::Remote(format!(
            "{url}: the server does not say the file's size"
        ))),
    }
}
