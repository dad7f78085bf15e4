//! `hearth serve` attacked as a hostile web page or client would: each test
//! reproduces an attack over real sockets against the real binary and checks
//! that it is refused (see crates/server/src/guard.rs and listen.rs).

mod serve_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serve_common::{Scratch, Server};

/// Sends `request` (raw HTTP) on a new connection and returns the status
/// code and the whole response.
fn raw(server: &Server, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(&server.host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

/// A POST of `body` with the given extra header lines.
fn post(server: &Server, path: &str, headers: &str, body: &str) -> (u16, String) {
    raw(
        server,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn dns_rebinding_hosts_are_refused_on_loopback() {
    let scratch = Scratch::new("hostile-host");
    let server = scratch.serve(&[("HEARTH_ALLOWED_HOSTS", "models.lan")]);
    let get = |host: &str| {
        raw(
            &server,
            &format!("GET /api/tags HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
    };
    let (status, body) = get("evil.example:11434");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("HEARTH_ALLOWED_HOSTS"), "{body}");
    for host in ["localhost:11434", &server.host, "models.lan"] {
        assert_eq!(get(host).0, 200, "{host}");
    }
}

#[test]
fn a_hostile_page_cannot_replace_a_model() {
    let scratch = Scratch::new("hostile-csrf");
    let server = scratch.serve(&[]);
    scratch.ok(&server.host, &["create", "tiny", "-f", "Modelfile"]);
    let copy = r#"{"source": "tiny", "destination": "llama3"}"#;
    // What a page on another site can send without a preflight.
    let (status, body) = post(
        &server,
        "/api/copy",
        "Origin: https://evil.example\r\nContent-Type: text/plain\r\n",
        copy,
    );
    assert_eq!(status, 403, "{body}");
    let (status, _) = post(
        &server,
        "/api/copy",
        "Sec-Fetch-Site: cross-site\r\nContent-Type: application/x-www-form-urlencoded\r\n",
        copy,
    );
    assert_eq!(status, 403);
    // Not JSON, whoever sends it.
    let (status, body) = post(&server, "/api/copy", "Content-Type: text/plain\r\n", copy);
    assert_eq!(status, 415, "{body}");
    assert!(!scratch.ok(&server.host, &["list"]).contains("llama3"));
    // `curl -d` (form-encoded, no Origin) and a local page still work.
    let (status, body) = post(
        &server,
        "/api/copy",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        copy,
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &server,
        "/api/copy",
        "Origin: http://localhost:3000\r\nContent-Type: application/json\r\n",
        r#"{"source": "tiny", "destination": "other"}"#,
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn slow_and_idle_clients_are_cut_off() {
    let scratch = Scratch::new("hostile-slow");
    let server = scratch.serve(&[
        ("HEARTH_HEADER_TIMEOUT", "1s"),
        ("HEARTH_BODY_TIMEOUT", "1s"),
    ]);
    let start = Instant::now();
    // Slowloris: many connections, each with half a header.
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(&server.host).unwrap();
            s.write_all(b"GET /api/tags HTTP/1.1\r\nHost: local")
                .unwrap();
            s
        })
        .collect();
    // The server keeps answering others meanwhile.
    assert!(server.get("/api/tags")["models"].is_array());
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = Vec::new();
        // Closed by the server: EOF (after an optional 408), not a timeout.
        s.read_to_end(&mut buf)
            .expect("the server closes the connection");
    }
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );

    // A body shorter than its Content-Length is not waited for.
    let mut s = TcpStream::connect(&server.host).unwrap();
    s.write_all(
        b"POST /api/show HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"model\":",
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response)
        .expect("answered and closed");
    let status: u16 = response.split(' ').nth(1).unwrap().parse().unwrap();
    assert!((400..500).contains(&status), "{response}");

    // An idle keep-alive connection is closed too.
    let mut s = TcpStream::connect(&server.host).unwrap();
    s.write_all(b"GET /api/version HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("closed after idling");
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
}

#[test]
fn huge_request_values_are_not_echoed_back() {
    let scratch = Scratch::new("hostile-echo");
    let server = scratch.serve(&[]);
    let name = "a".repeat(10 << 20);
    let (status, body) = server.post("/api/show", &serde_json::json!({ "model": name }));
    assert!((400..500).contains(&status), "{status}");
    let text = body.to_string();
    assert!(text.len() < 2048, "{} bytes", text.len());
}

#[test]
fn blob_uploads_are_capped() {
    let scratch = Scratch::new("hostile-blob");
    let server = scratch.serve(&[("HEARTH_MAX_BLOB_SIZE", "1MiB")]);
    let big = vec![7u8; 3 << 20];
    let digest = format!("sha256:{:x}", <sha2::Sha256 as sha2::Digest>::digest(&big));
    let url = server.url(&format!("/api/blobs/{digest}"));
    // Declared too large: refused before a byte is stored.
    let response = server.http.post(&url).body(big.clone()).send().unwrap();
    assert_eq!(response.status(), 413);
    assert!(response.text().unwrap().contains("HEARTH_MAX_BLOB_SIZE"));
    // Streamed without a length: refused once past the limit.
    let body = reqwest::blocking::Body::new(std::io::Cursor::new(big.clone()));
    // The server answers 413 and closes without reading the rest, so the
    // client may see the answer or a connection cut under its upload.
    match server.http.post(&url).body(body).send() {
        Ok(response) => assert_eq!(response.status(), 413),
        Err(e) => assert!(e.is_body() || e.is_request(), "{e}"),
    }
    // Nothing kept: no blob, no partial file.
    let blob = scratch
        .models()
        .join("blobs")
        .join(digest.replace(':', "-"));
    assert!(!blob.exists());
    let leftovers: Vec<_> = std::fs::read_dir(scratch.models().join("tmp"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A small blob still goes in.
    let small = b"small blob".to_vec();
    let digest = format!(
        "sha256:{:x}",
        <sha2::Sha256 as sha2::Digest>::digest(&small)
    );
    let response = server
        .http
        .post(server.url(&format!("/api/blobs/{digest}")))
        .body(small)
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[test]
fn tls_serves_https_only() {
    let scratch = Scratch::new("tls");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
    let server = scratch.serve(&[
        ("HEARTH_TLS_CERT", &format!("{dir}/server.pem")),
        ("HEARTH_TLS_KEY", &format!("{dir}/server.key")),
    ]);
    // Verified against the test CA, by name and by address (the name
    // resolved here, so that no /etc/hosts is needed).
    let port = server.host.rsplit(':').next().unwrap();
    let ca = std::fs::read(serve_common::TEST_CA).unwrap();
    let by_name = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve("localhost", server.host.parse().unwrap())
        .build()
        .unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let body: serde_json::Value = by_name
            .get(format!("https://{host}:{port}/api/version"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert!(body["version"].is_string(), "{body}");
    }
    let (status, _) = server.post("/api/show", &serde_json::json!({"model": "hearth-tiny"}));
    assert_eq!(status, 200);
    // Plain HTTP gets no answer.
    let (status, _) = raw(
        &server,
        "GET /api/version HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 0);
    // An untrusting client refuses the certificate.
    let strict = reqwest::blocking::Client::new();
    assert!(strict.get(server.url("/api/version")).send().is_err());
}
