//! `hearth pull NAME [--insecure]`: fetches a model from a registry (the
//! Ollama registry by default, Hugging Face with `hf.co/USER/REPO[:QUANT]`,
//! any registry with `host[:port]/ns/model:tag`) or a GGUF file by URL,
//! through a running server's `/api/pull` when there is one, else directly
//! into the store. Progress is drawn as one bar per layer with size, speed
//! and ETA, as `ollama pull` does; without a terminal, one line per step.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use store::Progress;

/// Arguments of `hearth pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// The model, e.g. `llama3.2`, `hf.co/USER/REPO:Q4_K_M`,
    /// `host:port/ns/model:tag`, or `https://…/FILE.gguf`.
    name: String,
    /// Allow plain http (a registry without TLS, such as another hearth).
    #[arg(long)]
    insecure: bool,
}

/// Pulls the model.
pub fn run(args: &PullArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !server::route::offline_from_env(),
        "HEARTH_OFFLINE=1 forbids outbound connections: pull is off"
    );
    let mut display = Display::new();
    let result = match super::client::Client::detect() {
        Some(client) => {
            super::remote::transfer(&client, "/api/pull", &args.name, args.insecure, &mut |p| {
                display.show(p)
            })
        }
        None => {
            let store = crate::builtin::open_store()?;
            let options = server::api::pull::pull_options(args.insecure);
            store
                .pull(&args.name, &options, &mut |p| display.show(p))
                .map(|_| ())
                .map_err(anyhow::Error::from)
        }
    };
    display.finish();
    result
}

/// Draws pull progress: a bar per byte-counting step, a line per other step.
pub struct Display {
    bars: Option<MultiProgress>,
    by_status: HashMap<String, ProgressBar>,
    last_status: String,
}

impl Display {
    /// Bars on a terminal (stderr), plain lines otherwise.
    pub fn new() -> Display {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Display {
            bars,
            by_status: HashMap::new(),
            last_status: String::new(),
        }
    }

    /// Shows one step.
    pub fn show(&mut self, p: Progress) {
        let Some(bars) = &self.bars else {
            if p.status != self.last_status {
                let _ = writeln!(std::io::stderr(), "{}", p.status);
                self.last_status = p.status;
            }
            return;
        };
        if let Some(total) = p.total {
            let present = p.completed == Some(total);
            let bar = self.by_status.entry(p.status.clone()).or_insert_with(|| {
                let bar = bars.add(ProgressBar::new(total));
                // A layer the store has already: no speed or ETA to show.
                bar.set_style(bar_style(!present));
                bar.set_prefix(p.status.clone());
                bar
            });
            bar.set_length(total);
            bar.set_position(p.completed.unwrap_or(0));
            return;
        }
        if p.status != self.last_status {
            let line = bars.add(ProgressBar::new_spinner());
            line.set_style(
                ProgressStyle::with_template("{msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            line.finish_with_message(p.status.clone());
            self.last_status = p.status;
        }
    }

    /// Leaves the bars drawn in their final state.
    pub fn finish(&mut self) {
        for bar in self.by_status.values() {
            bar.abandon();
        }
    }
}

/// `pulling 8eeb52dfb3bb: 100% ▕██████▏ 2.0 GB/2.0 GB  31 MB/s  1m02s`,
/// without the speed and ETA unless `transfer`.
fn bar_style(transfer: bool) -> ProgressStyle {
    let template = if transfer {
        "{prefix}: {percent:>3}% ▕{wide_bar}▏ {binary_bytes:>10}/{binary_total_bytes:<10} {binary_bytes_per_sec:>12} {eta}"
    } else {
        "{prefix}: {percent:>3}% ▕{wide_bar}▏ {binary_bytes:>10}/{binary_total_bytes:<10}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("██ ")
}
