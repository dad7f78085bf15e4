//! `hearth run`'s interactive commands behave the same on a model loaded by
//! the command itself and on a model of a running server.

mod serve_common;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;
use serve_common::{Scratch, free_port, text};

/// Commands only (no question, whose answer could differ between the two
/// paths' batching), covering every `/show` part, `/set` and `/load`.
const SCRIPT: &str = "/set parameter num_predict 3\n\
                      /set parameter temperature 0\n\
                      /set parameter warmth 2\n\
                      /show parameters\n\
                      /show system\n\
                      /show info\n\
                      /show template\n\
                      /show license\n\
                      /load tiny-sys\n\
                      /show system\n\
                      /show parameters\n\
                      /show info\n\
                      /load nosuch\n\
                      /set system Be terse.\n\
                      /show system\n\
                      /show modelfile\n\
                      /bye\n";

/// `hearth run tiny` with SCRIPT on stdin, against `host`.
fn repl(scratch: &Scratch, host: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["run", "tiny"])
        .current_dir(&scratch.dir)
        .env("HEARTH_MODELS", scratch.models())
        .env("HEARTH_HOST", host)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(SCRIPT.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    stdout
}

#[test]
fn repl_commands_are_the_same_with_and_without_a_server() {
    let scratch = Scratch::new("repl");
    let server = scratch.serve(&[]);
    let host = server.host.as_str();
    scratch.ok(host, &["create", "tiny", "-f", "Modelfile"]);
    let (status, body) = server.post(
        "/api/create",
        &json!({"model": "tiny-sys", "from": "tiny", "system": "Be brief.",
                "parameters": {"temperature": 0.5, "top_k": 7, "stop": ["<|im_end|>"]},
                "license": "MIT", "stream": false}),
    );
    assert_eq!(status, 200, "{body}");

    let remote = repl(&scratch, host);
    let nowhere = format!("127.0.0.1:{}", free_port());
    let local = repl(&scratch, &nowhere);

    // What each command printed.
    for expected in [
        "Set parameter 'num_predict' to '3'\n",
        "error: option 'warmth': unknown parameter",
        "No system message was specified for this model.\n",
        "No parameters was specified for this model.\n",
        "No license was specified for this model.\n",
        "    architecture        llama\n",
        "    num_predict         3\n",
        "    temperature         0\n",
        "{% for message in messages %}",
        "Loading model 'tiny-sys'\n",
        "Be brief.\n",
        // /set parameter settings stay across /load (as in Ollama); the new
        // model's own parameters apply where none was set.
        "    top_k               7\n",
        "stop                \"<|im_end|>\"\n",
        "Loading model 'nosuch'\nerror: model 'nosuch",
        "Set system message.\nBe terse.\n",
        "FROM ",
    ] {
        assert!(remote.contains(expected), "{expected:?} not in\n{remote}");
        assert!(local.contains(expected), "{expected:?} not in\n{local}");
    }
    // After /load tiny-sys, temperature stays the 0 set by /set parameter.
    let after_load = remote.split("Loading model 'tiny-sys'").nth(1).unwrap();
    assert!(
        after_load.contains("    temperature         0\n"),
        "{after_load}"
    );

    // Line for line the same, but for what only the process that loaded the
    // model knows (its thread count) and where the store is (standalone only).
    let comparable = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| !l.starts_with("    num_thread") && !l.starts_with("models are kept in"))
            .map(str::to_owned)
            .collect()
    };
    let (remote, local) = (comparable(&remote), comparable(&local));
    for (i, (r, l)) in remote.iter().zip(&local).enumerate() {
        assert_eq!(
            r, l,
            "line {i} differs: server\n{remote:#?}\nstandalone\n{local:#?}"
        );
    }
    assert_eq!(remote.len(), local.len(), "{remote:#?}\n{local:#?}");
}

#[test]
fn create_errors_are_the_same_with_and_without_a_server() {
    let scratch = Scratch::new("create-errors");
    let server = scratch.serve(&[]);
    let nowhere = format!("127.0.0.1:{}", free_port());
    std::fs::create_dir_all(scratch.dir.join("stdir")).unwrap();
    for (file, from, expected) in [
        ("Dir", "./stdir", "FROM ./stdir: importing a directory"),
        ("Missing", "./missing.gguf", "missing.gguf"),
    ] {
        std::fs::write(scratch.dir.join(file), format!("FROM {from}\n")).unwrap();
        let remote = scratch.hearth(&server.host, &["create", "x", "-f", file]);
        let local = scratch.hearth(&nowhere, &["create", "x", "-f", file]);
        assert!(!remote.status.success() && !local.status.success());
        let (remote, local) = (text(&remote.stderr), text(&local.stderr));
        assert!(remote.contains(expected), "{remote}");
        assert_eq!(remote, local);
    }
}

#[test]
fn run_keepalive_reaches_the_server() {
    let scratch = Scratch::new("keepalive");
    let server = scratch.serve(&[]);
    scratch.ok(&server.host, &["create", "tiny", "-f", "Modelfile"]);
    let args = ["run", "tiny", "Hello", "--num-predict", "2", "--nowordwrap"];
    scratch.ok(&server.host, &[&args[..], &["--keepalive", "1h"]].concat());
    let ps = server.get("/api/ps");
    let expires = ps["models"][0]["expires_at"].as_str().unwrap().to_owned();
    // An hour from now, not the default five minutes.
    let expires: jiff::Timestamp = expires.parse().unwrap();
    assert!(
        expires > jiff::Timestamp::now() + jiff::SignedDuration::from_mins(50),
        "{ps}"
    );
    scratch.ok(&server.host, &[&args[..], &["--keepalive", "0"]].concat());
    assert_eq!(server.get("/api/ps")["models"], json!([]));
}

#[test]
fn run_format_holds_answers_to_a_schema_with_and_without_a_server() {
    let scratch = Scratch::new("format");
    let server = scratch.serve(&[]);
    scratch.ok(&server.host, &["create", "tiny", "-f", "Modelfile"]);
    let nowhere = format!("127.0.0.1:{}", free_port());
    let schema = r#"{"type":"object","properties":{"n":{"type":"integer","minimum":0,"maximum":999}},"required":["n"],"additionalProperties":false}"#;
    for host in [server.host.as_str(), nowhere.as_str()] {
        for seed in ["1", "2"] {
            // A random-weight model at temperature 1: only the grammar makes
            // the answer parse.
            let common = ["run", "tiny", "Give me a number.", "--temperature", "1"];
            let tail = ["--seed", seed, "--num-predict", "200"];
            let answer = scratch.ok(
                host,
                &[&common[..], &["--format", schema], &tail[..]].concat(),
            );
            let v: serde_json::Value = serde_json::from_str(answer.trim())
                .unwrap_or_else(|e| panic!("{host}: {e}: {answer:?}"));
            let n = v["n"].as_i64().unwrap_or_else(|| panic!("{v}"));
            assert!(
                (0..=999).contains(&n) && v.as_object().unwrap().len() == 1,
                "{v}"
            );
            let answer = scratch.ok(
                host,
                &[&common[..], &["--format", "json"], &tail[..]].concat(),
            );
            let v: serde_json::Value = serde_json::from_str(answer.trim())
                .unwrap_or_else(|e| panic!("{host}: {e}: {answer:?}"));
            assert!(v.is_object(), "{v}");
        }
    }
    // A schema that is not JSON is an error before anything runs.
    let out = scratch.hearth(&nowhere, &["run", "tiny", "hi", "--format", "{not json"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--format"),
        "{}",
        text(&out.stderr)
    );
}
