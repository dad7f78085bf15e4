//! The OpenAI routes (`/v1/*`) driven without a socket (`oneshot`): chat and
//! text completions whole and streamed (SSE), logprobs, embeddings, models,
//! and every error in OpenAI's shape — on a tiny random-weight Llama (the
//! synthetic builder's SPM vocabulary plus a ChatML template) in a scratch
//! store.

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::{get, post, send};
use serde_json::{Value, json};
use server::{AppState, Config};
use store::ModelName;

/// The common scratch store, with the tiny model also as `me/mine:v1`.
fn env(name: &str) -> common::Env {
    let env = common::Env::new(&format!("openai-{name}"));
    env.store
        .copy(
            &ModelName::parse("tiny").unwrap(),
            &ModelName::parse("me/mine:v1").unwrap(),
        )
        .unwrap();
    env
}

/// Expects `status` with an OpenAI-shaped error; returns the error object.
async fn error(state: &AppState, uri: &str, body: Body, status: StatusCode) -> Value {
    let (got, _, bytes) = send(state, Method::POST, uri, body).await;
    let v: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    assert_eq!(got, status, "{v}");
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
    e.clone()
}

/// The `data:` payloads of an SSE body, in order.
fn sse_data(bytes: &[u8]) -> Vec<String> {
    std::str::from_utf8(bytes)
        .unwrap()
        .split("\n\n")
        .filter_map(|event| {
            event
                .lines()
                .find_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        })
        .map(str::to_owned)
        .collect()
}

fn chat_body(extra: Value) -> Value {
    let mut body = json!({
        "model": "tiny",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "Say hello"}]},
        ],
        "temperature": 0,
        "max_tokens": 6,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn chat_completion_whole_and_streamed_agree() {
    let env = env("chat");
    let state = env.state(Config::default());
    let (status, v) = post(&state, "/v1/chat/completions", chat_body(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(v["created"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "tiny");
    assert!(v["system_fingerprint"].as_str().unwrap().starts_with("fp_"));
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["logprobs"].is_null());
    let text = choice["message"]["content"].as_str().unwrap().to_owned();
    let usage = &v["usage"];
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 5);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + completion
    );
    // Random weights rarely end on their own within 6 tokens; either way the
    // reason must match the count.
    match choice["finish_reason"].as_str().unwrap() {
        "length" => assert_eq!(completion, 6),
        "stop" => assert!(completion < 6),
        other => panic!("finish_reason {other}"),
    }

    let body = chat_body(json!({"stream": true, "stream_options": {"include_usage": true}}));
    let (status, content_type, bytes) = send(
        &state,
        Method::POST,
        "/v1/chat/completions",
        Body::from(body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let data = sse_data(&bytes);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let id = &chunks[0]["id"];
    assert!(chunks.iter().all(|c| &c["id"] == id));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        streamed, text,
        "greedy: streamed text equals the whole answer"
    );
    let (usage_chunk, rest) = chunks.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"], *usage);
    let finish = rest.last().unwrap();
    assert_eq!(
        finish["choices"][0]["finish_reason"],
        choice["finish_reason"]
    );
    assert!(
        rest[..rest.len() - 1]
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null() && c["usage"].is_null())
    );

    // Without include_usage there is no usage chunk.
    let body = chat_body(json!({"stream": true}));
    let (_, _, bytes) = send(
        &state,
        Method::POST,
        "/v1/chat/completions",
        Body::from(body.to_string()),
    )
    .await;
    let data = sse_data(&bytes);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let last: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert!(last["choices"][0]["finish_reason"].is_string(), "{last}");
    assert!(last.get("usage").is_none());
}

#[tokio::test]
async fn stop_seed_and_max_completion_tokens_shape_the_answer() {
    let env = env("params");
    let state = env.state(Config::default());
    let body = |seed: i64| {
        chat_body(json!({
            "temperature": 1.5, "top_p": 0.9, "seed": seed, "max_tokens": null,
            "max_completion_tokens": 8, "presence_penalty": 0.5, "frequency_penalty": 0.5,
        }))
    };
    let (status, a) = post(&state, "/v1/chat/completions", body(7)).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let (_, b) = post(&state, "/v1/chat/completions", body(7)).await;
    assert_eq!(
        a["choices"][0]["message"], b["choices"][0]["message"],
        "same seed, same answer"
    );
    assert!(a["usage"]["completion_tokens"].as_u64().unwrap() <= 8);

    // A stop sequence taken from the greedy answer cuts it there.
    let (_, v) = post(
        &state,
        "/v1/chat/completions",
        chat_body(json!({"max_tokens": 12})),
    )
    .await;
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let chars: Vec<char> = text.chars().collect();
    if chars.len() >= 4 {
        let stop: String = chars[2..4].iter().collect();
        let (_, v) = post(
            &state,
            "/v1/chat/completions",
            chat_body(json!({"max_tokens": 12, "stop": [stop.clone()]})),
        )
        .await;
        let cut = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert_eq!(cut, &text[..text.find(&stop).unwrap()]);
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
    }
}

#[tokio::test]
async fn logprobs_come_with_each_token_and_its_alternatives() {
    let env = env("logprobs");
    let state = env.state(Config::default());
    let body = chat_body(json!({"logprobs": true, "top_logprobs": 3}));
    let (status, v) = post(&state, "/v1/chat/completions", body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(
        content.len() as u64,
        v["usage"]["completion_tokens"].as_u64().unwrap()
    );
    for entry in content {
        let logprob = entry["logprob"].as_f64().unwrap();
        assert!(logprob <= 0.0, "{entry}");
        let top = entry["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        // The model's own distribution: the repeat penalty may make greedy
        // sampling pick another token than the most likely one, never a
        // likelier one.
        assert!(top[0]["logprob"].as_f64().unwrap() >= logprob, "{entry}");
        assert!(
            top.windows(2)
                .all(|w| w[0]["logprob"].as_f64() >= w[1]["logprob"].as_f64())
        );
        let bytes: Vec<u8> = serde_json::from_value(entry["bytes"].clone()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            entry["token"].as_str().unwrap()
        );
    }

    // Streamed: the closing chunk carries them.
    let body = chat_body(json!({"logprobs": true, "stream": true}));
    let (_, _, bytes) = send(
        &state,
        Method::POST,
        "/v1/chat/completions",
        Body::from(body.to_string()),
    )
    .await;
    let data = sse_data(&bytes);
    let finish: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    let streamed = finish["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap();
    assert_eq!(streamed.len(), content.len());
    assert_eq!(streamed[0]["top_logprobs"], json!([]));

    // Completions' legacy shape.
    let body = json!({"model": "tiny", "prompt": "Once upon", "max_tokens": 4,
                      "temperature": 0, "logprobs": 2});
    let (status, v) = post(&state, "/v1/completions", body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let lp = &v["choices"][0]["logprobs"];
    let n = v["usage"]["completion_tokens"].as_u64().unwrap() as usize;
    assert_eq!(lp["tokens"].as_array().unwrap().len(), n);
    assert_eq!(lp["token_logprobs"].as_array().unwrap().len(), n);
    assert!(
        lp["top_logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.as_object().unwrap().len() <= 2)
    );
    assert_eq!(lp["text_offset"][0], 0);
}

#[tokio::test]
async fn text_completions_whole_streamed_and_echoed() {
    let env = env("completions");
    let state = env.state(Config::default());
    let body =
        json!({"model": "tiny", "prompt": ["Once upon a time"], "max_tokens": 5, "temperature": 0});
    let (status, v) = post(&state, "/v1/completions", body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
    let text = v["choices"][0]["text"].as_str().unwrap().to_owned();
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() >= 4);

    let body = json!({"model": "tiny", "prompt": "Once upon a time", "max_tokens": 5,
                      "temperature": 0, "echo": true});
    let (_, v) = post(&state, "/v1/completions", body).await;
    assert_eq!(v["choices"][0]["text"], format!("Once upon a time{text}"));

    let body = json!({"model": "tiny", "prompt": "Once upon a time", "max_tokens": 5,
                      "temperature": 0, "stream": true});
    let (status, _, bytes) = send(
        &state,
        Method::POST,
        "/v1/completions",
        Body::from(body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let data = sse_data(&bytes);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(streamed, text);
    assert!(chunks.last().unwrap()["choices"][0]["finish_reason"].is_string());

    // Token ids are a prompt too.
    let body =
        json!({"model": "tiny", "prompt": [1, 50, 60, 70], "max_tokens": 3, "temperature": 0});
    let (status, v) = post(&state, "/v1/completions", body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["usage"]["prompt_tokens"], 4);
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let digits: Vec<u8> = chunk
            .iter()
            .filter(|&&c| c != b'=')
            .map(|&c| value(c))
            .collect();
        let n =
            digits.iter().fold(0u32, |n, &d| (n << 6) | u32::from(d)) << (6 * (4 - digits.len()));
        out.extend_from_slice(&n.to_be_bytes()[1..digits.len()]);
    }
    out
}

#[tokio::test]
async fn embeddings_as_floats_or_base64() {
    let env = env("embeddings");
    let state = env.state(Config::default());
    let (status, v) = post(
        &state,
        "/v1/embeddings",
        json!({"model": "tiny", "input": "hello world"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "tiny");
    let floats: Vec<f32> = serde_json::from_value(v["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(floats.len(), 256, "the tiny model's n_embd");
    let norm: f32 = floats.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() >= 2);

    let body =
        json!({"model": "tiny", "input": ["hello world", "bye"], "encoding_format": "base64"});
    let (status, v) = post(&state, "/v1/embeddings", body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    let bytes = decode_base64(data[0]["embedding"].as_str().unwrap());
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(decoded, floats);

    let (status, v) = post(
        &state,
        "/v1/embeddings",
        json!({"model": "tiny", "input": "hi", "dimensions": 8}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 8);
    // Token ids, as they are.
    let body = json!({"model": "tiny", "input": [[1, 50, 60], [1, 70]]});
    let (status, v) = post(&state, "/v1/embeddings", body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    let (status, v) = post(
        &state,
        "/v1/embeddings",
        json!({"model": "tiny", "input": [1, 99999]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("token 99999"),
        "{v}"
    );
}

#[tokio::test]
async fn models_are_listed_and_retrieved_by_names_with_slashes() {
    let env = env("models");
    let state = env.state(Config::default());
    let (status, v) = get(&state, "/v1/models").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["object"], "list");
    let mut ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["me/mine:v1", "tiny:latest"]);
    let (status, m) = get(&state, "/v1/models/me/mine:v1").await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["object"], "model");
    assert_eq!(m["owned_by"], "me");
    assert!(m["created"].as_i64().unwrap() > 1_600_000_000);
    let (status, m) = get(&state, "/v1/models/tiny").await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(
        (m["id"].as_str(), m["owned_by"].as_str()),
        (Some("tiny:latest"), Some("library"))
    );
    let (status, v) = get(&state, "/v1/models/ghost").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["message"], "The model `ghost` does not exist");
    assert_eq!(v["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn bad_requests_get_openai_shaped_4xx_and_the_server_keeps_serving() {
    let env = env("errors");
    let state = AppState::new(
        env.store.clone(),
        Config {
            max_body_bytes: 64 * 1024,
            ..Config::default()
        },
    );
    let chat = "/v1/chat/completions";
    let body = |v: Value| Body::from(v.to_string());
    let e = error(
        &state,
        chat,
        Body::from("{\"model\": \"tiny\", "),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["type"], "invalid_request_error");
    assert!(
        e["message"].as_str().unwrap().starts_with("malformed JSON"),
        "{e}"
    );

    let e = error(
        &state,
        chat,
        body(chat_body(json!({"model": "ghost"}))),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(e["message"], "The model `ghost` does not exist");
    assert_eq!(
        (e["param"].as_str(), e["code"].as_str()),
        (Some("model"), Some("model_not_found"))
    );

    let e = error(
        &state,
        chat,
        body(chat_body(json!({"temperature": "hot"}))),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "temperature", "{e}");
    let e = error(
        &state,
        chat,
        body(chat_body(json!({"temperature": 3}))),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "temperature", "{e}");
    let e = error(
        &state,
        chat,
        body(chat_body(json!({"n": 17}))),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "n");
    let e = error(
        &state,
        chat,
        body(chat_body(json!({"logit_bias": {"5": "high"}}))),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "logit_bias");
    let e = error(
        &state,
        chat,
        body(chat_body(json!({"max_tokens": 0}))),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "max_tokens");
    let e = error(
        &state,
        chat,
        body(chat_body(json!({"top_logprobs": 21, "logprobs": true}))),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "top_logprobs");
    let e = error(
        &state,
        chat,
        body(json!({"model": "tiny", "messages": []})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "messages");
    let e = error(
        &state,
        chat,
        body(json!({"messages": [{"role": "user", "content": "x"}]})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "model");
    let e = error(
        &state,
        chat,
        body(json!({"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "messages[0].role");
    let e = error(
        &state,
        chat,
        body(chat_body(
            json!({"stream_options": {"include_usage": true}}),
        )),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "stream_options");

    // A forced call needs tools.
    let e = error(
        &state,
        chat,
        body(chat_body(json!({"tool_choice": "required"}))),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "tool_choice");
    // A response_format of an unknown type is refused, never ignored; plain
    // text is fine.
    for (field, value, says) in [
        ("response_format", json!({"type": "yaml"}), "of type 'yaml'"),
        (
            "response_format",
            json!({"type": "json_schema"}),
            "needs a 'json_schema' object",
        ),
    ] {
        let e = error(
            &state,
            chat,
            body(chat_body(json!({field: value}))),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(e["param"], field);
        assert!(e["message"].as_str().unwrap().contains(says), "{e}");
    }
    let (status, v) = post(
        &state,
        chat,
        chat_body(json!({"response_format": {"type": "text"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let image = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]);
    let e = error(
        &state,
        chat,
        body(chat_body(json!({"messages": image}))),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("images"), "{e}");

    // A prompt over the context.
    let long = "hello ".repeat(2000);
    let e = error(
        &state,
        chat,
        body(chat_body(
            json!({"messages": [{"role": "user", "content": long}]}),
        )),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("context"), "{e}");
    let e = error(
        &state,
        "/v1/completions",
        body(json!({"model": "tiny", "prompt": long})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("context"), "{e}");
    // Streamed too: the status waits until generation has started.
    let e = error(
        &state,
        "/v1/completions",
        body(json!({"model": "tiny", "prompt": long, "stream": true})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("context"), "{e}");

    // Completions and embeddings.
    let completions = "/v1/completions";
    let e = error(
        &state,
        completions,
        body(json!({"model": "tiny", "prompt": "x", "suffix": "y"})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "suffix");
    let e = error(
        &state,
        completions,
        body(json!({"model": "tiny", "prompt": ["a", "b"]})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "prompt");
    let e = error(
        &state,
        completions,
        body(json!({"model": "tiny", "prompt": "x", "logprobs": 6})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "logprobs");
    let e = error(
        &state,
        completions,
        body(json!({"model": "tiny"})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "prompt");
    let embeddings = "/v1/embeddings";
    let e = error(
        &state,
        embeddings,
        body(json!({"model": "tiny", "input": "x", "encoding_format": "hex"})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "encoding_format");
    let e = error(
        &state,
        embeddings,
        body(json!({"model": "tiny", "input": []})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "input");
    let e = error(
        &state,
        embeddings,
        body(json!({"model": "tiny", "input": "x", "dimensions": 100000})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("dimensions"), "{e}");
    let e = error(
        &state,
        embeddings,
        body(json!({"model": "nope", "input": "x"})),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(e["code"], "model_not_found");

    // A huge body, and an unknown path under /v1.
    let huge = json!({"model": "tiny", "prompt": "x".repeat(100 * 1024)});
    let e = error(
        &state,
        completions,
        body(huge),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("too large"), "{e}");
    let e = error(&state, "/v1/nothing", Body::empty(), StatusCode::NOT_FOUND).await;
    assert_eq!(e["message"], "no such endpoint");
    let (status, _, bytes) = send(&state, Method::GET, chat, Body::empty()).await;
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(v["error"]["message"], "method not allowed", "{v}");

    // Still serving.
    let (status, v) = post(&state, chat, chat_body(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}
