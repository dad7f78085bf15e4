//! Writes a synthetic random-weight model (see `model::synthetic`).
//!
//! ```text
//! cargo run --release -p model --example synth -- PRESET OUT.gguf [TYPE]
//! ```
//! PRESET: tiny-llama, tiny-moe, tiny-swa, tiny-qwen2, tiny-qwen3, tiny-phi3,
//! tiny-gemma2, tiny-gemma3, tiny-qwen3moe, tiny-gemma, tiny-starcoder2,
//! tiny-command-r, tiny-cohere2, tiny-olmo2, tiny-granite, tiny-mistral3,
//! llama-3.2-1b, llama-3.1-8b, mixtral-8x7b, qwen2.5-0.5b, qwen3-30b-a3b,
//! gemma-2b, starcoder2-3b, command-r-35b, command-r7b, olmo2-1b, granite-3-2b,
//! ministral-3-8b, tiny-gpt-oss, gpt-oss-20b, tiny-bloom, bloom-560m.
//! TYPE: the format of every matrix (F32 by default; F16, Q4_0, Q8_0, Q4_K, ...).

use std::path::Path;
use std::process::ExitCode;

use gguf::TensorType;
use model::synthetic::Spec;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(preset), Some(out)) = (args.first(), args.get(1)) else {
        eprintln!("usage: synth PRESET OUT.gguf [TYPE]");
        return ExitCode::FAILURE;
    };
    let Some(spec) = Spec::preset(preset) else {
        eprintln!("unknown preset '{preset}'");
        return ExitCode::FAILURE;
    };
    let ty = match args.get(2) {
        None => TensorType::F32,
        Some(name) => match (0..64)
            .filter_map(TensorType::from_id)
            .find(|t| t.name().eq_ignore_ascii_case(name))
        {
            Some(t) => t,
            None => {
                eprintln!("unknown tensor type '{name}'");
                return ExitCode::FAILURE;
            }
        },
    };
    match spec.write(Path::new(out), ty) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
