//! `hearth cp SRC DST`: gives a model another name (a tag is a pointer to a
//! manifest: no data is copied).

use store::ModelName;

/// Arguments of `hearth cp`.
#[derive(Debug, clap::Args)]
pub struct CpArgs {
    /// The existing model.
    source: String,
    /// The new name (replaced if it exists).
    destination: String,
}

/// Copies the manifest.
pub fn run(args: &CpArgs) -> anyhow::Result<()> {
    let src = ModelName::parse(&args.source)?;
    let dst = ModelName::parse(&args.destination)?;
    match super::client::Client::detect() {
        Some(client) => super::remote::copy(&client, &args.source, &args.destination)?,
        None => crate::builtin::open_store()?.copy(&src, &dst)?,
    }
    println!("copied '{}' to '{}'", args.source, args.destination);
    Ok(())
}
