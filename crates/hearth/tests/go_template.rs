//! A Modelfile whose TEMPLATE is a Go template, as every Ollama Modelfile's
//! is: `hearth create` accepts it and the built-in model answers through it,
//! standalone and through `hearth serve` (`/api/chat`); a TEMPLATE that is
//! neither Go nor Jinja is refused when the model is created.

mod serve_common;

use serde_json::json;
use serve_common::{Scratch, free_port, text};

/// hearth-tiny's own ChatML, written as a Go template over `.Messages`.
const CHATML: &str = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n\
                      {{ end }}<|im_start|>assistant\n";

/// Ollama's older style: `.System` / `.Prompt` / `.Response`, rendered per turn.
const LEGACY: &str = "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}\
                      {{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}\
                      <|im_start|>assistant\n{{ .Response }}<|im_end|>\n";

/// Asks its own question whatever the user said: its answer shows that the
/// prompt came from this template.
const FIXED: &str = "{{- range .Messages }}{{ end }}<|im_start|>user\n\
                     What is {{ len \"ab\" }} plus {{ printf \"%d\" 3 }}?<|im_end|>\n\
                     <|im_start|>assistant\n";

/// An unclosed `range`.
const BROKEN: &str = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}";

/// An address no server listens on, so that the CLI works on the store.
fn standalone() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// The last number of an answer ("12 plus 7 is 19.").
fn final_number(answer: &str) -> Option<u64> {
    answer
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .next_back()
}

/// Writes `Modelfile.NAME` (FROM hearth-tiny with `template`) and returns
/// its file name.
fn modelfile(scratch: &Scratch, name: &str, template: &str) -> String {
    let file = format!("Modelfile.{name}");
    let text = format!("FROM hearth-tiny\nTEMPLATE \"\"\"{template}\"\"\"\n");
    std::fs::write(scratch.dir.join(&file), text).unwrap();
    file
}

#[test]
fn go_templates_work_without_a_server() {
    let scratch = Scratch::new("go-template-cli");
    let host = standalone();
    for (name, template, expected) in [
        ("chatml", CHATML, 19),
        ("legacy", LEGACY, 19),
        ("fixed", FIXED, 5),
    ] {
        let file = modelfile(&scratch, name, template);
        scratch.ok(&host, &["create", name, "-f", &file]);
        let answer = scratch.ok(&host, &["run", name, "What is 12 plus 7?"]);
        assert_eq!(final_number(&answer), Some(expected), "{name}: {answer}");
    }

    let file = modelfile(&scratch, "broken", BROKEN);
    let out = scratch.hearth(&host, &["create", "broken", "-f", &file]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Modelfile.broken: invalid TEMPLATE")
            && stderr.contains("go template: line 2: unexpected EOF: missing {{end}}"),
        "{stderr}"
    );
    let list = scratch.ok(&host, &["list"]);
    assert!(list.contains("fixed:latest"), "{list}");
    assert!(!list.contains("broken"), "{list}");
}

#[test]
fn go_templates_work_through_the_server() {
    let scratch = Scratch::new("go-template-serve");
    let server = scratch.serve(&[]);
    for (name, template) in [("chatml", CHATML), ("fixed", FIXED)] {
        let file = modelfile(&scratch, name, template);
        scratch.ok(&server.host, &["create", name, "-f", &file]);
    }
    for (name, expected) in [("chatml", 19), ("fixed", 5)] {
        let (status, body) = server.post(
            "/api/chat",
            &json!({
                "model": name,
                "messages": [{"role": "user", "content": "What is 12 plus 7?"}],
                "stream": false
            }),
        );
        assert_eq!(status, 200, "{body}");
        let answer = body["message"]["content"].as_str().unwrap_or_default();
        assert_eq!(final_number(answer), Some(expected), "{name}: {body}");
    }

    // Refused at create, by the server's /api/create as by the CLI.
    let (status, body) = server.post(
        "/api/create",
        &json!({"model": "broken", "from": "hearth-tiny", "template": BROKEN, "stream": false}),
    );
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("invalid template: chat template syntax error: go template: line 2"),
        "{body}"
    );
    let tags = server.get("/api/tags");
    let names: Vec<&str> = tags["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(!names.contains(&"broken:latest"), "{tags}");
    assert!(names.contains(&"fixed:latest"), "{tags}");
}
