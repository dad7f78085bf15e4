//! Subcommands. Each lives in its own module with a clap `Args` struct and a
//! `run` function; add a variant to [`Command`] to add one.

use clap::{Parser, Subcommand};

mod format;
mod show;
mod tokenize;

/// Local LLM runtime: run, serve and manage GGUF models.
#[derive(Debug, Parser)]
#[command(name = "hearth", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show a GGUF model's architecture, size, quantization and tokenizer.
    Show(show::ShowArgs),
    /// Print the token ids of a text, like llama-tokenize.
    Tokenize(tokenize::TokenizeArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Show(args) => show::run(&args),
        Command::Tokenize(args) => tokenize::run(&args),
    }
}

/// Whether `e` comes from writing to a closed pipe (`hearth show x | head`), which
/// ends the program quietly.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
