//! One GGUF file: its parsed header and its bytes (memory-mapped or owned).

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::reader::{self, TensorInfo};
use crate::{Error, Metadata};

/// Where the file's bytes live.
enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

/// One parsed GGUF file. Tensor bounds are validated when it is opened, so
/// [`GgufFile::tensor_data`] needs no further checks.
pub struct GgufFile {
    bytes: Bytes,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    index: std::collections::HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("file_size", &self.file_size())
            .field("n_kv", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Maps the file at `path` and parses its header.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, Error> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and lives as long as this GgufFile. The one
        // hazard is another process truncating or rewriting the file while it is
        // mapped: the kernel then delivers SIGBUS on access or we see changed bytes.
        // That is the usual contract of memory-mapped model files (llama.cpp has
        // the same); our own writer never rewrites a file in place (it renames a
        // temporary file over it), so an open map keeps the old inode alive.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let file = Self::parse(Bytes::Mapped(map))?;
        // The header now lives in owned values (metadata, descriptors); its
        // pages (3 MiB of a Llama-3 tokenizer's vocabulary) are not read again.
        file.release_pages(0, file.data_offset);
        Ok(file)
    }

    /// Parses a GGUF file held in memory (tests, fuzzing, embedded data).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, Error> {
        Self::parse(Bytes::Owned(bytes))
    }

    fn parse(bytes: Bytes) -> Result<GgufFile, Error> {
        let header = reader::parse(bytes.as_slice())?;
        let index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            bytes,
            version: header.version,
            alignment: header.alignment,
            data_offset: header.data_offset,
            metadata: header.metadata,
            tensors: header.tensors,
            index,
        })
    }

    /// The header alone, parsed from the first bytes of a file of `file_size`
    /// bytes (a remote file read by ranges): metadata and tensor descriptors,
    /// every placement checked against `file_size`. A prefix that ends inside
    /// the header is an [`Error::Truncated`] (or a string or array that
    /// exceeds the bytes left): read more and try again.
    pub fn header_from_prefix(prefix: &[u8], file_size: u64) -> Result<GgufHeader, Error> {
        let header = reader::parse_prefix(prefix, file_size)?;
        Ok(GgufHeader {
            version: header.version,
            data_offset: header.data_offset,
            metadata: header.metadata,
            tensors: header.tensors,
        })
    }

    /// Format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment of the data section and of each tensor within it.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// File offset where the data section starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The metadata entries.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Tensor descriptors, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The descriptor of the tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The bytes of a tensor of this file. A descriptor that does not belong to
    /// this file yields whatever lies in range, or an empty slice; never a panic.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        let start = self.data_offset.checked_add(info.offset);
        let end = start.and_then(|s| s.checked_add(info.size));
        match (start, end) {
            (Some(start), Some(end)) => {
                let bytes = self.bytes.as_slice();
                usize::try_from(start)
                    .ok()
                    .zip(usize::try_from(end).ok())
                    .and_then(|(s, e)| bytes.get(s..e))
                    .unwrap_or(&[])
            }
            _ => &[],
        }
    }

    /// Drops the pages holding a tensor's bytes from this process's resident
    /// set, for a tensor the caller has copied (a repacked weight matrix) and
    /// will not read again; a later read still sees the same bytes, faulted
    /// in from the file. Neighbouring tensors sharing the first or last page
    /// are faulted in again the same way when read. A no-op for owned bytes
    /// and where the hint is refused.
    pub fn release_tensor_pages(&self, info: &TensorInfo) {
        if let Some(start) = self.data_offset.checked_add(info.offset) {
            self.release_pages(start, info.size);
        }
    }

    /// Drops the mapped pages of bytes `start..start + len` from the resident
    /// set (see [`GgufFile::release_tensor_pages`]); out-of-range requests and
    /// owned bytes are ignored.
    fn release_pages(&self, start: u64, len: u64) {
        let Bytes::Mapped(map) = &self.bytes else {
            return;
        };
        let (Ok(start), Ok(len)) = (usize::try_from(start), usize::try_from(len)) else {
            return;
        };
        if len == 0 || start.checked_add(len).is_none_or(|end| end > map.len()) {
            return;
        }
        // Reads of a released range (none in the model's own paths: a packed
        // matrix's embedding rows are read from the packed copy) then fault
        // single pages back in, not whole readahead windows.
        #[cfg(unix)]
        let _ = map.advise_range(memmap2::Advice::Random, start, len);
        #[cfg(unix)]
        // SAFETY: the map is a private, read-only mapping of a file that is
        // never written through it: MADV_DONTNEED only drops page-table entries
        // and the next access reads the unchanged file contents back, so no
        // live reference observes different bytes. The range is in bounds
        // (checked above).
        let _ =
            unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len) };
    }

    /// Size of the whole file in bytes.
    pub fn file_size(&self) -> u64 {
        self.bytes.as_slice().len() as u64
    }
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// A GGUF header without the tensor data ([`GgufFile::header_from_prefix`]).
#[derive(Debug)]
pub struct GgufHeader {
    /// Format version (2 or 3).
    pub version: u32,
    /// Where the tensor data starts.
    pub data_offset: u64,
    /// Every metadata entry.
    pub metadata: Metadata,
    /// Every tensor's descriptor.
    pub tensors: Vec<TensorInfo>,
}
