//! GGUF v2/v3: reading through mmap, writing, and defensive parsing.
//!
//! - [`GgufFile`] parses one file (memory-mapped, or from bytes) and validates
//!   every length, count, type and tensor placement before handing anything out.
//! - [`GgufModel`] presents a model split into `NAME-00001-of-0000N.gguf` shards
//!   as one set of metadata and tensors.
//! - [`GgufWriter`] writes v3 files laid out exactly as gguf-py writes them;
//!   [`GgufStreamWriter`] writes the same layout tensor by tensor.
//!
//! The format is defined by llama.cpp's ggml/src/gguf.cpp and gguf-py.
#![deny(missing_docs)]

mod error;
mod file;
mod metadata;
mod reader;
mod resident;
mod split;
mod stream;
mod types;
mod value;
mod writer;

pub use error::Error;
pub use file::{GgufFile, GgufHeader};
pub use metadata::Metadata;
pub use reader::TensorInfo;
pub use resident::mapped_resident_kib;
pub use split::GgufModel;
pub use stream::{GgufStreamWriter, TensorPlan};
pub use types::TensorType;
pub use value::{Array, Value, ValueType};
pub use writer::GgufWriter;
