//! Runs a model through a long context and reports peak resident memory.
//!
//! ```text
//! cargo run --release -p model --example long_context -- MODEL.gguf [N_CTX]
//! ```
//! Prefills `N_CTX - 64` tokens (default context 4096) in chunks of 512, decodes
//! 64 more one at a time, and prints the file size, the KV cache size and VmRSS /
//! VmHWM from /proc/self/status (Linux).

use std::path::Path;
use std::time::Instant;

use model::{Logits, Model};

fn status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .map(|l| l.trim().to_owned())
        })
        .unwrap_or_else(|| format!("{key} n/a"))
}

fn main() -> Result<(), model::ModelError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .expect("usage: long_context MODEL.gguf [N_CTX]");
    let n_ctx: usize = args.get(1).map_or(4096, |s| s.parse().expect("N_CTX"));
    let model = Model::load(Path::new(path))?;
    let info = model.info().clone();
    let mut state = model.new_state(n_ctx)?;
    let n_decode = 64.min(n_ctx / 2);
    let prompt: Vec<u32> = (0..n_ctx - n_decode)
        .map(|i| (i * 7919 % info.n_vocab) as u32)
        .collect();
    let start = Instant::now();
    for chunk in prompt.chunks(512) {
        model.forward(&mut state, chunk, Logits::Last)?;
    }
    let prefill = start.elapsed();
    let mut next = 1u32;
    let start = Instant::now();
    for _ in 0..n_decode {
        let logits = model.forward(&mut state, &[next], Logits::Last)?;
        next = model::ops::argmax(logits) as u32;
    }
    let decode = start.elapsed();
    println!(
        "n_past {} of n_ctx {n_ctx}, {} threads",
        state.n_past(),
        model.n_threads()
    );
    println!(
        "prefill {} tokens in {:.1} s ({:.1} tok/s); decode {n_decode} tokens in {:.1} s ({:.2} tok/s)",
        prompt.len(),
        prefill.as_secs_f64(),
        prompt.len() as f64 / prefill.as_secs_f64(),
        decode.as_secs_f64(),
        n_decode as f64 / decode.as_secs_f64()
    );
    println!(
        "file {} MiB, KV cache {} MiB",
        info.file_size >> 20,
        state.kv_size_bytes() >> 20
    );
    println!("{}\n{}", status("VmRSS"), status("VmHWM"));
    Ok(())
}
