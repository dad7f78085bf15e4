//! The shared transformer block, as llama.cpp builds it from `build_norm`,
//! `build_attn`, `build_ffn` and `build_moe_ffn` (src/llama-graph.cpp): one
//! layer's weights ([`Layer`]: the attention and feed-forward sub-blocks with
//! their norms) found by the tensor names every converter writes, the model's
//! [`Weights`], and the steps a forward pass is made of: [`norm`],
//! [`attention`], [`residual`], [`ffn`] (its mixture of experts in
//! [`super::moe`]), and [`sequential_layer`] and [`parallel_layer`] for the
//! two orders of them.
//!
//! An architecture's file says which parts its layers have ([`Parts`]) and
//! runs these steps with its own settings ([`LayerAttn`], [`Act`]), so that
//! the file states only what differs from this block.
//!
//! The steps work on a batch of `n` rows in [`Step::buf`]: `x` is the residual
//! stream, `h` a sub-block's normalised input, `proj` its output.

use super::common::{
    Dims, Linear, Loader, Mm, Out, Step, embed, norm_rows, norm_rows_in_place, project, rope_qk,
    self_attention,
};
use super::moe::{Gating, Moe};
use crate::ModelError;
use crate::loader::Tensor;
use crate::ops::attention::{AttentionShape, HeadTerms};
use crate::ops::rope::Rope;
use crate::ops::{add_assign, geglu, gelu, layernorm, silu, swiglu, swiglu_oai};

/// Which tensors an architecture's layers have beyond the attention and FFN
/// norms and projections every layer has.
#[derive(Clone, Copy, Debug)]
pub struct Parts {
    /// The norms' form.
    pub norm: NormKind,
    /// `attn_qkv`, one fused q|k|v projection, where the file has it, else
    /// `attn_q`, `attn_k` and `attn_v` (phi3).
    pub fused_qkv: bool,
    /// `attn_q_norm` and `attn_k_norm`: RMS norms of q and k.
    pub qk_norm: QkNorm,
    /// `attn_norm` and `ffn_norm` before each sub-block; without them
    /// (olmo2) the sub-blocks read the residual stream as it is.
    pub pre_norms: bool,
    /// `post_attention_norm` and `post_ffw_norm`: norms of each sub-block's
    /// output before its residual add (gemma2, gemma3).
    pub post_norms: bool,
    /// `attn_sinks`: a learned per-head logit in each attention softmax
    /// (gpt-oss).
    pub sinks: bool,
    /// The name of the norm before the FFN: `ffn_norm`, or gpt-oss's
    /// `post_attention_norm` (the same norm under llama.cpp's
    /// `LLM_TENSOR_ATTN_POST_NORM` name).
    pub ffn_norm: &'static str,
    /// The feed-forward network.
    pub ffn: FfnParts,
    /// Attention and FFN in parallel on one normed input (command-r): no
    /// `ffn_norm`.
    pub parallel: bool,
    /// The output head is always the token embeddings (gemma2 ignores an
    /// `output.weight`); otherwise `output.weight` (+ `output.bias`) when the
    /// file has it.
    pub tied_output: bool,
}

/// Which RMS norms q and k get after their projections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkNorm {
    /// None.
    None,
    /// Each head, by one `head_dim` weight (qwen3, gemma3).
    PerHead,
    /// All heads of a row together, by an `n_head * head_dim` (for k,
    /// `n_head_kv * head_dim`) weight (olmo2).
    Whole,
}

/// The form of the norms: which function and whether they have biases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormKind {
    /// RMS norm times `{name}.weight`.
    Rms,
    /// LayerNorm times `{name}.weight` (command-r).
    Layer,
    /// LayerNorm times `{name}.weight` plus `{name}.bias` (starcoder2).
    LayerBias,
}

/// A norm's weights (and bias), by its function.
#[derive(Debug)]
pub enum Norm {
    /// `x / sqrt(mean(x²) + eps) · w` (ggml_rms_norm, ggml_mul).
    Rms(Vec<f32>),
    /// `(x - mean) / sqrt(variance + eps) · w + b` (ggml_norm, ggml_mul,
    /// ggml_add).
    Layer {
        /// (n_embd)
        w: Vec<f32>,
        /// (n_embd)
        b: Option<Vec<f32>>,
    },
}

impl Norm {
    /// `{name}.weight` (and `{name}.bias`) of width `n`.
    pub fn load(t: &Loader<'_>, name: &str, n: usize, kind: NormKind) -> Result<Norm, ModelError> {
        let w = t.vector(&format!("{name}.weight"), n)?;
        Ok(match kind {
            NormKind::Rms => Norm::Rms(w),
            NormKind::Layer => Norm::Layer { w, b: None },
            NormKind::LayerBias => Norm::Layer {
                w,
                b: Some(t.vector(&format!("{name}.bias"), n)?),
            },
        })
    }

    /// Normalises each row of `x` into `out`.
    pub fn rows(&self, out: &mut [f32], x: &[f32], eps: f32) {
        match self {
            Norm::Rms(w) => norm_rows(out, x, w, eps),
            Norm::Layer { w, b } => {
                for (o, r) in out.chunks_exact_mut(w.len()).zip(x.chunks_exact(w.len())) {
                    layernorm(o, r, w, b.as_deref(), eps);
                }
            }
        }
    }
}

/// The form of a layer's feed-forward network.
#[derive(Clone, Copy, Debug)]
pub enum FfnParts {
    /// `ffn_up` and `ffn_down`, no gate: `Wdown act(Wup h)` (starcoder2).
    Plain,
    /// `ffn_gate`, `ffn_up` and `ffn_down`.
    Gated,
    /// `ffn_up` holding the gate rows then the up rows (`2 n_ff`), and
    /// `ffn_down` (phi3).
    FusedGateUp,
    /// A mixture of `n_expert` experts, `n_used` per token: the router
    /// `ffn_gate_inp` and the stacked `ffn_{gate,up,down}_exps`, each with
    /// its bias where the file has one (gpt-oss).
    Moe {
        /// Experts per layer.
        n_expert: usize,
        /// Experts each token is routed to.
        n_used: usize,
        /// How the router's logits choose and weight the experts.
        gating: Gating,
    },
}

impl Parts {
    /// Plain llama-style layers: separate q, k, v, a gated FFN, no extra norms,
    /// the output head optional.
    pub const PLAIN: Parts = Parts {
        norm: NormKind::Rms,
        fused_qkv: false,
        qk_norm: QkNorm::None,
        pre_norms: true,
        post_norms: false,
        sinks: false,
        ffn_norm: "ffn_norm",
        ffn: FfnParts::Gated,
        parallel: false,
        tied_output: false,
    };
}

/// The attention input projections: fused as phi3 files have them, or split.
// One per layer, made once at load: the larger split variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Qkv {
    /// (n_embd, n_head * head_dim + 2 * n_head_kv * head_dim)
    Fused(Linear),
    /// Separate projections.
    Split {
        /// (n_embd, n_head * head_dim)
        q: Linear,
        /// (n_embd, n_head_kv * head_dim)
        k: Linear,
        /// (n_embd, n_head_kv * head_dim)
        v: Linear,
    },
}

/// The attention sub-block's projections.
#[derive(Debug)]
pub struct Attention {
    /// q, k and v.
    pub qkv: Qkv,
    /// RMS norm weights of q and of k: (head_dim) each per head, or
    /// (n_head * head_dim) and (n_head_kv * head_dim) over whole rows.
    pub qk_norm: Option<(Vec<f32>, Vec<f32>)>,
    /// (n_head * head_dim, n_embd)
    pub o: Linear,
    /// (n_head) attention sinks: an extra logit per head in the softmax.
    pub sinks: Option<Vec<f32>>,
}

/// A layer's feed-forward network.
#[derive(Debug)]
pub enum Ffn {
    /// `Wdown act(Wup h)`.
    Plain {
        /// (n_embd, n_ff)
        up: Linear,
        /// (n_ff, n_embd)
        down: Linear,
    },
    /// `Wdown (act(Wgate h) * Wup h)`.
    Gated {
        /// (n_embd, n_ff)
        gate: Linear,
        /// (n_embd, n_ff)
        up: Linear,
        /// (n_ff, n_embd)
        down: Linear,
    },
    /// The same with gate and up in one matrix.
    FusedGateUp {
        /// (n_embd, 2 * n_ff): gate rows first, then up rows.
        gate_up: Linear,
        /// (n_ff, n_embd)
        down: Linear,
    },
    /// A mixture of experts.
    Moe(Moe),
}

/// One transformer block's weights.
#[derive(Debug)]
pub struct Layer {
    /// (n_embd); none without pre-norms.
    pub attn_norm: Option<Norm>,
    /// The attention projections.
    pub attn: Attention,
    /// (n_embd) norm of the attention output before the residual add.
    pub attn_post_norm: Option<Norm>,
    /// (n_embd); none in a parallel block or without pre-norms.
    pub ffn_norm: Option<Norm>,
    /// The feed-forward network.
    pub ffn: Ffn,
    /// (n_embd) norm of the FFN output before the residual add.
    pub ffn_post_norm: Option<Norm>,
}

impl Layer {
    /// Finds and checks the tensors of layer `il`.
    fn load(t: &Loader<'_>, il: usize, d: &Dims, parts: &Parts) -> Result<Layer, ModelError> {
        let p = format!("blk.{il}");
        let (e, f, qd, kvd) = (d.n_embd, d.n_ff, d.q_dim(), d.kv_dim());
        let name = |suffix: &str| format!("{p}.{suffix}");
        let fused = name("attn_qkv");
        let qkv = if parts.fused_qkv
            && t.opt_matrix(&format!("{fused}.weight"), e, qd + 2 * kvd)?
                .is_some()
        {
            Qkv::Fused(t.linear(&fused, e, qd + 2 * kvd)?)
        } else {
            Qkv::Split {
                q: t.linear(&name("attn_q"), e, qd)?,
                k: t.linear(&name("attn_k"), e, kvd)?,
                v: t.linear(&name("attn_v"), e, kvd)?,
            }
        };
        let qk_norm_widths = match parts.qk_norm {
            QkNorm::None => None,
            QkNorm::PerHead => Some((d.head_dim, d.head_dim)),
            QkNorm::Whole => Some((qd, kvd)),
        };
        let qk_norm = match qk_norm_widths {
            Some((q, k)) => Some((
                t.vector(&name("attn_q_norm.weight"), q)?,
                t.vector(&name("attn_k_norm.weight"), k)?,
            )),
            None => None,
        };
        let ffn = match parts.ffn {
            FfnParts::Plain => Ffn::Plain {
                up: t.linear(&name("ffn_up"), e, f)?,
                down: t.linear(&name("ffn_down"), f, e)?,
            },
            FfnParts::Gated => Ffn::Gated {
                gate: t.linear(&name("ffn_gate"), e, f)?,
                up: t.linear(&name("ffn_up"), e, f)?,
                down: t.linear(&name("ffn_down"), f, e)?,
            },
            FfnParts::FusedGateUp => Ffn::FusedGateUp {
                gate_up: t.linear(&name("ffn_up"), e, 2 * f)?,
                down: t.linear(&name("ffn_down"), f, e)?,
            },
            FfnParts::Moe {
                n_expert,
                n_used,
                gating,
            } => Ffn::Moe(Moe {
                router: t.matrix(&name("ffn_gate_inp.weight"), e, n_expert)?,
                router_b: t.opt_vector(&name("ffn_gate_inp.bias"), n_expert)?,
                gate: t.experts(&name("ffn_gate_exps.weight"), e, f, n_expert)?,
                gate_b: t.opt_rows(&name("ffn_gate_exps.bias"), f, n_expert)?,
                up: t.experts(&name("ffn_up_exps.weight"), e, f, n_expert)?,
                up_b: t.opt_rows(&name("ffn_up_exps.bias"), f, n_expert)?,
                down: t.experts(&name("ffn_down_exps.weight"), f, e, n_expert)?,
                down_b: t.opt_rows(&name("ffn_down_exps.bias"), e, n_expert)?,
                n_used,
                gating,
            }),
        };
        let post_norm = |norm: &str| {
            parts
                .post_norms
                .then(|| Norm::load(t, &name(norm), e, parts.norm))
                .transpose()
        };
        Ok(Layer {
            attn_norm: parts
                .pre_norms
                .then(|| Norm::load(t, &name("attn_norm"), e, parts.norm))
                .transpose()?,
            attn: Attention {
                qkv,
                qk_norm,
                o: t.linear(&name("attn_output"), qd, e)?,
                sinks: parts
                    .sinks
                    .then(|| t.vector(&name("attn_sinks.weight"), d.n_head))
                    .transpose()?,
            },
            attn_post_norm: post_norm("post_attention_norm")?,
            ffn_norm: (parts.pre_norms && !parts.parallel)
                .then(|| Norm::load(t, &name(parts.ffn_norm), e, parts.norm))
                .transpose()?,
            ffn,
            ffn_post_norm: post_norm("post_ffw_norm")?,
        })
    }

    /// Every matrix of the layer.
    fn matrices(&self) -> Vec<&Tensor> {
        let mut all = match &self.attn.qkv {
            Qkv::Fused(qkv) => vec![&qkv.w],
            Qkv::Split { q, k, v } => vec![&q.w, &k.w, &v.w],
        };
        all.push(&self.attn.o.w);
        match &self.ffn {
            Ffn::Plain { up, down } => all.extend([&up.w, &down.w]),
            Ffn::Gated { gate, up, down } => all.extend([&gate.w, &up.w, &down.w]),
            Ffn::FusedGateUp { gate_up, down } => all.extend([&gate_up.w, &down.w]),
            Ffn::Moe(m) => all.extend([&m.router, &m.gate, &m.up, &m.down]),
        }
        all
    }
}

/// Views of every tensor (matrices stay in the memory map; the small vectors
/// are copied out as f32 at load).
#[derive(Debug)]
pub struct Weights {
    /// (n_embd, n_vocab)
    pub token_embd: Tensor,
    /// The transformer blocks.
    pub layers: Vec<Layer>,
    /// (n_embd)
    pub output_norm: Norm,
    /// (n_embd, n_vocab), `token_embd` when tied; optional bias (n_vocab).
    pub output: Linear,
}

impl Weights {
    /// Finds and checks the embeddings, every layer's tensors as `parts`
    /// says, and the output head.
    pub fn load(t: &Loader<'_>, d: &Dims, parts: &Parts) -> Result<Weights, ModelError> {
        let (token_embd, output) = if parts.tied_output {
            let token_embd = t.matrix("token_embd.weight", d.n_embd, d.n_vocab)?;
            let output = Linear {
                w: token_embd.clone(),
                b: None,
            };
            (token_embd, output)
        } else {
            t.embeddings_and_output(d)?
        };
        let layers = (0..d.n_layer)
            .map(|il| Layer::load(t, il, d, parts))
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Weights {
            token_embd,
            layers,
            output_norm: Norm::load(t, "output_norm", d.n_embd, parts.norm)?,
            output,
        })
    }

    /// Every matrix, for sizing the activation scratch.
    pub fn matrices(&self) -> Vec<&Tensor> {
        let mut all = vec![&self.output.w];
        for l in &self.layers {
            all.extend(l.matrices());
        }
        all
    }

    /// Whether the layers have fused projections (the buffers need room for
    /// their outputs).
    pub fn fused(&self) -> bool {
        self.layers.iter().any(|l| {
            matches!(l.attn.qkv, Qkv::Fused(_)) || matches!(l.ffn, Ffn::FusedGateUp { .. })
        })
    }

    /// `x` = the embeddings of `tokens` times `scale`.
    pub fn embed(
        &self,
        s: &mut Step<'_, '_>,
        tokens: &[u32],
        scale: f32,
    ) -> Result<(), ModelError> {
        let n = tokens.len() * self.token_embd.dims[0] as usize;
        let x = &mut s.buf.x[..n];
        match s.lora.filter(|l| l.adapts_embeddings()) {
            None => embed(s.gguf, &self.token_embd, tokens, scale, x),
            Some(lora) => {
                // The adapters' rows are added before the architecture's
                // scale, as llama.cpp's build_inp_embd precedes it.
                embed(s.gguf, &self.token_embd, tokens, 1.0, x)?;
                lora.apply_embeddings(s.pool, tokens, x)?;
                if scale != 1.0 {
                    x.iter_mut().for_each(|v| *v *= scale);
                }
                Ok(())
            }
        }
    }

    /// The output head over the rows `buf.out_rows` of `buf.x`, if any are
    /// asked for: `output_norm`, then (unless hidden states are wanted) the
    /// output projection and `finish`.
    pub fn output(
        &self,
        s: &mut Step<'_, '_>,
        d: &Dims,
        finish: Finish,
        out: Option<Out<'_>>,
    ) -> Result<(), ModelError> {
        let Some(out) = out else {
            return Ok(());
        };
        let e = d.n_embd;
        let mm = s.mm();
        let buf = &mut *s.buf;
        let rows = buf.out_rows.len();
        let normed = if out.hidden {
            &mut out.dest[..rows * e]
        } else {
            &mut buf.h[..rows * e]
        };
        for (o, &r) in normed.chunks_exact_mut(e).zip(&buf.out_rows) {
            self.output_norm
                .rows(o, &buf.x[r * e..(r + 1) * e], d.norm_eps);
        }
        if out.hidden {
            return Ok(());
        }
        // The head runs over the wanted rows only.
        let mm = Mm {
            rows: Some(&buf.out_rows),
            ..mm
        };
        project(mm, &self.output, &buf.h[..rows * e], &mut buf.act, out.dest)?;
        match finish {
            Finish::None => {}
            Finish::Softcap(cap) => softcap(out.dest, cap),
            Finish::Scale(scale) => out.dest.iter_mut().for_each(|v| *v *= scale),
        }
        Ok(())
    }
}

/// What the output head does to the logits after the projection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Finish {
    /// Nothing.
    None,
    /// `cap · tanh(x / cap)` (gemma2's `final_logit_softcapping`).
    Softcap(f32),
    /// `x · scale` (ggml_scale: command-r's `logit_scale`).
    Scale(f32),
}

/// `x = cap · tanh(x / cap)` (ggml_scale, ggml_tanh, ggml_scale: gemma's logit
/// soft-capping).
pub fn softcap(x: &mut [f32], cap: f32) {
    let inv = 1.0 / cap;
    for v in x {
        *v = (*v * inv).tanh() * cap;
    }
}

/// A layer's attention settings.
pub struct LayerAttn<'a> {
    /// RoPE of q and k; none in a layer without positions (cohere2's global
    /// layers).
    pub rope: Option<&'a Rope>,
    /// Per-pair frequency factors for a sequence of `n_ctx` positions.
    pub rope_factors: &'a dyn Fn(usize) -> Option<&'a [f32]>,
    /// Heads, window, score scale and soft-cap.
    pub shape: AttentionShape,
    /// Multiplier of q after RoPE (ggml_scale on Qcur), for models that scale
    /// q instead of the scores.
    pub q_scale: Option<f32>,
    /// Llama 4's attention temperature: q multiplied by a factor growing with
    /// its position (mistral3).
    pub temperature: Option<Temperature>,
    /// ALiBi slopes, one per query head (bloom).
    pub alibi: Option<&'a [f32]>,
}

/// Llama 4's attention temperature tuning (llama.cpp's
/// `llm_graph_input_attn_temp`): the query at position `pos` is multiplied by
/// `ln(floor(pos / floor_scale) + 1) · scale + 1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Temperature {
    /// `attention.temperature_scale`.
    pub scale: f32,
    /// Positions per step (the original context of YaRN).
    pub floor_scale: f32,
}

impl Temperature {
    /// The factor at `pos`, computed in f64 as llama.cpp's `std::log` on a
    /// double and rounded to f32.
    pub fn at(&self, pos: usize) -> f32 {
        let steps = (pos as f32 / self.floor_scale).floor();
        ((f64::from(steps) + 1.0).ln() * f64::from(self.scale) + 1.0) as f32
    }
}

impl<'a> LayerAttn<'a> {
    /// Attention over every cached position with scores scaled by
    /// `1/sqrt(head_dim)`, RoPE without frequency factors.
    pub fn plain(d: &Dims, rope: &'a Rope) -> LayerAttn<'a> {
        LayerAttn {
            rope: Some(rope),
            rope_factors: &|_| None,
            shape: AttentionShape {
                n_head: d.n_head,
                n_head_kv: d.n_head_kv,
                head_dim: d.head_dim,
                kq_scale: 1.0 / (d.head_dim as f32).sqrt(),
                window: None,
                softcap: None,
            },
            q_scale: None,
            temperature: None,
            alibi: None,
        }
    }
}

/// The FFN's activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// SiLU-gated (SwiGLU).
    Silu,
    /// GELU-gated (GeGLU, gemma).
    Gelu,
    /// gpt-oss's clamped SwiGLU (`swiglu_oai`): `min(g, 7) · sigmoid(1.702 ·
    /// min(g, 7)) · (clamp(u, -7, 7) + 1)`, with llama.cpp's constants.
    SwigluOai,
}

/// `swiglu_oai`'s alpha and limit, which llama.cpp fixes in
/// `build_moe_ffn` (`LLM_FFN_SWIGLU_OAI_MOE`).
const OAI_ALPHA: f32 = 1.702;
const OAI_LIMIT: f32 = 7.0;

impl Act {
    /// `x[i] = act(x[i])` (ggml_silu, ggml_gelu; the clamped SwiGLU's gate
    /// half with `up = 0`).
    pub fn apply(self, x: &mut [f32]) {
        match self {
            Act::Silu => x.iter_mut().for_each(|v| *v = silu(*v)),
            Act::Gelu => x.iter_mut().for_each(|v| *v = gelu(*v)),
            Act::SwigluOai => x.iter_mut().for_each(|v| {
                let g = v.min(OAI_LIMIT);
                *v = g / (1.0 + (OAI_ALPHA * -g).exp());
            }),
        }
    }

    /// `gate[i] = act(gate[i]) * up[i]`.
    pub fn glu(self, gate: &mut [f32], up: &[f32]) {
        match self {
            Act::Silu => swiglu(gate, up),
            Act::Gelu => geglu(gate, up),
            Act::SwigluOai => swiglu_oai(gate, up, OAI_ALPHA, OAI_LIMIT),
        }
    }
}

/// `h` = the normalised rows of `x`, or `x` itself without a norm.
pub fn norm(s: &mut Step<'_, '_>, n: usize, e: usize, norm: Option<&Norm>, eps: f32) {
    let b = &mut *s.buf;
    match norm {
        Some(norm) => norm.rows(&mut b.h[..n * e], &b.x[..n * e], eps),
        None => b.h[..n * e].copy_from_slice(&b.x[..n * e]),
    }
}

/// `x += proj`, or with `post_norm`, `x += norm(proj)`.
pub fn residual(s: &mut Step<'_, '_>, n: usize, e: usize, post_norm: Option<&Norm>, eps: f32) {
    let b = &mut *s.buf;
    match post_norm {
        Some(norm) => {
            norm.rows(&mut b.h[..n * e], &b.proj[..n * e], eps);
            add_assign(&mut b.x[..n * e], &b.h[..n * e]);
        }
        None => add_assign(&mut b.x[..n * e], &b.proj[..n * e]),
    }
}

/// `proj = Wo attention(q, cache k, cache v)` from `h` for the `n` rows of
/// layer `il`: q, k, v projected, their heads normed if the layer has q/k
/// norms, rotated if the layer has RoPE, q scaled if `at.q_scale` and by
/// `at.temperature`, k and v stored in the cache.
pub fn attention(
    s: &mut Step<'_, '_>,
    il: usize,
    n: usize,
    a: &Attention,
    d: &Dims,
    at: &LayerAttn<'_>,
) -> Result<(), ModelError> {
    let (e, qd, kvd) = (d.n_embd, d.q_dim(), d.kv_dim());
    let mm = s.mm();
    let b = &mut *s.buf;
    let h = &b.h[..n * e];
    match &a.qkv {
        Qkv::Fused(qkv) => {
            let width = qd + 2 * kvd;
            project(mm, qkv, h, &mut b.act, &mut b.qkv[..n * width])?;
            for (t, row) in b.qkv[..n * width].chunks_exact(width).enumerate() {
                b.q[t * qd..(t + 1) * qd].copy_from_slice(&row[..qd]);
                b.k[t * kvd..(t + 1) * kvd].copy_from_slice(&row[qd..qd + kvd]);
                b.v[t * kvd..(t + 1) * kvd].copy_from_slice(&row[qd + kvd..]);
            }
        }
        Qkv::Split { q, k, v } => {
            project(mm, q, h, &mut b.act, &mut b.q[..n * qd])?;
            project(mm, k, h, &mut b.act, &mut b.k[..n * kvd])?;
            project(mm, v, h, &mut b.act, &mut b.v[..n * kvd])?;
        }
    }
    if let Some((q_norm, k_norm)) = &a.qk_norm {
        // `attn` (free until attention writes it) holds a row being normed.
        norm_rows_in_place(&mut b.q[..n * qd], q_norm, d.norm_eps, &mut b.attn);
        norm_rows_in_place(&mut b.k[..n * kvd], k_norm, d.norm_eps, &mut b.attn);
    }
    if let Some(rope) = at.rope {
        rope_qk(
            s.seqs,
            rope,
            at.rope_factors,
            d.head_dim,
            &mut b.q[..n * qd],
            &mut b.k[..n * kvd],
            &mut b.rope,
        );
    }
    if let Some(scale) = at.q_scale {
        b.q[..n * qd].iter_mut().for_each(|v| *v *= scale);
    }
    if let Some(temp) = &at.temperature {
        let positions = s.seqs.iter().flat_map(|seg| seg.pos0..seg.pos0 + seg.n);
        for (row, pos) in b.q[..n * qd].chunks_exact_mut(qd).zip(positions) {
            let f = temp.at(pos);
            row.iter_mut().for_each(|v| *v *= f);
        }
    }
    let terms = HeadTerms {
        sinks: a.sinks.as_deref(),
        alibi: at.alibi,
    };
    self_attention(s, il, &at.shape, terms);
    let b = &mut *s.buf;
    project(
        mm,
        &a.o,
        &b.attn[..n * qd],
        &mut b.act,
        &mut b.proj[..n * e],
    )
}

/// `proj = FFN(h)` for `n` rows.
pub fn ffn(s: &mut Step<'_, '_>, n: usize, f: &Ffn, d: &Dims, act: Act) -> Result<(), ModelError> {
    let (e, ff) = (d.n_embd, d.n_ff);
    let nf = n * ff;
    let mm = s.mm();
    let b = &mut *s.buf;
    let h = &b.h[..n * e];
    let down = match f {
        Ffn::Plain { up, down } => {
            project(mm, up, h, &mut b.act, &mut b.gate[..nf])?;
            act.apply(&mut b.gate[..nf]);
            down
        }
        Ffn::Gated { gate, up, down } => {
            project(mm, gate, h, &mut b.act, &mut b.gate[..nf])?;
            project(mm, up, h, &mut b.act, &mut b.up[..nf])?;
            act.glu(&mut b.gate[..nf], &b.up[..nf]);
            down
        }
        Ffn::FusedGateUp { gate_up, down } => {
            project(mm, gate_up, h, &mut b.act, &mut b.up[..2 * nf])?;
            for (t, row) in b.up[..2 * nf].chunks_exact(2 * ff).enumerate() {
                let gate = &mut b.gate[t * ff..(t + 1) * ff];
                gate.copy_from_slice(&row[..ff]);
                act.glu(gate, &row[ff..]);
            }
            down
        }
        Ffn::Moe(m) => return m.forward(s, n, d, act),
    };
    project(mm, down, &b.gate[..nf], &mut b.act, &mut b.proj[..n * e])
}

/// One sequential transformer block over `n` rows, the order llama.cpp's
/// llama, qwen, phi3, gemma, starcoder2 and olmo2 graphs share (the norms in
/// brackets where the layer has them):
///
/// ```text
/// x += [post_norm] Wo attention([attn_norm] x)
/// x += [post_norm] FFN([ffn_norm] x)
/// ```
pub fn sequential_layer(
    s: &mut Step<'_, '_>,
    il: usize,
    n: usize,
    l: &Layer,
    d: &Dims,
    at: &LayerAttn<'_>,
    act: Act,
) -> Result<(), ModelError> {
    let (e, eps) = (d.n_embd, d.norm_eps);
    norm(s, n, e, l.attn_norm.as_ref(), eps);
    attention(s, il, n, &l.attn, d, at)?;
    residual(s, n, e, l.attn_post_norm.as_ref(), eps);
    norm(s, n, e, l.ffn_norm.as_ref(), eps);
    ffn(s, n, &l.ffn, d, act)?;
    residual(s, n, e, l.ffn_post_norm.as_ref(), eps);
    Ok(())
}

/// One parallel transformer block over `n` rows (llama.cpp's command-r and
/// cohere2 graphs): attention and FFN both read the one normed input, and
/// their outputs are added to the residual stream FFN first:
///
/// ```text
/// h = norm(x) · attn_norm
/// x = (x + FFN(h)) + Wo attention(h)
/// ```
///
/// The attention output waits in `buf.attn`, free once Wo has read it, which
/// holds `n_embd` per row because these models' Wo is square.
pub fn parallel_layer(
    s: &mut Step<'_, '_>,
    il: usize,
    n: usize,
    l: &Layer,
    d: &Dims,
    at: &LayerAttn<'_>,
    act: Act,
) -> Result<(), ModelError> {
    let e = d.n_embd;
    norm(s, n, e, l.attn_norm.as_ref(), d.norm_eps);
    attention(s, il, n, &l.attn, d, at)?;
    let b = &mut *s.buf;
    b.attn[..n * e].copy_from_slice(&b.proj[..n * e]);
    ffn(s, n, &l.ffn, d, act)?;
    let b = &mut *s.buf;
    add_assign(&mut b.x[..n * e], &b.proj[..n * e]);
    add_assign(&mut b.x[..n * e], &b.attn[..n * e]);
    Ok(())
}
