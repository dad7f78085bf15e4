//! `hearth estimate` and `hearth cost` as real processes: the memory and speed
//! of a local file, of the same file over HTTP read by range requests from a
//! server on 127.0.0.1 that counts the bytes it serves (the header only, never
//! the weights), the table of common shapes, and the cost arithmetic.
//!
//! Every run gets a temporary HOME, so the calibration it measures and saves
//! (~/.hearth/calibration.json) stays in the test's directory.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gguf::TensorType;
use model::synthetic::Spec;
use serde_json::Value;

fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-estimate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tiny Llama in F32 (about 6 MB, most of it weights), written once.
fn model() -> &'static Path {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let path = dir().join("tiny-f32.gguf");
        Spec::tiny_llama().write(&path, TensorType::F32).unwrap();
        path
    })
}

fn hearth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .env("HOME", dir())
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

/// Serves `file` over HTTP/1.1 on 127.0.0.1 (ranges honoured unless
/// `ignore_ranges`), one connection at a time; returns the URL and the count
/// of body bytes written.
fn serve(file: &Path, ignore_ranges: bool) -> (String, Arc<AtomicU64>) {
    let bytes = std::fs::read(file).unwrap();
    let (base, served) = serve_paths(vec![("/model.gguf".to_owned(), bytes)], ignore_ranges);
    (format!("{base}/model.gguf"), served)
}

/// [`serve`] for several paths, each with its body; returns `http://HOST:PORT`.
fn serve_paths(paths: Vec<(String, Vec<u8>)>, ignore_ranges: bool) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap_or(0);
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(r) = lower.strip_prefix("range: bytes=") {
                    let (a, b) = r.trim().split_once('-').unwrap();
                    range = Some((a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()));
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or_default();
            let Some((_, bytes)) = paths
                .iter()
                .find(|(p, _)| request.starts_with("GET ") && p == path)
            else {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                continue;
            };
            let (head, body) = match range {
                Some((a, b)) if !ignore_ranges => {
                    let end = b.min(bytes.len() - 1);
                    (
                        format!(
                            "HTTP/1.1 206 Partial Content\r\ncontent-length: {}\r\ncontent-range: bytes {a}-{end}/{}\r\nconnection: close\r\n\r\n",
                            end + 1 - a,
                            bytes.len()
                        ),
                        &bytes[a..=end],
                    )
                }
                _ => (
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        bytes.len()
                    ),
                    &bytes[..],
                ),
            };
            let _ = stream.write_all(head.as_bytes());
            for chunk in body.chunks(16 << 10) {
                if stream.write_all(chunk).is_err() {
                    break;
                }
                counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        }
    });
    (base, served)
}

#[test]
fn local_and_remote_estimates_agree_and_remote_reads_only_the_header() {
    let path = model();
    let size = std::fs::metadata(path).unwrap().len();
    let args = ["--ctx", "256", "--parallel", "2", "--json"];
    let local = json(&hearth(
        &[&["estimate", path.to_str().unwrap()][..], &args].concat(),
    ));
    let memory = local["memory_bytes"].as_u64().unwrap();
    let weights = local["weights_bytes"].as_u64().unwrap();
    // 2 layers × K and V × 256 positions × 128 values × 2 bytes × 2 sequences.
    assert_eq!(local["kv_cache_bytes"], 2 * 2 * 256 * 128 * 2 * 2);
    assert!(
        weights > size - 64 * 1024 && weights < size,
        "{weights} of {size}"
    );
    assert!(memory > weights + 2 * 2 * 256 * 128 * 2 * 2);
    assert!(local["fits"].is_boolean());
    assert!(local["prefill_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(local["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    // The calibration was saved under HOME and is reused.
    let cal = std::fs::read_to_string(dir().join(".hearth/calibration.json")).unwrap();
    assert!(cal.contains("memory_bandwidth_bytes_per_s"));

    let (url, served) = serve(path, false);
    let remote = json(&hearth(&[&["estimate", &url][..], &args].concat()));
    for key in [
        "memory_bytes",
        "weights_bytes",
        "kv_cache_bytes",
        "compute_bytes",
        "fits",
    ] {
        assert_eq!(remote[key], local[key], "{key}");
    }
    let read = served.load(Ordering::SeqCst);
    // 256 KiB of header and the 1-byte range that asks the file's size.
    assert!(
        read > 0 && read <= 256 * 1024 + 1,
        "served {read} of {size} bytes"
    );
    assert!(
        remote["model"]
            .as_str()
            .unwrap()
            .contains(&format!("of {size} bytes read"))
    );

    // A server that ignores ranges still gives the header (the rest of the
    // body is not read).
    let (url, _) = serve(path, true);
    let plain = json(&hearth(&[&["estimate", &url][..], &args].concat()));
    assert_eq!(plain["memory_bytes"], local["memory_bytes"]);

    let missing = url.replace("model.gguf", "missing.gguf");
    let out = hearth(&["estimate", &missing]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.gguf: not found"), "{err}");
}

#[test]
fn kv_type_and_parallel_scale_the_cache() {
    let path = model().to_str().unwrap();
    let f16 = json(&hearth(&["estimate", path, "--ctx", "1024", "--json"]));
    let q8 = json(&hearth(&[
        "estimate",
        path,
        "--ctx",
        "1024",
        "--kv-type",
        "q8_0",
        "--json",
    ]));
    let four = json(&hearth(&[
        "estimate",
        path,
        "--ctx",
        "1024",
        "--parallel",
        "4",
        "--json",
    ]));
    let kv = |v: &Value| v["kv_cache_bytes"].as_u64().unwrap();
    assert_eq!(kv(&f16), 2 * 2 * 1024 * 128 * 2);
    assert_eq!(kv(&q8), 2 * 2 * 1024 * 128 / 32 * 34);
    assert_eq!(kv(&four), 4 * kv(&f16));
    let out = hearth(&["estimate", path, "--kv-type", "q3"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kv-type q3"));
    let out = hearth(&["estimate", "/no/such/file.gguf"]);
    assert!(!out.status.success());

    // A model of the store by name: the built-in one (1 771 200 weights).
    let tiny = json(&hearth(&["estimate", "hearth-tiny", "--json"]));
    assert_eq!(tiny["n_params"], 1_771_200);
    // A name without a registry host is looked for in the store only.
    let out = hearth(&["estimate", "no-such-model"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not found"), "{err}");
    assert!(
        err.contains("registry.ollama.ai/library/no-such-model"),
        "{err}"
    );
}

#[test]
fn table_covers_sizes_quants_and_contexts() {
    let rows = json(&hearth(&["estimate", "--table", "--json"]));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4 * 3 * 3);
    let find = |model: &str, quant: &str, ctx: u64| {
        rows.iter()
            .find(|r| {
                r["model"].as_str().unwrap().starts_with(model)
                    && r["quant"] == quant
                    && r["n_ctx"] == ctx
            })
            .unwrap()
    };
    let mem = |r: &Value| r["memory_bytes"].as_u64().unwrap();
    // Bigger models, wider formats and longer contexts need more memory.
    assert!(mem(find("7B", "Q4_K_M", 4096)) < mem(find("7B", "Q8_0", 4096)));
    assert!(mem(find("7B", "Q8_0", 4096)) < mem(find("7B", "F16", 4096)));
    assert!(mem(find("8B", "Q4_K_M", 4096)) < mem(find("8B", "Q4_K_M", 32768)));
    assert!(mem(find("13B", "F16", 4096)) < mem(find("70B", "F16", 4096)));
    // Llama-3.1-8B's F16 weights: about 8.03e9 × 2 bytes.
    let w = find("8B", "F16", 4096)["weights_bytes"].as_u64().unwrap();
    assert!((15_900_000_000..16_200_000_000).contains(&w), "{w}");
    let text = hearth(&["estimate", "--table"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("| 70B (Llama-3.1) | F16 |"));
}

#[test]
fn cost_compares_local_and_cloud() {
    let got = json(&hearth(&[
        "cost",
        "--tokens-per-s",
        "20",
        "--watts",
        "50",
        "--electricity-per-kwh",
        "0.30",
        "--hardware-price",
        "1800",
        "--lifetime-months",
        "36",
        "--monthly-tokens",
        "10000000",
        "--cloud",
        "mid=10",
        "--json",
    ]));
    let r = &got["report"];
    // 50 W × 50 000 s per million tokens = 0.6944 kWh × 0.30 = 0.2083; 1800 /
    // 36 months / 10 M = 5.0 per million; break-even 1800 / (100 − 2.0833).
    assert!((r["energy_per_mtok"].as_f64().unwrap() - 0.208_333).abs() < 1e-6);
    assert!((r["hardware_per_mtok"].as_f64().unwrap() - 5.0).abs() < 1e-9);
    let be = r["clouds"][0]["break_even_months"].as_f64().unwrap();
    assert!((be - 18.383).abs() < 1e-3);

    // Measured on the built-in model: some throughput, power from RAPL or the default.
    let svg = dir().join("cost.svg");
    let got = json(&hearth(&[
        "cost",
        "--model",
        "hearth-tiny",
        "--json",
        "--plot",
        svg.to_str().unwrap(),
    ]));
    assert!(got["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(got["watts"].as_f64().unwrap() > 0.0);
    assert_eq!(got["report"]["clouds"].as_array().unwrap().len(), 3);
    assert!(
        std::fs::read_to_string(&svg)
            .unwrap()
            .contains("Cumulative cost")
    );

    let out = hearth(&["cost", "--tokens-per-s", "10", "--cloud", "nonsense"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME=PRICE"));
    let out = hearth(&["cost", "--tokens-per-s", "0"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be positive"));
    let out = hearth(&["cost"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tokens-per-s"));
}

#[test]
fn a_registry_model_is_estimated_from_its_header_without_a_pull() {
    let path = model();
    let bytes = std::fs::read(path).unwrap();
    let size = bytes.len();
    // A registry holding the model as `library/tiny:latest` (the digest is
    // only a name here: an estimate reads a prefix and checks no digest).
    let digest = format!("sha256:{}", "ab".repeat(32));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": format!("sha256:{}", "cd".repeat(32)), "size": 2},
        "layers": [{"mediaType": "application/vnd.ollama.image.model",
                    "digest": digest, "size": size}],
    });
    let (base, served) = serve_paths(
        vec![
            (
                "/v2/library/tiny/manifests/latest".to_owned(),
                serde_json::to_vec(&manifest).unwrap(),
            ),
            (format!("/v2/library/tiny/blobs/{digest}"), bytes),
        ],
        false,
    );
    let host = base.trim_start_matches("http://");
    let args = ["--ctx", "256", "--json"];
    let local = json(&hearth(
        &[&["estimate", path.to_str().unwrap()][..], &args].concat(),
    ));
    let name = format!("{host}/library/tiny:latest");
    let remote = json(&hearth(
        &[&["estimate", &name, "--insecure"][..], &args].concat(),
    ));
    for key in ["memory_bytes", "weights_bytes", "kv_cache_bytes", "fits"] {
        assert_eq!(remote[key], local[key], "{key}");
    }
    // The manifest and 256 KiB of the model.
    let read = served.load(Ordering::SeqCst) as usize;
    let manifest_len = serde_json::to_vec(&manifest).unwrap().len();
    assert!(
        read <= manifest_len + 256 * 1024,
        "served {read} of {size} bytes"
    );
    // Without --insecure the registry is reached over https only, as a pull
    // reaches it, which this plain-http one does not answer.
    let out = hearth(&["estimate", &name]);
    assert!(!out.status.success());
    // A name the registry does not have says so.
    let out = hearth(&[
        "estimate",
        &format!("{host}/library/ghost:latest"),
        "--insecure",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
