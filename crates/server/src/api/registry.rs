//! The read side of the registry protocol over the server's store, so that
//! another hearth (or Ollama with `--insecure`) can pull from this one:
//! `GET /v2/` (the protocol check), `GET`/`HEAD
//! /v2/NS/MODEL/manifests/TAG` (the stored manifest, as it is, with its
//! digest in `Docker-Content-Digest`), and `GET`/`HEAD
//! /v2/NS/MODEL/blobs/sha256:HEX` with single `Range`s (`bytes=A-B`,
//! `bytes=A-`, `bytes=-N`). Errors are the registry's JSON shape
//! (`{"errors": [{"code", "message"}]}`).

use std::io::{Read, Seek, SeekFrom};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use store::{Digest, MANIFEST_MEDIA_TYPE};

use crate::AppState;

/// Bytes read from a blob per chunk of the answer.
const CHUNK: usize = 1 << 20;

/// A registry error answer.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"code": code, "message": message}]});
    (status, axum::Json(body)).into_response()
}

/// `GET /v2/`: this server speaks the registry protocol.
pub async fn version_check() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
}

/// `GET`/`HEAD /v2/NS/MODEL/manifests/TAG`.
pub async fn manifest(
    State(state): State<AppState>,
    Path((namespace, model, tag)): Path<(String, String, String)>,
    method: Method,
) -> Response {
    let store = state.scheduler.store().clone();
    let found =
        tokio::task::spawn_blocking(move || store.registry_manifest(&namespace, &model, &tag))
            .await;
    let bytes = match found {
        Ok(Ok(Some((_, bytes)))) => bytes,
        Ok(Ok(None)) => {
            return error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "manifest unknown",
            );
        }
        Ok(Err(e)) => {
            tracing::error!("reading a manifest for the registry: {e}");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                "cannot read the manifest",
            );
        }
        Err(e) => {
            tracing::error!("reading a manifest for the registry: {e}");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                "cannot read the manifest",
            );
        }
    };
    let digest = Digest::of(&bytes).to_string();
    let headers = [
        (header::CONTENT_TYPE, MANIFEST_MEDIA_TYPE.to_owned()),
        (
            header::HeaderName::from_static("docker-content-digest"),
            digest,
        ),
        (header::CONTENT_LENGTH, bytes.len().to_string()),
    ];
    if method == Method::HEAD {
        return (headers, Body::empty()).into_response();
    }
    (headers, bytes).into_response()
}

/// A requested byte range, resolved against the blob's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    /// No (usable) `Range`: the whole blob.
    Whole,
    /// `[start, end)`.
    Part(u64, u64),
    /// Outside the blob.
    Unsatisfiable,
}

/// Parses a single `bytes=` range; several ranges, or another unit, are
/// answered with the whole blob as HTTP allows.
fn parse_range(value: Option<&str>, len: u64) -> Range {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Range::Whole;
    };
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Range::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => Some((start, end.saturating_add(1).min(len))),
        (Ok(start), Err(_)) if b.is_empty() => Some((start, len)),
        (Err(_), Ok(n)) if a.is_empty() && n > 0 => Some((len.saturating_sub(n), len)),
        _ => None,
    };
    match parsed {
        Some((start, end)) if start < len && start < end => Range::Part(start, end),
        Some(_) => Range::Unsatisfiable,
        None => Range::Whole,
    }
}

/// `GET`/`HEAD /v2/NS/MODEL/blobs/sha256:HEX`.
pub async fn blob(
    State(state): State<AppState>,
    Path((_namespace, _model, digest)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Ok(digest) = Digest::parse(&digest) else {
        return error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "invalid digest");
    };
    let path = state.scheduler.store().blob_path(&digest);
    let Ok(meta) = std::fs::metadata(&path) else {
        return error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob unknown");
    };
    let len = meta.len();
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    );
    let (status, start, end) = match range {
        Range::Whole => (StatusCode::OK, 0, len),
        Range::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end),
        Range::Unsatisfiable => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response();
        }
    };
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ACCEPT_RANGES, "bytes")
        .header("docker-content-digest", digest.to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", end - 1),
        );
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_stream(file_chunks(path, start, end))
    };
    response.body(body).unwrap_or_else(|_| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            "cannot build the answer",
        )
    })
}

/// The bytes `[start, end)` of `path`, read on a blocking thread a chunk at
/// a time (the channel's bound keeps at most a few chunks in memory); the
/// reading stops when the client goes away.
fn file_chunks(
    path: std::path::PathBuf,
    start: u64,
    end: u64,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut file = match std::fs::File::open(&path).and_then(|mut f| {
            f.seek(SeekFrom::Start(start))?;
            Ok(f)
        }) {
            Ok(file) => file,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut left = end - start;
        while left > 0 {
            let mut buf = vec![0u8; CHUNK.min(left as usize)];
            let result = file.read(&mut buf).and_then(|n| match n {
                0 => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
                n => Ok(n),
            });
            let item = result.map(|n| {
                buf.truncate(n);
                left -= n as u64;
                Bytes::from(buf)
            });
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |v: &str| parse_range(Some(v), 100);
        assert_eq!(parse_range(None, 100), Range::Whole);
        assert_eq!(r("bytes=0-9"), Range::Part(0, 10));
        assert_eq!(r("bytes=90-"), Range::Part(90, 100));
        assert_eq!(r("bytes=-10"), Range::Part(90, 100));
        assert_eq!(r("bytes=50-500"), Range::Part(50, 100));
        assert_eq!(r("bytes=100-"), Range::Unsatisfiable);
        assert_eq!(r("bytes=0-1,5-6"), Range::Whole);
        assert_eq!(r("items=0-1"), Range::Whole);
        assert_eq!(r("bytes=9-1"), Range::Whole);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Range::Unsatisfiable);
    }
}
