//! `hearth stop MODEL`: asks the running server to unload a model now
//! (`keep_alive: 0`, as `ollama stop` does).

use anyhow::bail;
use serde_json::json;

use super::client::{Client, base_url};

/// Arguments of `hearth stop`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// The model to unload.
    model: String,
}

/// Unloads the model.
pub fn run(args: &StopArgs) -> anyhow::Result<()> {
    let Some(client) = Client::detect() else {
        bail!(
            "no hearth server is running at {}; nothing is loaded",
            base_url()
        );
    };
    client.post(
        "/api/generate",
        &json!({"model": args.model, "keep_alive": 0}),
    )?;
    Ok(())
}
