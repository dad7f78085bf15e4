//! `hearth push NAME [--insecure]`: uploads a model of the store to the
//! registry its name's host names (`host[:port]/namespace/model:tag`),
//! through a running server's `/api/push` when there is one, drawing the
//! same progress as `hearth pull`.

use super::pull::Display;

/// Arguments of `hearth push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The model, named with its registry: `host[:port]/namespace/model:tag`
    /// (copy a model to such a name first with `hearth cp`).
    name: String,
    /// Allow plain http (a registry without TLS).
    #[arg(long)]
    insecure: bool,
}

/// Pushes the model.
pub fn run(args: &PushArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !server::route::offline_from_env(),
        "HEARTH_OFFLINE=1 forbids outbound connections: push is off"
    );
    let mut display = Display::new();
    let result = match super::client::Client::detect() {
        Some(client) => {
            super::remote::transfer(&client, "/api/push", &args.name, args.insecure, &mut |p| {
                display.show(p)
            })
        }
        None => {
            let store = crate::builtin::open_store()?;
            let options = server::api::pull::pull_options(args.insecure);
            store
                .push(&args.name, &options, &mut |p| display.show(p))
                .map_err(anyhow::Error::from)
        }
    };
    display.finish();
    result
}
