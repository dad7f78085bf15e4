//! A service set up for Ollama (only `OLLAMA_*` variables) runs hearth
//! unchanged: the server binds `OLLAMA_HOST`, keeps models in `OLLAMA_MODELS`
//! and takes its defaults from the other twins, and the CLI finds it through
//! `OLLAMA_HOST`.

mod serve_common;

use std::process::{Command, Stdio};

use serde_json::json;
use serve_common::{Scratch, text};

#[test]
fn ollama_variables_configure_server_and_cli() {
    let scratch = Scratch::new("ollama-env");
    let server =
        scratch.serve_as_ollama(&[("OLLAMA_CONTEXT_LENGTH", "96"), ("OLLAMA_KEEP_ALIVE", "-1")]);
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(args)
            .current_dir(&scratch.dir)
            .env_remove("HEARTH_HOST")
            .env_remove("HEARTH_MODELS")
            .env("OLLAMA_HOST", &server.host)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    // `create` through the server writes into OLLAMA_MODELS.
    cli(&["create", "tiny", "-f", "Modelfile"]);
    assert!(
        scratch
            .models()
            .join("manifests/registry.ollama.ai/library/tiny/latest")
            .is_file()
    );
    let (status, _) = server.post(
        "/api/generate",
        &json!({"model": "tiny", "prompt": "hi", "stream": false, "options": {"num_predict": 1}}),
    );
    assert_eq!(status, 200);
    // The default context is OLLAMA_CONTEXT_LENGTH, and OLLAMA_KEEP_ALIVE=-1
    // keeps the model loaded for good.
    let ps = server.get("/api/ps");
    assert_eq!(ps["models"][0]["context_length"], 96, "{ps}");
    let year: u32 = ps["models"][0]["expires_at"].as_str().unwrap()[..4]
        .parse()
        .unwrap();
    assert!(year > 2100, "{ps}");
    // `hearth ps` only works through a server: the CLI found it by OLLAMA_HOST.
    assert!(cli(&["ps"]).contains("tiny:latest"));
}
