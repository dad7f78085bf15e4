//! What the store needs to know about a GGUF file before accepting it: that it
//! parses, that it is a whole model (not one shard), and the facts recorded in
//! the config blob (architecture, parameter count, file type).

use std::path::Path;

use gguf::GgufFile;

use crate::error::{Result, StoreError};
use crate::manifest::ModelConfig;

/// Opens and parses `path` (header and tensor table; the data stays mapped,
/// unread), rejecting files that are not GGUF or are one shard of a split model.
pub(crate) fn check(path: &Path) -> Result<GgufFile> {
    let file = GgufFile::open(path).map_err(|source| match source {
        gguf::Error::Io { path, source } => StoreError::Io { path, source },
        source => StoreError::NotGguf {
            path: path.to_owned(),
            source,
        },
    })?;
    if let Ok(Some(n)) = file.metadata().opt_u32("split.count")
        && n > 1
    {
        return Err(StoreError::Unsupported(format!(
            "{}: one shard of a model split into {n} files; merge it first \
             (llama-gguf-split --merge)",
            path.display()
        )));
    }
    Ok(file)
}

/// The config blob's description of `file`, without `rootfs` (filled in when
/// the manifest's layers are known).
pub(crate) fn describe(file: &GgufFile) -> ModelConfig {
    let m = file.metadata();
    let arch = m
        .opt_str("general.architecture")
        .ok()
        .flatten()
        .unwrap_or("unknown")
        .to_owned();
    let n_params: u64 = file.tensors().iter().map(|t| t.n_elements()).sum();
    let file_type = match m.opt_u32("general.file_type") {
        Ok(Some(id)) => file_type_name(id).map_or_else(|| format!("unknown ({id})"), str::to_owned),
        _ => "unknown".to_owned(),
    };
    let (architecture, os) = ModelConfig::host_platform();
    ModelConfig {
        model_format: "gguf".to_owned(),
        model_family: arch.clone(),
        model_families: Some(vec![arch]),
        model_type: human_number(n_params),
        file_type,
        architecture,
        os,
        rootfs: Default::default(),
    }
}

/// `general.file_type` (llama.cpp's `llama_ftype`) by the short name Ollama uses
/// in config blobs (ollama fs/ggml/type.go `FileType.String`).
pub fn file_type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4",
        _ => return None,
    })
}

/// A parameter count as Ollama writes `model_type` (ollama format/format.go
/// `HumanNumber`): `8B`, `3.2B`, `494.03M`, `96K`, `512`.
pub fn human_number(n: u64) -> String {
    const BILLION: f64 = 1e9;
    const MILLION: f64 = 1e6;
    let x = n as f64;
    if x >= BILLION {
        let v = x / BILLION;
        if v == v.floor() {
            format!("{v:.0}B")
        } else {
            format!("{v:.1}B")
        }
    } else if x >= MILLION {
        let v = x / MILLION;
        if v == v.floor() {
            format!("{v:.0}M")
        } else {
            format!("{v:.2}M")
        }
    } else if n >= 1000 {
        format!("{:.0}K", x / 1e3)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_numbers() {
        assert_eq!(human_number(8_000_000_000), "8B");
        assert_eq!(human_number(3_212_749_888), "3.2B");
        assert_eq!(human_number(494_032_768), "494.03M");
        assert_eq!(human_number(7_000_000), "7M");
        assert_eq!(human_number(96_512), "97K");
        assert_eq!(human_number(512), "512");
    }

    #[test]
    fn file_type_names() {
        assert_eq!(file_type_name(15), Some("Q4_K_M"));
        assert_eq!(file_type_name(1), Some("F16"));
        assert_eq!(file_type_name(4), None);
    }
}
