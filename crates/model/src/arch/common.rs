//! The shared transformer-block pieces every architecture's forward pass is
//! written with: the common hyper-parameters ([`Dims`]), RoPE settings from the
//! `rope.*` keys, the activation buffers, and the small steps every decoder
//! block is made of (embedding lookup, RMS norm over rows, projections, RoPE
//! over q and k, attention over the KV cache, the output head). Each
//! architecture's file keeps its own `Config`, `Weights` and `forward_batch`,
//! written top to bottom with these steps, so its differences stay visible.
//!
//! A batch is rows of tokens from one or several sequences ([`Segment`]s: a
//! prefill chunk or a decoding step each). Everything but RoPE and attention is
//! row-wise, so every matrix product runs once over all rows (the weights are
//! read once per batch); RoPE rotates each row at its sequence's position, and
//! attention runs per sequence over that sequence's own cache. [`forward`]
//! splits the sequences' rows into batches of the buffers' size.
//!
//! Shapes are written ggml-style, row length first: `(n_embd, n_vocab)` is
//! `n_vocab` rows of `n_embd`.

use gguf::{Array, GgufModel, Metadata, Value};
use kernels::matmul::{activation_scratch_len, matmul};
use kernels::pool::ThreadPool;

pub use super::batch::{Out, Segment, SeqKv, SeqRows, Step, Want, forward};
use crate::ModelError;
use crate::kv_cache::KvLayer;
use crate::loader::{Hparams, Tensor, Tensors, Use, config};
use crate::lora::{LoraBatch, LoraScratch};
use crate::ops::attention::{self, AttentionShape, HeadTerms};
use crate::ops::rope::{Rope, RopeMode};
use crate::ops::{add_assign, rmsnorm};

/// Tokens processed together in one pass through the layers; longer inputs are
/// split. Bounds the activation buffers; weights are read once per batch.
pub const N_BATCH: usize = 64;

/// The hyper-parameters every decoder-only transformer has, from the
/// `{arch}.*` keys the way llama.cpp's `llama_model::load_hparams` reads them.
#[derive(Clone, Debug, PartialEq)]
pub struct Dims {
    /// Vocabulary size (`vocab_size`, else the tokenizer's token count).
    pub n_vocab: usize,
    /// Training context (`context_length`).
    pub n_ctx_train: usize,
    /// Residual stream width (`embedding_length`).
    pub n_embd: usize,
    /// Transformer blocks (`block_count`).
    pub n_layer: usize,
    /// Query heads (`attention.head_count`).
    pub n_head: usize,
    /// Key/value heads (`attention.head_count_kv`, default `n_head`).
    pub n_head_kv: usize,
    /// Values per head (`attention.key_length`, default `n_embd / n_head`).
    pub head_dim: usize,
    /// Leading values of each head that RoPE rotates (`rope.dimension_count`,
    /// default `head_dim`).
    pub n_rot: usize,
    /// Hidden width of the feed-forward network (`feed_forward_length`).
    pub n_ff: usize,
    /// `attention.layer_norm_rms_epsilon`.
    pub norm_eps: f32,
}

impl Dims {
    /// Reads the common keys under `{arch}.`.
    pub fn from_metadata(gguf: &GgufModel, arch: &str) -> Result<Dims, ModelError> {
        let md = gguf.metadata();
        let hp = Hparams::new(md, arch);
        let n_layer = hp.layer_count()?;
        let n_embd = hp.count("embedding_length")?;
        let same_every_layer = |suffix: &str, default: Option<usize>| {
            let values = match hp.per_layer(suffix, n_layer)? {
                Some(v) => v,
                None => match default {
                    Some(d) => return Ok(d),
                    None => return Err(config(&hp.key(suffix), "missing")),
                },
            };
            match values.first() {
                Some(&first) if values.iter().all(|&v| v == first) && first > 0 => Ok(first),
                _ => Err(config(
                    &hp.key(suffix),
                    "must be positive and the same in every layer",
                )),
            }
        };
        let n_head = same_every_layer("attention.head_count", None)?;
        let n_head_kv = same_every_layer("attention.head_count_kv", Some(n_head))?;
        if !n_head.is_multiple_of(n_head_kv) {
            return Err(config(
                &hp.key("attention.head_count_kv"),
                &format!("{n_head_kv} does not divide the {n_head} query heads"),
            ));
        }
        let n_ff = same_every_layer("feed_forward_length", None)?;
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
        if n_rot > head_dim || n_rot == 0 || !n_rot.is_multiple_of(2) {
            return Err(config(
                &hp.key("rope.dimension_count"),
                &format!("{n_rot} must be even, positive and at most the head size {head_dim}"),
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
        Ok(Dims {
            n_vocab,
            n_ctx_train: hp.count("context_length")?,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_rot,
            n_ff,
            norm_eps: hp
                .opt_f32("attention.layer_norm_rms_epsilon")?
                .unwrap_or(1e-5),
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

/// RoPE from `rope.freq_base` and `rope.scaling.*`, resolved as llama.cpp's
/// `llama_context` constructor resolves its `cparams` (src/llama-context.cpp):
/// `none` never scales, `linear` and `longrope` interpolate by `1 / factor`
/// (LongRoPE's per-pair factors are tensors, applied by the caller), `yarn` adds
/// the extrapolation ramp and cancels the magnitude scale `rope_yarn` multiplies
/// in; `rope.scaling.attn_factor` scales cos and sin in every case.
pub fn rope_from_hparams(
    hp: &Hparams<'_>,
    mode: RopeMode,
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
        "linear" | "longrope" => 0.0,
        "yarn" => 1.0,
        other => {
            return Err(config(
                &hp.key("rope.scaling.type"),
                &format!("'{other}' is not supported (none, linear, yarn, longrope)"),
            ));
        }
    };
    let mut attn_factor = 1.0f32;
    if ext_factor != 0.0 {
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
        mode,
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

/// `expert_count` and `expert_used_count` (0 and 0 for a dense model),
/// checked against each other.
pub fn experts(hp: &Hparams<'_>) -> Result<(usize, usize), ModelError> {
    let n_expert = hp.opt_count("expert_count")?.unwrap_or(0);
    let n_expert_used = hp.opt_count("expert_used_count")?.unwrap_or(0);
    if (n_expert > 0) != (n_expert_used > 0) || n_expert_used > n_expert {
        return Err(config(
            &hp.key("expert_used_count"),
            &format!("{n_expert_used} experts used of {n_expert}"),
        ));
    }
    Ok((n_expert, n_expert_used))
}

/// A projection with an optional bias.
#[derive(Debug)]
pub struct Linear {
    /// (n_in, n_out) weights.
    pub w: Tensor,
    /// (n_out) bias, added after the product.
    pub b: Option<Vec<f32>>,
}

/// Tensor lookups with the model's file at hand.
pub struct Loader<'a> {
    gguf: &'a GgufModel,
    tensors: Tensors<'a>,
}

impl<'a> Loader<'a> {
    /// Indexes the tensors of `gguf`.
    pub fn new(gguf: &'a GgufModel) -> Self {
        Loader {
            gguf,
            tensors: Tensors::new(gguf),
        }
    }

    /// A required vector (norm weights), read as f32.
    pub fn vector(&self, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
        self.tensors
            .get(name, &[n as u64], Use::Read)?
            .to_f32(self.gguf)
    }

    /// An optional vector, read as f32.
    pub fn opt_vector(&self, name: &str, n: usize) -> Result<Option<Vec<f32>>, ModelError> {
        self.tensors
            .opt(name, &[n as u64], Use::Read)?
            .map(|t| t.to_f32(self.gguf))
            .transpose()
    }

    /// An optional table of `rows` rows of `n` values, read as f32 (the
    /// per-expert biases of gpt-oss's experts).
    pub fn opt_rows(
        &self,
        name: &str,
        n: usize,
        rows: usize,
    ) -> Result<Option<Vec<f32>>, ModelError> {
        self.tensors
            .opt(name, &[n as u64, rows as u64], Use::Read)?
            .map(|t| t.to_f32(self.gguf))
            .transpose()
    }

    /// A required matrix of `n_out` rows of `n_in`.
    pub fn matrix(&self, name: &str, n_in: usize, n_out: usize) -> Result<Tensor, ModelError> {
        self.tensors
            .get(name, &[n_in as u64, n_out as u64], Use::MatMul)
    }

    /// An optional matrix.
    pub fn opt_matrix(
        &self,
        name: &str,
        n_in: usize,
        n_out: usize,
    ) -> Result<Option<Tensor>, ModelError> {
        self.tensors
            .opt(name, &[n_in as u64, n_out as u64], Use::MatMul)
    }

    /// `{name}.weight` with the optional `{name}.bias`.
    pub fn linear(&self, name: &str, n_in: usize, n_out: usize) -> Result<Linear, ModelError> {
        Ok(Linear {
            w: self.matrix(&format!("{name}.weight"), n_in, n_out)?,
            b: self.opt_vector(&format!("{name}.bias"), n_out)?,
        })
    }

    /// A stack of `n_expert` matrices of `n_out` rows of `n_in` (MoE experts).
    pub fn experts(
        &self,
        name: &str,
        n_in: usize,
        n_out: usize,
        n_expert: usize,
    ) -> Result<Tensor, ModelError> {
        self.tensors.get(
            name,
            &[n_in as u64, n_out as u64, n_expert as u64],
            Use::MatMul,
        )
    }

    /// The token embeddings and the output head: `output.weight` (+
    /// `output.bias`), or the token embeddings when the file ties them (no
    /// `output.weight`). The embeddings are only multiplied with (and so
    /// repacked) when they double as the output head.
    pub fn embeddings_and_output(&self, d: &Dims) -> Result<(Tensor, Linear), ModelError> {
        let (e, v) = (d.n_embd as u64, d.n_vocab as u64);
        let output = self.tensors.opt("output.weight", &[e, v], Use::MatMul)?;
        let embd_use = if output.is_some() {
            Use::Read
        } else {
            Use::MatMul
        };
        let token_embd = self.tensors.get("token_embd.weight", &[e, v], embd_use)?;
        let output = Linear {
            w: output.unwrap_or_else(|| token_embd.clone()),
            b: self.opt_vector("output.bias", d.n_vocab)?,
        };
        Ok((token_embd, output))
    }
}

/// Activation buffers for one batch of up to `n_rows` rows (tokens of one or
/// several sequences), allocated once per [`crate::State`] or [`crate::Batch`].
#[derive(Debug)]
pub struct Buffers {
    /// Rows a batch may hold.
    pub n_rows: usize,
    /// Positions the attention scratch has room for.
    pub n_ctx: usize,
    /// (n_rows, n_embd) residual stream.
    pub x: Vec<f32>,
    /// (n_rows, n_embd) normalised input of a sub-block.
    pub h: Vec<f32>,
    /// (n_rows, q_dim)
    pub q: Vec<f32>,
    /// (n_rows, kv_dim)
    pub k: Vec<f32>,
    /// (n_rows, kv_dim)
    pub v: Vec<f32>,
    /// (n_rows, q_dim + 2 kv_dim) fused q|k|v projection (phi3); empty otherwise.
    pub qkv: Vec<f32>,
    /// (n_rows, q_dim) attention output before Wo; before attention, the
    /// scratch of q/k norms in place.
    pub attn: Vec<f32>,
    /// (n_rows, n_embd) output of Wo / Wdown.
    pub proj: Vec<f32>,
    /// (n_rows, n_ff)
    pub gate: Vec<f32>,
    /// (n_rows, n_ff), or (n_rows, 2 n_ff) for a fused gate|up projection.
    pub up: Vec<f32>,
    /// (n_rot) RoPE cos/sin cache.
    pub rope: Vec<f32>,
    /// Activations converted for the matmul kernels.
    pub act: Vec<u8>,
    /// Per-thread attention scores.
    pub attn_scratch: Vec<f32>,
    /// Mixture-of-experts buffers (empty for dense models).
    pub moe: MoeBuffers,
    /// (n_rows) the batch's tokens, gathered from its sequences.
    pub tokens: Vec<u32>,
    /// Batch rows whose output is wanted, increasing.
    pub out_rows: Vec<usize>,
    /// Scratch of LoRA products, grown on first use.
    pub lora: LoraScratch,
}

/// Buffers of a mixture-of-experts feed-forward block.
#[derive(Debug, Default)]
pub struct MoeBuffers {
    /// (n_rows, n_expert) router logits, then probabilities.
    pub probs: Vec<f32>,
    /// (n_rows, n_expert_used) chosen experts.
    pub experts: Vec<usize>,
    /// (n_rows, n_expert_used) their weights.
    pub weights: Vec<f32>,
    /// Rows routed to the current expert: (row, slot).
    pub rows: Vec<(usize, usize)>,
    /// (n_rows, n_embd) inputs gathered for one expert.
    pub gathered: Vec<f32>,
    /// (n_rows, n_embd) one expert's outputs.
    pub out: Vec<f32>,
    /// (n_rows, n_expert_used, n_embd) weighted expert outputs per slot.
    pub slots: Vec<f32>,
}

impl Buffers {
    /// Buffers for batches of up to `n_rows` rows of `model`, whose sequences
    /// hold at most `n_ctx` positions.
    pub fn new(
        model: &dyn Decoder,
        pool: &ThreadPool,
        n_rows: usize,
        n_ctx: usize,
    ) -> Result<Buffers, ModelError> {
        let d = model.dims();
        let b = n_rows;
        let mut act = 0;
        for m in model.matrices() {
            act = act.max(activation_scratch_len(m.ty, m.dims[0] as usize, b)?);
        }
        let (qkv, up) = if model.fused() {
            (b * (d.q_dim() + 2 * d.kv_dim()), b * 2 * d.n_ff)
        } else {
            (0, b * d.n_ff)
        };
        let moe = match model.experts() {
            Some((n_expert, n_used)) => MoeBuffers {
                probs: vec![0.0; b * n_expert],
                experts: vec![0; b * n_used],
                weights: vec![0.0; b * n_used],
                rows: Vec::with_capacity(b * n_used),
                gathered: vec![0.0; b * d.n_embd],
                out: vec![0.0; b * d.n_embd],
                slots: vec![0.0; b * n_used * d.n_embd],
            },
            None => MoeBuffers::default(),
        };
        Ok(Buffers {
            n_rows,
            n_ctx,
            x: vec![0.0; b * d.n_embd],
            h: vec![0.0; b * d.n_embd],
            q: vec![0.0; b * d.q_dim()],
            k: vec![0.0; b * d.kv_dim()],
            v: vec![0.0; b * d.kv_dim()],
            qkv: vec![0.0; qkv],
            attn: vec![0.0; b * d.q_dim()],
            proj: vec![0.0; b * d.n_embd],
            gate: vec![0.0; b * d.n_ff],
            up: vec![0.0; up],
            rope: vec![0.0; d.n_rot],
            act: vec![0; act],
            attn_scratch: vec![0.0; attention::scratch_len(pool, n_ctx, d.head_dim)],
            moe,
            tokens: Vec::with_capacity(b),
            out_rows: Vec::with_capacity(b),
            lora: LoraScratch::default(),
        })
    }
}

/// An architecture's forward pass over one batch of rows.
pub trait Decoder {
    /// Shared hyper-parameters.
    fn dims(&self) -> &Dims;

    /// Rows [`Model::forward`](crate::Model::forward) runs together when it
    /// splits a long input.
    fn n_batch(&self) -> usize {
        N_BATCH
    }

    /// Whether the buffers need room for fused q|k|v and gate|up outputs.
    fn fused(&self) -> bool {
        false
    }

    /// (experts, experts used per token) of a mixture-of-experts model.
    fn experts(&self) -> Option<(usize, usize)> {
        None
    }

    /// Every matrix, for sizing the activation scratch.
    fn matrices(&self) -> Vec<&Tensor>;

    /// The RoPE of `layer` and its frequency factors, for a sequence of `n_ctx`
    /// positions (the K-shift needs them too); `None` for a layer without
    /// RoPE (cohere2's global layers).
    fn rope(&self, layer: usize, n_ctx: usize) -> Option<(Rope, Option<Vec<f32>>)>;

    /// Runs the batch's `tokens` (one row each, the segments of `step.seqs` one
    /// after another) through the layers, storing their keys and values in
    /// their sequences' caches, and writes `out` if given.
    fn forward_batch(
        &self,
        step: &mut Step<'_, '_>,
        tokens: &[u32],
        out: Option<Out<'_>>,
    ) -> Result<(), ModelError>;
}

/// `x` = the embedding rows of `tokens` times `scale` (dequantizing only those
/// rows; gemma's `ggml_scale(inpL, sqrt(n_embd))` when `scale != 1`).
pub fn embed(
    gguf: &GgufModel,
    token_embd: &Tensor,
    tokens: &[u32],
    scale: f32,
    x: &mut [f32],
) -> Result<(), ModelError> {
    let e = token_embd.dims[0] as usize;
    for (t, &tok) in tokens.iter().enumerate() {
        let row = &mut x[t * e..(t + 1) * e];
        token_embd.dequantize_row(gguf, tok as usize, row)?;
        if scale != 1.0 {
            row.iter_mut().for_each(|v| *v *= scale);
        }
    }
    Ok(())
}

/// RMS-normalises each `weight.len()`-wide row of `x` into `out`.
pub fn norm_rows(out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let n = weight.len();
    for (o, r) in out.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
        rmsnorm(o, r, weight, eps);
    }
}

/// [`norm_rows`] in place (per head: the q/k norms of qwen3 and gemma3).
pub fn norm_rows_in_place(x: &mut [f32], weight: &[f32], eps: f32, tmp: &mut [f32]) {
    let n = weight.len();
    for r in x.chunks_exact_mut(n) {
        let tmp = &mut tmp[..n];
        tmp.copy_from_slice(r);
        rmsnorm(r, tmp, weight, eps);
    }
}

/// What a projection works with besides its operands: the mapped model, the
/// threads, and the batch's LoRA adapters if any sequence has some.
#[derive(Clone, Copy)]
pub struct Mm<'a> {
    /// The mapped model.
    pub gguf: &'a GgufModel,
    /// Threads for the products.
    pub pool: &'a ThreadPool,
    /// The adapters of the batch's rows.
    pub lora: Option<&'a LoraBatch<'a>>,
    /// The batch rows the operands' rows are, when not all of them in order
    /// (the output head's wanted rows).
    pub rows: Option<&'a [usize]>,
}

/// `y = W x (+ b)` for each row of `x`, plus each sequence's adapters'
/// `scale · B A x` before the bias (llama.cpp's `build_lora_mm`).
pub fn project(
    mm: Mm<'_>,
    lin: &Linear,
    x: &[f32],
    act: &mut [u8],
    y: &mut [f32],
) -> Result<(), ModelError> {
    if crate::imatrix::collecting() {
        crate::imatrix::record(&lin.w.name, x, lin.w.dims[0] as usize);
    }
    matmul(mm.pool, &lin.w.matrix(mm.gguf), x, act, y)?;
    if let Some(lora) = mm.lora {
        lora.apply(mm.pool, &lin.w.name, lin.w.dims[0] as usize, x, y, mm.rows)?;
    }
    if let Some(b) = &lin.b {
        for row in y.chunks_exact_mut(b.len()) {
            add_assign(row, b);
        }
    }
    Ok(())
}

/// Rotates every q and k head of the batch, each row at its sequence's position
/// (ggml_rope_ext on Qcur and Kcur with the same settings); `factors` gives the
/// frequency factors for a sequence of `n_ctx` positions.
pub fn rope_qk<'f>(
    seqs: &[Segment<'_>],
    rope: &Rope,
    factors: &dyn Fn(usize) -> Option<&'f [f32]>,
    head_dim: usize,
    q: &mut [f32],
    k: &mut [f32],
    cache: &mut [f32],
) {
    let n: usize = seqs.iter().map(|s| s.n).sum();
    let (qd, kvd) = (q.len() / n, k.len() / n);
    let mut t = 0;
    for s in seqs {
        let factors = factors(s.n_ctx);
        for pos in s.pos0..s.pos0 + s.n {
            rope.fill_cache(pos as f32, factors, 1.0, cache);
            for head in q[t * qd..(t + 1) * qd].chunks_exact_mut(head_dim) {
                rope.rotate(head, cache);
            }
            for head in k[t * kvd..(t + 1) * kvd].chunks_exact_mut(head_dim) {
                rope.rotate(head, cache);
            }
            t += 1;
        }
    }
}

/// Stores the batch's keys and values (`buf.k`, `buf.v`) in layer `il` of their
/// sequences' caches, then attends from `buf.q` into `buf.attn`, each sequence
/// over its own cache; `terms` are the layer's per-head softmax terms
/// (gpt-oss's sinks, bloom's ALiBi slopes).
pub fn self_attention(
    step: &mut Step<'_, '_>,
    il: usize,
    shape: &AttentionShape,
    terms: HeadTerms<'_>,
) {
    let kvd = shape.n_head_kv * shape.head_dim;
    let qd = shape.n_head * shape.head_dim;
    let buf = &mut *step.buf;
    let mut r = 0;
    for s in step.seqs.iter_mut() {
        let rows = r..r + s.n;
        let kv = |t: usize| {
            (
                &buf.k[t * kvd..(t + 1) * kvd],
                &buf.v[t * kvd..(t + 1) * kvd],
            )
        };
        let layer: KvLayer<'_> = match &mut s.kv {
            SeqKv::Own(cache) => {
                for (t, pos) in rows.clone().zip(s.pos0..) {
                    let (k, v) = kv(t);
                    cache.store(il, pos, k, v);
                }
                cache.layer(il)
            }
            SeqKv::Paged(blocks) => {
                let pool = step
                    .kv_pool
                    .as_deref_mut()
                    .expect("a paged sequence comes with its pool");
                for (t, pos) in rows.clone().zip(s.pos0..) {
                    let (k, v) = kv(t);
                    pool.store(il, blocks, pos, k, v);
                }
                pool.layer(il, blocks, s.n_ctx)
            }
        };
        attention::attention_with(
            step.pool,
            shape,
            terms,
            layer,
            &buf.q[rows.start * qd..rows.end * qd],
            s.pos0,
            &mut buf.attn[rows.start * qd..rows.end * qd],
            &mut buf.attn_scratch,
        );
        r = rows.end;
    }
}

/// Which layers use the sliding window, as llama.cpp's `load_swa_pattern`
/// reads `attention.sliding_window_pattern`: a per-layer bool array, or a
/// period `p` (layer `il` slides unless `il % p == p - 1`; 0 makes every layer
/// slide), defaulting to `default_period`.
pub fn swa_layers(
    md: &Metadata,
    hp: &Hparams<'_>,
    n_layer: usize,
    default_period: usize,
) -> Result<Vec<bool>, ModelError> {
    let key = hp.key("attention.sliding_window_pattern");
    let period = match md.get(&key) {
        Some(Value::Array(Array::Bool(layers))) if layers.len() == n_layer => {
            return Ok(layers.clone());
        }
        Some(Value::Array(_)) => {
            return Err(config(
                &key,
                &format!("expected {n_layer} booleans, one per layer"),
            ));
        }
        Some(_) => hp
            .opt_count("attention.sliding_window_pattern")?
            .unwrap_or(0),
        None => default_period,
    };
    Ok((0..n_layer)
        .map(|il| period == 0 || il % period < period - 1)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(entries: &[(&str, Value)]) -> Metadata {
        let mut md = Metadata::new();
        for (k, v) in entries {
            md.set(k, v.clone());
        }
        md
    }

    #[test]
    fn swa_pattern_from_period_array_or_default() {
        let md = metadata(&[]);
        let hp = Hparams::new(&md, "gemma3");
        let five_to_one = swa_layers(&md, &hp, 8, 6).unwrap();
        assert_eq!(
            five_to_one,
            [true, true, true, true, true, false, true, true]
        );
        assert_eq!(
            swa_layers(&md, &hp, 4, 2).unwrap(),
            [true, false, true, false]
        );

        let key = "gemma3.attention.sliding_window_pattern";
        let md = metadata(&[(key, Value::U32(0))]);
        let hp = Hparams::new(&md, "gemma3");
        assert_eq!(swa_layers(&md, &hp, 3, 6).unwrap(), [true; 3]);

        let layers = vec![false, true, true];
        let md = metadata(&[(key, Value::Array(Array::Bool(layers.clone())))]);
        let hp = Hparams::new(&md, "gemma3");
        assert_eq!(swa_layers(&md, &hp, 3, 6).unwrap(), layers);
        assert!(matches!(
            swa_layers(&md, &hp, 4, 6),
            Err(ModelError::Config { .. })
        ));
    }

    #[test]
    fn rope_scaling_types() {
        let md = metadata(&[
            ("phi3.rope.scaling.type", Value::String("longrope".into())),
            ("phi3.rope.scaling.attn_factor", Value::F32(1.5)),
            (
                "phi3.rope.scaling.original_context_length",
                Value::U32(4096),
            ),
        ]);
        let hp = Hparams::new(&md, "phi3");
        let rope = rope_from_hparams(&hp, RopeMode::Neox, 96, 131_072).unwrap();
        assert_eq!(
            (rope.freq_scale, rope.ext_factor, rope.attn_factor),
            (1.0, 0.0, 1.5)
        );
        assert_eq!((rope.mode, rope.n_ctx_orig), (RopeMode::Neox, 4096));

        let md = metadata(&[("qwen2.rope.scaling.type", Value::String("dynamic".into()))]);
        let hp = Hparams::new(&md, "qwen2");
        assert!(matches!(
            rope_from_hparams(&hp, RopeMode::Neox, 64, 4096),
            Err(ModelError::Config { key, .. }) if key == "qwen2.rope.scaling.type"
        ));
    }
}
