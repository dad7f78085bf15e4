//! The `gpt-oss` architecture: OpenAI's gpt-oss-20b and gpt-oss-120b as GGUF
//! files describe them. Follows llama.cpp's src/models/openai-moe.cpp
//! (`LLM_ARCH_OPENAI_MOE`): the shared block with biases on q, k, v and o, a
//! learned sink logit per head in every attention softmax, a sliding window
//! on alternating layers, and a mixture of experts with biases everywhere,
//! softmax over the chosen experts' logits and the clamped SwiGLU:
//!
//! ```text
//! x = token_embd[tokens]
//! for each layer:
//!     h = rmsnorm(x) · attn_norm
//!     q, k, v = Wq h + bq, Wk h + bk, Wv h + bv
//!     q, k = rope(q), rope(k)                     (NEOX pairing, YaRN)
//!     p = softmax over [q·k / sqrt(head_dim) for the keys the layer sees; sink_h]
//!     x += Wo (Σ p_j v_j) + bo                    (the sink's share is dropped)
//!     h = rmsnorm(x) · post_attention_norm
//!     l = Wrouter h + brouter; E = the expert_used_count largest l
//!     x += Σ_{e∈E} softmax_E(l)_e · (Wdown_e swiglu_oai(Wgate_e h + bgate_e,
//!                                                      Wup_e h + bup_e) + bdown_e)
//! logits = Woutput (rmsnorm(x) · output_norm)
//! ```
//!
//! `swiglu_oai(g, u) = min(g, 7) · sigmoid(1.702 · min(g, 7)) · (clamp(u, -7, 7) + 1)`.
//! Layers slide over `attention.sliding_window` positions where llama.cpp's
//! `load_swa_pattern(ml, 2)` says (by default the even ones), with RoPE base
//! `rope.freq_base_swa` if set; the experts' width is
//! `expert_feed_forward_length`. The norm before the FFN is stored as
//! `post_attention_norm` (llama.cpp's `LLM_TENSOR_ATTN_POST_NORM`).

use gguf::GgufModel;

use super::block::{Act, FfnParts, Parts};
use super::common;
use super::moe::Gating;
use super::standard::{BasicConfig, Standard, Swa};
use crate::ModelError;
use crate::loader::{Hparams, config};
use crate::ops::rope::{Rope, RopeMode};

/// The gpt-oss architecture: the shared block with its config, weights and
/// sliding layers.
pub type GptOss = Standard;

/// Reads the config as llama.cpp's `llama_model_openai_moe` does and checks
/// every tensor.
pub fn load(gguf: &GgufModel) -> Result<GptOss, ModelError> {
    let arch = "gpt-oss";
    let mut c = BasicConfig::from_metadata(gguf, arch, RopeMode::Neox)?;
    let md = gguf.metadata();
    let hp = Hparams::new(md, arch);
    let (n_expert, n_used) = common::experts(&hp)?;
    if n_expert == 0 {
        return Err(config(
            &hp.key("expert_count"),
            "missing or 0 (a gpt-oss needs experts)",
        ));
    }
    let d = &mut c.dims;
    // llama.cpp takes the heads' width from `rope.dimension_count`.
    if d.n_rot != d.head_dim {
        return Err(config(
            &hp.key("rope.dimension_count"),
            &format!("{} must equal the head size {}", d.n_rot, d.head_dim),
        ));
    }
    d.n_ff = match hp.opt_count("expert_feed_forward_length")? {
        Some(n) if n > 0 => n,
        _ => {
            return Err(config(
                &hp.key("expert_feed_forward_length"),
                "missing or 0",
            ));
        }
    };
    let window = match hp.opt_count("attention.sliding_window")? {
        Some(w) if w > 0 => w,
        _ => return Err(config(&hp.key("attention.sliding_window"), "missing or 0")),
    };
    let swa = Swa {
        window,
        layers: common::swa_layers(md, &hp, d.n_layer, 2)?,
        rope: Rope {
            freq_base: hp
                .opt_f32("rope.freq_base_swa")?
                .unwrap_or(c.rope.freq_base),
            ..c.rope.clone()
        },
    };
    let parts = Parts {
        sinks: true,
        ffn_norm: "post_attention_norm",
        ffn: FfnParts::Moe {
            n_expert,
            n_used,
            gating: Gating::SoftmaxOfTopK,
        },
        ..Parts::PLAIN
    };
    Ok(Standard::load(gguf, c, &parts, Act::SwigluOai)?.with_swa(swa))
}
