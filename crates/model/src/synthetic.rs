//! Random-weight models for tests and benchmarks, written with our own GGUF writer.
//!
//! A [`Spec`] fixes an architecture, a shape and a seed; the weights are a pure
//! function of the spec (each tensor seeded from the spec's seed and its name), so
//! a test can regenerate exactly the file a fixture script quantized with
//! llama-quantize. The vocabulary is a minimal SentencePiece-style one that
//! llama.cpp accepts (`<unk>`, `<s>`, `</s>`, the 256 byte tokens, then filler
//! pieces), so llama.cpp can load the same file and serve as the oracle.
//!
//! Weight scales keep activations near unit variance through the layers: matrices
//! (the token embeddings included) are uniform in `±sqrt(3 / n_in)` and norms
//! near 1, which gives logits of standard deviation about 1, also when the output
//! head is tied to the embeddings (larger embeddings there make the model repeat
//! its input token, a poor test of greedy decoding).

use std::path::Path;

use gguf::{GgufWriter, TensorType};

use crate::ModelError;

mod presets;

/// Shape and seed of a synthetic model.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// `general.architecture`: "llama", "mistral3", "granite", "qwen2", "qwen3", "qwen3moe",
    /// "phi3", "starcoder2", "command-r", "cohere2", "olmo2", "gemma", "gemma2"
    /// or "gemma3"; it decides the tensor set (qwen2's q/k/v biases, qwen3's,
    /// qwen3moe's and gemma3's per-head q/k norms, phi3's fused q|k|v and
    /// gate|up, starcoder2's LayerNorm and projection biases and ungated MLP,
    /// command-r's and cohere2's blocks without `ffn_norm`, olmo2's post-norms
    /// only and whole-row q/k norms, gemma's post-norms and tied head, or
    /// "gpt-oss": biases on q/k/v/o and on the router and experts, attention
    /// sinks, the FFN norm named `post_attention_norm`), or "bloom" (the
    /// embeddings' LayerNorm, fused q|k|v, biases everywhere, a plain MLP).
    pub arch: String,
    /// Vocabulary size; at least 259 (3 special tokens and 256 byte tokens).
    pub n_vocab: usize,
    /// `context_length`.
    pub n_ctx_train: usize,
    /// `embedding_length`.
    pub n_embd: usize,
    /// `block_count`.
    pub n_layer: usize,
    /// `attention.head_count`.
    pub n_head: usize,
    /// `attention.head_count_kv`.
    pub n_head_kv: usize,
    /// `attention.key_length` and `value_length`, when not `n_embd / n_head`.
    pub head_dim: Option<usize>,
    /// `feed_forward_length` (per expert).
    pub n_ff: usize,
    /// `expert_count` (0: dense).
    pub n_expert: usize,
    /// `expert_used_count`.
    pub n_expert_used: usize,
    /// `attention.sliding_window`, if set.
    pub sliding_window: Option<usize>,
    /// `rope.freq_base_swa` (RoPE base of gemma's sliding-window layers), if set.
    pub rope_freq_base_swa: Option<f32>,
    /// `attn_logit_softcapping`, if set.
    pub attn_softcap: Option<f32>,
    /// `final_logit_softcapping`, if set.
    pub final_softcap: Option<f32>,
    /// `logit_scale` (command-r, granite), if set.
    pub logit_scale: Option<f32>,
    /// Granite's `embedding_scale`, `residual_scale` and `attention.scale`,
    /// if set.
    pub granite_scales: Option<[f32; 3]>,
    /// YaRN RoPE scaling (mistral3, gpt-oss): factor, original context length
    /// and `yarn_log_multiplier` (written unless 0); writes beta_fast 32 and
    /// beta_slow 1 with them.
    pub yarn: Option<(f32, usize, f32)>,
    /// `attention.temperature_scale` (mistral3), if set.
    pub attn_temperature: Option<f32>,
    /// LongRoPE (phi3): the original context length; writes
    /// `rope.scaling.original_context_length`, the converter's
    /// `rope.scaling.attn_factor` and the `rope_factors_long` / `_short` tensors.
    pub long_rope: Option<usize>,
    /// `rope.freq_base`.
    pub rope_freq_base: f32,
    /// `attention.layer_norm_rms_epsilon`.
    pub norm_eps: f32,
    /// Omit `output.weight` (the head reuses `token_embd.weight`).
    pub tied_output: bool,
    /// Seed of every tensor's values.
    pub seed: u64,
}

impl Spec {
    /// Names and shapes of every tensor, in file order, with the scale of its
    /// values: (name, dims, kind).
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<u64>, Kind)> {
        let (e, v, f) = (self.n_embd as u64, self.n_vocab as u64, self.n_ff as u64);
        let hd = self.head_dim() as u64;
        let (qd, kvd) = (hd * self.n_head as u64, hd * self.n_head_kv as u64);
        let arch = self.arch.as_str();
        let post_norms = matches!(arch, "gemma2" | "gemma3" | "olmo2");
        let pre_norms = arch != "olmo2";
        // StarCoder2 and BLOOM: every norm and projection has a bias.
        let biases = matches!(arch, "starcoder2" | "bloom");
        // phi3 and BLOOM: one fused q|k|v projection.
        let fused_qkv = matches!(arch, "phi3" | "bloom");
        // gpt-oss: biases on the attention projections and the experts.
        let oss = arch == "gpt-oss";
        let norm = |t: &mut Vec<(String, Vec<u64>, Kind)>, name: &str| {
            t.push((format!("{name}.weight"), vec![e], Kind::Norm));
            if biases {
                t.push((format!("{name}.bias"), vec![e], Kind::Bias));
            }
        };
        let mut t = vec![("token_embd.weight".to_owned(), vec![e, v], Kind::Matrix)];
        if arch == "bloom" {
            norm(&mut t, "token_embd_norm");
        }
        if self.long_rope.is_some() {
            for name in ["rope_factors_long.weight", "rope_factors_short.weight"] {
                t.push((name.to_owned(), vec![hd / 2], Kind::RopeFactor));
            }
        }
        for i in 0..self.n_layer {
            let p = format!("blk.{i}");
            if pre_norms {
                norm(&mut t, &format!("{p}.attn_norm"));
            }
            if fused_qkv {
                t.push((
                    format!("{p}.attn_qkv.weight"),
                    vec![e, qd + 2 * kvd],
                    Kind::Matrix,
                ));
                if biases {
                    t.push((format!("{p}.attn_qkv.bias"), vec![qd + 2 * kvd], Kind::Bias));
                }
            } else {
                t.push((format!("{p}.attn_q.weight"), vec![e, qd], Kind::Matrix));
                t.push((format!("{p}.attn_k.weight"), vec![e, kvd], Kind::Matrix));
                t.push((format!("{p}.attn_v.weight"), vec![e, kvd], Kind::Matrix));
            }
            if arch == "qwen2" || (biases && !fused_qkv) || oss {
                t.push((format!("{p}.attn_q.bias"), vec![qd], Kind::Bias));
                t.push((format!("{p}.attn_k.bias"), vec![kvd], Kind::Bias));
                t.push((format!("{p}.attn_v.bias"), vec![kvd], Kind::Bias));
            }
            if matches!(arch, "qwen3" | "qwen3moe" | "gemma3") {
                t.push((format!("{p}.attn_q_norm.weight"), vec![hd], Kind::Norm));
                t.push((format!("{p}.attn_k_norm.weight"), vec![hd], Kind::Norm));
            } else if arch == "olmo2" {
                t.push((format!("{p}.attn_q_norm.weight"), vec![qd], Kind::Norm));
                t.push((format!("{p}.attn_k_norm.weight"), vec![kvd], Kind::Norm));
            }
            t.push((format!("{p}.attn_output.weight"), vec![qd, e], Kind::Matrix));
            if biases || oss {
                t.push((format!("{p}.attn_output.bias"), vec![e], Kind::Bias));
            }
            if oss {
                t.push((
                    format!("{p}.attn_sinks.weight"),
                    vec![self.n_head as u64],
                    Kind::Sink,
                ));
                t.push((
                    format!("{p}.post_attention_norm.weight"),
                    vec![e],
                    Kind::Norm,
                ));
            }
            if post_norms {
                t.push((
                    format!("{p}.post_attention_norm.weight"),
                    vec![e],
                    Kind::Norm,
                ));
            }
            if pre_norms && !matches!(arch, "command-r" | "cohere2" | "gpt-oss") {
                norm(&mut t, &format!("{p}.ffn_norm"));
            }
            if biases {
                t.push((format!("{p}.ffn_up.weight"), vec![e, f], Kind::Matrix));
                t.push((format!("{p}.ffn_up.bias"), vec![f], Kind::Bias));
                t.push((format!("{p}.ffn_down.weight"), vec![f, e], Kind::Matrix));
                t.push((format!("{p}.ffn_down.bias"), vec![e], Kind::Bias));
            } else if arch == "phi3" {
                t.push((format!("{p}.ffn_up.weight"), vec![e, 2 * f], Kind::Matrix));
                t.push((format!("{p}.ffn_down.weight"), vec![f, e], Kind::Matrix));
            } else if self.n_expert == 0 {
                t.push((format!("{p}.ffn_gate.weight"), vec![e, f], Kind::Matrix));
                t.push((format!("{p}.ffn_up.weight"), vec![e, f], Kind::Matrix));
                t.push((format!("{p}.ffn_down.weight"), vec![f, e], Kind::Matrix));
            } else {
                let x = self.n_expert as u64;
                t.push((format!("{p}.ffn_gate_inp.weight"), vec![e, x], Kind::Matrix));
                if oss {
                    t.push((format!("{p}.ffn_gate_inp.bias"), vec![x], Kind::Bias));
                }
                for (name, n_in, n_out) in [("gate", e, f), ("up", e, f), ("down", f, e)] {
                    t.push((
                        format!("{p}.ffn_{name}_exps.weight"),
                        vec![n_in, n_out, x],
                        Kind::Matrix,
                    ));
                    if oss {
                        t.push((
                            format!("{p}.ffn_{name}_exps.bias"),
                            vec![n_out, x],
                            Kind::Bias,
                        ));
                    }
                }
            }
            if post_norms {
                t.push((format!("{p}.post_ffw_norm.weight"), vec![e], Kind::Norm));
            }
        }
        norm(&mut t, "output_norm");
        if !self.tied_output {
            t.push(("output.weight".to_owned(), vec![e, v], Kind::Matrix));
        }
        t
    }

    /// Values per attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.n_embd / self.n_head)
    }

    /// The f32 values of tensor `name` (`n` of them) of the given kind.
    pub fn values(&self, name: &str, n: usize, n_in: usize, kind: Kind) -> Vec<f32> {
        let mut rng = Rng::new(self.seed ^ fnv1a(name.as_bytes()));
        let (center, half_width) = match kind {
            Kind::Norm => (1.0, 0.2),
            Kind::Matrix => (0.0, (3.0 / n_in as f32).sqrt()),
            Kind::Bias => (0.0, 0.5),
            Kind::RopeFactor => (2.0, 1.0),
            Kind::Sink => (0.0, 2.0),
        };
        (0..n)
            .map(|_| center + half_width * rng.uniform())
            .collect()
    }

    /// The GGUF metadata and tensors, each tensor of two or more dimensions stored
    /// as `ty_for(name)` (quantized with hearth's reference kernels, bit-exact with
    /// llama-quantize), one-dimensional tensors and biases as F32 (which
    /// llama-quantize never quantizes).
    pub fn build(&self, ty_for: &dyn Fn(&str) -> TensorType) -> Result<GgufWriter, ModelError> {
        if self.n_vocab < FIRST_PIECE {
            return Err(ModelError::InvalidRequest(format!(
                "a synthetic vocabulary needs at least {FIRST_PIECE} tokens, got {}",
                self.n_vocab
            )));
        }
        let mut w = GgufWriter::new();
        self.add_metadata(&mut w);
        for (name, dims, kind) in self.tensor_shapes() {
            let n: usize = dims.iter().product::<u64>() as usize;
            let values = self.values(&name, n, dims[0] as usize, kind);
            let ty = if dims.len() == 1 || kind == Kind::Bias {
                TensorType::F32
            } else {
                ty_for(&name)
            };
            let bytes = quantize(ty, &values)?;
            w.add_tensor(&name, ty, &dims, &bytes)?;
        }
        Ok(w)
    }

    /// Writes the model to `path` with every matrix stored as `ty`.
    pub fn write(&self, path: &Path, ty: TensorType) -> Result<(), ModelError> {
        self.build(&|_| ty)?.write_file(path)?;
        Ok(())
    }

    /// A random LoRA adapter for this model, as llama.cpp's
    /// `convert_lora_to_gguf.py` lays one out: `general.type = adapter`,
    /// `adapter.lora.alpha`, and for each base matrix in `targets` a
    /// `.lora_a` of `rank` rows of the base's row length and a `.lora_b` of
    /// the base's rows of `rank` (for `token_embd.weight`, a `rank`-long row
    /// per token and per embedding value), stored as `ty`. The values are a
    /// function of `seed` and the tensor names; `lora_b` is not zero (as a
    /// freshly initialised PEFT adapter's is) so that the adapter changes
    /// the logits.
    pub fn lora(
        &self,
        targets: &[&str],
        rank: usize,
        alpha: f32,
        ty: TensorType,
        seed: u64,
    ) -> Result<GgufWriter, ModelError> {
        let shapes: std::collections::HashMap<String, Vec<u64>> = self
            .tensor_shapes()
            .into_iter()
            .map(|(name, dims, _)| (name, dims))
            .collect();
        let mut w = GgufWriter::new();
        w.add_str("general.architecture", &self.arch);
        w.add_str("general.type", "adapter");
        w.add_str("general.name", "hearth-synthetic-lora");
        w.add_str("adapter.type", "lora");
        w.add_f32("adapter.lora.alpha", alpha);
        let r = rank as u64;
        for &name in targets {
            let Some(dims) = shapes.get(name).filter(|d| d.len() == 2) else {
                return Err(ModelError::InvalidRequest(format!(
                    "'{name}' is not a matrix of the model"
                )));
            };
            let (a_dims, b_dims) = if name == "token_embd.weight" {
                ([r, dims[1]], [r, dims[0]])
            } else {
                ([dims[0], r], [r, dims[1]])
            };
            for (suffix, d) in [("lora_a", a_dims), ("lora_b", b_dims)] {
                let tensor = format!("{name}.{suffix}");
                let n = (d[0] * d[1]) as usize;
                let mut rng = Rng::new(seed ^ fnv1a(tensor.as_bytes()));
                let half_width = (3.0 / d[0] as f32).sqrt();
                let values: Vec<f32> = (0..n).map(|_| half_width * rng.uniform()).collect();
                w.add_tensor(&tensor, ty, &d, &quantize(ty, &values)?)?;
            }
        }
        Ok(w)
    }

    fn add_metadata(&self, w: &mut GgufWriter) {
        let a = &self.arch;
        w.add_str("general.architecture", a);
        w.add_str("general.name", "hearth-synthetic");
        w.add_u32(&format!("{a}.context_length"), self.n_ctx_train as u32);
        w.add_u32(&format!("{a}.embedding_length"), self.n_embd as u32);
        w.add_u32(&format!("{a}.block_count"), self.n_layer as u32);
        w.add_u32(&format!("{a}.feed_forward_length"), self.n_ff as u32);
        w.add_u32(&format!("{a}.attention.head_count"), self.n_head as u32);
        w.add_u32(
            &format!("{a}.attention.head_count_kv"),
            self.n_head_kv as u32,
        );
        w.add_f32(&format!("{a}.rope.freq_base"), self.rope_freq_base);
        let eps_key = if matches!(a.as_str(), "starcoder2" | "command-r" | "cohere2" | "bloom") {
            "attention.layer_norm_epsilon"
        } else {
            "attention.layer_norm_rms_epsilon"
        };
        w.add_f32(&format!("{a}.{eps_key}"), self.norm_eps);
        w.add_u32(&format!("{a}.rope.dimension_count"), self.head_dim() as u32);
        if let Some(hd) = self.head_dim {
            w.add_u32(&format!("{a}.attention.key_length"), hd as u32);
            w.add_u32(&format!("{a}.attention.value_length"), hd as u32);
        }
        if let Some(base) = self.rope_freq_base_swa {
            w.add_f32(&format!("{a}.rope.freq_base_swa"), base);
        }
        if let Some(cap) = self.attn_softcap {
            w.add_f32(&format!("{a}.attn_logit_softcapping"), cap);
        }
        if let Some(cap) = self.final_softcap {
            w.add_f32(&format!("{a}.final_logit_softcapping"), cap);
        }
        if let Some(scale) = self.logit_scale {
            w.add_f32(&format!("{a}.logit_scale"), scale);
        }
        if let Some((factor, orig, log_mul)) = self.yarn {
            w.add_str(&format!("{a}.rope.scaling.type"), "yarn");
            w.add_f32(&format!("{a}.rope.scaling.factor"), factor);
            w.add_u32(
                &format!("{a}.rope.scaling.original_context_length"),
                orig as u32,
            );
            if log_mul != 0.0 {
                w.add_f32(&format!("{a}.rope.scaling.yarn_log_multiplier"), log_mul);
            }
            w.add_f32(&format!("{a}.rope.scaling.yarn_beta_fast"), 32.0);
            w.add_f32(&format!("{a}.rope.scaling.yarn_beta_slow"), 1.0);
        }
        if let Some(t) = self.attn_temperature {
            w.add_f32(&format!("{a}.attention.temperature_scale"), t);
        }
        if let Some([embedding, residual, attention]) = self.granite_scales {
            w.add_f32(&format!("{a}.embedding_scale"), embedding);
            w.add_f32(&format!("{a}.residual_scale"), residual);
            w.add_f32(&format!("{a}.attention.scale"), attention);
        }
        if let Some(orig) = self.long_rope {
            // conversion/phi.py: sqrt(1 + ln(scale) / ln(n_ctx_orig)).
            let scale = self.n_ctx_train as f64 / orig as f64;
            let attn_factor = (1.0 + scale.ln() / (orig as f64).ln()).sqrt();
            w.add_u32(
                &format!("{a}.rope.scaling.original_context_length"),
                orig as u32,
            );
            w.add_f32(&format!("{a}.rope.scaling.attn_factor"), attn_factor as f32);
        }
        w.add_u32(&format!("{a}.vocab_size"), self.n_vocab as u32);
        if self.n_expert > 0 {
            w.add_u32(&format!("{a}.expert_count"), self.n_expert as u32);
            w.add_u32(&format!("{a}.expert_used_count"), self.n_expert_used as u32);
            if matches!(a.as_str(), "qwen3moe" | "gpt-oss") {
                w.add_u32(&format!("{a}.expert_feed_forward_length"), self.n_ff as u32);
            }
        }
        if let Some(sw) = self.sliding_window {
            w.add_u32(&format!("{a}.attention.sliding_window"), sw as u32);
        }
        let (tokens, scores, types) = vocabulary(self.n_vocab);
        w.add_str("tokenizer.ggml.model", "llama");
        w.add_str_array("tokenizer.ggml.tokens", &tokens);
        w.add_f32_array("tokenizer.ggml.scores", &scores);
        w.add_i32_array("tokenizer.ggml.token_type", &types);
        w.add_u32("tokenizer.ggml.unknown_token_id", 0);
        w.add_u32("tokenizer.ggml.bos_token_id", 1);
        w.add_u32("tokenizer.ggml.eos_token_id", 2);
    }
}

/// How a tensor's values are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Norm weights: uniform in 1 ± 0.2.
    Norm,
    /// Projections: uniform in ±sqrt(3 / n_in) (unit output variance).
    Matrix,
    /// Biases: uniform in ±0.5.
    Bias,
    /// LongRoPE frequency factors: uniform in [1, 3).
    RopeFactor,
    /// Attention sinks (gpt-oss): uniform in ±2, so that they take a
    /// visible share of unit-scale attention scores.
    Sink,
}

/// Index of the first filler piece: after `<unk>`, `<s>`, `</s>` and 256 bytes.
const FIRST_PIECE: usize = 3 + 256;

/// A SentencePiece-style vocabulary of `n` tokens: tokens, scores, token types
/// (llama.cpp's `LLAMA_TOKEN_TYPE_*`: 1 normal, 2 unknown, 3 control, 6 byte).
fn vocabulary(n: usize) -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let mut tokens = vec!["<unk>".to_owned(), "<s>".to_owned(), "</s>".to_owned()];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    for i in FIRST_PIECE..n {
        tokens.push(format!("\u{2581}t{i}"));
        types.push(1);
    }
    let scores = (0..n).map(|i| -(i as f32)).collect();
    (tokens, scores, types)
}

/// `values` stored as `ty`.
fn quantize(ty: TensorType, values: &[f32]) -> Result<Vec<u8>, ModelError> {
    let size = ty.row_size(values.len() as u64).ok_or_else(|| {
        ModelError::InvalidRequest(format!("{} values cannot be stored as {ty}", values.len()))
    })?;
    let mut out = vec![0u8; size as usize];
    kernels::quantize(ty, values, &mut out)?;
    Ok(out)
}

/// FNV-1a, to derive a per-tensor seed from its name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64: a small, fast, well-mixed generator; the sequence is part of the
/// fixture contract, so it must never change.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1), with 24 bits of precision.
    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_a_function_of_seed_and_name() {
        let s = Spec::tiny_llama();
        let a = s.values("blk.0.attn_q.weight", 8, 256, Kind::Matrix);
        assert_eq!(a, s.values("blk.0.attn_q.weight", 8, 256, Kind::Matrix));
        assert_ne!(a, s.values("blk.1.attn_q.weight", 8, 256, Kind::Matrix));
        let bound = (3.0f32 / 256.0).sqrt();
        assert!(a.iter().all(|v| v.abs() <= bound));
        // The generator's first outputs are part of the fixture contract.
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn vocabulary_has_byte_tokens_where_llama_cpp_looks() {
        let (tokens, scores, types) = vocabulary(300);
        assert_eq!(tokens.len(), 300);
        assert_eq!(tokens[3 + 0x0A], "<0x0A>");
        assert_eq!(types[3 + 0x0A], 6);
        assert_eq!(scores.len(), 300);
        assert_eq!(types[299], 1);
    }

    #[test]
    fn too_small_vocabulary_is_an_error() {
        let s = Spec {
            n_vocab: 100,
            ..Spec::tiny_llama()
        };
        assert!(matches!(
            s.build(&|_| TensorType::F32),
            Err(ModelError::InvalidRequest(_))
        ));
    }
}
