//! KL divergence against a base model, llama-perplexity's `--kl-divergence`.
//!
//! The base model's log-probabilities of every scored position are kept as
//! llama.cpp keeps them (`log_softmax` with a `uint16_t *` in
//! tools/perplexity/perplexity.cpp): per position `nv = 2*((n_vocab+1)/2) + 4`
//! u16s, the first four holding two f32s (`scale`, `min_log_prob`), then one
//! u16 per token, `round((logit - min_logit) / scale)` over the 65535 steps
//! between the largest logit and 16 below it. The file
//! (`--kl-divergence-base`) is `_logits_`, `n_ctx` (u32), `n_vocab`,
//! `n_chunk` (i32), the `n_chunk * n_ctx` evaluation tokens (i32), then every
//! chunk's `n_ctx - 1 - n_ctx/2` rows.

use std::io::{Read, Write};
use std::path::Path;

use model::Model;

use super::{EvalError, for_each_chunk, mean_and_uncertainty};

const MAGIC: &[u8; 8] = b"_logits_";

/// u16s per position: two f32 header values and the padded vocabulary.
pub fn log_probs_row_len(n_vocab: usize) -> usize {
    2 * n_vocab.div_ceil(2) + 4
}

/// A base model's log-probabilities over the chunks of a text.
#[derive(Clone, Debug, PartialEq)]
pub struct BaseLogProbs {
    /// Chunk length.
    pub n_ctx: usize,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Chunks.
    pub n_chunks: usize,
    /// The evaluation tokens, `n_chunks * n_ctx` (the text's, not BOS-replaced).
    pub tokens: Vec<u32>,
    /// `n_chunks * (n_ctx - 1 - n_ctx/2)` rows of [`log_probs_row_len`] u16s.
    pub rows: Vec<u16>,
}

impl BaseLogProbs {
    /// Runs `tokens` through the base `model` in chunks of `n_ctx` (as
    /// perplexity does) and keeps the scored positions' log-probabilities.
    pub fn compute(
        model: &Model,
        tokens: &[u32],
        n_ctx: usize,
        bos: Option<u32>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<BaseLogProbs, EvalError> {
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
        let n_vocab = model.info().n_vocab;
        let n_chunks = tokens.len() / n_ctx;
        let nv = log_probs_row_len(n_vocab);
        let first = n_ctx / 2;
        let mut rows = vec![0u16; n_chunks * (n_ctx - 1 - first) * nv];
        let mut at = 0;
        for_each_chunk(model, tokens, n_ctx, n_chunks, bos, &mut |i, _, logits| {
            for p in first..n_ctx - 1 {
                quantize_row(
                    &logits[p * n_vocab..(p + 1) * n_vocab],
                    &mut rows[at..at + nv],
                );
                at += nv;
            }
            progress(i + 1, n_chunks);
            Ok(())
        })?;
        Ok(BaseLogProbs {
            n_ctx,
            n_vocab,
            n_chunks,
            tokens: tokens[..n_chunks * n_ctx].to_vec(),
            rows,
        })
    }

    /// Writes llama.cpp's `--kl-divergence-base` file.
    pub fn write(&self, path: &Path) -> Result<(), EvalError> {
        let io = |source| EvalError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut out = Vec::with_capacity(20 + self.tokens.len() * 4 + self.rows.len() * 2);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.n_ctx as u32).to_le_bytes());
        out.extend_from_slice(&(self.n_vocab as i32).to_le_bytes());
        out.extend_from_slice(&(self.n_chunks as i32).to_le_bytes());
        for &t in &self.tokens {
            out.extend_from_slice(&(t as i32).to_le_bytes());
        }
        for &v in &self.rows {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let mut file = std::fs::File::create(path).map_err(io)?;
        file.write_all(&out).map_err(io)
    }

    /// Reads llama.cpp's `--kl-divergence-base` file, checking every length.
    pub fn read(path: &Path) -> Result<BaseLogProbs, EvalError> {
        let io = |source| EvalError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io)?;
        let bad = |what: &str| EvalError::Base(format!("{}: {what}", path.display()));
        if bytes.len() < 20 || &bytes[..8] != MAGIC {
            return Err(bad(
                "not a llama.cpp log-probability file (no _logits_ header)",
            ));
        }
        let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap_or([0; 4]));
        let n_ctx = word(8) as usize;
        let n_vocab = word(12) as i32;
        let n_chunks = word(16) as i32;
        if n_ctx < 4 || n_vocab <= 0 || n_chunks <= 0 {
            return Err(bad(&format!(
                "n_ctx {n_ctx}, n_vocab {n_vocab}, n_chunk {n_chunks}"
            )));
        }
        let (n_vocab, n_chunks) = (n_vocab as usize, n_chunks as usize);
        let n_tokens = n_ctx
            .checked_mul(n_chunks)
            .ok_or_else(|| bad("size overflows"))?;
        let n_rows = n_chunks * (n_ctx - 1 - n_ctx / 2);
        let want = n_tokens
            .checked_mul(4)
            .and_then(|t| {
                n_rows
                    .checked_mul(log_probs_row_len(n_vocab) * 2)?
                    .checked_add(t)
            })
            .and_then(|b| b.checked_add(20))
            .ok_or_else(|| bad("size overflows"))?;
        if bytes.len() != want {
            return Err(bad(&format!(
                "{} bytes, the header announces {want}",
                bytes.len()
            )));
        }
        let tokens_end = 20 + n_tokens * 4;
        let tokens = bytes[20..tokens_end]
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect::<Vec<u32>>();
        if let Some(t) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(bad(&format!("token {t} outside a vocabulary of {n_vocab}")));
        }
        let rows = bytes[tokens_end..]
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect();
        Ok(BaseLogProbs {
            n_ctx,
            n_vocab,
            n_chunks,
            tokens,
            rows,
        })
    }
}

/// Quantizes one position's log-probabilities into `out` (llama.cpp's
/// `log_softmax(n_vocab, logits, log_prob, tok)`).
fn quantize_row(logits: &[f32], out: &mut [u16]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let min = logits.iter().copied().fold(f32::INFINITY, f32::min);
    let min = min.max(max - 16.0);
    let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    let log_sum_exp = sum.ln() as f32;
    let min_log_prob = min - max - log_sum_exp;
    let scale = (max - min) / 65535.0;
    let (head, body) = out.split_at_mut(4);
    let s = scale.to_bits();
    let m = min_log_prob.to_bits();
    head.copy_from_slice(&[s as u16, (s >> 16) as u16, m as u16, (m >> 16) as u16]);
    body.fill(0);
    if scale != 0.0 {
        let inv = 1.0 / scale;
        for (o, &l) in body.iter_mut().zip(logits) {
            if l > min {
                *o = nearest_int(inv * (l - min)) as u16;
            }
        }
    }
}

/// ggml's round-to-nearest-even through the float mantissa (`nearest_int`).
fn nearest_int(v: f32) -> i32 {
    let bits = (v + 12_582_912.0).to_bits() as i32;
    (bits & 0x007f_ffff) - 0x0040_0000
}

/// Running sums over the scored positions (llama.cpp's
/// `kl_divergence_result`), and each position's KLD and Δp.
#[derive(Clone, Debug, Default)]
pub struct KldStats {
    sum_nll: f64,
    sum_nll2: f64,
    sum_nll_base: f64,
    sum_nll_base2: f64,
    sum_nll_nll_base: f64,
    sum_kld: f64,
    sum_kld2: f64,
    sum_p_diff: f64,
    sum_p_diff2: f64,
    sum_p_diff4: f64,
    max_p_diff: f32,
    n_same_top: usize,
    count: usize,
    kld_values: Vec<f32>,
    p_diff_values: Vec<f32>,
}

impl KldStats {
    /// Adds one position: this model's `logits`, the base's quantized `row`,
    /// the token that follows.
    fn add(&mut self, logits: &[f32], row: &[u16], tok: usize) {
        let (mut max, mut imax) = (logits[0], 0);
        for (i, &l) in logits.iter().enumerate().skip(1) {
            if l > max {
                max = l;
                imax = i;
            }
        }
        let sum_exp: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
        let log_sum_exp = sum_exp.ln() as f32;
        let scale = f32::from_bits(u32::from(row[0]) | (u32::from(row[1]) << 16));
        let min_log_prob = f32::from_bits(u32::from(row[2]) | (u32::from(row[3]) << 16));
        let base = &row[4..];

        let nll = max + log_sum_exp - logits[tok];
        self.sum_nll += f64::from(nll);
        self.sum_nll2 += f64::from(nll * nll);
        let nll_base = -(scale * f32::from(base[tok]) + min_log_prob);
        self.sum_nll_base += f64::from(nll_base);
        self.sum_nll_base2 += f64::from(nll_base * nll_base);
        self.sum_nll_nll_base += f64::from(nll * nll_base);

        let max_lse = max + log_sum_exp;
        let mut sum = 0.0f64;
        let (mut imax_base, mut p_log_base_max) = (0, 0.0f32);
        for (i, (&q, &l)) in base.iter().zip(logits).enumerate() {
            let p_log_base = scale * f32::from(q) + min_log_prob;
            if i == 0 || p_log_base > p_log_base_max {
                p_log_base_max = p_log_base;
                imax_base = i;
            }
            if p_log_base > -16.0 {
                let p_base = p_log_base.exp();
                sum += f64::from(p_base * (p_log_base - l + max_lse));
            }
        }
        self.sum_kld += sum;
        self.sum_kld2 += sum * sum;
        self.count += 1;
        if imax == imax_base {
            self.n_same_top += 1;
        }
        let p_diff = (-nll).exp() - (-nll_base).exp();
        self.sum_p_diff += f64::from(p_diff);
        let p_diff2 = f64::from(p_diff * p_diff);
        self.sum_p_diff2 += p_diff2;
        self.sum_p_diff4 += p_diff2 * p_diff2;
        self.max_p_diff = self.max_p_diff.max(p_diff.abs());
        self.kld_values.push(sum as f32);
        self.p_diff_values.push(p_diff);
    }

    /// The summary llama-perplexity prints at the end.
    fn report(mut self) -> KldReport {
        let count = self.count;
        let c = count as f64;
        let log_ppl = mean_and_uncertainty(self.sum_nll, self.sum_nll2, count);
        let log_ppl_base = mean_and_uncertainty(self.sum_nll_base, self.sum_nll_base2, count);
        let cov = if count < 10 {
            0.0
        } else {
            (self.sum_nll_nll_base / c - (self.sum_nll / c) * (self.sum_nll_base / c)) / (c - 1.0)
        };
        let ppl = log_ppl.0.exp();
        let ppl_base = log_ppl_base.0.exp();
        let ppl_unc = ppl * log_ppl.1;
        let ppl_base_unc = ppl_base * log_ppl_base.1;
        let ln_ratio = log_ppl.0 - log_ppl_base.0;
        let ln_ratio_unc = (log_ppl.1 * log_ppl.1 + log_ppl_base.1 * log_ppl_base.1 - 2.0 * cov)
            .max(0.0)
            .sqrt();
        let ppl_cov = ppl * ppl_base * cov;
        let kld = mean_and_uncertainty(self.sum_kld, self.sum_kld2, count);
        let p_diff = mean_and_uncertainty(self.sum_p_diff, self.sum_p_diff2, count);
        let p_diff_mse = mean_and_uncertainty(self.sum_p_diff2, self.sum_p_diff4, count);
        let rms = p_diff_mse.0.sqrt();
        let same_top = self.n_same_top as f64 / c;
        self.kld_values.sort_by(f32::total_cmp);
        self.p_diff_values.sort_by(f32::total_cmp);
        KldReport {
            count,
            ppl,
            ppl_uncertainty: ppl_unc,
            ppl_base,
            ppl_base_uncertainty: ppl_base_unc,
            correlation: cov / (log_ppl.1 * log_ppl_base.1),
            ln_ppl_ratio: ln_ratio,
            ln_ppl_ratio_uncertainty: ln_ratio_unc,
            ppl_ratio: ln_ratio.exp(),
            ppl_ratio_uncertainty: ln_ratio.exp() * ln_ratio_unc,
            ppl_diff: ppl - ppl_base,
            ppl_diff_uncertainty: (ppl_unc * ppl_unc + ppl_base_unc * ppl_base_unc - 2.0 * ppl_cov)
                .max(0.0)
                .sqrt(),
            kld_mean: kld.0,
            kld_uncertainty: kld.1,
            kld: Percentiles::of(&self.kld_values),
            p_diff_mean: p_diff.0,
            p_diff_uncertainty: p_diff.1,
            p_diff: Percentiles::of(&self.p_diff_values),
            p_diff_max_abs: f64::from(self.max_p_diff),
            p_diff_rms: rms,
            p_diff_rms_uncertainty: 0.5 / rms * p_diff_mse.1,
            same_top,
            same_top_uncertainty: (same_top * (1.0 - same_top) / (c - 1.0)).sqrt(),
        }
    }
}

/// Order statistics of a sorted list, llama-perplexity's percentiles.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Percentiles {
    /// Largest value.
    pub max: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// 99th.
    pub p99: f64,
    /// 95th.
    pub p95: f64,
    /// 90th.
    pub p90: f64,
    /// 75th.
    pub p75: f64,
    /// Median (the mean of the two middle values for an even count).
    pub median: f64,
    /// 25th.
    pub p25: f64,
    /// 10th.
    pub p10: f64,
    /// 5th.
    pub p5: f64,
    /// 1st.
    pub p1: f64,
    /// 0.1th.
    pub p0_1: f64,
    /// Smallest value.
    pub min: f64,
}

impl Percentiles {
    fn of(sorted: &[f32]) -> Percentiles {
        // Linear interpolation in f32, as llama-perplexity's `percentile`.
        let pct = |fraction: f32| -> f64 {
            let n = sorted.len();
            if n == 0 {
                return 0.0;
            }
            let p = fraction * (n - 1) as f32;
            let ip = p as usize;
            let p = p - ip as f32;
            f64::from((1.0 - p) * sorted[ip] + p * sorted[(ip + 1).min(n - 1)])
        };
        let n = sorted.len();
        let median = match n {
            0 => 0.0,
            _ if n.is_multiple_of(2) => f64::from(0.5f32 * (sorted[n / 2] + sorted[n / 2 - 1])),
            _ => f64::from(sorted[n / 2]),
        };
        Percentiles {
            max: sorted.last().map_or(0.0, |&v| f64::from(v)),
            p99_9: pct(0.999),
            p99: pct(0.99),
            p95: pct(0.95),
            p90: pct(0.90),
            p75: pct(0.75),
            median,
            p25: pct(0.25),
            p10: pct(0.10),
            p5: pct(0.05),
            p1: pct(0.01),
            p0_1: pct(0.001),
            min: sorted.first().map_or(0.0, |&v| f64::from(v)),
        }
    }
}

/// llama-perplexity's KL-divergence summary (its "Perplexity statistics",
/// "KL divergence statistics" and "Token probability statistics").
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct KldReport {
    /// Positions compared.
    pub count: usize,
    /// Mean PPL(Q).
    pub ppl: f64,
    /// Its uncertainty.
    pub ppl_uncertainty: f64,
    /// Mean PPL(base).
    pub ppl_base: f64,
    /// Its uncertainty.
    pub ppl_base_uncertainty: f64,
    /// Cor(ln PPL(Q), ln PPL(base)).
    pub correlation: f64,
    /// Mean ln(PPL(Q)/PPL(base)).
    pub ln_ppl_ratio: f64,
    /// Its uncertainty.
    pub ln_ppl_ratio_uncertainty: f64,
    /// Mean PPL(Q)/PPL(base).
    pub ppl_ratio: f64,
    /// Its uncertainty.
    pub ppl_ratio_uncertainty: f64,
    /// Mean PPL(Q) - PPL(base): Δ-perplexity.
    pub ppl_diff: f64,
    /// Its uncertainty.
    pub ppl_diff_uncertainty: f64,
    /// Mean KL divergence (nats).
    pub kld_mean: f64,
    /// Its uncertainty.
    pub kld_uncertainty: f64,
    /// KLD percentiles.
    pub kld: Percentiles,
    /// Mean Δp (probability of the right token, Q minus base).
    pub p_diff_mean: f64,
    /// Its uncertainty.
    pub p_diff_uncertainty: f64,
    /// Δp percentiles.
    pub p_diff: Percentiles,
    /// Largest |Δp|.
    pub p_diff_max_abs: f64,
    /// RMS Δp.
    pub p_diff_rms: f64,
    /// Its uncertainty.
    pub p_diff_rms_uncertainty: f64,
    /// Fraction of positions where both models' top token is the same.
    pub same_top: f64,
    /// Its uncertainty.
    pub same_top_uncertainty: f64,
}

/// Compares `model` with the base log-probabilities, chunk by chunk.
pub fn kld(
    model: &Model,
    base: &BaseLogProbs,
    bos: Option<u32>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<KldReport, EvalError> {
    let n_vocab = model.info().n_vocab;
    if base.n_vocab != n_vocab {
        return Err(EvalError::Base(format!(
            "the base has a vocabulary of {}, this model {n_vocab}",
            base.n_vocab
        )));
    }
    let n_ctx = base.n_ctx;
    let first = n_ctx / 2;
    let nv = log_probs_row_len(n_vocab);
    let per_chunk = (n_ctx - 1 - first) * nv;
    let mut stats = KldStats::default();
    for_each_chunk(
        model,
        &base.tokens,
        n_ctx,
        base.n_chunks,
        bos,
        &mut |i, chunk, logits| {
            let rows = &base.rows[i * per_chunk..(i + 1) * per_chunk];
            for (k, p) in (first..n_ctx - 1).enumerate() {
                stats.add(
                    &logits[p * n_vocab..(p + 1) * n_vocab],
                    &rows[k * nv..(k + 1) * nv],
                    chunk[p + 1] as usize,
                );
            }
            progress(i + 1, base.n_chunks);
            Ok(())
        },
    )?;
    if stats.count < 2 {
        return Err(EvalError::Invalid("too few positions to compare".into()));
    }
    Ok(stats.report())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantized_row_keeps_log_probabilities_to_a_step() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
        let mut row = vec![0u16; log_probs_row_len(50)];
        quantize_row(&logits, &mut row);
        let scale = f32::from_bits(u32::from(row[0]) | (u32::from(row[1]) << 16));
        let min_lp = f32::from_bits(u32::from(row[2]) | (u32::from(row[3]) << 16));
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        for (i, &l) in logits.iter().enumerate() {
            let exact = f64::from(l) - z.ln();
            let q = f64::from(scale * f32::from(row[4 + i]) + min_lp);
            assert!((exact - q).abs() <= f64::from(scale), "{i}: {exact} vs {q}");
        }
    }

    #[test]
    fn identical_models_have_zero_divergence() {
        let n_vocab = 7;
        let mut stats = KldStats::default();
        for pos in 0..20 {
            let logits: Vec<f32> = (0..n_vocab).map(|i| ((i * pos) % 5) as f32).collect();
            let mut row = vec![0u16; log_probs_row_len(n_vocab)];
            quantize_row(&logits, &mut row);
            stats.add(&logits, &row, pos % n_vocab);
        }
        let r = stats.report();
        assert_eq!(r.count, 20);
        assert!(r.kld_mean.abs() < 1e-4, "{}", r.kld_mean);
        assert!(r.same_top > 0.99);
        assert!((r.ppl - r.ppl_base).abs() / r.ppl < 1e-3);
    }

    #[test]
    fn base_file_round_trips_and_rejects_damage() {
        let dir = std::env::temp_dir().join(format!("hearth-kld-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("base.kld");
        let nv = log_probs_row_len(5);
        let base = BaseLogProbs {
            n_ctx: 8,
            n_vocab: 5,
            n_chunks: 2,
            tokens: (0..16).map(|i| i % 5).collect(),
            rows: (0..2 * 3 * nv).map(|i| i as u16).collect(),
        };
        base.write(&path).unwrap();
        assert_eq!(BaseLogProbs::read(&path).unwrap(), base);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        assert!(matches!(BaseLogProbs::read(&path), Err(EvalError::Base(_))));
        std::fs::write(&path, b"GGUF and more bytes than twenty").unwrap();
        assert!(matches!(BaseLogProbs::read(&path), Err(EvalError::Base(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
