//! The one error type of the crate: every variant names what was wrong and where.

use std::path::PathBuf;

use crate::TensorType;

/// Why a GGUF file could not be read or written.
///
/// Reading errors name the key, tensor or header field involved; lengths and counts
/// that did not fit say how many bytes were needed and how many were left.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened, mapped, created or renamed. The message is the
    /// path; the operating system's error is the `source()`.
    #[error("{}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Writing a GGUF stream failed.
    #[error("writing GGUF data failed")]
    Write(#[source] std::io::Error),
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: magic bytes are {found:02x?}, expected \"GGUF\"")]
    BadMagic {
        /// The bytes found at offset 0.
        found: [u8; 4],
    },
    /// The version is not 2 or 3 (v1 files have 32-bit counts and are long obsolete).
    #[error("unsupported GGUF version {0} (only versions 2 and 3 can be read)")]
    UnsupportedVersion(u32),
    /// The file ends before a field that the header says is there.
    #[error(
        "truncated file: {what} at offset {offset} needs {needed} bytes, only {available} left"
    )]
    Truncated {
        /// The field being read, e.g. "key of metadata entry 3" or "value of key 'x'".
        what: String,
        /// File offset of the field.
        offset: u64,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the file from `offset`.
        available: u64,
    },
    /// A string length prefix exceeds the bytes left in the file.
    #[error("{what}: string length {len} exceeds the {available} bytes left in the file")]
    StringTooLong {
        /// The string being read.
        what: String,
        /// The declared length in bytes.
        len: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// An array's element count cannot fit in the bytes left in the file.
    #[error("{what}: array of {len} elements needs at least {needed} bytes, only {available} left")]
    ArrayTooLong {
        /// The array being read.
        what: String,
        /// The declared element count.
        len: u64,
        /// The least number of bytes `len` elements take (saturated at `u64::MAX`).
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// The header declares more entries than the file can possibly hold.
    #[error("header declares {count} {what}, more than the {available} bytes left can hold")]
    TooManyEntries {
        /// "tensors" or "metadata entries".
        what: &'static str,
        /// The declared count.
        count: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// A string is not valid UTF-8.
    #[error("{what}: not valid UTF-8")]
    InvalidUtf8 {
        /// The string being read.
        what: String,
    },
    /// Arrays of arrays nest deeper than this reader allows.
    #[error("value of key '{key}': arrays nested deeper than {max} levels")]
    NestingTooDeep {
        /// The metadata key.
        key: String,
        /// The deepest nesting accepted.
        max: usize,
    },
    /// A metadata value type id is not one of 0..=12.
    #[error("key '{key}' has unknown value type id {id}")]
    UnknownValueType {
        /// The metadata key.
        key: String,
        /// The type id found.
        id: u32,
    },
    /// A metadata key is the empty string.
    #[error("metadata entry {index} has an empty key")]
    EmptyKey {
        /// Position of the entry in the header.
        index: u64,
    },
    /// The same metadata key appears twice.
    #[error("duplicate metadata key '{key}'")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
    /// The same tensor name appears twice.
    #[error("duplicate tensor '{name}'")]
    DuplicateTensor {
        /// The repeated name.
        name: String,
    },
    /// A tensor name is empty or at least 64 bytes long (ggml's `GGML_MAX_NAME`).
    #[error("tensor name '{name}' must be 1 to 63 bytes long")]
    BadTensorName {
        /// The rejected name.
        name: String,
    },
    /// A tensor type id is not a known ggml type.
    #[error("tensor '{tensor}' has unknown ggml type id {id}")]
    UnknownTensorType {
        /// The tensor name.
        tensor: String,
        /// The type id found.
        id: u32,
    },
    /// A tensor has more than four dimensions (ggml's `GGML_MAX_DIMS`).
    #[error("tensor '{tensor}' has {n_dims} dimensions, at most 4 are allowed")]
    TooManyDims {
        /// The tensor name.
        tensor: String,
        /// The dimension count found.
        n_dims: u32,
    },
    /// A tensor's shape or byte size does not fit in a signed 64-bit integer.
    #[error("tensor '{tensor}' has shape {dims:?} whose element count or byte size overflows")]
    DimOverflow {
        /// The tensor name.
        tensor: String,
        /// The shape, `ne[0]` first.
        dims: Vec<u64>,
    },
    /// A row is not a whole number of quantization blocks.
    #[error(
        "tensor '{tensor}' of type {ty} has rows of {ne0} elements, not a multiple of the block size {block_size}"
    )]
    PartialBlock {
        /// The tensor name.
        tensor: String,
        /// The tensor type.
        ty: TensorType,
        /// Elements per row (`ne[0]`).
        ne0: u64,
        /// Elements per block of `ty`.
        block_size: usize,
    },
    /// `general.alignment` is zero, not a power of two, or not a `u32`.
    #[error("general.alignment must be a nonzero power of two stored as u32, found {found}")]
    BadAlignment {
        /// The value (and type, if wrong) found.
        found: String,
    },
    /// A tensor's data offset is not a multiple of the alignment.
    #[error("tensor '{tensor}' has offset {offset}, not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        /// The tensor name.
        tensor: String,
        /// Its offset within the data section.
        offset: u64,
        /// The file's alignment.
        alignment: u64,
    },
    /// A tensor's data extends past the end of the file.
    #[error(
        "tensor '{tensor}' ends at byte {end} of the data section, which has only {data_size} bytes"
    )]
    TensorOutOfBounds {
        /// The tensor name.
        tensor: String,
        /// Offset just past its last byte, within the data section (saturated at `u64::MAX`).
        end: u64,
        /// Size of the data section.
        data_size: u64,
    },
    /// Two tensors' data ranges overlap.
    #[error("tensors '{a}' and '{b}' overlap in the data section")]
    OverlappingTensors {
        /// The tensor that starts first.
        a: String,
        /// The tensor that starts inside `a`.
        b: String,
    },
    /// A required metadata key is absent.
    #[error("missing metadata key '{key}'")]
    MissingKey {
        /// The key asked for.
        key: String,
    },
    /// A metadata value has a different type than the one asked for.
    #[error("metadata key '{key}' should be {expected}, found {found}")]
    WrongType {
        /// The key asked for.
        key: String,
        /// What the caller asked for, e.g. "u32" or "array[string]".
        expected: &'static str,
        /// What the file holds, e.g. "i64 -3" or "array[f32]".
        found: String,
    },
    /// Data handed to the writer has the wrong length for the tensor's shape and type.
    #[error("tensor '{tensor}' needs {expected} bytes of data, got {found}")]
    TensorSizeMismatch {
        /// The tensor name.
        tensor: String,
        /// Bytes the shape and type require.
        expected: u64,
        /// Bytes supplied.
        found: u64,
    },
    /// A model asked for by name has no such tensor.
    #[error("no tensor named '{name}'")]
    TensorNotFound {
        /// The name asked for.
        name: String,
    },
    /// A shard of a split model is not on disk.
    #[error("missing shard {} of a split model", path.display())]
    MissingShard {
        /// The shard file expected.
        path: PathBuf,
    },
    /// A file of a split model is not named `NAME-NNNNN-of-MMMMM.gguf`.
    #[error("{} declares split.count = {count} but its name is not of the form NAME-00001-of-{count:05}.gguf", path.display())]
    SplitName {
        /// The file opened.
        path: PathBuf,
        /// Its `split.count`.
        count: u64,
    },
    /// A shard's `split.count` or `split.no` disagrees with its name or with the first shard.
    #[error("{}: {key} is {found}, expected {expected}", path.display())]
    SplitMismatch {
        /// The shard file.
        path: PathBuf,
        /// `split.count` or `split.no`.
        key: &'static str,
        /// The value expected from the file name and the first shard.
        expected: u64,
        /// The value found.
        found: u64,
    },
    /// The same tensor appears in two shards.
    #[error("tensor '{tensor}' appears in shard {first} and shard {second}")]
    TensorInTwoShards {
        /// The tensor name.
        tensor: String,
        /// Index of the first shard holding it.
        first: usize,
        /// Index of the second shard holding it.
        second: usize,
    },
    /// `split.tensors.count` disagrees with the tensors found in all shards.
    #[error("split.tensors.count is {expected} but the shards hold {found} tensors")]
    SplitTensorCount {
        /// The value of `split.tensors.count`.
        expected: u64,
        /// Tensors found across all shards.
        found: u64,
    },
}
