//! Anthropic's Messages API (docs.anthropic.com/en/api/messages):
//! `POST /v1/messages`, translated into the same internal request as the
//! other APIs, so that the official `anthropic` clients work.
//!
//! A request's `system`, `messages` (text, `tool_use`, `tool_result` and
//! `thinking` blocks), `tools`, `tool_choice`, `thinking` and sampling fields
//! become a chat for the model's template; the answer comes back as content
//! blocks (`thinking`, `text`, `tool_use`), whole or streamed as Anthropic's
//! events (`message_start`, `content_block_start`, `content_block_delta`,
//! `content_block_stop`, `message_delta`, `message_stop`). Errors use
//! Anthropic's shape. The API key is read by the shared auth layer, from
//! `x-api-key` as Anthropic's clients send it.
//!
//! `tool_choice` `any` and `tool` constrain the answer to the model's call
//! syntax with input valid under the tool's `input_schema`;
//! `output_config.format` (`json_schema`) constrains it to the schema.
//!
//! Differences from Anthropic: `thinking.budget_tokens` does not cap the thinking; thinking blocks carry
//! an empty `signature`; a tool call's input arrives in one
//! `input_json_delta`.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::AppState;
use crate::api::openai::started;
use crate::api::openai::{SSE_KEEP_ALIVE, new_id};
use crate::api::stream::Answer;
use crate::error::{AnthropicError, ApiError};
use crate::json::ApiJson;
use crate::request::{
    ChatInput, DoneReason, Event, GenerateRequest, Input, RequestOptions, Stop, Summary, Think,
};
use crate::scheduler::JobHandle;
use model::chat::output::ToolChoice;

/// A JSON body with errors in Anthropic's shape.
#[derive(Debug, Clone)]
pub struct AnthropicJson<T>(pub T);

impl<S, T> FromRequest<S> for AnthropicJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AnthropicError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AnthropicError> {
        ApiJson::<T>::from_request(req, state)
            .await
            .map(|ApiJson(v)| AnthropicJson(v))
            .map_err(AnthropicError)
    }
}

/// `POST /v1/messages`'s body.
#[derive(Debug, Deserialize)]
pub struct MessagesBody {
    model: Option<String>,
    max_tokens: Option<i64>,
    messages: Option<Vec<Message>>,
    system: Option<Content>,
    tools: Option<Vec<Tool>>,
    tool_choice: Option<Value>,
    thinking: Option<Value>,
    output_config: Option<Value>,
    stream: Option<bool>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<i64>,
    stop_sequences: Option<Vec<String>>,
}

/// One message.
#[derive(Debug, Deserialize)]
pub struct Message {
    role: String,
    content: Content,
}

/// Content: a string, or blocks.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Typed blocks.
    Blocks(Vec<Value>),
}

/// A tool: a name and its input's JSON schema.
#[derive(Debug, Deserialize)]
pub struct Tool {
    name: Option<String>,
    description: Option<String>,
    input_schema: Option<Value>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

fn invalid(message: impl Into<String>) -> AnthropicError {
    AnthropicError(ApiError::bad_request(message))
}

/// The text of a `tool_result`'s content (a string or text blocks).
fn result_text(content: Option<&Value>) -> Result<String, AnthropicError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::new();
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => texts.push(
                        b.get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                    other => {
                        return Err(invalid(format!(
                            "tool_result content blocks of type '{}' are not supported",
                            other.unwrap_or("(missing)")
                        )));
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        Some(_) => Err(invalid(
            "tool_result content must be a string or text blocks",
        )),
    }
}

/// The conversation in the chat template's shape.
fn template_messages(
    system: Option<Content>,
    messages: Vec<Message>,
) -> Result<Vec<Value>, AnthropicError> {
    let mut out = Vec::new();
    match system {
        None => {}
        Some(Content::Text(t)) => out.push(json!({"role": "system", "content": t})),
        Some(Content::Blocks(blocks)) => {
            let texts: Vec<&str> = blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            out.push(json!({"role": "system", "content": texts.join("\n")}));
        }
    }
    if messages.is_empty() {
        return Err(invalid("messages: at least one message is required"));
    }
    for (i, m) in messages.into_iter().enumerate() {
        if !matches!(m.role.as_str(), "user" | "assistant") {
            return Err(invalid(format!(
                "messages.{i}.role '{}' is invalid: use user or assistant",
                m.role
            )));
        }
        let blocks = match m.content {
            Content::Text(t) => {
                out.push(json!({"role": m.role, "content": t}));
                continue;
            }
            Content::Blocks(b) => b,
        };
        let mut texts = Vec::new();
        let mut thinking = String::new();
        let mut calls = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let text = |key: &str| b.get(key).and_then(Value::as_str).unwrap_or_default();
            match b.get("type").and_then(Value::as_str) {
                Some("text") => texts.push(text("text").to_owned()),
                Some("thinking") => thinking.push_str(text("thinking")),
                Some("redacted_thinking") => {}
                Some("tool_use") if m.role == "assistant" => calls.push(json!({
                    "id": text("id"),
                    "type": "function",
                    "function": {"name": text("name"), "arguments": b.get("input").cloned().unwrap_or(json!({}))},
                })),
                Some("tool_result") if m.role == "user" => out.push(json!({
                    "role": "tool",
                    "tool_call_id": text("tool_use_id"),
                    "content": result_text(b.get("content"))?,
                })),
                Some("image" | "document") => {
                    return Err(invalid(format!(
                        "messages.{i}.content.{j}: images and documents are not supported: hearth has no vision models yet"
                    )));
                }
                other => {
                    return Err(invalid(format!(
                        "messages.{i}.content.{j}: blocks of type '{}' are not supported in a {} message",
                        other.unwrap_or("(missing)"),
                        m.role
                    )));
                }
            }
        }
        if texts.is_empty() && calls.is_empty() && thinking.is_empty() {
            continue;
        }
        let mut message = json!({"role": m.role, "content": texts.join("\n")});
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        if !thinking.is_empty() {
            message["reasoning_content"] = thinking.clone().into();
            message["thinking"] = thinking.into();
        }
        out.push(message);
    }
    Ok(out)
}

/// Tools in the OpenAI shape templates read.
fn template_tools(tools: Vec<Tool>) -> Result<Vec<Value>, AnthropicError> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            if let Some(kind) = t.kind.as_deref().filter(|k| *k != "custom") {
                return Err(invalid(format!(
                    "tools.{i}: server tools of type '{kind}' are not supported"
                )));
            }
            let name = t
                .name
                .filter(|n| !n.is_empty())
                .ok_or_else(|| invalid(format!("tools.{i}.name: a tool needs a name")))?;
            Ok(json!({"type": "function", "function": {
                "name": name,
                "description": t.description.unwrap_or_default(),
                "parameters": t.input_schema.unwrap_or(json!({"type": "object"})),
            }}))
        })
        .collect()
}

/// `tool_choice`: whether calls are parsed (not under `none`), which call
/// the grammar allows (`any` forces one, `tool` the named one) and whether
/// several may come (`disable_parallel_tool_use`).
fn tool_choice(
    choice: Option<&Value>,
    has_tools: bool,
) -> Result<(bool, ToolChoice, bool), AnthropicError> {
    let Some(choice) = choice.filter(|c| !c.is_null()) else {
        return Ok((has_tools, ToolChoice::Auto, true));
    };
    let parallel = !choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let kind = choice
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("(missing)");
    let forced = match kind {
        "auto" => ToolChoice::Auto,
        "none" => return Ok((false, ToolChoice::Auto, parallel)),
        "any" => ToolChoice::Required,
        "tool" => match choice.get("name").and_then(Value::as_str) {
            Some(name) => ToolChoice::Function(name.to_owned()),
            None => return Err(invalid("tool_choice.name: field required for type 'tool'")),
        },
        other => {
            return Err(invalid(format!(
                "tool_choice type '{other}' is invalid: use auto, any, tool or none"
            )));
        }
    };
    if !has_tools && forced != ToolChoice::Auto {
        return Err(invalid(
            "tool_choice forces a tool call, but no tools were given",
        ));
    }
    Ok((has_tools, forced, parallel))
}

/// `thinking` (`{"type": "enabled", "budget_tokens": N}`, `disabled` or
/// `adaptive`, the model's default) and `output_config.effort`.
fn thinking(v: Option<&Value>, output_config: Option<&Value>) -> Result<Think, AnthropicError> {
    let effort = output_config
        .and_then(|c| c.get("effort"))
        .and_then(Value::as_str);
    let think = match v.map(|v| v.get("type").and_then(Value::as_str)) {
        None | Some(Some("adaptive")) => Think::Default,
        Some(Some("enabled")) => Think::On,
        Some(Some("disabled")) => return Ok(Think::Off),
        Some(other) => {
            return Err(invalid(format!(
                "thinking.type '{}' is invalid: use enabled, disabled or adaptive",
                other.unwrap_or("(missing)")
            )));
        }
    };
    Ok(match effort {
        Some(level @ ("low" | "medium" | "high")) => Think::Level(level.to_owned()),
        // Effort beyond high is the most a template knows.
        Some("xhigh" | "max") => Think::Level("high".to_owned()),
        _ => think,
    })
}

/// `POST /v1/messages`.
pub async fn messages(
    State(state): State<AppState>,
    AnthropicJson(body): AnthropicJson<MessagesBody>,
) -> Result<Response, AnthropicError> {
    let model = match body.model {
        Some(m) if !m.trim().is_empty() => m,
        _ => return Err(invalid("model: field required")),
    };
    let max_tokens = match body.max_tokens {
        Some(n) if (1..=i64::from(i32::MAX)).contains(&n) => n,
        Some(n) => {
            return Err(invalid(format!(
                "max_tokens: {n} is invalid: it must be at least 1"
            )));
        }
        None => return Err(invalid("max_tokens: field required")),
    };
    for (name, v, hi) in [
        ("temperature", body.temperature, 1.0),
        ("top_p", body.top_p, 1.0),
    ] {
        if let Some(x) = v
            && !(0.0..=hi).contains(&x)
        {
            return Err(invalid(format!(
                "{name}: {x} is out of range: it must be between 0 and {hi}"
            )));
        }
    }
    let messages = template_messages(body.system, body.messages.unwrap_or_default())?;
    let tools = template_tools(body.tools.unwrap_or_default())?;
    let (parse_calls, tool_choice, parallel_tool_calls) =
        tool_choice(body.tool_choice.as_ref(), !tools.is_empty())?;
    let think = thinking(body.thinking.as_ref(), body.output_config.as_ref())?;
    let constraint =
        crate::api::format::anthropic(body.output_config.as_ref().and_then(|c| c.get("format")))
            .map_err(invalid)?;
    if constraint.is_some() && parse_calls && tool_choice != ToolChoice::Auto {
        return Err(invalid(
            "a forced tool_choice cannot be combined with output_config.format: both constrain \
             the whole answer",
        ));
    }
    let stop_sequences = body.stop_sequences.unwrap_or_default();
    if stop_sequences.iter().any(String::is_empty) {
        return Err(invalid("stop_sequences: a stop sequence must not be empty"));
    }
    let options = RequestOptions {
        // Anthropic's default temperature is 1.0.
        temperature: Some(body.temperature.unwrap_or(1.0)),
        top_p: body.top_p,
        top_k: body.top_k,
        num_predict: Some(max_tokens),
        stop: (!stop_sequences.is_empty()).then_some(Stop::Many(stop_sequences)),
        constraint,
        ..RequestOptions::default()
    };
    let request = GenerateRequest {
        model: model.clone(),
        input: Input::Chat(ChatInput {
            messages,
            template: None,
            tools,
            parse_calls,
            tool_choice,
            parallel_tool_calls,
            think,
        }),
        options,
        keep_alive: None,
    };
    let mut job = state.scheduler.submit(request).await.map_err(|e| {
        if e.status == axum::http::StatusCode::NOT_FOUND {
            AnthropicError(ApiError::not_found(format!("model: {model} not found")))
        } else {
            AnthropicError(e)
        }
    })?;
    let first = started(&mut job)
        .await
        .map_err(|e| AnthropicError(e.error))?;
    let reply = Reply {
        id: new_id("msg").replacen('-', "_", 1),
        model,
    };
    if body.stream.unwrap_or(false) {
        let events = sse_events(reply, job, first);
        return Ok(Sse::new(events)
            .keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE))
            .into_response());
    }
    let (answer, summary) = crate::api::openai::collect(job, first)
        .await
        .map_err(|e| AnthropicError(e.error))?;
    Ok(Json(reply.message(&answer, &summary)).into_response())
}

/// What the objects of one response share.
struct Reply {
    id: String,
    model: String,
}

fn tool_use_id(call: &model::chat::output::ToolCall) -> String {
    call.id
        .clone()
        .unwrap_or_else(|| new_id("toolu").replacen('-', "_", 1))
}

impl Reply {
    /// `stop_reason` and `stop_sequence`. The engine does not report which
    /// stop sequence matched, so a stop is always `end_turn`.
    fn stop(&self, summary: &Summary, calls: bool) -> (&'static str, Value) {
        if calls {
            return ("tool_use", Value::Null);
        }
        match summary.done_reason {
            DoneReason::Length => ("max_tokens", Value::Null),
            _ => ("end_turn", Value::Null),
        }
    }

    fn usage(summary: &Summary) -> Value {
        let output = summary.timings.eval_count;
        let input = summary.context.len().saturating_sub(output);
        json!({"input_tokens": input, "output_tokens": output})
    }

    /// The whole answer.
    fn message(&self, answer: &Answer, summary: &Summary) -> Value {
        let mut content = Vec::new();
        if !answer.thinking.is_empty() {
            content.push(json!({"type": "thinking", "thinking": answer.thinking, "signature": ""}));
        }
        if !answer.content.is_empty() || answer.calls.is_empty() {
            content.push(json!({"type": "text", "text": answer.content}));
        }
        for (_, call) in &answer.calls {
            content.push(json!({"type": "tool_use", "id": tool_use_id(call), "name": call.name, "input": call.arguments}));
        }
        let (stop_reason, stop_sequence) = self.stop(summary, !answer.calls.is_empty());
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": Reply::usage(summary),
        })
    }
}

/// Which block a stream has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
}

/// What a stream still has to send.
struct Pending {
    reply: Reply,
    job: JobHandle,
    next: Option<Event>,
    queue: VecDeque<(&'static str, Value)>,
    open: Option<Block>,
    index: usize,
    calls: bool,
    finished: bool,
}

impl crate::api::stream::NamedEvents for Pending {
    fn queued(&mut self) -> Option<(&'static str, Value)> {
        self.queue.pop_front()
    }

    fn finished(&self) -> bool {
        self.finished
    }

    fn read_ahead(&mut self) -> Option<Event> {
        self.next.take()
    }

    fn job(&mut self) -> &mut JobHandle {
        &mut self.job
    }

    fn on_event(&mut self, event: Option<Event>) {
        self.handle(event);
    }
}

impl Pending {
    fn send(&mut self, name: &'static str, v: Value) {
        self.queue.push_back((name, v));
    }

    fn close(&mut self) {
        if self.open.take().is_some() {
            let index = self.index;
            self.send(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            );
            self.index += 1;
        }
    }

    /// Sends `delta` in a block of kind `block`, opening it if need be.
    fn delta(&mut self, block: Block, delta: Value) {
        if self.open != Some(block) {
            self.close();
            let start = match block {
                Block::Text => json!({"type": "text", "text": ""}),
                Block::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
            };
            let index = self.index;
            self.send(
                "content_block_start",
                json!({"type": "content_block_start", "index": index, "content_block": start}),
            );
            self.open = Some(block);
        }
        let index = self.index;
        self.send(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
    }

    fn handle(&mut self, event: Option<Event>) {
        match event {
            Some(Event::Started) => {}
            Some(Event::Text(t)) => {
                self.delta(Block::Text, json!({"type": "text_delta", "text": t}))
            }
            Some(Event::Thinking(t)) => {
                self.delta(
                    Block::Thinking,
                    json!({"type": "thinking_delta", "thinking": t}),
                );
            }
            Some(Event::ToolCall(call)) => {
                self.close();
                let index = self.index;
                let block = json!({"type": "tool_use", "id": tool_use_id(&call), "name": call.name, "input": {}});
                self.send(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": block}),
                );
                self.send(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index,
                           "delta": {"type": "input_json_delta", "partial_json": call.arguments.to_string()}}),
                );
                self.send(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": index}),
                );
                self.index += 1;
                self.calls = true;
            }
            Some(Event::Done(summary)) => {
                if self.index == 0 && self.open.is_none() {
                    // Every message has at least one block.
                    self.delta(Block::Text, json!({"type": "text_delta", "text": ""}));
                }
                self.close();
                let (stop_reason, stop_sequence) = self.reply.stop(&summary, self.calls);
                self.send(
                    "message_delta",
                    json!({"type": "message_delta",
                           "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                           "usage": Reply::usage(&summary)}),
                );
                self.send("message_stop", json!({"type": "message_stop"}));
                self.finished = true;
            }
            Some(Event::Error(e)) => {
                self.send("error", AnthropicError(e).body());
                self.finished = true;
            }
            Some(Event::Embedded(_)) | None => {
                let e = ApiError::internal("generating", &"the model worker stopped");
                self.send("error", AnthropicError(e).body());
                self.finished = true;
            }
        }
    }
}

fn sse_events(
    reply: Reply,
    job: JobHandle,
    first: Option<Event>,
) -> impl futures_util::Stream<Item = Result<sse::Event, Infallible>> + Send + 'static {
    let start = json!({"type": "message_start", "message": {
        "id": reply.id, "type": "message", "role": "assistant", "model": reply.model,
        "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }});
    let mut pending = Pending {
        reply,
        job,
        next: first,
        queue: VecDeque::new(),
        open: None,
        index: 0,
        calls: false,
        finished: false,
    };
    pending.send("message_start", start);
    crate::api::stream::named_events(pending)
}
