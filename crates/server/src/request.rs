//! The internal request every API translates into, and the events a request's
//! response is built from. `api/ollama.rs` (and an OpenAI translation beside
//! it) only map their JSON to a [`GenerateRequest`] and [`Event`]s back to
//! their JSON; everything else is shared.

use std::time::Duration;

use engine::Timings;
use serde::Deserialize;

use crate::config::KeepAlive;
use crate::error::ApiError;

/// The largest `num_ctx` a request may ask for, whatever the model: beyond
/// this the KV cache alone would not fit any machine this runs on.
pub const MAX_NUM_CTX: i64 = 1 << 20;

/// One request for a model.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// The model's name as the client gave it.
    pub model: String,
    /// What to do with it.
    pub input: Input,
    /// Per-request options over the model's parameters.
    pub options: RequestOptions,
    /// How long the model stays loaded afterwards (the server default if `None`).
    pub keep_alive: Option<KeepAlive>,
}

/// What a request asks the model for.
#[derive(Debug, Clone)]
pub enum Input {
    /// Load the model and do nothing else (an empty prompt).
    Load,
    /// Complete a prompt (`/api/generate`).
    Prompt(PromptInput),
    /// Answer a conversation (`/api/chat`); the messages are in the chat
    /// template's shape (`{"role", "content", ...}`).
    Chat(ChatInput),
    /// Embed texts (`/api/embed`, `/api/embeddings`).
    Embed(EmbedInput),
}

/// A conversation to answer.
#[derive(Debug, Clone)]
pub struct ChatInput {
    /// The conversation, oldest first, in the chat template's shape
    /// (`{"role", "content", "tool_calls", "reasoning_content", ...}`).
    pub messages: Vec<serde_json::Value>,
    /// A template replacing the model's.
    pub template: Option<String>,
    /// Tool definitions (OpenAI shape), rendered through the template.
    pub tools: Vec<serde_json::Value>,
    /// Whether the answer is parsed for tool calls (tools offered and not
    /// `tool_choice: none`).
    pub parse_calls: bool,
    /// Whether a call is left to the model (`Auto`: constrained once it
    /// opens one) or forced from the first token.
    pub tool_choice: model::chat::output::ToolChoice,
    /// Whether a forced answer may hold several calls.
    pub parallel_tool_calls: bool,
    /// Whether, and how hard, the model should think.
    pub think: Think,
}

/// `think` (Ollama) or `reasoning_effort` (OpenAI).
pub use model::chat::Think;

/// Ollama's `think`: a boolean or a level.
pub fn think_from_json(v: Option<&serde_json::Value>) -> Result<Think, ApiError> {
    use serde_json::Value;
    match v {
        None | Some(Value::Null) => Ok(Think::Default),
        Some(Value::Bool(true)) => Ok(Think::On),
        Some(Value::Bool(false)) => Ok(Think::Off),
        Some(Value::String(s)) => think_level(s),
        Some(other) => Err(ApiError::bad_request(format!(
            "think {other} is invalid: use true, false, \"low\", \"medium\" or \"high\""
        ))),
    }
}

/// A named thinking effort.
pub fn think_level(s: &str) -> Result<Think, ApiError> {
    Think::level(s).ok_or_else(|| {
        ApiError::bad_request(format!(
            "think level '{s}' is invalid: use low, medium or high"
        ))
    })
}

/// `/api/generate`'s prompt fields.
#[derive(Debug, Clone, Default)]
pub struct PromptInput {
    /// The prompt text.
    pub prompt: String,
    /// A system prompt replacing the model's.
    pub system: Option<String>,
    /// A Jinja template replacing the model's.
    pub template: Option<String>,
    /// Send the prompt as is, without a template.
    pub raw: bool,
    /// Fill-in-the-middle: the text after the insertion point, for templates
    /// with `.Suffix`.
    pub suffix: String,
    /// Tokens of an earlier exchange to continue from (its `context`).
    pub context: Vec<u32>,
}

/// Texts to embed.
#[derive(Debug, Clone)]
pub struct EmbedInput {
    /// The texts.
    pub texts: Vec<String>,
    /// Cut texts longer than the context instead of failing.
    pub truncate: bool,
    /// Scale each embedding to unit length (`/api/embed` does, the legacy
    /// `/api/embeddings` does not).
    pub normalize: bool,
    /// Keep only the first this many dimensions (then normalise again).
    pub dimensions: Option<usize>,
    /// Inputs given as token ids (OpenAI's token arrays), embedded as they
    /// are after `texts`.
    pub token_lists: Vec<Vec<u32>>,
}

/// Ollama's `options`, the fields this server understands. Runner options it
/// has no use for on CPU (`num_gpu`, `use_mmap`, ...) and unknown names are
/// accepted, kept in [`RequestOptions::other`] and ignored with a warning in
/// the log ([`RequestOptions::warn_ignored`]), as Ollama does; a known name
/// with a value of the wrong type is an error naming it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RequestOptions {
    /// Context size in tokens.
    pub num_ctx: Option<i64>,
    /// Most tokens to generate (-1: until done, -2: fill the context).
    pub num_predict: Option<i64>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Top-k cut (0: off).
    pub top_k: Option<i64>,
    /// Nucleus mass.
    pub top_p: Option<f32>,
    /// Min-p cut.
    pub min_p: Option<f32>,
    /// Locally typical mass.
    pub typical_p: Option<f32>,
    /// Repetition penalty.
    pub repeat_penalty: Option<f32>,
    /// Penalty window (-1: the whole context).
    pub repeat_last_n: Option<i64>,
    /// Presence penalty.
    pub presence_penalty: Option<f32>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f32>,
    /// RNG seed (-1: random).
    pub seed: Option<i64>,
    /// Stop sequences (a list, or one string).
    pub stop: Option<Stop>,
    /// Tokens a context shift keeps.
    pub num_keep: Option<i64>,
    /// Threads for the forward pass; applies when this request loads the model.
    pub num_thread: Option<i64>,
    /// Never end at an end-of-generation token: they are banned, as
    /// llama.cpp's `ignore_eos` bans them (for benchmarks).
    pub ignore_eos: Option<bool>,
    /// The model's LoRA adapters to run with, by index, at their scales
    /// (llama-server's `lora`: `[{"id": 0, "scale": 0.5}]`; an adapter not
    /// listed is off). `None`: every adapter at its default scale.
    pub lora: Option<Vec<LoraChoice>>,
    /// Mirostat sampling: 0 off, 1 or 2.
    pub mirostat: Option<i64>,
    /// Mirostat's target surprise.
    pub mirostat_tau: Option<f32>,
    /// Mirostat's learning rate.
    pub mirostat_eta: Option<f32>,
    /// Refuse a prompt longer than the context instead of cutting it: the
    /// OpenAI API's behaviour (`context_length_exceeded`); Ollama's cuts it.
    /// Not one of Ollama's options, so never read from JSON.
    #[serde(skip)]
    pub refuse_long_prompt: bool,
    /// Every other name, ignored.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
    /// Report each generated token's log-probability with this many top
    /// alternatives ([`Summary::logprobs`]). Set by the OpenAI API's
    /// `logprobs`; not one of Ollama's options, so never read from JSON.
    #[serde(skip)]
    pub logprobs: Option<usize>,
    /// Biases added to chosen tokens' logits before sampling (OpenAI's
    /// `logit_bias`; `-inf` bans a token); set by the OpenAI API, never read
    /// from `options`.
    #[serde(skip)]
    pub logit_bias: Vec<(u32, f32)>,
    /// The grammar the output must follow (Ollama's `format`, OpenAI's
    /// `response_format`, llama-server's `grammar` and `json_schema`; see
    /// `api::format`); set by the APIs, never read from `options`.
    #[serde(skip)]
    pub constraint: Option<engine::Constraint>,
}

/// One LoRA adapter a request runs with: its index among the model's
/// adapters and its scale.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraChoice {
    /// Index among the model's adapters (`GET /lora-adapters`).
    pub id: usize,
    /// Scale of its product (0: off).
    pub scale: f32,
}

/// `stop`: Ollama takes a list; one string is accepted too.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One sequence.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Stop {
    /// The sequences.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

/// Ollama's runner options that have no effect here: GPU placement, memory
/// mapping and locking (the weights are always mapped), and options of
/// Ollama's older runners.
const RUNNER_OPTIONS: &[&str] = &[
    "num_gpu",
    "main_gpu",
    "low_vram",
    "use_mmap",
    "use_mlock",
    "numa",
    "num_batch",
    "f16_kv",
    "vocab_only",
    "logits_all",
    "embedding_only",
    "penalize_newline",
    "tfs_z",
    "num_gqa",
    "rope_frequency_base",
    "rope_frequency_scale",
];

impl RequestOptions {
    /// Logs one warning per option this request sets that has no effect:
    /// runner options that do not apply here, and names Ollama does not know.
    pub fn warn_ignored(&self, model: &str) {
        for name in self.other.keys() {
            if RUNNER_OPTIONS.contains(&name.as_str()) {
                tracing::warn!(model, option = %name, "option does not apply to this server; ignored");
            } else {
                tracing::warn!(model, option = %name, "invalid option provided; ignored");
            }
        }
    }

    /// Checks the values that need no model to judge: ranges of counts.
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(n) = self.num_ctx
            && !(1..=MAX_NUM_CTX).contains(&n)
        {
            return Err(ApiError::bad_request(format!(
                "num_ctx {n} is out of range: it must be between 1 and {MAX_NUM_CTX}"
            )));
        }
        if let Some(n) = self.num_predict
            && (n < -2 || n > i64::from(i32::MAX))
        {
            return Err(ApiError::bad_request(format!(
                "num_predict {n} is invalid: use a count of tokens, -1 (until the model stops) \
                 or -2 (until the context is full)"
            )));
        }
        for (name, value) in [
            ("top_k", self.top_k),
            ("num_keep", self.num_keep),
            ("num_thread", self.num_thread),
        ] {
            if let Some(n) = value
                && !(0..=i64::from(i32::MAX)).contains(&n)
            {
                return Err(ApiError::bad_request(format!(
                    "{name} {n} is invalid: it must be a non-negative count"
                )));
            }
        }
        if let Some(n) = self.mirostat
            && !(0..=2).contains(&n)
        {
            return Err(ApiError::bad_request(format!(
                "mirostat {n} is invalid: use 0 (off), 1 or 2"
            )));
        }
        if let Some(n) = self.repeat_last_n
            && !(-1..=MAX_NUM_CTX).contains(&n)
        {
            return Err(ApiError::bad_request(format!(
                "repeat_last_n {n} is invalid: use a count of tokens, 0 (off) or -1 (the whole context)"
            )));
        }
        for (name, value) in [
            ("temperature", self.temperature),
            ("top_p", self.top_p),
            ("min_p", self.min_p),
            ("typical_p", self.typical_p),
            ("repeat_penalty", self.repeat_penalty),
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
            ("mirostat_tau", self.mirostat_tau),
            ("mirostat_eta", self.mirostat_eta),
        ] {
            if value.is_some_and(|v| !v.is_finite()) {
                return Err(ApiError::bad_request(format!(
                    "{name} must be a finite number"
                )));
            }
        }
        Ok(())
    }
}

/// Why a response ended, beyond the engine's reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoneReason {
    /// An end-of-generation token or a stop sequence.
    Stop,
    /// The token budget or the context ran out.
    Length,
    /// The model was loaded and nothing else asked.
    Load,
    /// The model was unloaded.
    Unload,
}

impl DoneReason {
    /// The API's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            DoneReason::Stop => "stop",
            DoneReason::Length => "length",
            DoneReason::Load => "load",
            DoneReason::Unload => "unload",
        }
    }
}

/// The end of a generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Why it ended.
    pub done_reason: DoneReason,
    /// The prompt's tokens and the generated ones: a `context` to continue from.
    pub context: Vec<u32>,
    /// Counts and durations (`load_duration` included).
    pub timings: Timings,
    /// One entry per generated token when [`RequestOptions::logprobs`] asked.
    pub logprobs: Vec<TokenLogprob>,
}

/// A generated token's log-probability, with the most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The token's text (its bytes; a piece of a UTF-8 character is possible).
    pub token: Vec<u8>,
    /// Its natural-log probability under the model.
    pub logprob: f32,
    /// The most likely tokens at this position, most likely first.
    pub top: Vec<(Vec<u8>, f32)>,
}

/// An embedding result.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per input text.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens evaluated over all texts.
    pub prompt_eval_count: usize,
    /// Loading time, if this request loaded the model.
    pub load_duration: Duration,
    /// Wall time of the request.
    pub total_duration: Duration,
}

/// What a running request reports, in order: [`Event::Started`] (or an
/// [`Event::Error`] if it could not start), then [`Event::Text`] pieces, then
/// [`Event::Done`] (or [`Event::Error`] mid-way). An embedding request sends
/// [`Event::Embedded`] instead of the others.
#[derive(Debug, Clone)]
pub enum Event {
    /// The request was accepted by the model and generation begins.
    Started,
    /// The next piece of generated text.
    Text(String),
    /// The next piece of the model's thinking.
    Thinking(String),
    /// A tool call, complete.
    ToolCall(model::chat::output::ToolCall),
    /// Generation ended.
    Done(Box<Summary>),
    /// Embeddings, for an embedding request.
    Embedded(Embeddings),
    /// The request failed.
    Error(ApiError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_out_of_range_counts() {
        let ok = RequestOptions {
            num_predict: Some(-2),
            num_ctx: Some(2048),
            ..RequestOptions::default()
        };
        assert!(ok.validate().is_ok());
        let bad = |o: RequestOptions| o.validate().unwrap_err().message;
        assert!(
            bad(RequestOptions {
                num_predict: Some(-3),
                ..Default::default()
            })
            .starts_with("num_predict -3 is invalid")
        );
        assert!(
            bad(RequestOptions {
                num_ctx: Some(0),
                ..Default::default()
            })
            .starts_with("num_ctx 0 is out of range")
        );
        assert!(
            bad(RequestOptions {
                num_ctx: Some(MAX_NUM_CTX + 1),
                ..Default::default()
            })
            .contains("out of range")
        );
        assert!(
            bad(RequestOptions {
                top_k: Some(-1),
                ..Default::default()
            })
            .starts_with("top_k")
        );
        assert!(
            bad(RequestOptions {
                temperature: Some(f32::NAN),
                ..Default::default()
            })
            .starts_with("temperature")
        );
    }

    #[test]
    fn stop_takes_a_string_or_a_list() {
        let o: RequestOptions = serde_json::from_str(r#"{"stop": "<end>"}"#).unwrap();
        assert_eq!(o.stop.unwrap().into_vec(), ["<end>"]);
        let o: RequestOptions =
            serde_json::from_str(r#"{"stop": ["a", "b"], "num_gpu": 1}"#).unwrap();
        assert_eq!(o.stop.unwrap().into_vec(), ["a", "b"]);
    }
}
