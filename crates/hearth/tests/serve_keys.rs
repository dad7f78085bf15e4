//! API keys end to end: `hearth keys add` writes hashes into the config
//! file, and `hearth serve` started with it answers each key as its entry
//! says, in the Ollama and the OpenAI error shapes.

mod serve_common;

use std::process::{Command, Stdio};

use serde_json::{Value, json};
use serve_common::{Scratch, Server, text};

/// `hearth keys add NAME ARGS` with the scratch config; the printed key.
fn add_key(config: &std::path::Path, name: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["keys", "add", name])
        .args(args)
        .env("HEARTH_CONFIG", config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = text(&out.stdout).trim().to_owned();
    assert!(key.starts_with("hearth-"), "{key}");
    key
}

/// A request with `key` as a bearer token (or none); status and JSON body.
fn call(
    server: &Server,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let mut request = server
        .http
        .request(method.parse().unwrap(), server.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, response.json().unwrap_or(Value::Null), retry)
}

#[test]
fn keys_are_required_scoped_and_rate_limited() {
    let scratch = Scratch::new("keys");
    let config = scratch.dir.join("config.toml");
    let admin = add_key(&config, "ops", &["--admin"]);
    let alice = add_key(&config, "alice", &["--models", "tiny*"]);
    let limited = add_key(&config, "batch", &["--requests-per-minute", "2"]);
    let thrifty = add_key(&config, "thrifty", &["--tokens-per-minute", "20"]);
    let text_of_config = std::fs::read_to_string(&config).unwrap();
    for key in [&admin, &alice, &limited] {
        assert!(
            !text_of_config.contains(key.as_str()),
            "the file holds a key itself"
        );
    }
    let server = scratch.serve(&[("HEARTH_CONFIG", config.to_str().unwrap())]);

    // No key or a wrong one: 401 in each API's shape; probes stay open.
    let (status, body, _) = call(&server, "GET", "/api/tags", None, None);
    assert_eq!(status, 401);
    assert!(
        body["error"].as_str().unwrap().contains("API key"),
        "{body}"
    );
    let (status, body, _) = call(&server, "GET", "/v1/models", Some("hearth-wrong"), None);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["message"], "invalid API key", "{body}");
    for probe in ["/health", "/ready", "/api/version"] {
        assert_eq!(call(&server, "GET", probe, None, None).0, 200, "{probe}");
    }

    // Managing models needs an admin key.
    let create = json!({"model": "tiny", "files": {}, "from": scratch.gguf().to_str().unwrap()});
    let (status, body, _) = call(
        &server,
        "POST",
        "/api/create",
        Some(&alice),
        Some(create.clone()),
    );
    assert_eq!(status, 403, "{body}");
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["create", "tiny", "-f", "Modelfile"])
        .current_dir(&scratch.dir)
        .env("HEARTH_MODELS", scratch.models())
        .env("HEARTH_HOST", &server.host)
        .env("HEARTH_API_KEY", &admin)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    // alice may use tiny* only; x-api-key works as well as a bearer token.
    let generate = |model: &str| json!({"model": model, "prompt": "hi", "stream": false, "options": {"num_predict": 1}});
    let (status, body, _) = call(
        &server,
        "POST",
        "/api/generate",
        Some(&alice),
        Some(generate("tiny")),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = call(
        &server,
        "POST",
        "/api/generate",
        Some(&alice),
        Some(generate("hearth-tiny")),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("may not use model 'hearth-tiny'")
    );
    let chat = json!({"model": "hearth-tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1});
    let response = server
        .http
        .post(server.url("/v1/chat/completions"))
        .header("x-api-key", &alice)
        .json(&chat)
        .send()
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("hearth-tiny"),
        "{body}"
    );

    // A token budget: the first request spends it (its prompt alone is
    // longer than the budget, whatever the answer), the next one waits.
    let prompt = "the budget of this key is twenty tokens a minute, and this prompt is longer";
    let tokens =
        json!({"model": "tiny", "prompt": prompt, "stream": false, "options": {"num_predict": 4}});
    let (status, body, _) = call(
        &server,
        "POST",
        "/api/generate",
        Some(&thrifty),
        Some(tokens.clone()),
    );
    assert_eq!(status, 200, "{body}");
    let spent = body["prompt_eval_count"].as_u64().unwrap() + body["eval_count"].as_u64().unwrap();
    assert!(spent > 20, "{body}");
    let (status, body, retry) = call(
        &server,
        "POST",
        "/api/generate",
        Some(&thrifty),
        Some(tokens),
    );
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("tokens per minute"),
        "{body}"
    );
    assert!(retry.expect("Retry-After").parse::<u64>().unwrap() >= 1);

    // Two requests a minute, then 429 with Retry-After.
    for _ in 0..2 {
        assert_eq!(
            call(&server, "GET", "/api/tags", Some(&limited), None).0,
            200
        );
    }
    let (status, body, retry) = call(&server, "GET", "/api/tags", Some(&limited), None);
    assert_eq!(status, 429, "{body}");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
}

#[test]
fn the_audit_log_has_a_line_per_request_and_no_text() {
    let scratch = Scratch::new("audit");
    let config = scratch.dir.join("config.toml");
    let alice = add_key(&config, "alice", &[]);
    let audit = scratch.dir.join("audit.log");
    let server = scratch.serve(&[
        ("HEARTH_CONFIG", config.to_str().unwrap()),
        ("HEARTH_AUDIT_LOG", audit.to_str().unwrap()),
    ]);
    let secret = "zebra-marker-7731";
    let generate = json!({"model": "hearth-tiny", "prompt": format!("{secret} What is 12 plus 7?"), "stream": false});
    let (status, body, _) = call(
        &server,
        "POST",
        "/api/generate",
        Some(&alice),
        Some(generate),
    );
    assert_eq!(status, 200, "{body}");
    let chat = json!({"model": "hearth-tiny", "messages": [{"role": "user", "content": secret}], "stream": true});
    let response = server
        .http
        .post(server.url("/api/chat"))
        .bearer_auth(&alice)
        .header("x-request-id", "audit-chat")
        .json(&chat)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let streamed = response.text().unwrap();
    assert!(streamed.contains("\"done\":true"));
    let (status, _, _) = call(&server, "GET", "/api/tags", None, None);
    assert_eq!(status, 401);

    // The lines are written when each answer has been sent.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        // The test server's start-up probes (/api/version) aside.
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| l["endpoint"] != "/api/version")
            .collect();
        if lines.len() >= 3 || std::time::Instant::now() > deadline {
            assert!(!text.contains(secret), "prompt text reached the audit log");
            break lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(lines.len(), 3, "{lines:?}");
    let generate = &lines[0];
    assert_eq!(generate["key"], "alice");
    assert_eq!(generate["endpoint"], "/api/generate");
    assert_eq!(generate["model"], "hearth-tiny:latest");
    assert_eq!(generate["route"], "local");
    assert_eq!(generate["status"], 200);
    assert!(generate["prompt_tokens"].as_u64().unwrap() > 5);
    assert!(generate["generated_tokens"].as_u64().unwrap() > 3);
    assert!(
        generate["client"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(generate["time_to_first_token_ms"].as_f64().unwrap() > 0.0);
    let chat = lines
        .iter()
        .find(|l| l["request_id"] == "audit-chat")
        .unwrap();
    assert_eq!(chat["api"], "ollama");
    assert!(chat["generated_tokens"].as_u64().unwrap() > 0);
    let refused = lines.iter().find(|l| l["status"] == 401).unwrap();
    assert_eq!(refused["key"], Value::Null);
}
