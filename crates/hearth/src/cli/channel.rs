//! `hearth promote MODEL CHANNEL [--note TEXT]`, `hearth rollback CHANNEL`
//! and `hearth history CHANNEL`: channels (a model name such as `prod` that
//! is re-pointed at a tested model, with its history), through a running
//! server's `/api/channels` endpoints when one answers, else on the store.

use serde_json::{Value, json};

/// Arguments of `hearth promote`.
#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// The model to promote.
    model: String,
    /// The channel to point at it (`prod`, `canary`).
    channel: String,
    /// Why (kept in the channel's history).
    #[arg(long)]
    note: Option<String>,
}

/// Arguments of `hearth rollback` and `hearth history`.
#[derive(Debug, clap::Args)]
pub struct ChannelArgs {
    /// The channel.
    channel: String,
}

fn local<T>(result: Result<T, server::ApiError>) -> anyhow::Result<T> {
    result.map_err(|e| anyhow::anyhow!("{}", e.message))
}

/// Prints one history entry (as the API shows it).
fn print_entry(entry: &Value) {
    let text = |k: &str| entry[k].as_str().unwrap_or("-").to_owned();
    let short = |k: &str| {
        let d = text(k);
        d.strip_prefix("sha256:")
            .map_or(d.clone(), |h| h.chars().take(12).collect())
    };
    println!(
        "{}\t{}\t{}\t{} -> {}\t{}{}",
        text("time"),
        text("action"),
        text("model"),
        short("previous_digest"),
        short("digest"),
        text("note"),
        if entry["rolled_back"].as_bool() == Some(true) {
            "\t(rolled back)"
        } else {
            ""
        }
    );
}

/// Runs `hearth promote`.
pub fn promote(args: &PromoteArgs) -> anyhow::Result<()> {
    let entry = match super::client::Client::detect() {
        Some(client) => client.post(
            "/api/channels/promote",
            &json!({ "model": args.model, "channel": args.channel, "note": args.note }),
        )?,
        None => {
            let store = crate::builtin::open_store()?;
            local(server::route::channels::promote(
                &store,
                &args.model,
                &args.channel,
                args.note.as_deref(),
            ))?
            .view()
        }
    };
    println!(
        "promoted '{}' to '{}' ({})",
        args.model,
        args.channel,
        entry["digest"].as_str().unwrap_or_default()
    );
    Ok(())
}

/// Runs `hearth rollback`.
pub fn rollback(args: &ChannelArgs) -> anyhow::Result<()> {
    let entry = match super::client::Client::detect() {
        Some(client) => client.post(
            "/api/channels/rollback",
            &json!({ "channel": args.channel }),
        )?,
        None => {
            let store = crate::builtin::open_store()?;
            local(server::route::channels::rollback(&store, &args.channel))?.view()
        }
    };
    println!(
        "rolled '{}' back to {}",
        args.channel,
        entry["digest"].as_str().unwrap_or_default()
    );
    Ok(())
}

/// Runs `hearth history`.
pub fn history(args: &ChannelArgs) -> anyhow::Result<()> {
    let entries = match super::client::Client::detect() {
        Some(client) => {
            let path = format!("/api/channels/{}/history", args.channel);
            client.get(&path)?["history"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }
        None => {
            let store = crate::builtin::open_store()?;
            local(server::route::channels::history(&store, &args.channel))?
                .iter()
                .map(server::route::channels::Entry::view)
                .collect()
        }
    };
    println!("TIME\tACTION\tMODEL\tDIGEST (previous -> new)\tNOTE");
    for entry in &entries {
        print_entry(entry);
    }
    Ok(())
}
