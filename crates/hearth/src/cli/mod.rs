//! Subcommands. Each lives in its own module with a clap `Args` struct and a
//! `run` function; add a variant to [`Command`] to add one.

use clap::{Parser, Subcommand};

pub use bench::llama_bench_spellings;

mod bench;
mod bench_serve;
mod channel;
mod client;
mod cost;
mod cp;
mod create;
mod estimate;
mod eval;
mod export;
mod format;
mod imatrix;
mod import;
mod keys;
mod list;
mod logits;
mod model_arg;
mod plot;
mod ps;
mod pull;
mod push;
mod quantize;
mod remote;
mod rm;
mod run;
mod serve;
mod show;
mod show_model;
mod stop;
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
    /// Measure prompt-processing and generation speed, like llama-bench
    /// (`bench serve`: a running server under concurrent clients).
    Bench(bench::BenchArgs),
    /// Copy a model: a new name (tag) for the same manifest.
    Cp(cp::CpArgs),
    /// Local cost per million tokens against cloud prices, and the break-even month.
    Cost(cost::CostArgs),
    /// Create a model in the store from a Modelfile.
    Create(create::CreateArgs),
    /// Memory a model needs and its speed on this machine, from the GGUF header.
    Estimate(estimate::EstimateArgs),
    /// Measure a model's quality: perplexity, KL divergence against a base, needle retrieval.
    Eval(eval::EvalArgs),
    /// Write a model with its LoRA adapters merged into the weights (llama-export-lora).
    Export(export::ExportArgs),
    /// Show a channel's history: each promotion and rollback, with digests.
    History(channel::ChannelArgs),
    /// Add or list API keys (the config file keeps their SHA-256 only).
    Keys(keys::KeysArgs),
    /// Compute an importance matrix (llama-imatrix's format) for `quantize --imatrix`.
    Imatrix(imatrix::ImatrixArgs),
    /// Import the models of an Ollama store (by hard link).
    Import(import::ImportArgs),
    /// List the models in the store.
    #[command(alias = "ls")]
    List(list::ListArgs),
    /// List the models a running server has loaded.
    Ps(ps::PsArgs),
    /// Pull a model from a registry (Ollama's, Hugging Face, any other) or a GGUF URL.
    Pull(pull::PullArgs),
    /// Point a channel (a model name such as `prod`) at a model, recording it.
    Promote(channel::PromoteArgs),
    /// Push a model of the store to a registry (its name's host).
    Push(push::PushArgs),
    /// Quantize a GGUF model as llama-quantize does (same presets, types and bytes).
    Quantize(quantize::QuantizeArgs),
    /// Point a channel back at its target before the latest promotion.
    Rollback(channel::ChannelArgs),
    /// Remove models from the store, and the data no other model uses.
    Rm(rm::RmArgs),
    /// Write the raw logits of every position of a token sequence (conformance checks).
    Logits(logits::LogitsArgs),
    /// Chat with a model, or answer one prompt and exit.
    Run(run::RunArgs),
    /// Serve the Ollama and OpenAI HTTP APIs (configured by HEARTH_* environment variables).
    #[command(alias = "start")]
    Serve(serve::ServeArgs),
    /// Show a model of the store, or a GGUF file's architecture, size, quantization and tokenizer.
    Show(show::ShowArgs),
    /// Unload a model from a running server.
    Stop(stop::StopArgs),
    /// Print the token ids of a text, like llama-tokenize.
    Tokenize(tokenize::TokenizeArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::Cp(args) => cp::run(&args),
        Command::Cost(args) => cost::run(&args),
        Command::Create(args) => create::run(&args),
        Command::Estimate(args) => estimate::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Export(args) => export::run(&args),
        Command::History(args) => channel::history(&args),
        Command::Keys(args) => keys::run(&args),
        Command::Imatrix(args) => imatrix::run(&args),
        Command::Import(args) => import::run(&args),
        Command::List(args) => list::run(&args),
        Command::Ps(args) => ps::run(&args),
        Command::Pull(args) => pull::run(&args),
        Command::Promote(args) => channel::promote(&args),
        Command::Push(args) => push::run(&args),
        Command::Quantize(args) => quantize::run(&args),
        Command::Rm(args) => rm::run(&args),
        Command::Rollback(args) => channel::rollback(&args),
        Command::Logits(args) => logits::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Show(args) => show::run(&args),
        Command::Stop(args) => stop::run(&args),
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
