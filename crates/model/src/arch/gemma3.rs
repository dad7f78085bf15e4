//! The `gemma3` architecture: Gemma 3 (text) as GGUF files describe it, the
//! Gemma family's decoder ([`super::gemma`]) with llama.cpp's
//! src/models/gemma3.cpp settings: 5 of every 6 layers slide over
//! `attention.sliding_window` with RoPE base `rope.freq_base_swa` (default
//! 10000, never scaled: the linear factor of the larger models applies to
//! global layers only), per-head q/k norms, post-attention and post-FFN
//! norms, no attention soft-capping; logits soft-capped only if the file sets
//! `final_logit_softcapping`; the output head tied to the embeddings if the
//! file has no `output.weight`. Without `attention.sliding_window` every layer
//! is global.

use gguf::GgufModel;

use super::block::{Parts, QkNorm};
use super::common::{self, Dims};
use super::gemma::{Config, Gemma};
use crate::ModelError;
use crate::loader::Hparams;
use crate::ops::rope::{Rope, RopeMode};

/// The gemma3 architecture: the Gemma decoder with its config and weights.
pub type Gemma3 = Gemma;

/// Reads the hyper-parameters as llama.cpp's `llama_model_gemma3` does.
pub fn config(gguf: &GgufModel) -> Result<Config, ModelError> {
    let dims = Dims::from_metadata(gguf, "gemma3")?;
    let md = gguf.metadata();
    let hp = Hparams::new(md, "gemma3");
    let rope = common::rope_from_hparams(&hp, RopeMode::Neox, dims.n_rot, dims.n_ctx_train)?;
    let rope_swa = Rope {
        freq_base: hp.opt_f32("rope.freq_base_swa")?.unwrap_or(10000.0),
        freq_scale: 1.0,
        ..rope.clone()
    };
    let window = hp.opt_count("attention.sliding_window")?.filter(|&w| w > 0);
    let swa_layers = match window {
        Some(_) => common::swa_layers(md, &hp, dims.n_layer, 6)?,
        None => vec![false; dims.n_layer],
    };
    // The 27B model (62 layers) scales by 1/sqrt(n_embd / n_head).
    let attention_scale = if dims.n_layer == 62 {
        1.0 / ((dims.n_embd / dims.n_head) as f32).sqrt()
    } else {
        1.0 / (dims.head_dim as f32).sqrt()
    };
    Ok(Config {
        swa_layers,
        window: window.unwrap_or(0),
        attn_softcap: None,
        final_softcap: hp.opt_f32("final_logit_softcapping")?.filter(|&c| c != 0.0),
        attention_scale,
        rope,
        rope_swa,
        dims,
    })
}

/// Reads the config and checks every tensor.
pub fn load(gguf: &GgufModel) -> Result<Gemma3, ModelError> {
    let parts = Parts {
        qk_norm: QkNorm::PerHead,
        post_norms: true,
        ..Parts::PLAIN
    };
    Gemma::load(gguf, config(gguf)?, &parts)
}
