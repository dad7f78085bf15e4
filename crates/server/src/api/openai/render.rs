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

    /// The whole answer as one object (`stream: false`): one choice per
    /// finished job, in order.
    pub fn complete(&self, results: &[(Answer, Box<Summary>)]) -> Value {
        let choices = results
            .iter()
            .enumerate()
            .map(|(index, (answer, summary))| self.choice(index, answer, summary))
            .collect();
        let mut v = self.envelope(false, choices);
        v["usage"] = usage(results.iter().map(|(_, s)| s.as_ref()));
        v
    }

    /// Choice `index` of a whole answer.
    fn choice(&self, index: usize, answer: &Answer, summary: &Summary) -> Value {
        let text = answer.content.as_str();
        let logprobs = self.logprobs_json(&summary.logprobs);
        let calls = !answer.calls.is_empty();
        match &self.kind {
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
                    "index": index,
                    "message": message,
                    "logprobs": logprobs,
                    "finish_reason": finish_reason(summary, calls),
                })
            }
            Kind::Completion { echo } => json!({
                "index": index,
                "text": format!("{}{text}", echo.as_deref().unwrap_or_default()),
                "logprobs": logprobs,
                "finish_reason": finish_reason(summary, false),
            }),
        }
    }

    /// A streamed chunk with one choice, number `index`.
    fn chunk(
        &self,
        index: usize,
        text: Option<&str>,
        logprobs: Value,
        finish: Option<&str>,
    ) -> Value {
        let choice = match &self.kind {
            Kind::Chat => {
                let delta = text.map_or_else(|| json!({}), |t| json!({"content": t}));
                json!({"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish})
            }
            Kind::Completion { .. } => json!({
                "index": index,
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

    /// The chunk that opens choice `index` of a stream: the assistant role
    /// (chat), the echoed prompt (completions).
    fn opening(&self, index: usize) -> Option<Value> {
        match &self.kind {
            Kind::Chat => {
                let mut v = self.chunk(index, Some(""), Value::Null, None);
                v["choices"][0]["delta"]["role"] = "assistant".into();
                Some(v)
            }
            Kind::Completion { echo: Some(echo) } if !echo.is_empty() => {
                Some(self.chunk(index, Some(echo), Value::Null, None))
            }
            Kind::Completion { .. } => None,
        }
    }

    /// A chat chunk of choice `index` whose delta is `delta`.
    fn delta_chunk(&self, index: usize, delta: Value) -> Value {
        let mut v = self.chunk(index, None, Value::Null, None);
        v["choices"][0]["delta"] = delta;
        v
    }

    /// The chunk that closes choice `index`: its finish reason.
    fn closing(&self, index: usize, summary: &Summary, calls: bool) -> Value {
        let logprobs = self.logprobs_json(&summary.logprobs);
        self.chunk(index, None, logprobs, Some(finish_reason(summary, calls)))
    }

    /// The usage chunk after every choice has closed, if asked for.
    fn usage_chunk<'a>(&self, summaries: impl Iterator<Item = &'a Summary>) -> Option<Value> {
        self.include_usage.then(|| {
            let mut v = self.envelope(true, Vec::new());
            v["usage"] = usage(summaries);
            v
        })
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

/// Token counts: the whole prompt (cached prefix included) once, and the
/// answers of every choice.
fn usage<'a>(summaries: impl Iterator<Item = &'a Summary>) -> Value {
    let mut prompt = 0;
    let mut completion = 0;
    for (i, summary) in summaries.enumerate() {
        let eval = summary.timings.eval_count;
        if i == 0 {
            prompt = summary.context.len().saturating_sub(eval);
        }
        completion += eval;
    }
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

/// One choice's part of a stream.
struct Choice {
    index: usize,
    job: JobHandle,
    next: Option<Event>,
    n_calls: usize,
}

/// What one job event of a choice sends.
enum Step {
    /// Chunks to send; the choice goes on.
    Chunks(Vec<Value>),
    /// The choice's closing chunk, and its summary for the usage.
    Done(Value, Box<Summary>),
    /// An error body; the whole stream ends.
    Failed(Value),
}

impl Choice {
    /// Waits for the choice's next event and turns it into what it sends.
    async fn step(&mut self, reply: &Reply) -> Step {
        let event = match self.next.take() {
            Some(e) => Some(e),
            None => self.job.recv().await,
        };
        let index = self.index;
        match event {
            Some(Event::Started) => Step::Chunks(Vec::new()),
            Some(Event::Text(t)) => {
                Step::Chunks(vec![reply.chunk(index, Some(&t), Value::Null, None)])
            }
            Some(Event::Thinking(t)) => Step::Chunks(vec![
                reply.delta_chunk(index, json!({"reasoning_content": t})),
            ]),
            Some(Event::ToolCall(call)) => {
                // As OpenAI streams a call: the id and name with empty
                // arguments, then the arguments.
                let call_index = self.n_calls;
                self.n_calls += 1;
                let mut opening = tool_call_json(Some(call_index), &call);
                let arguments = std::mem::take(&mut opening["function"]["arguments"]);
                opening["function"]["arguments"] = "".into();
                let rest = json!({"index": call_index, "function": {"arguments": arguments}});
                Step::Chunks(vec![
                    reply.delta_chunk(index, json!({"tool_calls": [opening]})),
                    reply.delta_chunk(index, json!({"tool_calls": [rest]})),
                ])
            }
            Some(Event::Done(summary)) => {
                let closing = reply.closing(index, &summary, self.n_calls > 0);
                Step::Done(closing, summary)
            }
            // OpenAI's clients raise on a chunk that holds an `error`.
            Some(Event::Error(e)) => Step::Failed(OpenAiError::from(e).body()),
            Some(Event::Embedded(_)) | None => {
                let e = ApiError::internal("generating", &"the model worker stopped");
                Step::Failed(OpenAiError::from(e).body())
            }
        }
    }
}

/// A choice waiting on its next event.
type Waiting = std::pin::Pin<Box<dyn std::future::Future<Output = (Choice, Step)> + Send>>;

/// What a stream still has to send.
struct Pending {
    /// Shared with each choice's waiting step (one pointer copy per token).
    reply: std::sync::Arc<Reply>,
    /// The choices still generating, each with the step it is waiting on.
    running: futures_util::stream::FuturesUnordered<Waiting>,
    /// Summaries of the finished choices, by index.
    finished: Vec<Option<Box<Summary>>>,
    queue: VecDeque<String>,
    ended: bool,
}

impl Pending {
    fn push(&mut self, v: &Value) {
        self.queue.push_back(v.to_string());
    }

    /// Starts waiting on `choice`'s next event.
    fn wait(&mut self, mut choice: Choice) {
        let reply = self.reply.clone();
        self.running.push(Box::pin(async move {
            let step = choice.step(&reply).await;
            (choice, step)
        }));
    }
}

/// The SSE events of started jobs, one per choice: each choice's opening
/// chunk, its text pieces as they come (choices interleaved, told apart by
/// `index`), its closing chunk, then the usage (if asked for) and `[DONE]`
/// once all have finished. The job handles live in the stream, so a client
/// that goes away cancels every choice.
pub fn sse_events(
    reply: Reply,
    jobs: Vec<(JobHandle, Option<Event>)>,
) -> impl Stream<Item = Result<sse::Event, Infallible>> + Send + 'static {
    let mut start = Pending {
        reply: std::sync::Arc::new(reply),
        running: futures_util::stream::FuturesUnordered::new(),
        finished: (0..jobs.len()).map(|_| None).collect(),
        queue: VecDeque::new(),
        ended: false,
    };
    for (index, (job, next)) in jobs.into_iter().enumerate() {
        if let Some(v) = start.reply.opening(index) {
            start.push(&v);
        }
        start.wait(Choice {
            index,
            job,
            next,
            n_calls: 0,
        });
    }
    futures_util::stream::unfold(start, |mut st| async move {
        loop {
            if let Some(data) = st.queue.pop_front() {
                return Some((Ok(sse::Event::default().data(data)), st));
            }
            if st.ended {
                return None;
            }
            let Some((choice, step)) = futures_util::StreamExt::next(&mut st.running).await else {
                // Every choice has finished.
                let summaries: Vec<&Summary> =
                    st.finished.iter().flatten().map(|s| s.as_ref()).collect();
                if let Some(v) = st.reply.usage_chunk(summaries.into_iter()) {
                    st.push(&v);
                }
                st.queue.push_back("[DONE]".to_owned());
                st.ended = true;
                continue;
            };
            match step {
                Step::Chunks(chunks) => {
                    for v in &chunks {
                        st.push(v);
                    }
                    st.wait(choice);
                }
                Step::Done(closing, summary) => {
                    st.push(&closing);
                    st.finished[choice.index] = Some(summary);
                }
                Step::Failed(body) => {
                    st.push(&body);
                    // Dropping the other choices' jobs cancels them.
                    st.running.clear();
                    st.ended = true;
                }
            }
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
