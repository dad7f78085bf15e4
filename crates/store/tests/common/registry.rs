//! A registry speaking Ollama's protocol on 127.0.0.1, for tests: manifests,
//! blobs with ranges, blob uploads and manifest PUTs (for push), a token
//! endpoint, files at Hugging Face-style `/USER/REPO/resolve/REV/FILE`
//! paths, and faults to inject: blobs answered by a 307 to a second port
//! (a "CDN"), a bearer-token challenge, a connection dropped after some
//! bytes, corrupt bytes, a slow blob. It counts the blob bytes it sends.
//!
//! Shared by the store's and the hearth binary's tests (`#[path]`).

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use sha2::{Digest as _, Sha256};

/// The token the registry grants.
pub const TOKEN: &str = "test-token";

/// Faults in force (each may be changed while the registry runs).
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Blob GETs on the registry answer 307 to the second port.
    pub redirect: bool,
    /// Every /v2 request needs `Authorization: Bearer TOKEN`.
    pub auth: bool,
    /// Blob digest (hex) → drop the connection after this many bytes of the
    /// next answer (once per entry).
    pub drop_after: HashMap<String, u64>,
    /// Blob digests (hex) served with one byte flipped.
    pub corrupt: HashSet<String>,
    /// Send blobs in chunks of this many bytes with this pause between.
    pub slow: Option<(usize, Duration)>,
}

#[derive(Default)]
struct Shared {
    /// `ns/model:tag` → manifest bytes.
    manifests: HashMap<String, Vec<u8>>,
    /// Digest hex → bytes.
    blobs: HashMap<String, Arc<Vec<u8>>>,
    /// Path → bytes for plain file downloads.
    files: HashMap<String, Arc<Vec<u8>>>,
    /// Digest hex (or file path) → bytes sent.
    served: HashMap<String, u64>,
    faults: Faults,
    token_requests: usize,
    uploads: HashMap<String, Vec<u8>>,
    next_upload: usize,
}

/// A running test registry (and its CDN port).
pub struct Registry {
    pub addr: SocketAddr,
    pub cdn: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    runtime: Option<tokio::runtime::Runtime>,
}

#[derive(Clone)]
struct AppState {
    shared: Arc<Mutex<Shared>>,
    addr: SocketAddr,
    cdn: SocketAddr,
}

impl Registry {
    pub fn start() -> Registry {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (main, cdn) = runtime.block_on(async {
            let main = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let cdn = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            (main, cdn)
        });
        let state = AppState {
            shared: shared.clone(),
            addr: main.local_addr().unwrap(),
            cdn: cdn.local_addr().unwrap(),
        };
        let app = Router::new()
            .route("/token", get(token))
            .route(
                "/v2/{ns}/{model}/manifests/{tag}",
                get(manifest).head(manifest).put(put_manifest),
            )
            .route("/v2/{ns}/{model}/blobs/uploads/", post(start_upload))
            .route("/v2/{ns}/{model}/blobs/uploads/{id}", put(finish_upload))
            .route("/v2/{ns}/{model}/blobs/{digest}", get(blob).head(blob))
            .route("/{user}/{repo}/resolve/{rev}/{file}", get(file))
            .with_state(state.clone());
        let cdn_app = Router::new()
            .route("/cdn/{digest}", get(cdn_blob))
            .with_state(state.clone());
        runtime.spawn(async move { axum::serve(main, app).await });
        runtime.spawn(async move { axum::serve(cdn, cdn_app).await });
        Registry {
            addr: state.addr,
            cdn: state.cdn,
            shared,
            runtime: Some(runtime),
        }
    }

    /// `127.0.0.1:PORT`, the host part of model names on this registry.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Adds a blob; returns its digest `sha256:HEX`.
    pub fn add_blob(&self, bytes: Vec<u8>) -> String {
        let hex = hex(&bytes);
        self.shared
            .lock()
            .unwrap()
            .blobs
            .insert(hex.clone(), Arc::new(bytes));
        format!("sha256:{hex}")
    }

    /// Adds a model: a config blob, the given layers `(media type, bytes)`,
    /// and the manifest under `ns/model:tag`. Returns the manifest bytes.
    pub fn add_model(&self, repo_tag: &str, layers: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let layer_json = |media: &str, bytes: &Vec<u8>, digest: String| serde_json::json!({"mediaType": media, "digest": digest, "size": bytes.len()});
        let mut entries = Vec::new();
        let mut diff_ids = Vec::new();
        for (media, bytes) in layers {
            let digest = self.add_blob(bytes.clone());
            diff_ids.push(digest.clone());
            entries.push(layer_json(media, bytes, digest));
        }
        let config = serde_json::to_vec(&serde_json::json!({
            "model_format": "gguf", "model_family": "llama", "model_type": "tiny",
            "file_type": "Q8_0", "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let config_digest = self.add_blob(config.clone());
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": layer_json("application/vnd.docker.container.image.v1+json", &config, config_digest),
            "layers": entries,
        }))
        .unwrap();
        self.shared
            .lock()
            .unwrap()
            .manifests
            .insert(repo_tag.to_owned(), manifest.clone());
        manifest
    }

    /// Stores `bytes` as the manifest of `ns/model:tag`, as they are.
    pub fn add_raw_manifest(&self, repo_tag: &str, bytes: Vec<u8>) {
        self.shared
            .lock()
            .unwrap()
            .manifests
            .insert(repo_tag.to_owned(), bytes);
    }

    /// Serves `bytes` at `path` (e.g. `/me/repo/resolve/main/x.gguf`).
    pub fn add_file(&self, path: &str, bytes: Vec<u8>) {
        self.shared
            .lock()
            .unwrap()
            .files
            .insert(path.to_owned(), Arc::new(bytes));
    }

    /// Changes the faults in force.
    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.shared.lock().unwrap().faults);
    }

    /// Bytes of blob `digest` (`sha256:HEX` or a file path) sent so far.
    pub fn served(&self, digest: &str) -> u64 {
        let key = digest.trim_start_matches("sha256:");
        *self.shared.lock().unwrap().served.get(key).unwrap_or(&0)
    }

    /// Total blob bytes sent so far.
    pub fn served_total(&self) -> u64 {
        self.shared.lock().unwrap().served.values().sum()
    }

    pub fn token_requests(&self) -> usize {
        self.shared.lock().unwrap().token_requests
    }

    /// A manifest stored on the registry (pushed or added).
    pub fn manifest(&self, repo_tag: &str) -> Option<Vec<u8>> {
        self.shared.lock().unwrap().manifests.get(repo_tag).cloned()
    }

    /// Whether the registry holds blob `sha256:HEX`.
    pub fn has_blob(&self, digest: &str) -> bool {
        let key = digest.trim_start_matches("sha256:");
        self.shared.lock().unwrap().blobs.contains_key(key)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unauthorized(state: &AppState, headers: &HeaderMap, ns: &str, model: &str) -> Option<Response> {
    if !state.shared.lock().unwrap().faults.auth {
        return None;
    }
    let expected = format!("Bearer {TOKEN}");
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&expected)
    {
        return None;
    }
    let challenge = format!(
        "Bearer realm=\"http://{}/token\",service=\"test-registry\",scope=\"repository:{ns}/{model}:pull\"",
        state.addr
    );
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
            "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}",
        )
            .into_response(),
    )
}

async fn token(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    state.shared.lock().unwrap().token_requests += 1;
    if q.get("service").map(String::as_str) != Some("test-registry") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    axum::Json(serde_json::json!({ "token": TOKEN })).into_response()
}

async fn manifest(
    State(state): State<AppState>,
    Path((ns, model, tag)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&state, &headers, &ns, &model) {
        return r;
    }
    let key = format!("{ns}/{model}:{tag}");
    match state.shared.lock().unwrap().manifests.get(&key) {
        Some(bytes) => (
            [(
                header::CONTENT_TYPE,
                "application/vnd.docker.distribution.manifest.v2+json",
            )],
            bytes.clone(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}",
        )
            .into_response(),
    }
}

async fn blob(
    State(state): State<AppState>,
    Path((ns, model, digest)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&state, &headers, &ns, &model) {
        return r;
    }
    let hex = digest.trim_start_matches("sha256:").to_owned();
    let (exists, redirect) = {
        let shared = state.shared.lock().unwrap();
        (shared.blobs.contains_key(&hex), shared.faults.redirect)
    };
    if !exists {
        return StatusCode::NOT_FOUND.into_response();
    }
    if method == Method::HEAD {
        return StatusCode::OK.into_response();
    }
    if redirect {
        let location = format!("http://{}/cdn/{hex}", state.cdn);
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response();
    }
    serve_blob(&state, &hex, &headers)
}

async fn cdn_blob(
    State(state): State<AppState>,
    Path(hex): Path<String>,
    headers: HeaderMap,
) -> Response {
    // The CDN takes no registry token: a client must not send it there.
    if headers.contains_key(header::AUTHORIZATION) {
        return (StatusCode::BAD_REQUEST, "unexpected Authorization header").into_response();
    }
    serve_blob(&state, &hex, &headers)
}

async fn file(
    State(state): State<AppState>,
    Path((user, repo, rev, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/{user}/{repo}/resolve/{rev}/{file}");
    serve_blob(&state, &path, &headers)
}

/// Answers a blob or file with range support and the faults in force.
fn serve_blob(state: &AppState, key: &str, headers: &HeaderMap) -> Response {
    let (bytes, faults) = {
        let mut shared = state.shared.lock().unwrap();
        let bytes = shared
            .blobs
            .get(key)
            .or_else(|| shared.files.get(key))
            .cloned();
        let mut faults = shared.faults.clone();
        // A drop happens once.
        if let Some(n) = shared.faults.drop_after.remove(key) {
            faults.drop_after.insert(key.to_owned(), n);
        } else {
            faults.drop_after.remove(key);
        }
        (bytes, faults)
    };
    let Some(bytes) = bytes else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let len = bytes.len() as u64;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| {
            let start: u64 = a.parse().ok()?;
            let end: u64 = if b.is_empty() {
                len - 1
            } else {
                b.parse().ok()?
            };
            Some((start, end.min(len.saturating_sub(1))))
        });
    let (status, start, end) = match range {
        Some((start, end)) if start <= end && start < len => {
            (StatusCode::PARTIAL_CONTENT, start, end + 1)
        }
        Some(_) => return StatusCode::RANGE_NOT_SATISFIABLE.into_response(),
        None => (StatusCode::OK, 0, len),
    };
    let mut body = bytes[start as usize..end as usize].to_vec();
    if faults.corrupt.contains(key) && !body.is_empty() {
        body[0] ^= 0xff;
    }
    let drop_at = faults.drop_after.get(key).copied();
    let chunk = faults.slow.map_or(64 << 10, |(c, _)| c.max(1));
    let pause = faults.slow.map(|(_, p)| p);
    let shared = state.shared.clone();
    let key = key.to_owned();
    let total = body.len();
    let stream = futures_util::stream::unfold(0usize, move |sent| {
        let body = body.clone();
        let shared = shared.clone();
        let key = key.clone();
        async move {
            if sent >= body.len() {
                return None;
            }
            if let Some(limit) = drop_at
                && sent as u64 >= limit
            {
                // Let the bytes sent so far reach the client, then cut.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return Some((
                    Err(std::io::Error::other("dropped by the test registry")),
                    usize::MAX,
                ));
            }
            if let Some(p) = pause {
                tokio::time::sleep(p).await;
            }
            let mut n = chunk.min(body.len() - sent);
            if let Some(limit) = drop_at {
                n = n.min((limit as usize).saturating_sub(sent).max(1));
            }
            *shared.lock().unwrap().served.entry(key).or_default() += n as u64;
            Some((Ok(Bytes::copy_from_slice(&body[sent..sent + n])), sent + n))
        }
    });
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, total)
        .header(header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", end - 1),
        );
    }
    response.body(Body::from_stream(stream)).unwrap()
}

async fn start_upload(
    State(state): State<AppState>,
    Path((ns, model)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&state, &headers, &ns, &model) {
        return r;
    }
    let id = {
        let mut shared = state.shared.lock().unwrap();
        shared.next_upload += 1;
        shared.next_upload
    };
    let location = format!("/v2/{ns}/{model}/blobs/uploads/{id}");
    (StatusCode::ACCEPTED, [(header::LOCATION, location)]).into_response()
}

async fn finish_upload(
    State(state): State<AppState>,
    Path((ns, model, _id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = unauthorized(&state, &headers, &ns, &model) {
        return r;
    }
    let Some(digest) = q.get("digest") else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let hex = hex(&body);
    if *digest != format!("sha256:{hex}") {
        return (
            StatusCode::BAD_REQUEST,
            "{\"errors\":[{\"code\":\"DIGEST_INVALID\",\"message\":\"digest mismatch\"}]}",
        )
            .into_response();
    }
    state
        .shared
        .lock()
        .unwrap()
        .blobs
        .insert(hex, Arc::new(body.to_vec()));
    StatusCode::CREATED.into_response()
}

async fn put_manifest(
    State(state): State<AppState>,
    Path((ns, model, tag)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = unauthorized(&state, &headers, &ns, &model) {
        return r;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut shared = state.shared.lock().unwrap();
    let digests =
        std::iter::once(&value["config"]).chain(value["layers"].as_array().into_iter().flatten());
    for layer in digests {
        let d = layer["digest"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("sha256:");
        if !shared.blobs.contains_key(d) {
            return (
                StatusCode::BAD_REQUEST,
                "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\",\"message\":\"blob unknown\"}]}",
            )
                .into_response();
        }
    }
    shared
        .manifests
        .insert(format!("{ns}/{model}:{tag}"), body.to_vec());
    StatusCode::CREATED.into_response()
}
