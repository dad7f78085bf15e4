//! Models split across several files, `NAME-00001-of-00003.gguf` and so on.
//!
//! The convention is llama.cpp's (`llama_split_path`, "%s-%05d-of-%05d.gguf"; the
//! `gguf-split` tool): every shard carries `split.no` (0-based), `split.count` and
//! `split.tensors.count`; the model's metadata lives in the first shard.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::reader::TensorInfo;
use crate::{Error, GgufFile, Metadata};

const SPLIT_NO: &str = "split.no";
const SPLIT_COUNT: &str = "split.count";
const SPLIT_TENSORS_COUNT: &str = "split.tensors.count";

/// A model in one file or split across shards, seen as one set of metadata and
/// tensors.
#[derive(Debug)]
pub struct GgufModel {
    files: Vec<GgufFile>,
    /// Tensor name -> (shard, index in that shard's tensors).
    index: HashMap<String, (usize, usize)>,
}

impl GgufModel {
    /// Opens a model given any of its shards (or its only file). A file without
    /// `split.count`, or with `split.count` 1, is a one-shard model.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufModel, Error> {
        let path = path.as_ref();
        let first = GgufFile::open(path)?;
        let count = first.metadata().opt_u64(SPLIT_COUNT)?.unwrap_or(1);
        if count <= 1 {
            return Self::from_files(vec![first]);
        }
        let Some((prefix, no, name_count)) = parse_shard_name(path) else {
            return Err(Error::SplitName {
                path: path.to_owned(),
                count,
            });
        };
        if name_count != count {
            return Err(Error::SplitMismatch {
                path: path.to_owned(),
                key: SPLIT_COUNT,
                expected: name_count,
                found: count,
            });
        }
        let mut opened = Some((no, first));
        let mut files = Vec::new();
        for i in 1..=count {
            let file = match opened.take_if(|(n, _)| *n == i) {
                Some((_, file)) => file,
                None => {
                    let shard = shard_path(&prefix, i, count);
                    if !shard.exists() {
                        return Err(Error::MissingShard { path: shard });
                    }
                    GgufFile::open(&shard)?
                }
            };
            let shard = shard_path(&prefix, i, count);
            check_key(&file, &shard, SPLIT_COUNT, count)?;
            check_key(&file, &shard, SPLIT_NO, i - 1)?;
            files.push(file);
        }
        Self::from_files(files)
    }

    /// A model from already opened shards, in order.
    fn from_files(files: Vec<GgufFile>) -> Result<GgufModel, Error> {
        let mut index = HashMap::new();
        for (shard, file) in files.iter().enumerate() {
            for (i, t) in file.tensors().iter().enumerate() {
                if let Some(&(first, _)) = index.get(&t.name) {
                    return Err(Error::TensorInTwoShards {
                        tensor: t.name.clone(),
                        first,
                        second: shard,
                    });
                }
                index.insert(t.name.clone(), (shard, i));
            }
        }
        if let Some(expected) = files[0].metadata().opt_u64(SPLIT_TENSORS_COUNT)? {
            let found = index.len() as u64;
            if expected != found {
                return Err(Error::SplitTensorCount { expected, found });
            }
        }
        Ok(GgufModel { files, index })
    }

    /// The model's metadata (the first shard's).
    pub fn metadata(&self) -> &Metadata {
        self.files[0].metadata()
    }

    /// Every tensor with the index of the shard holding it, shard by shard in file order.
    pub fn tensors(&self) -> impl Iterator<Item = (usize, &TensorInfo)> {
        self.files
            .iter()
            .enumerate()
            .flat_map(|(shard, f)| f.tensors().iter().map(move |t| (shard, t)))
    }

    /// Number of tensors across all shards.
    pub fn n_tensors(&self) -> usize {
        self.index.len()
    }

    /// The descriptor of the tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index
            .get(name)
            .map(|&(shard, i)| &self.files[shard].tensors()[i])
    }

    /// The bytes of the tensor called `name`.
    pub fn tensor_data(&self, name: &str) -> Result<&[u8], Error> {
        let &(shard, i) = self.index.get(name).ok_or_else(|| Error::TensorNotFound {
            name: name.to_owned(),
        })?;
        let file = &self.files[shard];
        Ok(file.tensor_data(&file.tensors()[i]))
    }

    /// The shards, in order (one for an unsplit model).
    pub fn files(&self) -> &[GgufFile] {
        &self.files
    }

    /// Total size of all shards in bytes.
    pub fn file_size(&self) -> u64 {
        self.files.iter().map(GgufFile::file_size).sum()
    }
}

fn check_key(file: &GgufFile, path: &Path, key: &'static str, expected: u64) -> Result<(), Error> {
    let found = file.metadata().opt_u64(key)?;
    match found {
        Some(found) if found == expected => Ok(()),
        found => Err(Error::SplitMismatch {
            path: path.to_owned(),
            key,
            expected,
            found: found.unwrap_or(u64::MAX),
        }),
    }
}

/// Splits `dir/NAME-00002-of-00003.gguf` into (`dir/NAME`, 2, 3).
fn parse_shard_name(path: &Path) -> Option<(PathBuf, u64, u64)> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, no) = rest.rsplit_once('-')?;
    let number = |s: &str| {
        (s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u64>().ok())?
    };
    let (no, count) = (number(no)?, number(count)?);
    if no == 0 || no > count {
        return None;
    }
    Some((path.with_file_name(prefix), no, count))
}

/// `PREFIX-0000i-of-0000n.gguf`.
fn shard_path(prefix: &Path, i: u64, count: u64) -> PathBuf {
    let name = prefix
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    prefix.with_file_name(format!("{name}-{i:05}-of-{count:05}.gguf"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_parse_and_format() {
        let (prefix, no, count) =
            parse_shard_name(Path::new("/m/llama-3-00002-of-00003.gguf")).unwrap();
        assert_eq!(
            (prefix.as_path(), no, count),
            (Path::new("/m/llama-3"), 2, 3)
        );
        assert_eq!(
            shard_path(&prefix, 1, 3),
            Path::new("/m/llama-3-00001-of-00003.gguf")
        );
        for bad in [
            "model.gguf",
            "m-00000-of-00002.gguf",
            "m-00003-of-00002.gguf",
            "m-1-of-2.gguf",
        ] {
            assert_eq!(parse_shard_name(Path::new(bad)), None, "{bad}");
        }
    }
}
