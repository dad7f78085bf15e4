//! Parsing the GGUF header from a byte slice, defensively.
//!
//! Layout (llama.cpp ggml/src/gguf.cpp, `gguf_init_from_reader`; gguf-py
//! gguf_reader.py), all little-endian:
//!
//! ```text
//! magic "GGUF" | version u32 | n_tensors u64 | n_kv u64
//! n_kv × (key: string, type: u32, value)
//! n_tensors × (name: string, n_dims: u32, ne: n_dims × u64, type: u32, offset: u64)
//! padding to `general.alignment` (default 32) | tensor data
//! ```
//!
//! A string is a u64 byte length and UTF-8 bytes; an array is an element type u32,
//! a u64 count and the elements (arrays of arrays repeat that per element).
//! Every count and length is checked against the bytes left before anything is
//! allocated, and all arithmetic on header fields is checked.

use crate::{Array, Error, Metadata, TensorType, Value, ValueType};

/// "GGUF" as the first four bytes.
const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section when `general.alignment` is absent.
pub(crate) const DEFAULT_ALIGNMENT: u64 = 32;
/// Key that overrides the alignment.
pub(crate) const ALIGNMENT_KEY: &str = "general.alignment";
/// ggml's `GGML_MAX_DIMS`.
pub(crate) const MAX_DIMS: u32 = 4;
/// Deepest nesting of arrays of arrays accepted; bounds recursion on hostile input.
pub(crate) const MAX_NESTING: usize = 8;
/// Bytes a metadata entry takes at the least: key length, value type, a 1-byte value.
const MIN_KV_SIZE: u64 = 8 + 4 + 1;
/// Bytes a tensor descriptor takes at the least: name length, n_dims, type, offset.
const MIN_TENSOR_INFO_SIZE: u64 = 8 + 4 + 4 + 8;

/// One tensor descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Element type.
    pub ty: TensorType,
    /// Shape, `ne[0]` (the contiguous row length) first, as ggml numbers it.
    pub dims: Vec<u64>,
    /// Offset of the tensor's bytes relative to the start of the data section.
    pub offset: u64,
    /// Size of the tensor's bytes.
    pub size: u64,
}

impl TensorInfo {
    /// Number of elements (1 for a tensor with no dimensions).
    pub fn n_elements(&self) -> u64 {
        // Validated at parse time (and by the writer) to fit in i64.
        self.dims.iter().product()
    }
}

/// Everything the header says, before it is tied to its bytes.
#[derive(Debug)]
pub(crate) struct Header {
    pub version: u32,
    pub alignment: u64,
    pub data_offset: u64,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
}

/// Parses and validates the header of the GGUF file `bytes`, including every
/// tensor's placement within the data section.
pub(crate) fn parse(bytes: &[u8]) -> Result<Header, Error> {
    parse_prefix(bytes, bytes.len() as u64)
}

/// Parses the header from `bytes`, the first bytes of a file of `file_size`
/// bytes: tensor placements are checked against the whole file's size.
pub(crate) fn parse_prefix(bytes: &[u8], file_size: u64) -> Result<Header, Error> {
    let mut r = Cursor { bytes, pos: 0 };
    let magic = r.take(4, || "magic".into())?;
    if magic != MAGIC {
        let mut found = [0; 4];
        found.copy_from_slice(magic);
        return Err(Error::BadMagic { found });
    }
    let version = r.u32(|| "version".into())?;
    // v2 and v3 share one layout; v3 only added big-endian files, which announce
    // themselves here as a byte-swapped (huge) version number.
    if version != 2 && version != 3 {
        return Err(Error::UnsupportedVersion(version));
    }
    let n_tensors = r.u64(|| "tensor count".into())?;
    let n_kv = r.u64(|| "metadata entry count".into())?;
    let available = r.remaining();
    let kv_bytes = n_kv.checked_mul(MIN_KV_SIZE);
    if kv_bytes.is_none_or(|b| b > available) {
        return Err(Error::TooManyEntries {
            what: "metadata entries",
            count: n_kv,
            available,
        });
    }
    let ti_bytes = n_tensors.checked_mul(MIN_TENSOR_INFO_SIZE);
    if ti_bytes.is_none_or(|b| b > available) {
        return Err(Error::TooManyEntries {
            what: "tensors",
            count: n_tensors,
            available,
        });
    }

    let mut metadata = Metadata::new();
    for i in 0..n_kv {
        let key = r.string(|| format!("key of metadata entry {i}"))?;
        if key.is_empty() {
            return Err(Error::EmptyKey { index: i });
        }
        if metadata.contains(&key) {
            return Err(Error::DuplicateKey { key });
        }
        let type_id = r.u32(|| format!("type of key '{key}'"))?;
        let value = r.value(&key, type_id)?;
        metadata.insert(key, value)?;
    }
    let alignment = alignment(&metadata)?;

    let mut tensors = Vec::with_capacity(n_tensors as usize);
    let mut names = std::collections::HashSet::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let info = r.tensor_info(i)?;
        if !names.insert(info.name.clone()) {
            return Err(Error::DuplicateTensor { name: info.name });
        }
        tensors.push(info);
    }

    let header_end = r.pos as u64;
    let data_offset = align_up(header_end, alignment).ok_or(Error::BadAlignment {
        found: format!("{alignment} (data offset overflows)"),
    })?;
    let data_size = file_size.saturating_sub(data_offset);
    check_placement(&tensors, alignment, data_size)?;
    Ok(Header {
        version,
        alignment,
        data_offset,
        metadata,
        tensors,
    })
}

/// `general.alignment`, validated, or the default.
pub(crate) fn alignment(metadata: &Metadata) -> Result<u64, Error> {
    match metadata.get(ALIGNMENT_KEY) {
        None => Ok(DEFAULT_ALIGNMENT),
        Some(Value::U32(a)) if a.is_power_of_two() => Ok(u64::from(*a)),
        Some(Value::U32(a)) => Err(Error::BadAlignment {
            found: a.to_string(),
        }),
        Some(v) => Err(Error::BadAlignment {
            found: v.type_name(),
        }),
    }
}

/// `x` rounded up to a multiple of the power of two `align`.
pub(crate) fn align_up(x: u64, align: u64) -> Option<u64> {
    Some(x.checked_add(align - 1)? & !(align - 1))
}

/// Checks that every tensor is aligned, inside the data section and disjoint from
/// the others. llama.cpp is stricter (tensors contiguous in header order); gguf-py
/// does not check at all; this accepts any layout that is safe to read.
fn check_placement(tensors: &[TensorInfo], alignment: u64, data_size: u64) -> Result<(), Error> {
    for t in tensors {
        if !t.offset.is_multiple_of(alignment) {
            return Err(Error::MisalignedTensor {
                tensor: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
        let end = t.offset.checked_add(t.size);
        if end.is_none_or(|end| end > data_size) {
            return Err(Error::TensorOutOfBounds {
                tensor: t.name.clone(),
                end: end.unwrap_or(u64::MAX),
                data_size,
            });
        }
    }
    let mut by_offset: Vec<&TensorInfo> = tensors.iter().filter(|t| t.size > 0).collect();
    by_offset.sort_by_key(|t| t.offset);
    for pair in by_offset.windows(2) {
        // Bounds were checked above, so the addition cannot overflow.
        if pair[0].offset + pair[0].size > pair[1].offset {
            return Err(Error::OverlappingTensors {
                a: pair[0].name.clone(),
                b: pair[1].name.clone(),
            });
        }
    }
    Ok(())
}

/// A read position in the file's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    /// The next `n` bytes; `what` names the field for the error message.
    fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8], Error> {
        let available = self.remaining();
        if n > available {
            return Err(Error::Truncated {
                what: what(),
                offset: self.pos as u64,
                needed: n,
                available,
            });
        }
        // n <= remaining, which fits in usize.
        let n = n as usize;
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: impl FnOnce() -> String) -> Result<[u8; N], Error> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32, Error> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64, Error> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A length-prefixed UTF-8 string.
    fn string(&mut self, what: impl Fn() -> String) -> Result<String, Error> {
        let len = self.u64(&what)?;
        let available = self.remaining();
        if len > available {
            return Err(Error::StringTooLong {
                what: what(),
                len,
                available,
            });
        }
        let raw = self.take(len, &what)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(Error::InvalidUtf8 { what: what() }),
        }
    }

    /// A metadata value of type `type_id` stored under `key`.
    fn value(&mut self, key: &str, type_id: u32) -> Result<Value, Error> {
        let ty = ValueType::from_id(type_id).ok_or_else(|| Error::UnknownValueType {
            key: key.to_owned(),
            id: type_id,
        })?;
        let what = || format!("value of key '{key}'");
        Ok(match ty {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.array(what)?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(what)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.array(what)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            // ggml reads a bool as an int8 and treats any nonzero byte as true.
            ValueType::Bool => Value::Bool(self.array::<1>(what)?[0] != 0),
            ValueType::String => Value::String(self.string(what)?),
            ValueType::Array => Value::Array(self.array_value(key, 1)?),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.array(what)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
        })
    }

    /// An array value (element type, count, elements) at nesting level `depth`.
    fn array_value(&mut self, key: &str, depth: usize) -> Result<Array, Error> {
        if depth > MAX_NESTING {
            return Err(Error::NestingTooDeep {
                key: key.to_owned(),
                max: MAX_NESTING,
            });
        }
        let what = || format!("value of key '{key}'");
        let type_id = self.u32(what)?;
        let ty = ValueType::from_id(type_id).ok_or_else(|| Error::UnknownValueType {
            key: key.to_owned(),
            id: type_id,
        })?;
        let len = self.u64(what)?;
        let available = self.remaining();
        let needed = len.checked_mul(ty.min_size());
        if needed.is_none_or(|n| n > available) {
            return Err(Error::ArrayTooLong {
                what: what(),
                len,
                needed: needed.unwrap_or(u64::MAX),
                available,
            });
        }
        // len * min_size <= remaining, so len fits in usize and in memory.
        let n = len as usize;
        Ok(match ty {
            ValueType::U8 => Array::U8(self.fixed(n, what, u8::from_le_bytes)?),
            ValueType::I8 => Array::I8(self.fixed(n, what, i8::from_le_bytes)?),
            ValueType::U16 => Array::U16(self.fixed(n, what, u16::from_le_bytes)?),
            ValueType::I16 => Array::I16(self.fixed(n, what, i16::from_le_bytes)?),
            ValueType::U32 => Array::U32(self.fixed(n, what, u32::from_le_bytes)?),
            ValueType::I32 => Array::I32(self.fixed(n, what, i32::from_le_bytes)?),
            ValueType::F32 => Array::F32(self.fixed(n, what, f32::from_le_bytes)?),
            ValueType::Bool => Array::Bool(self.fixed(n, what, |[b]: [u8; 1]| b != 0)?),
            ValueType::U64 => Array::U64(self.fixed(n, what, u64::from_le_bytes)?),
            ValueType::I64 => Array::I64(self.fixed(n, what, i64::from_le_bytes)?),
            ValueType::F64 => Array::F64(self.fixed(n, what, f64::from_le_bytes)?),
            ValueType::String => {
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    out.push(self.string(|| format!("element {i} of key '{key}'"))?);
                }
                Array::String(out)
            }
            ValueType::Array => {
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(self.array_value(key, depth + 1)?);
                }
                Array::Array(out)
            }
        })
    }

    /// `n` fixed-size elements decoded by `decode`.
    fn fixed<T, const N: usize>(
        &mut self,
        n: usize,
        what: impl FnOnce() -> String,
        decode: impl Fn([u8; N]) -> T,
    ) -> Result<Vec<T>, Error> {
        let total = (n as u64).saturating_mul(N as u64);
        let raw = self.take(total, what)?;
        Ok(raw
            .chunks_exact(N)
            .map(|c| {
                let mut b = [0; N];
                b.copy_from_slice(c);
                decode(b)
            })
            .collect())
    }

    /// Tensor descriptor number `index`.
    fn tensor_info(&mut self, index: u64) -> Result<TensorInfo, Error> {
        let name = self.string(|| format!("name of tensor {index}"))?;
        let what = || format!("tensor info '{name}'");
        let n_dims = self.u32(what)?;
        if n_dims > MAX_DIMS {
            return Err(Error::TooManyDims {
                tensor: name,
                n_dims,
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(self.u64(what)?);
        }
        let type_id = self.u32(what)?;
        let offset = self.u64(what)?;
        let Some(ty) = TensorType::from_id(type_id) else {
            return Err(Error::UnknownTensorType {
                tensor: name,
                id: type_id,
            });
        };
        let size = tensor_size(&name, ty, &dims)?;
        Ok(TensorInfo {
            name,
            ty,
            dims,
            offset,
            size,
        })
    }
}

/// Bytes taken by a tensor of type `ty` and shape `dims`, after checking that the
/// shape is representable (ggml stores it as i64) and rows are whole blocks.
pub(crate) fn tensor_size(name: &str, ty: TensorType, dims: &[u64]) -> Result<u64, Error> {
    let overflow = || Error::DimOverflow {
        tensor: name.to_owned(),
        dims: dims.to_vec(),
    };
    let n_elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(overflow)?;
    if n_elements > i64::MAX as u64 || dims.iter().any(|&d| d > i64::MAX as u64) {
        return Err(overflow());
    }
    let ne0 = dims.first().copied().unwrap_or(1);
    if !ne0.is_multiple_of(ty.block_size() as u64) {
        return Err(Error::PartialBlock {
            tensor: name.to_owned(),
            ty,
            ne0,
            block_size: ty.block_size(),
        });
    }
    let row_size = ty.row_size(ne0).ok_or_else(overflow)?;
    let n_rows = n_elements.checked_div(ne0).unwrap_or(0);
    let size = row_size.checked_mul(n_rows).ok_or_else(overflow)?;
    if size > i64::MAX as u64 {
        return Err(overflow());
    }
    Ok(size)
}
