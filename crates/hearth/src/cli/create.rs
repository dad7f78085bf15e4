//! `hearth create NAME [-f Modelfile] [-q PRESET]`: builds a model in the
//! store from a Modelfile, quantizing its weights on the way in if asked,
//! printing progress lines as `ollama create` does.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use store::{ModelName, Modelfile, Progress};

/// Arguments of `hearth create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name of the model to create, e.g. `mymodel` or `me/mymodel:v1`.
    name: String,
    /// The Modelfile (FROM a GGUF file or an existing model, PARAMETER,
    /// TEMPLATE, SYSTEM, MESSAGE, LICENSE).
    #[arg(short, long, default_value = "Modelfile")]
    file: PathBuf,
    /// Quantize the weights (F16, BF16 or F32) to this llama-quantize preset
    /// on the way into the store, e.g. q4_K_M or q8_0.
    #[arg(short, long, value_name = "PRESET")]
    quantize: Option<String>,
}

/// Parses the Modelfile and creates the model.
pub fn run(args: &CreateArgs) -> anyhow::Result<()> {
    let name = ModelName::parse(&args.name)?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let mut modelfile =
        Modelfile::parse(&text).with_context(|| format!("{}", args.file.display()))?;
    modelfile.quantize = args.quantize.clone();
    // A template that cannot be rendered is refused now, not at every request.
    if let Some(template) = &modelfile.template {
        model::chat::ChatTemplate::new(template)
            .with_context(|| format!("{}: invalid TEMPLATE", args.file.display()))?;
    }
    let mut stderr = std::io::stderr().lock();
    for warning in &modelfile.warnings {
        let _ = writeln!(stderr, "warning: {warning}");
    }
    let base_dir = match args.file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if let Some(client) = super::client::Client::detect() {
        return super::remote::create(&client, &args.name, &modelfile, base_dir);
    }
    let store = crate::builtin::open_store()?;
    let mut last_status = String::new();
    // One line per step; byte counts only matter to interactive displays.
    let mut progress = |p: Progress| {
        if p.status != last_status {
            let _ = writeln!(stderr, "{}", p.status);
            last_status = p.status;
        }
    };
    store.create(&name, &modelfile, base_dir, &mut progress)?;
    Ok(())
}
