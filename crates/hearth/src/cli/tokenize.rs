//! `hearth tokenize MODEL TEXT`: the token ids of a text, with llama-tokenize's
//! defaults (BOS when the model asks for it, control-token text kept as text
//! unless `--special`) and its output format.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use gguf::GgufModel;
use model::tokenizer::Tokenizer;

/// Arguments of `hearth tokenize`.
#[derive(Debug, clap::Args)]
pub struct TokenizeArgs {
    /// A model of the store or a GGUF file (weights are not read; a vocab-only
    /// file works).
    model: PathBuf,
    /// The text, taken verbatim (no escape processing).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    text: Option<String>,
    /// Read the text from a file, byte for byte (a trailing newline is kept).
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Print only a JSON array of ids, like `[1, 2, 3]`.
    #[arg(long)]
    json: bool,
    /// Turn control-token text (`<|im_start|>`) into the control tokens.
    #[arg(long)]
    special: bool,
    /// Do not add BOS even if the model asks for it.
    #[arg(long)]
    no_bos: bool,
    /// Also measure tokenization speed on the text and report it on stderr.
    #[arg(long)]
    bench: bool,
}

/// Loads the tokenizer, tokenizes the text and prints the ids.
pub fn run(args: &TokenizeArgs) -> anyhow::Result<()> {
    let path = super::model_arg::resolve(&args.model)?.path;
    let model = GgufModel::open(&path).map_err(|e| match e {
        gguf::Error::Io { .. } => anyhow::Error::new(e),
        e => anyhow::Error::new(e).context(format!("{}", args.model.display())),
    })?;
    let tokenizer = Tokenizer::from_metadata(model.metadata())
        .with_context(|| format!("{}: tokenizer", args.model.display()))?;
    for warning in tokenizer.warnings() {
        eprintln!("warning: {warning}");
    }
    let text = match (&args.text, &args.file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            String::from_utf8(bytes)
                .with_context(|| format!("{} is not valid UTF-8", path.display()))?
        }
        (None, None) => anyhow::bail!("give TEXT or --file FILE"),
    };

    // llama-tokenize passes add_special = "the model adds BOS" && !--no-bos.
    let add_special = tokenizer.add_bos() && !args.no_bos;
    let ids = tokenizer.encode(&text, add_special, args.special);

    let mut out = Vec::new();
    if args.json {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        writeln!(out, "[{}]", list.join(", "))?;
    } else {
        for &id in &ids {
            write!(out, "{id:6} -> '")?;
            out.extend_from_slice(tokenizer.token_to_piece(id, true));
            out.extend_from_slice(b"'\n");
        }
    }
    std::io::stdout()
        .lock()
        .write_all(&out)
        .context("writing to stdout")?;

    if args.bench {
        bench(&tokenizer, &text, add_special, args.special);
    }
    Ok(())
}

/// Re-tokenizes the text for about a second and reports the best throughput.
fn bench(tokenizer: &Tokenizer, text: &str, add_special: bool, parse_special: bool) {
    let mut best = Duration::MAX;
    let mut n_tokens = 0;
    let started = Instant::now();
    let mut runs = 0;
    while runs < 3 || started.elapsed() < Duration::from_secs(1) {
        let t = Instant::now();
        n_tokens = tokenizer.encode(text, add_special, parse_special).len();
        best = best.min(t.elapsed());
        runs += 1;
    }
    let secs = best.as_secs_f64().max(1e-9);
    eprintln!(
        "tokenized {} bytes into {n_tokens} tokens in {:.3} ms (best of {runs}): {:.1} MB/s, {:.0} tokens/s",
        text.len(),
        secs * 1e3,
        text.len() as f64 / secs / 1e6,
        n_tokens as f64 / secs,
    );
}
