//! Runs a model through a long context and reports resident memory.
//!
//! ```text
//! cargo run --release -p model --example long_context -- MODEL.gguf [N_CTX]
//! ```
//! Prefills `N_CTX - 64` tokens (default context 4096) in chunks of 512, decodes
//! 64 more one at a time, and prints the file size, the KV cache size, the
//! resident set after each stage (VmRSS split into anonymous memory, i.e. the
//! repacked weights, buffers and cache, and mapped file pages) and the peak
//! (VmHWM) from /proc/self/status (Linux).

use std::path::Path;
use std::time::Instant;

use model::{LoadOptions, Logits, Model};

/// The value of `key` in /proc/self/status (e.g. `"VmRSS:   1234 kB"` -> 1234 kB).
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// One line of resident-memory figures in MiB, labelled `stage`.
fn report(stage: &str) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mib =
        |key| status_kib(&status, key).map_or_else(|| "n/a".to_owned(), |k| (k >> 10).to_string());
    println!(
        "{stage:<14} VmRSS {} MiB (anon {}, file {}), VmHWM {} MiB",
        mib("VmRSS:"),
        mib("RssAnon:"),
        mib("RssFile:"),
        mib("VmHWM:")
    );
}

fn main() -> Result<(), model::ModelError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .expect("usage: long_context MODEL.gguf [N_CTX]");
    let n_ctx: usize = args.get(1).map_or(4096, |s| s.parse().expect("N_CTX"));
    let start = Instant::now();
    let gguf = gguf::GgufModel::open(Path::new(path))?;
    report("opened");
    let model = Model::from_gguf(gguf, &LoadOptions::default())?;
    let load = start.elapsed();
    report("loaded");
    let info = model.info().clone();
    let mut state = model.new_state(n_ctx)?;
    report("state");
    let n_decode = 64.min(n_ctx / 2);
    let prompt: Vec<u32> = (0..n_ctx - n_decode)
        .map(|i| (i * 7919 % info.n_vocab) as u32)
        .collect();
    let start = Instant::now();
    for chunk in prompt.chunks(512) {
        model.forward(&mut state, chunk, Logits::Last)?;
    }
    let prefill = start.elapsed();
    report("prefilled");
    let mut next = 1u32;
    let start = Instant::now();
    for _ in 0..n_decode {
        let logits = model.forward(&mut state, &[next], Logits::Last)?;
        next = model::ops::argmax(logits) as u32;
    }
    let decode = start.elapsed();
    report("decoded");
    println!(
        "n_past {} of n_ctx {n_ctx}, {} threads",
        state.n_past(),
        model.n_threads()
    );
    println!(
        "load {:.1} s; prefill {} tokens in {:.1} s ({:.1} tok/s); decode {n_decode} tokens in {:.1} s ({:.2} tok/s)",
        load.as_secs_f64(),
        prompt.len(),
        prefill.as_secs_f64(),
        prompt.len() as f64 / prefill.as_secs_f64(),
        decode.as_secs_f64(),
        n_decode as f64 / decode.as_secs_f64()
    );
    println!(
        "file {} MiB, KV cache {} MiB, file + KV {} MiB",
        info.file_size >> 20,
        state.kv_size_bytes() >> 20,
        (info.file_size + state.kv_size_bytes() as u64) >> 20
    );
    Ok(())
}
