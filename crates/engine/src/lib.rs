//! Generation on top of the `model` crate: the sampling loop with streaming,
//! stop sequences and Ollama-style timings ([`generate`]), the cached context a
//! conversation keeps between turns ([`Context`]), chat sessions that render the
//! model's template ([`ChatSession`]), the option set shared by the CLI and
//! the API ([`Options`]), the block bookkeeping of the paged KV cache with its
//! prefix cache ([`blocks`]), continuous batching of many generations over
//! that cache ([`scheduler`]), constrained decoding: grammar masks applied
//! before sampling ([`constraint`]), and measuring a model's quality the way
//! llama-perplexity does ([`eval`]).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod backend;
pub mod blocks;
mod chat;
pub mod constraint;
mod error;
pub mod eval;
mod generate;
mod logprobs;
mod options;
pub mod scheduler;
mod stop;

pub use backend::{Backend, ModelBackend};
pub use chat::ChatSession;
pub use constraint::{Constraint, Grammar};
pub use error::EngineError;
pub use generate::{
    Context, DoneReason, GenerateResult, PREFILL_CHUNK, Timings, generate, generate_constrained,
    truncate_prompt,
};
pub use logprobs::{TokenLogprob, token_logprob};
pub use options::{OPTION_NAMES, Options};
pub use stop::{Released, StopMatcher};
