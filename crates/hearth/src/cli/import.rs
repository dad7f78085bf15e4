//! `hearth import --from-ollama [DIR]`: brings the models of an Ollama store
//! (default `$OLLAMA_MODELS`, else `~/.ollama/models`) into hearth's store by
//! hard link, so models already downloaded are usable at once.

use std::path::PathBuf;

use anyhow::bail;

/// Arguments of `hearth import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Import an Ollama store: DIR holds `blobs/` and `manifests/` (default
    /// `$OLLAMA_MODELS`, else `~/.ollama/models`).
    #[arg(long = "from-ollama", value_name = "DIR")]
    from_ollama: Option<Option<PathBuf>>,
}

/// The Ollama store to read: the one given, else Ollama's own default.
fn ollama_dir(given: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    if let Some(given) = given {
        return Ok(given.to_owned());
    }
    if let Some(dir) = std::env::var_os("OLLAMA_MODELS").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".ollama").join("models")),
        None => bail!("no home directory: give the Ollama models directory"),
    }
}

/// Imports the models and prints what was done.
pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    let Some(given) = &args.from_ollama else {
        bail!("say what to import: hearth import --from-ollama [DIR]");
    };
    let dir = ollama_dir(given.as_deref())?;
    let store = crate::builtin::open_store()?;
    let report = store.import_ollama(&dir, &mut |_| {})?;
    for name in &report.imported {
        println!("imported {}", name.display_short());
    }
    for (name, reason) in &report.skipped {
        eprintln!("skipped {}: {reason}", name.display_short());
    }
    println!(
        "{} models imported from {}",
        report.imported.len(),
        dir.display()
    );
    Ok(())
}
