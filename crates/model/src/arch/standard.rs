//! The decoder of architectures that are the shared transformer block and
//! nothing else ([`Standard`]): sequential layers, one RoPE for every layer,
//! attention over the whole cache scaled by `1/sqrt(head_dim)` (or over a
//! sliding window on the layers [`Swa`] names, with a RoPE of their own),
//! the FFN or mixture of experts with the architecture's activation, the
//! output head without soft-cap. The architecture files that use it (qwen2,
//! qwen3, qwen3moe, starcoder2, olmo2, gpt-oss) say only which tensors their
//! layers have, which activation, and how their config differs.

use gguf::GgufModel;

use super::block::{self, Act, FfnParts, Finish, LayerAttn, Parts, Weights};
use super::common::{self, Decoder, Dims, Loader, Out, Step};
use crate::ModelError;
use crate::loader::{Hparams, Tensor, config};
use crate::ops::rope::{Rope, RopeMode};

/// Hyper-parameters of an architecture that has nothing beyond the shared
/// sizes and one RoPE.
#[derive(Clone, Debug)]
pub struct BasicConfig {
    /// Shared sizes.
    pub dims: Dims,
    /// RoPE parameters after applying the scaling keys.
    pub rope: Rope,
}

impl BasicConfig {
    /// Reads the shared sizes and the RoPE keys under `{arch}.`.
    pub fn from_metadata(
        gguf: &GgufModel,
        arch: &str,
        mode: RopeMode,
    ) -> Result<BasicConfig, ModelError> {
        let dims = Dims::from_metadata(gguf, arch)?;
        let hp = Hparams::new(gguf.metadata(), arch);
        let rope = common::rope_from_hparams(&hp, mode, dims.n_rot, dims.n_ctx_train)?;
        Ok(BasicConfig { dims, rope })
    }

    /// Takes the norms' epsilon from `attention.layer_norm_epsilon`, which
    /// llama.cpp requires of its LayerNorm models (starcoder2, command-r).
    pub fn layer_norm_eps(&mut self, hp: &Hparams<'_>) -> Result<(), ModelError> {
        let key = "attention.layer_norm_epsilon";
        self.dims.norm_eps = hp
            .opt_f32(key)?
            .ok_or_else(|| config(&hp.key(key), "missing"))?;
        Ok(())
    }
}

/// Sliding-window attention on some of the layers (llama.cpp's
/// `LLAMA_SWA_TYPE_STANDARD`).
#[derive(Clone, Debug)]
pub struct Swa {
    /// Positions a sliding layer's query sees, itself included.
    pub window: usize,
    /// Whether each layer slides.
    pub layers: Vec<bool>,
    /// RoPE of the sliding layers (`rope.freq_base_swa`).
    pub rope: Rope,
}

/// An architecture that is the shared block: its config and weights.
#[derive(Debug)]
pub struct Standard {
    /// Hyper-parameters.
    pub config: BasicConfig,
    /// The sliding layers, if any.
    pub swa: Option<Swa>,
    weights: Weights,
    /// (experts, experts used per token) of a mixture of experts.
    experts: Option<(usize, usize)>,
    /// The FFN's activation.
    act: Act,
}

impl Standard {
    /// Finds and checks the tensors `parts` names for `config`; the FFN
    /// runs with `act`.
    pub fn load(
        gguf: &GgufModel,
        config: BasicConfig,
        parts: &Parts,
        act: Act,
    ) -> Result<Standard, ModelError> {
        let weights = Weights::load(&Loader::new(gguf), &config.dims, parts)?;
        let experts = match parts.ffn {
            FfnParts::Moe {
                n_expert, n_used, ..
            } => Some((n_expert, n_used)),
            FfnParts::Plain | FfnParts::Gated | FfnParts::FusedGateUp => None,
        };
        Ok(Standard {
            config,
            swa: None,
            weights,
            experts,
            act,
        })
    }

    /// The same with the layers `swa` names sliding.
    pub fn with_swa(self, swa: Swa) -> Standard {
        Standard {
            swa: Some(swa),
            ..self
        }
    }

    /// Whether layer `il` slides.
    fn slides(&self, il: usize) -> Option<&Swa> {
        self.swa.as_ref().filter(|s| s.layers[il])
    }
}

impl Decoder for Standard {
    fn dims(&self) -> &Dims {
        &self.config.dims
    }

    fn fused(&self) -> bool {
        self.weights.fused()
    }

    fn experts(&self) -> Option<(usize, usize)> {
        self.experts
    }

    fn matrices(&self) -> Vec<&Tensor> {
        self.weights.matrices()
    }

    fn rope(&self, layer: usize, _n_ctx: usize) -> Option<(Rope, Option<Vec<f32>>)> {
        let rope = self.slides(layer).map_or(&self.config.rope, |s| &s.rope);
        Some((rope.clone(), None))
    }

    fn forward_batch(
        &self,
        s: &mut Step<'_, '_>,
        tokens: &[u32],
        out: Option<Out<'_>>,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let (d, w, n) = (&c.dims, &self.weights, tokens.len());
        let at = LayerAttn::plain(d, &c.rope);
        let at_swa = self.swa.as_ref().map(|swa| {
            let mut at = LayerAttn::plain(d, &swa.rope);
            at.shape.window = Some(swa.window);
            at
        });
        w.embed(s, tokens, 1.0)?;
        for (il, layer) in w.layers.iter().enumerate() {
            let at = match (&at_swa, self.slides(il)) {
                (Some(at_swa), Some(_)) => at_swa,
                _ => &at,
            };
            block::sequential_layer(s, il, n, layer, d, at, self.act)?;
        }
        w.output(s, d, Finish::None, out)
    }
}
