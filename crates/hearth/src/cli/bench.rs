//! `hearth bench MODEL [-p 512] [-n 128] [-d DEPTH] [-t N] [-r 5] [--json]`:
//! prompt-processing and generation throughput, measured the way llama-bench
//! measures it (tools/llama-bench/llama-bench.cpp) so the two compare directly.
//!
//! Every combination of the `-p`/`-n`, `-d` and `-t` lists is one test. A test
//! runs once as a warm-up (the whole prompt, or one generated token), then `-r`
//! times: the context is filled to the depth (computed once and reused, as
//! llama-bench restores its saved state), then the clock runs over the prompt
//! (`pp`: one call with all its tokens) or the generation (`tg`: one token per
//! call, last-token logits each time). Tokens are random ids; speed does not
//! depend on them. `--json` prints llama-bench's keys (`n_prompt`, `n_gen`,
//! `n_depth`, `n_threads`, `avg_ts`, `stddev_ts`, `model_size`,
//! `model_n_params`, `model_type`), so one script reads both tools' output.
//!
//! `--kv-type f16,q8_0,q4_0` (llama-bench's `-ctk/-ctv`, which are accepted
//! too, the same list for both) adds the KV cache types to the combinations;
//! a quantized cache is read as llama.cpp reads it with `-fa 1`.
//!
//! `--synthetic SHAPE:QUANT` benchmarks a random-weight model of a real shape
//! (`llama-3.2-1b:q4_k_m`), built into a temporary file that is unlinked as soon
//! as it is mapped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use gguf::TensorType;
use model::synthetic::Spec;
use model::{KvType, LoadOptions, Logits, Model, State};
use store::quantize::Preset;
use store::quantize::rules::{self, ModelFacts, Options, TensorIn};

use super::format::file_type_name;

/// Arguments of `hearth bench`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    serve: Option<BenchCommand>,
    /// A model of the store or a GGUF file (or use --synthetic).
    #[arg(required_unless_present = "synthetic", conflicts_with = "synthetic")]
    model: Option<PathBuf>,
    /// A random-weight model of a real shape, built on the fly: SHAPE:QUANT, e.g.
    /// llama-3.2-1b:q4_k_m (quants: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k
    /// q3_k q4_k q5_k q6_k q4_k_m; mxfp4 for MoE shapes such as gpt-oss-20b or
    /// qwen3-30b-a3b: experts in MXFP4, the rest in Q8_0, as llama-quantize's
    /// MXFP4_MOE).
    #[arg(long, value_name = "SHAPE:QUANT")]
    synthetic: Option<String>,
    /// Prompt lengths to time (0 disables prompt tests).
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_delimiter = ',',
        default_value = "512"
    )]
    n_prompt: Vec<usize>,
    /// Generation lengths to time (0 disables generation tests).
    #[arg(
        short = 'n',
        long = "n-gen",
        value_delimiter = ',',
        default_value = "128"
    )]
    n_gen: Vec<usize>,
    /// Context depths: tokens already in the cache when the clock starts.
    #[arg(
        short = 'd',
        long = "n-depth",
        value_delimiter = ',',
        default_value = "0"
    )]
    n_depth: Vec<usize>,
    /// Thread counts (default: every core).
    #[arg(short = 't', long = "threads", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Timed repetitions per test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    repetitions: usize,
    /// KV cache types (f16, q8_0, q4_0): llama-bench's `-ctk` (`-ctk` and
    /// `-ctv` are accepted as spelled there).
    #[arg(
        long = "kv-type",
        visible_alias = "cache-type-k",
        value_delimiter = ',',
        default_value = "f16",
        value_parser = parse_kv_type
    )]
    kv_types: Vec<KvType>,
    /// llama-bench's `-ctv`: hearth stores keys and values in one type, so
    /// this must list the same types as `--kv-type`.
    #[arg(long = "cache-type-v", value_delimiter = ',', value_parser = parse_kv_type)]
    cache_type_v: Vec<KvType>,
    /// Print a JSON array (one object per test, llama-bench's keys).
    #[arg(long)]
    json: bool,
}

/// `hearth bench serve`.
#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// Throughput and latency of a running server under concurrent clients
    /// (hearth serve, llama-server, vLLM: any OpenAI-compatible server).
    Serve(super::bench_serve::ServeBenchArgs),
}

/// One test: `n_prompt` tokens in one call, or `n_gen` one at a time, after
/// `n_depth` cached positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Test {
    n_prompt: usize,
    n_gen: usize,
    n_depth: usize,
    n_threads: usize,
    kv_type: KvType,
}

impl Test {
    /// llama-bench's test name: `pp512`, `tg128`, `pp512 @ d4096`.
    fn name(&self) -> String {
        let base = if self.n_prompt > 0 {
            format!("pp{}", self.n_prompt)
        } else {
            format!("tg{}", self.n_gen)
        };
        if self.n_depth > 0 {
            format!("{base} @ d{}", self.n_depth)
        } else {
            base
        }
    }

    fn n_tokens(&self) -> usize {
        self.n_prompt + self.n_gen
    }
}

/// What a model is, in llama-bench's terms.
#[derive(Debug)]
struct ModelDesc {
    /// File name (or the synthetic spec).
    filename: String,
    /// `llama 1B Q4_K - Medium`.
    model_type: String,
    /// Bytes of all tensors.
    size: u64,
    /// Weights in all tensors.
    n_params: u64,
}

/// A tiny xorshift generator for random token ids.
struct Tokens(u64);

impl Tokens {
    fn next(&mut self, n_vocab: usize) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n_vocab as u64) as u32
    }

    fn fill(&mut self, out: &mut Vec<u32>, n: usize, n_vocab: usize) {
        out.clear();
        out.extend((0..n).map(|_| self.next(n_vocab)));
    }
}

/// Runs every test and prints the table or the JSON.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if let Some(BenchCommand::Serve(serve)) = &args.serve {
        return super::bench_serve::run(serve);
    }
    let tests = tests(args)?;
    let (path, filename, _temp) = match (&args.model, &args.synthetic) {
        // Resolved before the table's header is printed, so that an unknown
        // model is one error and nothing else.
        (Some(p), _) => (
            super::model_arg::resolve(p)?.path,
            p.display().to_string(),
            None,
        ),
        (None, Some(s)) => {
            let temp = build_synthetic(s)?;
            (temp.0.clone(), format!("synthetic {s}"), Some(temp))
        }
        (None, None) => bail!("give a MODEL file or --synthetic SHAPE:QUANT"),
    };
    let mut results = Vec::new();
    // llama-bench shows the cache types only where one is not f16.
    let show_kv = tests.iter().any(|t| t.kv_type != KvType::F16);
    if !args.json {
        if show_kv {
            println!("| model | size | params | threads | type_k | type_v | test | t/s |");
            println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        } else {
            println!("| model | size | params | threads | test | t/s |");
            println!("| --- | ---: | ---: | ---: | ---: | ---: |");
        }
    }
    // One model (and pool) per thread count, reused for every test at that count.
    let mut thread_counts: Vec<usize> = tests.iter().map(|t| t.n_threads).collect();
    thread_counts.dedup();
    for n_threads in thread_counts {
        let options = LoadOptions {
            threads: Some(n_threads),
        };
        let mut model = Model::load_with(&path, &options)
            .with_context(|| format!("loading {}", path.display()))?;
        let desc = describe(&model, &filename);
        for test in tests.iter().filter(|t| t.n_threads == n_threads) {
            model.set_kv_type(test.kv_type)?;
            let samples = measure(&model, test, args.repetitions)?;
            if !args.json {
                let (avg, sd) = mean_sd(&rates(test, &samples));
                let kv = if show_kv {
                    format!(" {} | {} |", test.kv_type, test.kv_type)
                } else {
                    String::new()
                };
                println!(
                    "| {} | {} | {} | {} |{kv} {} | {avg:.2} ± {sd:.2} |",
                    desc.model_type,
                    human_size(desc.size),
                    human_params(desc.n_params),
                    test.n_threads,
                    test.name(),
                );
            }
            results.push(result_json(&desc, test, &samples));
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(())
}

/// Every (prompt or generation) × depth × threads combination, in llama-bench's
/// order: prompt tests before generation tests, for each thread count.
fn tests(args: &BenchArgs) -> anyhow::Result<Vec<Test>> {
    if args.repetitions == 0 {
        bail!("--repetitions must be at least 1");
    }
    let default_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = if args.threads.is_empty() {
        vec![default_threads]
    } else {
        args.threads.clone()
    };
    if threads.contains(&0) {
        bail!("--threads must be at least 1");
    }
    if !args.cache_type_v.is_empty() && args.cache_type_v != args.kv_types {
        bail!(
            "hearth stores keys and values in one type: give -ctv the same list as -ctk (--kv-type)"
        );
    }
    let mut out = Vec::new();
    for &n_threads in &threads {
        for &kv_type in &args.kv_types {
            for &n_depth in &args.n_depth {
                let prompts = args.n_prompt.iter().filter(|&&p| p > 0).map(|&p| (p, 0));
                let gens = args.n_gen.iter().filter(|&&g| g > 0).map(|&g| (0, g));
                for (n_prompt, n_gen) in prompts.chain(gens) {
                    out.push(Test {
                        n_prompt,
                        n_gen,
                        n_depth,
                        n_threads,
                        kv_type,
                    });
                }
            }
        }
    }
    if out.is_empty() {
        bail!("nothing to measure: every -p and -n is 0");
    }
    Ok(out)
}

/// The warm-up and the timed repetitions of one test: nanoseconds per repetition.
fn measure(model: &Model, test: &Test, reps: usize) -> anyhow::Result<Vec<u64>> {
    let n_vocab = model.info().n_vocab;
    let mut state = model.new_state(test.n_depth + test.n_tokens())?;
    let mut rng = Tokens(0x2545_F491_4F6C_DD1D);
    let mut tokens = Vec::with_capacity(test.n_prompt.max(test.n_depth));

    // Fill the context once; every repetition restarts from this depth.
    if test.n_depth > 0 {
        rng.fill(&mut tokens, test.n_depth, n_vocab);
        model.forward(&mut state, &tokens, Logits::Last)?;
    }
    let depth = test.n_depth;
    // Warm-up: the whole prompt, or one generated token.
    if test.n_prompt > 0 {
        rng.fill(&mut tokens, test.n_prompt, n_vocab);
        model.forward(&mut state, &tokens, Logits::Last)?;
    } else {
        generate(model, &mut state, &mut rng, 1)?;
    }

    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        state.truncate(depth);
        if test.n_prompt > 0 {
            rng.fill(&mut tokens, test.n_prompt, n_vocab);
        }
        let start = Instant::now();
        if test.n_prompt > 0 {
            model.forward(&mut state, &tokens, Logits::Last)?;
        }
        generate(model, &mut state, &mut rng, test.n_gen)?;
        samples.push(start.elapsed().as_nanos() as u64);
    }
    Ok(samples)
}

/// `n` single-token forward passes, each with the last token's logits.
fn generate(model: &Model, state: &mut State, rng: &mut Tokens, n: usize) -> anyhow::Result<()> {
    let n_vocab = model.info().n_vocab;
    for _ in 0..n {
        let token = rng.next(n_vocab);
        model.forward(state, &[token], Logits::Last)?;
    }
    Ok(())
}

/// A KV cache type named as llama.cpp names it.
fn parse_kv_type(s: &str) -> Result<KvType, String> {
    KvType::parse(s).ok_or_else(|| format!("'{s}': expected f16, q8_0 or q4_0"))
}

/// llama-bench's single-dash spellings of the cache type flags (`-ctk q8_0`),
/// which clap cannot declare, rewritten to their long forms when the
/// command is `bench`.
pub fn llama_bench_spellings(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    if args.get(1).is_none_or(|a| a != "bench") {
        return args;
    }
    args.into_iter()
        .map(|a| {
            if a == "-ctk" {
                "--cache-type-k".into()
            } else if a == "-ctv" {
                "--cache-type-v".into()
            } else {
                a
            }
        })
        .collect()
}

/// Tokens per second of each sample.
fn rates(test: &Test, samples_ns: &[u64]) -> Vec<f64> {
    samples_ns
        .iter()
        .map(|&ns| test.n_tokens() as f64 * 1e9 / ns as f64)
        .collect()
}

/// Mean and sample standard deviation (0 for one sample), as llama-bench's
/// `avg` and `stdev`.
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

fn result_json(desc: &ModelDesc, test: &Test, samples_ns: &[u64]) -> serde_json::Value {
    let ts = rates(test, samples_ns);
    let (avg_ts, stddev_ts) = mean_sd(&ts);
    let ns: Vec<f64> = samples_ns.iter().map(|&n| n as f64).collect();
    let (avg_ns, stddev_ns) = mean_sd(&ns);
    serde_json::json!({
        "model_filename": desc.filename,
        "model_type": desc.model_type,
        "model_size": desc.size,
        "model_n_params": desc.n_params,
        "n_threads": test.n_threads,
        "n_prompt": test.n_prompt,
        "n_gen": test.n_gen,
        "n_depth": test.n_depth,
        "type_k": test.kv_type.name(),
        "type_v": test.kv_type.name(),
        "flash_attn": test.kv_type != KvType::F16,
        "avg_ns": avg_ns as u64,
        "stddev_ns": stddev_ns as u64,
        "avg_ts": avg_ts,
        "stddev_ts": stddev_ts,
        "samples_ns": samples_ns,
        "samples_ts": ts,
    })
}

/// llama-bench's description of a model: architecture, size class, file type.
fn describe(model: &Model, filename: &str) -> ModelDesc {
    let info = model.info();
    let gguf = model.gguf();
    let size: u64 = gguf.tensors().map(|(_, t)| t.size).sum();
    let ftype = info
        .file_type
        .and_then(file_type_name)
        .map_or_else(|| "unknown type".to_owned(), str::to_owned);
    ModelDesc {
        filename: filename.to_owned(),
        model_type: format!("{} {} {ftype}", info.arch, size_class(info.n_params)),
        size,
        n_params: info.n_params,
    }
}

/// `1B`, `8B`, `494M`: the parameter count rounded the way model names are.
fn size_class(n_params: u64) -> String {
    let b = n_params as f64 / 1e9;
    if b >= 1.0 {
        format!("{}B", b.round())
    } else {
        format!("{}M", (n_params as f64 / 1e6).round())
    }
}

/// `762.81 MiB`, `4.58 GiB`, as llama-bench prints sizes.
fn human_size(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.2} GiB", mib / 1024.0)
    } else {
        format!("{mib:.2} MiB")
    }
}

/// `1.24 B`, `494.03 M`, as llama-bench prints parameter counts.
fn human_params(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.2} B", n as f64 / 1e9)
    } else {
        format!("{:.2} M", n as f64 / 1e6)
    }
}

/// A temporary model file, removed when dropped.
struct TempModel(PathBuf);

impl Drop for TempModel {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes the random-weight model `SHAPE:QUANT` to a temporary file.
fn build_synthetic(spec: &str) -> anyhow::Result<TempModel> {
    let (shape, quant) = spec
        .split_once(':')
        .with_context(|| format!("--synthetic {spec}: expected SHAPE:QUANT"))?;
    let shape_spec =
        Spec::preset(shape).with_context(|| format!("--synthetic: unknown shape '{shape}'"))?;
    let (ftype, mix) = quant_mix(quant, &shape_spec)?;
    let mut writer = shape_spec
        .build(&|name| mix.type_of(name))
        .with_context(|| format!("building the synthetic {spec} model"))?;
    writer.add_u32("general.file_type", ftype);
    let path = std::env::temp_dir().join(format!(
        "hearth-bench-{}-{shape}-{quant}.gguf",
        std::process::id()
    ));
    let temp = TempModel(path);
    writer
        .write_file(&temp.0)
        .with_context(|| format!("writing {}", temp.0.display()))?;
    Ok(temp)
}

/// Which format each matrix of a synthetic model gets: what llama-quantize
/// would choose for the model's F32 file (`store::quantize::rules`).
#[derive(Debug)]
pub(super) struct QuantMix {
    types: HashMap<String, TensorType>,
}

impl QuantMix {
    /// The type of tensor `name` (F32 for names the model does not have).
    pub(super) fn type_of(&self, name: &str) -> TensorType {
        self.types.get(name).copied().unwrap_or(TensorType::F32)
    }
}

/// The `general.file_type` id and the per-tensor formats of a llama-quantize
/// preset name (`q4_k_m`, `Q8_0`, ...) for the synthetic model `spec`.
pub(super) fn quant_mix(quant: &str, spec: &Spec) -> anyhow::Result<(u32, QuantMix)> {
    // llama-quantize's MXFP4_MOE (src/llama-quant.cpp): the expert tensors
    // in MXFP4, every other matrix as its Q8_0 preset puts it.
    let mxfp4 = matches!(quant.to_ascii_lowercase().as_str(), "mxfp4" | "mxfp4_moe");
    if mxfp4 && spec.n_expert == 0 {
        bail!("--synthetic: mxfp4 quantizes the experts of a MoE shape; this shape has none");
    }
    let preset = if mxfp4 {
        Preset::Q8_0
    } else {
        Preset::parse(quant).with_context(|| format!("--synthetic: unknown quant '{quant}'"))?
    };
    let facts = ModelFacts {
        arch: spec.arch.clone(),
        n_layer: spec.n_layer as u32,
        n_head: spec.n_head as u32,
        n_head_kv: spec.n_head_kv as u32,
        n_expert: spec.n_expert as u32,
    };
    let shapes = spec.tensor_shapes();
    let tensors: Vec<TensorIn> = shapes
        .iter()
        .map(|(name, dims, _)| TensorIn {
            name,
            ty: TensorType::F32,
            dims,
        })
        .collect();
    let plan = rules::plan(&facts, &Options::new(preset), &tensors)?;
    let types = plan
        .into_iter()
        .map(|d| {
            let name = shapes[d.index].0.clone();
            let ty = if mxfp4 && name.contains("_exps.weight") {
                TensorType::MXFP4
            } else {
                d.ty
            };
            (name, ty)
        })
        .collect();
    let file_type = if mxfp4 { 38 } else { preset.file_type() };
    Ok((file_type, QuantMix { types }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(p: &[usize], n: &[usize], d: &[usize], t: &[usize]) -> BenchArgs {
        BenchArgs {
            serve: None,
            model: Some(PathBuf::from("m.gguf")),
            synthetic: None,
            n_prompt: p.to_vec(),
            n_gen: n.to_vec(),
            n_depth: d.to_vec(),
            threads: t.to_vec(),
            repetitions: 5,
            kv_types: vec![KvType::F16],
            cache_type_v: Vec::new(),
            json: false,
        }
    }

    #[test]
    fn kv_types_multiply_the_tests_and_ctv_must_match() {
        let mut a = args(&[0], &[16], &[0], &[2]);
        a.kv_types = vec![KvType::F16, KvType::Q8_0];
        let kv: Vec<KvType> = tests(&a).unwrap().iter().map(|t| t.kv_type).collect();
        assert_eq!(kv, [KvType::F16, KvType::Q8_0]);
        a.cache_type_v = vec![KvType::F16, KvType::Q8_0];
        assert!(tests(&a).is_ok());
        a.cache_type_v = vec![KvType::Q4_0];
        assert!(tests(&a).is_err());
        assert_eq!(parse_kv_type("Q8_0"), Ok(KvType::Q8_0));
        assert!(parse_kv_type("q5_0").is_err());
    }

    #[test]
    fn llama_bench_cache_type_spellings_are_rewritten_for_bench_only() {
        let os = |v: &[&str]| -> Vec<std::ffi::OsString> { v.iter().map(Into::into).collect() };
        assert_eq!(
            llama_bench_spellings(os(&[
                "hearth", "bench", "m", "-ctk", "q8_0", "-ctv", "q8_0"
            ])),
            os(&[
                "hearth",
                "bench",
                "m",
                "--cache-type-k",
                "q8_0",
                "--cache-type-v",
                "q8_0"
            ])
        );
        let run = os(&["hearth", "run", "m", "-ctk"]);
        assert_eq!(llama_bench_spellings(run.clone()), run);
    }

    #[test]
    fn tests_follow_llama_bench_order_and_names() {
        let t = tests(&args(&[512], &[128], &[0, 4096], &[2])).unwrap();
        let names: Vec<String> = t.iter().map(Test::name).collect();
        assert_eq!(names, ["pp512", "tg128", "pp512 @ d4096", "tg128 @ d4096"]);
        assert!(tests(&args(&[0], &[0], &[0], &[1])).is_err());
        assert!(tests(&args(&[8], &[0], &[0], &[0])).is_err());
    }

    #[test]
    fn mean_and_sample_deviation() {
        let (m, s) = mean_sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert!((m - 5.0).abs() < 1e-12);
        assert!((s - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_sd(&[3.0]), (3.0, 0.0));
    }

    #[test]
    fn q4_k_m_mix_follows_llama_quantize() {
        let spec = Spec::llama_3_2_1b();
        let (ftype, mix) = quant_mix("q4_k_m", &spec).unwrap();
        assert_eq!(ftype, 15);
        // 16 layers: use_more_bits picks 0, 1, 4, 7, 10, 13, 14, 15.
        let v6: Vec<usize> = (0..16)
            .filter(|i| mix.type_of(&format!("blk.{i}.attn_v.weight")) == TensorType::Q6_K)
            .collect();
        assert_eq!(v6, [0, 1, 4, 7, 10, 13, 14, 15]);
        assert_eq!(mix.type_of("blk.2.ffn_down.weight"), TensorType::Q4_K);
        assert_eq!(mix.type_of("blk.4.ffn_down.weight"), TensorType::Q6_K);
        assert_eq!(mix.type_of("blk.4.attn_q.weight"), TensorType::Q4_K);
        assert_eq!(mix.type_of("token_embd.weight"), TensorType::Q6_K);
        assert!(quant_mix("q9_9", &spec).is_err());
    }

    #[test]
    fn mxfp4_mix_puts_experts_in_mxfp4_and_the_rest_in_q8_0() {
        let spec = Spec::tiny_moe();
        let (ftype, mix) = quant_mix("mxfp4", &spec).unwrap();
        assert_eq!(ftype, 38);
        assert_eq!(mix.type_of("blk.0.ffn_gate_exps.weight"), TensorType::MXFP4);
        assert_eq!(mix.type_of("blk.1.ffn_down_exps.weight"), TensorType::MXFP4);
        // llama-quantize keeps the router in F32 whatever the preset.
        assert_eq!(mix.type_of("blk.0.ffn_gate_inp.weight"), TensorType::F32);
        assert_eq!(mix.type_of("blk.0.attn_v.weight"), TensorType::Q8_0);
        // The head: its own output.weight, or the embedding it is tied to.
        let head = if spec.tied_output {
            "token_embd.weight"
        } else {
            "output.weight"
        };
        assert_eq!(mix.type_of(head), TensorType::Q8_0);
        assert_eq!(mix.type_of("token_embd.weight"), TensorType::Q8_0);
        assert!(quant_mix("mxfp4", &Spec::tiny_llama()).is_err());
    }

    #[test]
    fn synthetic_mxfp4_moe_model_loads_and_runs() {
        let temp = build_synthetic("tiny-moe:mxfp4").unwrap();
        let model = Model::load(&temp.0).unwrap();
        assert_eq!(describe(&model, "x").model_type, "llama 4M MXFP4 MoE");
        let ty = |name: &str| model.gguf().tensor(name).unwrap().ty;
        assert_eq!(ty("blk.0.ffn_up_exps.weight"), TensorType::MXFP4);
        assert_eq!(ty("blk.0.attn_q.weight"), TensorType::Q8_0);
        let mut state = model.new_state(8).unwrap();
        let logits = model.forward(&mut state, &[1, 5, 9], Logits::Last).unwrap();
        assert!(logits.iter().all(|v| v.is_finite()));
        assert!(logits.iter().any(|&v| v != logits[0]));
    }

    #[test]
    fn synthetic_gpt_oss_keeps_biases_and_sinks_in_f32_and_runs() {
        let temp = build_synthetic("tiny-gpt-oss:mxfp4").unwrap();
        let model = Model::load(&temp.0).unwrap();
        assert_eq!(model.info().arch, "gpt-oss");
        let ty = |name: &str| model.gguf().tensor(name).unwrap().ty;
        assert_eq!(ty("blk.0.ffn_gate_exps.weight"), TensorType::MXFP4);
        assert_eq!(ty("blk.0.ffn_gate_exps.bias"), TensorType::F32);
        assert_eq!(ty("blk.1.attn_sinks.weight"), TensorType::F32);
        assert_eq!(ty("blk.1.attn_q.weight"), TensorType::Q8_0);
        let mut state = model.new_state(8).unwrap();
        let logits = model.forward(&mut state, &[1, 5, 9], Logits::Last).unwrap();
        assert!(logits.iter().all(|v| v.is_finite()));
        assert!(logits.iter().any(|&v| v != logits[0]));
        // The real shape's mixes plan (its rows of 2880 take no K-quant).
        let shape = Spec::preset("gpt-oss-20b").unwrap();
        for quant in ["mxfp4", "q4_k_m", "q8_0"] {
            let (_, mix) = quant_mix(quant, &shape).unwrap();
            assert_eq!(mix.type_of("blk.3.ffn_up_exps.bias"), TensorType::F32);
        }
    }

    #[test]
    fn mixes_match_llama_quantize_on_every_logits_fixture() {
        // crates/model/tests/fixtures/logits: per tiny model and preset, the
        // type llama-quantize gave each tensor of the F32 file.
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/logits");
        let mut checked = 0;
        let mut bad = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let meta: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let spec = Spec::preset(meta["variant"].as_str().unwrap()).unwrap();
            let quant = meta["quant"].as_str().unwrap();
            let (_, mix) = quant_mix(quant, &spec).unwrap();
            for (name, t) in meta["tensors"].as_object().unwrap() {
                let want = t["type"].as_str().unwrap();
                let got = mix.type_of(name);
                if !got.name().eq_ignore_ascii_case(want) {
                    bad.push(format!(
                        "{}: {name} {got}, llama-quantize {want}",
                        path.display()
                    ));
                }
            }
            checked += 1;
        }
        assert!(checked >= 100, "{checked} fixtures");
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn synthetic_tiny_model_is_written_and_removed() {
        let temp = build_synthetic("tiny-llama:q8_0").unwrap();
        let path = temp.0.clone();
        assert!(path.is_file());
        let model = Model::load(&path).unwrap();
        assert_eq!(describe(&model, "x").model_type, "llama 1M Q8_0");
        drop(temp);
        assert!(!path.exists());
        assert!(build_synthetic("no-such-shape:q8_0").is_err());
        assert!(build_synthetic("tiny-llama").is_err());
    }
}
