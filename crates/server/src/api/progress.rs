//! Long store operations (`/api/create`, `/api/pull`, `/api/push`) answered
//! as Ollama does: a stream of NDJSON progress objects (`status`, and for
//! byte steps `digest`, `total`, `completed`), or with `"stream": false`
//! one object, the last. The work runs on a blocking thread and sends its
//! steps through a channel; an error before the first step is answered with
//! its status, one after it ends the stream as an `{"error"}` object.

use std::convert::Infallible;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use store::Progress;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::error::ApiError;

/// Ollama's `ProgressResponse` for one step.
pub fn progress_json(p: &Progress) -> Value {
    let mut v = json!({ "status": p.status });
    if let Some(d) = p.digest {
        v["digest"] = d.to_string().into();
    }
    if let Some(t) = p.total {
        v["total"] = t.into();
    }
    if let Some(c) = p.completed {
        v["completed"] = c.into();
    }
    v
}

/// Runs `work` on a blocking thread with a sender for its steps, and answers
/// with its progress (`streaming`) or its last step. `what` names the work
/// in the log if the thread fails.
pub async fn respond(
    streaming: bool,
    what: &'static str,
    work: impl FnOnce(&UnboundedSender<Result<Value, ApiError>>) -> Result<(), ApiError>
    + Send
    + 'static,
) -> Result<Response, ApiError> {
    let (tx, mut rx) = unbounded_channel::<Result<Value, ApiError>>();
    let task = tokio::task::spawn_blocking(move || {
        if let Err(e) = work(&tx) {
            let _ = tx.send(Err(e));
        }
    });
    if !streaming {
        let mut last = None;
        while let Some(item) = rx.recv().await {
            last = Some(item?);
        }
        task.await.map_err(|e| ApiError::internal(what, &e))?;
        return Ok(Json(last.unwrap_or_else(|| json!({"status": "success"}))).into_response());
    }
    // An error before any progress is answered with its status.
    let first = match rx.recv().await {
        Some(Err(e)) => return Err(e),
        Some(Ok(v)) => v,
        None => return Err(ApiError::internal(what, &"the task stopped")),
    };
    let lines = futures_util::stream::once(async move { Ok::<_, ApiError>(first) })
        .chain(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }))
        .map(|item| {
            let v = item.unwrap_or_else(|e| e.body());
            let mut bytes = serde_json::to_vec(&v).unwrap_or_default();
            bytes.push(b'\n');
            Ok::<_, Infallible>(Bytes::from(bytes))
        });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}
