//! Writing a GGUF file tensor by tensor, for outputs too large to hold in memory
//! (llama-quantize's layout: the header with every descriptor first, then each
//! tensor's bytes padded to the alignment).
//!
//! The file is written under a temporary name beside the target and renamed over
//! it by [`GgufStreamWriter::finish`]; a writer dropped before that (an error, an
//! interrupted run) removes the temporary file, so no half-written model is left
//! under the target's name.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::writer::{check_tensor, header_bytes, io_error, padded, write_zeros};
use crate::{Error, Metadata, TensorType, reader};

/// One tensor of the file being streamed: its descriptor, written up front.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorPlan {
    /// Tensor name.
    pub name: String,
    /// Element type of the bytes that will be streamed.
    pub ty: TensorType,
    /// Shape, `ne[0]` first.
    pub dims: Vec<u64>,
}

/// A GGUF file being written tensor by tensor, in the order given to
/// [`GgufStreamWriter::create`].
#[derive(Debug)]
pub struct GgufStreamWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    alignment: u64,
    /// Byte size of each tensor, in order.
    sizes: Vec<u64>,
    /// Index of the tensor being written and the bytes written of it so far.
    current: usize,
    written: u64,
}

impl GgufStreamWriter {
    /// Starts `path` (under a temporary name) with `metadata` and the descriptors
    /// of `tensors`, whose bytes must then be streamed in this order.
    pub fn create(
        path: impl AsRef<Path>,
        metadata: &Metadata,
        tensors: &[TensorPlan],
    ) -> Result<GgufStreamWriter, Error> {
        let path = path.as_ref().to_owned();
        let alignment = reader::alignment(metadata)?;
        let mut names = HashSet::new();
        let mut sizes = Vec::with_capacity(tensors.len());
        for t in tensors {
            sizes.push(check_tensor(&t.name, t.ty, &t.dims)?);
            if !names.insert(t.name.as_str()) {
                return Err(Error::DuplicateTensor {
                    name: t.name.clone(),
                });
            }
        }
        let header = header_bytes(
            metadata,
            tensors
                .iter()
                .zip(&sizes)
                .map(|(t, &size)| (t.name.as_str(), t.ty, t.dims.as_slice(), size)),
            alignment,
        )?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{file_name}.tmp{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| io_error(&path, e))?;
        let mut writer = GgufStreamWriter {
            path,
            tmp,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            alignment,
            sizes,
            current: 0,
            written: 0,
        };
        writer.write_raw(&header)?;
        writer.skip_empty();
        Ok(writer)
    }

    /// Appends `bytes` to the current tensor; a tensor may be written in pieces.
    /// Writing past the declared size of the last tensor is an error.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        while !bytes.is_empty() {
            let Some(&size) = self.sizes.get(self.current) else {
                return Err(Error::TensorSizeMismatch {
                    tensor: "(past the last tensor)".to_owned(),
                    expected: 0,
                    found: bytes.len() as u64,
                });
            };
            let take = (size - self.written).min(bytes.len() as u64) as usize;
            self.write_raw(&bytes[..take])?;
            self.written += take as u64;
            bytes = &bytes[take..];
            if self.written == size {
                let pad = padded(0, size, self.alignment) - size;
                let out = self.out.as_mut().expect("open until finish");
                write_zeros(out, pad)?;
                self.current += 1;
                self.written = 0;
                self.skip_empty();
            }
        }
        Ok(())
    }

    /// Checks that every tensor was written in full, syncs the file and renames it
    /// to its target name.
    pub fn finish(mut self) -> Result<(), Error> {
        if self.current != self.sizes.len() {
            return Err(Error::TensorSizeMismatch {
                tensor: format!("tensor #{}", self.current),
                expected: self.sizes[self.current],
                found: self.written,
            });
        }
        let out = self.out.take().expect("open until finish");
        let file = out
            .into_inner()
            .map_err(|e| io_error(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| io_error(&self.tmp, e))?;
        fs::rename(&self.tmp, &self.path).map_err(|e| io_error(&self.path, e))
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let out = self.out.as_mut().expect("open until finish");
        out.write_all(bytes).map_err(|e| io_error(&self.path, e))
    }

    /// Zero-byte tensors have nothing to stream: move past them.
    fn skip_empty(&mut self) {
        while self.sizes.get(self.current) == Some(&0) {
            self.current += 1;
        }
    }
}

impl Drop for GgufStreamWriter {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            // Best effort: an unfinished file must not linger beside the target.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GgufFile, GgufWriter};

    fn tensors() -> Vec<(TensorPlan, Vec<u8>)> {
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        vec![
            (
                TensorPlan {
                    name: "a".into(),
                    ty: TensorType::F32,
                    dims: vec![3],
                },
                f32s(&[1.0, 2.0, 3.0]),
            ),
            (
                TensorPlan {
                    name: "b".into(),
                    ty: TensorType::F32,
                    dims: vec![2, 2],
                },
                f32s(&[4.0, 5.0, 6.0, 7.0]),
            ),
        ]
    }

    #[test]
    fn streamed_file_equals_the_in_memory_writer() {
        let dir = std::env::temp_dir().join(format!("gguf-stream-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut meta = GgufWriter::new();
        meta.add_str("general.architecture", "llama");
        let mut whole = GgufWriter::new();
        whole.add_str("general.architecture", "llama");
        let plans: Vec<TensorPlan> = tensors().into_iter().map(|(p, _)| p).collect();
        let streamed = dir.join("streamed.gguf");
        let mut s = GgufStreamWriter::create(&streamed, meta.metadata(), &plans).unwrap();
        for (p, data) in tensors() {
            whole.add_tensor(&p.name, p.ty, &p.dims, &data).unwrap();
            let (x, y) = data.split_at(5);
            s.write(x).unwrap();
            s.write(y).unwrap();
        }
        assert!(!streamed.exists(), "target appears only at finish");
        s.finish().unwrap();
        let mut expected = Vec::new();
        whole.write(&mut expected).unwrap();
        assert_eq!(fs::read(&streamed).unwrap(), expected);
        assert_eq!(GgufFile::open(&streamed).unwrap().tensors().len(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unfinished_file_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("gguf-stream-drop-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let plans: Vec<TensorPlan> = tensors().into_iter().map(|(p, _)| p).collect();
        let target = dir.join("out.gguf");
        let mut s = GgufStreamWriter::create(&target, &Metadata::new(), &plans).unwrap();
        s.write(&[0; 12]).unwrap();
        assert!(
            s.write(&[0; 17]).is_err(),
            "writing past the last tensor fails"
        );
        drop(s);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
