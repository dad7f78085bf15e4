//! Pushing a model to a registry that speaks Ollama's protocol (ollama
//! server/upload.go, the Docker registry v2 upload API): for each blob,
//! `HEAD /v2/NS/MODEL/blobs/sha256:HEX` skips one the registry has; else
//! `POST /v2/NS/MODEL/blobs/uploads/` opens an upload whose `Location` gets
//! the whole blob in one `PUT …?digest=sha256:HEX`. The manifest goes last
//! (`PUT /v2/NS/MODEL/manifests/TAG`), so the registry never lists a model
//! whose blobs it lacks. Statuses are Ollama's: `retrieving manifest`,
//! `pushing <digest12>` with byte counts, `pushing manifest`, `success`.

use std::fs::File;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::blocking::Body;
use reqwest::header;
use reqwest::{Method, StatusCode, Url};

use crate::create::Progress;
use crate::digest::Digest;
use crate::error::{Result, StoreError, io_err};
use crate::manifest;
use crate::name::ModelName;
use crate::pull::registry::{self, Remote};
use crate::pull::{PullOptions, PullSource, join, manifest_url};
use crate::store::Store;

/// How often upload progress is reported.
const TICK: Duration = Duration::from_millis(100);

impl Store {
    /// Pushes the model `name` to the registry its host names (`--insecure`
    /// in `options` for plain http).
    pub fn push(
        &self,
        name: &str,
        options: &PullOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        let (name, base) = match PullSource::parse(name, options.insecure)? {
            PullSource::Registry { name, base } => (name, base),
            PullSource::File { url, .. } => {
                return Err(StoreError::Unsupported(format!(
                    "{url}: a model is pushed to a registry name (host/namespace/model:tag), not a file URL"
                )));
            }
        };
        progress(Progress::status("retrieving manifest"));
        let (stored, manifest, _) = self.read_manifest(&name)?;
        let path = self.manifest_path(&stored);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let remote = options.remote(&name.host)?;
        for layer in std::iter::once(&manifest.config).chain(&manifest.layers) {
            self.push_blob(&remote, &base, &name, &layer.digest, layer.size, progress)?;
        }
        progress(Progress::status("pushing manifest"));
        let url = manifest_url(&base, &name)?;
        let headers = registry::headers(&[(
            header::CONTENT_TYPE,
            manifest::MANIFEST_MEDIA_TYPE.to_owned(),
        )]);
        let response = remote.send_with(Method::PUT, &url, &headers, |r| r.body(bytes.clone()))?;
        if !response.status().is_success() {
            let status = response.status();
            return Err(StoreError::Remote(format!(
                "push manifest: {}: {status}: {}",
                remote.host(),
                registry::error_text(response)
            )));
        }
        progress(Progress::status("success"));
        Ok(())
    }

    fn push_blob(
        &self,
        remote: &Remote,
        base: &Url,
        name: &ModelName,
        digest: &Digest,
        size: u64,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        let status = format!("pushing {}", &digest.hex()[..12]);
        let blob_url = join(
            base,
            &format!("v2/{}/{}/blobs/{digest}", name.namespace, name.model),
        )?;
        let head = remote.send(Method::HEAD, &blob_url, &header::HeaderMap::new())?;
        if head.status().is_success() {
            progress(Progress::bytes(&status, Some(*digest), size, size));
            return Ok(());
        }
        progress(Progress::bytes(&status, Some(*digest), size, 0));
        let start = join(
            base,
            &format!("v2/{}/{}/blobs/uploads/", name.namespace, name.model),
        )?;
        let response = remote.send(Method::POST, &start, &header::HeaderMap::new())?;
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (code, location) = (response.status(), location);
        let Some(location) = location.filter(|_| code.is_success()) else {
            return Err(StoreError::Remote(format!(
                "{}: starting an upload: {code}: {}",
                remote.host(),
                registry::error_text(response)
            )));
        };
        // The location may be relative to the registry.
        let mut url = start.join(&location).map_err(|e| {
            StoreError::Remote(format!(
                "{}: bad upload location {location:?}: {e}",
                remote.host()
            ))
        })?;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());

        let path = self.blob_path(digest);
        let sent = Arc::new(AtomicU64::new(0));
        let headers =
            registry::headers(&[(header::CONTENT_TYPE, "application/octet-stream".to_owned())]);
        let body = |r: reqwest::blocking::RequestBuilder| {
            sent.store(0, Ordering::Release);
            match File::open(&path) {
                Ok(file) => r.body(Body::sized(
                    Counting {
                        inner: file,
                        sent: sent.clone(),
                    },
                    size,
                )),
                // Reported by the registry as a short body; the open error
                // is found again below.
                Err(_) => r,
            }
        };
        File::open(&path).map_err(io_err(&path))?;
        let response = std::thread::scope(|scope| {
            let upload = scope.spawn(|| remote.send_with(Method::PUT, &url, &headers, body));
            while !upload.is_finished() {
                progress(Progress::bytes(
                    &status,
                    Some(*digest),
                    size,
                    sent.load(Ordering::Acquire),
                ));
                std::thread::sleep(TICK);
            }
            upload
                .join()
                .unwrap_or_else(|_| Err(StoreError::Remote("the upload thread failed".to_owned())))
        })?;
        let code = response.status();
        if code != StatusCode::CREATED && !code.is_success() {
            return Err(StoreError::Remote(format!(
                "{}: uploading {digest}: {code}: {}",
                remote.host(),
                registry::error_text(response)
            )));
        }
        progress(Progress::bytes(&status, Some(*digest), size, size));
        Ok(())
    }
}

/// A reader that counts the bytes read through it.
struct Counting {
    inner: File,
    sent: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent.fetch_add(n as u64, Ordering::AcqRel);
        Ok(n)
    }
}
