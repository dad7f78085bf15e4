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
