//! Forwarding a request to an OpenAI-compatible upstream and translating
//! its answer back into the caller's API: OpenAI's requests go as they are
//! (with the upstream's model name), Ollama's `/api/chat` and
//! `/api/generate` become `/chat/completions` requests; answers come back as
//! OpenAI objects or server-sent events, or as Ollama's single object or
//! NDJSON stream. Streams always ask the upstream for usage, so token counts
//! are known; the usage chunk reaches the caller only if it asked for it.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::Api;
use super::config::Upstream;
use crate::error::ApiError;
use crate::observe::Observer;

/// Why an upstream could not answer (the caller may fall back to a local
/// model).
#[derive(Debug)]
pub enum Failure {
    /// Unreachable, or a 5xx: worth falling back.
    Unavailable(String),
    /// The upstream refused the request (4xx): the caller gets its message.
    Refused(ApiError),
}

/// What one upstream answer used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Prompt tokens, and generated tokens.
    pub tokens: (u64, u64),
}

/// The upstream request for `body`, sent to `path` under the upstream's
/// URL: `(path, body, stream, include_usage asked by the caller)`.
pub fn translate_request(
    api: Api,
    body: &Value,
    model: &str,
) -> Result<(&'static str, Value, bool, bool), ApiError> {
    let mut out = match api {
        Api::OpenAiChat | Api::OpenAiCompletions => body.clone(),
        Api::OllamaChat => ollama_chat(body)?,
        Api::OllamaGenerate => ollama_generate(body)?,
    };
    let stream = match api {
        Api::OpenAiChat | Api::OpenAiCompletions => body["stream"].as_bool().unwrap_or(false),
        Api::OllamaChat | Api::OllamaGenerate => body["stream"].as_bool().unwrap_or(true),
    };
    let include_usage = body["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let object = out
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("expected a JSON object as the request body"))?;
    object.insert("model".into(), json!(model));
    object.insert("stream".into(), json!(stream));
    if stream {
        object.insert("stream_options".into(), json!({ "include_usage": true }));
    } else {
        object.remove("stream_options");
    }
    let path = match api {
        Api::OpenAiCompletions => "/completions",
        _ => "/chat/completions",
    };
    Ok((path, out, stream, include_usage))
}

/// Ollama's `options` as OpenAI's sampling fields.
fn ollama_options(body: &Value, out: &mut Map<String, Value>) {
    let options = &body["options"];
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("seed", "seed"),
        ("presence_penalty", "presence_penalty"),
        ("frequency_penalty", "frequency_penalty"),
        ("stop", "stop"),
    ] {
        if !options[from].is_null() {
            out.insert(to.into(), options[from].clone());
        }
    }
    if let Some(n) = options["num_predict"].as_i64().filter(|n| *n >= 0) {
        out.insert("max_tokens".into(), json!(n));
    }
    match &body["format"] {
        Value::String(s) if s == "json" => {
            out.insert("response_format".into(), json!({ "type": "json_object" }));
        }
        schema @ Value::Object(_) => {
            out.insert(
                "response_format".into(),
                json!({ "type": "json_schema", "json_schema": { "name": "response", "schema": schema } }),
            );
        }
        _ => {}
    }
}

fn refuse_images(message: &Value) -> Result<(), ApiError> {
    if message["images"].as_array().is_some_and(|i| !i.is_empty()) {
        return Err(ApiError::bad_request(
            "images are not forwarded to upstreams",
        ));
    }
    Ok(())
}

/// `/api/chat` as `/chat/completions`: tool calls get ids (`call_M_I`, M
/// the message, I the call) and each tool answer the id of the latest call
/// of its function.
fn ollama_chat(body: &Value) -> Result<Value, ApiError> {
    let mut messages = Vec::new();
    let mut calls: Vec<(String, String)> = Vec::new();
    for (m, message) in body["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        refuse_images(message)?;
        let role = message["role"].as_str().unwrap_or("user");
        let mut out = json!({ "role": role, "content": message["content"].as_str().unwrap_or("") });
        if let Some(tool_calls) = message["tool_calls"].as_array() {
            let translated: Vec<Value> = tool_calls
                .iter()
                .enumerate()
                .map(|(i, call)| {
                    let id = format!("call_{m}_{i}");
                    let name = call["function"]["name"].as_str().unwrap_or("").to_owned();
                    calls.push((name.clone(), id.clone()));
                    let arguments = match &call["function"]["arguments"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    json!({ "id": id, "type": "function", "function": { "name": name, "arguments": arguments } })
                })
                .collect();
            out["tool_calls"] = json!(translated);
        }
        if role == "tool" {
            let name = message["tool_name"].as_str().unwrap_or("");
            let id = calls
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .or(calls.last())
                .map_or_else(|| "call_0_0".to_owned(), |(_, id)| id.clone());
            out["tool_call_id"] = json!(id);
        }
        messages.push(out);
    }
    let mut out = Map::new();
    out.insert("messages".into(), json!(messages));
    if let Some(tools) = body["tools"].as_array().filter(|t| !t.is_empty()) {
        out.insert("tools".into(), json!(tools));
    }
    ollama_options(body, &mut out);
    Ok(Value::Object(out))
}

/// `/api/generate` as `/chat/completions`: the system prompt and the prompt
/// as two messages.
fn ollama_generate(body: &Value) -> Result<Value, ApiError> {
    refuse_images(body)?;
    if body["suffix"].as_str().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::bad_request(
            "suffix (fill-in-the-middle) is not forwarded to upstreams",
        ));
    }
    let mut messages = Vec::new();
    if let Some(system) = body["system"].as_str().filter(|s| !s.is_empty()) {
        messages.push(json!({ "role": "system", "content": system }));
    }
    messages.push(json!({ "role": "user", "content": body["prompt"].as_str().unwrap_or("") }));
    let mut out = Map::new();
    out.insert("messages".into(), json!(messages));
    ollama_options(body, &mut out);
    Ok(Value::Object(out))
}

/// Sends `body` to `upstream`'s `path` with its key; a connection error or a
/// 5xx is [`Failure::Unavailable`], a 4xx [`Failure::Refused`].
pub async fn send(
    client: &reqwest::Client,
    upstream: &Upstream,
    path: &str,
    body: &Value,
) -> Result<reqwest::Response, Failure> {
    let mut request = client.post(format!("{}{path}", upstream.url)).json(body);
    if let Some(var) = &upstream.api_key_env {
        match std::env::var(var) {
            Ok(key) if !key.is_empty() => request = request.bearer_auth(key),
            _ => {
                return Err(Failure::Unavailable(format!(
                    "the variable {var} that holds upstream {}'s key is not set",
                    upstream.name
                )));
            }
        }
    }
    // reqwest's errors name the URL but never the headers, so the key
    // cannot reach the log through them.
    let response = request
        .send()
        .await
        .map_err(|e| Failure::Unavailable(format!("upstream {}: {e}", upstream.name)))?;
    let status = response.status();
    if status.is_server_error() {
        return Err(Failure::Unavailable(format!(
            "upstream {} answered {status}",
            upstream.name
        )));
    }
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                v["error"]["message"]
                    .as_str()
                    .or(v["error"].as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| crate::error::truncated(&text));
        // The upstream refusing this server's key is no fault of the
        // caller's credentials: that is a bad gateway.
        let status = match StatusCode::from_u16(status.as_u16()) {
            Ok(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) | Err(_) => {
                StatusCode::BAD_GATEWAY
            }
            Ok(status) => status,
        };
        return Err(Failure::Refused(ApiError::new(
            status,
            format!("upstream {}: {message}", upstream.name),
        )));
    }
    Ok(response)
}

/// The token counts of an OpenAI `usage` object.
fn usage_of(v: &Value) -> Option<Usage> {
    let usage = v.get("usage").filter(|u| u.is_object())?;
    Some(Usage {
        tokens: (
            usage["prompt_tokens"].as_u64().unwrap_or(0),
            usage["completion_tokens"].as_u64().unwrap_or(0),
        ),
    })
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// Ollama's `tool_calls` from OpenAI's (arguments parsed into objects).
fn ollama_tool_calls(calls: &[Value]) -> Vec<Value> {
    calls
        .iter()
        .map(|call| {
            let arguments = call["function"]["arguments"].as_str().map_or_else(
                || call["function"]["arguments"].clone(),
                |s| serde_json::from_str(s).unwrap_or_else(|_| json!(s)),
            );
            json!({ "function": { "name": call["function"]["name"], "arguments": arguments } })
        })
        .collect()
}

/// The final Ollama object of an answer.
fn ollama_done(api: Api, requested: &str, finish: &str, usage: Usage, start: Instant) -> Value {
    let mut done = json!({
        "model": requested,
        "created_at": now_rfc3339(),
        "done": true,
        "done_reason": if finish == "length" { "length" } else { "stop" },
        "total_duration": start.elapsed().as_nanos() as u64,
        "prompt_eval_count": usage.tokens.0,
        "eval_count": usage.tokens.1,
    });
    match api {
        Api::OllamaGenerate => done["response"] = json!(""),
        _ => done["message"] = json!({ "role": "assistant", "content": "" }),
    }
    done
}

/// A whole (not streamed) upstream answer as the caller's API object.
pub fn translate_answer(
    api: Api,
    answer: Value,
    requested: &str,
    start: Instant,
) -> (Value, Usage) {
    let usage = usage_of(&answer).unwrap_or_default();
    match api {
        Api::OpenAiChat | Api::OpenAiCompletions => {
            let mut answer = answer;
            answer["model"] = json!(requested);
            (answer, usage)
        }
        Api::OllamaChat | Api::OllamaGenerate => {
            let choice = &answer["choices"][0];
            let finish = choice["finish_reason"].as_str().unwrap_or("stop");
            let content = choice["message"]["content"].as_str().unwrap_or("");
            let mut out = ollama_done(api, requested, finish, usage, start);
            if api == Api::OllamaGenerate {
                out["response"] = json!(content);
            } else {
                out["message"]["content"] = json!(content);
                if let Some(calls) = choice["message"]["tool_calls"]
                    .as_array()
                    .filter(|c| !c.is_empty())
                {
                    out["message"]["tool_calls"] = json!(ollama_tool_calls(calls));
                }
            }
            (out, usage)
        }
    }
}

/// A streamed upstream answer being translated.
struct Stream {
    api: Api,
    response: reqwest::Response,
    requested: String,
    include_usage: bool,
    buffer: Vec<u8>,
    usage: Usage,
    finish: String,
    /// Ollama streams: tool calls gathered from their deltas, by index.
    tool_calls: Vec<Value>,
    observer: Option<Arc<Observer>>,
    start: Instant,
    ended: bool,
}

impl Stream {
    /// The caller's lines for one upstream event (`data: ...`).
    fn event(&mut self, data: &str, out: &mut Vec<u8>) {
        if data == "[DONE]" {
            self.end(out);
            return;
        }
        let Ok(mut chunk) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(usage) = usage_of(&chunk) {
            self.usage = usage;
        }
        let choices_empty = chunk["choices"].as_array().is_none_or(Vec::is_empty);
        if let Some(f) = chunk["choices"][0]["finish_reason"].as_str() {
            self.finish = f.to_owned();
        }
        match self.api {
            Api::OpenAiChat | Api::OpenAiCompletions => {
                if choices_empty && !self.include_usage {
                    return;
                }
                if !self.include_usage
                    && let Some(o) = chunk.as_object_mut()
                {
                    o.remove("usage");
                }
                chunk["model"] = json!(self.requested);
                out.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
            }
            Api::OllamaChat | Api::OllamaGenerate => {
                let delta = &chunk["choices"][0]["delta"];
                for call in delta["tool_calls"].as_array().into_iter().flatten() {
                    let i = call["index"].as_u64().unwrap_or(0) as usize;
                    if self.tool_calls.len() <= i {
                        self.tool_calls.resize(
                            i + 1,
                            json!({ "function": { "name": "", "arguments": "" } }),
                        );
                    }
                    let slot = &mut self.tool_calls[i]["function"];
                    for field in ["name", "arguments"] {
                        if let Some(piece) = call["function"][field].as_str() {
                            let joined = format!("{}{piece}", slot[field].as_str().unwrap_or(""));
                            slot[field] = json!(joined);
                        }
                    }
                }
                let text = delta["content"]
                    .as_str()
                    .or(chunk["choices"][0]["text"].as_str())
                    .unwrap_or("");
                if text.is_empty() {
                    return;
                }
                let mut line =
                    json!({ "model": self.requested, "created_at": now_rfc3339(), "done": false });
                match self.api {
                    Api::OllamaGenerate => line["response"] = json!(text),
                    _ => line["message"] = json!({ "role": "assistant", "content": text }),
                }
                out.extend_from_slice(format!("{line}\n").as_bytes());
            }
        }
    }

    /// The caller's closing lines (once).
    fn end(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        if let Some(observer) = &self.observer {
            observer.set_token_counts(self.usage.tokens.0, self.usage.tokens.1);
        }
        match self.api {
            Api::OpenAiChat | Api::OpenAiCompletions => out.extend_from_slice(b"data: [DONE]\n\n"),
            Api::OllamaChat | Api::OllamaGenerate => {
                if !self.tool_calls.is_empty() {
                    let line = json!({
                        "model": self.requested,
                        "created_at": now_rfc3339(),
                        "message": { "role": "assistant", "content": "", "tool_calls": ollama_tool_calls(&self.tool_calls) },
                        "done": false,
                    });
                    out.extend_from_slice(format!("{line}\n").as_bytes());
                }
                let done = ollama_done(
                    self.api,
                    &self.requested,
                    &self.finish,
                    self.usage,
                    self.start,
                );
                out.extend_from_slice(format!("{done}\n").as_bytes());
            }
        }
    }

    /// The next bytes for the caller; `None` once everything is sent.
    async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if self.ended {
                return None;
            }
            let mut out = Vec::new();
            match self.response.chunk().await {
                Ok(Some(bytes)) => {
                    self.buffer.extend_from_slice(&bytes);
                    while let Some(n) = self.buffer.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = self.buffer.drain(..=n).collect();
                        let line = String::from_utf8_lossy(&line);
                        if let Some(data) = line.trim().strip_prefix("data:") {
                            self.event(data.trim(), &mut out);
                        }
                    }
                }
                // The upstream ended without [DONE] (or broke off): close
                // the caller's stream properly all the same.
                Ok(None) | Err(_) => self.end(&mut out),
            }
            if !out.is_empty() {
                return Some(out);
            }
        }
    }
}

/// The caller's streamed answer from the upstream's event stream.
pub fn translate_stream(
    api: Api,
    response: reqwest::Response,
    requested: &str,
    include_usage: bool,
    observer: Option<Arc<Observer>>,
) -> Response {
    let stream = Stream {
        api,
        response,
        requested: requested.to_owned(),
        include_usage,
        buffer: Vec::new(),
        usage: Usage::default(),
        finish: "stop".to_owned(),
        tool_calls: Vec::new(),
        observer,
        start: Instant::now(),
        ended: false,
    };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        let bytes = s.next().await?;
        Some((Ok::<_, std::io::Error>(bytes), s))
    });
    let content_type = match api {
        Api::OpenAiChat | Api::OpenAiCompletions => "text/event-stream",
        Api::OllamaChat | Api::OllamaGenerate => "application/x-ndjson",
    };
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .expect("static headers")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_chat_becomes_openai_with_tool_ids_and_options() {
        let body = json!({
            "model": "cloud/m",
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                {"role": "tool", "content": "sunny", "tool_name": "get_weather"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
            "options": {"temperature": 0, "num_predict": 5, "seed": 7},
            "stream": false
        });
        let (path, out, stream, _) = translate_request(Api::OllamaChat, &body, "m").unwrap();
        assert_eq!(path, "/chat/completions");
        assert!(!stream);
        assert_eq!(out["model"], "m");
        assert_eq!(out["max_tokens"], 5);
        assert_eq!(out["temperature"], 0);
        assert_eq!(out["messages"][1]["tool_calls"][0]["id"], "call_1_0");
        assert_eq!(
            out["messages"][1]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(out["messages"][2]["tool_call_id"], "call_1_0");
        assert_eq!(out["tools"][0]["function"]["name"], "get_weather");
    }

    #[test]
    fn openai_answers_become_ollama_objects() {
        let answer = json!({
            "choices": [{"message": {"role": "assistant", "content": "", "tool_calls": [
                {"id": "x", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}
            ]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4}
        });
        let (out, usage) = translate_answer(Api::OllamaChat, answer, "cloud/m", Instant::now());
        assert_eq!(usage.tokens, (3, 4));
        assert_eq!(out["model"], "cloud/m");
        assert_eq!(out["done"], true);
        assert_eq!(out["eval_count"], 4);
        assert_eq!(
            out["message"]["tool_calls"][0]["function"]["arguments"]["a"],
            1
        );
    }
}
