//! Importance matrices as llama-imatrix writes them, read as llama-quantize reads
//! them (llama.cpp common/imatrix-loader.cpp and tools/quantize/quantize.cpp
//! `load_imatrix`): the GGUF format (`NAME.in_sum2` and `NAME.counts` F32 tensors,
//! `imatrix.datasets` / `chunk_count` / `chunk_size`) and the legacy `.dat` one.
//! Either way each entry becomes the mean squared activation per input column
//! (per expert for 3-D weights), the weights the quantizers minimise error under.

use std::collections::BTreeMap;
use std::path::Path;

use gguf::{GgufFile, TensorType};

use super::QuantizeError;

/// Per-weight importance, ready for the quantizers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Imatrix {
    /// Weight tensor name → `ne0 × n_expert` importances.
    pub entries: BTreeMap<String, Vec<f32>>,
    /// Names of the texts it was computed on.
    pub datasets: Vec<String>,
    /// Chunks of text it was computed on (0 if unknown).
    pub chunk_count: u32,
}

impl Imatrix {
    /// Reads `path`, GGUF or legacy.
    pub fn load(path: &Path) -> Result<Imatrix, QuantizeError> {
        let bad = |msg: String| QuantizeError::Imatrix {
            path: path.to_owned(),
            msg,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        if bytes.starts_with(b"GGUF") {
            let file = GgufFile::from_bytes(bytes).map_err(|e| bad(e.to_string()))?;
            from_gguf(&file).map_err(bad)
        } else {
            from_legacy(&bytes).map_err(bad)
        }
    }
}

fn from_gguf(file: &GgufFile) -> Result<Imatrix, String> {
    let meta = file.metadata();
    let datasets = meta.opt_str_array("imatrix.datasets").ok().flatten();
    let chunk_count = meta
        .opt_u32("imatrix.chunk_count")
        .map_err(|e| e.to_string())?;
    let chunk_size = meta
        .opt_u32("imatrix.chunk_size")
        .map_err(|e| e.to_string())?;
    if datasets.is_none() || chunk_count.is_none() || chunk_size.is_none() {
        return Err(
            "missing imatrix metadata (imatrix.datasets, chunk_count, chunk_size)".to_owned(),
        );
    }
    if file.tensors().is_empty() {
        return Err("no data".to_owned());
    }
    let f32s = |name: &str| -> Result<Option<Vec<f32>>, String> {
        let Some(t) = file.tensor(name) else {
            return Ok(None);
        };
        if t.ty != TensorType::F32 {
            return Err(format!("{name}: must be F32, is {}", t.ty));
        }
        Ok(Some(
            file.tensor_data(t)
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ))
    };
    let mut entries = BTreeMap::new();
    for t in file.tensors() {
        let (name, is_sums) = match (
            t.name.strip_suffix(".in_sum2"),
            t.name.strip_suffix(".counts"),
        ) {
            (Some(n), _) => (n, true),
            (_, Some(n)) => (n, false),
            _ => continue,
        };
        let other = if is_sums { ".counts" } else { ".in_sum2" };
        let (Some(sums), Some(counts)) = (
            f32s(&format!("{name}.in_sum2"))?,
            f32s(&format!("{name}.counts"))?,
        ) else {
            return Err(format!("{}: no matching {name}{other}", t.name));
        };
        if !is_sums {
            continue;
        }
        if counts.is_empty() || !sums.len().is_multiple_of(counts.len()) {
            return Err(format!(
                "{name}: {} sums do not split into {} counts",
                sums.len(),
                counts.len()
            ));
        }
        let ne0 = sums.len() / counts.len();
        let mut e = Vec::with_capacity(sums.len());
        for (j, &c) in counts.iter().enumerate() {
            // The loader rounds counts to integers; quantize divides by them.
            let count = c.round() as i64 as f32;
            let row = &sums[j * ne0..(j + 1) * ne0];
            if count > 0.0 {
                e.extend(row.iter().map(|s| s / count));
            } else {
                e.extend(std::iter::repeat_n(1.0, ne0));
            }
        }
        entries.insert(name.to_owned(), e);
    }
    Ok(Imatrix {
        entries,
        datasets: datasets.unwrap_or_default().to_vec(),
        chunk_count: chunk_count.unwrap_or(0),
    })
}

/// The legacy format: `i32 n_entries`, then per entry `i32 name_len, name,
/// i32 ncall, i32 nval, nval × f32`, optionally followed by `i32 chunk_count,
/// i32 len, dataset name`. Values are sums scaled to `ncall` calls.
fn from_legacy(bytes: &[u8]) -> Result<Imatrix, String> {
    let mut at = 0usize;
    let mut take = |n: usize, what: &str| -> Result<&[u8], String> {
        let s = bytes
            .get(at..at.checked_add(n).ok_or("length overflow")?)
            .ok_or_else(|| format!("truncated: {what} at byte {at}"))?;
        at += n;
        Ok(s)
    };
    let i32_at = |b: &[u8]| i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let n_entries = i32_at(take(4, "entry count")?);
    if n_entries < 1 {
        return Err("not a GGUF file, and no data as a legacy imatrix".to_owned());
    }
    let mut entries = BTreeMap::new();
    for i in 0..n_entries {
        let len = i32_at(take(4, "name length")?);
        let len = usize::try_from(len).map_err(|_| format!("entry {i}: bad name length"))?;
        let name = String::from_utf8_lossy(take(len, "name")?).into_owned();
        let ncall = i32_at(take(4, "call count")?);
        let nval = i32_at(take(4, "value count")?);
        let nval = usize::try_from(nval)
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| format!("entry {name}: bad value count {nval}"))?;
        let data = take(nval.checked_mul(4).ok_or("length overflow")?, "values")?;
        let sums = data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let e = if ncall > 0 {
            sums.map(|s| s / ncall as f32).collect()
        } else {
            sums.collect()
        };
        entries.insert(name, e);
    }
    let mut datasets = Vec::new();
    let mut chunk_count = 0;
    if let Ok(b) = take(4, "chunk count") {
        chunk_count = i32_at(b).max(0) as u32;
        if let Ok(b) = take(4, "dataset length") {
            let len = i32_at(b);
            if len > 0
                && let Ok(name) = take(len as usize, "dataset")
            {
                datasets.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    Ok(Imatrix {
        entries,
        datasets,
        chunk_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy(entries: &[(&str, i32, &[f32])], tail: Option<(i32, &str)>) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(entries.len() as i32).to_le_bytes());
        for (name, ncall, vals) in entries {
            b.extend_from_slice(&(name.len() as i32).to_le_bytes());
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(&ncall.to_le_bytes());
            b.extend_from_slice(&(vals.len() as i32).to_le_bytes());
            vals.iter()
                .for_each(|v| b.extend_from_slice(&v.to_le_bytes()));
        }
        if let Some((chunks, dataset)) = tail {
            b.extend_from_slice(&chunks.to_le_bytes());
            b.extend_from_slice(&(dataset.len() as i32).to_le_bytes());
            b.extend_from_slice(dataset.as_bytes());
        }
        b
    }

    #[test]
    fn legacy_entries_are_divided_by_their_call_count() {
        let bytes = legacy(
            &[("blk.0.attn_q.weight", 4, &[8.0, 2.0]), ("x", 0, &[3.0])],
            Some((10, "wiki.txt")),
        );
        let m = from_legacy(&bytes).unwrap();
        assert_eq!(m.entries["blk.0.attn_q.weight"], vec![2.0, 0.5]);
        assert_eq!(m.entries["x"], vec![3.0]);
        assert_eq!(
            (m.chunk_count, m.datasets.clone()),
            (10, vec!["wiki.txt".into()])
        );
        let truncated = &bytes[..bytes.len() - 20];
        assert!(from_legacy(truncated).unwrap_err().contains("truncated"));
    }

    #[test]
    fn gguf_entries_are_divided_by_their_count_per_expert() {
        let mut w = gguf::GgufWriter::new();
        w.add_str_array("imatrix.datasets", &["d.txt"]);
        w.add_u32("imatrix.chunk_count", 3);
        w.add_u32("imatrix.chunk_size", 512);
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        w.add_tensor(
            "e.in_sum2",
            TensorType::F32,
            &[2, 2],
            &f32s(&[4.0, 6.0, 1.0, 1.0]),
        )
        .unwrap();
        w.add_tensor("e.counts", TensorType::F32, &[1, 2], &f32s(&[2.0, 0.0]))
            .unwrap();
        let mut bytes = Vec::new();
        w.write(&mut bytes).unwrap();
        let m = from_gguf(&GgufFile::from_bytes(bytes).unwrap()).unwrap();
        assert_eq!(m.entries["e"], vec![2.0, 3.0, 1.0, 1.0]);
        assert_eq!(m.chunk_count, 3);
        assert_eq!(m.datasets, vec!["d.txt".to_owned()]);
    }
}
