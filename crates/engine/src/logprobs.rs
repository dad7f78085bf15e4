//! Log-probabilities of sampled tokens, for APIs that report them (OpenAI's
//! `logprobs` / `top_logprobs`).
//!
//! They are the model's own distribution: a log-softmax over the raw logits,
//! before temperature, penalties or truncation. That is what OpenAI documents
//! ("the log probability of this token") and what llama.cpp's server reports
//! for `n_probs` with `post_sampling_probs` off (tools/server, `probs_output`).

/// One generated token with its log-probability and the most likely tokens at
/// its position.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The sampled token.
    pub token: u32,
    /// Its natural-log probability.
    pub logprob: f32,
    /// The `top_n` most likely tokens and their log-probabilities, most likely
    /// first (ties by lower id first).
    pub top: Vec<(u32, f32)>,
}

/// The log-probability of `token` under `logits`, with the `top_n` most likely
/// tokens. Allocates only the `top_n` list; called only when asked for.
pub fn token_logprob(logits: &[f32], token: u32, top_n: usize) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // log-sum-exp, shifted by the maximum so that no term overflows.
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let log_sum = sum.ln() as f32;
    // Shifted first, so that large logits keep their precision.
    let logprob_of = |l: f32| (l - max) - log_sum;
    let logprob = |id: u32| {
        logits
            .get(id as usize)
            .map_or(f32::NEG_INFINITY, |&l| logprob_of(l))
    };
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(top_n + 1);
    if top_n > 0 {
        // Keep a sorted list of the best `top_n` seen so far: insertion costs
        // O(top_n), and top_n is at most 20 in the API.
        for (id, &l) in logits.iter().enumerate() {
            if top.len() == top_n && top.last().is_some_and(|&(_, worst)| l <= worst) {
                continue;
            }
            let at = top.partition_point(|&(_, v)| v >= l);
            top.insert(at, (id as u32, l));
            top.truncate(top_n);
        }
        for entry in &mut top {
            entry.1 = logprob_of(entry.1);
        }
    }
    TokenLogprob {
        token,
        logprob: logprob(token),
        top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logprobs_are_a_log_softmax_and_top_is_sorted() {
        let logits = [1.0f32, 3.0, 2.0, 3.0, -1.0];
        let z: f32 = logits.iter().map(|l| l.exp()).sum();
        let t = token_logprob(&logits, 2, 3);
        assert!((t.logprob - (2.0f32.exp() / z).ln()).abs() < 1e-5);
        let ids: Vec<u32> = t.top.iter().map(|e| e.0).collect();
        assert_eq!(ids, [1, 3, 2]);
        assert!((t.top[0].1 - (3.0f32.exp() / z).ln()).abs() < 1e-5);
        let total: f32 = logits.iter().map(|&l| (l - z.ln()).exp()).sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert!(token_logprob(&logits, 0, 0).top.is_empty());
        assert_eq!(token_logprob(&logits, 0, 10).top.len(), logits.len());
        // Large logits do not overflow.
        let big = [1000.0f32, 1000.0];
        assert!((token_logprob(&big, 0, 1).logprob - 0.5f32.ln()).abs() < 1e-5);
    }
}
