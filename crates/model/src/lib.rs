//! Tokenizers, chat templates and model architectures.
#![deny(missing_docs)]

pub mod arch;
pub mod chat;
mod error;
pub mod estimate;
pub mod imatrix;
pub mod kv_cache;
pub mod loader;
pub mod lora;
pub mod ops;
pub mod sampler;
pub mod synthetic;
pub mod tokenizer;

pub use arch::{Batch, LoadOptions, Logits, Model, ModelInfo, PagedSeq, SeqStep, State};
pub use error::ModelError;
/// The batch-invariant switch (`HEARTH_DETERMINISTIC`): every product and
/// attention sum in one order whatever the batch holds.
pub use kernels::matmul::{batch_invariant, set_batch_invariant};
pub use kv_cache::KvType;
pub use lora::{Lora, LoraUse};
