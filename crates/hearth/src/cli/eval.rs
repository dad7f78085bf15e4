//! `hearth eval perplexity | kld | needle`: a model's quality on a text,
//! measured as llama-perplexity measures it (engine::eval), so the numbers
//! compare with llama.cpp's on the same file and text.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use engine::eval::{
    BaseLogProbs, ChunkProgress, KldReport, NeedleOptions, PerplexityOptions, PerplexityReport,
};
use model::tokenizer::Tokenizer;
use model::{LoadOptions, Model};

/// Arguments of `hearth eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: EvalCommand,
}

#[derive(Debug, clap::Subcommand)]
enum EvalCommand {
    /// Perplexity of a text, llama-perplexity's method and final estimate.
    Perplexity(PerplexityArgs),
    /// KL divergence, top-token agreement and Δ-perplexity against a base model.
    Kld(KldArgs),
    /// Needle in a haystack: is a number hidden in a long text retrieved?
    Needle(NeedleArgs),
}

/// Arguments of `hearth eval perplexity`.
#[derive(Debug, clap::Args)]
struct PerplexityArgs {
    /// A model of the store or a GGUF file.
    model: PathBuf,
    /// The text (UTF-8; one trailing newline is dropped, as llama-perplexity does).
    #[arg(short, long, value_name = "FILE")]
    file: PathBuf,
    /// Tokens per chunk (llama-perplexity's -c).
    #[arg(short = 'c', long = "ctx", default_value_t = 512)]
    ctx: usize,
    /// Evaluate at most this many chunks.
    #[arg(long)]
    chunks: Option<usize>,
    /// Position buckets of the quality-over-context table.
    #[arg(long, default_value_t = 8)]
    buckets: usize,
    /// Threads (default: every core).
    #[arg(short, long)]
    threads: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Also draw perplexity by context position (SVG).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

/// Arguments of `hearth eval kld`.
#[derive(Debug, clap::Args)]
struct KldArgs {
    /// The model to judge (a quantized one).
    model: PathBuf,
    /// The reference model (e.g. the F16 or Q8_0 file), run over the text.
    #[arg(
        long,
        required_unless_present = "base_logits",
        conflicts_with = "base_logits"
    )]
    base: Option<PathBuf>,
    /// The reference's log-probabilities from a file instead: llama-perplexity's
    /// --kl-divergence-base format (its tokens are used; -f is not needed).
    #[arg(long, value_name = "FILE")]
    base_logits: Option<PathBuf>,
    /// Write the base model's log-probabilities in that format, for llama-perplexity
    /// --kl-divergence or a later --base-logits.
    #[arg(long, value_name = "FILE", requires = "base")]
    save_base_logits: Option<PathBuf>,
    /// The text (with --base).
    #[arg(
        short,
        long,
        value_name = "FILE",
        required_unless_present = "base_logits"
    )]
    file: Option<PathBuf>,
    /// Tokens per chunk (with --base).
    #[arg(short = 'c', long = "ctx", default_value_t = 512)]
    ctx: usize,
    /// Threads (default: every core).
    #[arg(short, long)]
    threads: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Arguments of `hearth eval needle`.
#[derive(Debug, clap::Args)]
struct NeedleArgs {
    /// A model of the store or a GGUF file.
    model: PathBuf,
    /// Prompt lengths in tokens (default: 1/4, 1/2 and all of the model's context).
    #[arg(long, value_delimiter = ',')]
    lengths: Vec<usize>,
    /// Needle depths, fractions of the text.
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,1")]
    depths: Vec<f64>,
    /// Tokens generated for each answer.
    #[arg(long, default_value_t = 8)]
    n_predict: usize,
    /// Threads (default: every core).
    #[arg(short, long)]
    threads: Option<usize>,
    /// Print a JSON array.
    #[arg(long)]
    json: bool,
}

/// Runs the chosen evaluation.
pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    match &args.command {
        EvalCommand::Perplexity(a) => perplexity(a),
        EvalCommand::Kld(a) => kld(a),
        EvalCommand::Needle(a) => needle(a),
    }
}

/// A loaded model with its tokenizer.
struct Loaded {
    model: Model,
    tokenizer: Tokenizer,
}

impl Loaded {
    fn open(arg: &Path, threads: Option<usize>) -> anyhow::Result<Loaded> {
        if threads == Some(0) {
            anyhow::bail!("--threads must be at least 1");
        }
        let path = super::model_arg::resolve(arg)?.path;
        let model = Model::load_with(&path, &LoadOptions { threads })
            .with_context(|| format!("loading {}", arg.display()))?;
        let tokenizer = Tokenizer::from_metadata(model.gguf().metadata())
            .with_context(|| format!("{}: tokenizer", arg.display()))?;
        Ok(Loaded { model, tokenizer })
    }

    /// BOS, if the model adds one (each chunk starts with it).
    fn bos(&self) -> Option<u32> {
        self.tokenizer.bos().filter(|_| self.tokenizer.add_bos())
    }

    /// The text's tokens as llama-perplexity makes them: BOS first when the
    /// model adds it, control-token text kept as text.
    fn tokenize(&self, file: &Path) -> anyhow::Result<Vec<u32>> {
        let text = read_text(file)?;
        Ok(self
            .tokenizer
            .encode(&text, self.tokenizer.add_bos(), false))
    }
}

/// The text of `-f`, with one trailing newline dropped (llama.cpp's `-f`).
fn read_text(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut text = String::from_utf8(bytes)
        .with_context(|| format!("{} is not valid UTF-8", path.display()))?;
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}

/// Progress on stderr: chunks done, running perplexity, time left.
fn report_chunk(p: &ChunkProgress) {
    let per_chunk = p.elapsed.as_secs_f64() / p.done as f64;
    let left = per_chunk * (p.n_chunks - p.done) as f64;
    eprint!(
        "\r[{}/{}] PPL {:.4}, {:.2} s per chunk, {:.0} s left   ",
        p.done, p.n_chunks, p.ppl, per_chunk, left
    );
    if p.done == p.n_chunks {
        eprintln!();
    }
}

fn perplexity(args: &PerplexityArgs) -> anyhow::Result<()> {
    let loaded = Loaded::open(&args.model, args.threads)?;
    let tokens = loaded.tokenize(&args.file)?;
    if args.ctx > loaded.model.info().n_ctx_train {
        eprintln!(
            "warning: the model was trained on {} positions, --ctx is {}",
            loaded.model.info().n_ctx_train,
            args.ctx
        );
    }
    let options = PerplexityOptions {
        n_ctx: args.ctx,
        max_chunks: args.chunks,
        n_buckets: args.buckets,
        bos: loaded.bos(),
    };
    let report = engine::eval::perplexity(&loaded.model, &tokens, &options, &mut report_chunk)?;
    if let Some(plot) = &args.plot {
        super::plot::perplexity_by_position(plot, &args.model.display().to_string(), &report)?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&perplexity_json(&report))?
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{} tokens, {} chunks of {}, {} scored in {:.1} s",
        report.n_tokens,
        report.n_chunks,
        report.n_ctx,
        report.n_scored,
        report.elapsed.as_secs_f64()
    )?;
    writeln!(
        out,
        "Final estimate: PPL = {:.4} +/- {:.5}",
        report.ppl, report.ppl_uncertainty
    )?;
    writeln!(
        out,
        "\nPerplexity by position in the chunk (every position):"
    )?;
    writeln!(out, "| positions | predictions | PPL |")?;
    writeln!(out, "| --- | ---: | ---: |")?;
    for b in &report.by_position {
        writeln!(
            out,
            "| {}-{} | {} | {:.4} |",
            b.start,
            b.end - 1,
            b.count,
            b.ppl
        )?;
    }
    Ok(())
}

fn perplexity_json(r: &PerplexityReport) -> serde_json::Value {
    serde_json::json!({
        "ppl": r.ppl,
        "ppl_uncertainty": r.ppl_uncertainty,
        "nll": r.nll,
        "n_ctx": r.n_ctx,
        "n_chunks": r.n_chunks,
        "n_tokens": r.n_tokens,
        "n_scored": r.n_scored,
        "chunk_ppl": r.chunk_ppl,
        "by_position": r.by_position.iter().map(|b| serde_json::json!({
            "start": b.start, "end": b.end, "count": b.count, "ppl": b.ppl,
        })).collect::<Vec<_>>(),
        "seconds": r.elapsed.as_secs_f64(),
    })
}

fn kld(args: &KldArgs) -> anyhow::Result<()> {
    let progress = |what: &'static str| {
        move |done: usize, n: usize| {
            eprint!("\r{what}: chunk {done}/{n}   ");
            if done == n {
                eprintln!();
            }
        }
    };
    let base = match (&args.base, &args.base_logits) {
        (_, Some(file)) => BaseLogProbs::read(file)?,
        (Some(base), None) => {
            let file = args.file.as_deref().context("give the text with -f")?;
            let base = Loaded::open(base, args.threads)?;
            let tokens = base.tokenize(file)?;
            let logprobs = BaseLogProbs::compute(
                &base.model,
                &tokens,
                args.ctx,
                base.bos(),
                &mut progress("base"),
            )?;
            if let Some(save) = &args.save_base_logits {
                logprobs.write(save)?;
            }
            logprobs
        }
        (None, None) => anyhow::bail!("give --base MODEL or --base-logits FILE"),
    };
    let loaded = Loaded::open(&args.model, args.threads)?;
    let report = engine::eval::kld(&loaded.model, &base, loaded.bos(), &mut progress("model"))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write_kld(&mut out, &report)?;
    }
    Ok(())
}

/// llama-perplexity's three summary blocks.
fn write_kld(out: &mut dyn std::io::Write, r: &KldReport) -> std::io::Result<()> {
    writeln!(
        out,
        "====== Perplexity statistics ({} positions) ======",
        r.count
    )?;
    writeln!(
        out,
        "Mean PPL(Q)                   : {:10.6} ± {:10.6}",
        r.ppl, r.ppl_uncertainty
    )?;
    writeln!(
        out,
        "Mean PPL(base)                : {:10.6} ± {:10.6}",
        r.ppl_base, r.ppl_base_uncertainty
    )?;
    writeln!(
        out,
        "Cor(ln(PPL(Q)), ln(PPL(base))): {:6.2}%",
        100.0 * r.correlation
    )?;
    writeln!(
        out,
        "Mean ln(PPL(Q)/PPL(base))     : {:10.6} ± {:10.6}",
        r.ln_ppl_ratio, r.ln_ppl_ratio_uncertainty
    )?;
    writeln!(
        out,
        "Mean PPL(Q)/PPL(base)         : {:10.6} ± {:10.6}",
        r.ppl_ratio, r.ppl_ratio_uncertainty
    )?;
    writeln!(
        out,
        "Mean PPL(Q)-PPL(base)         : {:10.6} ± {:10.6}",
        r.ppl_diff, r.ppl_diff_uncertainty
    )?;
    writeln!(out, "\n====== KL divergence statistics ======")?;
    writeln!(
        out,
        "Mean    KLD: {:10.6} ± {:10.6}",
        r.kld_mean, r.kld_uncertainty
    )?;
    let k = &r.kld;
    for (name, v) in [
        ("Maximum", k.max),
        ("99.9%  ", k.p99_9),
        ("99.0%  ", k.p99),
        ("95.0%  ", k.p95),
        ("90.0%  ", k.p90),
        ("Median ", k.median),
        ("10.0%  ", k.p10),
        (" 5.0%  ", k.p5),
        (" 1.0%  ", k.p1),
        (" 0.1%  ", k.p0_1),
        ("Minimum", k.min),
    ] {
        writeln!(out, "{name} KLD: {v:10.6}")?;
    }
    writeln!(out, "\n====== Token probability statistics ======")?;
    writeln!(
        out,
        "Mean    Δp: {:6.3} ± {:5.3} %",
        100.0 * r.p_diff_mean,
        100.0 * r.p_diff_uncertainty
    )?;
    let p = &r.p_diff;
    for (name, v) in [
        ("Maximum", p.max),
        ("99.9%  ", p.p99_9),
        ("99.0%  ", p.p99),
        ("95.0%  ", p.p95),
        ("90.0%  ", p.p90),
        ("75.0%  ", p.p75),
        ("Median ", p.median),
        ("25.0%  ", p.p25),
        ("10.0%  ", p.p10),
        (" 5.0%  ", p.p5),
        (" 1.0%  ", p.p1),
        (" 0.1%  ", p.p0_1),
        ("Minimum", p.min),
    ] {
        writeln!(out, "{name} Δp: {:6.3}%", 100.0 * v)?;
    }
    writeln!(
        out,
        "RMS Δp    : {:6.3} ± {:5.3} %",
        100.0 * r.p_diff_rms,
        100.0 * r.p_diff_rms_uncertainty
    )?;
    writeln!(
        out,
        "Same top p: {:6.3} ± {:5.3} %",
        100.0 * r.same_top,
        100.0 * r.same_top_uncertainty
    )
}

fn needle(args: &NeedleArgs) -> anyhow::Result<()> {
    let loaded = Loaded::open(&args.model, args.threads)?;
    let n_ctx = loaded.model.info().n_ctx_train;
    let lengths = if args.lengths.is_empty() {
        vec![n_ctx / 4, n_ctx / 2, n_ctx - args.n_predict]
    } else {
        args.lengths.clone()
    };
    if let Some(&l) = lengths.iter().find(|&&l| l + args.n_predict > n_ctx) {
        anyhow::bail!(
            "a prompt of {l} tokens and {} answer tokens exceed the model's context of {n_ctx}",
            args.n_predict
        );
    }
    let options = NeedleOptions {
        lengths,
        depths: args.depths.clone(),
        n_predict: args.n_predict,
    };
    let results = engine::eval::needle(&loaded.model, &loaded.tokenizer, &options, &mut |r| {
        eprintln!(
            "length {} depth {:.2}: {} ({:?})",
            r.length,
            r.depth,
            if r.found { "found" } else { "missed" },
            r.answer
        );
    })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&results)?)?;
        return Ok(());
    }
    writeln!(out, "| length | found | depths |")?;
    writeln!(out, "| ---: | ---: | --- |")?;
    for &length in &options.lengths {
        let row: Vec<_> = results.iter().filter(|r| r.length == length).collect();
        let found = row.iter().filter(|r| r.found).count();
        let marks: Vec<String> = row
            .iter()
            .map(|r| format!("{:.2}:{}", r.depth, if r.found { "yes" } else { "no" }))
            .collect();
        writeln!(
            out,
            "| {length} | {found}/{} | {} |",
            row.len(),
            marks.join(" ")
        )?;
    }
    Ok(())
}
