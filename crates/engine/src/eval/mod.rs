//! Measuring a model's quality on a text, the way llama.cpp's
//! `tools/perplexity/perplexity.cpp` does, so the numbers compare directly:
//!
//! - [`perplexity`]: the text's tokens (BOS first when the model asks for it)
//!   are cut into chunks of `n_ctx`; each chunk runs from an empty cache with
//!   its first token replaced by BOS, and the second half of its positions is
//!   scored (position `p` predicts token `p + 1`, for `p` in `n_ctx/2 ..
//!   n_ctx - 1`), so every scored token has at least half a context before it.
//!   Perplexity is `exp` of the mean negative log-likelihood. Every position
//!   (the first half too) is also tallied by position bucket: quality over
//!   context length.
//! - [`kld`]: the same chunks through a quantized model and a base model's
//!   log-probabilities (llama.cpp's `--kl-divergence-base` file, 16 bits per
//!   log-probability, [`BaseLogProbs`]): KL divergence, top-token agreement
//!   and the change in each scored token's probability.
//! - [`needle`]: a number hidden at several depths of a long filler text;
//!   whether greedy decoding retrieves it.
//!
//! Chunks run several at a time through [`Model::forward_batch`], one
//! sequence each, as llama-perplexity fills its batch with `n_batch / n_ctx`
//! sequences.

mod kld;
mod needle;
mod perplexity;

pub use kld::{BaseLogProbs, KldReport, KldStats, Percentiles, kld, log_probs_row_len};
pub use needle::{NeedleOptions, NeedleResult, needle};
pub use perplexity::{
    ChunkProgress, PerplexityOptions, PerplexityReport, PositionBucket, perplexity,
};

use model::{Logits, Model, ModelError, SeqStep};

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The forward pass failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The text is too short for even two chunks (llama-perplexity's rule).
    #[error(
        "the text tokenizes to {n_tokens} tokens; a context of {n_ctx} needs at least {needed} \
         (two chunks); give a longer text or a smaller --ctx"
    )]
    TooFewTokens {
        /// Tokens in the text.
        n_tokens: usize,
        /// The chunk length.
        n_ctx: usize,
        /// Tokens needed.
        needed: usize,
    },
    /// Options that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// The base log-probabilities do not belong to this model or text.
    #[error("base log-probabilities: {0}")]
    Base(String),
    /// Reading or writing a base log-probability file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// What [`for_each_chunk`] calls with each chunk: its index, its tokens and
/// the logits of all its positions.
type ChunkVisitor<'a> = dyn FnMut(usize, &[u32], &[f32]) -> Result<(), EvalError> + 'a;

/// Runs chunks `0..n_chunks` of `n_ctx` tokens each through `model`, up to
/// `n_seq` at a time, and hands every chunk's logits (all `n_ctx` positions,
/// token-major) with its tokens to `visit`, in chunk order. The first token
/// of each chunk is replaced by `bos` when given, as llama-perplexity does.
fn for_each_chunk(
    model: &Model,
    tokens: &[u32],
    n_ctx: usize,
    n_chunks: usize,
    bos: Option<u32>,
    visit: &mut ChunkVisitor<'_>,
) -> Result<(), EvalError> {
    // llama-perplexity's default batch is 2048 tokens: that many positions of
    // logits per step at most (and at least one chunk), and no more than
    // 512 MiB of logits (a 128k vocabulary at 512 positions is 256 MiB).
    let logits_bytes = n_ctx * model.info().n_vocab * 4;
    let n_seq = (2048 / n_ctx)
        .min((512 << 20) / logits_bytes.max(1))
        .clamp(1, 4)
        .min(n_chunks.max(1));
    let mut batch = model.new_batch(n_ctx.min(512), n_ctx)?;
    let mut states = (0..n_seq)
        .map(|_| model.new_state(n_ctx))
        .collect::<Result<Vec<_>, _>>()?;
    let mut inputs = vec![Vec::with_capacity(n_ctx); n_seq];
    let mut first = 0;
    while first < n_chunks {
        let n = n_seq.min(n_chunks - first);
        for (j, input) in inputs.iter_mut().enumerate().take(n) {
            let start = (first + j) * n_ctx;
            input.clear();
            input.extend_from_slice(&tokens[start..start + n_ctx]);
            if let Some(bos) = bos {
                input[0] = bos;
            }
        }
        let mut steps: Vec<SeqStep<'_>> = states
            .iter_mut()
            .zip(&inputs)
            .take(n)
            .map(|(state, input)| {
                state.clear();
                SeqStep {
                    state,
                    tokens: input,
                    logits: Some(Logits::All),
                }
            })
            .collect();
        model.forward_batch(&mut batch, &mut steps)?;
        for j in 0..n {
            let start = (first + j) * n_ctx;
            visit(first + j, &tokens[start..start + n_ctx], batch.logits(j))?;
        }
        first += n;
    }
    Ok(())
}

/// `-log p(tok)` under `logits`, computed as llama-perplexity's
/// `log_softmax`: the maximum in f32, the sum of `expf(l - max)` in f64.
fn nll(logits: &[f32], tok: u32) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    -(f64::from(logits[tok as usize] - max) - sum.ln())
}

/// Mean and its standard error from a sum and a sum of squares, as
/// llama-perplexity's `mean_and_uncertainty` (no error below 11 values).
fn mean_and_uncertainty(sum: f64, sum2: f64, count: usize) -> (f64, f64) {
    if count < 1 {
        return (0.0, 0.0);
    }
    let c = count as f64;
    let f = sum / c;
    let df = sum2 / c - f * f;
    let df = if df > 0.0 && count > 10 {
        (df / (c - 1.0)).sqrt()
    } else {
        0.0
    };
    (f, df)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_is_the_negative_log_softmax() {
        let logits = [1.0f32, 2.0, 3.0];
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        for (i, &l) in logits.iter().enumerate() {
            let want = -(f64::from(l).exp() / z).ln();
            assert!((nll(&logits, i as u32) - want).abs() < 1e-6);
        }
    }

    #[test]
    fn uncertainty_needs_eleven_values() {
        assert_eq!(mean_and_uncertainty(0.0, 0.0, 0), (0.0, 0.0));
        assert_eq!(mean_and_uncertainty(10.0, 20.0, 5), (2.0, 0.0));
        // 11 values: five 1s, six 3s; mean 23/11, population variance
        // (5 + 54)/11 - (23/11)^2, standard error sqrt(var / 10).
        let (m, e) = mean_and_uncertainty(23.0, 59.0, 11);
        assert!((m - 23.0 / 11.0).abs() < 1e-12);
        let var = 59.0 / 11.0 - (23.0f64 / 11.0).powi(2);
        assert!((e - (var / 10.0).sqrt()).abs() < 1e-12);
    }
}
