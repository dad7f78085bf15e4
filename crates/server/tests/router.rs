//! The router driven without a socket: inference endpoints, their error
//! cases, residency and CORS (model management is in models_api.rs).

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Env, get, ndjson, post, post_error, send};
use serde_json::{Value, json};
use server::{Config, app};
use store::{ModelName, Modelfile};
use tower::ServiceExt;

#[tokio::test]
async fn root_health_and_version() {
    let env = Env::new("root");
    let state = env.state(Config::default());
    let (status, _, body) = send(&state, Method::GET, "/", Body::empty()).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"hearth is running"[..])
    );
    let (status, _, _) = send(&state, Method::GET, "/health", Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = get(&state, "/api/version").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let (status, v) = get(&state, "/api/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "no such endpoint");
    let (status, _, _) = send(&state, Method::GET, "/api/generate", Body::empty()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn browsers_get_the_web_page_without_a_key_and_the_api_still_needs_one() {
    let env = Env::new("page");
    let key = "hearth-page-key";
    let config = Config {
        keys: vec![server::config_file::KeyEntry {
            name: "k".into(),
            sha256: server::auth::key_hash(key),
            models: None,
            admin: true,
            local_only: false,
            requests_per_minute: None,
            tokens_per_minute: None,
            max_concurrent: None,
        }],
        ..Config::default()
    };
    let state = env.state(config);
    let page = |path: &str| {
        Request::builder()
            .uri(path)
            .header(header::ACCEPT, "text/html,*/*;q=0.8")
            .body(Body::empty())
            .unwrap()
    };
    let response = app(state.clone()).oneshot(page("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert_eq!(csp, server::web::CONTENT_SECURITY_POLICY);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("<title>hearth</title>"));
    for (path, kind) in [
        ("/ui/app.js", "text/javascript"),
        ("/ui/markdown.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
        ("/ui/icon.svg", "image/svg+xml"),
    ] {
        let (status, content_type, _) = send(&state, Method::GET, path, Body::empty()).await;
        assert_eq!(
            (status, content_type.as_str()),
            (StatusCode::OK, kind),
            "{path}"
        );
    }
    // The data behind the page is not open.
    let (status, _) = get(&state, "/api/tags").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = get(&state, "/ui/nothing").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn generate_without_streaming_returns_one_object() {
    let env = Env::new("gen");
    let state = env.state(Config::default());
    let (status, v) = post(
        &state,
        "/api/generate",
        json!({"model": "tiny", "prompt": "Hello", "stream": false,
               "options": {"num_predict": 5, "seed": 42, "temperature": 0}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["model"], "tiny");
    assert_eq!(v["done"], true);
    assert_eq!(v["done_reason"], "length");
    assert_eq!(v["eval_count"], 5);
    assert!(!v["response"].as_str().unwrap().is_empty(), "{v}");
    assert!(v["prompt_eval_count"].as_u64().unwrap() > 0);
    assert!(v["total_duration"].as_u64().unwrap() >= v["eval_duration"].as_u64().unwrap());
    assert!(v["created_at"].as_str().unwrap().ends_with('Z'));
    let context = v["context"].as_array().unwrap();
    assert!(context.len() > 5);

    // The same request with the same seed gives the same text; continuing
    // from the context works.
    let (_, again) = post(
        &state,
        "/api/generate",
        json!({"model": "tiny", "prompt": "Hello", "stream": false,
               "options": {"num_predict": 5, "seed": 42, "temperature": 0}}),
    )
    .await;
    assert_eq!(again["response"], v["response"]);
    let (status, next) = post(
        &state,
        "/api/generate",
        json!({"model": "tiny", "prompt": "More", "stream": false, "context": context,
               "options": {"num_predict": 3}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert!(next["context"].as_array().unwrap().len() > context.len());
}

#[tokio::test]
async fn generate_streams_ndjson_ending_with_the_summary() {
    let env = Env::new("stream");
    let state = env.state(Config::default());
    let body = json!({"model": "tiny", "prompt": "Hi", "options": {"num_predict": 6, "seed": 1}});
    let (status, content_type, bytes) = send(
        &state,
        Method::POST,
        "/api/generate",
        Body::from(body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/x-ndjson");
    let lines = ndjson(&bytes);
    let (last, pieces) = lines.split_last().unwrap();
    assert!(!pieces.is_empty());
    assert!(
        pieces
            .iter()
            .all(|p| p["done"] == false && p["response"].is_string())
    );
    assert_eq!(last["done"], true);
    assert_eq!(last["eval_count"], 6);
    for key in [
        "total_duration",
        "load_duration",
        "prompt_eval_duration",
        "eval_duration",
    ] {
        assert!(last[key].is_u64(), "{key}: {last}");
    }
}

#[tokio::test]
async fn a_long_chat_keeps_the_system_and_the_most_recent_messages_that_fit() {
    let env = Env::new("chat-long");
    let state = env.state(Config::default());
    let mut messages = vec![json!({"role": "system", "content": "Be brief."})];
    for i in 0..300 {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push(json!({"role": role, "content": format!("{i}")}));
    }
    let chat = |messages: Vec<serde_json::Value>, num_ctx: u64| {
        let state = state.clone();
        async move {
            let (status, v) = post(
                &state,
                "/api/chat",
                // Unloaded after each, so that no prefix is cached and the
                // count is the whole prompt's.
                json!({"model": "tiny", "messages": messages, "stream": false, "keep_alive": 0,
                       "options": {"num_predict": 1, "num_ctx": num_ctx}}),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{v}");
            v["prompt_eval_count"].as_u64().unwrap()
        }
    };
    // 128 positions here; the tails are measured in the model's whole 256.
    let cut = chat(messages.clone(), 128).await;
    assert!(cut < 128, "{cut}");
    // The system message and the last j messages, at full length: the server
    // kept the largest j that fits.
    let tail = |j: usize| {
        let mut m = vec![messages[0].clone()];
        m.extend_from_slice(&messages[messages.len() - j..]);
        m
    };
    let mut j = 1;
    assert!(chat(tail(j), 256).await < 128);
    while j + 1 < messages.len() && chat(tail(j + 1), 256).await < 128 {
        j += 1;
    }
    assert_eq!(cut, chat(tail(j), 256).await);
}

#[tokio::test]
async fn chat_answers_with_an_assistant_message() {
    let env = Env::new("chat");
    let state = env.state(Config::default());
    let messages =
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]);
    let (status, v) = post(
        &state,
        "/api/chat",
        json!({"model": "tiny", "messages": messages, "stream": false,
               "options": {"num_predict": 4, "temperature": 0}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["message"]["role"], "assistant");
    assert!(v["message"]["content"].is_string());
    assert_eq!(v["done"], true);
    assert!(v.get("context").is_none());

    let body = json!({"model": "tiny", "messages": messages, "options": {"num_predict": 4, "temperature": 0}});
    let (status, _, bytes) = send(
        &state,
        Method::POST,
        "/api/chat",
        Body::from(body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let lines = ndjson(&bytes);
    let text: String = lines
        .iter()
        .map(|l| l["message"]["content"].as_str().unwrap())
        .collect();
    // Greedy decoding: streamed pieces add up to the non-streamed answer.
    assert_eq!(text, v["message"]["content"].as_str().unwrap(), "{lines:?}");
}

#[tokio::test]
async fn bad_requests_get_clear_4xx_errors_and_the_server_keeps_serving() {
    let env = Env::new("errors");
    let state = env.state(Config {
        max_body_bytes: 4096,
        ..Config::default()
    });
    let body = |v: Value| Body::from(v.to_string());
    let bad = StatusCode::BAD_REQUEST;

    let m = post_error(&state, "/api/generate", Body::from("{\"model\": "), bad).await;
    assert!(m.starts_with("malformed JSON"), "{m}");
    let m = post_error(&state, "/api/generate", Body::empty(), bad).await;
    assert_eq!(m, "missing request body");
    let m = post_error(
        &state,
        "/api/generate",
        body(json!({"model": "tiny", "prompt": "x", "options": {"num_ctx": "big"}})),
        bad,
    )
    .await;
    assert!(m.contains("'options.num_ctx'"), "{m}");
    let m = post_error(
        &state,
        "/api/generate",
        body(json!({"model": "tiny", "prompt": 5})),
        bad,
    )
    .await;
    assert!(m.contains("'prompt'"), "{m}");
    let m = post_error(&state, "/api/generate", body(json!({"prompt": "x"})), bad).await;
    assert_eq!(m, "model is required");
    let m = post_error(
        &state,
        "/api/generate",
        body(json!({"model": "nope", "prompt": "x"})),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(m.contains("'nope"), "{m}");
    let m = post_error(
        &state,
        "/api/generate",
        body(json!({"model": "tiny", "prompt": "x", "options": {"num_predict": -3}})),
        bad,
    )
    .await;
    assert!(m.starts_with("num_predict -3 is invalid"), "{m}");
    let m = post_error(
        &state,
        "/api/generate",
        body(json!({"model": "tiny", "prompt": "x", "options": {"num_ctx": 1_000_000_000}})),
        bad,
    )
    .await;
    assert!(m.contains("out of range"), "{m}");
    let m = post_error(
        &state,
        "/api/generate",
        body(json!({"model": "tiny", "prompt": "x", "options": {"num_ctx": 100_000}})),
        bad,
    )
    .await;
    assert!(m.contains("trained with (256 tokens)"), "{m}");
    // A prompt longer than the context is cut as Ollama cuts it: its first
    // num_keep tokens and as many of the last as leave one position free.
    let long = "word ".repeat(20);
    let (status, v) = post(
        &state,
        "/api/generate",
        json!({"model": "tiny", "prompt": long, "stream": false,
               "options": {"num_ctx": 32, "num_predict": 2, "num_keep": 5}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["prompt_eval_count"], 31, "{v}");
    let cut = v["context"].as_array().unwrap();
    // The whole prompt's tokens, from a context that holds them.
    let (status, whole) = post(
        &state,
        "/api/generate",
        json!({"model": "tiny", "prompt": long, "stream": false,
               "options": {"num_ctx": 256, "num_predict": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    let all = whole["context"].as_array().unwrap();
    let tokens = &all[..all.len() - whole["eval_count"].as_u64().unwrap() as usize];
    // Longer than 32, shorter than 256.
    assert!(tokens.len() > 32, "{whole}");
    assert_eq!(whole["prompt_eval_count"], tokens.len(), "{whole}");
    assert_eq!(cut[..5], tokens[..5], "{v}\n{whole}");
    assert_eq!(cut[5..31], tokens[tokens.len() - 26..], "{v}");
    let m = post_error(
        &state,
        "/api/generate",
        body(json!({"model": "tiny", "prompt": "x", "format": "yaml"})),
        bad,
    )
    .await;
    assert_eq!(
        m,
        "format \"yaml\" is invalid: use \"json\" or a JSON Schema object"
    );
    let m = post_error(
        &state,
        "/api/chat",
        body(
            json!({"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                   "tools": [{"type": "function", "function": {"name": "f"}}]}),
        ),
        bad,
    )
    .await;
    // The test model's fallback template renders no tools.
    assert!(m.contains("does not support tools"), "{m}");
    let m = post_error(
        &state,
        "/api/chat",
        body(json!({"model": "tiny", "messages": [{"role": "user", "content": "x", "images": ["aGk="]}]})),
        bad,
    )
    .await;
    assert!(m.starts_with("images are not supported"), "{m}");
    let m = post_error(
        &state,
        "/api/chat",
        body(json!({"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]})),
        bad,
    )
    .await;
    assert!(m.contains("messages[0].role"), "{m}");
    let m = post_error(
        &state,
        "/api/generate",
        body(json!({"model": "tiny", "prompt": "x", "keep_alive": "whenever"})),
        bad,
    )
    .await;
    assert!(m.contains("keep_alive"), "{m}");
    let big = Body::from(vec![b' '; 10_000]);
    let m = post_error(&state, "/api/generate", big, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(m.starts_with("request body too large"), "{m}");

    // Still serving.
    let (status, v) = post(
        &state,
        "/api/generate",
        json!({"model": "tiny", "prompt": "ok", "stream": false, "options": {"num_predict": 2}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn empty_prompt_loads_and_keep_alive_zero_unloads() {
    let env = Env::new("residency");
    let state = env.state(Config::default());
    let (_, ps) = get(&state, "/api/ps").await;
    assert_eq!(ps["models"], json!([]));
    let (status, v) = post(&state, "/api/generate", json!({"model": "tiny"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["done"].clone(), v["done_reason"].clone()),
        (json!(true), json!("load"))
    );
    let (_, ps) = get(&state, "/api/ps").await;
    let loaded = &ps["models"][0];
    assert_eq!(loaded["name"], "tiny:latest");
    assert_eq!(loaded["context_length"], 256);
    assert_eq!(loaded["size_vram"], 0);
    assert!(loaded["size"].as_u64().unwrap() > std::fs::metadata(env.gguf()).unwrap().len());
    assert!(loaded["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(loaded["details"]["family"], "llama");

    let (status, v) = post(
        &state,
        "/api/generate",
        json!({"model": "tiny", "keep_alive": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["done_reason"], "unload");
    let (_, ps) = get(&state, "/api/ps").await;
    assert_eq!(ps["models"], json!([]));

    // A generation with keep_alive 0 unloads before its response ends.
    let (status, _) = post(
        &state,
        "/api/chat",
        json!({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "stream": false,
               "keep_alive": 0, "options": {"num_predict": 2}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, ps) = get(&state, "/api/ps").await;
    assert_eq!(ps["models"], json!([]));
}

#[tokio::test]
async fn models_that_do_not_fit_are_refused_or_evict_idle_ones() {
    // Sizes are compared across states with different memory caps: a set
    // parallelism keeps a model's size the same whatever memory is free
    // (unset, it follows the free memory: `scheduler::sizing`).
    let fixed = || Config {
        num_parallel: Some(4),
        ..Config::default()
    };
    let env = Env::new("evict");
    let copy = json!({"source": "tiny", "destination": "other"});
    // A copy shares the manifest, so it is the same loaded model; make a
    // genuinely different one with a system prompt.
    let (status, _) = post(&env.state(fixed()), "/api/copy", copy).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post(
        &env.state(fixed()),
        "/api/create",
        json!({"model": "second", "from": "tiny", "system": "Another model.", "stream": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let state = env.state(Config {
        max_loaded_models: 1,
        ..fixed()
    });
    post(&state, "/api/generate", json!({"model": "tiny"})).await;
    post(&state, "/api/generate", json!({"model": "other"})).await;
    let (_, ps) = get(&state, "/api/ps").await;
    assert_eq!(ps["models"].as_array().unwrap().len(), 1);
    post(&state, "/api/generate", json!({"model": "second"})).await;
    let (_, ps) = get(&state, "/api/ps").await;
    let models = ps["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "{ps}");
    assert_eq!(models[0]["name"], "second:latest");

    let tight = env.state(Config {
        max_memory: Some(1000),
        ..fixed()
    });
    let m = post_error(
        &tight,
        "/api/generate",
        Body::from(json!({"model": "tiny"}).to_string()),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert!(m.contains("needs about") && m.contains("available"), "{m}");

    // Room for one model: loading another evicts the idle one.
    let size = models[0]["size"].as_u64().unwrap();
    let one = env.state(Config {
        max_memory: Some(size + size / 2),
        ..fixed()
    });
    post(&one, "/api/generate", json!({"model": "tiny"})).await;
    let (status, v) = post(&one, "/api/generate", json!({"model": "second"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, ps) = get(&one, "/api/ps").await;
    let names: Vec<&Value> = ps["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["name"])
        .collect();
    assert_eq!(names, [&json!("second:latest")]);

    // A larger num_ctx grows a loaded model's KV caches: refused when that
    // would not fit.
    let small = json!({"model": "tiny", "options": {"num_ctx": 64}});
    let probe = env.state(fixed());
    post(&probe, "/api/generate", small.clone()).await;
    let (_, ps) = get(&probe, "/api/ps").await;
    let size_64 = ps["models"][0]["size"].as_u64().unwrap();
    let snug = env.state(Config {
        max_memory: Some(size_64 + 10),
        ..fixed()
    });
    let (status, _) = post(&snug, "/api/generate", small.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let m = post_error(
        &snug,
        "/api/generate",
        Body::from(
            json!({"model": "tiny", "prompt": "x", "options": {"num_ctx": 256}}).to_string(),
        ),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert!(m.contains("use a smaller num_ctx"), "{m}");
    let (status, _) = post(&snug, "/api/generate", small).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn embeddings_are_pooled_and_normalised() {
    let env = Env::new("embed");
    let state = env.state(Config::default());
    let (status, v) = post(
        &state,
        "/api/embed",
        json!({"model": "tiny", "input": ["hello", "world"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let vectors = v["embeddings"].as_array().unwrap();
    assert_eq!(vectors.len(), 2);
    for vector in vectors {
        let xs: Vec<f64> = vector
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(xs.len(), 256);
        let norm: f64 = xs.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    assert_ne!(vectors[0], vectors[1]);
    assert!(v["prompt_eval_count"].as_u64().unwrap() >= 2);

    let (_, one) = post(
        &state,
        "/api/embed",
        json!({"model": "tiny", "input": "hello", "dimensions": 8}),
    )
    .await;
    assert_eq!(one["embeddings"][0].as_array().unwrap().len(), 8);

    let (status, legacy) = post(
        &state,
        "/api/embeddings",
        json!({"model": "tiny", "prompt": "hello"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let xs: Vec<f64> = legacy["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let norm: f64 = xs.iter().map(|x| x * x).sum::<f64>().sqrt();
    // Legacy embeddings are not normalised; scaled, they equal the new ones.
    assert!((norm - 1.0).abs() > 1e-3, "{norm}");
    let first = vectors[0].as_array().unwrap();
    for (a, b) in xs.iter().zip(first) {
        assert!((a / norm - b.as_f64().unwrap()).abs() < 1e-4);
    }

    let m = post_error(
        &state,
        "/api/embed",
        Body::from(
            json!({"model": "tiny", "input": "word ".repeat(100), "truncate": false,
                          "options": {"num_ctx": 16}})
            .to_string(),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("more than the context"), "{m}");
}

#[tokio::test]
async fn cors_allows_local_origins_only() {
    let env = Env::new("cors");
    let state = env.state(Config::default());
    let preflight = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/tags")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .body(Body::empty())
            .unwrap()
    };
    let allowed = app(state.clone())
        .oneshot(preflight("http://localhost:3000"))
        .await
        .unwrap();
    assert_eq!(
        allowed
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .unwrap(),
        "http://localhost:3000"
    );
    let refused = app(state.clone())
        .oneshot(preflight("https://evil.example"))
        .await
        .unwrap();
    assert!(
        refused
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );

    let open = env.state(Config {
        origins: vec!["https://app.example".into()],
        ..Config::default()
    });
    let extra = app(open)
        .oneshot(preflight("https://app.example"))
        .await
        .unwrap();
    assert!(
        extra
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_some()
    );
}

#[tokio::test]
async fn a_model_that_fails_to_load_is_a_clear_500_and_the_server_keeps_serving() {
    let env = Env::new("loadfail");
    let bad = env.dir.join("mystery.gguf");
    let mut w = gguf::GgufWriter::new();
    w.add_str("general.architecture", "mystery");
    w.write_file(&bad).unwrap();
    let name = ModelName::parse("mystery").unwrap();
    env.store
        .create(
            &name,
            &Modelfile::new(bad.display().to_string()),
            &env.dir,
            &mut |_| {},
        )
        .unwrap();
    let state = env.state(Config::default());
    for _ in 0..2 {
        let m = post_error(
            &state,
            "/api/generate",
            Body::from(json!({"model": "mystery", "prompt": "x"}).to_string()),
            StatusCode::INTERNAL_SERVER_ERROR,
        )
        .await;
        assert!(m.contains("unknown model architecture 'mystery'"), "{m}");
    }
    let (_, ps) = get(&state, "/api/ps").await;
    assert!(
        ps["models"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["name"] != "mystery:latest")
    );
    // Null fields mean their defaults, as Ollama's Go decoder reads them.
    let (status, v) = post(
        &state,
        "/api/generate",
        json!({"model": "tiny", "prompt": "x", "stream": false, "raw": null, "context": null,
               "options": null, "keep_alive": null, "format": null, "images": null}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = post(
        &state,
        "/api/chat",
        json!({"model": "tiny", "messages": null, "options": null}),
    )
    .await;
    assert_eq!(
        (status, v["done_reason"].clone()),
        (StatusCode::OK, json!("load"))
    );
}
