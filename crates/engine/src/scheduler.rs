//! Continuous batching: many generations share each forward pass
//! ([`model::Model::forward_paged`]) over one paged KV cache
//! ([`crate::blocks`]), in the manner of vLLM's scheduler and llama.cpp's
//! server slots.
//!
//! Each [`Scheduler::step`] is one pass under a token budget: first one
//! decoding row for every running sequence that has sampled a token, then
//! prompt chunks (the rest of the budget, first come first served), so a long
//! prompt is prefilled a chunk per step while the other streams keep
//! decoding. A waiting request is admitted when a sequence slot is free and
//! the pool has blocks for its whole prompt; its prompt starts from the
//! longest cached prefix of full blocks any earlier request left. When a
//! decoding row finds no free block, the most recently admitted other
//! sequences are preempted: their blocks are freed and they go back to the
//! front of the queue to be recomputed later (mostly from the prefix cache).
//! A cancelled request's blocks are freed at the next step.
//!
//! A constrained sequence ([`crate::constraint`]) samples only from its
//! grammar's mask. The masks of a step's constrained sequences depend only on
//! the tokens they have already taken, so they are computed on a helper
//! thread while the step's forward pass runs; sampling then waits only for
//! whatever of that work outlasts the pass.
//!
//! Sampling, stop sequences, streaming and timings follow
//! [`crate::generate`] token for token. A full context is shifted as Ollama
//! does (keep `num_keep`, drop half of the rest), here by recomputing the
//! kept tokens rather than re-rotating cached keys.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use model::kv_cache::KvPool;
use model::sampler::Sampler;
use model::tokenizer::{StreamDecoder, Tokenizer};
use model::{Batch, Logits, Model, PagedSeq};

use crate::blocks::{BlockManager, SeqBlocks};
use crate::constraint::{Constraint, ConstraintEnv, SeqConstraint};
use crate::generate::{DoneReason, GenerateResult, Timings, truncate_prompt};
use crate::logprobs::token_logprob;
use crate::stop::StopMatcher;
use crate::{EngineError, Options};

/// Sizes of a [`Scheduler`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Positions per KV block (a power of two).
    pub block_len: usize,
    /// Blocks in the pool.
    pub n_blocks: usize,
    /// Tokens one step runs at most: decoding rows and prompt chunks.
    pub step_tokens: usize,
    /// Sequences running at once.
    pub max_seqs: usize,
    /// Positions one sequence may hold (a request's `num_ctx` is capped by it).
    pub n_ctx: usize,
}

/// What a sequence reports to its submitter.
#[derive(Debug)]
pub enum SeqEvent {
    /// A piece of generated text.
    Text(String),
    /// The generation ended; the last event.
    Done(GenerateResult),
    /// The generation failed; the last event.
    Error(EngineError),
}

/// Receives a sequence's events; a `Break` cancels it.
pub type Sink = Box<dyn FnMut(SeqEvent) -> ControlFlow<()> + Send>;

/// Identifies a submitted request.
pub type SeqId = u64;

/// One generation.
struct Seq<'t> {
    id: SeqId,
    options: Options,
    /// Positions this sequence may hold.
    n_ctx: usize,
    cancel: Option<Arc<AtomicBool>>,
    sink: Sink,
    /// Prompt then generated tokens; those past `blocks.n_past()` still to run.
    tokens: Vec<u32>,
    /// Its blocks, while it holds any.
    blocks: Option<SeqBlocks>,
    sampler: Sampler,
    /// The grammar its tokens must follow, if any.
    constraint: Option<SeqConstraint>,
    decoder: StreamDecoder<'t>,
    stops: StopMatcher,
    result: GenerateResult,
    submitted: Instant,
    /// When the first token was sampled.
    prefill_end: Option<Instant>,
    /// Cancelled by its sink or its flag.
    cancelled: bool,
    /// A stop sequence ended the text.
    stop_hit: bool,
    /// The context was shifted: its blocks no longer match its tokens.
    shifted: bool,
}

impl Seq<'_> {
    fn n_past(&self) -> usize {
        self.blocks.as_ref().map_or(0, SeqBlocks::n_past)
    }

    fn pending(&self) -> usize {
        self.tokens.len() - self.n_past()
    }

    fn emit(&mut self, text: &str) -> ControlFlow<()> {
        if text.is_empty() {
            return ControlFlow::Continue(());
        }
        self.result.text.push_str(text);
        (self.sink)(SeqEvent::Text(text.to_owned()))
    }
}

/// One planned row run of a step.
struct Planned {
    /// Index in `running`.
    seq: usize,
    n_past: usize,
    n: usize,
}

/// What [`Scheduler::stats`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Blocks in the KV pool.
    pub blocks_total: usize,
    /// Blocks held by sequences (neither free nor only cached).
    pub blocks_in_use: usize,
    /// Prompt tokens served from the prefix cache, in all.
    pub prefix_hit_tokens: u64,
    /// Prompt tokens looked up in the prefix cache, in all.
    pub prefix_query_tokens: u64,
}

/// Runs every submitted generation to its end, batched.
pub struct Scheduler<'m> {
    model: &'m Model,
    tokenizer: &'m Tokenizer,
    config: SchedulerConfig,
    pool: KvPool,
    blocks: BlockManager,
    batch: Batch,
    waiting: VecDeque<Seq<'m>>,
    running: Vec<Seq<'m>>,
    next_id: SeqId,
    plan: Vec<Planned>,
    n_preempted: usize,
    /// The vocabulary for grammars, built on the first constrained request.
    constraint_env: Option<ConstraintEnv>,
    /// Prompt tokens found in the prefix cache as sequences started.
    prefix_hit_tokens: u64,
    /// Prompt tokens of sequences as they started.
    prefix_query_tokens: u64,
}

impl<'m> Scheduler<'m> {
    /// A scheduler over `model` with a pool of `config.n_blocks` blocks.
    pub fn new(
        model: &'m Model,
        tokenizer: &'m Tokenizer,
        config: SchedulerConfig,
    ) -> Result<Scheduler<'m>, EngineError> {
        Ok(Scheduler {
            pool: model.new_kv_pool(config.block_len, config.n_blocks)?,
            blocks: BlockManager::new(config.n_blocks, config.block_len),
            batch: model.new_batch(config.step_tokens, config.n_ctx)?,
            model,
            tokenizer,
            config,
            waiting: VecDeque::new(),
            running: Vec::new(),
            next_id: 0,
            plan: Vec::new(),
            n_preempted: 0,
            constraint_env: None,
            prefix_hit_tokens: 0,
            prefix_query_tokens: 0,
        })
    }

    /// Blocks free or evictable now.
    pub fn n_available_blocks(&self) -> usize {
        self.blocks.n_available()
    }

    /// Requests not yet finished (waiting or running).
    pub fn n_active(&self) -> usize {
        self.waiting.len() + self.running.len()
    }

    /// The KV pool's occupancy and the prefix cache's hits so far.
    pub fn stats(&self) -> Stats {
        Stats {
            blocks_total: self.config.n_blocks,
            blocks_in_use: self.config.n_blocks - self.blocks.n_available(),
            prefix_hit_tokens: self.prefix_hit_tokens,
            prefix_query_tokens: self.prefix_query_tokens,
        }
    }

    /// Compiles `constraint` against the model's vocabulary, for
    /// [`Scheduler::submit_constrained`]. The vocabulary's trie is built on
    /// the first call and kept. Fails with [`EngineError::Constraint`] for an
    /// invalid schema, grammar or regular expression.
    pub fn compile(&mut self, constraint: &Constraint) -> Result<SeqConstraint, EngineError> {
        let env = match &mut self.constraint_env {
            Some(env) => env,
            empty => empty.insert(ConstraintEnv::new(self.tokenizer)?),
        };
        env.compile(constraint)
    }

    /// Queues a generation of a continuation of `prompt`; its events go to
    /// `sink`. `cancel` turning true ends it at the next step. Fails at once
    /// for an empty prompt, or one that does not fit the context (unless
    /// `options.context_shift` lets it be truncated) or the pool.
    pub fn submit(
        &mut self,
        prompt: &[u32],
        options: Options,
        cancel: Option<Arc<AtomicBool>>,
        sink: Sink,
    ) -> Result<SeqId, EngineError> {
        self.submit_constrained(prompt, options, None, cancel, sink)
    }

    /// [`Scheduler::submit`] with the tokens constrained by a grammar
    /// compiled with [`Scheduler::compile`].
    pub fn submit_constrained(
        &mut self,
        prompt: &[u32],
        options: Options,
        constraint: Option<SeqConstraint>,
        cancel: Option<Arc<AtomicBool>>,
        sink: Sink,
    ) -> Result<SeqId, EngineError> {
        if prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let n_ctx = match options.num_ctx {
            0 => self.config.n_ctx,
            n => n.min(self.config.n_ctx),
        };
        let prompt = if prompt.len() >= n_ctx && options.context_shift {
            truncate_prompt(prompt, n_ctx, options.num_keep)
        } else {
            prompt.to_vec()
        };
        let capacity = self.config.n_blocks * self.config.block_len;
        if prompt.len() >= n_ctx || prompt.len() >= capacity {
            return Err(EngineError::PromptTooLong {
                n_prompt: prompt.len(),
                n_ctx: n_ctx.min(capacity),
            });
        }
        let mut sampler = Sampler::new(options.sampler_params());
        for &t in &prompt {
            sampler.accept(t);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.waiting.push_back(Seq {
            id,
            n_ctx,
            cancel,
            sink,
            tokens: prompt,
            blocks: None,
            sampler,
            constraint,
            decoder: StreamDecoder::new(self.tokenizer, options.special),
            stops: StopMatcher::new(&options.stop),
            options,
            result: GenerateResult {
                text: String::new(),
                tokens: Vec::new(),
                done_reason: DoneReason::Stop,
                timings: Timings::default(),
                logprobs: Vec::new(),
            },
            submitted: Instant::now(),
            prefill_end: None,
            cancelled: false,
            stop_hit: false,
            shifted: false,
        });
        Ok(id)
    }

    /// Cancels request `id`: it ends, and its blocks are freed, at the next
    /// step. Unknown or finished ids are ignored.
    pub fn cancel(&mut self, id: SeqId) {
        for seq in self.running.iter_mut().chain(self.waiting.iter_mut()) {
            if seq.id == id {
                seq.cancelled = true;
            }
        }
    }

    /// Sequences preempted so far (freed and queued for recomputation).
    pub fn n_preempted(&self) -> usize {
        self.n_preempted
    }

    /// Runs one batched forward pass and hands out its tokens. Returns the
    /// rows it ran (0 when there was nothing to do).
    pub fn step(&mut self) -> Result<usize, EngineError> {
        self.reap_cancelled();
        self.admit();
        self.plan_step();
        if self.plan.is_empty() {
            return Ok(0);
        }
        // The constrained sequences that sample this step lend their
        // constraints to the mask thread.
        let mut masking: Vec<(usize, SeqConstraint)> = Vec::new();
        for p in &self.plan {
            let seq = &mut self.running[p.seq];
            if p.n_past + p.n == seq.tokens.len()
                && seq
                    .constraint
                    .as_ref()
                    .is_some_and(SeqConstraint::is_active)
                && let Some(c) = seq.constraint.take()
            {
                masking.push((p.seq, c));
            }
        }
        let steps: Vec<PagedSeq<'_>> = self
            .plan
            .iter()
            .map(|p| {
                let s = &self.running[p.seq];
                PagedSeq {
                    blocks: &s
                        .blocks
                        .as_ref()
                        .expect("planned sequences hold blocks")
                        .table,
                    n_past: p.n_past,
                    tokens: &s.tokens[p.n_past..p.n_past + p.n],
                    logits: (p.n_past + p.n == s.tokens.len()).then_some(Logits::Last),
                    lora: &s.options.lora,
                }
            })
            .collect();
        let rows = steps.iter().map(|s| s.tokens.len()).sum();
        let wants: Vec<bool> = steps.iter().map(|s| s.logits.is_some()).collect();
        let (model, batch, pool) = (self.model, &mut self.batch, &mut self.pool);
        let outcome = if masking.is_empty() {
            model.forward_paged(batch, pool, &steps)
        } else {
            std::thread::scope(|scope| {
                let masks = scope.spawn(|| {
                    for (_, c) in masking.iter_mut() {
                        c.prepare_mask();
                    }
                });
                let outcome = model.forward_paged(batch, pool, &steps);
                // A panic in llguidance leaves the masks to be computed (or
                // fail) at sampling; it does not take the step down.
                let _ = masks.join();
                outcome
            })
        };
        drop(steps);
        for (i, c) in masking {
            self.running[i].constraint = Some(c);
        }
        if let Err(e) = outcome {
            // What was reserved is not committed: end every running sequence
            // (freeing its blocks) rather than go on from an unknown state.
            self.plan.clear();
            let message = e.to_string();
            for seq in std::mem::take(&mut self.running) {
                self.finish(seq, Err(EngineError::Step(message.clone())));
            }
            return Err(e.into());
        }
        let mut finished = Vec::new();
        for (i, p) in std::mem::take(&mut self.plan).into_iter().enumerate() {
            let seq = &mut self.running[p.seq];
            let blocks = seq.blocks.as_mut().expect("planned sequences hold blocks");
            self.blocks
                .commit(blocks, &seq.tokens[p.n_past..p.n_past + p.n]);
            if seq.prefill_end.is_none() {
                seq.result.timings.prompt_eval_count += p.n;
            }
            if wants[i] {
                let logits = self.batch.logits(i);
                if let Some(end) = sample(seq, self.tokenizer, logits) {
                    finished.push((p.seq, end));
                } else if seq.shifted {
                    // Recomputed from its kept tokens at the next step.
                    seq.shifted = false;
                    if let Some(b) = seq.blocks.take() {
                        self.blocks.free(b);
                    }
                }
            }
        }
        // Highest index first, so that the others stay put.
        finished.sort_by_key(|&(i, _)| std::cmp::Reverse(i));
        for (i, end) in finished {
            let seq = self.running.remove(i);
            self.finish(seq, end);
        }
        Ok(rows)
    }

    /// Steps until every submitted request has finished.
    pub fn run_to_end(&mut self) -> Result<(), EngineError> {
        while self.n_active() > 0 {
            self.step()?;
        }
        Ok(())
    }

    /// Ends every cancelled request, freeing its blocks.
    fn reap_cancelled(&mut self) {
        let gone = |s: &Seq<'_>| {
            s.cancelled || s.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed))
        };
        let mut i = 0;
        while i < self.running.len() {
            if gone(&self.running[i]) {
                let seq = self.running.remove(i);
                self.finish(seq, Ok(DoneReason::Cancelled));
            } else {
                i += 1;
            }
        }
        let mut i = 0;
        while i < self.waiting.len() {
            if gone(&self.waiting[i]) {
                let seq = self.waiting.remove(i).expect("index in range");
                self.finish(seq, Ok(DoneReason::Cancelled));
            } else {
                i += 1;
            }
        }
    }

    /// Moves waiting requests, first come first served, into free sequence
    /// slots while the pool has blocks for their whole token list.
    fn admit(&mut self) {
        let mut reserved: usize = self
            .running
            .iter()
            .filter(|s| s.blocks.is_none())
            .map(|s| s.tokens.len().div_ceil(self.config.block_len))
            .sum();
        while self.running.len() < self.config.max_seqs {
            let Some(next) = self.waiting.front() else {
                break;
            };
            let need = next.tokens.len().div_ceil(self.config.block_len) + 1;
            if reserved + need > self.blocks.n_available() {
                break;
            }
            reserved += need;
            let seq = self.waiting.pop_front().expect("front exists");
            self.running.push(seq);
        }
    }

    /// Chooses this step's rows: a decoding row for every sequence with one
    /// token to run, then prompt chunks in arrival order, within the budget.
    fn plan_step(&mut self) {
        self.plan.clear();
        let mut preempted = Vec::new();
        let mut budget = self.config.step_tokens;
        // Decoding rows; a sequence that finds no block preempts later ones.
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let seq = &self.running[i];
            if seq.blocks.is_none() || seq.pending() != 1 {
                i += 1;
                continue;
            }
            match self.reserve(i, 1, true, &mut preempted) {
                Reserved::Yes => {
                    budget -= 1;
                    let n_past = self.running[i].n_past();
                    self.plan.push(Planned {
                        seq: i,
                        n_past,
                        n: 1,
                    });
                    i += 1;
                }
                // Preempted itself: the next sequence is now at `i`.
                Reserved::Preempted => {}
                Reserved::No => i += 1,
            }
        }
        // Prompt chunks (new, preempted or shifted sequences) in arrival
        // order; they preempt only when nothing else could run.
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            if self.plan.iter().any(|p| p.seq == i) {
                i += 1;
                continue;
            }
            let seq = &mut self.running[i];
            let fresh = seq.blocks.is_none();
            if fresh {
                let root = model::LoraUse::cache_key(&seq.options.lora);
                let blocks = self.blocks.start_under(&seq.tokens, root);
                self.prefix_hit_tokens += blocks.n_past() as u64;
                self.prefix_query_tokens += seq.tokens.len() as u64;
                seq.blocks = Some(blocks);
            }
            let n = seq.pending().min(budget);
            if n == 0 {
                i += 1;
                continue;
            }
            let may_preempt = self.plan.is_empty();
            match self.reserve(i, n, may_preempt, &mut preempted) {
                Reserved::Yes => {
                    budget -= n;
                    let n_past = self.running[i].n_past();
                    self.plan.push(Planned { seq: i, n_past, n });
                    i += 1;
                }
                Reserved::Preempted => {}
                Reserved::No => {
                    // A sequence that has not run yet gives back the cached
                    // blocks it took; it starts again when blocks are free.
                    // First come first served: nothing later jumps ahead.
                    if fresh && let Some(b) = self.running[i].blocks.take() {
                        self.blocks.free(b);
                    }
                    break;
                }
            }
        }
        // Preempted sequences go back to the front of the queue, in order.
        for seq in preempted {
            self.waiting.push_front(seq);
        }
    }

    /// Reserves `n` positions for running sequence `i`; while the pool is
    /// short and `may_preempt`, preempts the most recently admitted later
    /// sequence holding blocks, or `i` itself when there is none (freeing its
    /// blocks and moving it to `preempted`, most recent first).
    fn reserve(
        &mut self,
        i: usize,
        n: usize,
        may_preempt: bool,
        preempted: &mut Vec<Seq<'m>>,
    ) -> Reserved {
        loop {
            let blocks = self.running[i]
                .blocks
                .as_mut()
                .expect("a sequence being planned holds blocks");
            if let Ok(copies) = self.blocks.reserve(blocks, n) {
                for (from, to) in copies {
                    self.pool.copy_block(from, to);
                }
                return Reserved::Yes;
            }
            if !may_preempt {
                return Reserved::No;
            }
            let v = (i + 1..self.running.len())
                .rev()
                .find(|&v| self.running[v].blocks.is_some())
                .unwrap_or(i);
            let mut seq = self.running.remove(v);
            if let Some(b) = seq.blocks.take() {
                self.blocks.free(b);
            }
            preempted.push(seq);
            self.n_preempted += 1;
            if v == i {
                return Reserved::Preempted;
            }
        }
    }

    /// Ends `seq`: frees its blocks at once, releases what its decoder and
    /// stop matcher hold (unless a stop sequence or the caller ended it), and
    /// reports the result or the error.
    fn finish(&mut self, mut seq: Seq<'m>, end: Result<DoneReason, EngineError>) {
        if let Some(b) = seq.blocks.take() {
            self.blocks.free(b);
        }
        let reason = match end {
            Ok(reason) => reason,
            Err(e) => {
                let _ = (seq.sink)(SeqEvent::Error(e));
                return;
            }
        };
        if reason != DoneReason::Cancelled && !seq.stop_hit {
            let tail = seq.decoder.finish();
            let released = seq.stops.push(&tail);
            let (stopped, text) = (released.stopped, released.text.to_owned());
            let flow = seq.emit(&text);
            if !stopped && flow.is_continue() {
                let rest = seq.stops.flush().to_owned();
                let _ = seq.emit(&rest);
            }
        }
        let end = Instant::now();
        let prefill_end = seq.prefill_end.unwrap_or(end);
        let t = &mut seq.result.timings;
        t.prompt_eval_duration = prefill_end - seq.submitted;
        t.eval_count = seq.result.tokens.len();
        t.eval_duration = end - prefill_end;
        t.total_duration = end - seq.submitted;
        seq.result.done_reason = reason;
        let result = std::mem::replace(
            &mut seq.result,
            GenerateResult {
                text: String::new(),
                tokens: Vec::new(),
                done_reason: reason,
                timings: Timings::default(),
                logprobs: Vec::new(),
            },
        );
        let _ = (seq.sink)(SeqEvent::Done(result));
    }
}

/// The outcome of [`Scheduler::reserve`].
enum Reserved {
    /// The positions are reserved.
    Yes,
    /// The pool is short and preempting was not allowed.
    No,
    /// The sequence itself was preempted.
    Preempted,
}

/// Samples `seq`'s next token from `logits` and streams it, as
/// [`crate::generate`] does for one token; returns how the sequence ends, if
/// it does.
fn sample(
    seq: &mut Seq<'_>,
    tokenizer: &Tokenizer,
    logits: &[f32],
) -> Option<Result<DoneReason, EngineError>> {
    if seq.prefill_end.is_none() {
        seq.prefill_end = Some(Instant::now());
    }
    let num_predict = seq.options.num_predict;
    let budget_spent = |n: usize| num_predict >= 0 && n >= num_predict as usize;
    if budget_spent(seq.result.tokens.len()) {
        return Some(Ok(DoneReason::Length));
    }
    let mask = match seq.constraint.as_mut().map(SeqConstraint::mask) {
        None => None,
        Some(Ok(mask)) => mask,
        Some(Err(e)) => return Some(Err(e)),
    };
    let sampled = match mask {
        Some(allowed) => seq.sampler.sample_allowed(logits, allowed),
        None => seq.sampler.sample(logits),
    };
    let token = match sampled {
        Ok(t) => t,
        Err(e) => return Some(Err(e.into())),
    };
    seq.sampler.accept(token);
    if tokenizer.is_eog(token) {
        return Some(Ok(DoneReason::Stop));
    }
    if let Some(c) = seq.constraint.as_mut()
        && let Err(e) = c.accept(token, tokenizer.token_to_piece(token, true))
    {
        return Some(Err(e));
    }
    seq.result.tokens.push(token);
    if let Some(top_n) = seq.options.logprobs {
        seq.result
            .logprobs
            .push(token_logprob(logits, token, top_n));
    }
    let piece = seq.decoder.push(token);
    let released = seq.stops.push(&piece);
    let (stopped, text) = (released.stopped, released.text.to_owned());
    seq.stop_hit = stopped;
    if seq.emit(&text).is_break() {
        seq.cancelled = true;
        return Some(Ok(DoneReason::Cancelled));
    }
    if stopped
        || seq
            .constraint
            .as_ref()
            .is_some_and(SeqConstraint::is_finished)
    {
        return Some(Ok(DoneReason::Stop));
    }
    if budget_spent(seq.result.tokens.len()) {
        return Some(Ok(DoneReason::Length));
    }
    if seq.tokens.len() >= seq.n_ctx {
        if seq.options.num_predict == -2 {
            return Some(Ok(DoneReason::Length));
        }
        if !seq.options.context_shift {
            return Some(Err(EngineError::ContextFull { n_ctx: seq.n_ctx }));
        }
        // Ollama's shift, recomputed: keep `num_keep`, drop half the rest.
        let n = seq.tokens.len();
        let keep = seq.options.num_keep.min(seq.n_ctx - 1).min(n);
        let discard = ((n - keep) / 2).max(1).min(n - keep);
        seq.tokens.drain(keep..keep + discard);
        seq.shifted = true;
    }
    seq.tokens.push(token);
    None
}
