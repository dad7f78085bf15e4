//! The generation loop: prefill the prompt (reusing the cached prefix), then
//! sample, stream and decode one token at a time until an end-of-generation
//! token, a stop sequence, the token budget, the context limit or cancellation.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use model::sampler::Sampler;
use model::tokenizer::{StreamDecoder, Tokenizer};

use crate::EngineError;
use crate::backend::Backend;
use crate::logprobs::{TokenLogprob, token_logprob};
use crate::options::Options;
use crate::stop::StopMatcher;

/// Prompt tokens per forward call during a prefill; cancellation is checked
/// between calls. A multiple of every architecture's batch size, so splitting a
/// prompt here moves no batch boundary and changes no result.
pub const PREFILL_CHUNK: usize = 256;
const _: () = assert!(
    PREFILL_CHUNK.is_multiple_of(model::arch::llama::N_BATCH)
        && PREFILL_CHUNK.is_multiple_of(model::arch::common::N_BATCH)
);

/// A sequence's backend and the tokens its cache holds, so that a new prompt
/// that extends an earlier one only runs the new part.
#[derive(Debug)]
pub struct Context<B> {
    backend: B,
    /// The tokens at positions `0..backend.n_past()`.
    tokens: Vec<u32>,
}

impl<B: Backend> Context<B> {
    /// A context over a fresh (empty) backend sequence.
    pub fn new(mut backend: B) -> Self {
        backend.truncate(0);
        Self {
            backend,
            tokens: Vec::new(),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The tokens in the cache, oldest first.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Positions the context holds.
    pub fn n_ctx(&self) -> usize {
        self.backend.n_ctx()
    }

    /// Forgets the cache.
    pub fn clear(&mut self) {
        self.backend.truncate(0);
        self.tokens.clear();
    }

    /// Runs `prompt`, reusing the longest cached prefix, and returns the number
    /// of tokens actually evaluated and the last token's logits. At least the
    /// final prompt token is always evaluated, since its logits are needed.
    ///
    /// The new tokens run [`PREFILL_CHUNK`] at a time, and `cancel` turning
    /// true between chunks stops the prefill: the logits are then `None` and
    /// the chunks already run stay cached (a long prompt is not a wait that
    /// Ctrl-C cannot end).
    pub fn prefill(
        &mut self,
        prompt: &[u32],
        cancel: Option<&AtomicBool>,
    ) -> Result<(usize, Option<&[f32]>), EngineError> {
        if prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let n_ctx = self.backend.n_ctx();
        if prompt.len() >= n_ctx {
            return Err(EngineError::PromptTooLong {
                n_prompt: prompt.len(),
                n_ctx,
            });
        }
        let common = self
            .tokens
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len() - 1);
        self.backend.truncate(common);
        self.tokens.truncate(common);
        let new = &prompt[common..];
        let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
        // Every chunk but the last; the last one's logits are the answer.
        let (head, last) = new.split_at((new.len() - 1) / PREFILL_CHUNK * PREFILL_CHUNK);
        for chunk in head.chunks(PREFILL_CHUNK) {
            if cancelled() {
                return Ok((self.tokens.len() - common, None));
            }
            self.backend.forward(chunk)?;
            self.tokens.extend_from_slice(chunk);
        }
        if cancelled() {
            return Ok((self.tokens.len() - common, None));
        }
        let logits = self.backend.forward(last)?;
        self.tokens.extend_from_slice(last);
        Ok((new.len(), Some(logits)))
    }

    /// Runs one generated token and returns its logits.
    pub fn push(&mut self, token: u32) -> Result<&[f32], EngineError> {
        let logits = self.backend.forward(&[token])?;
        self.tokens.push(token);
        Ok(logits)
    }

    /// Ollama's context shift: keeps the first `num_keep` tokens and drops half
    /// of the rest. As in Ollama's runner, `num_keep` is capped below the
    /// context size and at least one token is dropped, so a `num_keep` as large
    /// as the context still lets generation go on. Fails only when fewer than
    /// two tokens are cached.
    pub fn shift(&mut self, num_keep: usize) -> Result<(), EngineError> {
        let n_past = self.tokens.len();
        let keep = num_keep.min(self.backend.n_ctx() - 1).min(n_past);
        let discard = ((n_past - keep) / 2).max(1).min(n_past - keep);
        if discard == 0 {
            return Err(EngineError::ContextFull {
                n_ctx: self.backend.n_ctx(),
            });
        }
        self.backend.shift(keep, discard)?;
        self.tokens.drain(keep..keep + discard);
        Ok(())
    }
}

/// Why generation ended (Ollama's `done_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoneReason {
    /// An end-of-generation token or a stop sequence.
    Stop,
    /// `num_predict` tokens were generated, or (with `num_predict = -2`) the
    /// context is full.
    Length,
    /// The caller cancelled (Ctrl-C, a closed connection).
    Cancelled,
}

impl DoneReason {
    /// The name Ollama's API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            DoneReason::Stop => "stop",
            DoneReason::Length => "length",
            DoneReason::Cancelled => "cancelled",
        }
    }
}

/// Where the time went, as Ollama reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Loading the model (filled in by whoever loaded it).
    pub load_duration: Duration,
    /// Prompt tokens evaluated (cached prefix tokens are not counted).
    pub prompt_eval_count: usize,
    /// Time to evaluate them.
    pub prompt_eval_duration: Duration,
    /// Tokens generated.
    pub eval_count: usize,
    /// Time to generate them (sampling and forward passes).
    pub eval_duration: Duration,
    /// Wall time of the whole request.
    pub total_duration: Duration,
}

impl Timings {
    /// Prompt tokens per second.
    pub fn prompt_eval_rate(&self) -> f64 {
        rate(self.prompt_eval_count, self.prompt_eval_duration)
    }

    /// Generated tokens per second.
    pub fn eval_rate(&self) -> f64 {
        rate(self.eval_count, self.eval_duration)
    }
}

fn rate(count: usize, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        count as f64 / d.as_secs_f64()
    }
}

/// The outcome of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateResult {
    /// The text streamed to the callback, concatenated.
    pub text: String,
    /// The generated tokens, excluding the end-of-generation token.
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub done_reason: DoneReason,
    /// Counts and durations.
    pub timings: Timings,
    /// One entry per token of `tokens` when [`Options::logprobs`] asks for them.
    pub logprobs: Vec<TokenLogprob>,
}

/// Generates a continuation of `prompt` in `ctx`, streaming text pieces to
/// `on_text`. A `Break` from `on_text`, or `cancel` turning true (checked before
/// every token), ends generation with [`DoneReason::Cancelled`].
///
/// Neither end-of-generation tokens nor stop sequences (nor anything after them)
/// reach `on_text`.
///
/// A prompt that does not fit the context is an error, unless
/// [`Options::context_shift`] is set: then it keeps its first `num_keep`
/// tokens and as many of its last ones as fit, as Ollama's runner truncates.
pub fn generate<B: Backend>(
    ctx: &mut Context<B>,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    options: &Options,
    cancel: Option<&AtomicBool>,
    on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Result<GenerateResult, EngineError> {
    generate_constrained(ctx, tokenizer, prompt, options, None, cancel, on_text)
}

/// [`generate`] with each token drawn only from those `constraint` allows
/// (a grammar, see [`crate::constraint`]); the answer ends when the grammar
/// is complete.
pub fn generate_constrained<B: Backend>(
    ctx: &mut Context<B>,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    options: &Options,
    mut constraint: Option<&mut crate::constraint::SeqConstraint>,
    cancel: Option<&AtomicBool>,
    on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Result<GenerateResult, EngineError> {
    let start = Instant::now();
    let truncated;
    let prompt = if prompt.len() >= ctx.n_ctx() && options.context_shift {
        truncated = truncate_prompt(prompt, ctx.n_ctx(), options.num_keep);
        truncated.as_slice()
    } else {
        prompt
    };
    let mut sampler = Sampler::new(options.sampler_params());
    for &t in prompt {
        sampler.accept(t);
    }
    let mut decoder = StreamDecoder::new(tokenizer, options.special);
    let mut stops = StopMatcher::new(&options.stop);
    let mut result = GenerateResult {
        text: String::new(),
        tokens: Vec::new(),
        done_reason: DoneReason::Stop,
        timings: Timings::default(),
        logprobs: Vec::new(),
    };
    let mut emit = |text: &str, result: &mut GenerateResult| {
        if text.is_empty() {
            return ControlFlow::Continue(());
        }
        result.text.push_str(text);
        on_text(text)
    };

    let (n_eval, logits) = ctx.prefill(prompt, cancel)?;
    let prefill_end = Instant::now();
    result.timings.prompt_eval_count = n_eval;
    result.timings.prompt_eval_duration = prefill_end - start;

    let budget_spent = |n: usize| options.num_predict >= 0 && n >= options.num_predict as usize;
    let mut stop_hit = false;
    // `None`: `cancel` turned true during the prefill and stays so; the loop
    // ends before its first sample, so these (empty) logits are never read.
    let mut logits = logits.unwrap_or_default();
    let reason = loop {
        if budget_spent(result.tokens.len()) {
            break DoneReason::Length;
        }
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            break DoneReason::Cancelled;
        }
        let token = match constraint.as_deref_mut().map(|c| c.mask()).transpose()? {
            Some(Some(allowed)) => sampler.sample_allowed(logits, allowed)?,
            _ => sampler.sample(logits)?,
        };
        sampler.accept(token);
        if tokenizer.is_eog(token) {
            break DoneReason::Stop;
        }
        if let Some(c) = constraint.as_deref_mut() {
            c.accept(token, tokenizer.token_to_piece(token, true))?;
        }
        result.tokens.push(token);
        if let Some(top_n) = options.logprobs {
            result.logprobs.push(token_logprob(logits, token, top_n));
        }
        let piece = decoder.push(token);
        let released = stops.push(&piece);
        stop_hit = released.stopped;
        if emit(released.text, &mut result).is_break() {
            break DoneReason::Cancelled;
        }
        if stop_hit || constraint.as_deref().is_some_and(|c| c.is_finished()) {
            break DoneReason::Stop;
        }
        if budget_spent(result.tokens.len()) {
            break DoneReason::Length;
        }
        if ctx.tokens().len() >= ctx.n_ctx() {
            if options.num_predict == -2 {
                break DoneReason::Length;
            }
            if !options.context_shift {
                return Err(EngineError::ContextFull { n_ctx: ctx.n_ctx() });
            }
            ctx.shift(options.num_keep)?;
        }
        logits = ctx.push(token)?;
    };
    // Release what the decoder and the stop matcher still hold, unless a stop
    // sequence ended the text or the caller asked for nothing more. A stop that
    // completes only with the decoder's last bytes still cuts the text.
    if !stop_hit && reason != DoneReason::Cancelled {
        let tail = decoder.finish();
        let released = stops.push(&tail);
        let stopped = released.stopped;
        let flow = emit(released.text, &mut result);
        if !stopped && flow.is_continue() {
            let _ = emit(stops.flush(), &mut result);
        }
    }
    let end = Instant::now();
    result.done_reason = reason;
    result.timings.eval_count = result.tokens.len();
    result.timings.eval_duration = end - prefill_end;
    result.timings.total_duration = end - start;
    Ok(result)
}

/// A prompt too long for an `n_ctx` context cut down as Ollama's runner does
/// when it may truncate: the first `num_keep` tokens, then as many of the last
/// ones as fill the context but one position (the first generated token's;
/// the next one then shifts the context). At least the last prompt token
/// stays. A one-position context is left to [`Context::prefill`]'s error.
pub fn truncate_prompt(prompt: &[u32], n_ctx: usize, num_keep: usize) -> Vec<u32> {
    let room = n_ctx.saturating_sub(1);
    if room == 0 {
        return prompt.to_vec();
    }
    let keep = num_keep.min(room - 1);
    let tail = room - keep;
    let mut truncated = prompt[..keep].to_vec();
    truncated.extend_from_slice(&prompt[prompt.len() - tail..]);
    truncated
}
