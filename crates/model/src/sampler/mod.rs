//! The sampler chain: turns one step's logits into the next token.
//!
//! The order is llama.cpp's default (common/sampling.cpp, `common_sampler_init`
//! with the default `samplers` list): logit bias → penalties → top-k → typical →
//! top-p → min-p → temperature → a seeded draw from the softmax. With
//! `temperature <= 0` the chain is greedy: logit bias and penalties, then the
//! highest logit. With Mirostat on, temperature and the Mirostat draw replace
//! top-k … min-p (llama.cpp's chain applies no penalties then; we keep them, as
//! Ollama's llama.cpp-based runner did). (llama.cpp reaches the same token through its temperature
//! stage, except that a `typical_p < 1` cut there may drop the top token first;
//! we follow Ollama and llama.cpp's greedy sampler and never drop it.)
//!
//! Defaults are Ollama's (`api.DefaultOptions`), since hearth speaks its API.
//! Every buffer lives in [`Sampler`] and is reused, so sampling a token does not
//! allocate once the buffers have grown to the vocabulary size.

mod candidates;
mod rng;
mod stages;

use thiserror::Error;

pub use candidates::{Candidate, Candidates};
pub use rng::Rng;
pub use stages::Penalties;

/// The parameters of the chain. A stage whose parameter has its "off" value
/// (`top_k == 0`, `top_p >= 1`, `min_p <= 0`, `typical_p >= 1`,
/// `repeat_penalty == 1` with no frequency/presence penalty) does nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerParams {
    /// Softmax temperature; `<= 0` picks the most likely token.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Nucleus sampling: keep the most likely tokens up to this total probability.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one.
    pub min_p: f32,
    /// Locally typical sampling mass.
    pub typical_p: f32,
    /// The fewest tokens top-p, min-p and typical may keep (llama.cpp's
    /// `min_keep`; 0 and 1 both keep at least one).
    pub min_keep: usize,
    /// How many of the latest tokens the penalties look at (0: none).
    pub repeat_last_n: usize,
    /// Repetition penalty (1: off).
    pub repeat_penalty: f32,
    /// Subtracted once per occurrence in the window.
    pub frequency_penalty: f32,
    /// Subtracted once if the token occurs in the window.
    pub presence_penalty: f32,
    /// Added to the logits of chosen tokens before anything else.
    pub logit_bias: Vec<(u32, f32)>,
    /// Mirostat: 0 off, 1 Mirostat, 2 Mirostat 2.0. When on, it replaces
    /// top-k, typical, top-p and min-p (after temperature), as in llama.cpp.
    pub mirostat: u8,
    /// Mirostat's target surprise in bits.
    pub mirostat_tau: f32,
    /// Mirostat's learning rate.
    pub mirostat_eta: f32,
    /// The RNG seed; `None` draws a fresh one.
    pub seed: Option<u64>,
}

impl Default for SamplerParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.0,
            typical_p: 1.0,
            min_keep: 0,
            repeat_last_n: 64,
            repeat_penalty: 1.1,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            logit_bias: Vec::new(),
            mirostat: 0,
            mirostat_tau: 5.0,
            mirostat_eta: 0.1,
            seed: None,
        }
    }
}

/// Why no token could be sampled.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SamplerError {
    /// The logits slice was empty.
    #[error("no logits to sample from")]
    NoLogits,
    /// Every logit was `-inf` or NaN (e.g. every token banned by logit bias).
    #[error("no token has a finite logit")]
    NoFiniteLogit,
    /// A token mask allowed no token of the vocabulary.
    #[error("the token mask allows no token")]
    NothingAllowed,
}

/// A sampler chain with its state: the penalty window and the RNG.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplerParams,
    penalties: Penalties,
    rng: Rng,
    candidates: Candidates,
    typical_scores: Vec<f32>,
    typical_order: Vec<usize>,
    typical_scratch: Vec<Candidate>,
    /// Mirostat's running maximum surprise, starting at twice `mirostat_tau`.
    mirostat_mu: f32,
}

impl Sampler {
    /// A chain with `params`, its RNG seeded from `params.seed`.
    pub fn new(params: SamplerParams) -> Self {
        let seed = params.seed.unwrap_or_else(Rng::entropy_seed);
        let penalties = Penalties::new(
            params.repeat_last_n,
            params.repeat_penalty,
            params.frequency_penalty,
            params.presence_penalty,
        );
        Self {
            mirostat_mu: 2.0 * params.mirostat_tau,
            params,
            penalties,
            rng: Rng::from_seed(seed),
            candidates: Candidates::default(),
            typical_scores: Vec::new(),
            typical_order: Vec::new(),
            typical_scratch: Vec::new(),
        }
    }

    /// The chain's parameters.
    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Records a token in the penalty window. The caller accepts prompt tokens
    /// too (as llama-server and Ollama do), then every sampled token.
    pub fn accept(&mut self, token: u32) {
        self.penalties.accept(token);
    }

    /// Forgets the penalty window and Mirostat's state (the RNG stream
    /// continues).
    pub fn reset(&mut self) {
        self.penalties.reset();
        self.mirostat_mu = 2.0 * self.params.mirostat_tau;
    }

    /// Runs the chain over one step's logits and returns the chosen token. The
    /// token is not accepted; call [`Sampler::accept`] with it.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32, SamplerError> {
        if logits.is_empty() {
            return Err(SamplerError::NoLogits);
        }
        self.candidates.fill(logits);
        self.run_chain(logits.len())
    }

    /// [`Sampler::sample`] over only the tokens a mask allows: bit `i % 32`
    /// of `allowed[i / 32]` set for token `i` (a grammar's mask, see
    /// `engine::constraint`). The mask is applied first, so every stage of the
    /// chain sees only allowed tokens and the draw is from their distribution.
    pub fn sample_allowed(&mut self, logits: &[f32], allowed: &[u32]) -> Result<u32, SamplerError> {
        if logits.is_empty() {
            return Err(SamplerError::NoLogits);
        }
        self.candidates.fill_allowed(logits, allowed);
        if self.candidates.is_empty() {
            return Err(SamplerError::NothingAllowed);
        }
        self.run_chain(logits.len())
    }

    /// The chain's stages over the filled candidates; `n_vocab` is the
    /// size of the vocabulary the logits cover (Mirostat 1 estimates from it).
    fn run_chain(&mut self, n_vocab: usize) -> Result<u32, SamplerError> {
        let p = &self.params;
        let c = &mut self.candidates;
        stages::logit_bias(c, &p.logit_bias);
        self.penalties.apply(c);
        let chosen = if p.temperature <= 0.0 {
            stages::greedy(c)
        } else if p.mirostat == 1 {
            stages::temperature(c, p.temperature);
            // llama.cpp's m: the tokens the Zipf exponent is estimated from.
            const M: usize = 100;
            let (tau, eta) = (p.mirostat_tau, p.mirostat_eta);
            let mu = &mut self.mirostat_mu;
            stages::mirostat_v1(c, n_vocab, tau, eta, M, mu, &mut self.rng)
        } else if p.mirostat == 2 {
            stages::temperature(c, p.temperature);
            let (tau, eta) = (p.mirostat_tau, p.mirostat_eta);
            stages::mirostat_v2(c, tau, eta, &mut self.mirostat_mu, &mut self.rng)
        } else {
            stages::top_k(c, p.top_k);
            stages::typical(
                c,
                p.typical_p,
                p.min_keep,
                &mut self.typical_scores,
                &mut self.typical_order,
                &mut self.typical_scratch,
            );
            stages::top_p(c, p.top_p, p.min_keep);
            stages::min_p(c, p.min_p, p.min_keep);
            stages::temperature(c, p.temperature);
            stages::dist(c, &mut self.rng)
        };
        let index = chosen.ok_or(SamplerError::NoFiniteLogit)?;
        Ok(c.as_slice()[index].id)
    }

    /// The candidates left after the last [`Sampler::sample`] (with their
    /// probabilities when the chain was not greedy).
    pub fn candidates(&self) -> &Candidates {
        &self.candidates
    }
}

#[cfg(test)]
mod tests;
