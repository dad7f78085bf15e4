//! Channels end to end: promote, rollback and history through the CLI (with
//! and without a running server) and the API; a canary split measured over
//! 200 requests; shadow answers recorded, never returned.

mod serve_common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serve_common::{Scratch, Server, free_port};

/// A word that must never reach the audit log.
const MARKER: &str = "periwinkle-marker-5521";

/// The audit log's generation lines once at least `n` are there.
fn audit_lines(path: &std::path::Path, n: usize) -> (String, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|l: &Value| l["endpoint"] != "/api/version" && l["endpoint"] != "/api/tags")
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return (text, lines);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `hearth promote`, `rollback` and `history` through a running server,
/// the same through the API, and without a server on the store.
#[test]
fn channels_promote_roll_back_and_keep_their_history() {
    let scratch = Scratch::new("route-channels");
    // A second model with another digest: the scratch GGUF.
    let unused = format!("127.0.0.1:{}", free_port());
    scratch.ok(&unused, &["create", "tiny", "-f", "Modelfile"]);
    let digest = |server: &Server, name: &str| -> String {
        let tags = server.get("/api/tags");
        tags["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["digest"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    {
        let server = scratch.serve(&[]);
        let out = scratch.ok(
            &server.host,
            &["promote", "hearth-tiny", "prod", "--note", "first release"],
        );
        assert!(out.contains("promoted"), "{out}");
        assert_eq!(
            digest(&server, "prod:latest"),
            digest(&server, "hearth-tiny:latest")
        );
        let (status, body) = server.post(
            "/api/channels/promote",
            &json!({"model": "tiny", "channel": "prod", "note": "q8 build"}),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            digest(&server, "prod:latest"),
            digest(&server, "tiny:latest")
        );
        let history = server.get("/api/channels/prod/history");
        let entries = history["history"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "{history}");
        assert_eq!(entries[1]["note"], "q8 build");
        assert_eq!(
            entries[1]["previous_digest"].as_str().unwrap(),
            format!("sha256:{}", digest(&server, "hearth-tiny:latest"))
        );
        let out = scratch.ok(&server.host, &["rollback", "prod"]);
        assert!(out.contains("rolled"), "{out}");
        assert_eq!(
            digest(&server, "prod:latest"),
            digest(&server, "hearth-tiny:latest")
        );
        let out = scratch.ok(&server.host, &["history", "prod"]);
        assert!(
            out.contains("first release") && out.contains("rollback"),
            "{out}"
        );
        // Bad input gets a clear error.
        let (status, body) = server.post("/api/channels/rollback", &json!({"channel": "nothing"}));
        assert_eq!(status, 400, "{body}");
        let (status, _) = server.post(
            "/api/channels/promote",
            &json!({"model": "missing", "channel": "prod"}),
        );
        assert_eq!(status, 404);
    }
    // No server: the CLI works on the store and sees the same history.
    scratch.ok(&unused, &["promote", "tiny", "prod", "--note", "again"]);
    let out = scratch.ok(&unused, &["rollback", "prod"]);
    assert!(out.contains("rolled"), "{out}");
    let out = scratch.ok(&unused, &["history", "prod"]);
    // A header, three promotions and two rollbacks.
    assert_eq!(out.lines().count(), 6, "{out}");
    // The first promotion had nothing before it.
    let failed = scratch.hearth(&unused, &["rollback", "prod"]);
    assert!(!failed.status.success());
    assert!(
        serve_common::text(&failed.stderr).contains("no target before its first promotion"),
        "{}",
        serve_common::text(&failed.stderr)
    );
}

/// A channel with `canary = 10` sends exactly every tenth request to its
/// experimental model (the split is deterministic), and a shadowed channel
/// has its experimental model answer copies that are recorded, never
/// returned.
#[test]
fn canary_splits_and_shadows_are_applied_and_recorded() {
    let scratch = Scratch::new("route-canary");
    let unused = format!("127.0.0.1:{}", free_port());
    scratch.ok(&unused, &["create", "tiny", "-f", "Modelfile"]);
    scratch.ok(&unused, &["promote", "hearth-tiny", "prod"]);
    scratch.ok(&unused, &["promote", "hearth-tiny", "staging"]);
    let config = scratch.dir.join("config.toml");
    std::fs::write(
        &config,
        "[[channels]]\nname = \"prod\"\nexperimental = \"tiny\"\ncanary = 10\n\n\
         [[channels]]\nname = \"staging\"\nexperimental = \"tiny\"\nshadow = true\n",
    )
    .unwrap();
    let audit = scratch.dir.join("audit.log");
    let server = scratch.serve(&[
        ("HEARTH_CONFIG", config.to_str().unwrap()),
        ("HEARTH_AUDIT_LOG", audit.to_str().unwrap()),
    ]);
    let mut experimental = 0;
    for _ in 0..200 {
        let (status, body) = server.post(
            "/api/generate",
            &json!({"model": "prod", "prompt": "Hi", "stream": false, "options": {"num_predict": 1}}),
        );
        assert_eq!(status, 200, "{body}");
        if body["model"] == "tiny" {
            experimental += 1;
        } else {
            assert_eq!(body["model"], "prod", "{body}");
        }
    }
    assert_eq!(experimental, 20, "10% of 200");

    let (status, body) = server.post(
        "/api/chat",
        &json!({"model": "staging", "stream": false, "options": {"num_predict": 3},
                "messages": [{"role": "user", "content": MARKER}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["model"], "staging",
        "the shadow's answer is never returned"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let shadow = loop {
        let list = server.get("/api/channels/staging/shadow");
        if let Some(first) = list["shadow"].as_array().and_then(|l| l.first().cloned()) {
            break first;
        }
        assert!(Instant::now() < deadline, "no shadow answer was recorded");
        std::thread::sleep(Duration::from_millis(50));
    };
    let tags = server.get("/api/tags");
    let tiny = tags["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "tiny:latest")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(shadow["digest"], format!("sha256:{tiny}"), "{shadow}");
    assert_eq!(shadow["status"], 200);
    assert!(shadow["prompt_tokens"].as_u64().unwrap() > 0, "{shadow}");
    assert!(shadow["generated_tokens"].as_u64().unwrap() > 0, "{shadow}");
    assert!(
        shadow.get("text").is_none(),
        "text is recorded only when the operator opts in"
    );
    let (text, lines) = audit_lines(&audit, 202);
    assert!(!text.contains(MARKER));
    assert_eq!(lines.iter().filter(|l| l["reason"] == "canary").count(), 20);
    assert!(
        lines
            .iter()
            .any(|l| l["route"] == "shadow" && l["model"] == "tiny"),
        "{text}"
    );
    drop(server);

    // The operator opted in to logging text: the shadow's answer is kept.
    let server = scratch.serve(&[
        ("HEARTH_CONFIG", config.to_str().unwrap()),
        ("HEARTH_LOG_PROMPTS", "1"),
    ]);
    let (status, _) = server.post(
        "/api/generate",
        &json!({"model": "staging", "prompt": "Hi", "stream": false, "options": {"num_predict": 3}}),
    );
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    let shadow = loop {
        let list = server.get("/api/channels/staging/shadow");
        if let Some(first) = list["shadow"].as_array().and_then(|l| l.first().cloned()) {
            break first;
        }
        assert!(Instant::now() < deadline, "no shadow answer was recorded");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(shadow["text"].is_string(), "{shadow}");
}
