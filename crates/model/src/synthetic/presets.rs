//! The named specs: tiny models of each architecture for the logits fixtures
//! and tests, and random-weight models with the shapes of real ones for
//! benchmarks ([`Spec::preset`]).

use super::Spec;

impl Spec {
    /// The tiny dense Llama used by the logits fixtures: GQA (4 query heads over
    /// 2 KV heads), rows of 256 so every K-quant applies.
    pub fn tiny_llama() -> Spec {
        Spec {
            arch: "llama".into(),
            n_vocab: 320,
            n_ctx_train: 256,
            n_embd: 256,
            n_layer: 2,
            n_head: 4,
            n_head_kv: 2,
            head_dim: None,
            n_ff: 512,
            n_expert: 0,
            n_expert_used: 0,
            sliding_window: None,
            rope_freq_base_swa: None,
            attn_softcap: None,
            final_softcap: None,
            logit_scale: None,
            granite_scales: None,
            yarn: None,
            attn_temperature: None,
            long_rope: None,
            rope_freq_base: 10000.0,
            norm_eps: 1e-5,
            tied_output: false,
            seed: 1,
        }
    }

    /// The tiny Llama with a mixture of experts (4 experts, top 2), Mixtral-style.
    pub fn tiny_moe() -> Spec {
        Spec {
            n_expert: 4,
            n_expert_used: 2,
            tied_output: true,
            seed: 2,
            ..Spec::tiny_llama()
        }
    }

    /// The tiny Llama with a 16-token sliding window, Mistral-style.
    pub fn tiny_swa() -> Spec {
        Spec {
            sliding_window: Some(16),
            seed: 3,
            ..Spec::tiny_llama()
        }
    }

    /// The shapes of Llama-3.2-1B (random weights; llama3 RoPE factors omitted).
    pub fn llama_3_2_1b() -> Spec {
        Spec {
            arch: "llama".into(),
            n_vocab: 128_256,
            n_ctx_train: 131_072,
            n_embd: 2048,
            n_layer: 16,
            n_head: 32,
            n_head_kv: 8,
            head_dim: None,
            n_ff: 8192,
            n_expert: 0,
            n_expert_used: 0,
            sliding_window: None,
            rope_freq_base_swa: None,
            attn_softcap: None,
            final_softcap: None,
            logit_scale: None,
            granite_scales: None,
            yarn: None,
            attn_temperature: None,
            long_rope: None,
            rope_freq_base: 500_000.0,
            norm_eps: 1e-5,
            tied_output: true,
            seed: 1,
        }
    }

    /// The shapes of Llama-3.1-8B.
    pub fn llama_3_1_8b() -> Spec {
        Spec {
            n_embd: 4096,
            n_layer: 32,
            n_ff: 14_336,
            tied_output: false,
            ..Spec::llama_3_2_1b()
        }
    }

    /// The shapes of Mixtral-8x7B.
    pub fn mixtral_8x7b() -> Spec {
        Spec {
            n_vocab: 32_000,
            n_ctx_train: 32_768,
            n_expert: 8,
            n_expert_used: 2,
            rope_freq_base: 1_000_000.0,
            ..Spec::llama_3_1_8b()
        }
    }

    /// The tiny Qwen2: the tiny Llama's shapes with q/k/v biases.
    pub fn tiny_qwen2() -> Spec {
        Spec {
            arch: "qwen2".into(),
            rope_freq_base: 1_000_000.0,
            norm_eps: 1e-6,
            seed: 11,
            ..Spec::tiny_llama()
        }
    }

    /// The tiny Qwen3: per-head q/k norms, heads of 128 (wider than
    /// `n_embd / n_head`, as in Qwen3-0.6B), tied output.
    pub fn tiny_qwen3() -> Spec {
        Spec {
            arch: "qwen3".into(),
            head_dim: Some(128),
            tied_output: true,
            seed: 12,
            ..Spec::tiny_qwen2()
        }
    }

    /// The tiny Phi-3: fused q|k|v and gate|up, LongRoPE with an original
    /// context of 64 (so the long factors apply to any longer context).
    pub fn tiny_phi3() -> Spec {
        Spec {
            arch: "phi3".into(),
            n_ctx_train: 4096,
            long_rope: Some(64),
            seed: 13,
            ..Spec::tiny_llama()
        }
    }

    /// The tiny Gemma 2: heads of 128, a 16-token window on even layers, small
    /// soft-caps so that both actually bite on unit-scale scores and logits.
    pub fn tiny_gemma2() -> Spec {
        Spec {
            arch: "gemma2".into(),
            head_dim: Some(128),
            sliding_window: Some(16),
            attn_softcap: Some(2.0),
            final_softcap: Some(3.0),
            norm_eps: 1e-6,
            tied_output: true,
            seed: 14,
            ..Spec::tiny_llama()
        }
    }

    /// The tiny Gemma 3: six layers (five sliding over 16 tokens with RoPE base
    /// 10000, one global with base 10⁶), per-head q/k norms, no soft-caps, and
    /// an untied output head (with the head tied to embeddings scaled by
    /// `sqrt(n_embd)`, a random model just repeats its last input token).
    pub fn tiny_gemma3() -> Spec {
        Spec {
            arch: "gemma3".into(),
            n_layer: 6,
            rope_freq_base: 1_000_000.0,
            attn_softcap: None,
            final_softcap: None,
            tied_output: false,
            seed: 15,
            ..Spec::tiny_gemma2()
        }
    }

    /// The tiny Qwen3 MoE: the tiny Qwen3's attention with 4 experts of width
    /// 256, top 2.
    pub fn tiny_qwen3moe() -> Spec {
        Spec {
            arch: "qwen3moe".into(),
            n_ff: 256,
            n_expert: 4,
            n_expert_used: 2,
            seed: 16,
            ..Spec::tiny_qwen3()
        }
    }

    /// The shapes of Qwen3-30B-A3B: 48 layers, 128 experts of width 768, 8
    /// used per token, heads of 128 (random weights).
    pub fn qwen3_30b_a3b() -> Spec {
        Spec {
            arch: "qwen3moe".into(),
            n_ctx_train: 40_960,
            n_embd: 2048,
            n_layer: 48,
            n_head: 32,
            n_head_kv: 4,
            head_dim: Some(128),
            n_ff: 768,
            n_expert: 128,
            n_expert_used: 8,
            tied_output: false,
            ..Spec::qwen2_5_0_5b()
        }
    }

    /// The tiny Gemma (1): GELU, embeddings scaled by `sqrt(n_embd)`, the head
    /// tied to them (as every Gemma 1 file is; its greedy tokens mostly repeat
    /// the last input, the logits of all positions still test every step).
    pub fn tiny_gemma() -> Spec {
        Spec {
            arch: "gemma".into(),
            norm_eps: 1e-6,
            tied_output: true,
            seed: 17,
            ..Spec::tiny_llama()
        }
    }

    /// The shapes of Gemma-2B (heads of 256, one KV head, a 256k vocabulary).
    pub fn gemma_2b() -> Spec {
        Spec {
            arch: "gemma".into(),
            n_vocab: 256_000,
            n_ctx_train: 8192,
            n_embd: 2048,
            n_layer: 18,
            n_head: 8,
            n_head_kv: 1,
            head_dim: Some(256),
            n_ff: 16_384,
            rope_freq_base: 10_000.0,
            norm_eps: 1e-6,
            tied_output: true,
            ..Spec::llama_3_2_1b()
        }
    }

    /// The tiny StarCoder2: LayerNorms with biases, biases on every
    /// projection, a plain GELU MLP.
    pub fn tiny_starcoder2() -> Spec {
        Spec {
            arch: "starcoder2".into(),
            seed: 18,
            ..Spec::tiny_llama()
        }
    }

    /// The shapes of StarCoder2-3B.
    pub fn starcoder2_3b() -> Spec {
        Spec {
            arch: "starcoder2".into(),
            n_vocab: 49_152,
            n_ctx_train: 16_384,
            n_embd: 3072,
            n_layer: 30,
            n_head: 24,
            n_head_kv: 2,
            head_dim: None,
            n_ff: 12_288,
            rope_freq_base: 999_999.44,
            norm_eps: 1e-5,
            tied_output: true,
            ..Spec::llama_3_2_1b()
        }
    }

    /// The tiny Command R: parallel blocks, LayerNorms without bias, the head
    /// tied to the embeddings, logits scaled by 1/4.
    pub fn tiny_command_r() -> Spec {
        Spec {
            arch: "command-r".into(),
            logit_scale: Some(0.25),
            tied_output: true,
            seed: 19,
            ..Spec::tiny_llama()
        }
    }

    /// The shapes of Command R 35B (v01: no GQA, a 256k vocabulary).
    pub fn command_r_35b() -> Spec {
        Spec {
            arch: "command-r".into(),
            n_vocab: 256_000,
            n_ctx_train: 131_072,
            n_embd: 8192,
            n_layer: 40,
            n_head: 64,
            n_head_kv: 64,
            head_dim: None,
            n_ff: 22_528,
            rope_freq_base: 8_000_000.0,
            norm_eps: 1e-5,
            logit_scale: Some(0.0625),
            tied_output: true,
            ..Spec::llama_3_2_1b()
        }
    }

    /// The tiny Command R7B (cohere2): four layers, three sliding over 16
    /// positions with RoPE, one global without.
    pub fn tiny_cohere2() -> Spec {
        Spec {
            arch: "cohere2".into(),
            n_layer: 4,
            sliding_window: Some(16),
            seed: 20,
            ..Spec::tiny_command_r()
        }
    }

    /// The shapes of Command R7B.
    pub fn command_r7b() -> Spec {
        Spec {
            arch: "cohere2".into(),
            n_ctx_train: 8192,
            n_embd: 4096,
            n_layer: 32,
            n_head: 32,
            n_head_kv: 8,
            n_ff: 14_336,
            rope_freq_base: 50_000.0,
            sliding_window: Some(4096),
            logit_scale: Some(0.25),
            ..Spec::command_r_35b()
        }
    }

    /// The tiny OLMo 2: norms after the sub-blocks only, q/k norms over
    /// whole rows.
    pub fn tiny_olmo2() -> Spec {
        Spec {
            arch: "olmo2".into(),
            norm_eps: 1e-6,
            rope_freq_base: 500_000.0,
            seed: 21,
            ..Spec::tiny_llama()
        }
    }

    /// The shapes of OLMo-2-1B (OLMo-2-0425-1B).
    pub fn olmo2_1b() -> Spec {
        Spec {
            arch: "olmo2".into(),
            n_vocab: 100_352,
            n_ctx_train: 4096,
            n_embd: 2048,
            n_layer: 16,
            n_head: 16,
            n_head_kv: 16,
            n_ff: 8192,
            norm_eps: 1e-6,
            tied_output: false,
            ..Spec::llama_3_2_1b()
        }
    }

    /// The tiny Granite: the tiny Llama with Granite 3's multipliers
    /// (embeddings x12, sub-block outputs x0.22, scores x1/64, logits /8).
    pub fn tiny_granite() -> Spec {
        Spec {
            arch: "granite".into(),
            logit_scale: Some(8.0),
            granite_scales: Some([12.0, 0.22, 0.015_625]),
            seed: 22,
            ..Spec::tiny_llama()
        }
    }

    /// The shapes of Granite-3.1-2B.
    pub fn granite_3_2b() -> Spec {
        Spec {
            arch: "granite".into(),
            n_vocab: 49_155,
            n_ctx_train: 131_072,
            n_embd: 2048,
            n_layer: 40,
            n_head: 32,
            n_head_kv: 8,
            n_ff: 8192,
            rope_freq_base: 5_000_000.0,
            logit_scale: Some(8.0),
            granite_scales: Some([12.0, 0.22, 0.015_625]),
            tied_output: true,
            ..Spec::llama_3_2_1b()
        }
    }

    /// The tiny Mistral 3: YaRN (factor 4 over an original context of 16,
    /// log multiplier 1) and attention temperature 0.1, so both change the
    /// prompt's later positions.
    pub fn tiny_mistral3() -> Spec {
        Spec {
            arch: "mistral3".into(),
            n_ctx_train: 1024,
            rope_freq_base: 1_000_000.0,
            yarn: Some((4.0, 16, 1.0)),
            attn_temperature: Some(0.1),
            seed: 23,
            ..Spec::tiny_llama()
        }
    }

    /// The shapes of Ministral-3-8B (text).
    pub fn ministral_3_8b() -> Spec {
        Spec {
            arch: "mistral3".into(),
            n_vocab: 131_072,
            n_ctx_train: 262_144,
            n_embd: 4096,
            n_layer: 34,
            n_head: 32,
            n_head_kv: 8,
            head_dim: Some(128),
            n_ff: 14_336,
            rope_freq_base: 1_000_000_000.0,
            yarn: Some((16.0, 16_384, 1.0)),
            attn_temperature: Some(0.1),
            tied_output: false,
            ..Spec::llama_3_2_1b()
        }
    }

    /// The tiny gpt-oss: heads of 64 (q wider than `n_embd`, as in the real
    /// model), 8 experts of width 256 with 4 used, a 16-token window on the
    /// even layer, YaRN as gpt-oss files set it (factor 32 over 4096
    /// positions, base 150000), every bias and the attention sinks.
    pub fn tiny_gpt_oss() -> Spec {
        Spec {
            arch: "gpt-oss".into(),
            n_ctx_train: 131_072,
            n_head: 8,
            n_head_kv: 2,
            head_dim: Some(64),
            n_ff: 256,
            n_expert: 8,
            n_expert_used: 4,
            sliding_window: Some(16),
            yarn: Some((32.0, 4096, 0.0)),
            rope_freq_base: 150_000.0,
            seed: 24,
            ..Spec::tiny_llama()
        }
    }

    /// The shapes of gpt-oss-20b: 24 layers (sliding over 128 positions on
    /// the even ones), 32 experts of width 2880 with 4 used, 64 query heads
    /// of 64 over 8 KV heads, a 201088-token vocabulary (random weights).
    pub fn gpt_oss_20b() -> Spec {
        Spec {
            arch: "gpt-oss".into(),
            n_vocab: 201_088,
            n_ctx_train: 131_072,
            n_embd: 2880,
            n_layer: 24,
            n_head: 64,
            n_head_kv: 8,
            head_dim: Some(64),
            n_ff: 2880,
            n_expert: 32,
            n_expert_used: 4,
            sliding_window: Some(128),
            yarn: Some((32.0, 4096, 0.0)),
            rope_freq_base: 150_000.0,
            norm_eps: 1e-5,
            tied_output: false,
            ..Spec::llama_3_2_1b()
        }
    }

    /// The tiny BLOOM: ALiBi instead of RoPE, LayerNorms (the embeddings'
    /// too) and projections with biases, fused q|k|v, no GQA.
    pub fn tiny_bloom() -> Spec {
        Spec {
            arch: "bloom".into(),
            n_head_kv: 4,
            seed: 25,
            ..Spec::tiny_llama()
        }
    }

    /// The shapes of BLOOM-560m (random weights).
    pub fn bloom_560m() -> Spec {
        Spec {
            arch: "bloom".into(),
            n_vocab: 250_880,
            n_ctx_train: 2048,
            n_embd: 1024,
            n_layer: 24,
            n_head: 16,
            n_head_kv: 16,
            n_ff: 4096,
            tied_output: true,
            ..Spec::llama_3_2_1b()
        }
    }

    /// The shapes of Qwen2.5-0.5B (random weights).
    pub fn qwen2_5_0_5b() -> Spec {
        Spec {
            arch: "qwen2".into(),
            n_vocab: 151_936,
            n_ctx_train: 32_768,
            n_embd: 896,
            n_layer: 24,
            n_head: 14,
            n_head_kv: 2,
            n_ff: 4864,
            rope_freq_base: 1_000_000.0,
            norm_eps: 1e-6,
            tied_output: true,
            ..Spec::llama_3_2_1b()
        }
    }

    /// A preset by name: `tiny-llama`, `tiny-moe`, `tiny-swa`, `tiny-qwen2`,
    /// `tiny-qwen3`, `tiny-phi3`, `tiny-gemma2`, `tiny-gemma3`, `tiny-qwen3moe`,
    /// `tiny-gemma`, `tiny-starcoder2`, `tiny-command-r`, `tiny-cohere2`,
    /// `tiny-olmo2`, `tiny-granite`, `tiny-mistral3`, `tiny-gpt-oss`, `tiny-bloom`,
    /// `llama-3.2-1b`, `llama-3.1-8b`, `mixtral-8x7b`, `qwen2.5-0.5b`,
    /// `qwen3-30b-a3b`, `gemma-2b`, `starcoder2-3b`, `command-r-35b`,
    /// `command-r7b`, `olmo2-1b`, `granite-3-2b`, `ministral-3-8b`,
    /// `gpt-oss-20b`, `bloom-560m`.
    pub fn preset(name: &str) -> Option<Spec> {
        Some(match name {
            "tiny-llama" => Spec::tiny_llama(),
            "tiny-moe" => Spec::tiny_moe(),
            "tiny-swa" => Spec::tiny_swa(),
            "tiny-qwen2" => Spec::tiny_qwen2(),
            "tiny-qwen3" => Spec::tiny_qwen3(),
            "tiny-phi3" => Spec::tiny_phi3(),
            "tiny-gemma2" => Spec::tiny_gemma2(),
            "tiny-gemma3" => Spec::tiny_gemma3(),
            "tiny-qwen3moe" => Spec::tiny_qwen3moe(),
            "tiny-gemma" => Spec::tiny_gemma(),
            "tiny-starcoder2" => Spec::tiny_starcoder2(),
            "tiny-command-r" => Spec::tiny_command_r(),
            "tiny-cohere2" => Spec::tiny_cohere2(),
            "tiny-olmo2" => Spec::tiny_olmo2(),
            "tiny-granite" => Spec::tiny_granite(),
            "tiny-mistral3" => Spec::tiny_mistral3(),
            "tiny-gpt-oss" => Spec::tiny_gpt_oss(),
            "tiny-bloom" => Spec::tiny_bloom(),
            "qwen2.5-0.5b" => Spec::qwen2_5_0_5b(),
            "llama-3.2-1b" => Spec::llama_3_2_1b(),
            "llama-3.1-8b" => Spec::llama_3_1_8b(),
            "mixtral-8x7b" => Spec::mixtral_8x7b(),
            "qwen3-30b-a3b" => Spec::qwen3_30b_a3b(),
            "gemma-2b" => Spec::gemma_2b(),
            "starcoder2-3b" => Spec::starcoder2_3b(),
            "command-r-35b" => Spec::command_r_35b(),
            "command-r7b" => Spec::command_r7b(),
            "olmo2-1b" => Spec::olmo2_1b(),
            "granite-3-2b" => Spec::granite_3_2b(),
            "ministral-3-8b" => Spec::ministral_3_8b(),
            "gpt-oss-20b" => Spec::gpt_oss_20b(),
            "bloom-560m" => Spec::bloom_560m(),
            _ => return None,
        })
    }
}
