//! `POST /api/pull` (Ollama's docs/api.md): pulls a model into the server's
//! store from a registry or a GGUF URL, streaming Ollama's progress objects
//! (`pulling manifest`, `pulling <digest12>` with `digest`, `total`,
//! `completed`, `verifying sha256 digest`, `writing manifest`, `success`).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use store::PullOptions;

use crate::AppState;
use crate::api::progress;
use crate::error::ApiError;
use crate::json::ApiJson;

/// `POST /api/pull`'s body.
#[derive(Debug, Deserialize)]
pub struct PullBody {
    #[serde(default)]
    model: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    insecure: bool,
    stream: Option<bool>,
}

/// Pull options for `insecure`, refusing a template layer the chat-template
/// engine cannot compile (a clear error at pull time, not at chat time).
pub fn pull_options(insecure: bool) -> PullOptions {
    PullOptions {
        insecure,
        template_check: Some(Arc::new(|source: &str| {
            model::chat::ChatTemplate::new(source)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })),
        ..PullOptions::default()
    }
}

/// `POST /api/pull`.
pub async fn pull(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PullBody>,
) -> Result<Response, ApiError> {
    let source = if body.model.is_empty() {
        body.name
    } else {
        body.model
    };
    if source.trim().is_empty() {
        return Err(ApiError::bad_request("model is required"));
    }
    let options = pull_options(body.insecure);
    // Names are checked before the stream starts, so a bad one is a 400.
    store::PullSource::parse(&source, options.insecure)?;
    let store = state.scheduler.store().clone();
    progress::respond(body.stream.unwrap_or(true), "pulling a model", move |tx| {
        store.pull(&source, &options, &mut |p| {
            let _ = tx.send(Ok(progress::progress_json(&p)));
        })?;
        Ok(())
    })
    .await
}
