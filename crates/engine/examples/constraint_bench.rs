//! What constrained decoding costs: the grammar mask per token, and decode
//! speed with a nested JSON Schema against without one.
//!
//! ```text
//! cargo run --release -p engine --example constraint_bench -- MODEL.gguf [VOCAB.gguf] [-n TOKENS] [-r ROUNDS] [-t THREADS]
//! ```
//! MODEL.gguf gives the weights; VOCAB.gguf the tokenizer (default: the
//! model's own). A random-weight Llama-3.2-1B-shape file (the `synth`
//! example) with llama.cpp's `ggml-vocab-llama-bpe.gguf` (the real Llama 3
//! vocabulary, the same 128256 tokens) measures the real vocabulary's masks.
//!
//! 1. The vocabulary's trie: built once per model, timed.
//! 2. The mask alone: a random walk through the schema's masks (a uniformly
//!    chosen allowed token each step), the time of every mask computed.
//! 3. Decode: the batching scheduler generating TOKENS tokens at temperature
//!    1 (fixed seeds), one sequence, free and constrained rounds alternating;
//!    tokens/s from the engine's own timings (first sampled token to the end:
//!    forward passes, masks, sampling).

use std::ops::ControlFlow;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::constraint::ConstraintEnv;
use engine::scheduler::{Scheduler, SchedulerConfig, SeqEvent};
use engine::{Constraint, GenerateResult, Grammar, Options};
use model::tokenizer::Tokenizer;
use model::{LoadOptions, Model};

/// A nested schema: objects in an array in an object, enums, bounds, formats.
const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "customer": {"type": "object", "properties": {
      "name": {"type": "string", "maxLength": 40},
      "email": {"type": "string", "format": "email"},
      "tier": {"enum": ["free", "pro", "enterprise"]}
    }, "required": ["name", "email", "tier"], "additionalProperties": false},
    "orders": {"type": "array", "maxItems": 8, "items": {"type": "object", "properties": {
      "id": {"type": "integer", "minimum": 1},
      "date": {"type": "string", "format": "date"},
      "items": {"type": "array", "maxItems": 4, "items": {"type": "object", "properties": {
        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
        "qty": {"type": "integer", "minimum": 1, "maximum": 99},
        "note": {"type": "string", "maxLength": 60}
      }, "required": ["sku", "qty"], "additionalProperties": false}}
    }, "required": ["id", "date", "items"], "additionalProperties": false}}
  },
  "required": ["customer", "orders"],
  "additionalProperties": false
}"#;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut paths = Vec::new();
    let (mut n_tokens, mut rounds, mut threads) = (128usize, 3usize, None);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} takes a number"))
        };
        match a.as_str() {
            "-n" => n_tokens = num("-n"),
            "-r" => rounds = num("-r"),
            "-t" => threads = Some(num("-t")),
            _ => paths.push(a),
        }
    }
    let Some(model_path) = paths.first() else {
        eprintln!(
            "usage: constraint_bench MODEL.gguf [VOCAB.gguf] [-n TOKENS] [-r ROUNDS] [-t THREADS]"
        );
        return ExitCode::FAILURE;
    };
    let model = Model::load_with(Path::new(model_path), &LoadOptions { threads })
        .expect("loading the model");
    let vocab_file;
    let metadata = match paths.get(1) {
        Some(p) => {
            vocab_file = gguf::GgufFile::open(Path::new(p)).expect("opening the vocabulary");
            vocab_file.metadata()
        }
        None => model.gguf().metadata(),
    };
    let tokenizer = Tokenizer::from_metadata(metadata).expect("reading the tokenizer");
    assert!(
        tokenizer.n_vocab() <= model.info().n_vocab,
        "the vocabulary is larger than the model's output"
    );
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let constraint = Constraint::new(Grammar::JsonSchema(schema));

    let t = Instant::now();
    let env = ConstraintEnv::new(&tokenizer).expect("building the trie");
    println!(
        "vocabulary: {} tokens; trie and compiler built in {:.1} ms",
        tokenizer.n_vocab(),
        ms(t.elapsed())
    );
    let t = Instant::now();
    let compiled = env.compile(&constraint).expect("compiling the schema");
    println!("schema compiled in {:.2} ms", ms(t.elapsed()));
    drop(compiled);

    mask_walk(&env, &tokenizer, &constraint, 2000);

    let config = SchedulerConfig {
        block_len: 16,
        n_blocks: 512,
        step_tokens: 512,
        max_seqs: 1,
        n_ctx: 4096,
    };
    let mut sched = Scheduler::new(&model, &tokenizer, config).expect("allocating the KV cache");
    let prompt = tokenizer.encode("Describe a customer and their orders as JSON.", true, true);
    let mut free_rates = Vec::new();
    let mut constrained_rates = Vec::new();
    for round in 0..rounds {
        for constrained in [false, true] {
            let r = generate(
                &mut sched,
                &prompt,
                n_tokens,
                round as u64,
                constrained.then_some(&constraint),
            );
            let rate = r.timings.eval_count as f64 / r.timings.eval_duration.as_secs_f64();
            println!(
                "round {round} {}: {} tokens, {:.2} tok/s",
                if constrained { "schema" } else { "free  " },
                r.timings.eval_count,
                rate
            );
            if constrained {
                constrained_rates.push(rate);
            } else {
                free_rates.push(rate);
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (free, with) = (mean(&free_rates), mean(&constrained_rates));
    println!(
        "decode: free {free:.2} tok/s, with the schema {with:.2} tok/s ({:+.1} %)",
        (with / free - 1.0) * 100.0
    );
    ExitCode::SUCCESS
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Times the masks of a random walk through the schema, restarting it when
/// the grammar ends, for `n` tokens.
fn mask_walk(env: &ConstraintEnv, tokenizer: &Tokenizer, constraint: &Constraint, n: usize) {
    let mut times = Vec::with_capacity(n);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = |k: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % k as u64) as usize
    };
    let mut c = env.compile(constraint).unwrap();
    let mut allowed = Vec::new();
    while times.len() < n {
        let t = Instant::now();
        let mask = c.mask().unwrap().expect("the grammar is on");
        times.push(t.elapsed());
        allowed.clear();
        for (w, &word) in mask.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let id = (w * 32) as u32 + bits.trailing_zeros();
                bits &= bits - 1;
                if !tokenizer.is_eog(id) {
                    allowed.push(id);
                }
            }
        }
        if allowed.is_empty() {
            c = env.compile(constraint).unwrap();
            continue;
        }
        let token = allowed[next(allowed.len())];
        c.accept(token, tokenizer.token_to_piece(token, true))
            .unwrap();
        if c.is_finished() {
            c = env.compile(constraint).unwrap();
        }
    }
    times.sort();
    let total: Duration = times.iter().sum();
    println!(
        "mask per token over {n} tokens of random walks: mean {:.1} us, p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        total.as_secs_f64() * 1e6 / n as f64,
        times[n / 2].as_secs_f64() * 1e6,
        times[n * 99 / 100].as_secs_f64() * 1e6,
        times[n - 1].as_secs_f64() * 1e6,
    );
}

/// One generation of `n` tokens (fewer if it ends), alone in the scheduler.
fn generate(
    sched: &mut Scheduler<'_>,
    prompt: &[u32],
    n: usize,
    seed: u64,
    constraint: Option<&Constraint>,
) -> GenerateResult {
    let mut options = Options::default();
    options.sampler.temperature = 1.0;
    options.sampler.seed = Some(seed);
    options.num_predict = n as i32;
    options.num_ctx = 4096;
    let compiled = constraint.map(|c| sched.compile(c).unwrap());
    let out = Arc::new(Mutex::new(None));
    let sink_out = out.clone();
    let sink = Box::new(move |e: SeqEvent| {
        match e {
            SeqEvent::Done(r) => *sink_out.lock().unwrap() = Some(r),
            SeqEvent::Error(e) => panic!("{e}"),
            SeqEvent::Text(_) => {}
        }
        ControlFlow::Continue(())
    });
    sched
        .submit_constrained(prompt, options, compiled, None, sink)
        .unwrap();
    sched.run_to_end().unwrap();
    out.lock().unwrap().take().unwrap()
}
