//! The built-in model `hearth-tiny`: a small model trained by
//! tools/train-tiny on generated arithmetic and fact tables (see
//! models/hearth-tiny/MODEL_CARD.md), compiled into the binary so that a
//! fresh machine runs a model offline with no pull.
//!
//! Every store the CLI or the server opens gets it as `hearth-tiny:latest`,
//! created with [`PARAMETERS`]:
//!
//! - `temperature 0`: greedy decoding, so its answers are deterministic;
//! - `repeat_penalty 1`: no repeat penalty. The model answers by copying
//!   numbers from the question ("Compare 49 and 56." → "56 is bigger than
//!   49."), and the default sampler (Ollama's `repeat_penalty 1.1` over the
//!   last 64 tokens, applied at temperature 0 too) penalises exactly those
//!   tokens, which flips such answers to a wrong number. Without the penalty
//!   hearth's answers equal the PyTorch model's on all 895 questions of the
//!   held-out set (tools/train-tiny's eval).
//!
//! `hearth rm hearth-tiny` removes it like any model, and the store remembers
//! that: it stays out of listings until the name is used again (`hearth run
//! hearth-tiny`). A store where an older hearth installed
//! an older version (other weights or parameters) gets this one when this
//! hearth opens it, unless the user replaced the model (see the store crate's
//! builtin.rs).

use anyhow::Context as _;
use store::{ModelName, Parameters, Store};

/// The name the built-in model has in every store.
pub const NAME: &str = "hearth-tiny";

/// The model's GGUF file.
static GGUF: &[u8] = include_bytes!("../../../models/hearth-tiny/hearth-tiny.gguf");

/// The Modelfile parameters the model is created with (why: module docs).
pub const PARAMETERS: &[(&str, &str)] = &[("temperature", "0"), ("repeat_penalty", "1")];

/// The store `HEARTH_MODELS` (or `OLLAMA_MODELS`) names, else the config
/// file's `models`, else the platform's default (see [`store::default_root`]).
fn open_configured() -> anyhow::Result<Store> {
    let from_env = ["HEARTH_MODELS", "OLLAMA_MODELS"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|p| !p.is_empty()));
    if !from_env && let Some(root) = server::config_file::ConfigFile::from_env()?.get("models") {
        return Ok(Store::open(root)?);
    }
    Ok(Store::from_env()?)
}

/// Opens the store (see [`open_configured`]) with the built-in model
/// registered and, if it has no manifest yet, imported.
pub fn open_store() -> anyhow::Result<Store> {
    let mut params = Parameters::new();
    for (name, value) in PARAMETERS {
        params.set(name, value).map_err(anyhow::Error::msg)?;
    }
    let store = open_configured()?.with_builtin_bytes(ModelName::parse(NAME)?, GGUF, params);
    store
        .install_builtins()
        .with_context(|| format!("installing the built-in model {NAME}"))?;
    Ok(store)
}
