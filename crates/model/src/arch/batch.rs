//! A batch of rows from one or several sequences, and the splitting of a
//! step's sequences into batches of the activation buffers' size.
//!
//! Each sequence contributes one run of consecutive tokens (a [`Segment`]: a
//! prefill chunk, a decoding step or draft tokens to verify); a batch's rows
//! are its segments' rows one after another. A sequence's keys and values are
//! in a cache of its own ([`KvCache`]) or in blocks of the step's [`KvPool`]
//! ([`SeqKv`]). [`forward`] hands the architecture's `forward_batch` batches of
//! at most `n_rows` rows, a long run split across batches, and collects the
//! wanted rows' outputs in sequence order.

use gguf::GgufModel;
use kernels::pool::ThreadPool;

use super::common::{Buffers, Decoder, Mm};
use crate::ModelError;
use crate::kv_cache::{KvCache, KvPool};
use crate::lora::{LoraBatch, LoraUse};

/// Where a sequence's keys and values are.
#[derive(Debug)]
pub enum SeqKv<'k> {
    /// A cache of its own.
    Own(&'k mut KvCache),
    /// The blocks of the step's [`KvPool`] its block table lists.
    Paged(&'k [u32]),
}

/// One sequence's rows in a batch: `n` consecutive tokens at positions
/// `pos0..pos0 + n`, whose keys and values go to (and whose queries attend
/// over) `kv`. A batch's rows are its segments' rows one after another.
#[derive(Debug)]
pub struct Segment<'k> {
    /// The sequence's cache.
    pub kv: SeqKv<'k>,
    /// Positions the sequence may hold (LongRoPE picks its factors by it).
    pub n_ctx: usize,
    /// Position of the segment's first token.
    pub pos0: usize,
    /// Tokens (rows) of the segment.
    pub n: usize,
}

/// What one forward step works with: the mapped file, the threads, the
/// sequences of the batch and the activation buffers.
pub struct Step<'a, 'k> {
    /// The mapped model.
    pub gguf: &'a GgufModel,
    /// Threads for matmuls and attention.
    pub pool: &'a ThreadPool,
    /// The batch's sequences, in row order.
    pub seqs: &'a mut [Segment<'k>],
    /// The pool of the paged sequences' blocks.
    pub kv_pool: Option<&'a mut KvPool>,
    /// The batch's activation buffers.
    pub buf: &'a mut Buffers,
    /// The LoRA adapters of its rows; `None` when no sequence has any.
    pub lora: Option<&'a LoraBatch<'k>>,
}

impl<'a> Step<'a, '_> {
    /// What a projection needs, borrowed apart from the buffers.
    pub fn mm(&self) -> Mm<'a> {
        Mm {
            gguf: self.gguf,
            pool: self.pool,
            lora: self.lora,
            rows: None,
        }
    }
}

/// The rows a batch must produce: logits (`n_vocab` each) or, with `hidden`, the
/// normed hidden states (`n_embd` each) of the batch rows in `buf.out_rows`,
/// one after another in `dest`.
pub struct Out<'a> {
    /// Where the rows go.
    pub dest: &'a mut [f32],
    /// Hidden states instead of logits.
    pub hidden: bool,
}

/// Which rows of a sequence's tokens a step returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// None (a prefill chunk that is not the prompt's end).
    Nothing,
    /// The last token's.
    Last,
    /// Every token's.
    All,
}

/// One sequence's part of a step: `tokens` at positions `pos0..` into `kv`.
#[derive(Debug)]
pub struct SeqRows<'k> {
    /// The sequence's cache.
    pub kv: SeqKv<'k>,
    /// Positions the sequence may hold.
    pub n_ctx: usize,
    /// Position of the first token.
    pub pos0: usize,
    /// Tokens to run.
    pub tokens: &'k [u32],
    /// Which of their outputs to return.
    pub want: Want,
    /// The LoRA adapters it runs with (none: the base model).
    pub lora: &'k [LoraUse],
}

impl SeqRows<'_> {
    /// Output rows this sequence produces.
    pub fn n_out(&self) -> usize {
        match self.want {
            Want::Nothing => 0,
            Want::Last => 1,
            Want::All => self.tokens.len(),
        }
    }
}

/// Runs the rows of every sequence in `seqs` through `model`, in batches of at
/// most `buf.n_rows` rows: a batch takes the sequences' tokens in order, a long
/// one split across batches. The wanted rows' outputs (logits, `n_vocab` each,
/// or with `hidden` the normed hidden states, `n_embd` each) go to `out` one
/// after another in the order of `seqs`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    model: &dyn Decoder,
    gguf: &GgufModel,
    pool: &ThreadPool,
    mut kv_pool: Option<&mut KvPool>,
    buf: &mut Buffers,
    seqs: &mut [SeqRows<'_>],
    hidden: bool,
    out: &mut [f32],
) -> Result<(), ModelError> {
    let d = model.dims();
    let width = if hidden { d.n_embd } else { d.n_vocab };
    let cap = buf.n_rows;
    let (mut seq, mut done, mut out_at) = (0, 0, 0);
    let any_lora = seqs.iter().any(|s| !s.lora.is_empty());
    while seq < seqs.len() {
        buf.tokens.clear();
        buf.out_rows.clear();
        let mut segments = Vec::new();
        let mut adapters: Vec<(usize, &[LoraUse])> = Vec::new();
        for s in seqs[seq..].iter_mut() {
            let rows = buf.tokens.len();
            if rows == cap {
                break;
            }
            let take = (cap - rows).min(s.tokens.len() - done);
            buf.tokens.extend_from_slice(&s.tokens[done..done + take]);
            let ends = done + take == s.tokens.len();
            match s.want {
                Want::All => buf.out_rows.extend(rows..rows + take),
                Want::Last if ends => buf.out_rows.push(rows + take - 1),
                _ => {}
            }
            segments.push(Segment {
                kv: match &mut s.kv {
                    SeqKv::Own(kv) => SeqKv::Own(kv),
                    SeqKv::Paged(blocks) => SeqKv::Paged(blocks),
                },
                n_ctx: s.n_ctx,
                pos0: s.pos0 + done,
                n: take,
            });
            if any_lora {
                adapters.push((take, s.lora));
            }
            if !ends {
                done += take;
                break;
            }
            done = 0;
            seq += 1;
        }
        let n_out = buf.out_rows.len();
        let tokens = std::mem::take(&mut buf.tokens);
        let lora = LoraBatch::new(adapters, &mut buf.lora);
        let result = {
            let mut step = Step {
                gguf,
                pool,
                seqs: &mut segments,
                kv_pool: kv_pool.as_deref_mut(),
                buf,
                lora: lora.as_ref(),
            };
            let dest = (n_out > 0).then(|| Out {
                dest: &mut out[out_at * width..(out_at + n_out) * width],
                hidden,
            });
            model.forward_batch(&mut step, &tokens, dest)
        };
        buf.tokens = tokens;
        if let Some(lora) = lora {
            buf.lora = lora.into_scratch();
        }
        result?;
        out_at += n_out;
    }
    Ok(())
}
