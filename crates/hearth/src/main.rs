//! The `hearth` command line: parses arguments, runs the command, maps errors to
//! an `error: ...` line on stderr and a non-zero exit status.

use std::process::ExitCode;

use clap::Parser;

mod builtin;
mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse_from(cli::llama_bench_spellings(std::env::args_os().collect()));
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
