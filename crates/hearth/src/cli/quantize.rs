//! `hearth quantize IN.gguf OUT.gguf PRESET`: llama-quantize's job, with its
//! presets and options, writing the same tensor types and bytes
//! (`store::quantize`).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use gguf::TensorType;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use store::quantize::{Event, Imatrix, Options, Preset, Request, quantize_file};

/// Arguments of `hearth quantize`.
#[derive(Debug, clap::Args)]
pub struct QuantizeArgs {
    /// The model to quantize (F32, F16 or BF16; a quantized one with --allow-requantize).
    input: PathBuf,
    /// The file to write (replaced only once it is complete).
    output: PathBuf,
    /// llama-quantize's preset name (Q4_K_M, Q8_0, IQ4_XS, ...) or file type number.
    preset: String,
    /// Importance matrix (llama-imatrix's GGUF or legacy .dat file).
    #[arg(long, value_name = "FILE")]
    imatrix: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Type of output.weight (a ggml type name such as q8_0 or f16).
    #[arg(long, value_name = "TYPE")]
    output_tensor_type: Option<String>,
    /// Type of token_embd.weight.
    #[arg(long, value_name = "TYPE")]
    token_embedding_type: Option<String>,
    /// Quantize tensors that are already quantized (loses quality).
    #[arg(long)]
    allow_requantize: bool,
    /// Keep output.weight as it is.
    #[arg(long)]
    leave_output_tensor: bool,
    /// Every quantizable tensor in the preset's base type, no mixture.
    #[arg(long)]
    pure: bool,
}

/// A ggml type by its name, any case (`q4_K`, `Q8_0`, `f16`).
fn tensor_type(name: &str) -> anyhow::Result<TensorType> {
    TensorType::ALL
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(name))
        .with_context(|| format!("unknown tensor type '{name}'"))
}

/// Quantizes and prints a summary.
pub fn run(args: &QuantizeArgs) -> anyhow::Result<()> {
    let Some(preset) = Preset::parse(&args.preset) else {
        bail!(
            "unknown preset '{}'; one of: {}",
            args.preset,
            Preset::names().collect::<Vec<_>>().join(", ")
        );
    };
    let mut options = Options::new(preset);
    options.output_tensor_type = args
        .output_tensor_type
        .as_deref()
        .map(tensor_type)
        .transpose()?;
    options.token_embedding_type = args
        .token_embedding_type
        .as_deref()
        .map(tensor_type)
        .transpose()?;
    options.pure = args.pure;
    options.leave_output_tensor = args.leave_output_tensor;
    let imatrix = args.imatrix.as_deref().map(Imatrix::load).transpose()?;
    let imatrix_name = args
        .imatrix
        .as_deref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n_threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    if n_threads == 0 {
        bail!("--threads must be at least 1");
    }
    let request = Request {
        input: &args.input,
        output: &args.output,
        options,
        allow_requantize: args.allow_requantize,
        imatrix: imatrix.as_ref().map(|m| (m, imatrix_name.as_str())),
        n_threads,
    };
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()));
    let started = std::time::Instant::now();
    let report = quantize_file(&request, &mut |event| match event {
        Event::Planned { bytes_in, .. } => {
            if let Some(bar) = &bar {
                bar.set_length(bytes_in);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} {wide_msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
            }
        }
        Event::Tensor {
            name,
            from,
            to,
            bytes_in,
            bytes_out,
            ..
        } => match &bar {
            Some(bar) => {
                bar.inc(bytes_in);
                bar.set_message(format!("{name} {from} -> {to}"));
            }
            None => eprintln!(
                "{name:40} {from:>7} -> {to:<7} {:9.2} MiB -> {:9.2} MiB",
                mib(bytes_in),
                mib(bytes_out)
            ),
        },
    })
    .with_context(|| format!("quantizing {}", args.input.display()))?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let bpw = |bytes: u64| bytes as f64 * 8.0 / report.n_elements.max(1) as f64;
    println!(
        "{} -> {} ({}): {:.2} MiB ({:.2} BPW) -> {:.2} MiB ({:.2} BPW), {} tensors in {:.1} s",
        args.input.display(),
        args.output.display(),
        preset.name(),
        mib(report.bytes_in),
        bpw(report.bytes_in),
        mib(report.bytes_out),
        bpw(report.bytes_out),
        report.n_tensors,
        started.elapsed().as_secs_f64()
    );
    if report.n_fallback > 0 {
        eprintln!(
            "warning: {} of {} tensors needed a fallback type (row length not a multiple of the block)",
            report.n_fallback, report.n_tensors
        );
    }
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
