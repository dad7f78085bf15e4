//! Quantizing a GGUF model as llama-quantize does: the same tensor types for
//! the same preset and options ([`rules`]), the same metadata, the same bytes
//! (the quantizers are `kernels`'), streamed from the mapped input to the output
//! ([`quantize_file`]).

mod imatrix;
mod job;
mod preset;
pub mod rules;

use std::path::PathBuf;

use gguf::TensorType;

pub use imatrix::Imatrix;
pub use job::{Event, Report, Request, quantize_file};
pub use preset::Preset;
pub use rules::{ModelFacts, Options};

/// Why a quantization did not happen.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// The input (or output) file could not be read, parsed or written.
    #[error(transparent)]
    Gguf(#[from] gguf::Error),
    /// The model's metadata lacks what the rules need.
    #[error("model metadata: {0}")]
    Metadata(String),
    /// An importance matrix file that does not parse.
    #[error("importance matrix {}: {msg}", path.display())]
    Imatrix {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The chosen type's block does not divide the row length, and it has no fallback.
    #[error("{tensor}: rows of {ncols} do not divide into {ty} blocks, and {ty} has no fallback")]
    NoFallback {
        /// The tensor.
        tensor: String,
        /// The type the rules chose.
        ty: TensorType,
        /// Its row length.
        ncols: u64,
    },
    /// The preset quantizes a tensor to a type that needs an importance matrix.
    #[error(
        "{preset} quantizes {tensor} to {ty}, which needs an importance matrix: pass --imatrix FILE"
    )]
    NeedsImatrix {
        /// The preset.
        preset: &'static str,
        /// The first tensor concerned.
        tensor: String,
        /// Its type.
        ty: TensorType,
    },
    /// The importance matrix's entry does not fit the tensor.
    #[error(
        "importance matrix entry for {tensor} holds {found} values, the tensor needs {expected}"
    )]
    ImatrixSize {
        /// The tensor.
        tensor: String,
        /// Values in the imatrix entry.
        found: usize,
        /// `ne0 × n_expert`.
        expected: u64,
    },
    /// A non-finite value in the importance matrix.
    #[error("importance matrix entry for {0} holds a value that is not finite")]
    ImatrixNotFinite(String),
    /// The input is already quantized and `allow_requantize` is off.
    #[error(
        "{tensor} is already quantized ({ty}); requantizing loses quality, pass --allow-requantize to do it anyway"
    )]
    Requantize {
        /// The tensor.
        tensor: String,
        /// Its current type.
        ty: TensorType,
    },
    /// hearth has no quantizer for a type the preset chose.
    #[error("{tensor}: hearth cannot write {ty}{}", if *weighted { " with an importance matrix" } else { "" })]
    NoQuantizer {
        /// The tensor.
        tensor: String,
        /// The type.
        ty: TensorType,
        /// Whether it was the importance-weighted quantizer that is missing.
        weighted: bool,
    },
    /// A tensor's values cannot be converted to f32 (integer tensors).
    #[error("{tensor}: cannot convert {ty} to f32 for quantizing")]
    NotConvertible {
        /// The tensor.
        tensor: String,
        /// Its type.
        ty: TensorType,
    },
    /// A source value that is infinite or NaN.
    #[error("{0}: the source holds values that are not finite")]
    NotFinite(String),
    /// Input and output are the same file.
    #[error("input and output are the same file: {}", .0.display())]
    SameFile(PathBuf),
}
