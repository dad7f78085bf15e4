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
use kernels::matmul::{Matrix, activation_scratch_len, matmul, matmul_expert};
use kernels::pool::ThreadPool;

use crate::ModelError;
use crate::kv_cache::KvCache;
use crate::loader::{Hparams, Tensor, Tensors, Use, config};
use crate::ops::attention::{self, AttentionShape};
use crate::ops::rope::{Rope, RopeMode};
use crate::ops::{add_assign, rmsnorm, route_top_k, swiglu};

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

/// A projection with an optional bias.
#[derive(Debug)]
struct Linear {
    w: Tensor,
    /// (n_out) bias, added after the product.
    b: Option<Vec<f32>>,
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
    output: Tensor,
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
            output,
            rope_freqs,
        })
    }

    /// Every matrix, for sizing the activation scratch.
    fn matrices(&self) -> Vec<&Tensor> {
        let mut all = vec![&self.output];
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

/// Activation buffers for one batch of up to [`N_BATCH`] tokens, allocated once
/// per [`crate::State`].
#[derive(Debug)]
pub struct Buffers {
    /// (N_BATCH, n_embd) residual stream.
    x: Vec<f32>,
    /// (N_BATCH, n_embd) normalised input of a sub-block.
    h: Vec<f32>,
    /// (N_BATCH, q_dim)
    q: Vec<f32>,
    /// (N_BATCH, kv_dim)
    k: Vec<f32>,
    /// (N_BATCH, kv_dim)
    v: Vec<f32>,
    /// (N_BATCH, q_dim) attention output before Wo.
    attn: Vec<f32>,
    /// (N_BATCH, n_embd) output of Wo / Wdown.
    proj: Vec<f32>,
    /// (N_BATCH, n_ff)
    gate: Vec<f32>,
    /// (N_BATCH, n_ff)
    up: Vec<f32>,
    /// (head_dim) RoPE cos/sin cache.
    rope: Vec<f32>,
    /// Activations converted for the matmul kernels.
    act: Vec<u8>,
    /// Per-thread attention scores.
    attn_scratch: Vec<f32>,
    moe: MoeBuffers,
}

/// Buffers of the mixture-of-experts path (empty for dense models).
#[derive(Debug, Default)]
struct MoeBuffers {
    /// (N_BATCH, n_expert) router logits, then probabilities.
    probs: Vec<f32>,
    /// (N_BATCH, n_expert_used) chosen experts.
    experts: Vec<usize>,
    /// (N_BATCH, n_expert_used) their weights.
    weights: Vec<f32>,
    /// Rows routed to the current expert: (token, slot).
    rows: Vec<(usize, usize)>,
    /// (N_BATCH, n_embd) inputs gathered for one expert.
    gathered: Vec<f32>,
    /// (N_BATCH, n_embd) one expert's outputs.
    out: Vec<f32>,
    /// (N_BATCH, n_expert_used, n_embd) weighted expert outputs per slot.
    slots: Vec<f32>,
}

/// The llama architecture: its config and weights.
#[derive(Debug)]
pub struct Llama {
    /// Hyper-parameters.
    pub config: Config,
    weights: Weights,
}

impl Llama {
    /// Reads the config and checks every tensor.
    pub fn load(gguf: &GgufModel) -> Result<Llama, ModelError> {
        let config = Config::from_metadata(gguf)?;
        let weights = Weights::load(gguf, &config)?;
        Ok(Llama { config, weights })
    }

    /// Allocates the activation buffers for a context of `n_ctx` positions.
    pub fn buffers(&self, pool: &ThreadPool, n_ctx: usize) -> Result<Buffers, ModelError> {
        let c = &self.config;
        let mut act = 0;
        for m in self.weights.matrices() {
            act = act.max(activation_scratch_len(m.ty, m.dims[0] as usize, N_BATCH)?);
        }
        let b = N_BATCH;
        let moe = if c.n_expert > 0 {
            MoeBuffers {
                probs: vec![0.0; b * c.n_expert],
                experts: vec![0; b * c.n_expert_used],
                weights: vec![0.0; b * c.n_expert_used],
                rows: Vec::with_capacity(b * c.n_expert_used),
                gathered: vec![0.0; b * c.n_embd],
                out: vec![0.0; b * c.n_embd],
                slots: vec![0.0; b * c.n_expert_used * c.n_embd],
            }
        } else {
            MoeBuffers::default()
        };
        Ok(Buffers {
            x: vec![0.0; b * c.n_embd],
            h: vec![0.0; b * c.n_embd],
            q: vec![0.0; b * c.q_dim()],
            k: vec![0.0; b * c.kv_dim()],
            v: vec![0.0; b * c.kv_dim()],
            attn: vec![0.0; b * c.q_dim()],
            proj: vec![0.0; b * c.n_embd],
            gate: vec![0.0; b * c.n_ff],
            up: vec![0.0; b * c.n_ff],
            rope: vec![0.0; c.head_dim],
            act: vec![0; act],
            attn_scratch: vec![0.0; attention::scratch_len(pool, n_ctx, c.head_dim)],
            moe,
        })
    }

    /// The RoPE of `layer` and its frequency factors (the K-shift needs them).
    pub fn rope(&self) -> (Rope, Option<Vec<f32>>) {
        (self.config.rope.clone(), self.weights.rope_freqs.clone())
    }

    /// Runs `tokens` at positions `pos0..` through the model, appending their keys
    /// and values to `kv`. `logits` receives one row of `n_vocab` per token when
    /// `all`, else the last token's row only. With `hidden`, the rows are the
    /// final hidden states after the output norm (`n_embd` each, every token's)
    /// instead of logits: what embeddings are pooled from.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        gguf: &GgufModel,
        pool: &ThreadPool,
        kv: &mut KvCache,
        buf: &mut Buffers,
        tokens: &[u32],
        pos0: usize,
        all: bool,
        hidden: bool,
        logits: &mut [f32],
    ) -> Result<(), ModelError> {
        let (all, width) = if hidden {
            (true, self.config.n_embd)
        } else {
            (all, self.config.n_vocab)
        };
        for (i, chunk) in tokens.chunks(N_BATCH).enumerate() {
            let start = i * N_BATCH;
            let last_chunk = start + chunk.len() == tokens.len();
            let out = if all {
                Some((0, &mut logits[start * width..(start + chunk.len()) * width]))
            } else if last_chunk {
                Some((chunk.len() - 1, &mut logits[..width]))
            } else {
                None
            };
            self.forward_batch(gguf, pool, kv, buf, chunk, pos0 + start, out, hidden)?;
        }
        Ok(())
    }

    /// One batch of at most [`N_BATCH`] tokens. `out` is (first row wanted, its
    /// logits and those of every later row of the batch); with `hidden`, the
    /// normed hidden states of those rows instead of logits.
    #[allow(clippy::too_many_arguments)]
    fn forward_batch(
        &self,
        gguf: &GgufModel,
        pool: &ThreadPool,
        kv: &mut KvCache,
        buf: &mut Buffers,
        tokens: &[u32],
        pos0: usize,
        out: Option<(usize, &mut [f32])>,
        hidden: bool,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let w = &self.weights;
        let n = tokens.len();
        let (e, qd, kvd) = (c.n_embd, c.q_dim(), c.kv_dim());
        let shape = AttentionShape {
            n_head: c.n_head,
            n_head_kv: c.n_head_kv,
            head_dim: c.head_dim,
            kq_scale: 1.0 / (c.head_dim as f32).sqrt(),
            window: c.window,
            softcap: None,
        };

        // Embedding lookup: dequantize just the rows of these tokens.
        for (t, &tok) in tokens.iter().enumerate() {
            w.token_embd
                .dequantize_row(gguf, tok as usize, &mut buf.x[t * e..(t + 1) * e])?;
        }

        for (il, layer) in w.layers.iter().enumerate() {
            // Attention block.
            norm_rows(
                &mut buf.h[..n * e],
                &buf.x[..n * e],
                &layer.attn_norm,
                c.norm_eps,
            );
            let h = &buf.h[..n * e];
            project(gguf, pool, &layer.q, h, &mut buf.act, &mut buf.q[..n * qd])?;
            project(gguf, pool, &layer.k, h, &mut buf.act, &mut buf.k[..n * kvd])?;
            project(gguf, pool, &layer.v, h, &mut buf.act, &mut buf.v[..n * kvd])?;
            for t in 0..n {
                c.rope.fill_cache(
                    (pos0 + t) as f32,
                    w.rope_freqs.as_deref(),
                    1.0,
                    &mut buf.rope,
                );
                for head in buf.q[t * qd..(t + 1) * qd].chunks_exact_mut(c.head_dim) {
                    c.rope.rotate(head, &buf.rope);
                }
                for head in buf.k[t * kvd..(t + 1) * kvd].chunks_exact_mut(c.head_dim) {
                    c.rope.rotate(head, &buf.rope);
                }
                kv.store(
                    il,
                    pos0 + t,
                    &buf.k[t * kvd..(t + 1) * kvd],
                    &buf.v[t * kvd..(t + 1) * kvd],
                );
            }
            attention::attention(
                pool,
                &shape,
                kv.layer(il),
                &buf.q[..n * qd],
                pos0,
                &mut buf.attn[..n * qd],
                &mut buf.attn_scratch,
            );
            project(
                gguf,
                pool,
                &layer.o,
                &buf.attn[..n * qd],
                &mut buf.act,
                &mut buf.proj[..n * e],
            )?;
            add_assign(&mut buf.x[..n * e], &buf.proj[..n * e]);

            // Feed-forward block.
            norm_rows(
                &mut buf.h[..n * e],
                &buf.x[..n * e],
                &layer.ffn_norm,
                c.norm_eps,
            );
            match &layer.ffn {
                Ffn::Dense { gate, up, down } => {
                    let nf = n * c.n_ff;
                    project(
                        gguf,
                        pool,
                        gate,
                        &buf.h[..n * e],
                        &mut buf.act,
                        &mut buf.gate[..nf],
                    )?;
                    project(
                        gguf,
                        pool,
                        up,
                        &buf.h[..n * e],
                        &mut buf.act,
                        &mut buf.up[..nf],
                    )?;
                    swiglu(&mut buf.gate[..nf], &buf.up[..nf]);
                    project(
                        gguf,
                        pool,
                        down,
                        &buf.gate[..nf],
                        &mut buf.act,
                        &mut buf.proj[..n * e],
                    )?;
                }
                Ffn::Moe {
                    router,
                    gate,
                    up,
                    down,
                } => {
                    self.moe(gguf, pool, buf, n, [router, gate, up, down])?;
                }
            }
            add_assign(&mut buf.x[..n * e], &buf.proj[..n * e]);
        }

        // Output head, only for the rows asked for.
        if let Some((first, logits)) = out {
            let rows = n - first;
            if hidden {
                norm_rows(
                    &mut logits[..rows * e],
                    &buf.x[first * e..n * e],
                    &w.output_norm,
                    c.norm_eps,
                );
                return Ok(());
            }
            norm_rows(
                &mut buf.h[..rows * e],
                &buf.x[first * e..n * e],
                &w.output_norm,
                c.norm_eps,
            );
            matmul(
                pool,
                &w.output.matrix(gguf),
                &buf.h[..rows * e],
                &mut buf.act,
                logits,
            )?;
        }
        Ok(())
    }

    /// Mixture of experts over `buf.h` into `buf.proj` (llama.cpp's
    /// `build_moe_ffn` with softmax gating and renormalised weights): each token's
    /// top-k experts run SiLU-gated FFNs, and their outputs, scaled by the routing
    /// weights, are summed in routing order.
    fn moe(
        &self,
        gguf: &GgufModel,
        pool: &ThreadPool,
        buf: &mut Buffers,
        n: usize,
        [router, gate, up, down]: [&Tensor; 4],
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let (e, k, nx) = (c.n_embd, c.n_expert_used, c.n_expert);
        let m = &mut buf.moe;
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

/// RMS-normalises each `weight.len()`-wide row of `x` into `out`.
fn norm_rows(out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let n = weight.len();
    for (o, r) in out.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
        rmsnorm(o, r, weight, eps);
    }
}

/// `y = W x (+ b)` for each row of `x`.
fn project(
    gguf: &GgufModel,
    pool: &ThreadPool,
    lin: &Linear,
    x: &[f32],
    act: &mut [u8],
    y: &mut [f32],
) -> Result<(), ModelError> {
    let w: Matrix<'_> = lin.w.matrix(gguf);
    matmul(pool, &w, x, act, y)?;
    if let Some(b) = &lin.b {
        for row in y.chunks_exact_mut(b.len()) {
            add_assign(row, b);
        }
    }
    Ok(())
}
