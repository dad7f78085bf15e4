//! `hearth eval perplexity | kld | needle` as a real process.
//!
//! The perplexities and KL-divergence statistics are llama-perplexity's
//! (tools/eval-fixtures/gen.py, `-fa off`; fixtures/eval/perplexity.json) on
//! the built-in model and on random-weight tiny Llamas rebuilt here from the
//! fixtures' seed by the same writer (`Spec::tiny_llama().write`, which the
//! `synth` example runs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gguf::TensorType;
use model::synthetic::Spec;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval")
}

fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The fixtures' models by name: hearth-tiny, tiny-llama-{F16,Q4_0,Q8_0}.
fn model(name: &str) -> PathBuf {
    if name == "hearth-tiny" {
        return Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/hearth-tiny/hearth-tiny.gguf");
    }
    let ty = match name {
        "tiny-llama-F16" => TensorType::F16,
        "tiny-llama-Q4_0" => TensorType::Q4_0,
        "tiny-llama-Q8_0" => TensorType::Q8_0,
        other => panic!("no fixture model {other}"),
    };
    let path = dir().join(format!("{name}.gguf"));
    if !path.exists() {
        let tmp = dir().join(format!("{name}.{:?}.tmp", std::thread::current().id()));
        Spec::tiny_llama().write(&tmp, ty).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

fn hearth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .env("HEARTH_MODELS", dir().join("store"))
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "hearth failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("perplexity.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn perplexity_equals_llama_perplexity_final_estimate() {
    let reference = reference();
    let cases = reference["perplexity"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let name = case["model"].as_str().unwrap();
        let path = model(name);
        let text = fixtures().join(case["text"].as_str().unwrap());
        let ctx = case["ctx"].as_u64().unwrap().to_string();
        let out = hearth(&[
            "eval",
            "perplexity",
            path.to_str().unwrap(),
            "-f",
            text.to_str().unwrap(),
            "--ctx",
            &ctx,
            "--json",
        ]);
        let got = json(&out);
        let want = case["ppl"].as_f64().unwrap();
        let ppl = got["ppl"].as_f64().unwrap();
        assert!(
            (ppl - want).abs() <= 1e-3 * want,
            "{name} ctx {ctx}: hearth {ppl}, llama-perplexity {want}"
        );
        assert_eq!(got["n_chunks"], case["n_chunks"], "{name} ctx {ctx}");
        let unc = got["ppl_uncertainty"].as_f64().unwrap();
        let want_unc = case["ppl_uncertainty"].as_f64().unwrap();
        assert!(
            (unc - want_unc).abs() <= 1e-2 * want_unc + 1e-5,
            "{unc} vs {want_unc}"
        );
        // Progress went to stderr, one line per chunk, ending with the last.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let n = case["n_chunks"].as_u64().unwrap();
        assert!(stderr.contains(&format!("[{n}/{n}] PPL")), "{stderr}");
    }
}

#[test]
fn perplexity_reports_by_position_and_plots() {
    let text = fixtures().join("synthetic.txt");
    let svg = dir().join("ppl.svg");
    let path = model("tiny-llama-Q8_0");
    let out = hearth(&[
        "eval",
        "perplexity",
        path.to_str().unwrap(),
        "-f",
        text.to_str().unwrap(),
        "--ctx",
        "64",
        "--chunks",
        "3",
        "--buckets",
        "4",
        "--json",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let got = json(&out);
    assert_eq!(got["n_chunks"], 3);
    assert_eq!(got["n_scored"], 3 * (64 - 32 - 1));
    let buckets = got["by_position"].as_array().unwrap();
    assert_eq!(buckets.len(), 4);
    // Every position 0..63 predicts the next token: 63 per chunk, in order.
    let total: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 3 * 63);
    assert_eq!(buckets[0]["start"], 0);
    assert_eq!(buckets[3]["end"], 63);
    assert!(buckets.iter().all(|b| b["ppl"].as_f64().unwrap() > 1.0));
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("Perplexity by context position"));

    // The table form prints the final estimate in llama-perplexity's words.
    let out = hearth(&[
        "eval",
        "perplexity",
        path.to_str().unwrap(),
        "-f",
        text.to_str().unwrap(),
        "--ctx",
        "64",
        "--chunks",
        "2",
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Final estimate: PPL = "), "{stdout}");
}

#[test]
fn kld_statistics_equal_llama_perplexity() {
    let reference = reference();
    let want = &reference["kld"];
    let text = fixtures().join(want["text"].as_str().unwrap());
    let q = model(want["model"].as_str().unwrap());
    let base = model(want["base"].as_str().unwrap());
    let saved = dir().join("base.kld");
    let out = hearth(&[
        "eval",
        "kld",
        q.to_str().unwrap(),
        "--base",
        base.to_str().unwrap(),
        "-f",
        text.to_str().unwrap(),
        "--ctx",
        &want["ctx"].as_u64().unwrap().to_string(),
        "--save-base-logits",
        saved.to_str().unwrap(),
        "--json",
    ]);
    let got = json(&out);
    let check = |key: &str, value: f64, rel: f64, abs: f64| {
        let w = want[key].as_f64().unwrap();
        assert!(
            (value - w).abs() <= rel * w.abs() + abs,
            "{key}: hearth {value}, llama-perplexity {w}"
        );
    };
    // llama-perplexity prints 6 decimals (3 for percentages).
    check("ppl", got["ppl"].as_f64().unwrap(), 1e-3, 1e-6);
    check("ppl_base", got["ppl_base"].as_f64().unwrap(), 1e-3, 1e-6);
    check(
        "ln_ppl_ratio",
        got["ln_ppl_ratio"].as_f64().unwrap(),
        2e-2,
        2e-5,
    );
    check("kld_mean", got["kld_mean"].as_f64().unwrap(), 1e-2, 2e-6);
    check(
        "kld_median",
        got["kld"]["median"].as_f64().unwrap(),
        1e-2,
        2e-6,
    );
    check("kld_p99", got["kld"]["p99"].as_f64().unwrap(), 2e-2, 2e-6);
    check(
        "p_diff_rms_pct",
        100.0 * got["p_diff_rms"].as_f64().unwrap(),
        1e-2,
        2e-3,
    );
    check(
        "same_top_pct",
        100.0 * got["same_top"].as_f64().unwrap(),
        0.0,
        0.5,
    );

    // The saved base (llama.cpp's --kl-divergence-base format) gives the same
    // statistics without the base model.
    let again = json(&hearth(&[
        "eval",
        "kld",
        q.to_str().unwrap(),
        "--base-logits",
        saved.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(again, got);
}

#[test]
fn bad_input_is_a_clear_error() {
    let tiny = model("tiny-llama-Q8_0");
    let short = dir().join("short.txt");
    std::fs::write(&short, "t300 t301 t302\n").unwrap();
    let out = hearth(&[
        "eval",
        "perplexity",
        tiny.to_str().unwrap(),
        "-f",
        short.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs at least 1024"), "{err}");

    let binary = dir().join("binary.txt");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    let out = hearth(&[
        "eval",
        "perplexity",
        tiny.to_str().unwrap(),
        "-f",
        binary.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid UTF-8"));

    let text = fixtures().join("synthetic.txt");
    let out = hearth(&[
        "eval",
        "perplexity",
        tiny.to_str().unwrap(),
        "-f",
        text.to_str().unwrap(),
        "--ctx",
        "2",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("too small"));

    // Vocabularies of 1024 and 320 tokens cannot be compared.
    let hearth_tiny = model("hearth-tiny");
    let out = hearth(&[
        "eval",
        "kld",
        tiny.to_str().unwrap(),
        "--base",
        hearth_tiny.to_str().unwrap(),
        "-f",
        fixtures().join("hearth-tiny.txt").to_str().unwrap(),
        "--ctx",
        "128",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("vocabulary"));

    let junk = dir().join("junk.kld");
    std::fs::write(&junk, b"not a log-probability file").unwrap();
    let out = hearth(&[
        "eval",
        "kld",
        tiny.to_str().unwrap(),
        "--base-logits",
        junk.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("_logits_"));

    let out = hearth(&[
        "eval",
        "perplexity",
        "/no/such/model.gguf",
        "-f",
        text.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn needle_runs_every_length_and_depth() {
    let tiny = model("tiny-llama-Q8_0");
    let got = json(&hearth(&[
        "eval",
        "needle",
        tiny.to_str().unwrap(),
        // The synthetic vocabulary spells text in bytes: the needle and the
        // question alone take about 170 tokens.
        "--lengths",
        "200,250",
        "--depths",
        "0,0.5,1",
        "--n-predict",
        "4",
        "--json",
    ]));
    let results = got.as_array().unwrap();
    assert_eq!(results.len(), 6);
    for r in results {
        let expected = r["expected"].as_str().unwrap();
        assert_eq!(expected.len(), 4);
        // Found exactly when the answer holds the number (the random model
        // may or may not write it).
        let answer = r["answer"].as_str().unwrap();
        assert_eq!(r["found"].as_bool().unwrap(), answer.contains(expected));
    }
    let out = hearth(&["eval", "needle", tiny.to_str().unwrap(), "--lengths", "64"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no room for a haystack"));
    let out = hearth(&[
        "eval",
        "needle",
        tiny.to_str().unwrap(),
        "--lengths",
        "100000",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("exceed the model's context"));
}
