//! `HEARTH_KV_CACHE_TYPE=q8_0` / `q4_0` (Ollama's `OLLAMA_KV_CACHE_TYPE`):
//! the server answers a chat from a quantized KV cache, and the same
//! `HEARTH_KV_CACHE_MEMORY` holds more blocks (`hearth_kv_cache_blocks` in
//! /metrics): 34/64 of f16's bytes per value for q8_0, 18/64 for q4_0.

mod serve_common;

use serde_json::json;
use serve_common::Scratch;

/// Serves `kv_type` with a 512 KiB pool, answers one chat, and returns the
/// pool's block count from /metrics.
fn blocks_with(kv_type: &str) -> u64 {
    let scratch = Scratch::new(&format!("kv-type-{kv_type}"));
    let server = scratch.serve(&[
        ("HEARTH_KV_CACHE_TYPE", kv_type),
        ("HEARTH_KV_CACHE_MEMORY", "512KiB"),
        // Room for every block: the pool never exceeds the sequences' whole
        // training contexts (16 x 256 positions of the tiny model).
        ("HEARTH_NUM_PARALLEL", "16"),
    ]);
    scratch.ok(&server.host, &["create", "tiny", "-f", "Modelfile"]);
    let (status, body) = server.post(
        "/api/chat",
        &json!({
            "model": "tiny",
            "messages": [{"role": "user", "content": "hello there"}],
            "stream": false,
            "options": {"num_predict": 8, "temperature": 0}
        }),
    );
    assert_eq!(status, 200, "{kv_type}: {body}");
    assert_eq!(body["done"], true, "{kv_type}: {body}");
    assert!(
        body["eval_count"].as_u64().unwrap() > 0,
        "{kv_type}: {body}"
    );
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("hearth_kv_cache_blocks{"))
        .unwrap_or_else(|| panic!("{kv_type}: no hearth_kv_cache_blocks in\n{metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn quantized_kv_caches_serve_chats_and_hold_more_blocks_in_the_same_memory() {
    let f16 = blocks_with("f16");
    let q8_0 = blocks_with("q8_0");
    let q4_0 = blocks_with("q4_0");
    // Two layers of 2 KV heads of 64 values, blocks of 16 positions: 16 KiB a
    // block in f16, 8.5 KiB in q8_0, 4.5 KiB in q4_0.
    assert_eq!((f16, q8_0, q4_0), (32, 60, 113));
}

#[test]
fn an_unknown_kv_type_stops_the_server_with_the_variable_named() {
    let scratch = Scratch::new("kv-type-bad");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("serve")
        .env("HEARTH_HOST", "127.0.0.1:1")
        .env("HEARTH_MODELS", scratch.models())
        .env("HEARTH_KV_CACHE_TYPE", "q5_1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = serve_common::text(&out.stderr);
    assert!(
        err.contains("HEARTH_KV_CACHE_TYPE") && err.contains("q8_0"),
        "{err}"
    );
}
