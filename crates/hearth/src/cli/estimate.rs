//! `hearth estimate MODEL|NAME|URL [--ctx N] [--parallel P] [--kv-type T]
//! [--json]`: the memory a model needs and the speed it will have on this
//! machine, from its GGUF header alone (model::estimate) and a calibration
//! of this machine measured once and kept in `~/.hearth/calibration.json`.
//! A model that is not here (a name with its registry, such as
//! `hf.co/user/repo:Q4_K_M` or `registry.ollama.ai/library/llama3.2:1b`, or
//! an `http(s)://` URL of a GGUF file) is read with range requests: its
//! header, never its weights. `hearth estimate --table` prints the table of common sizes and
//! quantizations for this machine from synthesised shapes (no files).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use gguf::{GgufFile, GgufModel, TensorType};
use kernels::pool::ThreadPool;
use model::estimate::{Calibration, Memory, Shape, Speed, predict};
use model::synthetic::Spec;

/// Arguments of `hearth estimate`.
#[derive(Debug, clap::Args)]
pub struct EstimateArgs {
    /// A GGUF file, a model of the store, a model of a registry not pulled
    /// yet, named with its registry (`hf.co/user/repo:Q4_K_M`,
    /// `registry.ollama.ai/library/llama3.2:1b`: its header is read, not its
    /// weights), or an http(s):// URL of a GGUF file.
    #[arg(required_unless_present = "table", conflicts_with = "table")]
    model: Option<String>,
    /// Allow a plain-http registry for a model read remotely.
    #[arg(long)]
    insecure: bool,
    /// Context length of each sequence.
    #[arg(short = 'c', long = "ctx", default_value_t = 4096)]
    ctx: usize,
    /// Sequences served at once (each with its own KV cache).
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// KV cache format: f16 (the default), q8_0 or q4_0 (HEARTH_KV_CACHE_TYPE),
    /// or f32 for comparison.
    #[arg(long, default_value = "f16")]
    kv_type: String,
    /// Prompt length of the predicted prefill speed.
    #[arg(long, default_value_t = 512)]
    n_prompt: usize,
    /// Tokens of the predicted decode speed.
    #[arg(long, default_value_t = 128)]
    n_gen: usize,
    /// Threads (default: every core).
    #[arg(short, long)]
    threads: Option<usize>,
    /// Measure this machine again instead of reading the saved calibration.
    #[arg(long)]
    recalibrate: bool,
    /// The table of 7B/8B/13B/70B × Q4_K_M/Q8_0/F16 × context for this machine.
    #[arg(long)]
    table: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Estimates one model, or prints the table.
pub fn run(args: &EstimateArgs) -> anyhow::Result<()> {
    let kv_type = match args.kv_type.to_ascii_lowercase().as_str() {
        "f16" => TensorType::F16,
        "f32" => TensorType::F32,
        "q8_0" => TensorType::Q8_0,
        "q4_0" => TensorType::Q4_0,
        other => bail!("--kv-type {other}: expected f16, f32, q8_0 or q4_0"),
    };
    if args.ctx == 0 || args.parallel == 0 || args.n_prompt == 0 || args.n_gen == 0 {
        bail!("--ctx, --parallel, --n-prompt and --n-gen must be at least 1");
    }
    if args.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    let (shape, source) = match &args.model {
        Some(m) if m.starts_with("http://") || m.starts_with("https://") || !is_here(m)? => {
            let (shape, fetched, size) = remote_shape(m, args.insecure)?;
            (shape, format!("{m} ({fetched} of {size} bytes read)"))
        }
        Some(m) => (local_shape(Path::new(m))?, m.clone()),
        None => {
            let cal = calibration(args)?;
            return table(&cal, args, kv_type);
        }
    };
    let cal = calibration(args)?;
    let memory = shape.memory(args.ctx, args.parallel, kv_type, cal.n_threads);
    let speed = predict(&shape, &cal, args.n_prompt, args.n_gen, 0);
    let available = mem_available();
    let fits = available.is_none_or(|a| memory.total() <= a);
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "model": source,
            "arch": shape.arch,
            "n_params": shape.n_params(),
            "n_ctx": args.ctx,
            "parallel": args.parallel,
            "kv_type": kv_type.name(),
            "memory_bytes": memory.total(),
            "weights_bytes": memory.weights,
            "kv_cache_bytes": memory.kv_cache,
            "compute_bytes": memory.compute,
            "overhead_bytes": memory.overhead,
            "available_bytes": available,
            "fits": fits,
            "prefill_tokens_per_s": speed.prefill_tokens_per_s,
            "decode_tokens_per_s": speed.decode_tokens_per_s,
            "n_threads": cal.n_threads,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    writeln!(out, "model       {source}")?;
    writeln!(
        out,
        "shape       {} {:.2}B parameters, {} layers, n_embd {}, {} heads / {} kv heads, context {}",
        shape.arch,
        shape.n_params() as f64 / 1e9,
        shape.n_layer,
        shape.n_embd,
        shape.n_head,
        shape.n_head_kv,
        shape.n_ctx_train
    )?;
    write_memory(&mut out, &memory, args, kv_type)?;
    match available {
        Some(a) => writeln!(
            out,
            "fits        {} ({} available)",
            if fits { "yes" } else { "no" },
            gib(a)
        )?,
        None => writeln!(out, "fits        unknown (no /proc/meminfo)")?,
    }
    writeln!(
        out,
        "speed       prefill {:.1} tokens/s (pp{}), decode {:.1} tokens/s (tg{}), {} threads",
        speed.prefill_tokens_per_s,
        args.n_prompt,
        speed.decode_tokens_per_s,
        args.n_gen,
        cal.n_threads
    )?;
    if args.ctx > shape.n_ctx_train {
        writeln!(
            out,
            "warning     --ctx {} exceeds the trained context {}",
            args.ctx, shape.n_ctx_train
        )?;
    }
    Ok(())
}

fn write_memory(
    out: &mut dyn std::io::Write,
    m: &Memory,
    args: &EstimateArgs,
    kv_type: TensorType,
) -> std::io::Result<()> {
    writeln!(
        out,
        "memory      {} = weights {} + KV cache {} ({} × {} positions, {}) + compute {} + runtime {}",
        gib(m.total()),
        gib(m.weights),
        gib(m.kv_cache),
        args.parallel,
        args.ctx,
        kv_type.name(),
        gib(m.compute),
        gib(m.overhead)
    )
}

fn gib(bytes: u64) -> String {
    let g = bytes as f64 / (1u64 << 30) as f64;
    if g >= 1.0 {
        format!("{g:.2} GiB")
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// `MemAvailable` from /proc/meminfo.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The shape of a local file or a model of the store (split files as one).
fn local_shape(arg: &Path) -> anyhow::Result<Shape> {
    let path = super::model_arg::resolve(arg)?.path;
    let gguf = GgufModel::open(&path).with_context(|| format!("{}", arg.display()))?;
    let tensors: Vec<_> = gguf.tensors().map(|(_, t)| t.clone()).collect();
    Ok(Shape::from_header(gguf.metadata(), &tensors)?)
}

/// Whether `arg` is a file or a model of the store (`true`), or a model to
/// read from the registry its name gives (`false`). Only a name that spells
/// out its registry host (`hf.co/…`, `registry.ollama.ai/library/…`) is
/// looked up remotely, so a mistyped local name never reaches the network.
fn is_here(arg: &str) -> anyhow::Result<bool> {
    let path = Path::new(arg);
    if super::model_arg::is_file(path) {
        return Ok(true);
    }
    let store = crate::builtin::open_store()?;
    match store.resolve(&store::ModelName::parse(arg)?) {
        Ok(_) => Ok(true),
        Err(store::StoreError::NotFound(_)) if names_a_host(arg) => Ok(false),
        Err(store::StoreError::NotFound(_)) => {
            Err(
                super::model_arg::not_found(arg, Some(store.root())).context(format!(
                    "to estimate a model without pulling it, name its registry: \
                 hearth estimate registry.ollama.ai/library/{arg}"
                )),
            )
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether a model name starts with a registry host (a first part with a dot
/// or a port, or `localhost`).
fn names_a_host(name: &str) -> bool {
    name.split_once('/')
        .is_some_and(|(host, _)| host.contains('.') || host.contains(':') || host == "localhost")
}

/// The shape of a remote model (a registry name or a URL), read by HTTP
/// range requests: the first 256 KiB of its GGUF, then twice as much until
/// the header parses (at most 256 MiB). Returns the shape, the bytes read
/// and the file's size.
fn remote_shape(source: &str, insecure: bool) -> anyhow::Result<(Shape, u64, u64)> {
    const LIMIT: u64 = 256 << 20;
    // A URL typed with http:// is the user's choice of protocol.
    let insecure = insecure || source.to_ascii_lowercase().starts_with("http://");
    let options = server::api::pull::pull_options(insecure);
    let remote = store::RemoteModel::open(source, &options)?;
    let (url, size) = (remote.url().to_string(), remote.size());
    let mut want: u64 = 256 << 10;
    let mut fetched = 0;
    loop {
        let prefix = remote.read_prefix(want)?;
        fetched += prefix.len() as u64;
        match GgufFile::header_from_prefix(&prefix, size) {
            Ok(h) => {
                let shape =
                    Shape::from_header(&h.metadata, &h.tensors).with_context(|| url.clone())?;
                return Ok((shape, fetched, size));
            }
            Err(
                gguf::Error::Truncated { .. }
                | gguf::Error::StringTooLong { .. }
                | gguf::Error::ArrayTooLong { .. }
                | gguf::Error::TooManyEntries { .. },
            ) if (prefix.len() as u64) < size && want < LIMIT => want *= 2,
            Err(e) => return Err(anyhow::Error::new(e).context(url)),
        }
    }
}

/// Where the calibration is kept: `~/.hearth/calibration.json`.
fn calibration_path() -> Option<PathBuf> {
    dirs::home_dir().map(|h| h.join(".hearth").join("calibration.json"))
}

/// The saved calibration for this thread count and CPU level, or a new one
/// (measured, then saved).
fn calibration(args: &EstimateArgs) -> anyhow::Result<Calibration> {
    let pool = match args.threads {
        Some(n) => ThreadPool::new(n),
        None => ThreadPool::with_available_parallelism(),
    };
    let cpu = format!("{:?}", kernels::cpu_level()).to_lowercase();
    let path = calibration_path();
    let saved: Vec<Calibration> = path
        .as_deref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if !args.recalibrate
        && let Some(c) = saved
            .iter()
            .find(|c| c.n_threads == pool.n_threads() && c.cpu == cpu)
    {
        return Ok(c.clone());
    }
    eprintln!(
        "calibrating this machine ({} threads, a few seconds)...",
        pool.n_threads()
    );
    let cal = Calibration::measure(&pool)?;
    if let Some(path) = path {
        let mut all: Vec<Calibration> = saved
            .into_iter()
            .filter(|c| !(c.n_threads == cal.n_threads && c.cpu == cal.cpu))
            .collect();
        all.push(cal.clone());
        // A calibration that cannot be saved is measured again next time.
        if let Some(dir) = path.parent()
            && std::fs::create_dir_all(dir).is_ok()
        {
            let _ = std::fs::write(&path, serde_json::to_vec_pretty(&all)?);
        }
    }
    Ok(cal)
}

/// The common shapes of the table: (name, spec).
fn table_shapes() -> Vec<(&'static str, Spec)> {
    let llama2 = |n_embd, n_layer, n_head, n_ff| {
        let mut s = Spec::llama_3_1_8b();
        s.n_embd = n_embd;
        s.n_layer = n_layer;
        s.n_head = n_head;
        s.n_head_kv = n_head;
        s.n_ff = n_ff;
        s.n_vocab = 32000;
        s.n_ctx_train = 4096;
        s
    };
    let mut l70 = Spec::llama_3_1_8b();
    l70.n_embd = 8192;
    l70.n_layer = 80;
    l70.n_head = 64;
    l70.n_head_kv = 8;
    l70.n_ff = 28672;
    vec![
        ("7B (Llama-2)", llama2(4096, 32, 32, 11008)),
        ("8B (Llama-3.1)", Spec::llama_3_1_8b()),
        ("13B (Llama-2)", llama2(5120, 40, 40, 13824)),
        ("70B (Llama-3.1)", l70),
    ]
}

/// A shape from a spec and a quantization, without writing a file.
fn synthesised(spec: &Spec, quant: &str) -> anyhow::Result<Shape> {
    let (_, mix) = super::bench::quant_mix(quant, spec)?;
    let tensors = spec
        .tensor_shapes()
        .into_iter()
        .map(|(name, dims, _)| {
            let ty = if dims.len() == 1 {
                TensorType::F32
            } else {
                mix.type_of(&name)
            };
            let n: u64 = dims.iter().product();
            let size = ty.row_size(n).unwrap_or(n * 4);
            (name, ty, n, size)
        })
        .collect();
    Ok(Shape {
        arch: spec.arch.clone(),
        n_layer: spec.n_layer,
        n_embd: spec.n_embd,
        n_head: spec.n_head,
        n_head_kv: spec.n_head_kv,
        head_dim: spec.head_dim(),
        n_ff: spec.n_ff,
        n_vocab: spec.n_vocab,
        n_ctx_train: spec.n_ctx_train,
        n_expert: (spec.n_expert, spec.n_expert_used),
        tensors,
    })
}

fn table(cal: &Calibration, args: &EstimateArgs, kv_type: TensorType) -> anyhow::Result<()> {
    let available = mem_available();
    let contexts = [4096, 32768, 131072];
    let mut rows = Vec::new();
    for (name, spec) in table_shapes() {
        for quant in ["q4_k_m", "q8_0", "f16"] {
            let shape = synthesised(&spec, quant)?;
            let speed: Speed = predict(&shape, cal, args.n_prompt, args.n_gen, 0);
            for ctx in contexts {
                let m = shape.memory(ctx, args.parallel, kv_type, cal.n_threads);
                rows.push(serde_json::json!({
                    "model": name,
                    "quant": quant.to_uppercase(),
                    "n_ctx": ctx,
                    "memory_bytes": m.total(),
                    "weights_bytes": m.weights,
                    "kv_cache_bytes": m.kv_cache,
                    "fits": available.is_none_or(|a| m.total() <= a),
                    "prefill_tokens_per_s": speed.prefill_tokens_per_s,
                    "decode_tokens_per_s": speed.decode_tokens_per_s,
                }));
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "This machine: {} threads, {} available, {:.1} GB/s memory bandwidth; KV cache {}, {} sequence(s)",
        cal.n_threads,
        available.map_or_else(|| "unknown".to_owned(), gib),
        cal.memory_bandwidth_bytes_per_s / 1e9,
        kv_type.name(),
        args.parallel
    )?;
    writeln!(
        out,
        "| model | quant | memory @4K | @32K | @128K | fits @4K | pp{} t/s | tg{} t/s |",
        args.n_prompt, args.n_gen
    )?;
    writeln!(
        out,
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |"
    )?;
    for group in rows.chunks(contexts.len()) {
        let r = &group[0];
        let mem = |i: usize| gib(group[i]["memory_bytes"].as_u64().unwrap_or(0));
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.1} | {:.2} |",
            r["model"].as_str().unwrap_or(""),
            r["quant"].as_str().unwrap_or(""),
            mem(0),
            mem(1),
            mem(2),
            if r["fits"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            },
            r["prefill_tokens_per_s"].as_f64().unwrap_or(0.0),
            r["decode_tokens_per_s"].as_f64().unwrap_or(0.0),
        )?;
    }
    Ok(())
}
