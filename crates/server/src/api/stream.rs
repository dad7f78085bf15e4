//! Rendering a job's events as Ollama responses: an NDJSON stream (one object
//! per text piece, then the final object with `done_reason` and durations in
//! nanoseconds), or one object with the whole text (`stream: false`).
//!
//! The response waits for the job's first event before committing to a status,
//! so a request that cannot start (prompt over the context, a model that fails
//! to load) gets a 4xx/5xx with `{"error": ...}` and not a 200 stream.
//! The job handle lives inside the response body: when the client goes away
//! the body is dropped, which cancels the generation before its next token.

use std::convert::Infallible;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::request::{DoneReason, Event, Summary};
use crate::scheduler::JobHandle;

/// Which response objects to build.
#[derive(Debug, Clone)]
pub enum Shape {
    /// `/api/generate`: `response` text and a `context`.
    Generate {
        /// The model name as requested.
        model: String,
    },
    /// `/api/chat`: an assistant `message`.
    Chat {
        /// The model name as requested.
        model: String,
    },
}

impl Shape {
    fn base(&self, text: &str, done: bool) -> Value {
        let created_at = jiff::Timestamp::now().to_string();
        match self {
            Shape::Generate { model } => json!({
                "model": model, "created_at": created_at, "response": text, "done": done,
            }),
            Shape::Chat { model } => json!({
                "model": model,
                "created_at": created_at,
                "message": {"role": "assistant", "content": text},
                "done": done,
            }),
        }
    }

    /// An object carrying one piece of text.
    pub fn chunk(&self, text: &str) -> Value {
        self.base(text, false)
    }

    /// An object carrying a piece of thinking or tool calls (`text` empty),
    /// or the whole answer's (`done`).
    fn with_extras(&self, mut v: Value, answer: &Answer) -> Value {
        let key = match self {
            Shape::Generate { .. } => None,
            Shape::Chat { .. } => Some("message"),
        };
        let target = match key {
            Some(k) => &mut v[k],
            None => &mut v,
        };
        if !answer.thinking.is_empty() {
            target["thinking"] = answer.thinking.clone().into();
        }
        if key.is_some() && !answer.calls.is_empty() {
            target["tool_calls"] = answer
                .calls
                .iter()
                .map(|(index, c)| {
                    json!({"function": {"index": index, "name": c.name, "arguments": c.arguments}})
                })
                .collect();
        }
        v
    }

    /// The final object; `answer` is the whole answer when not streaming.
    pub fn done(&self, answer: &Answer, summary: &Summary) -> Value {
        let v = self.base(&answer.content, true);
        let mut v = self.with_extras(v, answer);
        v["done_reason"] = summary.done_reason.as_str().into();
        if matches!(summary.done_reason, DoneReason::Load | DoneReason::Unload) {
            return v;
        }
        let t = &summary.timings;
        let nanos = |d: std::time::Duration| Value::from(d.as_nanos() as u64);
        if let Shape::Generate { .. } = self {
            v["context"] = json!(summary.context);
        }
        v["total_duration"] = nanos(t.total_duration);
        v["load_duration"] = nanos(t.load_duration);
        v["prompt_eval_count"] = t.prompt_eval_count.into();
        v["prompt_eval_duration"] = nanos(t.prompt_eval_duration);
        v["eval_count"] = t.eval_count.into();
        v["eval_duration"] = nanos(t.eval_duration);
        v
    }
}

/// An answer, or a piece of one: content, thinking and numbered tool calls.
#[derive(Debug, Default)]
pub struct Answer {
    /// Text for the user.
    pub content: String,
    /// The model's reasoning.
    pub thinking: String,
    /// Tool calls, each with its index in the answer.
    pub calls: Vec<(usize, model::chat::output::ToolCall)>,
}

/// The answer to an unload request (`keep_alive: 0` with nothing to run).
pub fn unloaded(shape: &Shape) -> Json<Value> {
    let mut v = shape.base("", true);
    v["done_reason"] = DoneReason::Unload.as_str().into();
    Json(v)
}

/// One NDJSON line. U+0085, U+2028 and U+2029, which JSON allows raw in
/// strings, are escaped (Go's encoder, and so Ollama, escapes the last two):
/// clients that split the stream with Python's `str.splitlines` (httpx's
/// `iter_lines`, under the ollama client) take each of them for a line end.
fn line(v: &Value) -> Bytes {
    let text = serde_json::to_string(v).unwrap_or_default();
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        match c {
            '\u{85}' => out.push_str("\\u0085"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('\n');
    Bytes::from(out)
}

/// The first event that is not `Started`, or the error the job ended with:
/// awaited before a response commits to its status (the OpenAI translation
/// uses it the same way).
pub async fn first_event(job: &mut JobHandle) -> Result<Event, ApiError> {
    loop {
        match job.recv().await {
            Some(Event::Started) => continue,
            Some(Event::Error(e)) => return Err(e),
            Some(event) => return Ok(event),
            None => {
                return Err(ApiError::internal(
                    "generating",
                    &"the model worker stopped",
                ));
            }
        }
    }
}

/// Streams the job's events as NDJSON.
pub async fn ndjson(shape: Shape, mut job: JobHandle) -> Result<Response, ApiError> {
    let first = first_event(&mut job).await?;
    struct Pending {
        next: Option<Event>,
        job: JobHandle,
        shape: Shape,
        finished: bool,
        n_calls: usize,
    }
    let start = Pending {
        next: Some(first),
        job,
        shape,
        finished: false,
        n_calls: 0,
    };
    let body = futures_util::stream::unfold(start, |mut st| async move {
        if st.finished {
            return None;
        }
        loop {
            let event = match st.next.take() {
                Some(e) => Some(e),
                None => st.job.recv().await,
            };
            let value = match event {
                Some(Event::Started) => continue,
                Some(Event::Text(t)) => st.shape.chunk(&t),
                Some(Event::Thinking(thinking)) => {
                    let piece = Answer {
                        thinking,
                        ..Answer::default()
                    };
                    st.shape.with_extras(st.shape.chunk(""), &piece)
                }
                Some(Event::ToolCall(call)) => {
                    let piece = Answer {
                        calls: vec![(st.n_calls, call)],
                        ..Answer::default()
                    };
                    st.n_calls += 1;
                    st.shape.with_extras(st.shape.chunk(""), &piece)
                }
                Some(Event::Done(summary)) => {
                    st.finished = true;
                    st.shape.done(&Answer::default(), &summary)
                }
                Some(Event::Error(e)) => {
                    st.finished = true;
                    e.body()
                }
                Some(Event::Embedded(_)) | None => {
                    st.finished = true;
                    ApiError::internal("generating", &"the model worker stopped").body()
                }
            };
            return Some((Ok::<_, Infallible>(line(&value)), st));
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Waits for the job to end and answers with one object.
pub async fn collect(shape: Shape, mut job: JobHandle) -> Result<Json<Value>, ApiError> {
    let mut answer = Answer::default();
    let mut next = Some(first_event(&mut job).await?);
    loop {
        let event = match next.take() {
            Some(e) => Some(e),
            None => job.recv().await,
        };
        match event {
            Some(Event::Started) => {}
            Some(Event::Text(t)) => answer.content.push_str(&t),
            Some(Event::Thinking(t)) => answer.thinking.push_str(&t),
            Some(Event::ToolCall(c)) => answer.calls.push((answer.calls.len(), c)),
            Some(Event::Done(summary)) => return Ok(Json(shape.done(&answer, &summary))),
            Some(Event::Error(e)) => return Err(e),
            Some(Event::Embedded(_)) | None => {
                return Err(ApiError::internal(
                    "generating",
                    &"the model worker stopped",
                ));
            }
        }
    }
}

/// A reply streamed as named server-sent events (Anthropic's Messages and
/// OpenAI's Responses): events queued by [`NamedEvents::on_event`] as the
/// job's events arrive, sent in order until the reply is finished.
pub(crate) trait NamedEvents: Send + 'static {
    /// The next queued event's name and data.
    fn queued(&mut self) -> Option<(&'static str, Value)>;
    /// Whether everything has been queued.
    fn finished(&self) -> bool;
    /// A job event read before streaming began, not yet handled.
    fn read_ahead(&mut self) -> Option<Event>;
    /// The job the events come from.
    fn job(&mut self) -> &mut JobHandle;
    /// Queues what the job's `event` (`None`: the job ended) means.
    fn on_event(&mut self, event: Option<Event>);
}

/// The SSE stream of a [`NamedEvents`] reply.
pub(crate) fn named_events<S: NamedEvents>(
    reply: S,
) -> impl futures_util::Stream<Item = Result<axum::response::sse::Event, Infallible>> + Send + 'static
{
    futures_util::stream::unfold(reply, |mut st| async move {
        loop {
            if let Some((name, data)) = st.queued() {
                let event = axum::response::sse::Event::default()
                    .event(name)
                    .data(data.to_string());
                return Some((Ok(event), st));
            }
            if st.finished() {
                return None;
            }
            let event = match st.read_ahead() {
                Some(e) => Some(e),
                None => st.job().recv().await,
            };
            st.on_event(event);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_lines_escape_what_line_splitters_break_on() {
        let v = json!({"response": "a\u{2028}b\u{2029}c\u{85}d\ne"});
        let bytes = line(&v);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(!text.contains(['\u{2028}', '\u{2029}', '\u{85}']), "{text}");
        let back: Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(back, v);
    }
}
