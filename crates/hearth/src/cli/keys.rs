//! `hearth keys add NAME [--models GLOB,...] [--admin] [--local-only]` and `hearth keys list`:
//! API keys in the config file (`HEARTH_CONFIG` or `~/.hearth/config.toml`).
//! A new key is printed once; the file keeps only its SHA-256.

use anyhow::Context as _;
use server::config_file::{ConfigFile, KeyEntry};

/// Arguments of `hearth keys`.
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Create a key, print it once and store its SHA-256 in the config file.
    Add {
        /// Who the key is for (shown in logs).
        name: String,
        /// Models the key may use, as globs (default: every model).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Allow managing models (create, delete, copy, pull, push).
        #[arg(long)]
        admin: bool,
        /// Keep every request made with the key on this machine (never
        /// routed to an upstream).
        #[arg(long)]
        local_only: bool,
        /// Requests per minute (default: no limit).
        #[arg(long)]
        requests_per_minute: Option<u64>,
        /// Prompt and generated tokens per minute (default: no limit).
        #[arg(long)]
        tokens_per_minute: Option<u64>,
        /// Requests in flight at once (default: no limit).
        #[arg(long)]
        max_concurrent: Option<u64>,
    },
    /// List the keys of the config file (names and permissions, never keys).
    List,
}

/// Runs `hearth keys`.
pub fn run(args: &KeysArgs) -> anyhow::Result<()> {
    let path = server::config_file::path().context("no home directory; set HEARTH_CONFIG")?;
    let mut file = ConfigFile::load(&path)?;
    match &args.command {
        KeysCommand::Add {
            name,
            models,
            admin,
            local_only,
            requests_per_minute,
            tokens_per_minute,
            max_concurrent,
        } => {
            anyhow::ensure!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)),
                "a key name is letters, digits and - _ . @"
            );
            let key = server::auth::new_key().context("reading random bytes")?;
            let entry = KeyEntry {
                name: name.clone(),
                sha256: server::auth::key_hash(&key),
                models: (!models.is_empty()).then(|| models.clone()),
                admin: *admin,
                local_only: *local_only,
                requests_per_minute: *requests_per_minute,
                tokens_per_minute: *tokens_per_minute,
                max_concurrent: *max_concurrent,
            };
            file.add_key(&entry)?;
            eprintln!(
                "added key '{name}' to {} (restart hearth serve to use it); it is shown only now:",
                path.display()
            );
            println!("{key}");
        }
        KeysCommand::List => {
            println!("NAME\tADMIN\tLOCAL ONLY\tMODELS\tREQUESTS/MIN\tTOKENS/MIN\tCONCURRENT");
            for k in file.keys()? {
                let limit = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |n| n.to_string());
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    k.name,
                    if k.admin { "yes" } else { "no" },
                    if k.local_only { "yes" } else { "no" },
                    k.models.map_or_else(|| "*".to_owned(), |m| m.join(",")),
                    limit(k.requests_per_minute),
                    limit(k.tokens_per_minute),
                    limit(k.max_concurrent)
                );
            }
        }
    }
    Ok(())
}
