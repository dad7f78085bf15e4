//! `hearth rm NAME...`: removes models, then the blobs no other model uses.

use store::ModelName;

/// Arguments of `hearth rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Models to remove.
    #[arg(required = true)]
    names: Vec<String>,
}

/// Removes each model in turn, stopping at the first failure.
pub fn run(args: &RmArgs) -> anyhow::Result<()> {
    // Validate every name before removing anything.
    let names = args
        .names
        .iter()
        .map(|n| ModelName::parse(n))
        .collect::<Result<Vec<_>, _>>()?;
    let client = super::client::Client::detect();
    let store = crate::builtin::open_store()?;
    for (name, arg) in names.iter().zip(&args.names) {
        match &client {
            Some(client) => super::remote::delete(client, arg)?,
            None => store.delete(name)?,
        }
        if store.is_builtin(name) {
            println!("deleted '{arg}' (built in: `hearth run {arg}` brings it back)");
        } else {
            println!("deleted '{arg}'");
        }
    }
    Ok(())
}
