//! The built-in model `hearth-tiny`: a small model trained by
//! tools/train-tiny on generated arithmetic and fact tables (see
//! models/hearth-tiny/MODEL_CARD.md), compiled into the binary so that a
//! fresh machine runs a model offline with no pull.
//!
//! Every store the CLI or the server opens gets it as `hearth-tiny:latest`
//! (created with `PARAMETER temperature 0`, so its answers are
//! deterministic). `hearth rm hearth-tiny` removes it like any model; it is
//! imported again the next time hearth opens the store.

use anyhow::Context as _;
use store::{ModelName, Parameters, Store};

/// The name the built-in model has in every store.
pub const NAME: &str = "hearth-tiny";

/// The model's GGUF file.
static GGUF: &[u8] = include_bytes!("../../../models/hearth-tiny/hearth-tiny.gguf");

/// Opens the store named by `HEARTH_MODELS` (see [`store::default_root`]) with
/// the built-in model registered and, if it has no manifest yet, imported.
pub fn open_store() -> anyhow::Result<Store> {
    let mut params = Parameters::new();
    params.set("temperature", "0").map_err(anyhow::Error::msg)?;
    let store = Store::from_env()?.with_builtin_bytes(ModelName::parse(NAME)?, GGUF, params);
    store
        .install_builtins()
        .with_context(|| format!("installing the built-in model {NAME}"))?;
    Ok(store)
}
