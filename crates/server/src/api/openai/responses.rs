//! OpenAI's Responses API (platform.openai.com/docs/api-reference/responses),
//! stateless: `POST /v1/responses` with `input` (a string, or message,
//! `function_call`, `function_call_output` and `reasoning` items),
//! `instructions`, function `tools`, `tool_choice`, `reasoning.effort` and
//! sampling fields. The answer's output items are `reasoning`, `message`
//! (`output_text`) and `function_call`, whole or streamed as the API's events
//! (`response.created`, `response.output_item.added`,
//! `response.output_text.delta`, `response.function_call_arguments.delta`,
//! ..., `response.completed`).
//!
//! Not kept: responses are not stored, so `previous_response_id` and
//! `store: true` retrieval are refused / not offered; `text.format` other
//! than text is refused.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::render::call_id;
use super::{OpenAiJson, SSE_KEEP_ALIVE, collect, model_error, new_id, started};
use crate::AppState;
use crate::api::tools::{check_tool, tool_choice};
use crate::error::{ApiError, OpenAiError};
use crate::request::{ChatInput, DoneReason, Event, GenerateRequest, Input, Summary, Think};
use crate::scheduler::JobHandle;

/// `input`: text, or items.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ResponseInput {
    /// One user message.
    Text(String),
    /// Items.
    Items(Vec<Value>),
}

/// `POST /v1/responses`'s body.
#[derive(Debug, Deserialize)]
pub struct ResponsesBody {
    model: Option<String>,
    input: Option<ResponseInput>,
    instructions: Option<String>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    reasoning: Option<Value>,
    stream: Option<bool>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_output_tokens: Option<i64>,
    previous_response_id: Option<String>,
    text: Option<Value>,
}

fn invalid(param: &str, message: impl Into<String>) -> OpenAiError {
    OpenAiError::invalid_param(param, message)
}

/// The text of a message item's content (a string or text parts).
fn content_text(content: Option<&Value>, param: &str) -> Result<String, OpenAiError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                match p.get("type").and_then(Value::as_str) {
                    Some("input_text" | "output_text" | "text") => {
                        texts.push(p.get("text").and_then(Value::as_str).unwrap_or_default())
                    }
                    Some("input_image" | "input_file") => {
                        return Err(invalid(
                            &format!("{param}.content[{j}]"),
                            "images and files are not supported: hearth has no vision models yet",
                        ));
                    }
                    other => {
                        return Err(invalid(
                            &format!("{param}.content[{j}]"),
                            format!(
                                "content parts of type '{}' are not supported",
                                other.unwrap_or("(missing)")
                            ),
                        ));
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        Some(_) => Err(invalid(
            param,
            "content must be a string or a list of parts",
        )),
    }
}

/// The conversation in the chat template's shape. Consecutive function
/// calls (and a reasoning item before them) join one assistant message.
fn template_messages(
    instructions: Option<String>,
    input: ResponseInput,
) -> Result<Vec<Value>, OpenAiError> {
    let mut out: Vec<Value> = Vec::new();
    if let Some(i) = instructions.filter(|i| !i.is_empty()) {
        out.push(json!({"role": "system", "content": i}));
    }
    let items = match input {
        ResponseInput::Text(t) => vec![json!({"role": "user", "content": t})],
        ResponseInput::Items(items) => items,
    };
    if items.is_empty() {
        return Err(invalid("input", "input must not be empty"));
    }
    let mut thinking = String::new();
    for (i, item) in items.iter().enumerate() {
        let param = format!("input[{i}]");
        let text = |key: &str| item.get(key).and_then(Value::as_str).unwrap_or_default();
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        match kind {
            "message" => {
                let role = match text("role") {
                    "developer" | "system" => "system",
                    r @ ("user" | "assistant") => r,
                    other => {
                        return Err(invalid(
                            &format!("{param}.role"),
                            format!(
                                "role '{other}' is invalid: use user, assistant, system or developer"
                            ),
                        ));
                    }
                };
                let mut m =
                    json!({"role": role, "content": content_text(item.get("content"), &param)?});
                if role == "assistant" && !thinking.is_empty() {
                    m["reasoning_content"] = std::mem::take(&mut thinking).into();
                }
                out.push(m);
            }
            "function_call" => {
                let args = text("arguments");
                let arguments = serde_json::from_str::<Value>(args)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| Value::String(args.to_owned()));
                let call = json!({"id": text("call_id"), "type": "function",
                                  "function": {"name": text("name"), "arguments": arguments}});
                let joins = out
                    .last()
                    .is_some_and(|m| m["role"] == "assistant" && m.get("tool_calls").is_some());
                if joins {
                    if let Some(Value::Array(calls)) =
                        out.last_mut().and_then(|m| m.get_mut("tool_calls"))
                    {
                        calls.push(call);
                    }
                } else {
                    let mut m = json!({"role": "assistant", "content": "", "tool_calls": [call]});
                    if !thinking.is_empty() {
                        m["reasoning_content"] = std::mem::take(&mut thinking).into();
                    }
                    out.push(m);
                }
            }
            "function_call_output" => {
                let output = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    other => content_text(other, &param)?,
                };
                out.push(
                    json!({"role": "tool", "tool_call_id": text("call_id"), "content": output}),
                );
            }
            "reasoning" => {
                for key in ["content", "summary"] {
                    if let Some(Value::Array(parts)) = item.get(key) {
                        for p in parts {
                            thinking.push_str(
                                p.get("text").and_then(Value::as_str).unwrap_or_default(),
                            );
                        }
                        if !thinking.is_empty() {
                            break;
                        }
                    }
                }
            }
            other => {
                return Err(invalid(
                    &format!("{param}.type"),
                    format!("input items of type '{other}' are not supported"),
                ));
            }
        }
    }
    Ok(out)
}

/// Responses API tools (`{"type": "function", "name", "parameters"}`) in
/// the chat shape templates read.
fn template_tools(tools: Vec<Value>) -> Result<Vec<Value>, OpenAiError> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let kind = t.get("type").and_then(Value::as_str).unwrap_or("(missing)");
            if kind != "function" {
                return Err(invalid(
                    &format!("tools[{i}].type"),
                    format!("tools of type '{kind}' are not supported: only function tools are"),
                ));
            }
            let tool = if t.get("function").is_some() {
                t
            } else {
                json!({"type": "function", "function": {
                    "name": t.get("name").cloned().unwrap_or(Value::Null),
                    "description": t.get("description").cloned().unwrap_or(json!("")),
                    "parameters": t.get("parameters").cloned().unwrap_or(json!({"type": "object"})),
                }})
            };
            check_tool(i, &tool).map_err(|e| invalid(&format!("tools[{i}]"), e.message))?;
            Ok(tool)
        })
        .collect()
}

/// `POST /v1/responses`.
pub async fn create(
    State(state): State<AppState>,
    OpenAiJson(body): OpenAiJson<ResponsesBody>,
) -> Result<Response, OpenAiError> {
    let model = super::require_model(body.model)?;
    if body.previous_response_id.is_some() {
        return Err(invalid(
            "previous_response_id",
            "previous_response_id is not supported: responses are not stored; send the whole conversation as input",
        ));
    }
    if let Some(kind) = body
        .text
        .as_ref()
        .and_then(|t| t.get("format"))
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
        .filter(|k| *k != "text")
    {
        return Err(invalid(
            "text.format",
            format!(
                "text.format of type '{kind}' is not supported: constrained decoding is not implemented yet"
            ),
        ));
    }
    let input = body
        .input
        .ok_or_else(|| invalid("input", "input is required"))?;
    let messages = template_messages(body.instructions.clone(), input)?;
    let tools = template_tools(body.tools.unwrap_or_default())?;
    let (parse_calls, tool_choice) = tool_choice(body.tool_choice.as_ref(), !tools.is_empty())?;
    let think = match body
        .reasoning
        .as_ref()
        .and_then(|r| r.get("effort"))
        .and_then(Value::as_str)
    {
        None => Think::Default,
        Some(level) => crate::request::think_level(level)
            .map_err(|e| invalid("reasoning.effort", e.message))?,
    };
    let options = super::Sampling {
        temperature: body.temperature,
        top_p: body.top_p,
        max_tokens: body.max_output_tokens.map(|n| ("max_output_tokens", n)),
        ..super::Sampling::default()
    }
    .options()?;
    let echo = json!({
        "instructions": body.instructions,
        "tools": tools.iter().map(|t| {
            let f = &t["function"];
            json!({"type": "function", "name": f["name"], "description": f["description"],
                   "parameters": f["parameters"], "strict": false})
        }).collect::<Vec<_>>(),
        "tool_choice": body.tool_choice.clone().unwrap_or(json!("auto")),
        "parallel_tool_calls": body.parallel_tool_calls.unwrap_or(true),
        "temperature": options.temperature,
        "top_p": options.top_p,
        "max_output_tokens": body.max_output_tokens,
    });
    let request = GenerateRequest {
        model: model.clone(),
        input: Input::Chat(ChatInput {
            messages,
            template: None,
            tools,
            parse_calls,
            tool_choice,
            parallel_tool_calls: body.parallel_tool_calls.unwrap_or(true),
            think,
        }),
        options,
        keep_alive: None,
    };
    let mut job = state
        .scheduler
        .submit(request)
        .await
        .map_err(|e| model_error(e, &model))?;
    let first = started(&mut job).await?;
    let reply = Reply {
        id: new_id("resp").replacen('-', "_", 1),
        created_at: jiff::Timestamp::now().as_second(),
        model,
        echo,
    };
    if body.stream.unwrap_or(false) {
        return Ok(Sse::new(sse_events(reply, job, first))
            .keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE))
            .into_response());
    }
    let (answer, summary) = collect(job, first).await?;
    let mut output = Vec::new();
    if !answer.thinking.is_empty() {
        output.push(reasoning_item(&new_item_id("rs"), &answer.thinking));
    }
    if !answer.content.is_empty() || answer.calls.is_empty() {
        output.push(message_item(&new_item_id("msg"), &answer.content));
    }
    for (_, call) in &answer.calls {
        output.push(call_item(&new_item_id("fc"), call));
    }
    Ok(Json(reply.response(output, Some(&summary))).into_response())
}

fn new_item_id(prefix: &str) -> String {
    new_id(prefix).replacen('-', "_", 1)
}

fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"type": "reasoning", "id": id, "summary": [],
           "content": [{"type": "reasoning_text", "text": text}]})
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

fn message_item(id: &str, text: &str) -> Value {
    json!({"type": "message", "id": id, "status": "completed", "role": "assistant",
           "content": [text_part(text)]})
}

fn call_item(id: &str, call: &model::chat::output::ToolCall) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id(call), "name": call.name,
           "arguments": call.arguments.to_string(), "status": "completed"})
}

/// What the objects of one response share.
struct Reply {
    id: String,
    created_at: i64,
    model: String,
    /// Request fields the response object repeats.
    echo: Value,
}

impl Reply {
    /// The response object; `summary` is `None` while it is in progress.
    fn response(&self, output: Vec<Value>, summary: Option<&Summary>) -> Value {
        let mut v = json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": "in_progress",
            "error": null,
            "incomplete_details": null,
            "model": self.model,
            "output": output,
            "text": {"format": {"type": "text"}},
            "usage": null,
            "store": false,
            "metadata": {},
        });
        if let (Some(map), Some(echo)) = (v.as_object_mut(), self.echo.as_object()) {
            for (k, e) in echo {
                map.insert(k.clone(), e.clone());
            }
        }
        if let Some(summary) = summary {
            let output_tokens = summary.timings.eval_count;
            let input_tokens = summary.context.len().saturating_sub(output_tokens);
            v["usage"] = json!({
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            });
            if summary.done_reason == DoneReason::Length {
                v["status"] = "incomplete".into();
                v["incomplete_details"] = json!({"reason": "max_output_tokens"});
            } else {
                v["status"] = "completed".into();
            }
        }
        v
    }
}

/// The item a stream has open.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Open {
    Message { id: String, text: String },
    Reasoning { id: String, text: String },
}

/// What a stream still has to send.
struct Pending {
    reply: Reply,
    job: JobHandle,
    next: Option<Event>,
    queue: VecDeque<(&'static str, Value)>,
    output: Vec<Value>,
    open: Option<Open>,
    sequence: u64,
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
    fn send(&mut self, kind: &'static str, mut v: Value) {
        v["type"] = kind.into();
        v["sequence_number"] = self.sequence.into();
        self.sequence += 1;
        self.queue.push_back((kind, v));
    }

    /// Closes the open item with its `done` events.
    fn close(&mut self) {
        let index = self.output.len();
        match self.open.take() {
            None => {}
            Some(Open::Message { id, text }) => {
                let common = json!({"item_id": id, "output_index": index, "content_index": 0});
                let mut done = common.clone();
                done["text"] = text.clone().into();
                self.send("response.output_text.done", done);
                let mut part = common;
                part["part"] = text_part(&text);
                self.send("response.content_part.done", part);
                let item = message_item(&id, &text);
                self.send(
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                );
                self.output.push(item);
            }
            Some(Open::Reasoning { id, text }) => {
                self.send(
                    "response.reasoning_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text}),
                );
                let item = reasoning_item(&id, &text);
                self.send(
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                );
                self.output.push(item);
            }
        }
    }

    fn text(&mut self, delta: String, thinking: bool) {
        let index = self.output.len();
        let matches = matches!(
            (&self.open, thinking),
            (Some(Open::Message { .. }), false) | (Some(Open::Reasoning { .. }), true)
        );
        if !matches {
            self.close();
            if thinking {
                let id = new_item_id("rs");
                let mut item = reasoning_item(&id, "");
                item["content"] = json!([]);
                self.send(
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                );
                self.open = Some(Open::Reasoning {
                    id,
                    text: String::new(),
                });
            } else {
                let id = new_item_id("msg");
                let mut item = message_item(&id, "");
                item["status"] = "in_progress".into();
                item["content"] = json!([]);
                self.send(
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                );
                self.send(
                    "response.content_part.added",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": text_part("")}),
                );
                self.open = Some(Open::Message {
                    id,
                    text: String::new(),
                });
            }
        }
        let (id, kind) = match &mut self.open {
            Some(Open::Message { id, text }) => {
                text.push_str(&delta);
                (id.clone(), "response.output_text.delta")
            }
            Some(Open::Reasoning { id, text }) => {
                text.push_str(&delta);
                (id.clone(), "response.reasoning_text.delta")
            }
            None => return,
        };
        self.send(
            kind,
            json!({"item_id": id, "output_index": index, "content_index": 0, "delta": delta}),
        );
    }

    fn handle(&mut self, event: Option<Event>) {
        match event {
            Some(Event::Started) => {}
            Some(Event::Text(t)) => self.text(t, false),
            Some(Event::Thinking(t)) => self.text(t, true),
            Some(Event::ToolCall(call)) => {
                self.close();
                let index = self.output.len();
                let id = new_item_id("fc");
                let item = call_item(&id, &call);
                let mut added = item.clone();
                added["arguments"] = "".into();
                added["status"] = "in_progress".into();
                self.send(
                    "response.output_item.added",
                    json!({"output_index": index, "item": added}),
                );
                let arguments = item["arguments"].clone();
                self.send(
                    "response.function_call_arguments.delta",
                    json!({"item_id": id, "output_index": index, "delta": arguments}),
                );
                self.send(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "arguments": arguments}),
                );
                self.send(
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                );
                self.output.push(item);
            }
            Some(Event::Done(summary)) => {
                if self.output.is_empty() && self.open.is_none() {
                    self.text(String::new(), false);
                }
                self.close();
                let response = self.reply.response(self.output.clone(), Some(&summary));
                let kind = if response["status"] == "completed" {
                    "response.completed"
                } else {
                    "response.incomplete"
                };
                self.send(kind, json!({"response": response}));
                self.finished = true;
            }
            Some(Event::Error(e)) => self.fail(e),
            Some(Event::Embedded(_)) | None => {
                self.fail(ApiError::internal(
                    "generating",
                    &"the model worker stopped",
                ));
            }
        }
    }

    fn fail(&mut self, e: ApiError) {
        let e = OpenAiError::from(e);
        let body = e.body();
        self.send(
            "error",
            json!({"code": e.kind(), "message": body["error"]["message"], "param": null}),
        );
        self.finished = true;
    }
}

fn sse_events(
    reply: Reply,
    job: JobHandle,
    first: Option<Event>,
) -> impl futures_util::Stream<Item = Result<sse::Event, Infallible>> + Send + 'static {
    let created = reply.response(Vec::new(), None);
    let mut pending = Pending {
        reply,
        job,
        next: first,
        queue: VecDeque::new(),
        output: Vec::new(),
        open: None,
        sequence: 0,
        finished: false,
    };
    pending.send("response.created", json!({"response": created.clone()}));
    pending.send("response.in_progress", json!({"response": created}));
    crate::api::stream::named_events(pending)
}
