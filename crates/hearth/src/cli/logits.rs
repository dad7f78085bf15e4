//! `hearth logits MODEL --tokens 1,2,3 --out FILE [--threads N]`: runs the token
//! ids through the model in one call and writes the raw logits of every position
//! (n_tokens × n_vocab little-endian f32, token-major), the hook for conformance
//! checks against llama.cpp.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use model::{LoadOptions, Logits, Model};

/// Arguments of `hearth logits`.
#[derive(Debug, clap::Args)]
pub struct LogitsArgs {
    /// A model of the store or a GGUF file.
    model: PathBuf,
    /// Comma-separated token ids.
    #[arg(long, value_delimiter = ',', required = true)]
    tokens: Vec<u32>,
    /// Where to write the logits.
    #[arg(long)]
    out: PathBuf,
    /// Threads for the forward pass (default: every core).
    #[arg(long)]
    threads: Option<usize>,
}

/// Loads the model, runs the tokens and writes the logits.
pub fn run(args: &LogitsArgs) -> anyhow::Result<()> {
    let options = LoadOptions {
        threads: args.threads,
    };
    let resolved = super::model_arg::resolve(&args.model)?;
    let model = Model::load_with(&resolved.path, &options)
        .with_context(|| format!("{}", args.model.display()))?;
    let mut state = model.new_state(args.tokens.len())?;
    // A stored model runs with its ADAPTERs.
    state.set_lora(
        resolved
            .load_adapters(&model)
            .with_context(|| format!("loading the adapters of {}", args.model.display()))?,
    );
    let logits = model.forward(&mut state, &args.tokens, Logits::All)?;
    let bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut file =
        std::fs::File::create(&args.out).with_context(|| format!("{}", args.out.display()))?;
    file.write_all(&bytes)
        .with_context(|| format!("{}", args.out.display()))?;
    Ok(())
}
