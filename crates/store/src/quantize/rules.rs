//! Which type each tensor gets under a preset: llama-quantize's rules
//! (llama.cpp src/llama-quant.cpp: `tensor_allows_quantization`,
//! `llama_tensor_get_type_impl`, `tensor_type_fallback`, `tensor_requires_imatrix`),
//! followed rule by rule, counters included, so that the same model gets the
//! same mix.
//!
//! Several rules count tensors as they go (`i_attention_wv`: the first two attn_v
//! of a Q3_K_M file get Q5_K), so the order matters: [`plan`] visits tensors in
//! llama.cpp's loader order ([`llama_order`]), which is also the order of the
//! output file.

use std::cmp::Ordering;

use gguf::{Metadata, TensorType, Value};

use super::{Preset, QuantizeError};

/// The hyper-parameters the rules look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelFacts {
    /// `general.architecture`.
    pub arch: String,
    /// `{arch}.block_count`.
    pub n_layer: u32,
    /// `{arch}.attention.head_count` (of the first layer where it is per layer).
    pub n_head: u32,
    /// `{arch}.attention.head_count_kv` (of the first layer), `n_head` if absent.
    pub n_head_kv: u32,
    /// `{arch}.expert_count`, 0 if absent.
    pub n_expert: u32,
}

impl ModelFacts {
    /// Reads the facts from a model's metadata.
    pub fn from_metadata(meta: &Metadata) -> Result<ModelFacts, QuantizeError> {
        let arch = meta.get_str("general.architecture")?.to_owned();
        let first = |key: &str| -> Result<Option<u32>, QuantizeError> {
            match meta.get(key) {
                Some(Value::Array(a)) if !a.is_empty() => Ok(a
                    .integer_at(0)
                    .and_then(|v| u32::try_from(v).ok())
                    .map(Some)
                    .ok_or_else(|| QuantizeError::Metadata(format!("{key}: not a u32 array")))?),
                Some(Value::Array(_)) => Ok(None),
                Some(_) => Ok(Some(meta.get_u32(key)?)),
                None => Ok(None),
            }
        };
        let n_layer = meta.get_u32(&format!("{arch}.block_count"))?;
        let n_head = first(&format!("{arch}.attention.head_count"))?.unwrap_or(0);
        let n_head_kv = first(&format!("{arch}.attention.head_count_kv"))?.unwrap_or(n_head);
        let n_expert = meta.opt_u32(&format!("{arch}.expert_count"))?.unwrap_or(0);
        Ok(ModelFacts {
            arch,
            n_layer,
            n_head,
            n_head_kv,
            n_expert,
        })
    }

    fn n_gqa(&self) -> u32 {
        self.n_head.checked_div(self.n_head_kv).unwrap_or(0)
    }

    /// llama.cpp's `LLM_TYPE_70B`, which some rules single out (models/*.cpp).
    fn is_70b(&self) -> bool {
        match self.arch.as_str() {
            "llama" => self.n_layer == 80 && self.n_head != self.n_head_kv,
            "deci" | "olmo" | "qwen2" => self.n_layer == 80,
            "jais2" => self.n_layer == 68,
            _ => false,
        }
    }
}

/// The user's choices that steer the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The preset.
    pub preset: Preset,
    /// `--output-tensor-type`.
    pub output_tensor_type: Option<TensorType>,
    /// `--token-embedding-type`.
    pub token_embedding_type: Option<TensorType>,
    /// `--pure`: every quantizable tensor gets the preset's default type.
    pub pure: bool,
    /// `--leave-output-tensor`: output.weight keeps its type.
    pub leave_output_tensor: bool,
    /// An importance matrix was given (some rules depend on it).
    pub has_imatrix: bool,
}

impl Options {
    /// The preset with no other option.
    pub fn new(preset: Preset) -> Options {
        Options {
            preset,
            output_tensor_type: None,
            token_embedding_type: None,
            pure: false,
            leave_output_tensor: false,
            has_imatrix: false,
        }
    }
}

/// A tensor of the input, as the rules see it.
#[derive(Clone, Copy, Debug)]
pub struct TensorIn<'a> {
    /// Name.
    pub name: &'a str,
    /// Current type.
    pub ty: TensorType,
    /// Shape, `ne[0]` first.
    pub dims: &'a [u64],
}

/// What the rules decided for one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Index of the tensor in the input slice given to [`plan`].
    pub index: usize,
    /// The type it is written in.
    pub ty: TensorType,
    /// Whether it may only be quantized with an importance matrix.
    pub requires_imatrix: bool,
    /// Whether its row length forced a fallback from the rule's type.
    pub fell_back: bool,
}

/// llama.cpp's `weight_name_comparer`: tensors outside layers first, then by
/// layer number, then by name.
pub fn llama_order(a: &str, b: &str) -> Ordering {
    (layer_of(a).unwrap_or(-1), a).cmp(&(layer_of(b).unwrap_or(-1), b))
}

/// The `N` of a `blk.N.` prefix (sscanf's `%d`: optional sign, digits).
fn layer_of(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?;
    let end = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+'))))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].parse().ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Category {
    TokenEmbd,
    AttnQ,
    AttnV,
    AttnK,
    AttnQkv,
    AttnKvB,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

fn is_token_embd(name: &str) -> bool {
    name == "token_embd.weight" || name == "per_layer_token_embd.weight"
}

fn category(name: &str) -> Category {
    use Category::*;
    if name == "output.weight" {
        return Output;
    }
    if is_token_embd(name) {
        return TokenEmbd;
    }
    let table = [
        ("attn_qkv.weight", AttnQkv),
        ("attn_kv_b.weight", AttnKvB),
        ("attn_v.weight", AttnV),
        ("attn_k.weight", AttnK),
        ("attn_q.weight", AttnQ),
        ("attn_output.weight", AttnOutput),
        ("ffn_up", FfnUp),
        ("ffn_gate", FfnGate),
        ("ffn_down", FfnDown),
    ];
    table
        .iter()
        .find(|(pat, _)| name.contains(pat))
        .map_or(Other, |&(_, c)| c)
}

fn is_attn_v(c: Category) -> bool {
    matches!(c, Category::AttnV | Category::AttnQkv | Category::AttnKvB)
}

/// ggml's `ggml_n_dims`: trailing dimensions of 1 do not count.
pub fn n_dims(dims: &[u64]) -> usize {
    dims.iter().rposition(|&d| d != 1).map_or(1, |i| i + 1)
}

/// `tensor_allows_quantization`: 2-D and 3-D weights except norms, routers,
/// positional tables and the small tensors llama.cpp keeps in full precision.
fn allows_quantization(opts: &Options, arch: &str, t: &TensorIn) -> bool {
    let name = t.name;
    if opts.preset == Preset::Copy || n_dims(t.dims) < 2 || !name.ends_with("weight") {
        return false;
    }
    if name == "output.weight" && opts.leave_output_tensor {
        return false;
    }
    if name == "position_embd.weight" || name == "token_types.weight" {
        return false;
    }
    const KEEP: &[&str] = &[
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        "sam.pos_embd",
        "sam.neck.",
        "sam.net_",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
        "a.rvq.codebook",
        "mm.a.code_embd",
    ];
    const KEEP_GLM5_NEXT: &[&str] = &[
        "hc_",
        "indexer.attn_q_b",
        "indexer.attn_k",
        "indexer.proj",
        "indexer_compressor_gate",
        "indexer_compressor_ape",
        "ssm_f_a.weight",
        "ssm_f_b.weight",
        "ssm_g_a.weight",
        "ssm_g_b.weight",
        "ssm_beta.weight",
        "attn_kv_a_mqa.weight",
        "attn_k_b.weight",
        "attn_v_b.weight",
    ];
    if KEEP.iter().any(|p| name.contains(p)) {
        return false;
    }
    !(arch == "glm5-next" && KEEP_GLM5_NEXT.iter().any(|p| name.contains(p)))
}

/// `quantize_state_impl`: the counters the rules advance.
struct State<'a> {
    facts: &'a ModelFacts,
    opts: &'a Options,
    n_attention_wv: i64,
    n_layer: i64,
    i_attention_wv: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
    tied_embeddings: bool,
}

fn use_more_bits(i: i64, n: i64) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// Decides every tensor's type, in llama.cpp's order (the order of the output
/// file). Errors where llama-quantize would stop: a layer number out of range in
/// an expert model, or a type with no fallback for the row length.
pub fn plan(
    facts: &ModelFacts,
    opts: &Options,
    tensors: &[TensorIn],
) -> Result<Vec<Decision>, QuantizeError> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| llama_order(tensors[a].name, tensors[b].name));
    let mut st = State {
        facts,
        opts,
        n_attention_wv: tensors
            .iter()
            .filter(|t| is_attn_v(category(t.name)))
            .count() as i64,
        n_layer: i64::from(facts.n_layer),
        i_attention_wv: 0,
        i_ffn_down: 0,
        i_ffn_gate: 0,
        i_ffn_up: 0,
        tied_embeddings: !tensors.iter().any(|t| t.name == "output.weight"),
    };
    order
        .into_iter()
        .map(|index| {
            let t = &tensors[index];
            let (ty, fell_back) = if allows_quantization(opts, &facts.arch, t) {
                st.tensor_type(t)?
            } else {
                (t.ty, false)
            };
            Ok(Decision {
                index,
                ty,
                requires_imatrix: requires_imatrix(t.name, ty, opts.preset),
                fell_back,
            })
        })
        .collect()
}

/// `tensor_requires_imatrix`.
fn requires_imatrix(name: &str, ty: TensorType, preset: Preset) -> bool {
    use TensorType::*;
    if is_token_embd(name) || name == "output.weight" {
        return false;
    }
    match ty {
        IQ3_XXS | IQ2_XXS | IQ2_XS | IQ2_S | IQ1_M | IQ1_S => true,
        Q2_K => preset == Preset::Q2_K_S,
        _ => false,
    }
}

impl State<'_> {
    /// `llama_tensor_get_type`: the overrides, then the preset's rules, then the
    /// fallback for row lengths the type cannot hold.
    fn tensor_type(&mut self, t: &TensorIn) -> Result<(TensorType, bool), QuantizeError> {
        let cat = category(t.name);
        if let (Some(ty), Category::TokenEmbd) = (self.opts.token_embedding_type, cat) {
            return Ok((ty, false));
        }
        if let (Some(ty), Category::Output) = (self.opts.output_tensor_type, cat) {
            return Ok((ty, false));
        }
        let default = self.opts.preset.default_type();
        if !default.is_quantized() {
            return Ok((default, false));
        }
        let ty = if self.opts.pure {
            default
        } else {
            self.rules(default, t, cat)?
        };
        fallback(t, ty)
    }

    /// The layer a per-layer rule applies to: the running count, or for expert
    /// models (whose expert tensors are not consecutive) the name's layer.
    fn layer_info(&self, counter: i64, name: &str) -> Result<(i64, i64), QuantizeError> {
        let n = self.n_layer;
        if self.facts.n_expert <= 1 {
            return Ok((counter, n));
        }
        let i = layer_of(name).ok_or_else(|| {
            QuantizeError::Metadata(format!("failed to determine the layer of tensor {name}"))
        })?;
        if i < 0 || i >= n {
            return Err(QuantizeError::Metadata(format!(
                "bad layer {i} for tensor {name}: must be in [0, {n})"
            )));
        }
        Ok((i, n))
    }

    /// `llama_tensor_get_type_impl`.
    fn rules(
        &mut self,
        mut ty: TensorType,
        t: &TensorIn,
        cat: Category,
    ) -> Result<TensorType, QuantizeError> {
        use Category as C;
        use Preset as P;
        use TensorType as T;
        let p = self.opts.preset;
        let arch = self.facts.arch.as_str();
        let falcon = arch == "falcon";
        let n_expert = self.facts.n_expert;
        let gqa4 = self.facts.n_gqa() >= 4;
        let name = t.name;
        if arch == "glm5-next"
            && ["attn_q_a", "attn_q_b", "nextn.eh_proj"]
                .iter()
                .any(|s| name.contains(s))
            && !matches!(ty, T::F32 | T::BF16 | T::F16)
        {
            return Ok(T::Q8_0);
        }
        let very_low = matches!(
            p,
            P::IQ2_XXS | P::IQ2_XS | P::IQ1_S | P::IQ2_S | P::IQ2_M | P::IQ1_M
        );
        let iq2_s_or_m = matches!(p, P::IQ2_S | P::IQ2_M);
        if cat == C::Output || (self.tied_embeddings && cat == C::TokenEmbd) {
            if let Some(out) = self.opts.output_tensor_type {
                ty = out;
            } else if falcon || !t.dims[0].is_multiple_of(ty.block_size() as u64) {
                ty = T::Q8_0;
            } else if very_low || p == P::IQ3_XXS {
                ty = T::Q5_K;
            } else if ty != T::Q8_0 {
                ty = T::Q6_K;
            }
        } else if cat == C::TokenEmbd {
            if let Some(e) = self.opts.token_embedding_type {
                ty = e;
            } else if matches!(p, P::IQ2_XXS | P::IQ2_XS | P::IQ1_S | P::IQ1_M) {
                ty = T::Q2_K;
            } else if iq2_s_or_m || p == P::IQ3_XXS {
                ty = T::IQ3_S;
            } else if matches!(p, P::TQ1_0 | P::TQ2_0) {
                ty = T::Q4_K;
            }
        } else if very_low {
            if is_attn_v(cat) {
                ty = if gqa4 || n_expert >= 4 {
                    T::Q4_K
                } else if iq2_s_or_m {
                    T::IQ3_S
                } else {
                    T::Q2_K
                };
                self.i_attention_wv += 1;
            } else if n_expert == 8 && cat == C::AttnK {
                ty = T::Q4_K;
            } else if cat == C::FfnDown {
                if self.i_ffn_down < self.n_layer / 8 {
                    ty = if iq2_s_or_m { T::IQ3_S } else { T::Q2_K };
                }
                self.i_ffn_down += 1;
            } else if cat == C::AttnOutput {
                if n_expert == 8 {
                    ty = T::Q5_K;
                } else if matches!(p, P::IQ1_S | P::IQ1_M) {
                    ty = T::IQ2_XXS;
                } else if iq2_s_or_m {
                    ty = T::IQ3_S;
                }
            }
        } else if is_attn_v(cat) {
            let i = self.i_attention_wv;
            match p {
                P::Q2_K => ty = if gqa4 { T::Q4_K } else { T::Q3_K },
                P::Q2_K_S if gqa4 => ty = T::Q4_K,
                P::IQ3_XXS => {
                    ty = if gqa4 {
                        T::Q4_K
                    } else if !self.opts.has_imatrix {
                        T::IQ3_S
                    } else {
                        T::IQ3_XXS
                    }
                }
                P::IQ3_XS | P::IQ3_S if gqa4 => ty = T::Q4_K,
                P::IQ3_M => ty = T::Q4_K,
                P::Q3_K_M => ty = if i < 2 { T::Q5_K } else { T::Q4_K },
                P::Q3_K_L => ty = T::Q5_K,
                P::IQ4_NL | P::IQ4_XS if gqa4 => ty = T::Q5_K,
                P::Q4_K_M | P::Q5_K_M if use_more_bits(i, self.n_attention_wv) => ty = T::Q6_K,
                P::Q4_K_S if i < 4 => ty = T::Q5_K,
                _ => {}
            }
            if self.facts.is_70b() && matches!(ty, T::Q3_K | T::Q4_K) {
                // 8 heads share each attn_v in 70B models: more bits cost little.
                ty = T::Q5_K;
            }
            if n_expert == 8 {
                ty = T::Q8_0;
            }
            self.i_attention_wv += 1;
        } else if cat == C::AttnK {
            if n_expert == 8 {
                ty = T::Q8_0;
            } else if p == P::IQ3_XS {
                ty = T::IQ3_XXS;
            } else if p == P::IQ3_XXS {
                ty = T::IQ2_S;
            }
        } else if cat == C::AttnQ {
            if p == P::IQ3_XS {
                ty = T::IQ3_XXS;
            } else if p == P::IQ3_XXS {
                ty = T::IQ2_S;
            }
        } else if cat == C::FfnDown {
            let (i, n) = self.layer_info(self.i_ffn_down, name)?;
            let imatrix = self.opts.has_imatrix;
            match p {
                P::Q2_K => ty = T::Q3_K,
                P::Q2_K_S if i < n / 8 => ty = T::Q4_K,
                P::IQ3_XXS if !imatrix => ty = if i < n / 8 { T::Q4_K } else { T::Q3_K },
                P::Q3_K_M => {
                    ty = if i < n / 16 {
                        T::Q5_K
                    } else if !falcon || use_more_bits(i, n) {
                        T::Q4_K
                    } else {
                        T::Q3_K
                    }
                }
                P::IQ3_M if i < n / 8 || (n_expert == 8 && use_more_bits(i, n)) => ty = T::Q4_K,
                P::Q3_K_L => ty = if falcon { T::Q4_K } else { T::Q5_K },
                P::Q4_K_M => {
                    if falcon {
                        ty = if i < n / 16 {
                            T::Q6_K
                        } else if use_more_bits(i, n) {
                            T::Q5_K
                        } else {
                            T::Q4_K
                        };
                    } else if use_more_bits(i, n) {
                        ty = T::Q6_K;
                    }
                }
                P::IQ4_NL | P::IQ4_XS if i < n / 8 && !imatrix => ty = T::Q5_K,
                P::Q5_K_M if use_more_bits(i, n) => ty = T::Q6_K,
                P::Q4_K_S if !falcon && i < n / 8 => ty = T::Q5_K,
                P::Q4_0 | P::Q5_0 if imatrix && i < n / 8 => {
                    ty = if p == P::Q4_0 { T::Q4_1 } else { T::Q5_1 }
                }
                _ => {}
            }
            self.i_ffn_down += 1;
        } else if cat == C::AttnOutput {
            if !falcon {
                if n_expert == 8 {
                    if matches!(
                        p,
                        P::Q2_K
                            | P::IQ3_XS
                            | P::IQ3_XXS
                            | P::Q3_K_S
                            | P::Q3_K_M
                            | P::IQ4_NL
                            | P::Q4_K_S
                            | P::Q4_K_M
                            | P::IQ3_S
                            | P::IQ3_M
                            | P::IQ4_XS
                    ) {
                        ty = T::Q5_K;
                    }
                } else {
                    match p {
                        P::Q2_K => ty = T::Q3_K,
                        P::IQ3_XXS => ty = T::IQ3_S,
                        P::Q3_K_M | P::IQ3_M => ty = T::Q4_K,
                        P::Q3_K_L => ty = T::Q5_K,
                        _ => {}
                    }
                }
            } else if p == P::Q3_K_L {
                ty = T::Q4_K;
            }
        } else if cat == C::AttnQkv {
            match p {
                P::Q3_K_M | P::Q3_K_L | P::IQ3_M => ty = T::Q4_K,
                P::Q4_K_M => ty = T::Q5_K,
                P::Q5_K_M => ty = T::Q6_K,
                _ => {}
            }
        } else if cat == C::FfnGate || cat == C::FfnUp {
            let counter = if cat == C::FfnGate {
                self.i_ffn_gate
            } else {
                self.i_ffn_up
            };
            let (i, n) = self.layer_info(counter, name)?;
            if p == P::IQ3_XS && i >= n / 8 && i < 7 * n / 8 {
                ty = T::IQ3_XXS;
            }
            if cat == C::FfnGate {
                self.i_ffn_gate += 1;
            } else {
                self.i_ffn_up += 1;
            }
        }
        Ok(ty)
    }
}

/// `tensor_type_fallback`: a type whose block does not divide the row length
/// falls back to a 32-block type of similar size, or to F16.
fn fallback(t: &TensorIn, target: TensorType) -> Result<(TensorType, bool), QuantizeError> {
    use TensorType as T;
    let ncols = t.dims[0];
    let block = target.block_size() as u64;
    if ncols.is_multiple_of(block) {
        return Ok((target, false));
    }
    let mut ty = match target {
        T::IQ1_S
        | T::IQ1_M
        | T::IQ2_XXS
        | T::IQ2_XS
        | T::IQ2_S
        | T::IQ3_XXS
        | T::IQ3_S
        | T::IQ4_XS => T::IQ4_NL,
        T::Q2_K | T::Q3_K | T::TQ1_0 | T::TQ2_0 => T::Q4_0,
        T::Q4_K => T::Q5_0,
        T::Q5_K => T::Q5_1,
        T::Q6_K => T::Q8_0,
        _ if block <= 32 => target,
        _ => {
            return Err(QuantizeError::NoFallback {
                tensor: t.name.to_owned(),
                ty: target,
                ncols,
            });
        }
    };
    if !ncols.is_multiple_of(ty.block_size() as u64) {
        ty = T::F16;
    }
    Ok((ty, true))
}
