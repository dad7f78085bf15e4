//! `hearth serve`: the Ollama- and OpenAI-compatible HTTP APIs (see the
//! `server` crate), configured by the environment as Ollama is; the settings
//! and their Ollama twins are listed in `hearth serve --help` ([`ENV_HELP`]).

use anyhow::Context;

/// The settings `hearth serve` reads, for `--help`. Each `HEARTH_*` falls back
/// to its `OLLAMA_*` twin when unset (server::config::TWINS).
const ENV_HELP: &str = "\
Environment (each HEARTH_* falls back to its OLLAMA_* twin when unset):
  HEARTH_HOST               OLLAMA_HOST               address to bind (127.0.0.1:11434)
  HEARTH_MODELS             OLLAMA_MODELS             the model store's directory
  HEARTH_ORIGINS            OLLAMA_ORIGINS            extra allowed CORS origins (comma-separated)
  HEARTH_NUM_PARALLEL       OLLAMA_NUM_PARALLEL       sequences each model serves at once (default: what the KV budget holds, 4-16)
  HEARTH_MAX_QUEUE          OLLAMA_MAX_QUEUE          waiting requests per model before 503 (512)
  HEARTH_MAX_LOADED_MODELS  OLLAMA_MAX_LOADED_MODELS  models loaded at once (3)
  HEARTH_KEEP_ALIVE         OLLAMA_KEEP_ALIVE         how long an idle model stays loaded (5m)
  HEARTH_CONTEXT_LENGTH     OLLAMA_CONTEXT_LENGTH     default context, num_ctx (4096)
  HEARTH_KV_CACHE_TYPE      OLLAMA_KV_CACHE_TYPE      KV cache type: f16 (default), q8_0 or q4_0
  HEARTH_FLASH_ATTENTION    OLLAMA_FLASH_ATTENTION    accepted; the CPU attention is the same either way
  HEARTH_NUM_THREAD                                   threads per model (all cores)
  HEARTH_MAX_MEMORY                                   memory cap for loaded models (8GiB, ...)
  HEARTH_ALLOWED_HOSTS                                Host names a loopback server answers to besides local ones
  HEARTH_HEADER_TIMEOUT                               longest wait for request headers or an idle connection (10s)
  HEARTH_BODY_TIMEOUT                                 longest pause inside a request body (30s)
  HEARTH_MAX_CONNECTIONS                              connections served at once (1024)
  HEARTH_DRAIN_TIMEOUT                                on SIGTERM, how long requests in flight may finish (30s)
  HEARTH_MAX_BLOB_SIZE                                largest blob /api/blobs stores (also capped by free disk)
  HEARTH_MAX_PROMPT_TOKENS                            longest prompt a request may bring (unlimited)
  HEARTH_MAX_NUM_PREDICT                              most tokens a request may generate (unlimited)
  HEARTH_KV_CACHE_MEMORY                              each model's KV cache, shared by its sequences (4GiB, ...)
  HEARTH_DETERMINISTIC                                1: output independent of what is batched with it (slower)
  HEARTH_LOG_PROMPTS                                  1: log prompt text (never logged otherwise)
  HEARTH_API_KEY                                      require this key (an admin key); more: hearth keys add
  HEARTH_TLS_CERT, HEARTH_TLS_KEY                     PEM certificate chain and key: serve HTTPS only
  HEARTH_CONFIG                                       config file (~/.hearth/config.toml): these settings in
                                                      lower case without HEARTH_, and [[keys]]
  HEARTH_LOG                                          log filter (info)
  HEARTH_LOG_FORMAT                                   text, or json: one JSON object a line
  HEARTH_AUDIT_LOG                                    file for one JSON line per request (counts, never text)
  HEARTH_AUDIT_LOG_MAX_SIZE                           rotate the audit log past this size (100MiB, 5 kept)";

/// Arguments of `hearth serve` (none: it is configured by the environment).
#[derive(Debug, clap::Args)]
#[command(after_help = ENV_HELP)]
pub struct ServeArgs {}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(_args: &ServeArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let format = server::config::env_setting("LOG_FORMAT")
        .map(|(_, v)| v)
        .or_else(|| {
            server::config_file::ConfigFile::from_env()
                .ok()?
                .get("log_format")
        });
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format.as_deref().map(str::trim) {
        None | Some("text") => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One JSON object a line, for log collectors.
        Some("json") => logs.json().flatten_event(true).init(),
        Some(other) => anyhow::bail!("HEARTH_LOG_FORMAT={other:?}: expected text or json"),
    }
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

#[cfg(test)]
mod tests {
    use super::ENV_HELP;

    #[test]
    fn help_lists_every_setting_with_its_ollama_twin() {
        for suffix in server::config::TWINS {
            let line = ENV_HELP
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("HEARTH_{suffix} ")))
                .unwrap_or_else(|| panic!("HEARTH_{suffix} missing"));
            assert!(line.contains(&format!("OLLAMA_{suffix} ")), "{line}");
        }
    }
}
