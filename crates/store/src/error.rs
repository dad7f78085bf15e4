//! The store's error type. Every variant names what it concerns (a model, a blob,
//! a path, a Modelfile line) so a message alone says what went wrong.

use std::io;
use std::path::{Path, PathBuf};

use crate::digest::{Digest, DigestError};
use crate::modelfile::ModelfileError;
use crate::name::NameError;

/// Errors of [`crate::Store`] operations.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No model of this name (short form, as `ollama` prints it).
    #[error("model '{0}' not found")]
    NotFound(String),
    /// A string that is not a valid model name.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// A string that is not a valid digest.
    #[error(transparent)]
    InvalidDigest(#[from] DigestError),
    /// A manifest refers to a blob the store does not have.
    #[error("blob {0} is missing from the store")]
    BlobNotFound(Digest),
    /// Data whose SHA-256 is not the digest it was announced with.
    #[error("digest mismatch: expected {expected}, the data hashes to {actual}")]
    DigestMismatch {
        /// The digest the caller announced.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// A file-system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A Modelfile that does not parse or names an unknown parameter.
    #[error("invalid Modelfile{}: {msg}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    InvalidModelfile {
        /// 1-based line of the offending command, if it concerns one line.
        line: Option<usize>,
        /// What is wrong.
        msg: String,
    },
    /// A file given as a model that does not parse as GGUF.
    #[error("{}: not a GGUF model: {source}", path.display())]
    NotGguf {
        /// The file.
        path: PathBuf,
        /// Why it does not parse.
        source: gguf::Error,
    },
    /// A valid request the store does not support (yet).
    #[error("{0}")]
    Unsupported(String),
    /// `create --quantize` could not quantize the model.
    #[error("quantizing: {0}")]
    Quantize(#[from] crate::quantize::QuantizeError),
    /// A registry or file server that cannot be connected to.
    #[error("cannot reach {host}: {reason}")]
    Unreachable {
        /// The host (and port).
        host: String,
        /// Why, e.g. `Connection refused`.
        reason: String,
    },
    /// A registry or file server that answered with an error, or with
    /// something that is not what the protocol expects.
    #[error("{0}")]
    Remote(String),
    /// A pulled model whose chat template cannot be used.
    #[error("the model's chat template cannot be used: {0}")]
    InvalidTemplate(String),
    /// A change to a store that is mounted read-only.
    #[error("the model store {} is read-only: models can be listed and run, not changed", .0.display())]
    ReadOnly(PathBuf),

    /// A manifest or config blob that is not valid JSON of the expected shape.
    #[error("{}: corrupt manifest: {msg}", path.display())]
    CorruptManifest {
        /// The manifest or config blob.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

impl From<ModelfileError> for StoreError {
    fn from(e: ModelfileError) -> Self {
        StoreError::InvalidModelfile {
            line: e.line,
            msg: e.msg,
        }
    }
}

/// Shorthand for `Result<T, StoreError>`.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Wraps an I/O error with the path it concerns.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}
