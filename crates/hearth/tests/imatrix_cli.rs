//! `hearth imatrix` as a real process on a tiny F32 model: the file it writes is
//! llama-imatrix's GGUF layout, readable by `quantize --imatrix`; its first
//! layer's attention entries equal the sums of squared normalised embeddings
//! computed here from the model file; matrices fed the same input agree;
//! `hearth quantize --imatrix` uses it; and on the same text its numbers are
//! llama-imatrix's within float tolerance.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gguf::{GgufFile, TensorType};
use model::synthetic::Spec;
use model::tokenizer::Tokenizer;
use store::quantize::Imatrix;

const CTX: usize = 32;

fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-imatrix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn hearth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn f32s(file: &GgufFile, name: &str) -> Vec<f32> {
    let t = file.tensor(name).unwrap();
    assert_eq!(t.ty, TensorType::F32, "{name}");
    file.tensor_data(t)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The input of layer 0's attention for each token of `chunks`: its embedding,
/// RMS-normalised and scaled by attn_norm (what attn_q, attn_k and attn_v see).
fn expected_attn_sums(model: &Path, chunks: &[Vec<u32>]) -> Vec<f32> {
    let file = GgufFile::open(model).unwrap();
    let emb = f32s(&file, "token_embd.weight");
    let norm = f32s(&file, "blk.0.attn_norm.weight");
    let eps = file
        .metadata()
        .get_f32("llama.attention.layer_norm_rms_epsilon")
        .unwrap();
    let n = norm.len();
    let mut sums = vec![0f64; n];
    for &t in chunks.iter().flatten() {
        let x = &emb[t as usize * n..(t as usize + 1) * n];
        let ms = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / n as f64;
        let scale = 1.0 / (ms + f64::from(eps)).sqrt();
        for ((s, &v), &w) in sums.iter_mut().zip(x).zip(&norm) {
            let y = f64::from(v) * scale * f64::from(w);
            *s += y * y;
        }
    }
    sums.into_iter().map(|s| s as f32).collect()
}

#[test]
fn computes_llama_imatrix_statistics_that_quantize_uses() {
    let d = dir();
    let model = d.join("tiny-F32.gguf");
    Spec::tiny_llama().write(&model, TensorType::F32).unwrap();
    let corpus = d.join("corpus.txt");
    let sentence = "The quick brown fox jumps over the lazy dog while the cat sleeps. ";
    std::fs::write(&corpus, sentence.repeat(40)).unwrap();
    let out = d.join("imatrix.gguf");
    let run = hearth(&[
        "imatrix",
        model.to_str().unwrap(),
        "-f",
        corpus.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-c",
        &CTX.to_string(),
        "--chunks",
        "3",
        "-t",
        "2",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));

    // The chunks hearth ran: CTX tokens each, BOS first.
    let file = GgufFile::open(&model).unwrap();
    let tok = Tokenizer::from_metadata(file.metadata()).unwrap();
    let ids = tok.encode(
        &std::fs::read_to_string(&corpus).unwrap(),
        tok.add_bos(),
        false,
    );
    let chunks: Vec<Vec<u32>> = ids
        .chunks_exact(CTX)
        .take(3)
        .map(|c| {
            let mut c = c.to_vec();
            if let (true, Some(bos)) = (tok.add_bos(), tok.bos()) {
                c[0] = bos;
            }
            c
        })
        .collect();
    assert_eq!(chunks.len(), 3);

    let written = GgufFile::open(&out).unwrap();
    assert_eq!(
        written.metadata().get_str("general.type").unwrap(),
        "imatrix"
    );
    assert_eq!(
        written.metadata().get_u32("imatrix.chunk_count").unwrap(),
        3
    );
    assert_eq!(
        written.metadata().get_u32("imatrix.chunk_size").unwrap(),
        CTX as u32
    );
    let counts = f32s(&written, "blk.1.ffn_down.weight.counts");
    assert_eq!(counts, vec![(3 * CTX) as f32]);
    let raw = |name: &str| f32s(&written, &format!("{name}.in_sum2"));
    let expected = expected_attn_sums(&model, &chunks);
    for name in [
        "blk.0.attn_q.weight",
        "blk.0.attn_k.weight",
        "blk.0.attn_v.weight",
    ] {
        let got = raw(name);
        assert_eq!(got.len(), expected.len(), "{name}");
        for (j, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!(
                (g - e).abs() <= 1e-4 * e.abs().max(1e-3),
                "{name}[{j}]: {g} vs {e}"
            );
        }
    }
    assert_eq!(raw("blk.1.ffn_gate.weight"), raw("blk.1.ffn_up.weight"));
    assert!(written.tensor("output.weight.in_sum2").is_none());

    let imatrix = Imatrix::load(&out).unwrap();
    assert_eq!(imatrix.entries.len(), 14, "7 matrices in each of 2 layers");
    let mean = &imatrix.entries["blk.0.attn_q.weight"];
    assert!((mean[0] - expected[0] / (3 * CTX) as f32).abs() <= 1e-4 * mean[0].abs());

    let plain = d.join("plain.gguf");
    let weighted = d.join("weighted.gguf");
    for (path, extra) in [
        (&plain, vec![]),
        (&weighted, vec!["--imatrix", out.to_str().unwrap()]),
    ] {
        let mut args = vec!["quantize"];
        args.extend(extra);
        args.extend([model.to_str().unwrap(), path.to_str().unwrap(), "Q4_K_M"]);
        let run = hearth(&args);
        assert!(run.status.success(), "{}", text(&run.stderr));
    }
    let w = GgufFile::open(&weighted).unwrap();
    assert_eq!(
        w.metadata()
            .get_u32("quantize.imatrix.entries_count")
            .unwrap(),
        14
    );
    let q = |f: &Path| {
        let g = GgufFile::open(f).unwrap();
        let t = g.tensor("blk.0.attn_q.weight").unwrap().clone();
        g.tensor_data(&t).to_vec()
    };
    assert_ne!(
        q(&plain),
        q(&weighted),
        "the imatrix changes the weighted quantizer's bytes"
    );
}

/// How far hearth's sums may be from llama-imatrix's, relative: the inputs of
/// deeper products differ in their last bits (ggml's CPU backend sums dot
/// products in another order and with fused multiply-adds), and sums of squares
/// over 96 tokens carry that along. Measured worst: 2.6e-3 (ffn_down inputs).
const LLAMA_IMATRIX_TOLERANCE: f32 = 1e-2;

/// The same model and text as llama-imatrix (imatrix-ref-tiny-llama.gguf, from
/// tools/reference/gen_llama_quantize_fixtures.py): the same entries, the same
/// counts, sums within [`LLAMA_IMATRIX_TOLERANCE`].
#[test]
fn equals_llama_imatrix_within_float_tolerance() {
    let d = dir().join("vs-llama");
    std::fs::create_dir_all(&d).unwrap();
    let model = d.join("tiny-llama.gguf");
    Spec::tiny_llama().write(&model, TensorType::F32).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/tests/fixtures/quantize");
    let out = d.join("ours.gguf");
    let run = hearth(&[
        "imatrix",
        model.to_str().unwrap(),
        "-f",
        fixtures.join("imatrix-corpus.txt").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-c",
        "32",
        "--chunks",
        "3",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let ours = GgufFile::open(&out).unwrap();
    let theirs = GgufFile::open(fixtures.join("imatrix-ref-tiny-llama.gguf")).unwrap();
    let names = |f: &GgufFile| {
        f.tensors()
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&ours), names(&theirs));
    for key in ["imatrix.chunk_count", "imatrix.chunk_size"] {
        assert_eq!(
            ours.metadata().get_u32(key).unwrap(),
            theirs.metadata().get_u32(key).unwrap(),
            "{key}"
        );
    }
    for t in theirs.tensors() {
        let (a, b) = (f32s(&ours, &t.name), f32s(&theirs, &t.name));
        assert_eq!(a.len(), b.len(), "{}", t.name);
        if t.name.ends_with(".counts") {
            assert_eq!(a, b, "{}", t.name);
            continue;
        }
        for (j, (x, y)) in a.iter().zip(&b).enumerate() {
            let rel = (x - y).abs() / y.abs().max(1e-6);
            assert!(
                rel <= LLAMA_IMATRIX_TOLERANCE,
                "{}[{j}]: {x} vs llama-imatrix {y}",
                t.name
            );
        }
    }
}
