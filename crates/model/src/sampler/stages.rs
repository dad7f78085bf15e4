//! The sampler stages, each a small function over [`Candidates`]. Each follows
//! the llama.cpp sampler of the same name in src/llama-sampler.cpp
//! (`llama_sampler_<name>_apply`); comments note where we differ.

use std::collections::VecDeque;

use super::candidates::{Candidate, Candidates, by_logit_desc};
use super::rng::Rng;

/// Adds a bias to chosen tokens' logits (`llama_sampler_logit_bias_apply`).
/// `-inf` bans a token.
pub fn logit_bias(c: &mut Candidates, bias: &[(u32, f32)]) {
    for &(id, b) in bias {
        // Fast path: the array still holds the full vocabulary in id order.
        match c.data.get_mut(id as usize) {
            Some(cand) if cand.id == id => cand.logit += b,
            _ => {
                if let Some(cand) = c.data.iter_mut().find(|cand| cand.id == id) {
                    cand.logit += b;
                }
            }
        }
    }
}

/// Repetition, frequency and presence penalties over the last `last_n` accepted
/// tokens (`llama_sampler_penalties`).
#[derive(Debug, Clone)]
pub struct Penalties {
    last_n: usize,
    repeat: f32,
    frequency: f32,
    presence: f32,
    /// The last `last_n` accepted tokens, oldest first.
    window: VecDeque<u32>,
    /// How often each token id occurs in `window`, indexed by id.
    counts: Vec<u32>,
}

impl Penalties {
    /// Penalties over a window of `last_n` tokens.
    pub fn new(last_n: usize, repeat: f32, frequency: f32, presence: f32) -> Self {
        Self {
            last_n,
            repeat,
            frequency,
            presence,
            window: VecDeque::with_capacity(last_n),
            counts: Vec::new(),
        }
    }

    /// Whether the stage changes nothing (llama.cpp's `is_disabled`).
    fn is_disabled(&self) -> bool {
        self.last_n == 0 || (self.repeat == 1.0 && self.frequency == 0.0 && self.presence == 0.0)
    }

    /// Records a token (prompt or generated) in the window.
    pub fn accept(&mut self, token: u32) {
        if self.last_n == 0 {
            return;
        }
        if self.window.len() >= self.last_n
            && let Some(old) = self.window.pop_front()
        {
            self.counts[old as usize] -= 1;
        }
        let i = token as usize;
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.window.push_back(token);
    }

    /// Forgets every accepted token.
    pub fn reset(&mut self) {
        self.window.clear();
        self.counts.fill(0);
    }

    /// Penalises the candidates that occur in the window: the repeat penalty
    /// divides a positive logit and multiplies a non-positive one (so it always
    /// lowers it), then `count * frequency + presence` is subtracted.
    pub fn apply(&self, c: &mut Candidates) {
        if self.is_disabled() {
            return;
        }
        for cand in &mut c.data {
            let count = self.counts.get(cand.id as usize).copied().unwrap_or(0);
            if count == 0 {
                continue;
            }
            if cand.logit <= 0.0 {
                cand.logit *= self.repeat;
            } else {
                cand.logit /= self.repeat;
            }
            cand.logit -= count as f32 * self.frequency + self.presence;
        }
        c.sorted = false;
    }
}

/// Keeps the `k` highest logits, sorted; `k == 0` keeps everything
/// (`llama_sampler_top_k_impl`).
pub fn top_k(c: &mut Candidates, k: usize) {
    if k == 0 {
        return;
    }
    c.keep_top(k);
}

/// Keeps the smallest set of most likely tokens whose probabilities sum to at
/// least `p` (and at least `min_keep` tokens) (`llama_sampler_top_p_apply`).
pub fn top_p(c: &mut Candidates, p: f32, min_keep: usize) {
    if p >= 1.0 || c.is_empty() {
        return;
    }
    c.softmax(false);
    if !c.sorted {
        // llama.cpp's adaptive sort: on a large vocabulary the cut usually falls
        // in the first few hundred tokens, so try sorting only those first. The
        // kept set is the same either way.
        const FIRST_TRY: usize = 256;
        let n = c.data.len();
        if n > 1024 {
            c.data.select_nth_unstable_by(FIRST_TRY - 1, by_logit_desc);
            c.data[..FIRST_TRY].sort_unstable_by(by_logit_desc);
            let head: f32 = c.data[..FIRST_TRY].iter().map(|x| x.p).sum();
            if head < p || FIRST_TRY < min_keep {
                c.data.sort_unstable_by(by_logit_desc);
            }
        } else {
            c.data.sort_unstable_by(by_logit_desc);
        }
    }
    let mut cum = 0.0f32;
    let mut last = c.data.len();
    for (i, cand) in c.data.iter().enumerate() {
        cum += cand.p;
        if cum >= p && i + 1 >= min_keep {
            last = i + 1;
            break;
        }
    }
    c.data.truncate(last);
    c.sorted = true;
}

/// Keeps the tokens whose probability is at least `p` times the most likely
/// one's, i.e. `logit >= max_logit + ln p` (and at least `min_keep` tokens)
/// (`llama_sampler_min_p_apply`).
pub fn min_p(c: &mut Candidates, p: f32, min_keep: usize) {
    if p <= 0.0 || c.is_empty() {
        return;
    }
    if !c.sorted {
        let max_logit = c
            .data
            .iter()
            .map(|x| x.logit)
            .fold(f32::NEG_INFINITY, f32::max);
        let min_logit = max_logit + p.ln();
        let n_kept = c.data.iter().filter(|x| x.logit >= min_logit).count();
        if n_kept > 0 && n_kept >= min_keep {
            c.data.retain(|x| x.logit >= min_logit);
            return;
        }
        c.data.sort_unstable_by(by_logit_desc);
        c.sorted = true;
    }
    let min_logit = c.data[0].logit + p.ln();
    let mut i = 1;
    while i < c.data.len() && !(c.data[i].logit < min_logit && i >= min_keep) {
        i += 1;
    }
    c.data.truncate(i);
}

/// Locally typical sampling (Meister et al. 2022): keeps the tokens whose
/// surprisal is closest to the distribution's entropy until their probabilities
/// sum to more than `p` (`llama_sampler_typical_apply`). `scores` and `order`
/// are scratch buffers kept by the caller so that no step allocates.
pub fn typical(
    c: &mut Candidates,
    p: f32,
    min_keep: usize,
    scores: &mut Vec<f32>,
    order: &mut Vec<usize>,
    scratch: &mut Vec<Candidate>,
) {
    if p >= 1.0 || c.is_empty() {
        return;
    }
    c.softmax(true);
    let entropy: f32 = c.data.iter().map(|x| -x.p * x.p.ln()).sum();
    scores.clear();
    scores.extend(c.data.iter().map(|x| (-x.p.ln() - entropy).abs()));
    order.clear();
    order.extend(0..c.data.len());
    // Unstable, as llama.cpp's std::sort, and without the stable sort's buffer.
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));

    let mut cum = 0.0f32;
    let mut last = order.len();
    for (i, &idx) in order.iter().enumerate() {
        cum += c.data[idx].p;
        if cum > p && (min_keep == 0 || i + 1 >= min_keep) {
            last = i + 1;
            break;
        }
    }
    scratch.clear();
    scratch.extend(order[..last].iter().map(|&idx| c.data[idx]));
    std::mem::swap(&mut c.data, scratch);
    c.sorted = false;
}

/// Divides the logits by `temp` (`llama_sampler_temp_impl` for `temp > 0`; the
/// chain handles `temp <= 0` as greedy decoding).
pub fn temperature(c: &mut Candidates, temp: f32) {
    for cand in &mut c.data {
        cand.logit /= temp;
    }
}

/// Draws a token from the softmax of the remaining logits and returns its index
/// in the array (`llama_sampler_dist_apply`: one uniform draw, then the first
/// token at which the running sum reaches `draw * total`). `None` when no
/// candidate has a finite logit.
pub fn dist(c: &mut Candidates, rng: &mut Rng) -> Option<usize> {
    let max_logit = c
        .data
        .iter()
        .map(|x| x.logit)
        .fold(f32::NEG_INFINITY, f32::max);
    if !max_logit.is_finite() {
        return None;
    }
    let draw = rng.next_f64();
    if c.data.len() == 1 {
        c.data[0].p = 1.0;
        return Some(0);
    }
    let mut total = 0.0f64;
    for cand in &mut c.data {
        cand.p = (cand.logit - max_logit).exp();
        total += f64::from(cand.p);
    }
    let target = total * draw;
    let mut running = 0.0f64;
    let mut selected = None;
    for (i, cand) in c.data.iter_mut().enumerate() {
        if selected.is_none() {
            running += f64::from(cand.p);
            if running >= target {
                selected = Some(i);
            }
        }
        cand.p = (f64::from(cand.p) / total) as f32;
    }
    // Rounding can leave the running sum a hair short of the target.
    selected.or(Some(c.data.len() - 1))
}

/// The index of the highest logit, the first on ties (`llama_sampler_greedy_apply`).
/// `None` when no candidate has a finite or infinite-positive logit.
pub fn greedy(c: &Candidates) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, cand) in c.data.iter().enumerate() {
        if cand.logit.is_nan() || cand.logit == f32::NEG_INFINITY {
            continue;
        }
        if best.is_none_or(|b| cand.logit > c.data[b].logit) {
            best = Some(i);
        }
    }
    best
}

/// Mirostat 1.0 (Basu et al. 2020, `llama_sampler_mirostat_apply`): estimates
/// the Zipf exponent `s` from the `m` most likely tokens, keeps the top `k`
/// that make the expected surprise `mu`, draws one, and moves `mu` toward
/// `tau` by `eta` times the observed error. Returns the drawn index.
pub fn mirostat_v1(
    c: &mut Candidates,
    n_vocab: usize,
    tau: f32,
    eta: f32,
    m: usize,
    mu: &mut f32,
    rng: &mut Rng,
) -> Option<usize> {
    c.softmax(true);
    if c.is_empty() {
        return None;
    }
    let (mut sum_ti_bi, mut sum_ti_sq) = (0.0f32, 0.0f32);
    let n = m.min(c.data.len()).saturating_sub(1);
    for i in 0..n {
        let t_i = ((i as f32 + 2.0) / (i as f32 + 1.0)).ln();
        let b_i = (c.data[i].p / c.data[i + 1].p).ln();
        sum_ti_bi += t_i * b_i;
        sum_ti_sq += t_i * t_i;
    }
    let s_hat = sum_ti_bi / sum_ti_sq;
    let epsilon_hat = s_hat - 1.0;
    let k = ((epsilon_hat * 2f32.powf(*mu)) / (1.0 - (n_vocab as f32).powf(-epsilon_hat)))
        .powf(1.0 / s_hat);
    // A non-finite estimate (flat or one-token distributions) keeps one token.
    let k = if k.is_finite() {
        (k as usize).max(1)
    } else {
        1
    };
    top_k(c, k);
    c.softmax(true);
    let index = dist(c, rng)?;
    update_mu(mu, c.data[index].p, tau, eta);
    Some(index)
}

/// Mirostat 2.0 (`llama_sampler_mirostat_v2_apply`): drops the tokens whose
/// surprise `-log2 p` exceeds `mu` (keeping at least one), draws from the
/// rest, and moves `mu` toward `tau`. Returns the drawn index.
pub fn mirostat_v2(
    c: &mut Candidates,
    tau: f32,
    eta: f32,
    mu: &mut f32,
    rng: &mut Rng,
) -> Option<usize> {
    c.softmax(true);
    if c.is_empty() {
        return None;
    }
    let keep = c
        .data
        .iter()
        .position(|x| -x.p.log2() > *mu)
        .unwrap_or(c.data.len())
        .max(1);
    c.data.truncate(keep);
    c.softmax(true);
    let index = dist(c, rng)?;
    update_mu(mu, c.data[index].p, tau, eta);
    Some(index)
}

/// `mu -= eta * (surprise - tau)`, the surprise of the drawn token in bits.
fn update_mu(mu: &mut f32, p: f32, tau: f32, eta: f32) {
    let observed = -p.log2();
    *mu -= eta * (observed - tau);
}
