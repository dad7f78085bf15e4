//! `hearth serve` as a real process on a free port, driven over HTTP and by
//! the CLI (which goes through the server when one answers on HEARTH_HOST).

mod serve_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use serve_common::{Scratch, Server, free_port, signal, text};

/// A generate request with a fixed seed and greedy decoding.
fn greedy(prompt: &str, n: i64) -> Value {
    json!({"model": "tiny", "prompt": prompt, "stream": false,
           "options": {"num_predict": n, "temperature": 0, "seed": 7}})
}

#[test]
fn cli_and_api_through_the_server() {
    let scratch = Scratch::new("cli");
    let server = scratch.serve(&[]);
    let host = server.host.as_str();

    // create uploads the GGUF as a blob and creates through /api/create.
    let out = scratch.hearth(host, &["create", "tiny", "-f", "Modelfile"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let progress = text(&out.stderr);
    // The file went up as a blob (the server path), then the create succeeded.
    assert!(progress.contains("copying file sha256:"), "{progress}");
    assert!(progress.contains("success"), "{progress}");
    assert!(scratch.ok(host, &["list"]).contains("tiny:latest"));

    // Streaming generate: pieces, then the summary.
    let body = json!({"model": "tiny", "prompt": "Hello", "options": {"num_predict": 8}});
    let (status, lines) = server.post_stream("/api/generate", &body);
    assert_eq!(status, 200);
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true, "{lines:?}");
    // The random-weight model may sample an end-of-generation token early: then
    // generation stops short of num_predict, and says so.
    let eval_count = last["eval_count"].as_u64().unwrap();
    assert!((1..=8).contains(&eval_count), "{last}");
    let expected_reason = if eval_count == 8 { "length" } else { "stop" };
    assert_eq!(last["done_reason"], expected_reason, "{last}");
    assert!(lines.len() > 1);

    // Chat, not streamed.
    let (status, chat) = server.post(
        "/api/chat",
        &json!({"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "stream": false,
                "options": {"num_predict": 4}}),
    );
    assert_eq!(status, 200, "{chat}");
    assert_eq!(chat["message"]["role"], "assistant");
    // Chat, streamed.
    let (status, lines) = server.post_stream(
        "/api/chat",
        &json!({"model": "tiny", "messages": [{"role": "user", "content": "Hi"}],
                "options": {"num_predict": 4}}),
    );
    assert_eq!(status, 200);
    let (last, pieces) = lines.split_last().unwrap();
    assert!(
        pieces
            .iter()
            .all(|l| l["message"]["content"].is_string() && l["done"] == false)
    );
    assert_eq!(last["done"], true, "{last}");
    let eval_count = last["eval_count"].as_u64().unwrap();
    assert!((1..=4).contains(&eval_count), "{last}");

    // ps lists the loaded model; stop unloads it.
    let ps = scratch.ok(host, &["ps"]);
    assert!(
        ps.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("tiny:latest")),
        "{ps}"
    );
    scratch.ok(host, &["stop", "tiny"]);
    assert_eq!(server.get("/api/ps")["models"], json!([]));

    // run goes through the server too.
    let out = scratch.ok(
        host,
        &["run", "tiny", "Hello", "--num-predict", "5", "--seed", "1"],
    );
    assert!(!out.trim().is_empty());

    scratch.ok(host, &["cp", "tiny", "copy"]);
    assert!(scratch.ok(host, &["list"]).contains("copy:latest"));
    let show = scratch.ok(host, &["show", "copy", "--modelfile"]);
    assert!(show.contains("FROM "), "{show}");
    scratch.ok(host, &["rm", "copy"]);
    assert!(!scratch.ok(host, &["list"]).contains("copy:latest"));

    // A generation with keep_alive 0 leaves nothing loaded.
    let mut request = greedy("Hi", 2);
    request["keep_alive"] = json!(0);
    let (status, _) = server.post("/api/generate", &request);
    assert_eq!(status, 200);
    assert_eq!(server.get("/api/ps")["models"], json!([]));

    // Without a server, ps shows an empty table and stop says none runs.
    let nowhere = format!("127.0.0.1:{}", free_port());
    assert_eq!(scratch.ok(&nowhere, &["ps"]).lines().count(), 1);
    let out = scratch.hearth(&nowhere, &["stop", "tiny"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no hearth server is running"));
    // show's overview reads the same through the server as standalone.
    let (status, _) = server.post(
        "/api/create",
        &json!({"model": "tiny-sys", "from": "tiny", "system": "Be brief.\nVery.\nReally.",
                "parameters": {"temperature": 0.5, "stop": ["<|im_end|>", "END"]}, "stream": false}),
    );
    assert_eq!(status, 200);
    let remote = scratch.ok(host, &["show", "tiny-sys"]);
    assert_eq!(remote, scratch.ok(&nowhere, &["show", "tiny-sys"]));
    assert!(
        remote.contains("  System\n    Be brief.\n    Very.\n    ...\n"),
        "{remote}"
    );
    // and run loads a model of the store by name itself.
    let out = scratch.ok(&nowhere, &["run", "tiny", "Hello", "--num-predict", "3"]);
    assert!(!out.trim().is_empty());
}

#[test]
fn concurrent_clients_each_get_their_own_complete_answer() {
    let scratch = Scratch::new("parallel");
    scratch.ok("127.0.0.1:1", &["create", "tiny", "-f", "Modelfile"]);
    let server = scratch.serve(&[("HEARTH_NUM_PARALLEL", "2")]);
    let prompts = ["one", "two two", "three three three", "four", "five five"];
    // What each prompt gives alone.
    let expected: Vec<Value> = prompts
        .iter()
        .map(|p| server.post("/api/generate", &greedy(p, 12)).1["response"].clone())
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = prompts
            .iter()
            .map(|p| s.spawn(|| server.post("/api/generate", &greedy(p, 12))))
            .collect();
        for (handle, want) in handles.into_iter().zip(&expected) {
            let (status, v) = handle.join().unwrap();
            assert_eq!(status, 200, "{v}");
            assert_eq!(v["eval_count"], 12);
            assert_eq!(&v["response"], want);
        }
    });
}

#[test]
fn a_prompt_prefix_any_client_sent_before_is_not_evaluated_again() {
    let scratch = Scratch::new("prefix");
    scratch.ok("127.0.0.1:1", &["create", "tiny", "-f", "Modelfile"]);
    // A pool sized by a budget: 64 blocks of 16 positions of the tiny model.
    let server = scratch.serve(&[("HEARTH_KV_CACHE_MEMORY", "1MiB")]);
    // A shared preamble of many tokens, then different questions.
    let preamble = "You answer questions about numbers. ".repeat(3);
    let ask = |question: &str| {
        let mut body = greedy(&format!("{preamble}{question}"), 2);
        body["raw"] = json!(true);
        let (status, v) = server.post("/api/generate", &body);
        assert_eq!(status, 200, "{v}");
        v["prompt_eval_count"].as_u64().unwrap()
    };
    let first = ask("What is one?");
    let second = ask("And two?");
    // The second request evaluates its question and at most a block (16
    // positions) of the preamble, not the whole prompt again.
    assert!(first > 64, "{first}");
    assert!(second + 48 <= first, "first {first}, second {second}");
}

#[test]
fn a_full_queue_is_503_and_a_disconnect_frees_the_sequence() {
    let scratch = Scratch::new("queue");
    scratch.ok("127.0.0.1:1", &["create", "tiny", "-f", "Modelfile"]);
    let server = scratch.serve(&[("HEARTH_NUM_PARALLEL", "1"), ("HEARTH_MAX_QUEUE", "1")]);

    // A generation that would run until cancelled (the context shifts).
    let endless = json!({"model": "tiny", "prompt": "Go", "options": {"num_predict": 1_000_000, "num_ctx": 64, "temperature": 0, "seed": 7}});
    let response = server
        .http
        .post(server.url("/api/generate"))
        .json(&endless)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut reader = BufReader::new(response);
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.contains("\"done\":false"), "{first}");

    // The one sequence is busy: of two more requests one waits, the other is refused.
    let outcomes: Vec<(u16, Value)> = std::thread::scope(|s| {
        let waiting: Vec<_> = (0..2)
            .map(|_| s.spawn(|| server.post("/api/generate", &greedy("next", 3))))
            .collect();
        // Wait for the refusal; the queued request cannot finish before the
        // disconnect below.
        while !waiting.iter().any(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Disconnect the endless stream: its generation stops and the queued request runs.
        drop(reader);
        waiting.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refused: Vec<_> = outcomes.iter().filter(|(s, _)| *s == 503).collect();
    let served: Vec<_> = outcomes.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!((refused.len(), served.len()), (1, 1), "{outcomes:?}");
    let message = refused[0].1["error"].as_str().unwrap();
    assert!(message.contains("HEARTH_MAX_QUEUE=1"), "{message}");
    assert_eq!(served[0].1["eval_count"], 3);

    // And the server keeps serving.
    let (status, _) = server.post("/api/generate", &greedy("again", 2));
    assert_eq!(status, 200);
}

#[test]
fn a_100_mb_body_is_refused_with_413_and_the_server_keeps_serving() {
    let scratch = Scratch::new("body");
    let server = scratch.serve(&[]);
    let size = 100 << 20;
    let mut stream = TcpStream::connect(&server.host).unwrap();
    let head = format!(
        "POST /api/generate HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n",
        server.host
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer and close before taking it all; stop writing then.
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..100 {
        if stream.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("{\"error\":\"request body too large"),
        "{answer}"
    );
    assert!(server.get("/api/version")["version"].is_string());
}

#[test]
fn sigterm_lets_streams_finish_then_cancels_after_the_drain_timeout() {
    let scratch = Scratch::new("term");
    scratch.ok("127.0.0.1:1", &["create", "tiny", "-f", "Modelfile"]);

    // A stream in flight when SIGTERM comes runs to its end; meanwhile
    // /ready and new requests answer 503 and /health stays 200.
    let mut server = scratch.serve(&[("HEARTH_DRAIN_TIMEOUT", "60s")]);
    assert_eq!(
        server
            .http
            .get(server.url("/ready"))
            .send()
            .unwrap()
            .status(),
        200
    );
    // Long enough to be still running when the signal comes (the context
    // shifts past num_ctx); the final object's durations prove it was.
    let finite = json!({"model": "tiny", "prompt": "Go", "options": {"num_predict": 4000, "num_ctx": 64, "temperature": 0, "seed": 7}});
    let started = std::time::Instant::now();
    let reader = open_stream(&server, &finite);
    let signalled = started.elapsed();
    signal(&server.child, Signal::SIGTERM);
    let probe = reqwest::blocking::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while probe
        .get(server.url("/ready"))
        .send()
        .map(|r| r.status().as_u16())
        .ok()
        != Some(503)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "/ready never answered 503"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        probe.get(server.url("/health")).send().unwrap().status(),
        200
    );
    let refused = probe
        .post(server.url("/api/generate"))
        .json(&finite)
        .send()
        .unwrap();
    assert_eq!(refused.status(), 503);
    let rest: Vec<String> = reader.lines().map_while(Result::ok).collect();
    let last: Value = serde_json::from_str(rest.last().unwrap()).unwrap();
    assert_eq!(last["done"], true, "{last}");
    // It ran to its own end (the model's end token here, or the length),
    // well after the signal: cancelling at the signal would have ended it
    // within milliseconds of it.
    assert!(["stop", "length"].contains(&last["done_reason"].as_str().unwrap()));
    let ran = Duration::from_nanos(last["total_duration"].as_u64().unwrap());
    assert!(
        ran > signalled + Duration::from_millis(100),
        "generation took {ran:?}, signal after {signalled:?}"
    );
    assert!(server.child.wait().unwrap().success());
    assert!(TcpStream::connect(&server.host).is_err());

    // The same generation with a drain timeout far shorter than it: it is
    // cancelled when the timeout passes, its stream ended, not left hanging.
    let full_length = last["eval_count"].as_u64().unwrap();
    let mut server = scratch.serve(&[("HEARTH_DRAIN_TIMEOUT", "20ms")]);
    let mut reader = open_stream(&server, &finite);
    let status = server.terminate();
    let rest: Vec<String> = reader.by_ref().lines().map_while(Result::ok).collect();
    let last: Value = serde_json::from_str(rest.last().unwrap()).unwrap();
    assert_eq!(last["done"], true, "{last}");
    assert!(last["eval_count"].as_u64().unwrap() < full_length, "{last}");
    assert!(status.success(), "{status:?}");
    assert!(TcpStream::connect(&server.host).is_err());
}

/// Starts a streamed `/api/generate` of `body` and reads its first line (the
/// generation is under way).
fn open_stream(server: &Server, body: &Value) -> BufReader<reqwest::blocking::Response> {
    let response = server
        .http
        .post(server.url("/api/generate"))
        .json(body)
        .send()
        .unwrap();
    let mut reader = BufReader::new(response);
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.contains("\"done\":false"), "{first}");
    reader
}

#[test]
fn killing_the_server_mid_upload_leaves_the_store_consistent() {
    let scratch = Scratch::new("kill");
    let mut server = scratch.serve(&[]);
    let bytes = std::fs::read(scratch.gguf()).unwrap();
    let digest = store::Digest::of(&bytes);
    let mut stream = TcpStream::connect(&server.host).unwrap();
    let head = format!(
        "POST /api/blobs/{digest} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        server.host,
        bytes.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&bytes[..bytes.len() / 2]).unwrap();
    stream.flush().unwrap();
    // Half the blob is in; the server dies before the rest arrives.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(stream);

    let store = store::Store::open(scratch.models()).unwrap();
    assert!(!store.has_blob(&digest));
    // Only the built-in model, which every server installs at start.
    let names: Vec<String> = store
        .list()
        .unwrap()
        .iter()
        .map(|e| e.name.display_short())
        .collect();
    assert_eq!(names, ["hearth-tiny:latest"]);
    let leftovers = std::fs::read_dir(scratch.models().join("tmp"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0);

    // A new server on the same store takes the upload and the create.
    let server = scratch.serve(&[]);
    let host = server.host.as_str();
    scratch.ok(host, &["create", "tiny", "-f", "Modelfile"]);
    assert!(scratch.ok(host, &["list"]).contains("tiny:latest"));
}

#[test]
fn requests_carry_ids_and_json_logs_hold_no_prompt_text() {
    let scratch = Scratch::new("json-logs");
    scratch.ok("127.0.0.1:1", &["create", "tiny", "-f", "Modelfile"]);
    let log = scratch.dir.join("serve.log");
    let host = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("serve")
        .env("HEARTH_HOST", &host)
        .env("HEARTH_MODELS", scratch.models())
        .env("HEARTH_CONFIG", scratch.dir.join("none.toml"))
        .env("HEARTH_LOG_FORMAT", "json")
        .env("HEARTH_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let http = reqwest::blocking::Client::new();
    let url = |path: &str| format!("http://{host}{path}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while http.get(url("/health")).send().is_err() {
        assert!(std::time::Instant::now() < deadline, "did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A sane id is echoed; a missing or hostile one is replaced by a new one.
    let id = |value: Option<&str>| {
        let mut request = http.get(url("/api/version"));
        if let Some(v) = value {
            request = request.header("x-request-id", v);
        }
        let response = request.send().unwrap();
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(id(Some("trace-42")), "trace-42");
    let (a, b) = (id(None), id(Some("bad id with spaces")));
    assert!(!a.is_empty() && a != b && !b.contains(' '), "{a} {b}");
    let secret = "zebra-marker-7731";
    let response = http
        .post(url("/api/generate"))
        .header("x-request-id", "with-prompt")
        .json(&json!({"model": "tiny", "prompt": secret, "stream": false, "options": {"num_predict": 2}}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    signal(&child, Signal::SIGTERM);
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(secret), "the prompt reached the log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let generate = lines
        .iter()
        .find(|l| l["request_id"] == "with-prompt")
        .expect("the request's log line");
    assert_eq!(generate["path"], "/api/generate");
    assert_eq!(generate["status"], 200);
}
