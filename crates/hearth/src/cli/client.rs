//! The HTTP client the CLI uses to talk to a running `hearth serve` on
//! `HEARTH_HOST` (default 127.0.0.1:11434), as Ollama's CLI talks to its
//! server. Commands call [`Client::detect`]: when a server answers they go
//! through its API, otherwise they work on the store directly.
//!
//! The server is local, so the client speaks plain HTTP (no TLS stack).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use serde_json::Value;

/// A connection to a running server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: Http,
}

/// The server's URL from `HEARTH_HOST` (or `OLLAMA_HOST`); a wildcard bind
/// address is reached on the loopback address.
pub fn base_url() -> String {
    let host_port = match server::config::env_setting("HOST") {
        Some((_, host)) => server::config::host_with_port(&host),
        None => server::config::Config::default().host,
    };
    let host_port = host_port
        .replacen("0.0.0.0:", "127.0.0.1:", 1)
        .replacen("[::]:", "[::1]:", 1);
    format!("http://{host_port}")
}

/// `Authorization: Bearer HEARTH_API_KEY` when that is set: a server that
/// asks for API keys gets it on every request.
pub fn auth_headers() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = std::env::var("HEARTH_API_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
        && let Ok(value) = format!("Bearer {}", key.trim()).parse()
    {
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    headers
}

impl Client {
    /// A client for the server at [`base_url`] if one answers there.
    pub fn detect() -> Option<Client> {
        let base = base_url();
        let http = Http::builder()
            .default_headers(auth_headers())
            .connect_timeout(Duration::from_millis(500))
            // Generations and uploads take as long as they take.
            .timeout(None::<Duration>)
            .build()
            .ok()?;
        let probe = http
            .get(format!("{base}/api/version"))
            .timeout(Duration::from_secs(2))
            .send()
            .ok()?;
        let body: Value = probe.json().ok()?;
        body.get("version")?;
        Some(Client { base, http })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request; a non-success status becomes an error with the
    /// server's message.
    fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let response = request
            .send()
            .with_context(|| format!("talking to the hearth server at {}", self.base))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or(text);
        bail!("{message}")
    }

    /// `GET path` as JSON.
    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.send(self.http.get(self.url(path)))?.json()?)
    }

    /// `POST path` with a JSON body; the response's JSON (`null` if empty).
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let text = self
            .send(self.http.post(self.url(path)).json(body))?
            .text()?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `DELETE path` with a JSON body.
    pub fn delete(&self, path: &str, body: &Value) -> anyhow::Result<()> {
        self.send(self.http.delete(self.url(path)).json(body))?;
        Ok(())
    }

    /// `POST path` and hands each NDJSON line of the streamed answer to
    /// `on_line`; an `{"error"}` line ends the stream with that error.
    pub fn stream(
        &self,
        path: &str,
        body: &Value,
        on_line: &mut dyn FnMut(&Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let response = self.send(self.http.post(self.url(path)).json(body))?;
        for line in BufReader::new(response).lines() {
            let line = line.context("reading the server's answer")?;
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(&line)
                .with_context(|| format!("the server sent a line that is not JSON: {line}"))?;
            if let Some(error) = value.get("error").and_then(Value::as_str) {
                bail!("{error}");
            }
            on_line(&value)?;
        }
        Ok(())
    }

    /// Uploads `path` as the blob `digest` (`sha256:<hex>`) unless the server
    /// has it already.
    pub fn upload_blob(&self, digest: &str, path: &Path) -> anyhow::Result<()> {
        let url = self.url(&format!("/api/blobs/{digest}"));
        let head = self.http.head(&url).send()?;
        if head.status().is_success() {
            return Ok(());
        }
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        self.send(self.http.post(&url).body(file))?;
        Ok(())
    }
}
