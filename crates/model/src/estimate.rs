//! "Will it fit, and how fast will it be?" from a GGUF header alone.
//!
//! [`Shape`] is what the header says (hyper-parameters and every tensor's
//! format and size); [`Shape::memory`] adds up what hearth allocates to run
//! it: the weights (mapped, or repacked copies of the same size), the f16 KV
//! cache of every sequence, and the activation buffers of a forward pass.
//! [`Calibration`] measures this machine in a few seconds: memory bandwidth,
//! and for each common format the weights per second of a matrix-vector
//! product too large for the caches (what decoding one token does) and of a
//! 256-row matrix product (what prompt processing does, bound by the int8 or
//! f16 dot throughput). [`predict`] divides the work of one token by those
//! rates, so the speed follows the model's formats as well as its size.

use std::collections::BTreeMap;
use std::time::Instant;

use gguf::{Metadata, TensorInfo, TensorType};
use kernels::matmul::{Matrix, PackedMatrix, activation_scratch_len, matmul};
use kernels::pool::ThreadPool;

use crate::ModelError;

/// Rows hearth's Llama forward pass runs together (its `N_BATCH`); other
/// architectures run 64.
const LLAMA_BATCH: usize = 256;
const OTHER_BATCH: usize = 64;

/// What the header says about a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    /// `general.architecture`.
    pub arch: String,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Residual width.
    pub n_embd: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Values per key head.
    pub head_dim: usize,
    /// Feed-forward width (each expert's, for a mixture of experts).
    pub n_ff: usize,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Training context.
    pub n_ctx_train: usize,
    /// Experts per layer (0 for dense models) and experts used per token.
    pub n_expert: (usize, usize),
    /// Every tensor: name, format, elements, bytes.
    pub tensors: Vec<(String, TensorType, u64, u64)>,
}

/// Bytes hearth needs to run a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// Weights.
    pub weights: u64,
    /// KV cache of all sequences.
    pub kv_cache: u64,
    /// Activation buffers, logits and attention scratch.
    pub compute: u64,
    /// The runtime itself (code, allocator, thread stacks).
    pub overhead: u64,
}

impl Memory {
    /// The sum.
    pub fn total(&self) -> u64 {
        self.weights + self.kv_cache + self.compute + self.overhead
    }
}

/// Resident memory of the hearth process before a model (measured: about
/// 12 MiB for `hearth bench` on x86-64 Linux).
const OVERHEAD: u64 = 12 << 20;

/// Reads a count stored as one integer or as one per layer (the largest).
fn count(md: &Metadata, key: &str) -> Result<Option<usize>, ModelError> {
    match md.opt_u64(key) {
        Ok(v) => Ok(v.map(|v| v as usize)),
        Err(_) => Ok(md
            .opt_i32_array(key)
            .map_err(|e| ModelError::InvalidRequest(format!("{key}: {e}")))?
            .and_then(|a| a.iter().copied().max())
            .map(|v| v.max(0) as usize)),
    }
}

impl Shape {
    /// The shape of the model whose header holds `md` and `tensors`.
    pub fn from_header(md: &Metadata, tensors: &[TensorInfo]) -> Result<Shape, ModelError> {
        let arch = md
            .get_str("general.architecture")
            .map_err(|e| ModelError::InvalidRequest(e.to_string()))?
            .to_owned();
        let need = |suffix: &str| -> Result<usize, ModelError> {
            let key = format!("{arch}.{suffix}");
            count(md, &key)?
                .filter(|&v| v > 0)
                .ok_or_else(|| ModelError::InvalidRequest(format!("{key} is missing")))
        };
        let n_embd = need("embedding_length")?;
        let n_head = need("attention.head_count")?;
        let n_head_kv = count(md, &format!("{arch}.attention.head_count_kv"))?.unwrap_or(n_head);
        let head_dim =
            count(md, &format!("{arch}.attention.key_length"))?.unwrap_or(n_embd / n_head);
        let n_vocab = match count(md, &format!("{arch}.vocab_size"))? {
            Some(n) => n,
            None => md
                .opt_str_array("tokenizer.ggml.tokens")
                .ok()
                .flatten()
                .map_or(0, <[String]>::len),
        };
        Ok(Shape {
            n_layer: need("block_count")?,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            // A mixture of experts' own width where the file gives one
            // (qwen3moe), which is what hearth's FFN buffers hold.
            n_ff: match count(md, &format!("{arch}.expert_feed_forward_length"))? {
                Some(n) => n,
                None => count(md, &format!("{arch}.feed_forward_length"))?.unwrap_or(4 * n_embd),
            },
            n_vocab,
            n_ctx_train: need("context_length")?,
            n_expert: (
                count(md, &format!("{arch}.expert_count"))?.unwrap_or(0),
                count(md, &format!("{arch}.expert_used_count"))?.unwrap_or(0),
            ),
            tensors: tensors
                .iter()
                .map(|t| (t.name.clone(), t.ty, t.n_elements(), t.size))
                .collect(),
            arch,
        })
    }

    /// Bytes of all tensors.
    pub fn weight_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.3).sum()
    }

    /// Weights in all tensors.
    pub fn n_params(&self) -> u64 {
        self.tensors.iter().map(|t| t.2).sum()
    }

    fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    fn n_batch(&self) -> usize {
        if self.arch == "llama" {
            LLAMA_BATCH
        } else {
            OTHER_BATCH
        }
    }

    /// What hearth allocates for `parallel` sequences of `n_ctx` positions
    /// with a KV cache of `kv_type` (hearth stores F16, Q8_0 or Q4_0), on
    /// `n_threads` threads.
    pub fn memory(
        &self,
        n_ctx: usize,
        parallel: usize,
        kv_type: TensorType,
        n_threads: usize,
    ) -> Memory {
        let kv_elems = 2 * self.n_layer as u64 * n_ctx as u64 * self.kv_dim() as u64;
        let kv_per_seq = kv_type.row_size(kv_elems).unwrap_or(kv_elems * 2);
        let b = self.n_batch() as u64;
        let q_dim = (self.n_head * self.head_dim) as u64;
        let floats_per_row =
            3 * self.n_embd as u64 + 2 * q_dim + 2 * self.kv_dim() as u64 + 2 * self.n_ff as u64;
        // Per sequence: its buffers (rows of activations, the activations in
        // the matmul format, attention scratch per thread) and its logits.
        let attn_scratch = n_threads as u64
            * (8 * (3 * self.head_dim as u64 + n_ctx as u64 + 64 * self.head_dim as u64));
        let per_seq = b * floats_per_row * 4
            + b * self.n_ff.max(self.n_embd) as u64 * 2
            + attn_scratch * 4
            + self.n_vocab as u64 * 4;
        Memory {
            weights: self.weight_bytes(),
            kv_cache: kv_per_seq * parallel as u64,
            compute: per_seq * parallel as u64,
            overhead: OVERHEAD,
        }
    }

    /// The matrices a token goes through, with the fraction of each it reads
    /// (experts: the used share), excluding the output head.
    fn per_token_matrices(&self) -> impl Iterator<Item = (TensorType, f64)> + '_ {
        self.tensors.iter().filter_map(move |(name, ty, n, _)| {
            if !name.starts_with("blk.") || !name.ends_with(".weight") || name.contains("norm") {
                return None;
            }
            let frac = if name.contains("_exps") && self.n_expert.0 > 0 {
                self.n_expert.1 as f64 / self.n_expert.0 as f64
            } else {
                1.0
            };
            Some((*ty, *n as f64 * frac))
        })
    }

    /// The output head (the tied embedding when there is no `output.weight`).
    fn output_matrix(&self) -> Option<(TensorType, f64)> {
        let find = |name: &str| {
            self.tensors
                .iter()
                .find(|t| t.0 == name)
                .map(|t| (t.1, t.2 as f64))
        };
        find("output.weight").or_else(|| find("token_embd.weight"))
    }
}

/// Weights per second of one format's products, measured.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FormatRate {
    /// One activation row against a matrix larger than the caches.
    pub gemv_weights_per_s: f64,
    /// 256 activation rows: weight × row products per second.
    pub gemm_products_per_s: f64,
}

/// This machine's speeds, measured by [`Calibration::measure`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    /// Threads the measurement used.
    pub n_threads: usize,
    /// The kernel level (`avx512`, `avx2`, ...).
    pub cpu: String,
    /// Bytes per second read by all threads summing a 256 MiB buffer.
    pub memory_bandwidth_bytes_per_s: f64,
    /// Per format name (ggml's: `q4_K`, `f16`, ...).
    pub formats: BTreeMap<String, FormatRate>,
}

/// Formats calibrated: those of F16, Q8_0, Q4_0 and Q4_K_M files.
const CALIBRATED: [TensorType; 6] = [
    TensorType::F16,
    TensorType::Q8_0,
    TensorType::Q4_0,
    TensorType::Q4_K,
    TensorType::Q5_K,
    TensorType::Q6_K,
];

impl Calibration {
    /// Measures memory bandwidth and each calibrated format's product rates
    /// on `pool` (a few seconds).
    pub fn measure(pool: &ThreadPool) -> Result<Calibration, ModelError> {
        let mut formats = BTreeMap::new();
        for ty in CALIBRATED {
            formats.insert(ty.name().to_owned(), measure_format(pool, ty)?);
        }
        Ok(Calibration {
            n_threads: pool.n_threads(),
            cpu: format!("{:?}", kernels::cpu_level()).to_lowercase(),
            memory_bandwidth_bytes_per_s: measure_bandwidth(pool),
            formats,
        })
    }

    /// The rates of `ty`: measured, or for another format its bytes at the
    /// memory bandwidth (gemv) and Q8_0's products (gemm).
    fn rate(&self, ty: TensorType) -> FormatRate {
        if let Some(r) = self.formats.get(ty.name()) {
            return *r;
        }
        let bytes_per_weight = ty.type_size() as f64 / ty.block_size() as f64;
        let q8 = self
            .formats
            .get(TensorType::Q8_0.name())
            .map_or(1e9, |r| r.gemm_products_per_s);
        FormatRate {
            gemv_weights_per_s: self.memory_bandwidth_bytes_per_s / bytes_per_weight,
            gemm_products_per_s: q8,
        }
    }
}

/// Predicted throughput.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Speed {
    /// Prompt tokens per second (a prompt of `n_prompt` in one call).
    pub prefill_tokens_per_s: f64,
    /// Generated tokens per second (one token per call).
    pub decode_tokens_per_s: f64,
}

/// Speed of `shape` on the calibrated machine: a prompt of `n_prompt`
/// tokens, and generating `n_gen` tokens after `depth` cached positions
/// (llama-bench's pp and tg tests).
pub fn predict(
    shape: &Shape,
    cal: &Calibration,
    n_prompt: usize,
    n_gen: usize,
    depth: usize,
) -> Speed {
    let f16 = cal.rate(TensorType::F16);
    // Attention per query and cached position: K·q and V·p over every head.
    let attn_per_pos = shape.n_layer as f64 * shape.n_head as f64 * 2.0 * shape.head_dim as f64;

    let mut gemv = 0.0;
    let mut gemm = 0.0;
    for (ty, n) in shape.per_token_matrices() {
        let r = cal.rate(ty);
        gemv += n / r.gemv_weights_per_s;
        gemm += n / r.gemm_products_per_s;
    }
    let head_gemv = shape
        .output_matrix()
        .map_or(0.0, |(ty, n)| n / cal.rate(ty).gemv_weights_per_s);

    // Decoding: every matrix once per token, the head once, attention over
    // the mean depth.
    let mean_ctx = depth as f64 + n_gen as f64 / 2.0;
    let decode_s = gemv + head_gemv + attn_per_pos * mean_ctx / f16.gemv_weights_per_s;
    // A prompt: the matrices per token at the batched rate, the head once
    // (only the last token's logits), causal attention over half the prompt.
    let n = n_prompt as f64;
    let prefill_s = n * gemm
        + head_gemv
        + attn_per_pos * n * (depth as f64 + n / 2.0) / f16.gemm_products_per_s;
    Speed {
        prefill_tokens_per_s: n / prefill_s,
        decode_tokens_per_s: 1.0 / decode_s,
    }
}

/// Rates of one format: a gemv over 64 MiB of weights (many copies of 64
/// quantized rows), and 256 rows against the first 1024 rows.
fn measure_format(pool: &ThreadPool, ty: TensorType) -> Result<FormatRate, ModelError> {
    const N_IN: usize = 4096;
    let row = ty.type_size() * N_IN / ty.block_size();
    let n_out = ((64usize << 20) / row).next_multiple_of(64);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let values: Vec<f32> = (0..64 * N_IN).map(|_| rand()).collect();
    let mut block = vec![0u8; 64 * row];
    kernels::quantize(ty, &values, &mut block)?;
    let data: Vec<u8> = block.iter().copied().cycle().take(n_out * row).collect();

    let time = |n_out: usize, n_rows: usize| -> Result<f64, ModelError> {
        let bytes = &data[..n_out * row];
        let packed = PackedMatrix::new(ty, N_IN, n_out, bytes);
        let mut m = Matrix::new(ty, N_IN, n_out, bytes)?;
        if let Some(p) = &packed {
            m = m.with_packed(p)?;
        }
        let x: Vec<f32> = (0..n_rows * N_IN)
            .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
            .collect();
        let mut scratch = vec![0u8; activation_scratch_len(ty, N_IN, n_rows)?];
        let mut y = vec![0f32; n_rows * n_out];
        matmul(pool, &m, &x, &mut scratch, &mut y)?;
        // The best of five windows of 0.06 s: other processes only ever slow
        // a window down, and the machine's own speed is what is predicted.
        let mut best = f64::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            let mut reps = 0;
            while reps < 2 || start.elapsed().as_secs_f64() < 0.06 {
                matmul(pool, &m, &x, &mut scratch, &mut y)?;
                reps += 1;
            }
            best = best.min(start.elapsed().as_secs_f64() / reps as f64);
        }
        Ok(best)
    };
    let gemv_s = time(n_out, 1)?;
    let gemm_rows = 1024.min(n_out);
    let gemm_s = time(gemm_rows, LLAMA_BATCH)?;
    Ok(FormatRate {
        gemv_weights_per_s: (n_out * N_IN) as f64 / gemv_s,
        gemm_products_per_s: (gemm_rows * N_IN * LLAMA_BATCH) as f64 / gemm_s,
    })
}

/// Bytes per second all threads read from a 256 MiB buffer (best of 5).
fn measure_bandwidth(pool: &ThreadPool) -> f64 {
    const LEN: usize = 32 << 20; // u64s: 256 MiB
    let buf: Vec<u64> = (0..LEN as u64).collect();
    let n_tasks = pool.n_threads() * 4;
    let chunk = LEN.div_ceil(n_tasks);
    let sink = std::sync::atomic::AtomicU64::new(0);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        pool.run(n_tasks, &|t| {
            let part = &buf[(t * chunk).min(LEN)..((t + 1) * chunk).min(LEN)];
            let s = part.iter().fold(0u64, |a, &v| a.wrapping_add(v));
            sink.fetch_add(s, std::sync::atomic::Ordering::Relaxed);
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink.into_inner());
    (LEN * 8) as f64 / best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::Spec;

    fn shape_of(spec: &Spec, ty: TensorType, tag: &str) -> Shape {
        let w = spec.build(&|_| ty).unwrap();
        let dir = std::env::temp_dir().join(format!("hearth-estimate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{tag}-{}-{ty}.gguf", spec.arch));
        w.write_file(&path).unwrap();
        let f = gguf::GgufFile::open(&path).unwrap();
        let s = Shape::from_header(f.metadata(), f.tensors()).unwrap();
        std::fs::remove_file(&path).unwrap();
        s
    }

    #[test]
    fn shape_and_kv_cache_from_the_header() {
        let s = shape_of(&Spec::tiny_llama(), TensorType::Q8_0, "shape");
        assert_eq!(
            (s.n_layer, s.n_embd, s.n_head, s.n_head_kv, s.head_dim),
            (2, 256, 4, 2, 64)
        );
        // 2 layers × (K and V) × 1000 positions × 128 values × 2 bytes, twice.
        let m = s.memory(1000, 2, TensorType::F16, 1);
        assert_eq!(m.kv_cache, 2 * 2 * 1000 * 128 * 2 * 2);
        // Q8_0: 34 bytes per 32 values.
        let q8 = s.memory(1000, 1, TensorType::Q8_0, 1);
        assert_eq!(q8.kv_cache, 2 * 2 * 1000 * 128 / 32 * 34);
        assert_eq!(m.weights, s.weight_bytes());
        assert!(m.total() > m.weights + m.kv_cache);
    }

    #[test]
    fn prediction_divides_work_by_rates() {
        let s = shape_of(&Spec::tiny_llama(), TensorType::Q8_0, "predict");
        let rate = FormatRate {
            gemv_weights_per_s: 1e9,
            gemm_products_per_s: 1e10,
        };
        let cal = Calibration {
            n_threads: 1,
            cpu: "test".into(),
            memory_bandwidth_bytes_per_s: 1e10,
            formats: [TensorType::Q8_0, TensorType::F16]
                .map(|t| (t.name().to_owned(), rate))
                .into(),
        };
        let p = predict(&s, &cal, 512, 128, 0);
        let per_token: f64 = s.per_token_matrices().map(|(_, n)| n).sum();
        let head = s.output_matrix().unwrap().1;
        let attn = 2.0 * 4.0 * 2.0 * 64.0;
        let decode = per_token / 1e9 + head / 1e9 + attn * 64.0 / 1e9;
        assert!((p.decode_tokens_per_s - 1.0 / decode).abs() < 1e-6 * p.decode_tokens_per_s);
        let prefill = 512.0 * per_token / 1e10 + head / 1e9 + attn * 512.0 * 256.0 / 1e10;
        assert!((p.prefill_tokens_per_s - 512.0 / prefill).abs() < 1e-6 * p.prefill_tokens_per_s);
    }
}
