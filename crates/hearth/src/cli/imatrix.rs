//! `hearth imatrix MODEL -f TEXT [-o OUT]`: an importance matrix in
//! llama-imatrix's GGUF format (tools/imatrix/imatrix.cpp): the text is cut into
//! chunks of `-c` tokens (each starting with BOS where the model uses one), each
//! chunk runs through the model, and every layer's weight matrix gets the sum of
//! its squared input activations per column and the number of tokens seen
//! (`model::imatrix`). `hearth quantize --imatrix` reads the result.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use gguf::{GgufWriter, TensorType};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use model::tokenizer::Tokenizer;
use model::{LoadOptions, Logits, Model};

/// Arguments of `hearth imatrix`.
#[derive(Debug, clap::Args)]
pub struct ImatrixArgs {
    /// The model (a GGUF file or a model of the store).
    model: PathBuf,
    /// The text to run through the model (UTF-8).
    #[arg(short = 'f', long = "file", value_name = "TEXT")]
    file: PathBuf,
    /// Where to write the importance matrix.
    #[arg(short = 'o', long = "output", default_value = "imatrix.gguf")]
    output: PathBuf,
    /// At most this many chunks (default: all the text gives).
    #[arg(long)]
    chunks: Option<usize>,
    /// Tokens per chunk.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    ctx: usize,
    /// Worker threads (default: all cores).
    #[arg(short = 't', long)]
    threads: Option<usize>,
}

/// Computes and writes the importance matrix.
pub fn run(args: &ImatrixArgs) -> anyhow::Result<()> {
    if args.ctx < 16 {
        bail!("--ctx-size must be at least 16 (smaller products are not collected)");
    }
    let path = super::model_arg::resolve(&args.model)?.path;
    let model = Model::load_with(
        &path,
        &LoadOptions {
            threads: args.threads,
        },
    )
    .with_context(|| format!("loading {}", path.display()))?;
    let tokenizer = Tokenizer::from_metadata(model.gguf().metadata())
        .with_context(|| format!("{}: tokenizer", path.display()))?;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{} is not valid UTF-8", args.file.display()))?;
    let add_bos = tokenizer.add_bos();
    let tokens = tokenizer.encode(&text, add_bos, false);
    if tokens.len() < 2 * args.ctx {
        bail!(
            "{} gives {} tokens; at least {} (twice --ctx-size) are needed",
            args.file.display(),
            tokens.len(),
            2 * args.ctx
        );
    }
    let mut n_chunk = tokens.len() / args.ctx;
    if let Some(limit) = args.chunks {
        n_chunk = n_chunk.min(limit.max(1));
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::with_draw_target(Some(n_chunk as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:40} chunk {pos}/{len} {elapsed} (eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    model::imatrix::start();
    let collected = (|| -> anyhow::Result<()> {
        for chunk in tokens.chunks_exact(args.ctx).take(n_chunk) {
            let mut chunk = chunk.to_vec();
            if let (true, Some(bos)) = (add_bos, tokenizer.bos()) {
                chunk[0] = bos;
            }
            let mut state = model.new_state(args.ctx)?;
            model.forward(&mut state, &chunk, Logits::Last)?;
            if let Some(bar) = &bar {
                bar.inc(1);
            }
        }
        Ok(())
    })();
    let stats = model::imatrix::finish();
    collected?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }

    let mut w = GgufWriter::new();
    w.add_str("general.type", "imatrix");
    w.add_str_array("imatrix.datasets", &[args.file.to_string_lossy()]);
    w.add_u32("imatrix.chunk_count", n_chunk as u32);
    w.add_u32("imatrix.chunk_size", args.ctx as u32);
    let f32_bytes =
        |v: &mut dyn Iterator<Item = f32>| -> Vec<u8> { v.flat_map(|x| x.to_le_bytes()).collect() };
    for (name, e) in &stats {
        let n_mat = e.counts.len() as u64;
        let n_in = e.sums.len() as u64 / n_mat;
        // ggml_n_dims: trailing dimensions of 1 are not written.
        let dims = |d: Vec<u64>| {
            let n = d.iter().rposition(|&x| x != 1).map_or(1, |i| i + 1);
            d[..n].to_vec()
        };
        w.add_tensor(
            &format!("{name}.in_sum2"),
            TensorType::F32,
            &dims(vec![n_in, n_mat]),
            &f32_bytes(&mut e.sums.iter().copied()),
        )?;
        w.add_tensor(
            &format!("{name}.counts"),
            TensorType::F32,
            &dims(vec![1, n_mat]),
            &f32_bytes(&mut e.counts.iter().map(|&c| c as f32)),
        )?;
    }
    w.write_file(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "{}: {} matrices from {n_chunk} chunks of {} tokens",
        args.output.display(),
        stats.len(),
        args.ctx
    );
    Ok(())
}
