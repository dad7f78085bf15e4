//! Shared by the router tests: a scratch store holding a tiny random-weight
//! Llama (the synthetic builder's SPM vocabulary plus a ChatML template) as
//! `tiny`, and helpers that send one request through the router without a
//! socket (`tower::ServiceExt::oneshot`).

#![allow(dead_code)]

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use gguf::TensorType;
use model::synthetic::Spec;
use serde_json::Value;
use server::{AppState, Config, app};
use store::{ModelName, Modelfile, Store};
use tower::ServiceExt;

pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + \
                      message['content'] + '<|im_end|>' + '\n'}}{% endfor %}\
                      {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A scratch directory holding the tiny model's GGUF and a store with it as
/// `tiny`.
pub struct Env {
    pub dir: PathBuf,
    pub store: Store,
}

impl Env {
    pub fn new(name: &str) -> Env {
        let dir = std::env::temp_dir().join(format!("hearth-router-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let gguf = dir.join("tiny.gguf");
        let mut w = Spec::tiny_llama().build(&|_| TensorType::Q8_0).unwrap();
        w.add_str("tokenizer.chat_template", CHATML);
        // llama.cpp's LLAMA_FTYPE_MOSTLY_Q8_0.
        w.add_u32("general.file_type", 7);
        w.write_file(&gguf).unwrap();
        let store = Store::open(dir.join("models")).unwrap();
        let name = ModelName::parse("tiny").unwrap();
        store
            .create(
                &name,
                &Modelfile::new(gguf.display().to_string()),
                &dir,
                &mut |_| {},
            )
            .unwrap();
        Env { dir, store }
    }

    pub fn gguf(&self) -> PathBuf {
        self.dir.join("tiny.gguf")
    }

    pub fn state(&self, config: Config) -> AppState {
        AppState::new(self.store.clone(), config)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends one request; returns the status, the headers' content type and the body.
pub async fn send(
    state: &AppState,
    method: Method,
    uri: &str,
    body: Body,
) -> (StatusCode, String, Vec<u8>) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(body)
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, content_type, bytes.to_vec())
}

pub async fn post(state: &AppState, uri: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, bytes) = send(state, Method::POST, uri, Body::from(body.to_string())).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub async fn get(state: &AppState, uri: &str) -> (StatusCode, Value) {
    let (status, _, bytes) = send(state, Method::GET, uri, Body::empty()).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Posts and expects an error status with an `{"error"}` body; returns the message.
pub async fn post_error(state: &AppState, uri: &str, body: Body, expected: StatusCode) -> String {
    let (status, _, bytes) = send(state, Method::POST, uri, body).await;
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, expected, "{v}");
    v["error"].as_str().unwrap().to_owned()
}

pub fn ndjson(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
