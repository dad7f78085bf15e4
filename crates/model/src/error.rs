//! Errors from loading a model and running its forward pass.

use gguf::TensorType;

/// Why a model could not be loaded or run. Every variant names the key, tensor
/// or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The GGUF file could not be read, or a metadata value had the wrong type.
    #[error(transparent)]
    Gguf(#[from] gguf::Error),
    /// `general.architecture` names an architecture hearth does not implement.
    #[error("unknown model architecture '{0}'")]
    UnknownArchitecture(String),
    /// A required tensor is absent.
    #[error("missing tensor '{0}'")]
    MissingTensor(String),
    /// A tensor's shape differs from the one the hyper-parameters imply.
    #[error("tensor '{name}' has shape {found:?}, expected {expected:?}")]
    TensorShape {
        /// Tensor name.
        name: String,
        /// Shape the metadata implies (`ne[0]` first).
        expected: Vec<u64>,
        /// Shape in the file.
        found: Vec<u64>,
    },
    /// A tensor is stored in a format hearth cannot compute with.
    #[error("tensor '{name}' has type {ty}, which is not supported here")]
    TensorType {
        /// Tensor name.
        name: String,
        /// Its format.
        ty: TensorType,
    },
    /// A hyper-parameter is missing, zero, or inconsistent with another.
    #[error("invalid hyper-parameter '{key}': {reason}")]
    Config {
        /// The metadata key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The tokens would not fit in the context window.
    #[error("context full: {needed} positions needed, the context holds {n_ctx}")]
    ContextFull {
        /// Context size of the state.
        n_ctx: usize,
        /// Positions the request needed (tokens already cached plus new ones).
        needed: usize,
    },
    /// A token id outside the vocabulary.
    #[error("token id {token} at position {index} is out of range (vocabulary size {n_vocab})")]
    TokenOutOfRange {
        /// The token id.
        token: u32,
        /// Its index in the input.
        index: usize,
        /// Vocabulary size.
        n_vocab: usize,
    },
    /// A request that makes no sense for the state (an empty batch, a shift past
    /// the cached tokens, a state from another model).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A LoRA adapter that does not fit the model, or is malformed.
    #[error("LoRA adapter {0}")]
    Lora(String),
    /// A kernel rejected its input (a bug if it happens after validation).
    #[error(transparent)]
    Kernel(#[from] kernels::KernelError),
    /// Writing a synthetic model failed.
    #[error("writing synthetic model: {0}")]
    Io(#[from] std::io::Error),
}
