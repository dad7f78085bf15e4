//! The `cohere2` architecture: Command R7B as GGUF files describe it, the
//! Cohere family's decoder ([`super::command_r`]) with llama.cpp's
//! src/models/cohere2.cpp settings: three of every four layers
//! (`attention.sliding_window_pattern`, default 4) slide over
//! `attention.sliding_window` positions with RoPE at the global base (the
//! graph never reads `rope.freq_base_swa`), and the fourth attends to every
//! position without any RoPE; `logit_scale` is required.

use gguf::GgufModel;

use super::command_r::{Cohere, Config};
use super::common;
use crate::ModelError;
use crate::loader::{Hparams, config};

/// The cohere2 architecture: the Cohere decoder with its config and weights.
pub type Cohere2 = Cohere;

/// Reads the config as llama.cpp's `llama_model_cohere2` does and checks
/// every tensor.
pub fn load(gguf: &GgufModel) -> Result<Cohere2, ModelError> {
    let mut c = Config::from_metadata(gguf, "cohere2")?;
    let md = gguf.metadata();
    let hp = Hparams::new(md, "cohere2");
    if c.logit_scale.is_none() {
        return Err(config(&hp.key("logit_scale"), "missing or 0"));
    }
    c.window = hp.count("attention.sliding_window")?;
    c.swa_layers = common::swa_layers(md, &hp, c.base.dims.n_layer, 4)?;
    c.global_rope = false;
    Cohere::load(gguf, c)
}
