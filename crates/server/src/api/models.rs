//! Ollama's model-management endpoints (docs/api.md): `/api/tags`,
//! `/api/show`, `/api/create`, `/api/copy`, `/api/delete`, `/api/ps`,
//! `/api/version` and `/api/blobs/:digest`. All store work runs on blocking
//! threads.

use std::io::Read;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use store::{Digest, ModelConfig, ModelName, Modelfile, Parameters, Store};

use crate::AppState;
use crate::api::progress;
use crate::error::ApiError;
use crate::json::ApiJson;

/// Runs store work off the reactor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("running a store task", &e))?
}

fn parse_name(name: &str) -> Result<ModelName, ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::bad_request("model is required"));
    }
    ModelName::parse(name)
        .map_err(|e| ApiError::bad_request(format!("invalid model name '{name}': {e}")))
}

fn rfc3339(t: std::time::SystemTime) -> String {
    jiff::Timestamp::try_from(t).map_or_else(|_| String::new(), |t| t.to_string())
}

/// Ollama's `details` object.
pub fn details(config: &ModelConfig) -> Value {
    json!({
        "parent_model": "",
        "format": config.model_format,
        "family": config.model_family,
        "families": config.model_families,
        "parameter_size": config.model_type,
        "quantization_level": config.file_type,
    })
}

/// `GET /api/tags`.
pub async fn tags(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.scheduler.store().clone();
    let models = blocking(move || {
        let mut out = Vec::new();
        for entry in store.list()? {
            // A model whose config cannot be read is still listed.
            let config = store
                .resolve(&entry.name)
                .map(|r| r.config)
                .unwrap_or_default();
            let name = entry.name.display_short();
            out.push(json!({
                "name": name,
                "model": name,
                "modified_at": rfc3339(entry.modified),
                "size": entry.size,
                "digest": entry.digest.hex(),
                "details": details(&config),
            }));
        }
        Ok(out)
    })
    .await?;
    Ok(Json(json!({ "models": models })))
}

/// A body naming one model (`model`, or the older `name`).
#[derive(Debug, Deserialize)]
pub struct ModelRef {
    #[serde(default)]
    model: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    verbose: bool,
}

impl ModelRef {
    fn name(&self) -> &str {
        if self.model.is_empty() {
            &self.name
        } else {
            &self.model
        }
    }
}

/// A GGUF metadata value as JSON; arrays only when `verbose` (they hold whole
/// vocabularies), else `null` as Ollama sends them.
fn metadata_json(v: &gguf::Value, verbose: bool) -> Value {
    use gguf::Value as G;
    match v {
        G::U8(x) => json!(x),
        G::I8(x) => json!(x),
        G::U16(x) => json!(x),
        G::I16(x) => json!(x),
        G::U32(x) => json!(x),
        G::I32(x) => json!(x),
        G::U64(x) => json!(x),
        G::I64(x) => json!(x),
        G::F32(x) => json!(x),
        G::F64(x) => json!(x),
        G::Bool(x) => json!(x),
        G::String(x) => json!(x),
        G::Array(a) if verbose => array_json(a),
        G::Array(_) => Value::Null,
    }
}

fn array_json(a: &gguf::Array) -> Value {
    use gguf::Array as A;
    match a {
        A::U8(v) => json!(v),
        A::I8(v) => json!(v),
        A::U16(v) => json!(v),
        A::I16(v) => json!(v),
        A::U32(v) => json!(v),
        A::I32(v) => json!(v),
        A::F32(v) => json!(v),
        A::Bool(v) => json!(v),
        A::String(v) => json!(v),
        A::Array(v) => Value::Array(v.iter().map(array_json).collect()),
        A::U64(v) => json!(v),
        A::I64(v) => json!(v),
        A::F64(v) => json!(v),
    }
}

/// `POST /api/show`.
pub async fn show(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ModelRef>,
) -> Result<Json<Value>, ApiError> {
    parse_name(body.name())?;
    let model = state.scheduler.resolve(body.name()).await?;
    let verbose = body.verbose;
    blocking(move || {
        let file = gguf::GgufFile::open(&model.gguf_path)
            .map_err(|e| ApiError::internal("reading a model", &e))?;
        let md = file.metadata();
        let model_info: serde_json::Map<String, Value> = md
            .iter()
            .filter(|(k, _)| *k != "tokenizer.chat_template")
            .map(|(k, v)| (k.to_owned(), metadata_json(v, verbose)))
            .collect();
        let arch = md
            .opt_str("general.architecture")
            .ok()
            .flatten()
            .unwrap_or_default();
        let embedding = md.contains(&format!("{arch}.pooling_type"));
        let template = model
            .template
            .clone()
            .or_else(|| {
                md.opt_str("tokenizer.chat_template")
                    .ok()
                    .flatten()
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let modified_at = std::fs::metadata(&model.gguf_path)
            .and_then(|m| m.modified())
            .map(rfc3339)
            .unwrap_or_default();
        // As Ollama: `tools` and `thinking` where the template takes them.
        let mut capabilities = vec![if embedding { "embedding" } else { "completion" }];
        if !embedding && !template.is_empty() {
            let dialect = model::chat::output::Dialect::detect(&template);
            if dialect.takes_tools {
                capabilities.push("tools");
            }
            if dialect.thinks() {
                capabilities.push("thinking");
            }
        }
        Ok(Json(json!({
            "license": model.licenses.join("\n"),
            "modelfile": model.modelfile_text(),
            "parameters": Parameters::show_text(&model.params),
            "template": template,
            "system": model.system.clone().unwrap_or_default(),
            "details": details(&model.config),
            "model_info": model_info,
            "capabilities": capabilities,
            "modified_at": modified_at,
        })))
    })
    .await
}

/// `POST /api/copy`'s body.
#[derive(Debug, Deserialize)]
pub struct CopyBody {
    source: String,
    destination: String,
}

/// `POST /api/copy`.
pub async fn copy(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CopyBody>,
) -> Result<StatusCode, ApiError> {
    let (src, dst) = (parse_name(&body.source)?, parse_name(&body.destination)?);
    let store = state.scheduler.store().clone();
    blocking(move || Ok(store.copy(&src, &dst)?)).await?;
    Ok(StatusCode::OK)
}

/// `DELETE /api/delete`: unloads the model if it is loaded, then removes it.
pub async fn delete(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ModelRef>,
) -> Result<StatusCode, ApiError> {
    let name = parse_name(body.name())?;
    state.scheduler.unload(body.name()).await?;
    let store = state.scheduler.store().clone();
    blocking(move || Ok(store.delete(&name)?)).await?;
    Ok(StatusCode::OK)
}

/// `GET /api/ps`.
pub async fn ps(State(state): State<AppState>) -> Json<Value> {
    let models: Vec<Value> = state
        .scheduler
        .list_loaded()
        .into_iter()
        .map(|m| {
            let name = m.name.display_short();
            // Never unloading is shown as a far-away expiry, as Ollama does.
            let expires_at = m.expires_at.unwrap_or_else(|| {
                std::time::SystemTime::now() + std::time::Duration::from_secs(100 * 365 * 86400)
            });
            json!({
                "name": name,
                "model": name,
                "size": m.size,
                "digest": m.model.digest.hex(),
                "details": details(&m.model.config),
                "expires_at": rfc3339(expires_at),
                "size_vram": 0,
                "context_length": m.context_length,
            })
        })
        .collect();
    Json(json!({ "models": models }))
}

/// `GET /api/version`.
pub async fn version() -> Json<Value> {
    Json(json!({ "version": env!("CARGO_PKG_VERSION") }))
}

fn parse_digest(digest: &str) -> Result<Digest, ApiError> {
    Digest::parse(digest)
        .map_err(|e| ApiError::bad_request(format!("invalid digest '{digest}': {e}")))
}

/// `HEAD /api/blobs/:digest`: 200 if the store has the blob, else 404.
pub async fn blob_exists(
    State(state): State<AppState>,
    Path(digest): Path<String>,
) -> Result<StatusCode, ApiError> {
    let digest = parse_digest(&digest)?;
    let store = state.scheduler.store().clone();
    let exists = blocking(move || Ok(store.has_blob(&digest))).await?;
    Ok(if exists {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    })
}

/// Reads an async body from a blocking thread, chunk by chunk.
struct BodyReader {
    chunks: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    current: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Free space a blob upload must leave on the store's file system.
const DISK_RESERVE_BYTES: u64 = 1 << 30;

/// The largest blob an upload may bring now: `HEARTH_MAX_BLOB_SIZE`, and the
/// free space of the store's file system less [`DISK_RESERVE_BYTES`].
fn blob_limit(state: &AppState) -> u64 {
    let configured = state.scheduler.config().max_blob_bytes.unwrap_or(u64::MAX);
    let free = state
        .scheduler
        .store()
        .available_bytes()
        .map_or(u64::MAX, |b| b.saturating_sub(DISK_RESERVE_BYTES));
    configured.min(free)
}

/// 413 for a blob over `limit` bytes.
fn blob_too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "blob too large: at most {limit} bytes may be stored now \
             (HEARTH_MAX_BLOB_SIZE, and free disk space less 1 GiB)"
        ),
    )
}

/// `POST /api/blobs/:digest`: streams the body into the store, verifying its
/// SHA-256; 201 when stored, 400 when the bytes do not match the digest, 413
/// when it is larger than [`blob_limit`] (told by Content-Length up front, or
/// found while reading; nothing is kept then).
pub async fn blob_upload(
    State(state): State<AppState>,
    Path(digest): Path<String>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let digest = parse_digest(&digest)?;
    let limit = blob_limit(&state);
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(blob_too_large(limit));
    }
    let store = state.scheduler.store().clone();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let reader = BodyReader {
        chunks: rx,
        current: Bytes::new(),
    };
    let writer = tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        store.put_blob(&digest, &mut reader)
    });
    let mut stream = body.into_data_stream();
    let mut writing = true;
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(std::io::Error::other);
        received += chunk.as_ref().map_or(0, |c| c.len() as u64);
        if received > limit {
            // The store drops the partial file when the reader fails.
            let _ = tx
                .send(Err(std::io::Error::other("blob over the size limit")))
                .await;
            drop(tx);
            let _ = writer.await;
            return Err(blob_too_large(limit));
        }
        if chunk.is_err() {
            let _ = tx.send(chunk).await;
            break;
        }
        // When the store stops early (the blob exists already, or writing
        // failed), the rest of the body is still read and dropped: a response
        // sent before the body is consumed closes the connection under the
        // client's upload, which it sees as a reset instead of the answer.
        if writing && tx.send(chunk).await.is_err() {
            writing = false;
        }
    }
    drop(tx);
    writer
        .await
        .map_err(|e| ApiError::internal("storing a blob", &e))?
        .map_err(ApiError::from)?;
    Ok(StatusCode::CREATED)
}

/// `POST /api/create`'s body (Ollama's current JSON form).
#[derive(Debug, Deserialize)]
pub struct CreateBody {
    #[serde(default)]
    model: String,
    #[serde(default)]
    name: String,
    from: Option<String>,
    files: Option<std::collections::BTreeMap<String, String>>,
    adapters: Option<std::collections::BTreeMap<String, String>>,
    template: Option<String>,
    license: Option<Licenses>,
    system: Option<String>,
    parameters: Option<serde_json::Map<String, Value>>,
    messages: Option<Vec<store::Message>>,
    quantize: Option<String>,
    stream: Option<bool>,
}

/// `license`: one text or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Licenses {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

fn create_modelfile(store: &Store, body: CreateBody) -> Result<Modelfile, ApiError> {
    let quantize = body.quantize.filter(|q| !q.is_empty());
    if let Some(q) = &quantize
        && store::quantize::Preset::parse(q).is_none()
    {
        return Err(ApiError::bad_request(format!(
            "unknown quantization type '{q}': use one of {}",
            store::quantize::Preset::names()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // Adapters, as Ollama's client uploads them: file name → blob digest.
    let mut adapters = Vec::new();
    for (file, digest) in body.adapters.unwrap_or_default() {
        let digest = parse_digest(&digest)?;
        if !store.has_blob(&digest) {
            return Err(ApiError::bad_request(format!(
                "blob {digest} for adapter '{file}' is not in the store; upload it first (POST /api/blobs/{digest})"
            )));
        }
        adapters.push(store.blob_path(&digest).display().to_string());
    }
    let from = match (body.from, body.files) {
        (Some(_), Some(files)) if !files.is_empty() => {
            return Err(ApiError::bad_request("give either from or files, not both"));
        }
        (_, Some(files)) if !files.is_empty() => {
            if files.len() > 1 {
                return Err(ApiError::bad_request(
                    "only one file (a single GGUF) is supported in files",
                ));
            }
            let (file, digest) = files.into_iter().next().unwrap_or_default();
            let digest = parse_digest(&digest)?;
            if !store.has_blob(&digest) {
                return Err(ApiError::bad_request(format!(
                    "blob {digest} for '{file}' is not in the store; upload it first (POST /api/blobs/{digest})"
                )));
            }
            store.blob_path(&digest).display().to_string()
        }
        (Some(from), _) if !from.is_empty() => {
            parse_name(&from)?;
            from
        }
        _ => {
            return Err(ApiError::bad_request(
                "neither 'from' nor 'files' was specified",
            ));
        }
    };
    if let Some(template) = &body.template {
        model::chat::ChatTemplate::new(template)
            .map_err(|e| ApiError::bad_request(format!("invalid template: {e}")))?;
    }
    let mut modelfile = Modelfile::new(from);
    modelfile.adapters = adapters;
    modelfile.quantize = quantize;
    modelfile.template = body.template;
    modelfile.system = body.system;
    modelfile.messages = body.messages.unwrap_or_default();
    modelfile.licenses = match body.license {
        None => Vec::new(),
        Some(Licenses::One(s)) => vec![s],
        Some(Licenses::Many(v)) => v,
    };
    for (name, value) in body.parameters.unwrap_or_default() {
        let raws: Vec<String> = match value {
            Value::Array(items) => items.iter().map(value_text).collect(),
            other => vec![value_text(&other)],
        };
        for raw in raws {
            modelfile
                .parameters
                .set(&name, &raw)
                .map_err(|e| ApiError::bad_request(format!("parameters.{name}: {e}")))?;
        }
    }
    Ok(modelfile)
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `POST /api/create`: builds a model from an uploaded GGUF blob (`files`) or
/// an existing model (`from`), streaming progress as NDJSON status objects.
pub async fn create(
    State(state): State<AppState>,
    ApiJson(mut body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    if body.model.is_empty() {
        body.model = std::mem::take(&mut body.name);
    }
    let name = parse_name(&body.model)?;
    let streaming = body.stream.unwrap_or(true);
    let store = state.scheduler.store().clone();
    progress::respond(streaming, "creating a model", move |tx| {
        let modelfile = create_modelfile(&store, body)?;
        let base = std::env::current_dir().unwrap_or_default();
        store.create(&name, &modelfile, &base, &mut |p| {
            let _ = tx.send(Ok(progress::progress_json(&p)));
        })?;
        Ok(())
    })
    .await
}
