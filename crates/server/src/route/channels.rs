//! Channels: a model name (`prod`) that an operator re-points at a tested
//! model with `hearth promote MODEL prod`, and points back with `hearth
//! rollback prod`. Promoting copies the model's manifest to the channel's
//! name (so the name resolves everywhere a model name does) and appends an
//! entry to the channel's history in `channels.json` beside the store's
//! manifests: the time, the model, the new and the previous digest, the
//! note, and the previous manifest itself, so a rollback restores the old
//! target even when no other name points at it any more.
//!
//! Crash safety: the manifest is written first, then the history, each
//! atomically (a temporary file, fsync, rename). A crash between the two
//! leaves the channel re-pointed without its history entry; a later
//! rollback then restores the target before the last recorded promotion.
//!
//! The splits of `[[channels]]` (canary, shadow) are applied by the router
//! (`mod.rs`); shadow answers are recorded here ([`spawn_shadow`]).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{Manifest, ModelName, Store};

use super::Api;
use crate::AppState;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::observe::AuditRecord;

/// The file that holds every channel's history, in the store's root.
pub const HISTORY_FILE: &str = "channels.json";

/// How many shadow answers are kept per channel for `GET
/// /api/channels/NAME/shadow`.
const SHADOWS_KEPT: usize = 100;

/// One change of a channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// When (RFC 3339).
    pub time: String,
    /// `promote` or `rollback`.
    pub action: String,
    /// The model promoted (for a rollback: the channel's name).
    pub model: String,
    /// The digest the channel points at after this change.
    pub digest: String,
    /// The digest it pointed at before (`None`: the name was new).
    pub previous_digest: Option<String>,
    /// The operator's note.
    #[serde(default)]
    pub note: Option<String>,
    /// The manifest the channel had before (for rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_manifest: Option<Manifest>,
    /// Set on a promotion once a rollback has undone it.
    #[serde(default)]
    pub rolled_back: bool,
}

impl Entry {
    /// The entry as the API and the CLI show it (no manifest).
    pub fn view(&self) -> Value {
        json!({
            "time": self.time,
            "action": self.action,
            "model": self.model,
            "digest": self.digest,
            "previous_digest": self.previous_digest,
            "note": self.note,
            "rolled_back": self.rolled_back,
        })
    }
}

/// Serialises changes to the history file within this process (the CLI
/// goes through a running server when there is one).
static HISTORY_LOCK: Mutex<()> = Mutex::new(());

type History = HashMap<String, Vec<Entry>>;

fn history_path(store: &Store) -> PathBuf {
    store.root().join(HISTORY_FILE)
}

fn read_history(path: &Path) -> Result<History, ApiError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::internal("reading the channel history", &e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(History::new()),
        Err(e) => Err(ApiError::internal("reading the channel history", &e)),
    }
}

/// Writes `history` through a temporary file beside it, synced, renamed.
fn write_history(path: &Path, history: &History) -> Result<(), ApiError> {
    use std::io::Write as _;
    let fail = |e: std::io::Error| ApiError::internal("writing the channel history", &e);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let tmp = dir.join(format!(".{HISTORY_FILE}.tmp-{}", std::process::id()));
    let bytes = serde_json::to_vec_pretty(history).expect("history serialises");
    let mut file = std::fs::File::create(&tmp).map_err(fail)?;
    file.write_all(&bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn parse(name: &str, what: &str) -> Result<ModelName, ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::bad_request(format!("{what} is required")));
    }
    ModelName::parse(name)
        .map_err(|e| ApiError::bad_request(format!("invalid {what} name '{name}': {e}")))
}

/// What the channel `name` points at now: its digest and manifest.
fn current(store: &Store, name: &ModelName) -> Result<Option<(String, Manifest)>, ApiError> {
    if store.find(name)?.is_none() {
        return Ok(None);
    }
    let resolved = store.resolve(name)?;
    Ok(Some((resolved.digest.to_string(), resolved.manifest)))
}

/// Points `channel` at `model` and records it.
pub fn promote(
    store: &Store,
    model: &str,
    channel: &str,
    note: Option<&str>,
) -> Result<Entry, ApiError> {
    let source = parse(model, "model")?;
    let target = parse(channel, "channel")?;
    let _lock = HISTORY_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let resolved = store.resolve(&source)?;
    let previous = current(store, &target)?;
    store.copy(&source, &target)?;
    let entry = Entry {
        time: jiff::Timestamp::now().to_string(),
        action: "promote".to_owned(),
        model: source.display_short(),
        digest: resolved.digest.to_string(),
        previous_digest: previous.as_ref().map(|(d, _)| d.clone()),
        note: note.filter(|n| !n.is_empty()).map(str::to_owned),
        previous_manifest: previous.map(|(_, m)| m),
        rolled_back: false,
    };
    let path = history_path(store);
    let mut history = read_history(&path)?;
    history
        .entry(target.display_short())
        .or_default()
        .push(entry.clone());
    write_history(&path, &history)?;
    Ok(entry)
}

/// Points `channel` back at what it was before its latest promotion not yet
/// rolled back.
pub fn rollback(store: &Store, channel: &str) -> Result<Entry, ApiError> {
    let target = parse(channel, "channel")?;
    let _lock = HISTORY_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = history_path(store);
    let mut history = read_history(&path)?;
    let key = target.display_short();
    let entries = history.entry(key.clone()).or_default();
    let Some(undo) = entries
        .iter_mut()
        .rev()
        .find(|e| e.action == "promote" && !e.rolled_back)
    else {
        return Err(ApiError::bad_request(format!(
            "channel '{key}' has no promotion to roll back"
        )));
    };
    let (Some(manifest), Some(previous_digest)) =
        (undo.previous_manifest.clone(), undo.previous_digest.clone())
    else {
        return Err(ApiError::bad_request(format!(
            "channel '{key}' had no target before its first promotion"
        )));
    };
    let now = current(store, &target)?.map(|(d, _)| d);
    store.put_manifest(&target, &manifest)?;
    undo.rolled_back = true;
    let entry = Entry {
        time: jiff::Timestamp::now().to_string(),
        action: "rollback".to_owned(),
        model: key,
        digest: previous_digest,
        previous_digest: now,
        note: None,
        previous_manifest: None,
        rolled_back: false,
    };
    entries.push(entry.clone());
    write_history(&path, &history)?;
    Ok(entry)
}

/// The history of `channel`, oldest first.
pub fn history(store: &Store, channel: &str) -> Result<Vec<Entry>, ApiError> {
    let target = parse(channel, "channel")?;
    let mut history = read_history(&history_path(store))?;
    Ok(history.remove(&target.display_short()).unwrap_or_default())
}

/// Shadow answers kept in memory, per channel.
#[derive(Debug, Default)]
pub struct Shadows(Mutex<HashMap<String, VecDeque<Value>>>);

impl Shadows {
    fn push(&self, channel: &str, record: Value) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = map.entry(channel.to_owned()).or_default();
        if list.len() == SHADOWS_KEPT {
            list.pop_front();
        }
        list.push_back(record);
    }

    fn list(&self, channel: &str) -> Vec<Value> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(channel)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The channel endpoints.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/channels/promote", post(promote_handler))
        .route("/api/channels/rollback", post(rollback_handler))
        .route("/api/channels/{*rest}", get(get_handler))
}

/// `POST /api/channels/promote`'s body.
#[derive(Debug, Deserialize)]
pub struct PromoteBody {
    #[serde(default)]
    model: String,
    #[serde(default)]
    channel: String,
    note: Option<String>,
}

/// `POST /api/channels/rollback`'s body.
#[derive(Debug, Deserialize)]
pub struct RollbackBody {
    #[serde(default)]
    channel: String,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("a channel change", &e))?
}

/// `POST /api/channels/promote`: `{"model", "channel", "note"}`.
async fn promote_handler(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PromoteBody>,
) -> Result<Json<Value>, ApiError> {
    let store = state.scheduler.store().clone();
    let entry =
        blocking(move || promote(&store, &body.model, &body.channel, body.note.as_deref())).await?;
    Ok(Json(entry.view()))
}

/// `POST /api/channels/rollback`: `{"channel"}`.
async fn rollback_handler(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RollbackBody>,
) -> Result<Json<Value>, ApiError> {
    let store = state.scheduler.store().clone();
    let entry = blocking(move || rollback(&store, &body.channel)).await?;
    Ok(Json(entry.view()))
}

/// `GET /api/channels/NAME/history` and `GET /api/channels/NAME/shadow`
/// (names may hold `/`).
async fn get_handler(
    State(state): State<AppState>,
    axum::extract::Path(rest): axum::extract::Path<String>,
) -> Result<Json<Value>, ApiError> {
    if let Some(channel) = rest.strip_suffix("/history") {
        let store = state.scheduler.store().clone();
        let owned = channel.to_owned();
        let entries = blocking(move || history(&store, &owned)).await?;
        let list: Vec<Value> = entries.iter().map(Entry::view).collect();
        return Ok(Json(json!({ "channel": channel, "history": list })));
    }
    if let Some(channel) = rest.strip_suffix("/shadow") {
        let key = parse(channel, "channel")?.display_short();
        return Ok(Json(
            json!({ "channel": channel, "shadow": state.router.shadows.list(&key) }),
        ));
    }
    Err(ApiError::not_found(
        "expected /api/channels/NAME/history or /api/channels/NAME/shadow",
    ))
}

/// The inference routes alone, for answering shadow copies in process.
fn shadow_app(state: AppState) -> axum::Router {
    use axum::routing::post;
    axum::Router::new()
        .route("/api/chat", post(crate::api::ollama::chat))
        .route("/api/generate", post(crate::api::ollama::generate))
        .nest("/v1", crate::api::openai::routes())
        .with_state(state)
}

/// The answer's text and token counts, in either API's shape.
fn answer_parts(answer: &Value) -> (String, (u64, u64)) {
    let text = answer["message"]["content"]
        .as_str()
        .or(answer["response"].as_str())
        .or(answer["choices"][0]["message"]["content"].as_str())
        .or(answer["choices"][0]["text"].as_str())
        .unwrap_or_default()
        .to_owned();
    let count = |a: &str, b: &str| {
        answer[a]
            .as_u64()
            .or(answer["usage"][b].as_u64())
            .unwrap_or(0)
    };
    (
        text,
        (
            count("prompt_eval_count", "prompt_tokens"),
            count("eval_count", "completion_tokens"),
        ),
    )
}

/// Has `experimental` answer a copy of `body` (sent to channel `channel`)
/// in the background, never returned: its digest, token counts, latency
/// and status are recorded (kept for `GET /api/channels/NAME/shadow` and
/// written to the audit log), and its text too with `HEARTH_LOG_PROMPTS=1`.
pub(crate) fn spawn_shadow(
    state: AppState,
    api: Api,
    body: &Value,
    channel: &str,
    experimental: String,
    request_id: String,
) {
    let mut body = body.clone();
    body["model"] = json!(experimental);
    body["stream"] = json!(false);
    if let Some(object) = body.as_object_mut() {
        object.remove("stream_options");
    }
    let channel =
        ModelName::parse(channel).map_or_else(|_| channel.to_owned(), |n| n.display_short());
    let (api_name, endpoint) = match api {
        Api::OllamaChat => ("ollama", "/api/chat"),
        Api::OllamaGenerate => ("ollama", "/api/generate"),
        Api::OpenAiChat => ("openai", "/v1/chat/completions"),
        Api::OpenAiCompletions => ("openai", "/v1/completions"),
    };
    tokio::spawn(async move {
        use tower::ServiceExt as _;
        let start = Instant::now();
        let request = Request::post(endpoint)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("static request parts");
        let Ok(response) = shadow_app(state.clone()).oneshot(request).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .unwrap_or_default();
        let elapsed = start.elapsed();
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let (text, tokens) = answer_parts(&answer);
        let store = state.scheduler.store().clone();
        let name = experimental.clone();
        let digest = tokio::task::spawn_blocking(move || {
            let name = ModelName::parse(&name).ok()?;
            store.resolve(&name).ok().map(|r| r.digest.to_string())
        })
        .await
        .ok()
        .flatten();
        let log_text = state.scheduler.config().log_prompts && status == StatusCode::OK;
        let mut record = json!({
            "time": jiff::Timestamp::now().to_string(),
            "request_id": request_id,
            "model": experimental,
            "digest": digest,
            "status": status.as_u16(),
            "prompt_tokens": tokens.0,
            "generated_tokens": tokens.1,
            "duration_ms": elapsed.as_secs_f64() * 1e3,
        });
        if log_text {
            record["text"] = json!(text);
        }
        state.router.shadows.push(&channel, record);
        if let Some(audit) = &state.audit {
            audit.write(&AuditRecord {
                request_id: format!("{request_id}-shadow"),
                key: None,
                client: None,
                api: api_name,
                endpoint,
                model: experimental,
                route: "shadow".to_owned(),
                reason: Some(format!("shadow of {channel}")),
                digest,
                text: log_text.then_some(text),
                status: status.as_u16(),
                tokens,
                durations: (None, elapsed),
            });
        }
    });
}
