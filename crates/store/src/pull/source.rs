//! What a pull fetches: a model of a registry (`llama3.2`, `me/m:tag`,
//! `host:port/ns/m:tag`, `hf.co/USER/REPO[:QUANT]`, with an optional
//! `https://` or `http://` in front) or a GGUF file by URL
//! (`https://huggingface.co/USER/REPO/resolve/main/FILE.gguf`), stored
//! under a name derived from the URL.

use reqwest::Url;

use crate::error::{Result, StoreError};
use crate::name::{DEFAULT_TAG, ModelName, sanitize_part};

/// A parsed pull argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullSource {
    /// A model of a registry.
    Registry {
        /// The model, as it is stored.
        name: ModelName,
        /// `scheme://host[:port]/`: https, or http when insecure (as
        /// Ollama's `--insecure` does) or when written so.
        base: Url,
    },
    /// A GGUF file.
    File {
        /// Where it is.
        url: Url,
        /// The name it is stored under.
        name: ModelName,
    },
}

impl PullSource {
    /// Parses a model name or a URL ending in `.gguf`. Plain http is an
    /// error unless `insecure`.
    pub fn parse(s: &str, insecure: bool) -> Result<PullSource> {
        let s = s.trim();
        let lower = s.to_ascii_lowercase();
        let scheme = if lower.starts_with("https://") {
            Some("https")
        } else if lower.starts_with("http://") {
            Some("http")
        } else {
            None
        };
        if scheme == Some("http") && !insecure {
            return Err(StoreError::Remote(format!(
                "{s}: insecure protocol http (use --insecure to allow it)"
            )));
        }
        if scheme.is_some() {
            let url =
                Url::parse(s).map_err(|e| StoreError::Remote(format!("{s}: not a URL: {e}")))?;
            if url.path().to_ascii_lowercase().ends_with(".gguf") {
                let name = name_for_url(&url)?;
                return Ok(PullSource::File { url, name });
            }
        }
        let name = ModelName::parse(s)?;
        let scheme = match scheme {
            Some(scheme) => scheme,
            None if insecure => "http",
            None => "https",
        };
        let base = Url::parse(&format!("{scheme}://{}/", name.host))
            .map_err(|e| StoreError::Remote(format!("{}: not a host: {e}", name.host)))?;
        Ok(PullSource::Registry { name, base })
    }

    /// The name the model is stored under.
    pub fn name(&self) -> &ModelName {
        match self {
            PullSource::Registry { name, .. } | PullSource::File { name, .. } => name,
        }
    }
}

/// The name of a GGUF file pulled by URL: `HOST/USER/REPO:FILE` for a Hugging
/// Face-style `/USER/REPO/resolve/REV/…/FILE.gguf`, else
/// `HOST/DIR/FILE:latest` (DIR the file's directory, `files` at the root).
fn name_for_url(url: &Url) -> Result<ModelName> {
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => return Err(StoreError::Remote(format!("{url}: no host"))),
    };
    let decoded: Vec<String> = url
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).map(percent_decode).collect())
        .unwrap_or_default();
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let file = segments.last().copied().unwrap_or("model.gguf");
    let stem = &file[..file.len().saturating_sub(".gguf".len())];
    let (namespace, model, tag) = match segments.as_slice() {
        [user, repo, "resolve", _rev, .., _file] => (*user, *repo, stem),
        [.., dir, _file] => (*dir, stem, DEFAULT_TAG),
        _ => ("files", stem, DEFAULT_TAG),
    };
    Ok(ModelName::from_parts(
        &host,
        &sanitize_part(true, namespace),
        &sanitize_part(false, model),
        &sanitize_part(false, tag),
    )?)
}

/// Decodes `%XX` escapes of a URL path segment (invalid UTF-8 is replaced).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex
            .filter(|_| bytes[i] == b'%')
            .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(s: &str, insecure: bool) -> (String, String) {
        match PullSource::parse(s, insecure).unwrap() {
            PullSource::Registry { name, base } => (name.to_string(), base.to_string()),
            other => panic!("{s}: {other:?}"),
        }
    }

    fn file(s: &str) -> String {
        match PullSource::parse(s, false).unwrap() {
            PullSource::File { name, .. } => name.to_string(),
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn registry_names_and_bases() {
        assert_eq!(
            registry("llama3.2", false),
            (
                "registry.ollama.ai/library/llama3.2:latest".into(),
                "https://registry.ollama.ai/".into()
            )
        );
        assert_eq!(
            registry("127.0.0.1:5000/me/m:t", true),
            (
                "127.0.0.1:5000/me/m:t".into(),
                "http://127.0.0.1:5000/".into()
            )
        );
        assert_eq!(registry("hf.co/me/repo", false).0, "hf.co/me/repo:Q4_K_M");
        assert_eq!(
            registry("https://h.example/me/m", true).1,
            "https://h.example/"
        );
        let e = PullSource::parse("http://h.example/me/m", false).unwrap_err();
        assert!(e.to_string().contains("insecure protocol http"), "{e}");
    }

    #[test]
    fn file_urls_get_names() {
        assert_eq!(
            file(
                "https://huggingface.co/bartowski/Llama-3.2-1B-GGUF/resolve/main/Llama-3.2-1B-Q4_K_M.gguf"
            ),
            "huggingface.co/bartowski/Llama-3.2-1B-GGUF:Llama-3.2-1B-Q4_K_M"
        );
        assert_eq!(
            file("https://example.com:8443/models/tiny.gguf?download=1"),
            "example.com:8443/models/tiny:latest"
        );
        assert_eq!(
            file("https://example.com/x.gguf"),
            "example.com/files/x:latest"
        );
        assert_eq!(
            file("https://example.com/my.org/a b.GGUF"),
            "example.com/my-org/a-b:latest"
        );
    }
}
