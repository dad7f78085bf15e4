//! Writes a small llama-shaped GGUF file with random weights, for trying
//! `hearth show` and for seeding tests and fuzzing without downloading a model.
//!
//! ```text
//! cargo run -p gguf --example write_sample -- PATH.gguf [--layers N] [--embd N] [--vocab N] [--split N]
//! ```
//!
//! `--embd` must be a multiple of 32 (Q8_0 rows); `--split N` writes
//! `PATH-00001-of-0000N.gguf` and so on, metadata in the first shard, as llama.cpp's
//! gguf-split does.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use gguf::{Array, GgufWriter, TensorType, Value};

struct Shape {
    n_layer: u64,
    n_embd: u64,
    n_vocab: u64,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut shape = Shape {
        n_layer: 2,
        n_embd: 64,
        n_vocab: 288,
    };
    let mut n_split = 1u64;
    while let Some(arg) = args.next() {
        let mut number = |what: &str| -> Result<u64, String> {
            let v = args.next().ok_or(format!("{what} needs a value"))?;
            v.parse()
                .map_err(|_| format!("{what}: '{v}' is not a number"))
        };
        match arg.as_str() {
            "--layers" => shape.n_layer = number("--layers")?,
            "--embd" => shape.n_embd = number("--embd")?,
            "--vocab" => shape.n_vocab = number("--vocab")?,
            "--split" => n_split = number("--split")?,
            _ if path.is_none() && !arg.starts_with("--") => path = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument '{arg}'")),
        }
    }
    let path = path
        .ok_or("usage: write_sample PATH.gguf [--layers N] [--embd N] [--vocab N] [--split N]")?;
    if shape.n_embd == 0 || !shape.n_embd.is_multiple_of(32) || shape.n_vocab < 3 || n_split == 0 {
        return Err(
            "--embd must be a positive multiple of 32, --vocab at least 3, --split at least 1"
                .into(),
        );
    }
    let tensors = tensors(&shape);
    if n_split > tensors.len() as u64 {
        return Err(format!(
            "--split {n_split} is more than the {} tensors",
            tensors.len()
        ));
    }
    let mut shards: Vec<GgufWriter> = (0..n_split).map(|_| GgufWriter::new()).collect();
    add_metadata(&mut shards[0], &shape);
    let per_shard = (tensors.len() as u64).div_ceil(n_split) as usize;
    let mut rng = SplitMix64(0x5eed);
    for (i, (name, ty, dims)) in tensors.iter().enumerate() {
        let data = random_data(*ty, dims, &mut rng);
        shards[i / per_shard]
            .add_tensor(name, *ty, dims, &data)
            .map_err(|e| e.to_string())?;
    }
    if n_split == 1 {
        return shards[0].write_file(&path).map_err(|e| e.to_string());
    }
    for (i, shard) in shards.iter_mut().enumerate() {
        // Types as gguf-py's add_shard_kv_data writes them.
        shard.add("split.no", Value::U16(i as u16));
        shard.add("split.count", Value::U16(n_split as u16));
        shard.add("split.tensors.count", Value::I32(tensors.len() as i32));
        let shard_path = shard_path(&path, i as u64 + 1, n_split)?;
        shard.write_file(&shard_path).map_err(|e| e.to_string())?;
        println!("{}", shard_path.display());
    }
    Ok(())
}

fn shard_path(path: &Path, i: u64, n: u64) -> Result<PathBuf, String> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or("PATH needs a file name")?;
    Ok(path.with_file_name(format!("{stem}-{i:05}-of-{n:05}.gguf")))
}

fn add_metadata(w: &mut GgufWriter, s: &Shape) {
    let head_dim = 16;
    let n_head = (s.n_embd / head_dim) as u32;
    w.add_str("general.architecture", "llama");
    w.add_str("general.name", "hearth sample (random weights)");
    // LLAMA_FTYPE_MOSTLY_Q8_0 (llama.h).
    w.add_u32("general.file_type", 7);
    w.add_u32("general.quantization_version", 2);
    w.add_u32("llama.context_length", 2048);
    w.add_u32("llama.embedding_length", s.n_embd as u32);
    w.add_u32("llama.block_count", s.n_layer as u32);
    w.add_u32("llama.feed_forward_length", 2 * s.n_embd as u32);
    w.add_u32("llama.attention.head_count", n_head);
    w.add_u32("llama.attention.head_count_kv", n_head.div_ceil(2));
    w.add_u32("llama.rope.dimension_count", head_dim as u32);
    w.add_f32("llama.rope.freq_base", 10000.0);
    w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5);
    w.add_str("tokenizer.ggml.model", "llama");
    let mut tokens = vec!["<unk>".to_owned(), "<s>".to_owned(), "</s>".to_owned()];
    tokens.extend((0..s.n_vocab - 3).map(|i| match i {
        0..=255 => format!("<0x{i:02X}>"),
        _ => format!("tok{i}"),
    }));
    let scores: Vec<f32> = (0..s.n_vocab).map(|i| 0.0 - i as f32).collect();
    // llama_token_type: 2 unknown, 3 control, 6 byte, 1 normal.
    let types: Vec<i32> = (0..s.n_vocab)
        .map(|i| match i {
            0 => 2,
            1 | 2 => 3,
            3..=258 => 6,
            _ => 1,
        })
        .collect();
    w.add_str_array("tokenizer.ggml.tokens", &tokens);
    w.add_f32_array("tokenizer.ggml.scores", &scores);
    w.add("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    w.add_u32("tokenizer.ggml.bos_token_id", 1);
    w.add_u32("tokenizer.ggml.eos_token_id", 2);
    w.add_str(
        "tokenizer.chat_template",
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}\
         {% if add_generation_prompt %}<|assistant|>{% endif %}",
    );
}

/// Tensor names and shapes (`ne[0]` first) of a llama model, as llama.cpp names them.
fn tensors(s: &Shape) -> Vec<(String, TensorType, Vec<u64>)> {
    let (e, ff) = (s.n_embd, 2 * s.n_embd);
    let kv = (e / 16).div_ceil(2) * 16;
    let mut out = vec![(
        "token_embd.weight".to_owned(),
        TensorType::Q8_0,
        vec![e, s.n_vocab],
    )];
    for l in 0..s.n_layer {
        let layer: [(&str, TensorType, Vec<u64>); 9] = [
            ("attn_norm", TensorType::F32, vec![e]),
            ("attn_q", TensorType::Q8_0, vec![e, e]),
            ("attn_k", TensorType::Q8_0, vec![e, kv]),
            ("attn_v", TensorType::Q8_0, vec![e, kv]),
            ("attn_output", TensorType::Q8_0, vec![e, e]),
            ("ffn_norm", TensorType::F32, vec![e]),
            ("ffn_gate", TensorType::Q8_0, vec![e, ff]),
            ("ffn_up", TensorType::Q8_0, vec![e, ff]),
            ("ffn_down", TensorType::Q8_0, vec![ff, e]),
        ];
        out.extend(
            layer
                .into_iter()
                .map(|(n, ty, d)| (format!("blk.{l}.{n}.weight"), ty, d)),
        );
    }
    out.push(("output_norm.weight".to_owned(), TensorType::F32, vec![e]));
    out.push((
        "output.weight".to_owned(),
        TensorType::Q8_0,
        vec![e, s.n_vocab],
    ));
    out
}

/// Norm weights of 1.0; Q8_0 blocks (ggml-common.h `block_q8_0`: f16 scale, 32 × i8)
/// with scale 0.01 and random quants.
fn random_data(ty: TensorType, dims: &[u64], rng: &mut SplitMix64) -> Vec<u8> {
    let n: u64 = dims.iter().product();
    match ty {
        TensorType::F32 => (0..n).flat_map(|_| 1.0f32.to_le_bytes()).collect(),
        TensorType::Q8_0 => {
            // 0x211f is the f16 nearest to 0.01.
            let block = |rng: &mut SplitMix64| {
                let mut b = vec![0x1f, 0x21];
                b.extend((0..32).map(|_| rng.next() as u8));
                b
            };
            (0..n / 32).flat_map(|_| block(rng)).collect()
        }
        _ => unreachable!("the sample uses only F32 and Q8_0"),
    }
}

/// SplitMix64: small, seeded, good enough for filler weights.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
