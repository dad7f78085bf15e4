//! The thread that owns a loaded model: it loads it, then runs the engine's
//! continuous-batching scheduler ([`engine::scheduler`]) over one paged KV
//! cache, taking a job from the model's queue whenever one of the
//! `HEARTH_NUM_PARALLEL` sequence slots is free. Every step is one forward pass
//! over the rows of all running sequences. Inference never runs on the async
//! reactor.
//!
//! Every job reports through its event channel: `Started` (or an `Error` when
//! it cannot start), the text pieces, then `Done`. A job whose client has gone
//! (its cancel flag set, or its channel closed) is skipped, or stopped at the
//! next step with its KV blocks freed.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::scheduler::{SchedulerConfig, SeqEvent, Sink};
use engine::{EngineError, GenerateResult, Options};
use model::chat::output::{Dialect, OutputParser};
use model::chat::{ChatRequest, ChatTemplate};
use model::tokenizer::Tokenizer;
use model::{LoadOptions, Lora, LoraUse, Model};
use serde_json::json;
use store::{Message, ParamValue, Parameters};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::RequestLimits;
use crate::error::ApiError;
use crate::request::{
    ChatInput, DoneReason, Event, GenerateRequest, Input, PromptInput, RequestOptions, Summary,
    Think, TokenLogprob,
};
use crate::scheduler::{Completion, DEFAULT_NUM_CTX, RunnerState, Scheduler};

mod tools;

use tools::{ChatPrompt, piece_event, with_string_arguments};

/// Positions per block of the paged KV cache.
const BLOCK_LEN: usize = 16;

/// Tokens one batched step runs at most (decoding rows and prompt chunks).
const STEP_TOKENS: usize = 512;

/// The template used when a model has none: ChatML, as llama.cpp falls back to
/// (src/llama-chat.cpp, `LLM_CHAT_TEMPLATE_CHATML`).
const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + \
                      message['content'] + '<|im_end|>' + '\n'}}{% endfor %}\
                      {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
/// ChatML's end of turn: a stop sequence while the fallback is in use.
const CHATML_END: &str = "<|im_end|>";

/// What a runner loads.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The model's short name, for logs.
    pub name: String,
    /// The GGUF weights.
    pub path: PathBuf,
    /// The Modelfile's template, replacing the file's.
    pub template: Option<String>,
    /// The Modelfile's system prompt.
    pub system: Option<String>,
    /// The Modelfile's parameters.
    pub params: Parameters,
    /// The Modelfile's messages, prepended to conversations.
    pub messages: Vec<Message>,
    /// The Modelfile's LoRA adapters, loaded with the model.
    pub adapters: Vec<PathBuf>,
    /// Their default scales, which `POST /lora-adapters` may change while
    /// the model serves.
    pub lora_scales: Arc<Mutex<Vec<f32>>>,
    /// Threads for the forward pass.
    pub threads: Option<usize>,
    /// Sequences served at once.
    pub n_seq: usize,
    /// The context size of the request that loads it.
    pub num_ctx: usize,
    /// `HEARTH_KV_CACHE_MEMORY`: the KV pool's bytes, if set.
    pub kv_cache_memory: Option<u64>,
    /// `HEARTH_KV_CACHE_TYPE`: how the KV pool stores keys and values.
    pub kv_type: model::KvType,
    /// The operator's per-request limits.
    pub limits: RequestLimits,
}

/// One admitted request on its way to a worker.
#[derive(Debug)]
pub struct Job {
    /// The request.
    pub request: GenerateRequest,
    /// Its context size, resolved and checked by the scheduler.
    pub num_ctx: usize,
    /// Where its events go.
    pub events: UnboundedSender<Event>,
    /// Set when the client has gone.
    pub cancel: Arc<AtomicBool>,
    /// When it was admitted.
    pub submitted: Instant,
    /// Whether prompt text may be logged.
    pub log_prompts: bool,
    /// Accounts for the job's end when dropped.
    pub completion: Completion,
}

/// A model with what every request needs besides it.
struct Loaded {
    model: Model,
    /// The model's LoRA adapters: each request runs with all of them at
    /// their default scales unless it names its own (`lora`).
    adapters: Vec<Arc<Lora>>,
    /// The adapters' default scales.
    lora_scales: Arc<Mutex<Vec<f32>>>,
    tokenizer: Tokenizer,
    /// The Modelfile's or the file's template, or ChatML.
    template: ChatTemplate,
    /// The template's family: how its answers hold tool calls and thinking.
    dialect: Dialect,
    fallback_template: bool,
    /// Whether the template takes a fill-in-the-middle `.Suffix`.
    inserts: bool,
    bos_text: String,
    eos_text: String,
    system: Option<String>,
    messages: Vec<Message>,
    params: Parameters,
    limits: RequestLimits,
}

impl Loaded {
    fn load(spec: &LoadSpec) -> Result<Loaded, String> {
        let options = LoadOptions {
            threads: spec.threads,
        };
        let mut model = Model::load_with(&spec.path, &options).map_err(|e| e.to_string())?;
        model
            .set_kv_type(spec.kv_type)
            .map_err(|e| format!("HEARTH_KV_CACHE_TYPE={}: {e}", spec.kv_type))?;
        let adapters = spec
            .adapters
            .iter()
            .map(|p| model.load_lora(p).map(Arc::new).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let md = model.gguf().metadata();
        let tokenizer = Tokenizer::from_metadata(md).map_err(|e| e.to_string())?;
        let file_template = md.opt_str("tokenizer.chat_template").ok().flatten();
        let source = spec.template.as_deref().or(file_template);
        let template = ChatTemplate::new(source.unwrap_or(CHATML))
            .map_err(|e| format!("chat template: {e}"))?;
        let text = |id: Option<u32>| {
            id.and_then(|id| tokenizer.token_text(id))
                .unwrap_or_default()
                .to_owned()
        };
        let (bos_text, eos_text) = (text(tokenizer.bos()), text(tokenizer.eos()));
        Ok(Loaded {
            dialect: Dialect::detect(source.unwrap_or(CHATML)),
            fallback_template: source.is_none(),
            inserts: source.is_some_and(|s| s.contains(".Suffix")),
            template,
            bos_text,
            eos_text,
            system: spec.system.clone(),
            messages: spec.messages.clone(),
            params: spec.params.clone(),
            limits: spec.limits,
            tokenizer,
            adapters,
            lora_scales: Arc::clone(&spec.lora_scales),
            model,
        })
    }

    /// The engine options: defaults, then the Modelfile's parameters, then
    /// the request's options.
    fn options(&self, request: &RequestOptions, num_ctx: usize) -> Result<Options, ApiError> {
        let mut o = Options {
            // Ollama shifts the context when generation fills it.
            context_shift: true,
            ..Options::default()
        };
        for (name, value) in self.params.iter() {
            let text = match value {
                ParamValue::Int(v) => v.to_string(),
                ParamValue::Float(v) => v.to_string(),
                ParamValue::Bool(v) => v.to_string(),
                ParamValue::Strings(v) => {
                    o.stop = v.clone();
                    continue;
                }
            };
            if engine::OPTION_NAMES.contains(&name) {
                // A Modelfile value the engine rejects keeps the default; the
                // store validated its type already.
                let _ = o.set(name, &text);
            }
        }
        let s = &mut o.sampler;
        let r = request;
        s.temperature = r.temperature.unwrap_or(s.temperature);
        s.top_k = r.top_k.map_or(s.top_k, |v| v as usize);
        s.top_p = r.top_p.unwrap_or(s.top_p);
        s.min_p = r.min_p.unwrap_or(s.min_p);
        s.typical_p = r.typical_p.unwrap_or(s.typical_p);
        s.repeat_penalty = r.repeat_penalty.unwrap_or(s.repeat_penalty);
        s.presence_penalty = r.presence_penalty.unwrap_or(s.presence_penalty);
        s.frequency_penalty = r.frequency_penalty.unwrap_or(s.frequency_penalty);
        let n_vocab = self.model.info().n_vocab as u32;
        if let Some(&(id, _)) = r.logit_bias.iter().find(|(id, _)| *id >= n_vocab) {
            return Err(ApiError::bad_request(format!(
                "logit_bias names token {id}, but the model's vocabulary has {n_vocab} tokens \
                 (ids 0 to {})",
                n_vocab - 1
            )));
        }
        s.logit_bias.extend_from_slice(&r.logit_bias);
        if r.ignore_eos == Some(true) {
            s.logit_bias.extend(
                (0..n_vocab)
                    .filter(|&id| self.tokenizer.is_eog(id))
                    .map(|id| (id, f32::NEG_INFINITY)),
            );
        }
        s.mirostat = r.mirostat.map_or(s.mirostat, |v| v as u8);
        s.mirostat_tau = r.mirostat_tau.unwrap_or(s.mirostat_tau);
        s.mirostat_eta = r.mirostat_eta.unwrap_or(s.mirostat_eta);
        if let Some(seed) = r.seed {
            s.seed = u64::try_from(seed).ok();
        }
        if let Some(n) = r.repeat_last_n {
            o.repeat_last_n = n as i32;
        }
        if let Some(n) = r.num_predict {
            o.num_predict = n as i32;
        }
        if let Some(cap) = self.limits.max_num_predict {
            // "Until done" stops at the cap; asking for more is an error.
            if o.num_predict < 0 {
                o.num_predict = cap.min(i32::MAX as usize) as i32;
            } else if o.num_predict as usize > cap {
                return Err(ApiError::bad_request(format!(
                    "num_predict {} is more than this server allows per request ({cap}, \
                     HEARTH_MAX_NUM_PREDICT)",
                    o.num_predict
                )));
            }
        }
        if let Some(n) = r.num_keep {
            o.num_keep = n as usize;
        }
        o.logprobs = r.logprobs;
        o.lora = match &r.lora {
            None => {
                let scales = self
                    .lora_scales
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                self.adapters
                    .iter()
                    .zip(scales.iter())
                    .filter(|(_, scale)| **scale != 0.0)
                    .map(|(lora, &scale)| LoraUse {
                        lora: lora.clone(),
                        scale,
                    })
                    .collect()
            }
            Some(choices) => {
                let mut uses = Vec::new();
                for c in choices {
                    let Some(lora) = self.adapters.get(c.id) else {
                        return Err(ApiError::bad_request(format!(
                            "lora id {} is not an adapter of this model, which has {}",
                            c.id,
                            self.adapters.len()
                        )));
                    };
                    if !c.scale.is_finite() {
                        return Err(ApiError::bad_request(format!(
                            "lora scale {} for id {} is not a number",
                            c.scale, c.id
                        )));
                    }
                    if c.scale != 0.0 {
                        uses.push(LoraUse {
                            lora: lora.clone(),
                            scale: c.scale,
                        });
                    }
                }
                uses
            }
        };
        if let Some(stop) = &r.stop {
            o.stop = stop.clone().into_vec();
        }
        o.stop.retain(|s| !s.is_empty());
        if self.fallback_template {
            o.stop.push(CHATML_END.to_owned());
        }
        o.num_ctx = num_ctx;
        Ok(o)
    }

    /// Renders `messages` through `template` (or the model's) with an open
    /// assistant turn.
    fn render(
        &self,
        messages: Vec<serde_json::Value>,
        template: Option<&str>,
    ) -> Result<String, ApiError> {
        self.render_chat(messages, template, &[], &Think::Default)
    }

    /// [`Loaded::render`] with tools and the thinking flags templates read
    /// (`enable_thinking` for Qwen 3, `thinking` for DeepSeek V3.1 and
    /// Granite, `reasoning_effort` for gpt-oss, `think` for Go templates).
    fn render_chat(
        &self,
        messages: Vec<serde_json::Value>,
        template: Option<&str>,
        tools: &[serde_json::Value],
        think: &Think,
    ) -> Result<String, ApiError> {
        let mut extra = model::chat::runtime_variables(model::chat::local_clock());
        think.insert_variables(&mut extra);
        // FireFunction v2's template reads the tools as pretty JSON text and
        // `datetime`, as llama.cpp passes them; the date only (llama.cpp adds
        // the time of day), so that the prompt, and its cached prefix, stay
        // the same all day.
        let dialect = template.map_or(self.dialect, Dialect::detect);
        if dialect.tools == model::chat::output::ToolSyntax::FireFunctionV2 {
            let functions = serde_json::to_string_pretty(tools).unwrap_or_default();
            extra.insert("functions".into(), functions.into());
            let now = jiff::Timestamp::now().strftime("%b %d %Y");
            extra.insert("datetime".into(), now.to_string().into());
        }
        let request = ChatRequest {
            messages,
            add_generation_prompt: true,
            bos_token: self.bos_text.clone(),
            eos_token: self.eos_text.clone(),
            tools: (!tools.is_empty()).then(|| tools.to_vec()),
            extra,
        };
        let compiled;
        let template = match template {
            Some(source) => {
                compiled = ChatTemplate::new(source).map_err(|e| {
                    ApiError::bad_request(format!("the chat template failed to render: {e}"))
                })?;
                &compiled
            }
            None => &self.template,
        };
        let rendered = template.render(&request);
        // Templates take tool-call arguments as objects (most) or as JSON
        // strings (Functionary v3.2 adds them to text): if one fails on
        // objects, it gets strings, as llama.cpp tries both.
        let rendered = match rendered {
            Err(e) => match with_string_arguments(&request.messages) {
                Some(messages) => template
                    .render(&ChatRequest {
                        messages,
                        ..request
                    })
                    .map_err(|_| e),
                None => Err(e),
            },
            ok => ok,
        };
        rendered
            .map_err(|e| ApiError::bad_request(format!("the chat template failed to render: {e}")))
    }

    /// Tokenizes a prompt: special tokens parsed, BOS added when the model
    /// wants one (and not doubled when the template wrote it).
    fn tokenize(&self, text: &str, add_special: bool) -> Vec<u32> {
        let mut tokens = self.tokenizer.encode(text, add_special, true);
        if let Some(bos) = self.tokenizer.bos()
            && tokens.len() >= 2
            && tokens[0] == bos
            && tokens[1] == bos
        {
            tokens.remove(0);
        }
        tokens
    }

    /// The system prompt and Modelfile messages that open a conversation
    /// without its own system message.
    fn preamble(&self, system: Option<&str>) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        if let Some(system) = system.or(self.system.as_deref()) {
            out.push(json!({"role": "system", "content": system}));
        }
        out.extend(
            self.messages
                .iter()
                .map(|m| json!({"role": m.role, "content": m.content})),
        );
        out
    }

    /// The prompt tokens of a generate request.
    fn prompt_tokens(&self, p: &PromptInput, model: &str) -> Result<Vec<u32>, ApiError> {
        let first = p.context.is_empty();
        let text = if !p.suffix.is_empty() {
            // Fill-in-the-middle renders the prompt and suffix alone, as
            // Ollama does, with a template that takes a suffix.
            let inserts = match &p.template {
                Some(t) => t.contains(".Suffix"),
                None => self.inserts,
            };
            if p.raw || !inserts {
                return Err(ApiError::bad_request(format!(
                    "\"{}\" does not support insert: its template has no suffix \
                     (fill-in-the-middle)",
                    crate::error::truncated(model)
                )));
            }
            let request = ChatRequest {
                messages: vec![json!({"role": "user", "content": p.prompt})],
                add_generation_prompt: true,
                bos_token: self.bos_text.clone(),
                eos_token: self.eos_text.clone(),
                extra: [("suffix".to_owned(), json!(p.suffix))]
                    .into_iter()
                    .collect(),
                ..ChatRequest::default()
            };
            let rendered = match &p.template {
                Some(source) => ChatTemplate::new(source).and_then(|t| t.render(&request)),
                None => self.template.render(&request),
            };
            rendered.map_err(|e| {
                ApiError::bad_request(format!("the chat template failed to render: {e}"))
            })?
        } else if p.raw {
            p.prompt.clone()
        } else {
            let mut messages = if first {
                self.preamble(p.system.as_deref())
            } else {
                Vec::new()
            };
            messages.push(json!({"role": "user", "content": p.prompt}));
            self.render(messages, p.template.as_deref())?
        };
        let mut tokens = p.context.clone();
        tokens.extend(self.tokenize(&text, first));
        let n_vocab = self.model.info().n_vocab;
        if let Some(bad) = p.context.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(ApiError::bad_request(format!(
                "context holds token {bad}, outside the model's vocabulary of {n_vocab}"
            )));
        }
        Ok(tokens)
    }

    /// The prompt tokens of a chat request, and the parser its answer goes
    /// through when it may hold thinking or tool calls. The oldest messages
    /// (after any system message) are dropped while the conversation does
    /// not fit.
    fn chat_tokens(
        &self,
        chat: &ChatInput,
        model_name: &str,
        n_ctx: usize,
        cancel: &AtomicBool,
    ) -> Result<ChatPrompt, ApiError> {
        let template = chat.template.as_deref();
        let dialect = template.map_or(self.dialect, Dialect::detect);
        if !chat.tools.is_empty() && !dialect.takes_tools {
            return Err(ApiError::bad_request(format!(
                "\"{model_name}\" does not support tools: its chat template does not render them"
            )));
        }
        if chat.think.wanted() && !dialect.thinks() {
            return Err(ApiError::bad_request(format!(
                "\"{model_name}\" does not support thinking"
            )));
        }
        let messages = &chat.messages;
        let has_system = messages.first().is_some_and(|m| m["role"] == "system");
        let mut all = if has_system {
            Vec::new()
        } else {
            self.preamble(None)
        };
        all.extend(messages.iter().cloned());
        let fixed = all.iter().take_while(|m| m["role"] == "system").count();
        // The conversation without its `k` oldest messages after the system
        // ones, rendered and tokenized. Fewer messages never render longer,
        // so the fewest to drop is found by bisection: O(log n) renders of a
        // conversation that does not fit, not one per dropped message. A
        // client that has gone stops the search.
        let attempt = |k: usize| -> Result<(String, Vec<u32>), ApiError> {
            if cancel.load(Ordering::Relaxed) {
                return Err(ApiError::bad_request("the client has gone"));
            }
            let kept: Vec<serde_json::Value> = all[..fixed]
                .iter()
                .chain(&all[fixed + k..])
                .cloned()
                .collect();
            let text = self.render_chat(kept, template, &chat.tools, &chat.think)?;
            let tokens = self.tokenize(&text, true);
            Ok((text, tokens))
        };
        let most = all.len().saturating_sub(fixed + 1);
        let (mut text, mut tokens) = attempt(0)?;
        if tokens.len() >= n_ctx && most > 0 {
            // Invariant: dropping `lo` does not fit; dropping `hi` fits, or
            // `hi` is the most that may be dropped (the last message stays).
            let (mut lo, mut hi) = (0, most);
            let mut best = attempt(hi)?;
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                let tried = attempt(mid)?;
                if tried.1.len() < n_ctx {
                    hi = mid;
                    best = tried;
                } else {
                    lo = mid;
                }
            }
            (text, tokens) = best;
        }
        let thinking_open = dialect.prompt_opens_thinking(&text);
        let parser = (chat.parse_calls || dialect.thinks())
            .then(|| OutputParser::new(dialect, chat.parse_calls, thinking_open));
        let constraint = self.tool_constraint(chat, dialect, thinking_open)?;
        Ok(ChatPrompt {
            tokens,
            parser,
            constraint,
        })
    }
}

/// Starts the runner's thread, which loads the model and then serves jobs
/// with `n_seq` sequences; `state` receives the load's outcome.
pub fn spawn(
    spec: LoadSpec,
    jobs: Receiver<Job>,
    state: Arc<Mutex<RunnerState>>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("hearth-model-{}", spec.name))
        .spawn(move || run_runner(spec, jobs, state))
        .map(drop)
}

/// Fails every job still queued with `message`.
fn fail_queued(jobs: &Receiver<Job>, message: &str) {
    while let Ok(job) = jobs.try_recv() {
        let Job {
            events, completion, ..
        } = job;
        // Unlisted before the client hears of the failure.
        drop(completion);
        let _ = events.send(Event::Error(ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            message.to_owned(),
        )));
    }
}

fn run_runner(spec: LoadSpec, jobs: Receiver<Job>, state: Arc<Mutex<RunnerState>>) {
    let loaded = match Loaded::load(&spec) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            tracing::error!(model = %spec.name, "loading failed: {e}");
            let message = format!("model '{}' could not be loaded: {e}", spec.name);
            Scheduler::loaded(&state, Err(message.clone()));
            // Fail what is queued; later submissions see the failure and the
            // closed queue.
            fail_queued(&jobs, &message);
            return;
        }
    };
    Scheduler::loaded(&state, Ok(()));
    tracing::info!(model = %spec.name, "loaded");
    serve_jobs(&spec, &loaded, &jobs, &state);
}

/// The batching scheduler's sizes: a pool of `HEARTH_KV_CACHE_MEMORY` bytes,
/// else with the positions of `n_seq` contexts of the loading request's size
/// (at least the default), shared by all sequences; one sequence may use up
/// to all of it (capped by the training context). `block_bytes`: one block's
/// size.
fn scheduler_config(spec: &LoadSpec, n_ctx_train: usize, block_bytes: usize) -> SchedulerConfig {
    let per_seq = spec.num_ctx.max(DEFAULT_NUM_CTX).min(n_ctx_train.max(1));
    // More than every sequence's whole training context is never used.
    let most = (n_ctx_train.max(1) * spec.n_seq).div_ceil(BLOCK_LEN);
    let n_blocks = match spec.kv_cache_memory {
        Some(bytes) => usize::try_from(bytes / block_bytes.max(1) as u64)
            .unwrap_or(usize::MAX)
            .clamp(1, most),
        None => (per_seq * spec.n_seq).div_ceil(BLOCK_LEN),
    };
    SchedulerConfig {
        block_len: BLOCK_LEN,
        n_blocks,
        step_tokens: STEP_TOKENS,
        max_seqs: spec.n_seq,
        n_ctx: (n_blocks * BLOCK_LEN).min(n_ctx_train.max(1)),
    }
}

/// The step loop: takes jobs while a sequence slot is free (blocking only
/// when nothing runs), steps the scheduler, and returns once the runner is
/// unloaded (the queue's sender dropped and every job done).
fn serve_jobs(
    spec: &LoadSpec,
    loaded: &Arc<Loaded>,
    jobs: &Receiver<Job>,
    state: &Mutex<RunnerState>,
) {
    let config = scheduler_config(
        spec,
        loaded.model.info().n_ctx_train,
        loaded.model.kv_block_bytes(BLOCK_LEN),
    );
    let mut sched =
        match engine::scheduler::Scheduler::new(&loaded.model, &loaded.tokenizer, config) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(model = %spec.name, "allocating the KV cache failed: {e}");
                let message = format!("model '{}' could not allocate its KV cache: {e}", spec.name);
                let job = jobs.recv();
                if let Ok(job) = job {
                    drop(job.completion);
                    let _ = job.events.send(Event::Error(ApiError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        message.clone(),
                    )));
                }
                fail_queued(jobs, &message);
                return;
            }
        };
    let mut open = true;
    // Embedding requests in progress, one input each per turn of the loop.
    let mut embeds: VecDeque<EmbedJob> = VecDeque::new();
    loop {
        while open && sched.n_active() + embeds.len() < spec.n_seq {
            let job = if sched.n_active() == 0 && embeds.is_empty() {
                match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => {
                        open = false;
                        break;
                    }
                }
            } else {
                match jobs.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            };
            Scheduler::taken(state);
            if job.cancel.load(Ordering::Relaxed) {
                continue;
            }
            let load_duration = Scheduler::loaded_at(state).map_or(Duration::ZERO, |t| {
                t.saturating_duration_since(job.submitted)
            });
            start_job(loaded, &mut sched, &mut embeds, job, load_duration);
        }
        if sched.n_active() == 0 && embeds.is_empty() {
            if open {
                continue;
            }
            return;
        }
        if let Some(mut e) = embeds.pop_front() {
            // A client that has gone stops its embeddings here; its
            // completion is dropped with it.
            if e.cancel.load(Ordering::Relaxed) {
                let (done, total) = e.embedder.progress();
                tracing::info!(
                    model = %spec.name,
                    done,
                    total,
                    "embedding request dropped: its client has gone"
                );
            } else {
                match e.embedder.step(&loaded.model, &loaded.tokenizer) {
                    Ok(false) => embeds.push_back(e),
                    Ok(true) => {
                        let EmbedJob {
                            embedder,
                            events,
                            completion,
                            ..
                        } = e;
                        drop(completion);
                        let _ = events.send(embedder.finish());
                    }
                    Err(err) => {
                        drop(e.completion);
                        let _ = e.events.send(Event::Error(err));
                    }
                }
            }
        }
        if sched.n_active() == 0 {
            continue;
        }
        match sched.step() {
            // Nothing could run (waiting for blocks): do not spin.
            Ok(0) => std::thread::sleep(Duration::from_millis(1)),
            Ok(_) => {}
            Err(e) => tracing::error!(model = %spec.name, "a batched step failed: {e}"),
        }
        Scheduler::publish(state, sched.stats());
    }
}

/// An embedding request the runner works through between generation steps.
struct EmbedJob {
    embedder: crate::embed::Embedder,
    events: UnboundedSender<Event>,
    cancel: Arc<AtomicBool>,
    completion: Completion,
}

/// Starts one job: answers a load at once, queues an embedding, else renders and
/// tokenizes its prompt and submits it to the batching scheduler, whose
/// events go to the job's channel.
fn start_job(
    loaded: &Arc<Loaded>,
    sched: &mut engine::scheduler::Scheduler<'_>,
    embeds: &mut VecDeque<EmbedJob>,
    job: Job,
    load_duration: Duration,
) {
    let Job {
        request,
        num_ctx,
        events,
        cancel,
        submitted,
        log_prompts,
        completion,
    } = job;
    let fail = |completion: Completion, e: ApiError| {
        // Account for the job before the client learns it is done, so that a
        // `keep_alive: 0` model is gone from `/api/ps` by then.
        drop(completion);
        let _ = events.send(Event::Error(e));
    };
    let prompt = match &request.input {
        Input::Load => {
            drop(completion);
            let _ = events.send(Event::Done(Box::new(Summary {
                done_reason: DoneReason::Load,
                context: Vec::new(),
                timings: engine::Timings {
                    load_duration,
                    total_duration: submitted.elapsed(),
                    ..Default::default()
                },
                logprobs: Vec::new(),
            })));
            return;
        }
        Input::Embed(e) => {
            let lora = match loaded.options(&request.options, num_ctx) {
                Ok(o) => o.lora,
                Err(e) => return fail(completion, e),
            };
            match crate::embed::Embedder::new(
                &loaded.model,
                &loaded.tokenizer,
                e.clone(),
                num_ctx,
                load_duration,
                submitted,
            ) {
                Ok(mut embedder) => embeds.push_back(EmbedJob {
                    embedder: {
                        embedder.set_lora(lora);
                        embedder
                    },
                    events,
                    cancel,
                    completion,
                }),
                Err(e) => fail(completion, e),
            }
            return;
        }
        Input::Prompt(p) => loaded
            .prompt_tokens(p, &request.model)
            .map(|tokens| ChatPrompt {
                tokens,
                parser: None,
                constraint: None,
            }),
        Input::Chat(chat) => loaded.chat_tokens(chat, &request.model, num_ctx, &cancel),
    };
    let checked = prompt.and_then(
        |ChatPrompt {
             tokens: prompt,
             parser,
             constraint,
         }| {
            let mut options = loaded.options(&request.options, num_ctx)?;
            // The parser reads the family's markers, control tokens among them.
            options.special = parser.is_some();
            if prompt.is_empty() {
                return Err(ApiError::bad_request(
                    "the prompt is empty after tokenization",
                ));
            }
            if let Some(max) = loaded.limits.max_prompt_tokens
                && prompt.len() > max
            {
                return Err(ApiError::bad_request(format!(
                    "the prompt is {} tokens, more than this server allows per request ({max}, \
                     HEARTH_MAX_PROMPT_TOKENS)",
                    prompt.len()
                )));
            }
            if prompt.len() >= num_ctx {
                if request.options.refuse_long_prompt || !options.context_shift || num_ctx < 2 {
                    return Err(ApiError::bad_request(format!(
                        "the prompt is {} tokens, more than the context of {num_ctx} holds; \
                         shorten it or raise num_ctx",
                        prompt.len()
                    )));
                }
                // As Ollama's runner: keep the first num_keep tokens and as many
                // of the last as fit; prompt_eval_count reports what was kept.
                let cut = engine::truncate_prompt(&prompt, num_ctx, options.num_keep);
                tracing::warn!(
                    model = %request.model,
                    prompt_tokens = prompt.len(),
                    kept_tokens = cut.len(),
                    num_ctx,
                    num_keep = options.num_keep,
                    "truncating a prompt longer than the context"
                );
                return Ok((cut, options, parser, constraint));
            }
            Ok((prompt, options, parser, constraint))
        },
    );
    let (prompt, options, parser, tool_constraint) = match checked {
        Ok(v) => v,
        Err(e) => return fail(completion, e),
    };
    // The request's structured output, else the grammar of the tool calls
    // (the APIs refuse a forced call with structured output). Compiled before
    // the job starts, so that a bad schema or grammar is a 400 and not an
    // error inside a 200 stream.
    let constraint = match request
        .options
        .constraint
        .as_ref()
        .or(tool_constraint.as_ref())
        .map(|c| sched.compile(c))
    {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => return fail(completion, engine_error(&e)),
    };
    if log_prompts {
        tracing::info!(model = %request.model, "prompt: {:?}", loaded.tokenizer.decode_lossy(&prompt, false, true));
    }
    if events.send(Event::Started).is_err() {
        return;
    }
    let sink = sink(Finish {
        loaded: loaded.clone(),
        events: events.clone(),
        completion: Some(completion),
        prompt: prompt.clone(),
        submitted,
        load_duration,
        log: log_prompts.then(|| request.model.clone()),
        parser,
    });
    if let Err(e) = sched.submit_constrained(&prompt, options, constraint, Some(cancel), sink) {
        // The sink, and with it the job's completion, is dropped already.
        let _ = events.send(Event::Error(engine_error(&e)));
    }
}

/// What a job's end needs: the pieces of its summary and where it goes.
struct Finish {
    loaded: Arc<Loaded>,
    events: UnboundedSender<Event>,
    completion: Option<Completion>,
    prompt: Vec<u32>,
    submitted: Instant,
    load_duration: Duration,
    /// The model name, when responses are logged.
    log: Option<String>,
    /// Splits the answer into content, thinking and tool calls.
    parser: Option<OutputParser>,
}

/// The scheduler's events for one job, as the job's channel takes them: text
/// pieces (a closed channel cancels the sequence), then the summary or the
/// error, after the job is accounted for.
fn sink(mut f: Finish) -> Sink {
    Box::new(move |event| match event {
        SeqEvent::Text(text) => {
            let events = match &mut f.parser {
                Some(parser) => parser.push(&text).into_iter().map(piece_event).collect(),
                None => vec![Event::Text(text)],
            };
            for event in events {
                if f.events.send(event).is_err() {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
        SeqEvent::Done(result) => {
            if let Some(model) = &f.log {
                tracing::info!(model = %model, "response: {:?}", result.text);
            }
            if let Some(parser) = f.parser.take() {
                for piece in parser.finish() {
                    let _ = f.events.send(piece_event(piece));
                }
            }
            let summary = f.summary(result);
            drop(f.completion.take());
            let _ = f.events.send(Event::Done(Box::new(summary)));
            ControlFlow::Continue(())
        }
        SeqEvent::Error(e) => {
            drop(f.completion.take());
            let _ = f.events.send(Event::Error(engine_error(&e)));
            ControlFlow::Continue(())
        }
    })
}

impl Finish {
    /// The client's summary of a finished generation.
    fn summary(&self, result: GenerateResult) -> Summary {
        let mut timings = result.timings;
        timings.load_duration = self.load_duration;
        timings.total_duration = self.submitted.elapsed();
        let done_reason = match result.done_reason {
            engine::DoneReason::Stop | engine::DoneReason::Cancelled => DoneReason::Stop,
            engine::DoneReason::Length => DoneReason::Length,
        };
        let mut context = self.prompt.clone();
        context.extend_from_slice(&result.tokens);
        let tokenizer = &self.loaded.tokenizer;
        let piece = |id: u32| tokenizer.token_to_piece(id, true).to_vec();
        let logprobs = result
            .logprobs
            .iter()
            .map(|l| TokenLogprob {
                token: piece(l.token),
                logprob: l.logprob,
                top: l.top.iter().map(|&(id, p)| (piece(id), p)).collect(),
            })
            .collect();
        Summary {
            done_reason,
            context,
            timings,
            logprobs,
        }
    }
}

/// An engine failure as the client sees it.
fn engine_error(e: &EngineError) -> ApiError {
    match e {
        EngineError::PromptTooLong { .. }
        | EngineError::ContextFull { .. }
        | EngineError::EmptyPrompt
        | EngineError::Option { .. }
        | EngineError::Constraint(_)
        | EngineError::Chat(_) => ApiError::bad_request(e.to_string()),
        EngineError::Model(_) | EngineError::Sampler(_) | EngineError::Step(_) => {
            ApiError::internal("generating", e)
        }
    }
}
