//! Ollama's `options` as the server takes them: Mirostat sampling, another
//! num_thread loading an idle model again, and options with no effect here
//! accepted with one warning each in the log.

mod serve_common;

use serde_json::json;
use serve_common::{Scratch, Server};

#[test]
fn mirostat_and_ignored_options() {
    let scratch = Scratch::new("options");
    let log = scratch.dir.join("serve.log");
    let env = [("HEARTH_LOG", "info")];
    let server = Server::start_logged(&scratch.models(), &env, "HEARTH", &[], Some(&log));
    scratch.ok(&server.host, &["create", "tiny", "-f", "Modelfile"]);
    let generate = |options: serde_json::Value| {
        server.post(
            "/api/generate",
            &json!({"model": "tiny", "prompt": "Hello", "stream": false, "options": options}),
        )
    };

    // Mirostat 2.0 with a target surprise near zero keeps only the most likely
    // token at every step: at temperature 1 it answers as greedy decoding does.
    let (status, greedy) = generate(json!({"temperature": 0, "num_predict": 12}));
    assert_eq!(status, 200, "{greedy}");
    let (status, mirostat) = generate(json!({
        "temperature": 1, "seed": 5, "num_predict": 12,
        "mirostat": 2, "mirostat_tau": 0.001, "mirostat_eta": 0.1,
    }));
    assert_eq!(status, 200, "{mirostat}");
    assert_eq!(mirostat["response"], greedy["response"]);
    // Without it, the same seed at temperature 1 samples other tokens (the
    // random model's distributions are flat enough).
    let (_, sampled) = generate(json!({"temperature": 1, "seed": 5, "num_predict": 12}));
    assert_ne!(sampled["response"], greedy["response"]);
    // Mirostat 1 runs too.
    let (status, v1) =
        generate(json!({"temperature": 1, "seed": 5, "num_predict": 4, "mirostat": 1}));
    assert_eq!(status, 200, "{v1}");

    let (status, bad) = generate(json!({"mirostat": 3}));
    assert_eq!(status, 400);
    assert!(
        bad["error"].as_str().unwrap().contains("mirostat 3"),
        "{bad}"
    );

    // GPU and runner options are accepted, as unknown ones are; each is named
    // once in the log.
    let (status, ok) = generate(json!({
        "num_predict": 2, "num_gpu": 99, "use_mmap": false, "warmth": 3,
    }));
    assert_eq!(status, 200, "{ok}");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(lines("option=num_gpu"), 1, "{text}");
    assert_eq!(lines("option=use_mmap"), 1, "{text}");
    assert_eq!(lines("option=warmth"), 1, "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("option=num_gpu") && l.contains("does not apply")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("option=warmth") && l.contains("invalid option")),
        "{text}"
    );

    // Another num_thread loads the idle model again (once); the same one
    // does not.
    let loads = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| l.contains("loading model"))
            .count()
    };
    assert_eq!(loads(), 1);
    for _ in 0..2 {
        let (status, v) = generate(json!({"num_predict": 2, "num_thread": 1}));
        assert_eq!(status, 200, "{v}");
    }
    assert_eq!(loads(), 2);
}

#[test]
fn ignore_eos_and_bench_serve() {
    let scratch = Scratch::new("bench-serve");
    let server = scratch.serve(&[]);
    let complete = |extra: serde_json::Value| {
        let mut body = json!({"model": "hearth-tiny", "max_tokens": 48, "temperature": 0,
                              "messages": [{"role": "user", "content": "What is 12 plus 7?"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, v) = server.post("/v1/chat/completions", &body);
        assert_eq!(status, 200, "{v}");
        v
    };
    // The built-in model answers this in a few tokens at temperature 0; with
    // ignore_eos its end tokens are banned and it writes all 48.
    let ended = complete(json!({}));
    assert_eq!(ended["choices"][0]["finish_reason"], "stop", "{ended}");
    let full = complete(json!({"ignore_eos": true}));
    assert_eq!(full["usage"]["completion_tokens"], 48, "{full}");
    assert_eq!(full["choices"][0]["finish_reason"], "length", "{full}");

    // bench serve drives the server at two concurrency levels.
    let url = server.url("");
    let out = scratch.ok(
        &server.host,
        &[
            "bench",
            "serve",
            "hearth-tiny",
            "--url",
            &url,
            "-c",
            "1,3",
            "--requests",
            "3",
            "-n",
            "5",
            "-p",
            "16",
            "--shared-prefix",
            "8",
            "--long-prompt",
            "40",
            "--json",
        ],
    );
    let levels: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The saved output can be drawn beside another run.
    let saved = scratch.dir.join("peer.json");
    std::fs::write(&saved, &out).unwrap();
    let svg = scratch.dir.join("serve.svg");
    scratch.ok(
        &server.host,
        &[
            "bench",
            "serve",
            "hearth-tiny",
            "--url",
            &url,
            "-c",
            "1",
            "--requests",
            "1",
            "-n",
            "2",
            "-p",
            "8",
            "--plot",
            svg.to_str().unwrap(),
            "--compare",
            saved.to_str().unwrap(),
        ],
    );
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.starts_with("<svg") && drawn.contains("peer") && drawn.contains("this server"));
    let levels = levels.as_array().unwrap();
    assert_eq!(levels.len(), 2, "{out}");
    for (level, c) in levels.iter().zip([1, 3]) {
        assert_eq!(level["concurrency"], c, "{out}");
        assert_eq!(level["requests"], 3, "{out}");
        assert_eq!(level["generated_tokens"], 15, "{out}");
        assert!(level["tokens_per_s"].as_f64().unwrap() > 0.0, "{out}");
        let (p50, p95) = (level["ttft_p50_s"].as_f64(), level["ttft_p95_s"].as_f64());
        assert!(p50 <= p95, "{out}");
        let itl = |k: &str| level[k].as_f64().unwrap();
        assert!(itl("inter_token_p50_s") > 0.0, "{out}");
        assert!(
            itl("inter_token_p50_s") <= itl("inter_token_p99_s"),
            "{out}"
        );
        assert!(
            itl("inter_token_p99_s") <= itl("inter_token_max_s"),
            "{out}"
        );
        assert!(itl("e2e_p50_s") <= itl("e2e_p99_s"), "{out}");
        // The long prompt was sent once per level, and answered.
        assert!(itl("long_ttft_s") > 0.0, "{out}");
    }
    // A wrong model name fails with the server's message.
    let out = scratch.hearth(&server.host, &["bench", "serve", "nosuch", "--url", &url]);
    assert!(!out.status.success());
    let stderr = serve_common::text(&out.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn operator_limits_per_request() {
    let scratch = Scratch::new("limits");
    let server = scratch.serve(&[
        ("HEARTH_MAX_PROMPT_TOKENS", "40"),
        ("HEARTH_MAX_NUM_PREDICT", "5"),
    ]);
    scratch.ok(&server.host, &["create", "tiny", "-f", "Modelfile"]);
    let generate = |prompt: &str, options: serde_json::Value| {
        server.post(
            "/api/generate",
            &json!({"model": "tiny", "prompt": prompt, "raw": true, "stream": false,
                    "options": options}),
        )
    };
    let (status, v) = generate(&"word ".repeat(40), json!({"num_predict": 2}));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("HEARTH_MAX_PROMPT_TOKENS"),
        "{v}"
    );
    let (status, v) = generate("Hello", json!({"num_predict": 6}));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("HEARTH_MAX_NUM_PREDICT"),
        "{v}"
    );
    // "Until done" stops at the cap.
    let (status, v) = generate("Hello", json!({"ignore_eos": true}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["eval_count"], 5, "{v}");
    assert_eq!(v["done_reason"], "length", "{v}");
    // The OpenAI API answers in its own shape.
    let (status, v) = server.post(
        "/v1/completions",
        &json!({"model": "tiny", "prompt": "Hello", "max_tokens": 50}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("HEARTH_MAX_NUM_PREDICT"),
        "{v}"
    );
}
