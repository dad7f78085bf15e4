//! The `llama` architecture: Llama 2, 3, 3.1, 3.2, CodeLlama, DeepSeek-Coder,
//! Mistral and Mixtral as GGUF files describe them (`general.architecture =
//! "llama"`). Follows llama.cpp's src/models/llama.cpp graph step by step:
//!
//! ```text
//! x = token_embd[tokens]
//! for each layer:
//!     h = rmsnorm(x) · attn_norm
//!     q, k, v = Wq h, Wk h, Wv h            (grouped-query: fewer k/v heads)
//!     q, k = rope(q), rope(k)               (NORMAL pairing, llama3 factors, YaRN)
//!     x += Wo attention(q, cache k, cache v)
//!     h = rmsnorm(x) · ffn_norm
//!     x += Wdown (silu(Wgate h) * Wup h)    (or the top-k mixture of experts)
//! logits = Woutput (rmsnorm(x) · output_norm)   (Woutput tied to token_embd if absent)
//! ```
//!
//! Shapes are written ggml-style, row length first: `(n_embd, n_vocab)` is
//! `n_vocab` rows of `n_embd`.
//!
//! Sliding window: llama.cpp ignores `llama.attention.sliding_window` for this
//! architecture; hearth applies it when the file sets it (Mistral v0.1's 4096),
//! which only changes results for sequences longer than the window.

use gguf::GgufModel;
use kernels::matmul::{matmul, matmul_expert};

use super::common::{
    Decoder, Dims, Linear, Out, Step, embed, norm_rows, output_head, project, rope_qk,
    self_attention,
};
use crate::ModelError;
use crate::loader::{Hparams, Tensor, Tensors, Use, config};
use crate::ops::attention::AttentionShape;
use crate::ops::rope::{Rope, RopeMode};
use crate::ops::{add_assign, route_top_k, swiglu};

/// Tokens processed together in one pass through the layers; longer inputs are
/// split. Bounds the activation buffers; weights are read once per batch.
pub const N_BATCH: usize = 256;

/// Hyper-parameters, from the `llama.*` metadata keys.
#[derive(Clone, Debug)]
pub struct Config {
    /// Vocabulary size (`llama.vocab_size`, else the tokenizer's token count).
    pub n_vocab: usize,
    /// Training context (`llama.context_length`).
    pub n_ctx_train: usize,
    /// Residual stream width (`llama.embedding_length`).
    pub n_embd: usize,
    /// Transformer blocks (`llama.block_count`).
    pub n_layer: usize,
    /// Query heads (`llama.attention.head_count`).
    pub n_head: usize,
    /// Key/value heads (`llama.attention.head_count_kv`, default `n_head`).
    pub n_head_kv: usize,
    /// Values per head (`llama.attention.key_length`, default `n_embd / n_head`).
    pub head_dim: usize,
    /// Hidden width of the feed-forward network (per expert for MoE).
    pub n_ff: usize,
    /// Experts per MoE layer (`llama.expert_count`); 0 for a dense model.
    pub n_expert: usize,
    /// Experts each token is routed to (`llama.expert_used_count`).
    pub n_expert_used: usize,
    /// `llama.attention.layer_norm_rms_epsilon`.
    pub norm_eps: f32,
    /// RoPE parameters after applying the scaling keys.
    pub rope: Rope,
    /// `llama.attention.sliding_window`, when set and positive.
    pub window: Option<usize>,
}

impl Config {
    /// Reads the hyper-parameters the way llama.cpp's `llama_model::load_hparams`
    /// does for this architecture.
    pub fn from_metadata(gguf: &GgufModel) -> Result<Config, ModelError> {
        let md = gguf.metadata();
        let hp = Hparams::new(md, "llama");
        let n_layer = hp.layer_count()?;
        let n_embd = hp.count("embedding_length")?;
        let same_every_layer = |suffix: &str, values: Vec<usize>| match values.first() {
            Some(&first) if values.iter().all(|&v| v == first) && first > 0 => Ok(first),
            _ => Err(config(
                &hp.key(suffix),
                "must be positive and the same in every layer",
            )),
        };
        let n_head = match hp.per_layer("attention.head_count", n_layer)? {
            Some(v) => same_every_layer("attention.head_count", v)?,
            None => return Err(config(&hp.key("attention.head_count"), "missing")),
        };
        let n_head_kv = match hp.per_layer("attention.head_count_kv", n_layer)? {
            Some(v) => same_every_layer("attention.head_count_kv", v)?,
            None => n_head,
        };
        if !n_head.is_multiple_of(n_head_kv) {
            return Err(config(
                &hp.key("attention.head_count_kv"),
                &format!("{n_head_kv} does not divide the {n_head} query heads"),
            ));
        }
        let n_ff = match hp.per_layer("feed_forward_length", n_layer)? {
            Some(v) => same_every_layer("feed_forward_length", v)?,
            None => return Err(config(&hp.key("feed_forward_length"), "missing")),
        };
        let head_dim = hp
            .opt_count("attention.key_length")?
            .unwrap_or(n_embd / n_head);
        if hp
            .opt_count("attention.value_length")?
            .is_some_and(|v| v != head_dim)
        {
            return Err(config(
                &hp.key("attention.value_length"),
                "must equal the key length",
            ));
        }
        let n_rot = hp.opt_count("rope.dimension_count")?.unwrap_or(head_dim);
        if n_rot != head_dim || head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(config(
                &hp.key("rope.dimension_count"),
                &format!("{n_rot} must equal the (even) head size {head_dim}"),
            ));
        }
        let n_expert = hp.opt_count("expert_count")?.unwrap_or(0);
        let n_expert_used = hp.opt_count("expert_used_count")?.unwrap_or(0);
        if (n_expert > 0) != (n_expert_used > 0) || n_expert_used > n_expert {
            return Err(config(
                &hp.key("expert_used_count"),
                &format!("{n_expert_used} experts used of {n_expert}"),
            ));
        }
        let n_vocab = match hp.opt_count("vocab_size")? {
            Some(n) => n,
            None => md
                .opt_str_array("tokenizer.ggml.tokens")?
                .map(<[String]>::len)
                .ok_or_else(|| {
                    config(
                        &hp.key("vocab_size"),
                        "missing, and no tokenizer.ggml.tokens",
                    )
                })?,
        };
        let n_ctx_train = hp.count("context_length")?;
        Ok(Config {
            n_vocab,
            n_ctx_train,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            n_expert,
            n_expert_used,
            norm_eps: hp
                .opt_f32("attention.layer_norm_rms_epsilon")?
                .unwrap_or(1e-5),
            rope: rope_from_hparams(&hp, n_rot, n_ctx_train)?,
            window: hp.opt_count("attention.sliding_window")?.filter(|&w| w > 0),
        })
    }

    /// Values per position in the KV cache: `n_head_kv * head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Width of all query heads together: `n_head * head_dim`.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }
}

/// RoPE parameters from `rope.freq_base` and `rope.scaling.*`, resolved as
/// llama.cpp's `llama_context` constructor resolves its `cparams`.
fn rope_from_hparams(
    hp: &Hparams<'_>,
    n_rot: usize,
    n_ctx_train: usize,
) -> Result<Rope, ModelError> {
    let scaling = hp.opt_str("rope.scaling.type")?.unwrap_or("linear");
    let factor = match hp.opt_f32("rope.scaling.factor")? {
        Some(f) => Some(f),
        None => hp.opt_f32("rope.scale_linear")?,
    };
    let mut freq_scale = factor.filter(|&f| f != 0.0).map_or(1.0, |f| 1.0 / f);
    let ext_factor = match scaling {
        "none" => {
            freq_scale = 1.0;
            0.0
        }
        "linear" => 0.0,
        "yarn" => 1.0,
        other => {
            return Err(config(
                &hp.key("rope.scaling.type"),
                &format!("'{other}' is not supported (none, linear, yarn)"),
            ));
        }
    };
    let mut attn_factor = 1.0f32;
    if ext_factor != 0.0 {
        // llama.cpp sets yarn_attn_factor = mscale(factor) and then cancels the
        // mscale that rope_yarn multiplies in again; the product stays ~1.
        let scale = 1.0 / freq_scale;
        let mscale = if scale <= 1.0 {
            1.0
        } else {
            0.1 * scale.ln() + 1.0
        };
        attn_factor = mscale * (1.0 / (1.0 + 0.1 * scale.ln()));
    }
    attn_factor *= hp.opt_f32("rope.scaling.attn_factor")?.unwrap_or(1.0);
    Ok(Rope {
        mode: RopeMode::Normal,
        n_dims: n_rot,
        freq_base: hp.opt_f32("rope.freq_base")?.unwrap_or(10000.0),
        freq_scale,
        ext_factor,
        attn_factor,
        beta_fast: 32.0,
        beta_slow: 1.0,
        n_ctx_orig: hp
            .opt_count("rope.scaling.original_context_length")?
            .unwrap_or(n_ctx_train),
    })
}

/// The feed-forward part of one block.
#[derive(Debug)]
enum Ffn {
    Dense {
        /// (n_embd, n_ff)
        gate: Linear,
        /// (n_embd, n_ff)
        up: Linear,
        /// (n_ff, n_embd)
        down: Linear,
    },
    Moe {
        /// (n_embd, n_expert) router.
        router: Tensor,
        /// (n_embd, n_ff, n_expert)
        gate: Tensor,
        /// (n_embd, n_ff, n_expert)
        up: Tensor,
        /// (n_ff, n_embd, n_expert)
        down: Tensor,
    },
}

/// One transformer block's weights.
#[derive(Debug)]
struct Layer {
    /// (n_embd)
    attn_norm: Vec<f32>,
    /// (n_embd, n_head * head_dim)
    q: Linear,
    /// (n_embd, n_head_kv * head_dim)
    k: Linear,
    /// (n_embd, n_head_kv * head_dim)
    v: Linear,
    /// (n_head * head_dim, n_embd)
    o: Linear,
    /// (n_embd)
    ffn_norm: Vec<f32>,
    ffn: Ffn,
}

/// Views of every tensor (matrices stay in the memory map; the small vectors are
/// copied out as f32 at load).
#[derive(Debug)]
pub struct Weights {
    /// (n_embd, n_vocab)
    token_embd: Tensor,
    layers: Vec<Layer>,
    /// (n_embd)
    output_norm: Vec<f32>,
    /// (n_embd, n_vocab); `token_embd` when the file has no `output.weight`.
    output: Linear,
    /// (head_dim / 2) llama3-style RoPE frequency factors (`rope_freqs.weight`).
    rope_freqs: Option<Vec<f32>>,
}

impl Weights {
    /// Finds and checks every tensor the config implies.
    pub fn load(gguf: &GgufModel, c: &Config) -> Result<Weights, ModelError> {
        let t = Tensors::new(gguf);
        let (e, v, f) = (c.n_embd as u64, c.n_vocab as u64, c.n_ff as u64);
        let (qd, kvd) = (c.q_dim() as u64, c.kv_dim() as u64);
        let vector = |name: &str, n: u64| -> Result<Vec<f32>, ModelError> {
            t.get(name, &[n], Use::Read)?.to_f32(gguf)
        };
        let linear = |name: &str, n_in: u64, n_out: u64| -> Result<Linear, ModelError> {
            let w = t.get(&format!("{name}.weight"), &[n_in, n_out], Use::MatMul)?;
            let b = t
                .opt(&format!("{name}.bias"), &[n_out], Use::Read)?
                .map(|b| b.to_f32(gguf))
                .transpose()?;
            Ok(Linear { w, b })
        };
        // The embeddings are only multiplied with (and so repacked) when they
        // double as the output head.
        let output = t.opt("output.weight", &[e, v], Use::MatMul)?;
        let embd_use = if output.is_some() {
            Use::Read
        } else {
            Use::MatMul
        };
        let token_embd = t.get("token_embd.weight", &[e, v], embd_use)?;
        let output = output.unwrap_or_else(|| token_embd.clone());
        let rope_freqs = t
            .opt("rope_freqs.weight", &[c.head_dim as u64 / 2], Use::Read)?
            .map(|r| r.to_f32(gguf))
            .transpose()?;
        let mut layers = Vec::with_capacity(c.n_layer);
        for i in 0..c.n_layer {
            let p = format!("blk.{i}");
            let ffn = if c.n_expert == 0 {
                Ffn::Dense {
                    gate: linear(&format!("{p}.ffn_gate"), e, f)?,
                    up: linear(&format!("{p}.ffn_up"), e, f)?,
                    down: linear(&format!("{p}.ffn_down"), f, e)?,
                }
            } else {
                let x = c.n_expert as u64;
                Ffn::Moe {
                    router: t.get(&format!("{p}.ffn_gate_inp.weight"), &[e, x], Use::MatMul)?,
                    gate: t.get(
                        &format!("{p}.ffn_gate_exps.weight"),
                        &[e, f, x],
                        Use::MatMul,
                    )?,
                    up: t.get(&format!("{p}.ffn_up_exps.weight"), &[e, f, x], Use::MatMul)?,
                    down: t.get(
                        &format!("{p}.ffn_down_exps.weight"),
                        &[f, e, x],
                        Use::MatMul,
                    )?,
                }
            };
            layers.push(Layer {
                attn_norm: vector(&format!("{p}.attn_norm.weight"), e)?,
                q: linear(&format!("{p}.attn_q"), e, qd)?,
                k: linear(&format!("{p}.attn_k"), e, kvd)?,
                v: linear(&format!("{p}.attn_v"), e, kvd)?,
                o: linear(&format!("{p}.attn_output"), qd, e)?,
                ffn_norm: vector(&format!("{p}.ffn_norm.weight"), e)?,
                ffn,
            });
        }
        Ok(Weights {
            token_embd,
            layers,
            output_norm: vector("output_norm.weight", e)?,
            output: Linear { w: output, b: None },
            rope_freqs,
        })
    }

    /// Every matrix, for sizing the activation scratch.
    fn matrices(&self) -> Vec<&Tensor> {
        let mut all = vec![&self.output.w];
        for l in &self.layers {
            all.extend([&l.q.w, &l.k.w, &l.v.w, &l.o.w]);
            match &l.ffn {
                Ffn::Dense { gate, up, down } => all.extend([&gate.w, &up.w, &down.w]),
                Ffn::Moe {
                    router,
                    gate,
                    up,
                    down,
                } => all.extend([router, gate, up, down]),
            }
        }
        all
    }
}

/// The llama architecture: its config and weights.
#[derive(Debug)]
pub struct Llama {
    /// Hyper-parameters.
    pub config: Config,
    /// The sizes every architecture shares, from `config`.
    dims: Dims,
    weights: Weights,
}

impl Llama {
    /// Reads the config and checks every tensor.
    pub fn load(gguf: &GgufModel) -> Result<Llama, ModelError> {
        let config = Config::from_metadata(gguf)?;
        let weights = Weights::load(gguf, &config)?;
        let c = &config;
        let dims = Dims {
            n_vocab: c.n_vocab,
            n_ctx_train: c.n_ctx_train,
            n_embd: c.n_embd,
            n_layer: c.n_layer,
            n_head: c.n_head,
            n_head_kv: c.n_head_kv,
            head_dim: c.head_dim,
            n_rot: c.rope.n_dims,
            n_ff: c.n_ff,
            norm_eps: c.norm_eps,
        };
        Ok(Llama {
            config,
            dims,
            weights,
        })
    }

    /// Mixture of experts over `buf.h` into `buf.proj` for `n` rows (llama.cpp's
    /// `build_moe_ffn` with softmax gating and renormalised weights): each
    /// token's top-k experts run SiLU-gated FFNs, and their outputs, scaled by
    /// the routing weights, are summed in routing order.
    fn moe(
        &self,
        s: &mut Step<'_, '_>,
        n: usize,
        [router, gate, up, down]: [&Tensor; 4],
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let (gguf, pool) = (s.gguf, s.pool);
        let buf = &mut *s.buf;
        let (e, k, nx) = (c.n_embd, c.n_expert_used, c.n_expert);
        let m = &mut buf.moe;
        let collecting = crate::imatrix::collecting();
        if collecting {
            crate::imatrix::record(&router.name, &buf.h[..n * e], e);
        }
        matmul(
            pool,
            &router.matrix(gguf),
            &buf.h[..n * e],
            &mut buf.act,
            &mut m.probs[..n * nx],
        )?;
        for t in 0..n {
            route_top_k(
                &mut m.probs[t * nx..(t + 1) * nx],
                k,
                true,
                &mut m.experts[t * k..(t + 1) * k],
                &mut m.weights[t * k..(t + 1) * k],
            );
        }
        for expert in 0..nx {
            m.rows.clear();
            for t in 0..n {
                for s in 0..k {
                    if m.experts[t * k + s] == expert {
                        m.rows.push((t, s));
                    }
                }
            }
            if m.rows.is_empty() {
                continue;
            }
            let r = m.rows.len();
            for (i, &(t, _)) in m.rows.iter().enumerate() {
                m.gathered[i * e..(i + 1) * e].copy_from_slice(&buf.h[t * e..(t + 1) * e]);
            }
            let nf = r * c.n_ff;
            let x = &m.gathered[..r * e];
            if collecting {
                for w in [gate, up] {
                    crate::imatrix::record_expert(&w.name, expert, nx, x, e);
                }
            }
            matmul_expert(
                pool,
                &gate.expert(gguf, expert),
                x,
                &mut buf.act,
                &mut buf.gate[..nf],
            )?;
            matmul_expert(
                pool,
                &up.expert(gguf, expert),
                x,
                &mut buf.act,
                &mut buf.up[..nf],
            )?;
            swiglu(&mut buf.gate[..nf], &buf.up[..nf]);
            if collecting {
                crate::imatrix::record_expert(&down.name, expert, nx, &buf.gate[..nf], c.n_ff);
            }
            matmul_expert(
                pool,
                &down.expert(gguf, expert),
                &buf.gate[..nf],
                &mut buf.act,
                &mut m.out[..r * e],
            )?;
            for (i, &(t, s)) in m.rows.iter().enumerate() {
                let wt = m.weights[t * k + s];
                let slot = &mut m.slots[(t * k + s) * e..(t * k + s + 1) * e];
                for (d, &v) in slot.iter_mut().zip(&m.out[i * e..(i + 1) * e]) {
                    *d = v * wt;
                }
            }
        }
        for t in 0..n {
            let proj = &mut buf.proj[t * e..(t + 1) * e];
            proj.copy_from_slice(&m.slots[t * k * e..(t * k + 1) * e]);
            for s in 1..k {
                add_assign(proj, &m.slots[(t * k + s) * e..(t * k + s + 1) * e]);
            }
        }
        Ok(())
    }
}

impl Decoder for Llama {
    fn dims(&self) -> &Dims {
        &self.dims
    }

    fn n_batch(&self) -> usize {
        N_BATCH
    }

    fn experts(&self) -> Option<(usize, usize)> {
        let c = &self.config;
        (c.n_expert > 0).then_some((c.n_expert, c.n_expert_used))
    }

    fn matrices(&self) -> Vec<&Tensor> {
        self.weights.matrices()
    }

    fn rope(&self, _layer: usize, _n_ctx: usize) -> (Rope, Option<Vec<f32>>) {
        (self.config.rope.clone(), self.weights.rope_freqs.clone())
    }

    fn forward_batch(
        &self,
        s: &mut Step<'_, '_>,
        tokens: &[u32],
        out: Option<Out<'_>>,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let d = &self.dims;
        let w = &self.weights;
        let n = tokens.len();
        let (e, qd, kvd, nf) = (c.n_embd, c.q_dim(), c.kv_dim(), n * c.n_ff);
        let shape = AttentionShape {
            n_head: c.n_head,
            n_head_kv: c.n_head_kv,
            head_dim: c.head_dim,
            kq_scale: 1.0 / (c.head_dim as f32).sqrt(),
            window: c.window,
            softcap: None,
        };
        let (gguf, pool) = (s.gguf, s.pool);

        // Embedding lookup: dequantize just the rows of these tokens.
        embed(gguf, &w.token_embd, tokens, 1.0, &mut s.buf.x[..n * e])?;
        for (il, layer) in w.layers.iter().enumerate() {
            // Attention block: h = rmsnorm(x) · attn_norm; q, k, v; RoPE.
            let b = &mut *s.buf;
            norm_rows(
                &mut b.h[..n * e],
                &b.x[..n * e],
                &layer.attn_norm,
                c.norm_eps,
            );
            let h = &b.h[..n * e];
            project(gguf, pool, &layer.q, h, &mut b.act, &mut b.q[..n * qd])?;
            project(gguf, pool, &layer.k, h, &mut b.act, &mut b.k[..n * kvd])?;
            project(gguf, pool, &layer.v, h, &mut b.act, &mut b.v[..n * kvd])?;
            rope_qk(
                s.seqs,
                &c.rope,
                &|_| w.rope_freqs.as_deref(),
                c.head_dim,
                &mut b.q[..n * qd],
                &mut b.k[..n * kvd],
                &mut b.rope,
            );
            self_attention(s, il, &shape);
            let b = &mut *s.buf;
            project(
                gguf,
                pool,
                &layer.o,
                &b.attn[..n * qd],
                &mut b.act,
                &mut b.proj[..n * e],
            )?;
            add_assign(&mut b.x[..n * e], &b.proj[..n * e]);

            // Feed-forward block: x += Wdown (silu(Wgate h) * Wup h), or the
            // mixture of experts.
            norm_rows(
                &mut b.h[..n * e],
                &b.x[..n * e],
                &layer.ffn_norm,
                c.norm_eps,
            );
            match &layer.ffn {
                Ffn::Dense { gate, up, down } => {
                    let h = &b.h[..n * e];
                    project(gguf, pool, gate, h, &mut b.act, &mut b.gate[..nf])?;
                    project(gguf, pool, up, h, &mut b.act, &mut b.up[..nf])?;
                    swiglu(&mut b.gate[..nf], &b.up[..nf]);
                    project(
                        gguf,
                        pool,
                        down,
                        &b.gate[..nf],
                        &mut b.act,
                        &mut b.proj[..n * e],
                    )?;
                }
                Ffn::Moe {
                    router,
                    gate,
                    up,
                    down,
                } => self.moe(s, n, [router, gate, up, down])?,
            }
            let b = &mut *s.buf;
            add_assign(&mut b.x[..n * e], &b.proj[..n * e]);
        }

        // Output head, only for the rows asked for.
        match out {
            Some(out) => output_head(s, d, &w.output_norm, &w.output, None, out),
            None => Ok(()),
        }
    }
}
