//! Ollama's inference endpoints (docs/api.md): `/api/generate`, `/api/chat`,
//! `/api/embed` and the legacy `/api/embeddings`. Each handler validates the
//! Ollama request, translates it into a [`GenerateRequest`], and renders the
//! job's [`Event`]s back as Ollama's NDJSON stream or single object.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::api::format;
use crate::api::stream::{self, Shape};
use crate::api::tools::{check_tool, template_tool_calls};
use crate::config::KeepAlive;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::request::{
    ChatInput, EmbedInput, Event, GenerateRequest, Input, PromptInput, RequestOptions,
};

/// A field whose JSON `null` means its default, as Go's decoder treats it
/// (clients send `"options": null`).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// `keep_alive`: seconds as a number, or a duration string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KeepAliveJson {
    /// Seconds (negative: forever).
    Seconds(f64),
    /// `"5m"`, `"1h"`, `"-1"`, `"0"`.
    Text(String),
}

impl KeepAliveJson {
    /// The parsed value.
    pub fn parse(&self) -> Result<KeepAlive, ApiError> {
        match self {
            KeepAliveJson::Seconds(s) => KeepAlive::from_secs_f64(*s),
            KeepAliveJson::Text(t) => KeepAlive::parse(t),
        }
        .map_err(ApiError::bad_request)
    }
}

fn keep_alive(k: &Option<KeepAliveJson>) -> Result<Option<KeepAlive>, ApiError> {
    k.as_ref().map(KeepAliveJson::parse).transpose()
}

/// `POST /api/generate`'s body.
#[derive(Debug, Deserialize)]
pub struct GenerateBody {
    #[serde(default, deserialize_with = "nullable")]
    model: String,
    #[serde(default, deserialize_with = "nullable")]
    prompt: String,
    #[serde(default, deserialize_with = "nullable")]
    suffix: String,
    system: Option<String>,
    template: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    raw: bool,
    context: Option<Vec<u32>>,
    images: Option<Vec<String>>,
    format: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    options: RequestOptions,
    stream: Option<bool>,
    keep_alive: Option<KeepAliveJson>,
    think: Option<Value>,
}

/// `POST /api/chat`'s body.
#[derive(Debug, Deserialize)]
pub struct ChatBody {
    #[serde(default, deserialize_with = "nullable")]
    model: String,
    #[serde(default, deserialize_with = "nullable")]
    messages: Vec<ChatMessage>,
    tools: Option<Vec<Value>>,
    format: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    options: RequestOptions,
    stream: Option<bool>,
    keep_alive: Option<KeepAliveJson>,
    think: Option<Value>,
    template: Option<String>,
}

/// One chat message.
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    role: String,
    #[serde(default, deserialize_with = "nullable")]
    content: String,
    images: Option<Vec<String>>,
    tool_calls: Option<Vec<Value>>,
    tool_name: Option<String>,
    thinking: Option<String>,
}

/// The checks shared by generate and chat: fields that need features hearth
/// does not have yet are refused, never ignored.
fn refuse_unsupported(model: &str) -> Result<(), ApiError> {
    if model.trim().is_empty() {
        return Err(ApiError::bad_request("model is required"));
    }
    Ok(())
}

fn refuse_images(images: &Option<Vec<String>>) -> Result<(), ApiError> {
    if images.as_ref().is_some_and(|i| !i.is_empty()) {
        return Err(ApiError::bad_request(
            "images are not supported: hearth has no vision models yet",
        ));
    }
    Ok(())
}

/// `POST /api/generate`.
pub async fn generate(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<GenerateBody>,
) -> Result<Response, ApiError> {
    refuse_unsupported(&body.model)?;
    if crate::request::think_from_json(body.think.as_ref())?.wanted() {
        return Err(ApiError::bad_request(
            "think is not supported on /api/generate yet: use /api/chat",
        ));
    }
    refuse_images(&body.images)?;
    let mut options = body.options;
    options.constraint = format::ollama(body.format.as_ref())?;
    let keep_alive = keep_alive(&body.keep_alive)?;
    let streaming = body.stream.unwrap_or(true);
    let shape = Shape::Generate {
        model: body.model.clone(),
    };
    if body.prompt.is_empty() && body.context.as_ref().is_none_or(Vec::is_empty) {
        if keep_alive.is_some_and(KeepAlive::is_zero) {
            state.scheduler.unload(&body.model).await?;
            return Ok(stream::unloaded(&shape).into_response());
        }
        let input = Input::Load;
        return run(state, shape, body.model, input, options, keep_alive, false).await;
    }
    let input = Input::Prompt(PromptInput {
        prompt: body.prompt,
        system: body.system,
        template: body.template,
        raw: body.raw,
        suffix: body.suffix,
        context: body.context.unwrap_or_default(),
    });
    run(
        state, shape, body.model, input, options, keep_alive, streaming,
    )
    .await
}

/// `POST /api/chat`.
pub async fn chat(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ChatBody>,
) -> Result<Response, ApiError> {
    refuse_unsupported(&body.model)?;
    let mut options = body.options;
    options.constraint = format::ollama(body.format.as_ref())?;
    let think = crate::request::think_from_json(body.think.as_ref())?;
    let tools = body.tools.unwrap_or_default();
    for (i, tool) in tools.iter().enumerate() {
        check_tool(i, tool)?;
    }
    let mut messages = Vec::with_capacity(body.messages.len());
    for (i, m) in body.messages.into_iter().enumerate() {
        if !matches!(m.role.as_str(), "system" | "user" | "assistant" | "tool") {
            return Err(ApiError::bad_request(format!(
                "messages[{i}].role '{}' is invalid: use system, user, assistant or tool",
                m.role
            )));
        }
        refuse_images(&m.images)?;
        let mut message = json!({"role": m.role, "content": m.content});
        if let Some(calls) = m.tool_calls {
            message["tool_calls"] = Value::Array(template_tool_calls(calls));
        }
        if let Some(name) = m.tool_name {
            message["name"] = Value::String(name.clone());
            message["tool_name"] = Value::String(name);
        }
        if let Some(thinking) = m.thinking.filter(|t| !t.is_empty()) {
            message["reasoning_content"] = Value::String(thinking.clone());
            message["thinking"] = Value::String(thinking);
        }
        messages.push(message);
    }
    let keep_alive = keep_alive(&body.keep_alive)?;
    let shape = Shape::Chat {
        model: body.model.clone(),
    };
    if messages.is_empty() {
        if keep_alive.is_some_and(KeepAlive::is_zero) {
            state.scheduler.unload(&body.model).await?;
            return Ok(stream::unloaded(&shape).into_response());
        }
        return run(
            state,
            shape,
            body.model,
            Input::Load,
            options,
            keep_alive,
            false,
        )
        .await;
    }
    let input = Input::Chat(ChatInput {
        messages,
        template: body.template,
        parse_calls: !tools.is_empty(),
        tool_choice: model::chat::output::ToolChoice::Auto,
        parallel_tool_calls: true,
        tools,
        think,
    });
    let streaming = body.stream.unwrap_or(true);
    run(
        state, shape, body.model, input, options, keep_alive, streaming,
    )
    .await
}

/// Submits the job and answers with its events.
async fn run(
    state: AppState,
    shape: Shape,
    model: String,
    input: Input,
    options: RequestOptions,
    keep_alive: Option<KeepAlive>,
    streaming: bool,
) -> Result<Response, ApiError> {
    let request = GenerateRequest {
        model,
        input,
        options,
        keep_alive,
    };
    let job = state.scheduler.submit(request).await?;
    if streaming {
        stream::ndjson(shape, job).await
    } else {
        stream::collect(shape, job)
            .await
            .map(IntoResponse::into_response)
    }
}

/// `input` of `/api/embed`: one text or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EmbedTexts {
    /// One text.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `POST /api/embed`'s body.
#[derive(Debug, Deserialize)]
pub struct EmbedBody {
    #[serde(default, deserialize_with = "nullable")]
    model: String,
    input: Option<EmbedTexts>,
    truncate: Option<bool>,
    dimensions: Option<usize>,
    #[serde(default, deserialize_with = "nullable")]
    options: RequestOptions,
    keep_alive: Option<KeepAliveJson>,
}

/// `POST /api/embeddings`'s (legacy) body.
#[derive(Debug, Deserialize)]
pub struct EmbeddingsBody {
    #[serde(default, deserialize_with = "nullable")]
    model: String,
    #[serde(default, deserialize_with = "nullable")]
    prompt: String,
    #[serde(default, deserialize_with = "nullable")]
    options: RequestOptions,
    keep_alive: Option<KeepAliveJson>,
}

async fn embed_texts(
    state: &AppState,
    model: String,
    input: EmbedInput,
    options: RequestOptions,
    keep_alive: Option<KeepAlive>,
) -> Result<crate::request::Embeddings, ApiError> {
    let request = GenerateRequest {
        model,
        input: Input::Embed(input),
        options,
        keep_alive,
    };
    let mut job = state.scheduler.submit(request).await?;
    match job.recv().await {
        Some(Event::Embedded(e)) => Ok(e),
        Some(Event::Error(e)) => Err(e),
        Some(other) => Err(ApiError::internal(
            "embedding",
            &format!("unexpected event {other:?}"),
        )),
        None => Err(ApiError::internal("embedding", &"the model worker stopped")),
    }
}

/// `POST /api/embed`.
pub async fn embed(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EmbedBody>,
) -> Result<Response, ApiError> {
    if body.model.trim().is_empty() {
        return Err(ApiError::bad_request("model is required"));
    }
    let texts = match body.input {
        None => Vec::new(),
        Some(EmbedTexts::One(s)) => vec![s],
        Some(EmbedTexts::Many(v)) => v,
    };
    let keep_alive = keep_alive(&body.keep_alive)?;
    let input = EmbedInput {
        texts,
        truncate: body.truncate.unwrap_or(true),
        normalize: true,
        dimensions: body.dimensions,
        token_lists: Vec::new(),
    };
    let e = embed_texts(&state, body.model.clone(), input, body.options, keep_alive).await?;
    Ok(axum::Json(json!({
        "model": body.model,
        "embeddings": e.vectors,
        "total_duration": e.total_duration.as_nanos() as u64,
        "load_duration": e.load_duration.as_nanos() as u64,
        "prompt_eval_count": e.prompt_eval_count,
    }))
    .into_response())
}

/// `POST /api/embeddings` (legacy: one prompt, not normalised).
pub async fn embeddings(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EmbeddingsBody>,
) -> Result<Response, ApiError> {
    if body.model.trim().is_empty() {
        return Err(ApiError::bad_request("model is required"));
    }
    let keep_alive = keep_alive(&body.keep_alive)?;
    let texts = if body.prompt.is_empty() {
        Vec::new()
    } else {
        vec![body.prompt]
    };
    let input = EmbedInput {
        texts,
        truncate: true,
        normalize: false,
        dimensions: None,
        token_lists: Vec::new(),
    };
    let e = embed_texts(&state, body.model, input, body.options, keep_alive).await?;
    let embedding = e.vectors.into_iter().next().unwrap_or_default();
    Ok(axum::Json(json!({ "embedding": embedding })).into_response())
}
