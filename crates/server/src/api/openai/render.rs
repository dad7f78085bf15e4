//! OpenAI's response objects: `chat.completion` and `chat.completion.chunk`,
//! `text_completion` (whole and streamed), embeddings lists and model objects.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::response::sse;
use futures_util::Stream;
use serde_json::{Map, Value, json};

use crate::api::stream::Answer;
use crate::error::{ApiError, OpenAiError};
use crate::request::{DoneReason, Embeddings, Event, Summary, TokenLogprob};
use crate::scheduler::JobHandle;

/// Sent as `system_fingerprint`: which backend configuration answered.
const SYSTEM_FINGERPRINT: &str = concat!("fp_hearth_", env!("CARGO_PKG_VERSION"));

/// A response id unique within this process and unlikely to repeat across
/// restarts: a counter mixed with the start time (splitmix64's finaliser).
pub(crate) fn new_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = jiff::Timestamp::now().as_nanosecond() as u64;
    let mut x = now ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    format!("{prefix}-{x:016x}{n:x}")
}

/// A tool call's id: the model's, else a new `call_…`.
pub(crate) fn call_id(call: &model::chat::output::ToolCall) -> String {
    call.id
        .clone()
        .unwrap_or_else(|| new_id("call").replacen('-', "_", 1))
}

/// A tool call in OpenAI's shape (`arguments` a JSON string), with its
/// `index` when streamed.
fn tool_call_json(index: Option<usize>, call: &model::chat::output::ToolCall) -> Value {
    let mut v = json!({
        "id": call_id(call),
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments.to_string()},
    });
    if let Some(i) = index {
        v["index"] = i.into();
    }
    v
}

/// Which API's objects to build.
#[derive(Debug, Clone)]
enum Kind {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`, with the prompt to echo first if asked.
    Completion { echo: Option<String> },
}

/// Everything the objects of one response share.
#[derive(Debug, Clone)]
pub struct Reply {
    kind: Kind,
    id: String,
    created: i64,
    model: String,
    logprobs: bool,
    include_usage: bool,
}

impl Reply {
    /// A chat completion's response.
    pub fn chat(model: String, logprobs: bool, include_usage: bool) -> Reply {
        Reply::new(Kind::Chat, "chatcmpl", model, logprobs, include_usage)
    }

    /// A text completion's response; `echo` is the prompt to repeat first.
    pub fn completion(
        model: String,
        logprobs: bool,
        include_usage: bool,
        echo: Option<String>,
    ) -> Reply {
        Reply::new(
            Kind::Completion { echo },
            "cmpl",
            model,
            logprobs,
            include_usage,
        )
    }

    fn new(kind: Kind, prefix: &str, model: String, logprobs: bool, include_usage: bool) -> Reply {
        Reply {
            kind,
            id: new_id(prefix),
            created: jiff::Timestamp::now().as_second(),
            model,
            logprobs,
            include_usage,
        }
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (&self.kind, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Completion { .. }, _) => "text_completion",
        }
    }

    fn envelope(&self, chunk: bool, choices: Vec<Value>) -> Value {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        })
    }

    /// The logprobs of a choice: `null` unless asked for.
    fn logprobs_json(&self, entries: &[TokenLogprob]) -> Value {
        if !self.logprobs {
            return Value::Null;
        }
        match self.kind {
            Kind::Chat => chat_logprobs(entries),
            Kind::Completion { .. } => completion_logprobs(entries),
        }
    }

    /// The whole answer as one object (`stream: false`).
    pub fn complete(&self, answer: &Answer, summary: &Summary) -> Value {
        let text = answer.content.as_str();
        let logprobs = self.logprobs_json(&summary.logprobs);
        let calls = !answer.calls.is_empty();
        let choice = match &self.kind {
            Kind::Chat => {
                let mut message = json!({"role": "assistant", "content": text});
                if calls {
                    if text.is_empty() {
                        message["content"] = Value::Null;
                    }
                    message["tool_calls"] = answer
                        .calls
                        .iter()
                        .map(|(_, c)| tool_call_json(None, c))
                        .collect();
                }
                if !answer.thinking.is_empty() {
                    message["reasoning_content"] = answer.thinking.clone().into();
                }
                json!({
                    "index": 0,
                    "message": message,
                    "logprobs": logprobs,
                    "finish_reason": finish_reason(summary, calls),
                })
            }
            Kind::Completion { echo } => json!({
                "index": 0,
                "text": format!("{}{text}", echo.as_deref().unwrap_or_default()),
                "logprobs": logprobs,
                "finish_reason": finish_reason(summary, false),
            }),
        };
        let mut v = self.envelope(false, vec![choice]);
        v["usage"] = usage(summary);
        v
    }

    /// A streamed chunk with one choice.
    fn chunk(&self, text: Option<&str>, logprobs: Value, finish: Option<&str>) -> Value {
        let choice = match &self.kind {
            Kind::Chat => {
                let delta = text.map_or_else(|| json!({}), |t| json!({"content": t}));
                json!({"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish})
            }
            Kind::Completion { .. } => json!({
                "index": 0,
                "text": text.unwrap_or_default(),
                "logprobs": logprobs,
                "finish_reason": finish,
            }),
        };
        let mut v = self.envelope(true, vec![choice]);
        if self.include_usage {
            v["usage"] = Value::Null;
        }
        v
    }

    /// The chunks that open a stream: the assistant role (chat), the echoed
    /// prompt (completions).
    fn opening(&self) -> Option<Value> {
        match &self.kind {
            Kind::Chat => {
                let mut v = self.chunk(Some(""), Value::Null, None);
                v["choices"][0]["delta"]["role"] = "assistant".into();
                Some(v)
            }
            Kind::Completion { echo: Some(echo) } if !echo.is_empty() => {
                Some(self.chunk(Some(echo), Value::Null, None))
            }
            Kind::Completion { .. } => None,
        }
    }

    /// A chat chunk whose delta is `delta`.
    fn delta_chunk(&self, delta: Value) -> Value {
        let mut v = self.chunk(None, Value::Null, None);
        v["choices"][0]["delta"] = delta;
        v
    }

    /// The chunks that close a stream: the finish reason, then usage if asked.
    fn closing(&self, summary: &Summary, calls: bool) -> Vec<Value> {
        let logprobs = self.logprobs_json(&summary.logprobs);
        let mut out = vec![self.chunk(None, logprobs, Some(finish_reason(summary, calls)))];
        if self.include_usage {
            let mut v = self.envelope(true, Vec::new());
            v["usage"] = usage(summary);
            out.push(v);
        }
        out
    }
}

fn finish_reason(summary: &Summary, calls: bool) -> &'static str {
    if calls {
        return "tool_calls";
    }
    match summary.done_reason {
        DoneReason::Length => "length",
        DoneReason::Stop | DoneReason::Load | DoneReason::Unload => "stop",
    }
}

/// Token counts: the whole prompt (cached prefix included) and the answer.
fn usage(summary: &Summary) -> Value {
    let completion = summary.timings.eval_count;
    let prompt = summary.context.len().saturating_sub(completion);
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

fn token_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Chat's `logprobs`: `{"content": [{token, logprob, bytes, top_logprobs}]}`.
fn chat_logprobs(entries: &[TokenLogprob]) -> Value {
    let item = |bytes: &[u8], logprob: f32| json!({"token": token_text(bytes), "logprob": logprob, "bytes": bytes});
    let content: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut v = item(&e.token, e.logprob);
            v["top_logprobs"] = e.top.iter().map(|(t, p)| item(t, *p)).collect();
            v
        })
        .collect();
    json!({"content": content, "refusal": null})
}

/// The legacy completions `logprobs`: parallel lists of tokens, their
/// logprobs, the top alternatives and each token's offset in the text.
fn completion_logprobs(entries: &[TokenLogprob]) -> Value {
    let mut tokens = Vec::with_capacity(entries.len());
    let mut token_logprobs = Vec::with_capacity(entries.len());
    let mut top_logprobs = Vec::with_capacity(entries.len());
    let mut text_offset = Vec::with_capacity(entries.len());
    let mut offset = 0;
    for e in entries {
        let text = token_text(&e.token);
        text_offset.push(offset);
        offset += text.len();
        tokens.push(text);
        token_logprobs.push(e.logprob);
        let top: Map<String, Value> = e
            .top
            .iter()
            .map(|(t, p)| (token_text(t), json!(p)))
            .collect();
        top_logprobs.push(top);
    }
    json!({
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top_logprobs,
        "text_offset": text_offset,
    })
}

/// What a stream still has to send.
struct Pending {
    reply: Reply,
    job: JobHandle,
    next: Option<Event>,
    queue: VecDeque<String>,
    finished: bool,
    n_calls: usize,
}

impl Pending {
    fn push(&mut self, v: &Value) {
        self.queue.push_back(v.to_string());
    }

    /// Turns one job event into the chunks it sends.
    fn handle(&mut self, event: Option<Event>) {
        match event {
            Some(Event::Started) => {}
            Some(Event::Text(t)) => {
                let v = self.reply.chunk(Some(&t), Value::Null, None);
                self.push(&v);
            }
            Some(Event::Thinking(t)) => {
                let v = self.reply.delta_chunk(json!({"reasoning_content": t}));
                self.push(&v);
            }
            Some(Event::ToolCall(call)) => {
                // As OpenAI streams a call: the id and name with empty
                // arguments, then the arguments.
                let index = self.n_calls;
                let mut opening = tool_call_json(Some(index), &call);
                let arguments = std::mem::take(&mut opening["function"]["arguments"]);
                opening["function"]["arguments"] = "".into();
                let v = self.reply.delta_chunk(json!({"tool_calls": [opening]}));
                self.push(&v);
                let rest = json!({"index": index, "function": {"arguments": arguments}});
                let v = self.reply.delta_chunk(json!({"tool_calls": [rest]}));
                self.push(&v);
                self.n_calls += 1;
            }
            Some(Event::Done(summary)) => {
                for v in self.reply.closing(&summary, self.n_calls > 0) {
                    self.push(&v);
                }
                self.queue.push_back("[DONE]".to_owned());
                self.finished = true;
            }
            Some(Event::Error(e)) => {
                // OpenAI's clients raise on a chunk that holds an `error`.
                self.push(&OpenAiError::from(e).body());
                self.finished = true;
            }
            Some(Event::Embedded(_)) | None => {
                let e = ApiError::internal("generating", &"the model worker stopped");
                self.push(&OpenAiError::from(e).body());
                self.finished = true;
            }
        }
    }
}

/// The SSE events of a started job: the opening chunk, one chunk per text
/// piece, the closing chunks and `[DONE]`. The job handle lives in the
/// stream, so a client that goes away cancels the generation.
pub fn sse_events(
    reply: Reply,
    job: JobHandle,
    first: Option<Event>,
) -> impl Stream<Item = Result<sse::Event, Infallible>> + Send + 'static {
    let mut start = Pending {
        reply,
        job,
        next: first,
        queue: VecDeque::new(),
        finished: false,
        n_calls: 0,
    };
    if let Some(v) = start.reply.opening() {
        start.push(&v);
    }
    futures_util::stream::unfold(start, |mut st| async move {
        loop {
            if let Some(data) = st.queue.pop_front() {
                return Some((Ok(sse::Event::default().data(data)), st));
            }
            if st.finished {
                return None;
            }
            let event = match st.next.take() {
                Some(e) => Some(e),
                None => st.job.recv().await,
            };
            st.handle(event);
        }
    })
}

/// Base64 (RFC 4648, with padding) of `bytes`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The embeddings list; `base64` sends each vector as its little-endian f32
/// bytes in base64, as OpenAI's clients ask for by default.
pub fn embeddings(model: &str, e: &Embeddings, base64_format: bool) -> Value {
    let data: Vec<Value> = e
        .vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64_format {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64(&bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": e.prompt_eval_count, "total_tokens": e.prompt_eval_count},
    })
}

/// A model object: `owned_by` is the name's namespace (`library` for
/// library models), as Ollama reports it.
pub fn model(entry: &store::ModelEntry) -> Value {
    let created = jiff::Timestamp::try_from(entry.modified).map_or(0, |t| t.as_second());
    json!({
        "id": entry.name.display_short(),
        "object": "model",
        "created": created,
        "owned_by": entry.name.namespace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        // RFC 4648 section 10.
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn ids_do_not_repeat() {
        let a = new_id("chatcmpl");
        let b = new_id("chatcmpl");
        assert!(a.starts_with("chatcmpl-"), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn completion_logprobs_are_parallel_lists_with_offsets() {
        let entries = [
            TokenLogprob {
                token: b"Hel".to_vec(),
                logprob: -0.5,
                top: vec![(b"Hel".to_vec(), -0.5), (b"He".to_vec(), -1.5)],
            },
            TokenLogprob {
                token: b"lo".to_vec(),
                logprob: -0.25,
                top: vec![(b"lo".to_vec(), -0.25)],
            },
        ];
        let v = completion_logprobs(&entries);
        assert_eq!(v["tokens"], json!(["Hel", "lo"]));
        assert_eq!(v["token_logprobs"], json!([-0.5, -0.25]));
        assert_eq!(v["text_offset"], json!([0, 3]));
        assert_eq!(v["top_logprobs"][0]["He"], json!(-1.5));
        let v = chat_logprobs(&entries);
        assert_eq!(v["content"][1]["token"], "lo");
        assert_eq!(v["content"][1]["bytes"], json!([108, 111]));
        assert_eq!(v["content"][0]["top_logprobs"][1]["logprob"], json!(-1.5));
    }
}
