//! Perplexity over chunks of a text, llama-perplexity's method (see the
//! module overview in `eval`).

use std::time::{Duration, Instant};

use model::Model;

use super::{EvalError, for_each_chunk, nll};

/// How to run [`perplexity`].
#[derive(Clone, Debug)]
pub struct PerplexityOptions {
    /// Tokens per chunk (llama-perplexity's `-c`, default 512).
    pub n_ctx: usize,
    /// At most this many chunks (`--chunks`); all that fit by default.
    pub max_chunks: Option<usize>,
    /// Position buckets for the quality-over-context report.
    pub n_buckets: usize,
    /// BOS replaces each chunk's first token (the model's `add_bos`).
    pub bos: Option<u32>,
}

/// Reported after each chunk.
#[derive(Clone, Copy, Debug)]
pub struct ChunkProgress {
    /// Chunks done.
    pub done: usize,
    /// Chunks in all.
    pub n_chunks: usize,
    /// Perplexity over the chunks done (llama-perplexity's `[i]x` values).
    pub ppl: f64,
    /// Time since the start.
    pub elapsed: Duration,
}

/// Perplexity over the positions `start..end` of every chunk.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionBucket {
    /// First position (predicting token `start + 1`).
    pub start: usize,
    /// One past the last position.
    pub end: usize,
    /// Predictions counted.
    pub count: usize,
    /// `exp` of their mean negative log-likelihood.
    pub ppl: f64,
}

/// What [`perplexity`] measured.
#[derive(Clone, Debug)]
pub struct PerplexityReport {
    /// Tokens in the text (BOS included).
    pub n_tokens: usize,
    /// Chunk length.
    pub n_ctx: usize,
    /// Chunks evaluated.
    pub n_chunks: usize,
    /// Tokens scored (`n_chunks * (n_ctx - n_ctx/2 - 1)`).
    pub n_scored: usize,
    /// llama-perplexity's final estimate.
    pub ppl: f64,
    /// Its standard error (`+/-`).
    pub ppl_uncertainty: f64,
    /// Mean negative log-likelihood per scored token (nats).
    pub nll: f64,
    /// Running perplexity after each chunk.
    pub chunk_ppl: Vec<f64>,
    /// Perplexity by position in the chunk, over all positions.
    pub by_position: Vec<PositionBucket>,
    /// Wall time of the forward passes and scoring.
    pub elapsed: Duration,
}

/// Scores `tokens` (already tokenized, BOS first if the model adds one) in
/// chunks of `options.n_ctx`, reporting each chunk to `progress`.
pub fn perplexity(
    model: &Model,
    tokens: &[u32],
    options: &PerplexityOptions,
    progress: &mut dyn FnMut(&ChunkProgress),
) -> Result<PerplexityReport, EvalError> {
    let n_ctx = options.n_ctx;
    if n_ctx < 4 {
        return Err(EvalError::Invalid(format!(
            "a context of {n_ctx} tokens is too small to score (at least 4)"
        )));
    }
    if tokens.len() < 2 * n_ctx {
        return Err(EvalError::TooFewTokens {
            n_tokens: tokens.len(),
            n_ctx,
            needed: 2 * n_ctx,
        });
    }
    if options.max_chunks == Some(0) {
        return Err(EvalError::Invalid("--chunks must be at least 1".into()));
    }
    let n_vocab = model.info().n_vocab;
    let n_chunks = (tokens.len() / n_ctx).min(options.max_chunks.unwrap_or(usize::MAX));
    let first = n_ctx / 2;
    let n_buckets = options.n_buckets.clamp(1, n_ctx - 1);
    // Bucket b holds positions [b * (n_ctx-1) / n_buckets, (b+1) * ...).
    let bounds: Vec<usize> = (0..=n_buckets)
        .map(|b| b * (n_ctx - 1) / n_buckets)
        .collect();
    let mut bucket_sum = vec![0.0f64; n_buckets];
    let mut bucket_count = vec![0usize; n_buckets];

    let started = Instant::now();
    let (mut sum, mut sum2, mut count) = (0.0f64, 0.0f64, 0usize);
    let mut chunk_ppl = Vec::with_capacity(n_chunks);
    for_each_chunk(
        model,
        tokens,
        n_ctx,
        n_chunks,
        options.bos,
        &mut |i, chunk, logits| {
            let mut bucket = 0;
            for p in 0..n_ctx - 1 {
                let v = nll(&logits[p * n_vocab..(p + 1) * n_vocab], chunk[p + 1]);
                while p >= bounds[bucket + 1] {
                    bucket += 1;
                }
                bucket_sum[bucket] += v;
                bucket_count[bucket] += 1;
                if p >= first {
                    sum += v;
                    sum2 += v * v;
                    count += 1;
                }
            }
            let ppl = (sum / count as f64).exp();
            chunk_ppl.push(ppl);
            progress(&ChunkProgress {
                done: i + 1,
                n_chunks,
                ppl,
                elapsed: started.elapsed(),
            });
            Ok(())
        },
    )?;

    // llama-perplexity's final estimate and its error.
    let c = count as f64;
    let mean = sum / c;
    let ppl = mean.exp();
    let var = sum2 / c - mean * mean;
    let ppl_uncertainty = if var > 0.0 && count > 1 {
        (var / (c - 1.0)).sqrt() * ppl
    } else {
        0.0
    };
    let by_position = (0..n_buckets)
        .map(|b| PositionBucket {
            start: bounds[b],
            end: bounds[b + 1],
            count: bucket_count[b],
            ppl: (bucket_sum[b] / bucket_count[b].max(1) as f64).exp(),
        })
        .collect();
    Ok(PerplexityReport {
        n_tokens: tokens.len(),
        n_ctx,
        n_chunks,
        n_scored: count,
        ppl,
        ppl_uncertainty,
        nll: mean,
        chunk_ppl,
        by_position,
        elapsed: started.elapsed(),
    })
}
