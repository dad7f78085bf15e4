//! `/api/embed` under load: a request's inputs are capped, embedded between
//! generation steps (a chat is not held up behind a large request), and
//! dropped when the client goes.

mod serve_common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use serve_common::{Scratch, Server};

/// `hearth_running_sequences` from `/metrics`.
fn running(server: &Server) -> f64 {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("hearth_running_sequences "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Waits (bounded) until `cond` holds.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn embeddings_are_capped_interleaved_and_cancelled() {
    let scratch = Scratch::new("embed");
    let log = scratch.dir.join("serve.log");
    let env = [("HEARTH_LOG", "info")];
    let server = Server::start_logged(&scratch.models(), &env, "HEARTH", &[], Some(&log));
    scratch.ok(&server.host, &["create", "tiny", "-f", "Modelfile"]);

    // More inputs than one request may carry.
    let many: Vec<String> = (0..2049).map(|i| format!("text {i}")).collect();
    let (status, v) = server.post("/api/embed", &json!({"model": "tiny", "input": many}));
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("at most 2048"), "{v}");

    // A large request (2048 inputs of ~200 tokens) runs for a long while; a
    // chat sent after it starts finishes first, and dropping the large
    // request's connection stops its work.
    let long = "word ".repeat(200);
    let body = json!({"model": "tiny", "input": vec![long; 2048], "truncate": true}).to_string();
    let mut client = TcpStream::connect(&server.host).unwrap();
    write!(
        client,
        "POST /api/embed HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        server.host,
        body.len()
    )
    .unwrap();
    wait_for("the embedding to start", || running(&server) >= 1.0);
    let (status, chat) = server.post(
        "/api/chat",
        &json!({"model": "tiny", "stream": false, "options": {"num_predict": 3},
                "messages": [{"role": "user", "content": "Hi"}]}),
    );
    assert_eq!(status, 200, "{chat}");
    // The embedding is still running: the chat did not wait for it.
    assert!(running(&server) >= 1.0);
    drop(client);
    wait_for("the dropped embedding to stop", || running(&server) == 0.0);
    // It stopped part way, as the log says.
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("embedding request dropped"))
        .unwrap_or_else(|| panic!("no drop in the log:\n{text}"));
    let field = |name: &str| -> usize {
        let start = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
        line[start..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(field("total"), 2048, "{line}");
    assert!(field("done") < 2048, "{line}");
}
