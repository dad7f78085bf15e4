//! Ollama-style Go chat templates (our own, in the styles of Llama 3, ChatML /
//! Qwen with tools and thinking, Mistral with tools, Gemma, Phi-3) rendered
//! through `ChatTemplate` and compared byte for byte with Go's own
//! `text/template` over Ollama's data shapes: `tests/fixtures/gotmpl/expected`
//! is written by `tools/gotmpl-fixtures` (see its main.go). Legacy templates
//! (`.System` / `.Prompt` / `.Response`, rendered per turn) are checked
//! against strings worked out by hand from Ollama's rule.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use model::chat::{ChatError, ChatRequest, ChatTemplate, TemplateSyntax};
use serde_json::{Value, json};

const TEMPLATES: &[&str] = &["llama3", "qwen", "mistral", "gemma", "phi3"];
const REQUESTS: &[&str] = &["chat", "tools", "think", "ask"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gotmpl")
}

fn compile(source: &str) -> ChatTemplate {
    let now = jiff::civil::DateTime::constant(2025, 1, 31, 12, 0, 0, 0);
    let template = ChatTemplate::with_clock(source, Arc::new(move || now)).unwrap();
    assert_eq!(template.syntax(), TemplateSyntax::Go);
    template
}

/// A fixture request (`messages`, `tools`, `think`) as the API layer passes it.
fn request(body: &Value) -> ChatRequest {
    let mut extra = serde_json::Map::new();
    if let Some(think) = body.get("think") {
        extra.insert("think".into(), think.clone());
    }
    ChatRequest {
        messages: body["messages"].as_array().cloned().unwrap_or_default(),
        add_generation_prompt: true,
        tools: body["tools"].as_array().cloned(),
        extra,
        ..ChatRequest::default()
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_template_matches_go() {
    let dir = fixtures();
    let mut failures = Vec::new();
    for name in TEMPLATES {
        let template = compile(&read(&dir.join(format!("{name}.gotmpl"))));
        for req in REQUESTS {
            let body: Value =
                serde_json::from_str(&read(&dir.join(format!("requests/{req}.json")))).unwrap();
            let expected = read(&dir.join(format!("expected/{name}.{req}.txt")));
            let got = template.render(&request(&body)).unwrap();
            if got != expected {
                failures.push(format!(
                    "{name}.{req}:\n--- go\n{expected}\n--- hearth\n{got}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn openai_shaped_tool_calls_render_as_ollama_shaped_ones() {
    let template = compile(&read(&fixtures().join("qwen.gotmpl")));
    let ollama: Value =
        serde_json::from_str(&read(&fixtures().join("requests/tools.json"))).unwrap();
    let mut openai = ollama.clone();
    // OpenAI clients send arguments as a JSON string, ids, and tool results
    // with `name`; thinking as `reasoning_content`.
    openai["messages"][2] = json!({
        "role": "assistant", "content": null, "reasoning_content": "Two cities, two calls.",
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"unit\": \"celsius\", \"city\": \"Paris\"}"}},
            {"id": "b", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\", \"days\": 2}"}}
        ]
    });
    openai["messages"][3] = json!({"role": "tool", "content": "{\"temp\": 18}", "name": "get_weather", "tool_call_id": "a"});
    assert_eq!(
        template.render(&request(&openai)).unwrap(),
        template.render(&request(&ollama)).unwrap()
    );
}

fn chat(messages: Value) -> ChatRequest {
    request(&json!({ "messages": messages }))
}

#[test]
fn legacy_template_renders_each_turn_and_ends_at_the_response() {
    let template = compile(&read(&fixtures().join("legacy.gotmpl")));
    let body: Value = serde_json::from_str(&read(&fixtures().join("requests/chat.json"))).unwrap();
    assert_eq!(
        template.render(&request(&body)).unwrap(),
        "<<SYS>>\nYou answer in one sentence.\n<</SYS>>\n\n\
         [INST] What is the capital of France? [/INST] Paris is the capital of France.</s>\n\
         [INST] And of Italy? Say \"Rome\" & <why>. [/INST] "
    );
    // A system message after a turn starts the next render; a trailing
    // assistant message is a reply to continue.
    let out = template
        .render(&chat(json!([
            {"role": "user", "content": "a"},
            {"role": "system", "content": "s"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "partial"}
        ])))
        .unwrap();
    assert_eq!(
        out,
        "[INST] a [/INST] </s>\n<<SYS>>\ns\n<</SYS>>\n\n[INST] b [/INST] partial"
    );
}

#[test]
fn legacy_template_without_response_ends_with_the_prompt() {
    // Ollama's ChatML default: `.Response` is named, so nothing is appended.
    let chatml = "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}\
                  {{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}\
                  <|im_start|>assistant\n{{ .Response }}<|im_end|>\n";
    let out = compile(chatml)
        .render(&chat(json!([
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye"}
        ])))
        .unwrap();
    assert_eq!(
        out,
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n\
         <|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
    );
    // No `.Response` anywhere: one is appended, so earlier answers show.
    let out = compile("USER: {{ .Prompt }} ASSISTANT:")
        .render(&chat(json!([
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": " Hello"},
            {"role": "user", "content": "Bye"}
        ])))
        .unwrap();
    assert_eq!(out, "USER: Hi ASSISTANT: HelloUSER: Bye ASSISTANT:");
}

#[test]
fn broken_templates_fail_to_compile_with_the_line() {
    for (source, needle) in [
        (
            "{{ range .Messages }}{{ .Content }}",
            "line 1: unexpected EOF",
        ),
        (
            "{{ .Prompt }}\n{{ nosuchfunc .Prompt }}",
            "line 2: function \"nosuchfunc\" not defined",
        ),
        (
            "{{ .Prompt }}\n\n{{ $x }}",
            "line 3: undefined variable \"$x\"",
        ),
    ] {
        let err = ChatTemplate::new(source).unwrap_err();
        assert!(matches!(err, ChatError::Syntax(_)), "{err:?}");
        assert!(err.to_string().contains(needle), "{source:?}: {err}");
    }
}
