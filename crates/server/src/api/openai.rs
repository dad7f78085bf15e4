//! OpenAI's API (platform.openai.com/docs/api-reference): `/v1/chat/completions`,
//! `/v1/completions`, `/v1/embeddings`, `/v1/models` and `/v1/models/{id}`.
//!
//! Handlers validate the OpenAI request, translate it into the same internal
//! [`GenerateRequest`] the Ollama API uses, and render the job's [`Event`]s as
//! OpenAI objects, streamed as server-sent events (`data: {...}` chunks ending
//! with `data: [DONE]`) or as one object. Errors, including malformed JSON and
//! oversized bodies, use OpenAI's shape through [`OpenAiError`].
//!
//! Differences from OpenAI, all deliberate:
//! - `temperature` and `top_p` default to OpenAI's 1.0 (as Ollama's
//!   compatibility layer does), not to the model's parameters.
//! - `/v1/completions` sends the prompt as is (no chat template) and has no
//!   default token budget (OpenAI stops at 16).
//! - When streaming with logprobs, they arrive all at once in the chunk that
//!   carries `finish_reason`: text pieces and tokens do not align one to one
//!   once stop sequences hold text back.
//! - Structured output: `response_format` (`text`, `json_object`,
//!   `json_schema`) on both chat and completions, and llama-server's `grammar`
//!   (GBNF) and `json_schema` fields beside it ([`super::format`]).
//!   The legacy `functions` are refused with a 400 instead of being ignored.
//! - `logit_bias` also takes llama-server's `[[id, bias], ...]` list, where a
//!   bias of `false` bans the token.
//! - `n` choices are `n` sequences generated side by side; with a `seed`,
//!   choice `i` samples with `seed + i`, so choices differ yet repeat.
//! - `tool_choice` `required` or naming a function constrains the answer to
//!   the model's call syntax with arguments valid under the function's
//!   schema; under `auto` the grammar applies once the model opens a call
//!   (unless structured output constrains the answer already).
//!   `parallel_tool_calls: false` allows one call only where a call is forced.
//! - A streamed tool call comes once the model has finished writing it, in
//!   two `delta.tool_calls` chunks: index, id and name (arguments empty),
//!   then all its arguments.

mod render;
pub mod responses;

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequest, Path, Request, State};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::AppState;
use crate::api::format::OpenAiFormat;
use crate::api::stream::Answer;
use crate::api::tools::{checked_tools, reasoning_effort, template_tool_calls, tool_choice};
use crate::error::{ApiError, OpenAiError};
use crate::json::ApiJson;
use crate::request::{
    ChatInput, EmbedInput, Event, GenerateRequest, Input, PromptInput, RequestOptions, Stop,
};
use crate::scheduler::JobHandle;
use model::chat::output::ToolChoice;
use render::Reply;
pub(crate) use render::new_id;

/// The `/v1` routes, to be nested under `/v1`; unknown paths there get an
/// OpenAI-shaped 404.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/chat/completions", post(chat_completions))
        .route("/completions", post(completions))
        .route("/responses", post(responses::create))
        .route("/messages", post(crate::api::anthropic::messages))
        .route("/embeddings", post(embeddings))
        .route("/models", get(list_models))
        // Model names hold `/` and `:` (`me/mine:v1`): the id is the rest of the path.
        .route("/models/{*id}", get(retrieve_model))
        .fallback(|| async { OpenAiError::from(ApiError::not_found("no such endpoint")) })
        .method_not_allowed_fallback(|| async {
            OpenAiError::from(ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
            ))
        })
}

/// How often an SSE response sends a comment while nothing else comes (a long
/// prefill), so that proxies and clients do not time the connection out.
pub(crate) const SSE_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// The most alternatives `top_logprobs` may ask for (OpenAI's limit).
const MAX_TOP_LOGPROBS: u32 = 20;

/// The most alternatives the legacy completions `logprobs` may ask for.
const MAX_COMPLETION_LOGPROBS: u32 = 5;

/// A JSON body parsed like every API body ([`ApiJson`]), with errors in
/// OpenAI's shape and the field at fault as `param`.
#[derive(Debug, Clone)]
pub struct OpenAiJson<T>(pub T);

impl<S, T> FromRequest<S> for OpenAiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = OpenAiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, OpenAiError> {
        match ApiJson::<T>::from_request(req, state).await {
            Ok(ApiJson(v)) => Ok(OpenAiJson(v)),
            Err(error) => {
                // `json::parse` names the field as "invalid value for field 'x'".
                let param = error
                    .message
                    .strip_prefix("invalid value for field '")
                    .and_then(|rest| rest.split('\'').next())
                    .map(str::to_owned);
                Err(OpenAiError {
                    error,
                    param,
                    code: None,
                })
            }
        }
    }
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    include_usage: Option<bool>,
}

/// The sampling fields shared by chat and completions.
#[derive(Debug, Default)]
struct Sampling {
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_tokens: Option<(&'static str, i64)>,
    stop: Option<Stop>,
    seed: Option<i64>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    n: Option<i64>,
    logit_bias: Option<Value>,
}

impl Sampling {
    /// Checks the ranges OpenAI documents and builds the request's options.
    fn options(self) -> Result<RequestOptions, OpenAiError> {
        let in_range = |name: &str, v: Option<f32>, lo: f32, hi: f32| match v {
            Some(x) if !(lo..=hi).contains(&x) => Err(OpenAiError::invalid_param(
                name,
                format!("{name} {x} is out of range: it must be between {lo} and {hi}"),
            )),
            _ => Ok(()),
        };
        in_range("temperature", self.temperature, 0.0, 2.0)?;
        in_range("top_p", self.top_p, 0.0, 1.0)?;
        in_range("presence_penalty", self.presence_penalty, -2.0, 2.0)?;
        in_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)?;
        if let Some(n) = self.n
            && !(1..=MAX_CHOICES as i64).contains(&n)
        {
            return Err(OpenAiError::invalid_param(
                "n",
                format!("n {n} is out of range: it must be between 1 and {MAX_CHOICES}"),
            ));
        }
        let logit_bias = logit_bias(self.logit_bias.as_ref())?;
        let num_predict = match self.max_tokens {
            None => None,
            Some((name, n)) if !(1..=i64::from(i32::MAX)).contains(&n) => {
                return Err(OpenAiError::invalid_param(
                    name,
                    format!("{name} {n} is invalid: it must be a positive number of tokens"),
                ));
            }
            Some((_, n)) => Some(n),
        };
        if let Some(Stop::Many(list)) = &self.stop
            && list.iter().any(String::is_empty)
        {
            return Err(OpenAiError::invalid_param(
                "stop",
                "stop sequences must not be empty",
            ));
        }
        Ok(RequestOptions {
            temperature: Some(self.temperature.unwrap_or(1.0)),
            top_p: Some(self.top_p.unwrap_or(1.0)),
            num_predict,
            stop: self.stop,
            seed: self.seed,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            refuse_long_prompt: true,
            logit_bias,
            ..RequestOptions::default()
        })
    }
}

/// Most choices (`n`) one request may ask for.
const MAX_CHOICES: usize = 16;

/// Most bias a token may get: OpenAI's range, where -100 bans and 100 all but
/// forces a token.
const MAX_LOGIT_BIAS: f64 = 100.0;

/// `logit_bias`: OpenAI's object of token ids (as strings) to biases, or
/// llama-server's list of `[id, bias]` pairs, where a bias of `false` bans
/// the token.
fn logit_bias(value: Option<&Value>) -> Result<Vec<(u32, f32)>, OpenAiError> {
    let invalid = |message: String| OpenAiError::invalid_param("logit_bias", message);
    let bias = |key: &str, v: &Value| -> Result<(u32, f32), OpenAiError> {
        let id = key.trim().parse::<u32>().map_err(|_| {
            invalid(format!(
                "logit_bias key '{key}' is invalid: keys are token ids"
            ))
        })?;
        match v {
            Value::Bool(false) => Ok((id, f32::NEG_INFINITY)),
            Value::Number(n) => match n.as_f64() {
                Some(b) if b.abs() <= MAX_LOGIT_BIAS => Ok((id, b as f32)),
                _ => Err(invalid(format!(
                    "logit_bias {n} for token {id} is out of range: it must be between \
                     -{MAX_LOGIT_BIAS} and {MAX_LOGIT_BIAS}"
                ))),
            },
            other => Err(invalid(format!(
                "logit_bias for token {id} must be a number, not {other}"
            ))),
        }
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map.iter().map(|(k, v)| bias(k, v)).collect(),
        Some(Value::Array(pairs)) => pairs
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([Value::Number(id), v]) => bias(&id.to_string(), v),
                _ => Err(invalid(format!(
                    "logit_bias entry {pair} is invalid: use [token id, bias]"
                ))),
            })
            .collect(),
        Some(other) => Err(invalid(format!(
            "logit_bias must be an object of token ids to biases, not {other}"
        ))),
    }
}

fn require_model(model: Option<String>) -> Result<String, OpenAiError> {
    match model {
        Some(m) if !m.trim().is_empty() => Ok(m),
        _ => Err(OpenAiError::invalid_param("model", "model is required")),
    }
}

/// `stream_options` is only meaningful with `stream: true`.
fn include_usage(stream: bool, options: Option<StreamOptions>) -> Result<bool, OpenAiError> {
    match options {
        Some(_) if !stream => Err(OpenAiError::invalid_param(
            "stream_options",
            "stream_options is only allowed when stream is true",
        )),
        Some(o) => Ok(o.include_usage.unwrap_or(false)),
        None => Ok(false),
    }
}

/// A store error about the requested model, worded as OpenAI words it.
fn model_error(e: ApiError, model: &str) -> OpenAiError {
    if e.status == axum::http::StatusCode::NOT_FOUND {
        OpenAiError::model_not_found(model)
    } else {
        e.into()
    }
}

/// A message's `content`: a string, or a list of parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Typed parts (`{"type": "text", "text": ...}`).
    Parts(Vec<ContentPart>),
}

/// One part of a message's content.
#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

/// One chat message.
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    role: String,
    content: Option<Content>,
    name: Option<String>,
    tool_calls: Option<Vec<Value>>,
    tool_call_id: Option<String>,
    reasoning_content: Option<String>,
}

/// `POST /v1/chat/completions`'s body.
#[derive(Debug, Deserialize)]
pub struct ChatCompletionBody {
    model: Option<String>,
    messages: Option<Vec<ChatMessage>>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    stop: Option<Stop>,
    seed: Option<i64>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    n: Option<i64>,
    logit_bias: Option<Value>,
    logprobs: Option<bool>,
    top_logprobs: Option<u32>,
    /// Generate past the end-of-sequence token (llama-server's and vLLM's
    /// extension, for benchmarks).
    ignore_eos: Option<bool>,
    lora: Option<Vec<crate::request::LoraChoice>>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    response_format: Option<Value>,
    grammar: Option<Value>,
    json_schema: Option<Value>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    functions: Option<Vec<Value>>,
    function_call: Option<Value>,
    reasoning_effort: Option<String>,
}

/// The constraint a request's structured-output fields ask for.
fn constraint(f: OpenAiFormat<'_>) -> Result<Option<engine::Constraint>, OpenAiError> {
    f.constraint()
        .map_err(|(param, message)| OpenAiError::invalid_param(param, message))
}

/// Refuses the legacy `functions` and `function_call`.
fn refuse_functions(body: &ChatCompletionBody) -> Result<(), OpenAiError> {
    if body.functions.as_ref().is_some_and(|f| !f.is_empty()) || body.function_call.is_some() {
        return Err(OpenAiError::invalid_param(
            if body.function_call.is_some() {
                "function_call"
            } else {
                "functions"
            },
            "the legacy functions and function_call are not supported: use tools and tool_choice",
        ));
    }
    Ok(())
}

/// The messages in the chat template's shape.
fn template_messages(messages: Vec<ChatMessage>) -> Result<Vec<Value>, OpenAiError> {
    if messages.is_empty() {
        return Err(OpenAiError::invalid_param(
            "messages",
            "messages must hold at least one message",
        ));
    }
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.into_iter().enumerate() {
        // OpenAI's newer `developer` role is the system prompt of other models.
        let role = match m.role.as_str() {
            "developer" => "system",
            r @ ("system" | "user" | "assistant" | "tool") => r,
            other => {
                return Err(OpenAiError::invalid_param(
                    &format!("messages[{i}].role"),
                    format!(
                        "messages[{i}].role '{other}' is invalid: use system, developer, user, \
                         assistant or tool"
                    ),
                ));
            }
        };
        let content = match m.content {
            None => String::new(),
            Some(Content::Text(t)) => t,
            Some(Content::Parts(parts)) => {
                let mut texts = Vec::with_capacity(parts.len());
                for (j, part) in parts.into_iter().enumerate() {
                    let param = format!("messages[{i}].content[{j}]");
                    match (part.kind.as_str(), part.text) {
                        ("text", Some(text)) => texts.push(text),
                        ("text", None) => {
                            return Err(OpenAiError::invalid_param(
                                &param,
                                format!("{param} is a text part without text"),
                            ));
                        }
                        ("image_url" | "input_image", _) => {
                            return Err(OpenAiError::invalid_param(
                                &param,
                                "images are not supported: hearth has no vision models yet",
                            ));
                        }
                        (kind, _) => {
                            return Err(OpenAiError::invalid_param(
                                &param,
                                format!("content parts of type '{kind}' are not supported"),
                            ));
                        }
                    }
                }
                texts.join("\n")
            }
        };
        let mut message = json!({"role": role, "content": content});
        if let Some(calls) = m.tool_calls {
            message["tool_calls"] = Value::Array(template_tool_calls(calls));
        }
        if let Some(thinking) = m.reasoning_content.filter(|t| !t.is_empty()) {
            message["reasoning_content"] = Value::String(thinking.clone());
            message["thinking"] = Value::String(thinking);
        }
        if let Some(name) = m.name {
            message["name"] = Value::String(name);
        }
        if let Some(id) = m.tool_call_id {
            message["tool_call_id"] = Value::String(id);
        }
        out.push(message);
    }
    Ok(out)
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<AppState>,
    OpenAiJson(body): OpenAiJson<ChatCompletionBody>,
) -> Result<Response, OpenAiError> {
    refuse_functions(&body)?;
    let model = require_model(body.model.clone())?;
    let constraint = constraint(OpenAiFormat {
        response_format: body.response_format.as_ref(),
        grammar: body.grammar.as_ref(),
        json_schema: body.json_schema.as_ref(),
    })?;
    let stream = body.stream.unwrap_or(false);
    let include_usage = include_usage(stream, body.stream_options)?;
    let logprobs = match (body.logprobs.unwrap_or(false), body.top_logprobs) {
        (_, Some(n)) if n > MAX_TOP_LOGPROBS => {
            return Err(OpenAiError::invalid_param(
                "top_logprobs",
                format!(
                    "top_logprobs {n} is out of range: it must be between 0 and {MAX_TOP_LOGPROBS}"
                ),
            ));
        }
        (false, Some(_)) => {
            return Err(OpenAiError::invalid_param(
                "top_logprobs",
                "top_logprobs needs logprobs set to true",
            ));
        }
        (true, n) => Some(n.unwrap_or(0) as usize),
        (false, None) => None,
    };
    let max_tokens = match (body.max_completion_tokens, body.max_tokens) {
        (Some(n), _) => Some(("max_completion_tokens", n)),
        (None, Some(n)) => Some(("max_tokens", n)),
        (None, None) => None,
    };
    let choices = body.n.map_or(1, |n| n.max(1) as usize);
    let mut options = Sampling {
        temperature: body.temperature,
        top_p: body.top_p,
        max_tokens,
        stop: body.stop,
        seed: body.seed,
        presence_penalty: body.presence_penalty,
        frequency_penalty: body.frequency_penalty,
        n: body.n,
        logit_bias: body.logit_bias,
    }
    .options()?;
    options.logprobs = logprobs;
    options.constraint = constraint;
    options.ignore_eos = body.ignore_eos;
    options.lora = body.lora;
    let messages = template_messages(body.messages.unwrap_or_default())?;
    let tools = checked_tools(body.tools)?;
    let (parse_calls, tool_choice) = tool_choice(body.tool_choice.as_ref(), !tools.is_empty())?;
    if options.constraint.is_some() && parse_calls && tool_choice != ToolChoice::Auto {
        return Err(OpenAiError::invalid_param(
            "tool_choice",
            "a forced tool_choice cannot be combined with structured output (response_format, \
             grammar, json_schema): both constrain the whole answer",
        ));
    }
    let think = reasoning_effort(body.reasoning_effort.as_deref())?;
    let reply = Reply::chat(model.clone(), logprobs.is_some(), include_usage);
    let input = Input::Chat(ChatInput {
        messages,
        template: None,
        tools,
        parse_calls,
        tool_choice,
        parallel_tool_calls: body.parallel_tool_calls.unwrap_or(true),
        think,
    });
    respond(state, reply, model, input, options, stream, choices).await
}

/// A completions `prompt`: text, or token ids.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum CompletionPrompt {
    /// One prompt.
    Text(String),
    /// Token ids of one prompt.
    Tokens(Vec<u32>),
    /// A batch of prompts (only one is supported).
    Texts(Vec<String>),
    /// A batch of token-id prompts (only one is supported).
    TokenLists(Vec<Vec<u32>>),
}

/// `POST /v1/completions`'s body.
#[derive(Debug, Deserialize)]
pub struct CompletionBody {
    model: Option<String>,
    prompt: Option<CompletionPrompt>,
    suffix: Option<String>,
    echo: Option<bool>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_tokens: Option<i64>,
    stop: Option<Stop>,
    seed: Option<i64>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    n: Option<i64>,
    best_of: Option<i64>,
    logit_bias: Option<Value>,
    logprobs: Option<u32>,
    /// Generate past the end-of-sequence token.
    ignore_eos: Option<bool>,
    lora: Option<Vec<crate::request::LoraChoice>>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    response_format: Option<Value>,
    grammar: Option<Value>,
    json_schema: Option<Value>,
}

/// `POST /v1/completions`.
pub async fn completions(
    State(state): State<AppState>,
    OpenAiJson(body): OpenAiJson<CompletionBody>,
) -> Result<Response, OpenAiError> {
    let model = require_model(body.model)?;
    let stream = body.stream.unwrap_or(false);
    let include_usage = include_usage(stream, body.stream_options)?;
    if body.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(OpenAiError::invalid_param(
            "suffix",
            "suffix is not supported: fill-in-the-middle is not implemented",
        ));
    }
    if let Some(b) = body.best_of
        && b != 1
    {
        return Err(OpenAiError::invalid_param(
            "best_of",
            format!("best_of {b} is not supported: only one completion is generated"),
        ));
    }
    let logprobs = match body.logprobs {
        Some(n) if n > MAX_COMPLETION_LOGPROBS => {
            return Err(OpenAiError::invalid_param(
                "logprobs",
                format!(
                    "logprobs {n} is out of range: it must be between 0 and {MAX_COMPLETION_LOGPROBS}"
                ),
            ));
        }
        n => n.map(|n| n as usize),
    };
    let one = |n: usize| {
        if n == 1 {
            Ok(())
        } else {
            Err(OpenAiError::invalid_param(
                "prompt",
                format!("a batch of {n} prompts is not supported: send one prompt per request"),
            ))
        }
    };
    let (text, tokens) = match body.prompt {
        None => (String::new(), Vec::new()),
        Some(CompletionPrompt::Text(t)) => (t, Vec::new()),
        Some(CompletionPrompt::Tokens(t)) => (String::new(), t),
        Some(CompletionPrompt::Texts(mut v)) => {
            one(v.len())?;
            (v.pop().unwrap_or_default(), Vec::new())
        }
        Some(CompletionPrompt::TokenLists(mut v)) => {
            one(v.len())?;
            (String::new(), v.pop().unwrap_or_default())
        }
    };
    if text.is_empty() && tokens.is_empty() {
        return Err(OpenAiError::invalid_param(
            "prompt",
            "prompt is required and must not be empty",
        ));
    }
    let choices = body.n.map_or(1, |n| n.max(1) as usize);
    let mut options = Sampling {
        temperature: body.temperature,
        top_p: body.top_p,
        max_tokens: body.max_tokens.map(|n| ("max_tokens", n)),
        stop: body.stop,
        seed: body.seed,
        presence_penalty: body.presence_penalty,
        frequency_penalty: body.frequency_penalty,
        n: body.n,
        logit_bias: body.logit_bias,
    }
    .options()?;
    options.logprobs = logprobs;
    options.constraint = constraint(OpenAiFormat {
        response_format: body.response_format.as_ref(),
        grammar: body.grammar.as_ref(),
        json_schema: body.json_schema.as_ref(),
    })?;
    options.ignore_eos = body.ignore_eos;
    options.lora = body.lora;
    let echo = body.echo.unwrap_or(false).then(|| text.clone());
    let reply = Reply::completion(model.clone(), logprobs.is_some(), include_usage, echo);
    // Token ids go in as the context of an empty raw prompt: the same path
    // `/api/generate` continues a `context` on.
    let input = Input::Prompt(PromptInput {
        prompt: text,
        raw: true,
        context: tokens,
        ..PromptInput::default()
    });
    respond(state, reply, model, input, options, stream, choices).await
}

/// Submits one job per choice and answers with a stream or one object.
///
/// The `choices` jobs run side by side in the batch; with a `seed`, choice
/// `i` samples with `seed + i`.
async fn respond(
    state: AppState,
    reply: Reply,
    model: String,
    input: Input,
    options: RequestOptions,
    stream: bool,
    choices: usize,
) -> Result<Response, OpenAiError> {
    let mut jobs = Vec::with_capacity(choices);
    for i in 0..choices {
        let mut options = options.clone();
        if let Some(seed) = options.seed.filter(|s| *s >= 0) {
            options.seed = Some(seed.wrapping_add(i as i64));
        }
        let request = GenerateRequest {
            model: model.clone(),
            input: input.clone(),
            options,
            keep_alive: None,
        };
        let job = state
            .scheduler
            .submit(request)
            .await
            .map_err(|e| model_error(e, &model))?;
        jobs.push(job);
    }
    // Every job is queued before waiting on any, so their prompts are
    // evaluated in one batch.
    let mut started_jobs = Vec::with_capacity(choices);
    for mut job in jobs {
        let first = started(&mut job).await?;
        started_jobs.push((job, first));
    }
    if stream {
        let events = render::sse_events(reply, started_jobs);
        Ok(Sse::new(events)
            .keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE))
            .into_response())
    } else {
        let mut results = Vec::with_capacity(choices);
        for (job, first) in started_jobs {
            results.push(collect(job, first).await?);
        }
        Ok(Json(reply.complete(&results)).into_response())
    }
}

/// The whole answer of a started job and its summary.
pub(crate) async fn collect(
    mut job: JobHandle,
    first: Option<Event>,
) -> Result<(Answer, Box<crate::request::Summary>), OpenAiError> {
    let mut answer = Answer::default();
    let mut next = first;
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
            Some(Event::Done(summary)) => return Ok((answer, summary)),
            Some(Event::Error(e)) => return Err(e.into()),
            Some(Event::Embedded(_)) | None => return Err(worker_stopped().into()),
        }
    }
}

fn worker_stopped() -> ApiError {
    ApiError::internal("generating", &"the model worker stopped")
}

/// Waits until the job has started (the prompt fits and generation begins),
/// so that a request that cannot start gets an error status and not a 200
/// stream. Returns an event that came instead of `Started`, if one did.
pub(crate) async fn started(job: &mut JobHandle) -> Result<Option<Event>, OpenAiError> {
    match job.recv().await {
        Some(Event::Started) => Ok(None),
        Some(Event::Error(e)) => Err(e.into()),
        Some(other) => Ok(Some(other)),
        None => Err(worker_stopped().into()),
    }
}

/// `input` of `/v1/embeddings`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    Text(String),
    /// Several texts.
    Texts(Vec<String>),
    /// Token ids of one text.
    Tokens(Vec<u32>),
    /// Token ids of several texts.
    TokenLists(Vec<Vec<u32>>),
}

/// `POST /v1/embeddings`'s body.
#[derive(Debug, Deserialize)]
pub struct EmbeddingsBody {
    model: Option<String>,
    input: Option<EmbeddingInput>,
    encoding_format: Option<String>,
    dimensions: Option<usize>,
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    State(state): State<AppState>,
    OpenAiJson(body): OpenAiJson<EmbeddingsBody>,
) -> Result<Response, OpenAiError> {
    let model = require_model(body.model)?;
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(OpenAiError::invalid_param(
                "encoding_format",
                format!("encoding_format '{other}' is invalid: use float or base64"),
            ));
        }
    };
    let (texts, token_lists) = match body.input {
        None => (Vec::new(), Vec::new()),
        Some(EmbeddingInput::Text(t)) => (vec![t], Vec::new()),
        Some(EmbeddingInput::Texts(v)) => (v, Vec::new()),
        Some(EmbeddingInput::Tokens(t)) => (Vec::new(), vec![t]),
        Some(EmbeddingInput::TokenLists(v)) => (Vec::new(), v),
    };
    if (texts.is_empty() && token_lists.is_empty())
        || texts.iter().any(String::is_empty)
        || token_lists.iter().any(Vec::is_empty)
    {
        return Err(OpenAiError::invalid_param(
            "input",
            "input must be a non-empty string, a list of non-empty strings, or token ids",
        ));
    }
    let request = GenerateRequest {
        model: model.clone(),
        input: Input::Embed(EmbedInput {
            texts,
            // OpenAI refuses over-long input instead of cutting it.
            truncate: false,
            normalize: true,
            dimensions: body.dimensions,
            token_lists,
        }),
        options: RequestOptions::default(),
        keep_alive: None,
    };
    let mut job = state
        .scheduler
        .submit(request)
        .await
        .map_err(|e| model_error(e, &model))?;
    let embedded = match job.recv().await {
        Some(Event::Embedded(e)) => e,
        Some(Event::Error(e)) => return Err(e.into()),
        _ => return Err(ApiError::internal("embedding", &"the model worker stopped").into()),
    };
    Ok(Json(render::embeddings(&model, &embedded, base64)).into_response())
}

/// `GET /v1/models`.
pub async fn list_models(State(state): State<AppState>) -> Result<Json<Value>, OpenAiError> {
    let store = state.scheduler.store().clone();
    let entries = tokio::task::spawn_blocking(move || store.list())
        .await
        .map_err(|e| ApiError::internal("listing models", &e))?
        .map_err(ApiError::from)?;
    let data: Vec<Value> = entries.iter().map(render::model).collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// `GET /v1/models/{id}`.
pub async fn retrieve_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    let Ok(name) = store::ModelName::parse(&id) else {
        return Err(OpenAiError::model_not_found(&id));
    };
    let store = state.scheduler.store().clone();
    let entries = tokio::task::spawn_blocking(move || store.list())
        .await
        .map_err(|e| ApiError::internal("listing models", &e))?
        .map_err(ApiError::from)?;
    entries
        .iter()
        .find(|e| e.name.eq_fold(&name))
        .map(|e| Json(render::model(e)))
        .ok_or_else(|| OpenAiError::model_not_found(&id))
}
