//! `hearth export MODEL --merge OUT.gguf`: the model with its LoRA adapters
//! merged into the weights, as llama.cpp's `llama-export-lora` writes it
//! (merged matrices F32 where the base is F32, else F16; everything else
//! copied).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use model::{LoadOptions, LoraUse, Model};

/// Arguments of `hearth export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A model of the store (its ADAPTER lines are merged) or a GGUF file.
    model: PathBuf,
    /// Write the merged model here.
    #[arg(long, value_name = "OUT.gguf")]
    merge: PathBuf,
    /// Another GGUF LoRA adapter to merge, with an optional scale (default
    /// 1), as llama-export-lora's `--lora` / `--lora-scaled`. Repeatable.
    #[arg(long, value_name = "FILE[:SCALE]")]
    lora: Vec<String>,
}

/// `FILE[:SCALE]`: the scale is whatever follows the last colon, if it
/// parses as a number.
fn file_and_scale(arg: &str) -> anyhow::Result<(PathBuf, f32)> {
    if let Some((file, scale)) = arg.rsplit_once(':')
        && let Ok(scale) = scale.parse::<f32>()
    {
        anyhow::ensure!(scale.is_finite(), "--lora {arg}: the scale is not a number");
        return Ok((PathBuf::from(file), scale));
    }
    Ok((PathBuf::from(arg), 1.0))
}

/// Loads the model and its adapters, merges, and writes the file.
pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let resolved = super::model_arg::resolve(&args.model)?;
    let model = Model::load_with(&resolved.path, &LoadOptions { threads: Some(1) })
        .with_context(|| format!("loading {}", args.model.display()))?;
    let mut uses = resolved
        .load_adapters(&model)
        .with_context(|| format!("loading the adapters of {}", args.model.display()))?;
    for arg in &args.lora {
        let (file, scale) = file_and_scale(arg)?;
        let lora = model
            .load_lora(&file)
            .with_context(|| format!("loading {}", file.display()))?;
        uses.push(LoraUse {
            lora: Arc::new(lora),
            scale,
        });
    }
    anyhow::ensure!(
        !uses.is_empty(),
        "{} has no adapters to merge: give --lora FILE[:SCALE]",
        args.model.display()
    );
    let merged = model::lora::merge(model.gguf(), &uses)?;
    merged
        .write_file(&args.merge)
        .with_context(|| format!("writing {}", args.merge.display()))?;
    let n: usize = uses.iter().map(|u| u.lora.targets().len()).sum();
    eprintln!(
        "merged {} adapter(s) ({n} tensors) into {}",
        uses.len(),
        args.merge.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lora_arguments() {
        assert_eq!(
            file_and_scale("a.gguf").unwrap(),
            (PathBuf::from("a.gguf"), 1.0)
        );
        assert_eq!(
            file_and_scale("dir/a.gguf:0.5").unwrap(),
            (PathBuf::from("dir/a.gguf"), 0.5)
        );
        assert_eq!(
            file_and_scale("C:x.gguf").unwrap(),
            (PathBuf::from("C:x.gguf"), 1.0)
        );
        assert!(file_and_scale("a.gguf:NaN").is_err());
    }
}
