//! Hybrid routing end to end: `hearth serve` with `[[upstreams]]` pointing
//! at a fake OpenAI-compatible upstream on 127.0.0.1 (started here; it
//! records every request that reaches it), the `[routing]` policy, the audit
//! log and the metrics; and channels: promote, rollback and history through
//! the CLI and the API, a canary split and shadow answers.

mod serve_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serve_common::{Scratch, Server, free_port};

/// The upstream's API key, as the server's environment holds it.
const KEY: &str = "sk-upstream-test-31337";
/// A word that must never reach the audit log or the server's log.
const MARKER: &str = "periwinkle-marker-5521";

/// One request the fake upstream received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
    body: Value,
}

/// A fake OpenAI-compatible upstream: answers `/v1/chat/completions` and
/// `/v1/completions` (streamed or not, with a tool call when tools are
/// offered), 500 for the model `broken`, and records every request.
struct Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = record.clone();
                std::thread::spawn(move || serve_one(stream, &record));
            }
        });
        Upstream { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_one(stream: TcpStream, record: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let (mut length, mut authorization) = (0usize, None);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap(),
            "authorization" => authorization = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    record.lock().unwrap().push(Seen {
        path: path.clone(),
        authorization,
        body: body.clone(),
    });
    let mut stream = stream;
    if body["model"] == "broken" {
        let _ = stream.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
        );
        return;
    }
    if body["max_tokens"] == 999_999 {
        let answer =
            r#"{"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}}"#;
        let _ = stream.write_all(
            format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            )
            .as_bytes(),
        );
        return;
    }
    let chat = path.ends_with("/chat/completions");
    let tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
    let usage = json!({"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18});
    if body["stream"] == true {
        let mut events: Vec<Value> = Vec::new();
        let chunk = |delta: Value, finish: Value| {
            if chat {
                json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            } else {
                json!({"id": "c1", "object": "text_completion", "created": 1, "model": body["model"],
                       "choices": [{"index": 0, "text": delta["content"].as_str().unwrap_or(""), "finish_reason": finish}]})
            }
        };
        if tools {
            events.push(chunk(
                json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                       "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null,
            ));
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
                Value::Null,
            ));
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                Value::Null,
            ));
            events.push(chunk(json!({}), json!("tool_calls")));
        } else {
            events.push(chunk(
                json!({"role": "assistant", "content": "Hello"}),
                Value::Null,
            ));
            events.push(chunk(json!({"content": " from upstream"}), Value::Null));
            events.push(chunk(json!({}), json!("stop")));
        }
        if body["stream_options"]["include_usage"] == true {
            events.push(
                json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                               "model": body["model"], "choices": [], "usage": usage}),
            );
        }
        let mut text = String::new();
        for event in events {
            text.push_str(&format!("data: {event}\n\n"));
        }
        text.push_str("data: [DONE]\n\n");
        let _ = stream.write_all(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{text}"
            )
            .as_bytes(),
        );
        return;
    }
    let answer = if chat && tools {
        json!({"id": "c1", "object": "chat.completion", "created": 1, "model": body["model"],
               "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                 "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
               "usage": usage})
    } else if chat {
        json!({"id": "c1", "object": "chat.completion", "created": 1, "model": body["model"],
               "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hello from upstream"}}],
               "usage": usage})
    } else {
        json!({"id": "c1", "object": "text_completion", "created": 1, "model": body["model"],
               "choices": [{"index": 0, "finish_reason": "stop", "text": "Hello from upstream"}], "usage": usage})
    };
    let answer = answer.to_string();
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .as_bytes(),
    );
}

/// A POST's status, `X-Hearth-Route` and body text.
fn post(server: &Server, path: &str, body: &Value) -> (u16, String, String) {
    let response = server
        .http
        .post(server.url(path))
        .json(body)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    let route = response
        .headers()
        .get("x-hearth-route")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, route, response.text().unwrap())
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The `data:` events of an SSE answer, `[DONE]` as `null`.
fn sse(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| {
            if d == "[DONE]" {
                Value::Null
            } else {
                json_of(d)
            }
        })
        .collect()
}

fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(json_of)
        .collect()
}

/// The audit log's lines once at least `n` generation lines are there.
fn audit_lines(path: &std::path::Path, n: usize) -> (String, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(json_of)
            .filter(|l| l["endpoint"] != "/api/version" && l["endpoint"] != "/api/tags")
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return (text, lines);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config(scratch: &Scratch, upstream_url: &str, extra: &str) -> std::path::PathBuf {
    let path = scratch.dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[[upstreams]]\nname = \"cloud\"\nurl = \"{upstream_url}\"\napi_key_env = \"TEST_CLOUD_KEY\"\n\
             models = [\"gpt-mini\", \"broken\"]\nprice_per_million_input = 2.0\nprice_per_million_output = 8.0\n\n\
             {extra}"
        ),
    )
    .unwrap();
    path
}

#[test]
fn upstream_models_are_routed_and_translated_through_both_apis() {
    let upstream = Upstream::start();
    let scratch = Scratch::new("route-upstream");
    let config = config(
        &scratch,
        &upstream.url(),
        "[routing]\nsensitive = \"local\"\nfallback = \"hearth-tiny\"\nkeywords = [\"Project Falcon\"]\n",
    );
    let audit = scratch.dir.join("audit.log");
    let log = scratch.dir.join("server.log");
    let server = Server::start_logged(
        &scratch.models(),
        &[
            ("HEARTH_CONFIG", config.to_str().unwrap()),
            ("HEARTH_AUDIT_LOG", audit.to_str().unwrap()),
            ("TEST_CLOUD_KEY", KEY),
            ("HEARTH_LOG", "debug"),
        ],
        "HEARTH",
        &[],
        Some(&log),
    );

    // Listed by both APIs.
    let tags = server.get("/api/tags");
    assert!(
        tags["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "cloud/gpt-mini"),
        "{tags}"
    );
    let models = server.get("/v1/models");
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "cloud/gpt-mini"),
        "{models}"
    );
    assert_eq!(server.get("/v1/models/cloud/gpt-mini")["owned_by"], "cloud");
    let listed = scratch.ok(&server.host, &["list"]);
    assert!(listed.contains("cloud/gpt-mini"), "{listed}");
    let (status, shown) = server.post("/api/show", &json!({"model": "cloud/gpt-mini"}));
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["remote_model"], "gpt-mini");
    let (status, _) = server.post("/api/show", &json!({"model": "hearth-tiny"}));
    assert_eq!(status, 200);

    // Ollama chat, whole, with options: translated to OpenAI's request.
    let (status, route, text) = post(
        &server,
        "/api/chat",
        &json!({"model": "cloud/gpt-mini", "stream": false,
                "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                "options": {"temperature": 0.2, "num_predict": 9, "seed": 4}}),
    );
    assert_eq!((status, route.as_str()), (200, "cloud"), "{text}");
    let answer = json_of(&text);
    assert_eq!(answer["message"]["content"], "Hello from upstream");
    assert_eq!(answer["model"], "cloud/gpt-mini");
    assert_eq!(
        (
            answer["prompt_eval_count"].as_u64(),
            answer["eval_count"].as_u64()
        ),
        (Some(11), Some(7))
    );
    let seen = upstream.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.path, "/v1/chat/completions");
    assert_eq!(
        last.authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(last.body["model"], "gpt-mini");
    assert_eq!(last.body["max_tokens"], 9);
    assert_eq!(last.body["seed"], 4);
    assert_eq!(last.body["stream"], false);
    assert_eq!(
        last.body["messages"][1],
        json!({"role": "user", "content": "Hi"})
    );

    // Ollama chat, streamed: NDJSON pieces and a final line with counts.
    let (status, route, text) = post(
        &server,
        "/api/chat",
        &json!({"model": "cloud/gpt-mini", "messages": [{"role": "user", "content": "Hi"}]}),
    );
    assert_eq!((status, route.as_str()), (200, "cloud"), "{text}");
    let lines = ndjson(&text);
    let content: String = lines
        .iter()
        .filter_map(|l| l["message"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello from upstream");
    let done = lines.last().unwrap();
    assert_eq!(done["done"], true);
    assert_eq!(done["eval_count"], 7);
    assert_eq!(upstream.seen().last().unwrap().body["stream"], true);

    // Ollama chat with tools, whole and streamed: the call comes back in
    // Ollama's shape (arguments as an object); a tool answer goes up with
    // the call's id.
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    for stream in [false, true] {
        let (status, _, text) = post(
            &server,
            "/api/chat",
            &json!({"model": "cloud/gpt-mini", "stream": stream, "tools": tools,
                    "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
        );
        assert_eq!(status, 200, "{text}");
        let calls: Vec<Value> = ndjson(&text)
            .iter()
            .filter_map(|l| l["message"]["tool_calls"].as_array().cloned())
            .flatten()
            .collect();
        assert_eq!(
            calls,
            vec![json!({"function": {"name": "get_weather", "arguments": {"city": "Paris"}}})],
            "stream {stream}: {text}"
        );
        assert_eq!(upstream.seen().last().unwrap().body["tools"], tools);
    }
    let (status, _, _) = post(
        &server,
        "/api/chat",
        &json!({"model": "cloud/gpt-mini", "stream": false, "tools": tools, "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
            {"role": "tool", "content": "sunny", "tool_name": "get_weather"}]}),
    );
    assert_eq!(status, 200);
    let sent = upstream.seen().last().unwrap().body.clone();
    let id = sent["messages"][1]["tool_calls"][0]["id"].clone();
    assert_eq!(
        sent["messages"][1]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(sent["messages"][2]["tool_call_id"], id);
    assert_eq!(sent["messages"][2]["role"], "tool");

    // Ollama generate, whole and streamed.
    let (status, route, text) = post(
        &server,
        "/api/generate",
        &json!({"model": "cloud/gpt-mini", "prompt": "Hi", "system": "Terse.", "stream": false}),
    );
    assert_eq!((status, route.as_str()), (200, "cloud"), "{text}");
    assert_eq!(json_of(&text)["response"], "Hello from upstream");
    assert_eq!(
        upstream.seen().last().unwrap().body["messages"],
        json!([{"role": "system", "content": "Terse."}, {"role": "user", "content": "Hi"}])
    );
    let (_, _, text) = post(
        &server,
        "/api/generate",
        &json!({"model": "cloud/gpt-mini", "prompt": "Hi"}),
    );
    let response: String = ndjson(&text)
        .iter()
        .filter_map(|l| l["response"].as_str())
        .collect();
    assert_eq!(response, "Hello from upstream");

    // OpenAI chat, whole and streamed (usage only when asked for).
    let (status, route, text) = post(
        &server,
        "/v1/chat/completions",
        &json!({"model": "cloud/gpt-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}),
    );
    assert_eq!((status, route.as_str()), (200, "cloud"), "{text}");
    let answer = json_of(&text);
    assert_eq!(answer["model"], "cloud/gpt-mini");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello from upstream"
    );
    assert_eq!(answer["usage"]["completion_tokens"], 7);
    assert_eq!(upstream.seen().last().unwrap().body["max_tokens"], 5);
    for include_usage in [false, true] {
        let (status, _, text) = post(
            &server,
            "/v1/chat/completions",
            &json!({"model": "cloud/gpt-mini", "stream": true, "stream_options": {"include_usage": include_usage},
                    "messages": [{"role": "user", "content": "Hi"}]}),
        );
        assert_eq!(status, 200, "{text}");
        let events = sse(&text);
        assert_eq!(events.last(), Some(&Value::Null), "{text}");
        let content: String = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(content, "Hello from upstream");
        assert!(
            events
                .iter()
                .all(|e| e.is_null() || e["model"] == "cloud/gpt-mini")
        );
        let usage = events.iter().any(|e| e["usage"]["completion_tokens"] == 7);
        assert_eq!(usage, include_usage, "{text}");
    }

    // OpenAI completions, whole and streamed, go to /completions.
    let (status, route, text) = post(
        &server,
        "/v1/completions",
        &json!({"model": "cloud/gpt-mini", "prompt": "Once"}),
    );
    assert_eq!((status, route.as_str()), (200, "cloud"), "{text}");
    assert_eq!(json_of(&text)["choices"][0]["text"], "Hello from upstream");
    assert_eq!(upstream.seen().last().unwrap().path, "/v1/completions");
    let (_, _, text) = post(
        &server,
        "/v1/completions",
        &json!({"model": "cloud/gpt-mini", "prompt": "Once", "stream": true}),
    );
    let content: String = sse(&text)
        .iter()
        .filter_map(|e| e["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(content, "Hello from upstream");

    // The upstream's refusal reaches the caller, in the caller's shape.
    let (status, route, text) = post(
        &server,
        "/v1/chat/completions",
        &json!({"model": "cloud/gpt-mini", "max_tokens": 999_999, "messages": [{"role": "user", "content": "Hi"}]}),
    );
    assert_eq!((status, route.as_str()), (400, "cloud"), "{text}");
    assert_eq!(
        json_of(&text)["error"]["message"],
        "upstream cloud: max_tokens is too large"
    );
    let (status, _, text) = post(
        &server,
        "/api/chat",
        &json!({"model": "cloud/gpt-mini", "options": {"num_predict": 999_999}, "messages": [{"role": "user", "content": "Hi"}]}),
    );
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        json_of(&text)["error"],
        "upstream cloud: max_tokens is too large"
    );

    // Personal data and keywords stay here: answered by the fallback, and
    // nothing reaches the upstream.
    let before = upstream.seen().len();
    for (api, body) in [
        (
            "/api/chat",
            json!({"model": "cloud/gpt-mini", "stream": false, "options": {"num_predict": 2},
            "messages": [{"role": "user", "content": format!("{MARKER} mail jane.doe@example.org")}]}),
        ),
        (
            "/api/generate",
            json!({"model": "cloud/gpt-mini", "stream": false, "options": {"num_predict": 2},
            "prompt": format!("{MARKER} my SSN is 123-45-6789")}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "cloud/gpt-mini", "max_tokens": 2,
            "messages": [{"role": "user", "content": format!("{MARKER} card 4111 1111 1111 1111")}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "cloud/gpt-mini", "max_tokens": 2, "stream": true,
            "messages": [{"role": "user", "content": format!("{MARKER} about Project Falcon")}]}),
        ),
    ] {
        let (status, route, text) = post(&server, api, &body);
        assert_eq!((status, route.as_str()), (200, "local"), "{api}: {text}");
        if body["stream"] != true {
            assert_eq!(json_of(&text)["model"], "hearth-tiny", "{text}");
        }
    }
    assert_eq!(
        upstream.seen().len(),
        before,
        "personal data reached the upstream"
    );
    assert!(
        upstream
            .seen()
            .iter()
            .all(|s| !s.body.to_string().contains(MARKER))
    );

    // An upstream that answers 5xx falls back to the local model.
    let (status, route, text) = post(
        &server,
        "/api/chat",
        &json!({"model": "cloud/broken", "stream": false, "options": {"num_predict": 2},
                "messages": [{"role": "user", "content": "Hi"}]}),
    );
    assert_eq!((status, route.as_str()), (200, "local"), "{text}");

    // The audit log: each decision with its route and reason, no text.
    let (audit_text, lines) = audit_lines(&audit, 20);
    assert!(
        !audit_text.contains(MARKER),
        "prompt text reached the audit log"
    );
    assert!(!audit_text.contains(KEY));
    let reasons: Vec<(String, String)> = lines
        .iter()
        .filter(|l| l["reason"].is_string())
        .map(|l| {
            (
                l["route"].as_str().unwrap().to_owned(),
                l["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("cloud", "model"),
        ("local", "sensitive_email"),
        ("local", "sensitive_ssn"),
        ("local", "sensitive_card"),
        ("local", "sensitive_keyword"),
        ("local", "upstream_failed"),
    ] {
        assert!(
            reasons
                .iter()
                .any(|(r, why)| (r.as_str(), why.as_str()) == expected),
            "{expected:?} not in {reasons:?}"
        );
    }
    let upstream_line = lines.iter().find(|l| l["route"] == "cloud").unwrap();
    assert_eq!(upstream_line["prompt_tokens"], 11);
    assert_eq!(upstream_line["generated_tokens"], 7);

    // Per-route token totals and the configured prices.
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("hearth_route_tokens_total{route=\"cloud\",direction=\"input\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hearth_route_tokens_total{route=\"local\",direction=\"output\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "hearth_route_price_per_million_tokens{route=\"cloud\",direction=\"output\"} 8.0"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("hearth_route_cost_total{route=\"cloud\",direction=\"input\"}"),
        "{metrics}"
    );

    let server_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        !server_log.contains(KEY),
        "the upstream key reached the log"
    );
}

#[test]
fn offline_local_only_keys_and_down_upstreams_send_nothing_out() {
    let upstream = Upstream::start();
    let scratch = Scratch::new("route-offline");
    let key_hash = server::auth::key_hash("hearth-local-key");
    let admin_hash = server::auth::key_hash("hearth-admin-key");
    let extra = format!(
        "[routing]\nfallback = \"hearth-tiny\"\n\n[[keys]]\nname = \"clinic\"\nsha256 = \"{key_hash}\"\nlocal_only = true\n\n\
         [[keys]]\nname = \"ops\"\nsha256 = \"{admin_hash}\"\nadmin = true\n"
    );
    let config = config(&scratch, &upstream.url(), &extra);
    let env = [
        ("HEARTH_CONFIG", config.to_str().unwrap()),
        ("TEST_CLOUD_KEY", KEY),
        ("HEARTH_OFFLINE", "1"),
    ];
    let chat = json!({"model": "cloud/gpt-mini", "stream": false, "options": {"num_predict": 2},
                      "messages": [{"role": "user", "content": "Hi"}]});
    {
        let server = scratch.serve(&env);
        let response = server
            .http
            .post(server.url("/api/chat"))
            .bearer_auth("hearth-local-key")
            .json(&chat)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-hearth-route"], "local");
        let pull = server
            .http
            .post(server.url("/api/pull"))
            .bearer_auth("hearth-admin-key")
            .json(&json!({"model": "127.0.0.1:1/x/y"}))
            .send()
            .unwrap();
        assert_eq!(pull.status(), 503);
        assert!(pull.text().unwrap().contains("HEARTH_OFFLINE"));
    }
    // Without a fallback, offline requests for upstream models get a clear
    // error.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("fallback = \"hearth-tiny\"\n", ""),
    )
    .unwrap();
    {
        let server = scratch.serve(&env);
        let response = server
            .http
            .post(server.url("/v1/chat/completions"))
            .bearer_auth("hearth-local-key")
            .json(&json!({"model": "cloud/gpt-mini", "messages": [{"role": "user", "content": "Hi"}]}))
            .send()
            .unwrap();
        assert_eq!(response.status(), 503);
        let body: Value = response.json().unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("HEARTH_OFFLINE"),
            "{body}"
        );
    }
    assert!(
        upstream.seen().is_empty(),
        "offline mode reached the upstream"
    );

    // `hearth keys add --local-only` writes the flag.
    let keys_config = scratch.dir.join("keys.toml");
    let keys = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("keys")
            .args(args)
            .env("HEARTH_CONFIG", &keys_config)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", serve_common::text(&out.stderr));
        serve_common::text(&out.stdout)
    };
    keys(&["add", "nurse", "--local-only"]);
    assert!(
        std::fs::read_to_string(&keys_config)
            .unwrap()
            .contains("local_only = true")
    );
    let list = keys(&["list"]);
    assert!(
        list.lines().any(|l| l.starts_with("nurse\tno\tyes\t")),
        "{list}"
    );

    // Online: the local-only key stays here (refused without a fallback),
    // and an upstream that is down falls back to the local model.
    let down = format!("http://127.0.0.1:{}/v1", free_port());
    let config = self::config(
        &scratch,
        &down,
        &extra.replace(
            "fallback = \"hearth-tiny\"\n",
            "fallback = \"hearth-tiny\"\nsensitive = \"local\"\n",
        ),
    );
    let server = scratch.serve(&[
        ("HEARTH_CONFIG", config.to_str().unwrap()),
        ("TEST_CLOUD_KEY", KEY),
    ]);
    let response = server
        .http
        .post(server.url("/api/chat"))
        .bearer_auth("hearth-local-key")
        .json(&chat)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-hearth-route"], "local");
    let answer: Value = response.json().unwrap();
    assert_eq!(answer["model"], "hearth-tiny");
    assert!(upstream.seen().is_empty());
}

/// Overflow: with one sequence busy and a request waiting for it, the next
/// request that may leave goes to the burst model; one with personal data
/// waits its turn here.
#[test]
fn a_long_local_queue_bursts_to_the_upstream() {
    let upstream = Upstream::start();
    let scratch = Scratch::new("route-burst");
    let config = config(
        &scratch,
        &upstream.url(),
        "[routing]\nsensitive = \"local\"\nburst = true\nburst_queue = 0\nburst_model = \"cloud/gpt-mini\"\n",
    );
    let server = scratch.serve(&[
        ("HEARTH_CONFIG", config.to_str().unwrap()),
        ("TEST_CLOUD_KEY", KEY),
        ("HEARTH_NUM_PARALLEL", "1"),
    ]);
    // A: generates until its client goes away.
    let mut busy = BufReader::new(
        server
            .http
            .post(server.url("/api/generate"))
            .json(&json!({"model": "hearth-tiny", "prompt": "Hi", "options": {"num_predict": -1, "ignore_eos": true}}))
            .send()
            .unwrap(),
    );
    let mut line = String::new();
    busy.read_line(&mut line).unwrap();
    assert!(line.contains("\"done\":false"), "{line}");
    // B: waits for A's sequence.
    let waiting = {
        let http = server.http.clone();
        let url = server.url("/api/generate");
        std::thread::spawn(move || {
            let response = http
                .post(url)
                .json(&json!({"model": "hearth-tiny", "prompt": "Hi", "stream": false, "options": {"num_predict": 2}}))
                .send()
                .unwrap();
            let route = response.headers()["x-hearth-route"]
                .to_str()
                .unwrap()
                .to_owned();
            (response.status().as_u16(), route)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = server
            .http
            .get(server.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        if metrics.lines().any(|l| l == "hearth_queue_depth 1") {
            break;
        }
        assert!(Instant::now() < deadline, "the second request never queued");
        std::thread::sleep(Duration::from_millis(20));
    }
    // C: the queue is longer than burst_queue, so it goes out.
    let (status, route, text) = post(
        &server,
        "/api/chat",
        &json!({"model": "hearth-tiny", "stream": false, "messages": [{"role": "user", "content": "Hi"}]}),
    );
    assert_eq!((status, route.as_str()), (200, "cloud"), "{text}");
    assert_eq!(json_of(&text)["message"]["content"], "Hello from upstream");
    assert_eq!(upstream.seen().len(), 1);
    assert_eq!(upstream.seen()[0].body["model"], "gpt-mini");
    // Personal data never bursts: it waits for the local model.
    let private = {
        let http = server.http.clone();
        let url = server.url("/api/generate");
        std::thread::spawn(move || {
            let response = http
                .post(url)
                .json(&json!({"model": "hearth-tiny", "prompt": "mail jane@example.org", "stream": false, "options": {"num_predict": 2}}))
                .send()
                .unwrap();
            let route = response.headers()["x-hearth-route"]
                .to_str()
                .unwrap()
                .to_owned();
            (response.status().as_u16(), route)
        })
    };
    // A's client goes away; B and the private request are answered here.
    drop(busy);
    assert_eq!(waiting.join().unwrap(), (200, "local".to_owned()));
    assert_eq!(private.join().unwrap(), (200, "local".to_owned()));
    assert_eq!(
        upstream.seen().len(),
        1,
        "personal data reached the upstream"
    );
}
