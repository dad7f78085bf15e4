//! Errors from generating text.

use model::ModelError;
use model::chat::ChatError;
use model::sampler::SamplerError;

/// Why a generation could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The forward pass failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The sampler could not pick a token.
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    /// The chat template failed to render.
    #[error("chat template: {0}")]
    Chat(#[from] ChatError),
    /// The prompt leaves no room in the context for even one new token.
    #[error(
        "the prompt is {n_prompt} tokens, the context holds {n_ctx}; raise num_ctx or shorten the prompt"
    )]
    PromptTooLong {
        /// Tokens in the prompt.
        n_prompt: usize,
        /// Context size.
        n_ctx: usize,
    },
    /// Generation filled the context and context shifting is off.
    #[error(
        "the context ({n_ctx} tokens) is full; raise num_ctx, set num_predict, or enable context shift"
    )]
    ContextFull {
        /// Context size.
        n_ctx: usize,
    },
    /// A batched step failed; every sequence in it ends with this.
    #[error("a batched forward pass failed: {0}")]
    Step(String),
    /// The prompt was empty after tokenization.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// A constraint (JSON Schema, grammar, regular expression) is invalid, or
    /// its grammar failed while generating.
    #[error("{0}")]
    Constraint(String),
    /// An option name or value was not understood.
    #[error("option '{name}': {reason}")]
    Option {
        /// The option's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}
