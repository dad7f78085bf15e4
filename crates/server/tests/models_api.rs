//! The router's model-management endpoints: tags, show, copy, delete, blob
//! upload and create.

mod common;

use std::path::Path;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::{CHATML, Env, get, ndjson, post, post_error, send};
use serde_json::{Value, json};
use server::{AppState, Config};
use store::{Digest, Store};

#[tokio::test]
async fn tags_show_copy_and_delete() {
    let env = Env::new("manage");
    let state = env.state(Config::default());
    let (status, tags) = get(&state, "/api/tags").await;
    assert_eq!(status, StatusCode::OK);
    let m = &tags["models"][0];
    assert_eq!(m["name"], "tiny:latest");
    assert_eq!(m["details"]["format"], "gguf");
    assert_eq!(m["details"]["quantization_level"], "Q8_0");
    assert_eq!(m["digest"].as_str().unwrap().len(), 64);

    let (status, show) = post(&state, "/api/show", json!({"model": "tiny"})).await;
    assert_eq!(status, StatusCode::OK, "{show}");
    assert_eq!(show["model_info"]["general.architecture"], "llama");
    assert_eq!(show["model_info"]["llama.context_length"], 256);
    assert_eq!(show["model_info"]["tokenizer.ggml.tokens"], Value::Null);
    assert_eq!(show["template"], CHATML);
    assert!(show["modelfile"].as_str().unwrap().contains("FROM "));
    assert_eq!(show["capabilities"], json!(["completion"]));
    let (_, verbose) = post(
        &state,
        "/api/show",
        json!({"model": "tiny", "verbose": true}),
    )
    .await;
    assert_eq!(
        verbose["model_info"]["tokenizer.ggml.tokens"]
            .as_array()
            .unwrap()
            .len(),
        320
    );

    let (status, _) = post(
        &state,
        "/api/copy",
        json!({"source": "tiny", "destination": "me/copy:v1"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, tags) = get(&state, "/api/tags").await;
    assert_eq!(tags["models"].as_array().unwrap().len(), 2);
    let m = post_error(
        &state,
        "/api/copy",
        Body::from(json!({"source": "missing", "destination": "x"}).to_string()),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(m.contains("missing"), "{m}");

    let request = |name: &str| Body::from(json!({"model": name}).to_string());
    let (status, _, _) = send(&state, Method::DELETE, "/api/delete", request("me/copy:v1")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&state, Method::DELETE, "/api/delete", request("me/copy:v1")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, tags) = get(&state, "/api/tags").await;
    assert_eq!(tags["models"].as_array().unwrap().len(), 1);
    let m = post_error(&state, "/api/show", request("nope"), StatusCode::NOT_FOUND).await;
    assert!(m.contains("nope"), "{m}");
}

fn digest_of(path: &Path) -> Digest {
    Digest::of(&std::fs::read(path).unwrap())
}

#[tokio::test]
async fn blobs_upload_and_create_from_files() {
    let env = Env::new("blobs");
    let fresh = Store::open(env.dir.join("fresh")).unwrap();
    let state = AppState::new(fresh, Config::default());
    let digest = digest_of(&env.gguf());
    let uri = format!("/api/blobs/{digest}");
    let (status, _, _) = send(&state, Method::HEAD, &uri, Body::empty()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let create =
        json!({"model": "uploaded", "files": {"tiny.gguf": digest.to_string()}, "stream": false});
    let m = post_error(
        &state,
        "/api/create",
        Body::from(create.to_string()),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("upload it first"), "{m}");

    let wrong = Digest::of(b"something else");
    let bytes = std::fs::read(env.gguf()).unwrap();
    let m = post_error(
        &state,
        &format!("/api/blobs/{wrong}"),
        Body::from(bytes.clone()),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("digest mismatch"), "{m}");
    let m = post_error(
        &state,
        "/api/blobs/sha256-nothex",
        Body::from("x"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("invalid digest"), "{m}");

    let (status, _, _) = send(&state, Method::POST, &uri, Body::from(bytes)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = send(&state, Method::HEAD, &uri, Body::empty()).await;
    assert_eq!(status, StatusCode::OK);

    // Streaming create: NDJSON status objects ending with success.
    let create = json!({"model": "uploaded", "files": {"tiny.gguf": digest.to_string()},
                        "system": "You are tiny.", "parameters": {"temperature": 0.5, "stop": ["<|im_end|>", "END"]}});
    let (status, _, body) = send(
        &state,
        Method::POST,
        "/api/create",
        Body::from(create.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let lines = ndjson(&body);
    assert_eq!(lines.last().unwrap()["status"], "success", "{lines:?}");
    let (_, show) = post(&state, "/api/show", json!({"model": "uploaded"})).await;
    assert_eq!(show["system"], "You are tiny.");
    let params = show["parameters"].as_str().unwrap();
    assert!(
        params.contains("temperature") && params.contains("\"END\""),
        "{params}"
    );

    let m = post_error(
        &state,
        "/api/create",
        Body::from(json!({"model": "x"}).to_string()),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("neither 'from' nor 'files'"), "{m}");
    let m = post_error(
        &state,
        "/api/create",
        Body::from(
            json!({"model": "x", "from": "uploaded", "parameters": {"warmth": 1}}).to_string(),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("warmth"), "{m}");
}
