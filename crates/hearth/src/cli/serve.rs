//! `hearth serve`: the Ollama-compatible HTTP API (see the `server` crate).
//!
//! Settings come from the environment, as Ollama's do: `HEARTH_HOST` (address,
//! default 127.0.0.1:11434), `HEARTH_MODELS` (the store), `HEARTH_ORIGINS`
//! (extra CORS origins), `HEARTH_NUM_PARALLEL`, `HEARTH_MAX_QUEUE`,
//! `HEARTH_MAX_LOADED_MODELS`, `HEARTH_KEEP_ALIVE`, `HEARTH_MAX_MEMORY`,
//! `HEARTH_NUM_THREAD`, `HEARTH_LOG_PROMPTS` (log prompt text; off by
//! default) and `HEARTH_LOG` (log filter, default `info`).

use anyhow::Context;

/// Arguments of `hearth serve` (none: it is configured by the environment).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(_args: &ServeArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = server::Config::from_env()?;
    let store = crate::builtin::open_store()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let host = config.host.clone();
    runtime
        .block_on(server::serve(store, config, server::shutdown_signal()))
        .with_context(|| format!("serving on {host}"))
}
