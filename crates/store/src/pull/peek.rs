//! Reading the start of a model that is not in the store: its GGUF header,
//! for `hearth estimate NAME` before a pull. The same sources as a pull (a
//! registry name, Hugging Face's included, or a `.gguf` URL), the same
//! transport (auth challenges, `insecure`), and only the bytes asked for.

use std::io::Read;

use reqwest::{Method, StatusCode, Url, header};

use super::registry::{self, Remote};
use super::{PullOptions, PullSource, blob_url, fetch_manifest, file_size};
use crate::error::{Result, StoreError};
use crate::manifest;
use crate::name::ModelName;

/// A model's GGUF file on a registry or a web server.
pub struct RemoteModel {
    remote: Remote,
    name: ModelName,
    url: Url,
    size: u64,
}

impl std::fmt::Debug for RemoteModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteModel")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl RemoteModel {
    /// Finds the GGUF file of `source` (see [`PullSource`]): a registry
    /// model's manifest is fetched and its model layer taken; a URL is the
    /// file itself.
    pub fn open(source: &str, options: &PullOptions) -> Result<RemoteModel> {
        match PullSource::parse(source, options.insecure)? {
            PullSource::Registry { name, base } => {
                let remote = options.remote(&name.host)?;
                let (manifest, _) = fetch_manifest(&remote, &base, &name)?;
                let layer = manifest
                    .layers
                    .iter()
                    .find(|l| l.media_type == manifest::MODEL_MEDIA_TYPE)
                    .ok_or_else(|| {
                        StoreError::Remote(format!(
                            "{}: the manifest of {} has no model layer",
                            remote.host(),
                            name.display_short()
                        ))
                    })?;
                let url = blob_url(&base, &name, &layer.digest)?;
                Ok(RemoteModel {
                    remote,
                    name,
                    url,
                    size: layer.size,
                })
            }
            PullSource::File { url, name } => {
                let host = url.host_str().unwrap_or_default();
                let remote = options.remote(&match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_owned(),
                })?;
                let size = file_size(&remote, &url)?;
                Ok(RemoteModel {
                    remote,
                    name,
                    url,
                    size,
                })
            }
        }
    }

    /// The model's name, as a pull would store it.
    pub fn name(&self) -> &ModelName {
        &self.name
    }

    /// Where the file is read from.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The first `len` bytes of the file (all of it if it is shorter), by a
    /// range request; from a server that ignores ranges, only the first
    /// `len` bytes of its answer are read.
    pub fn read_prefix(&self, len: u64) -> Result<Vec<u8>> {
        let len = len.min(self.size);
        if len == 0 {
            return Ok(Vec::new());
        }
        let headers = registry::headers(&[(header::RANGE, format!("bytes=0-{}", len - 1))]);
        let response = self.remote.send(Method::GET, &self.url, &headers)?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(StoreError::Remote(format!("{}: not found", self.url)));
        }
        if !status.is_success() {
            return Err(StoreError::Remote(format!(
                "{}: {status}: {}",
                self.url,
                registry::error_text(response)
            )));
        }
        let mut prefix = Vec::with_capacity(len as usize);
        response
            .take(len)
            .read_to_end(&mut prefix)
            .map_err(|e| StoreError::Remote(format!("reading {}: {e}", self.url)))?;
        Ok(prefix)
    }
}
