//! Writing GGUF v3 files, laid out byte for byte as gguf-py's `GGUFWriter` does.
//!
//! Header, metadata and tensor descriptors are followed by zero padding up to the
//! alignment, then each tensor's bytes, each padded with zeros to the alignment
//! (gguf_writer.py `write_tensors_to_file`), so offsets are multiples of it.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::reader::{self, ALIGNMENT_KEY, MAX_DIMS, MAX_NESTING};
use crate::{Array, Error, Metadata, TensorType, Value};

/// The version this writer produces.
const VERSION: u32 = 3;
/// ggml's `GGML_MAX_NAME`: names must be shorter than this (with a NUL it fits 64).
const MAX_NAME_LEN: usize = 64;

/// A GGUF file being assembled in memory; [`GgufWriter::write`] serialises it.
#[derive(Debug, Default)]
pub struct GgufWriter {
    metadata: Metadata,
    tensors: Vec<PendingTensor>,
    names: HashSet<String>,
}

#[derive(Debug)]
struct PendingTensor {
    name: String,
    ty: TensorType,
    dims: Vec<u64>,
    data: Vec<u8>,
}

impl GgufWriter {
    /// An empty file: no metadata, no tensors, alignment 32.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the data alignment, stored as `general.alignment` (u32) like gguf-py's
    /// `add_custom_alignment`. It must be a nonzero power of two that fits in u32.
    pub fn set_alignment(&mut self, alignment: u64) -> Result<(), Error> {
        match u32::try_from(alignment) {
            Ok(a) if a.is_power_of_two() => {
                self.add(ALIGNMENT_KEY, Value::U32(a));
                Ok(())
            }
            _ => Err(Error::BadAlignment {
                found: alignment.to_string(),
            }),
        }
    }

    /// Sets metadata `key` to `value`. Setting a key again replaces its value and
    /// keeps its position (gguf-py overwrites too).
    pub fn add(&mut self, key: &str, value: Value) {
        self.metadata.set(key, value);
    }

    /// Sets a `u32` value.
    pub fn add_u32(&mut self, key: &str, value: u32) {
        self.add(key, Value::U32(value));
    }

    /// Sets a `u64` value.
    pub fn add_u64(&mut self, key: &str, value: u64) {
        self.add(key, Value::U64(value));
    }

    /// Sets an `i32` value.
    pub fn add_i32(&mut self, key: &str, value: i32) {
        self.add(key, Value::I32(value));
    }

    /// Sets an `f32` value.
    pub fn add_f32(&mut self, key: &str, value: f32) {
        self.add(key, Value::F32(value));
    }

    /// Sets a `bool` value.
    pub fn add_bool(&mut self, key: &str, value: bool) {
        self.add(key, Value::Bool(value));
    }

    /// Sets a string value.
    pub fn add_str(&mut self, key: &str, value: &str) {
        self.add(key, Value::String(value.to_owned()));
    }

    /// Sets an array-of-strings value.
    pub fn add_str_array<S: AsRef<str>>(&mut self, key: &str, values: &[S]) {
        let values = values.iter().map(|s| s.as_ref().to_owned()).collect();
        self.add(key, Value::Array(Array::String(values)));
    }

    /// Sets an array-of-`f32` value.
    pub fn add_f32_array(&mut self, key: &str, values: &[f32]) {
        self.add(key, Value::Array(Array::F32(values.to_vec())));
    }

    /// Sets an array-of-`i32` value.
    pub fn add_i32_array(&mut self, key: &str, values: &[i32]) {
        self.add(key, Value::Array(Array::I32(values.to_vec())));
    }

    /// The metadata set so far.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Adds a tensor of type `ty` and shape `dims` (`ne[0]` first) whose bytes are
    /// `data`, which must be exactly the size the shape and type require.
    pub fn add_tensor(
        &mut self,
        name: &str,
        ty: TensorType,
        dims: &[u64],
        data: &[u8],
    ) -> Result<(), Error> {
        let expected = check_tensor(name, ty, dims)?;
        if self.names.contains(name) {
            return Err(Error::DuplicateTensor {
                name: name.to_owned(),
            });
        }
        if data.len() as u64 != expected {
            return Err(Error::TensorSizeMismatch {
                tensor: name.to_owned(),
                expected,
                found: data.len() as u64,
            });
        }
        self.names.insert(name.to_owned());
        self.tensors.push(PendingTensor {
            name: name.to_owned(),
            ty,
            dims: dims.to_vec(),
            data: data.to_vec(),
        });
        Ok(())
    }

    /// Serialises the file to `out`.
    pub fn write(&self, out: &mut impl Write) -> Result<(), Error> {
        let alignment = reader::alignment(&self.metadata)?;
        let header = header_bytes(
            &self.metadata,
            self.tensors.iter().map(|t| {
                (
                    t.name.as_str(),
                    t.ty,
                    t.dims.as_slice(),
                    t.data.len() as u64,
                )
            }),
            alignment,
        )?;
        out.write_all(&header).map_err(Error::Write)?;
        for t in &self.tensors {
            out.write_all(&t.data).map_err(Error::Write)?;
            write_zeros(
                out,
                padded(0, t.data.len() as u64, alignment) - t.data.len() as u64,
            )?;
        }
        out.flush().map_err(Error::Write)
    }

    /// Writes the file to `path` atomically: into a temporary file in the same
    /// directory, synced, then renamed over `path`. On error `path` is untouched.
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{file_name}.tmp{}", std::process::id()));
        let result = (|| {
            // Name the target in the error: the temporary name means nothing to users.
            let file = File::create(&tmp).map_err(|e| io_error(path, e))?;
            let mut out = BufWriter::new(file);
            self.write(&mut out)?;
            let file = out
                .into_inner()
                .map_err(|e| io_error(&tmp, e.into_error()))?;
            file.sync_all().map_err(|e| io_error(&tmp, e))?;
            fs::rename(&tmp, path).map_err(|e| io_error(path, e))
        })();
        if result.is_err() {
            // Best effort: the temporary file may not exist if creating it failed.
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// `offset + len` rounded up to `alignment` (gguf-py's `ggml_pad`). Sizes were
/// validated by `check_tensor`, and the total is bounded by the file, so no overflow.
pub(crate) fn padded(offset: u64, len: u64, alignment: u64) -> u64 {
    (offset + len).div_ceil(alignment) * alignment
}

/// Checks a tensor descriptor as ggml would accept it and returns its byte size.
pub(crate) fn check_tensor(name: &str, ty: TensorType, dims: &[u64]) -> Result<u64, Error> {
    if name.is_empty() || name.len() >= MAX_NAME_LEN {
        return Err(Error::BadTensorName {
            name: name.to_owned(),
        });
    }
    if dims.len() > MAX_DIMS as usize {
        return Err(Error::TooManyDims {
            tensor: name.to_owned(),
            n_dims: dims.len() as u32,
        });
    }
    reader::tensor_size(name, ty, dims)
}

/// Header, metadata and tensor descriptors (`name, type, dims, size`, each at the
/// next aligned offset), padded with zeros to the alignment: everything before
/// the first tensor's bytes.
pub(crate) fn header_bytes<'a>(
    metadata: &Metadata,
    tensors: impl ExactSizeIterator<Item = (&'a str, TensorType, &'a [u64], u64)>,
    alignment: u64,
) -> Result<Vec<u8>, Error> {
    let mut header = Vec::new();
    header.extend_from_slice(b"GGUF");
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    header.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (index, (key, value)) in metadata.iter().enumerate() {
        if key.is_empty() {
            return Err(Error::EmptyKey {
                index: index as u64,
            });
        }
        put_string(&mut header, key);
        header.extend_from_slice(&value.value_type().id().to_le_bytes());
        put_value(&mut header, key, value)?;
    }
    let mut offset = 0u64;
    for (name, ty, dims, size) in tensors {
        put_string(&mut header, name);
        header.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            header.extend_from_slice(&d.to_le_bytes());
        }
        header.extend_from_slice(&ty.id().to_le_bytes());
        header.extend_from_slice(&offset.to_le_bytes());
        offset = padded(offset, size, alignment);
    }
    let len = header.len() as u64;
    header.resize(padded(0, len, alignment) as usize, 0);
    Ok(header)
}

/// Writes `n` zero bytes without allocating `n` of them (alignments may be large).
pub(crate) fn write_zeros(out: &mut impl Write, mut n: u64) -> Result<(), Error> {
    const ZEROS: [u8; 4096] = [0; 4096];
    while n > 0 {
        let chunk = n.min(ZEROS.len() as u64) as usize;
        out.write_all(&ZEROS[..chunk]).map_err(Error::Write)?;
        n -= chunk as u64;
    }
    Ok(())
}

fn put_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn put_value(buf: &mut Vec<u8>, key: &str, value: &Value) -> Result<(), Error> {
    match value {
        Value::U8(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I8(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::U16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => buf.push(u8::from(*v)),
        Value::String(s) => put_string(buf, s),
        Value::Array(a) => put_array(buf, key, a, 1)?,
        Value::U64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => buf.extend_from_slice(&v.to_le_bytes()),
    }
    Ok(())
}

/// Element type, count, elements; an array of arrays repeats this per element
/// (gguf_writer.py `_pack_val` with `add_vtype=False`).
fn put_array(buf: &mut Vec<u8>, key: &str, array: &Array, depth: usize) -> Result<(), Error> {
    if depth > MAX_NESTING {
        return Err(Error::NestingTooDeep {
            key: key.to_owned(),
            max: MAX_NESTING,
        });
    }
    buf.extend_from_slice(&array.element_type().id().to_le_bytes());
    buf.extend_from_slice(&(array.len() as u64).to_le_bytes());
    macro_rules! put_all {
        ($v:expr) => {
            for x in $v {
                buf.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match array {
        Array::U8(v) => buf.extend_from_slice(v),
        Array::I8(v) => put_all!(v),
        Array::U16(v) => put_all!(v),
        Array::I16(v) => put_all!(v),
        Array::U32(v) => put_all!(v),
        Array::I32(v) => put_all!(v),
        Array::F32(v) => put_all!(v),
        Array::Bool(v) => buf.extend(v.iter().map(|&b| u8::from(b))),
        Array::String(v) => v.iter().for_each(|s| put_string(buf, s)),
        Array::Array(v) => {
            for inner in v {
                put_array(buf, key, inner, depth + 1)?;
            }
        }
        Array::U64(v) => put_all!(v),
        Array::I64(v) => put_all!(v),
        Array::F64(v) => put_all!(v),
    }
    Ok(())
}
