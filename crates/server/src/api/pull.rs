//! `POST /api/pull` and `POST /api/push` (Ollama's docs/api.md): pull a
//! model into the server's store from a registry or a GGUF URL, or push one
//! of its models to a registry, streaming Ollama's progress objects
//! (`pulling manifest`, `pulling <digest12>` with `digest`, `total`,
//! `completed`, `verifying sha256 digest`, `writing manifest`, `success`;
//! for a push `retrieving manifest`, `pushing <digest12>`, `pushing
//! manifest`, `success`).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use store::PullOptions;

use crate::AppState;
use crate::api::progress;
use crate::error::ApiError;
use crate::json::ApiJson;

/// The body of `POST /api/pull` and `POST /api/push`.
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

impl PullBody {
    /// The model named (`model`, or the older `name`).
    fn model(&self) -> Result<String, ApiError> {
        let model = if self.model.is_empty() {
            &self.name
        } else {
            &self.model
        };
        if model.trim().is_empty() {
            return Err(ApiError::bad_request("model is required"));
        }
        Ok(model.clone())
    }
}

/// `POST /api/pull`.
pub async fn pull(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PullBody>,
) -> Result<Response, ApiError> {
    let source = body.model()?;
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

/// `POST /api/push`.
pub async fn push(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PullBody>,
) -> Result<Response, ApiError> {
    let name = body.model()?;
    let options = pull_options(body.insecure);
    store::PullSource::parse(&name, options.insecure)?;
    let store = state.scheduler.store().clone();
    progress::respond(body.stream.unwrap_or(true), "pushing a model", move |tx| {
        store.push(&name, &options, &mut |p| {
            let _ = tx.send(Ok(progress::progress_json(&p)));
        })?;
        Ok(())
    })
    .await
}
