//! The `gemma2` architecture: Gemma 2 as GGUF files describe it, the Gemma
//! family's decoder ([`super::gemma`]) with llama.cpp's src/models/gemma2.cpp
//! settings: even layers slide over a window (default 4096) with RoPE base
//! `rope.freq_base_swa` (default the global base), odd layers see everything;
//! attention scores soft-capped by `attn_logit_softcapping` (default 50) and
//! logits by `final_logit_softcapping` (default 30); post-attention and
//! post-FFN norms. The output head is always the token embedding matrix
//! (llama.cpp ignores an `output.weight`).

use gguf::GgufModel;

use super::block::Parts;
use super::common::{self, Dims};
use super::gemma::{Config, Gemma};
use crate::ModelError;
use crate::loader::Hparams;
use crate::ops::rope::{Rope, RopeMode};

/// The gemma2 architecture: the Gemma decoder with its config and weights.
pub type Gemma2 = Gemma;

/// Reads the hyper-parameters as llama.cpp's `llama_model_gemma2` does.
pub fn config(gguf: &GgufModel) -> Result<Config, ModelError> {
    let dims = Dims::from_metadata(gguf, "gemma2")?;
    let md = gguf.metadata();
    let hp = Hparams::new(md, "gemma2");
    let rope = common::rope_from_hparams(&hp, RopeMode::Neox, dims.n_rot, dims.n_ctx_train)?;
    let rope_swa = Rope {
        freq_base: hp.opt_f32("rope.freq_base_swa")?.unwrap_or(rope.freq_base),
        ..rope.clone()
    };
    // The 27B model (46 layers) scales by 1/sqrt(n_embd / n_head).
    let attention_scale = if dims.n_layer == 46 {
        1.0 / ((dims.n_embd / dims.n_head) as f32).sqrt()
    } else {
        1.0 / (dims.head_dim as f32).sqrt()
    };
    Ok(Config {
        swa_layers: common::swa_layers(md, &hp, dims.n_layer, 2)?,
        window: hp.opt_count("attention.sliding_window")?.unwrap_or(4096),
        attn_softcap: Some(hp.opt_f32("attn_logit_softcapping")?.unwrap_or(50.0)),
        final_softcap: Some(hp.opt_f32("final_logit_softcapping")?.unwrap_or(30.0)),
        attention_scale,
        rope,
        rope_swa,
        dims,
    })
}

/// Reads the config and checks every tensor.
pub fn load(gguf: &GgufModel) -> Result<Gemma2, ModelError> {
    let parts = Parts {
        post_norms: true,
        tied_output: true,
        ..Parts::PLAIN
    };
    Gemma::load(gguf, config(gguf)?, &parts)
}
