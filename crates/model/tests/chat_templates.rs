//! Real chat templates render byte-identically to the Hugging Face reference.
//!
//! `tests/fixtures/chat/cases.json` lists, for every template fixture, the render
//! inputs and either the expected output file or the message the template raises;
//! `tools/chat-fixtures/gen.py` produced both with Python jinja2 configured as
//! transformers' `apply_chat_template`, with `strftime_now` pinned to the date in
//! the manifest.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use model::chat::{ChatError, ChatRequest, ChatTemplate};
use serde::Deserialize;

#[derive(Deserialize)]
struct Manifest {
    /// ISO date-time `strftime_now` returns in every case.
    strftime_now: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    template: String,
    inputs: Inputs,
    expected: Option<String>,
    expected_error: Option<String>,
}

#[derive(Deserialize)]
struct Inputs {
    messages: Vec<serde_json::Value>,
    tools: Option<Vec<serde_json::Value>>,
    add_generation_prompt: bool,
    bos_token: String,
    eos_token: String,
    #[serde(default)]
    extra: serde_json::Map<String, serde_json::Value>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn manifest() -> Manifest {
    serde_json::from_str(&read(&fixtures().join("cases.json"))).expect("cases.json")
}

/// Renders one case; `Err` carries a description of the mismatch.
fn check(case: &Case, now: jiff::civil::DateTime) -> Result<(), String> {
    let source = read(&fixtures().join(&case.template));
    let template = ChatTemplate::with_clock(&source, Arc::new(move || now))
        .map_err(|e| format!("compile: {e}"))?;
    let request = ChatRequest {
        messages: case.inputs.messages.clone(),
        add_generation_prompt: case.inputs.add_generation_prompt,
        bos_token: case.inputs.bos_token.clone(),
        eos_token: case.inputs.eos_token.clone(),
        tools: case.inputs.tools.clone(),
        extra: case.inputs.extra.clone(),
    };
    let got = template.render(&request);
    match (&case.expected, &case.expected_error, got) {
        (Some(file), None, Ok(text)) => {
            let want = read(&fixtures().join(file));
            if text == want {
                Ok(())
            } else {
                Err(format!(
                    "output differs\n--- want\n{want}\n--- got\n{text}\n---"
                ))
            }
        }
        (None, Some(message), Err(ChatError::Raised(raised))) if *message == raised => Ok(()),
        (_, _, got) => Err(format!(
            "want {:?} / error {:?}, got {got:?}",
            case.expected, case.expected_error
        )),
    }
}

#[test]
fn every_template_matches_the_reference() {
    let manifest = manifest();
    let now: jiff::civil::DateTime = manifest.strftime_now.parse().expect("strftime_now");
    let failures: Vec<String> = manifest
        .cases
        .iter()
        .filter_map(|case| {
            check(case, now)
                .err()
                .map(|e| format!("{}: {e}", case.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        manifest.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn fixtures_cover_the_issue_models_with_and_without_tools() {
    let manifest = manifest();
    let models = [
        "llama-3.1",
        "llama-3.2",
        "mistral-v0.3",
        "mistral-nemo",
        "mixtral",
        "qwen-2.5",
        "qwen-3",
        "phi-3-mini",
        "phi-3.5",
        "gemma-2",
        "gemma-3",
        "gemma-4",
        "gemma-4-31b",
        "deepseek-r1-distill-llama",
        "deepseek-r1-distill-qwen",
        "command-r",
        "command-r-plus-tool-use",
        "gpt-oss",
    ];
    for model in models {
        for case in ["basic", "no_system", "tools"] {
            let name = format!("{model}/{case}");
            assert!(
                manifest.cases.iter().any(|c| c.name == name),
                "missing case {name}"
            );
        }
    }
    // Tool calls and tool results are exercised, not only tool definitions.
    let with_tool_results = manifest
        .cases
        .iter()
        .filter(|c| c.inputs.messages.iter().any(|m| m["role"] == "tool"))
        .count();
    assert!(
        with_tool_results >= 8,
        "{with_tool_results} cases carry tool results"
    );
    // Reasoning blocks, template variables and content parts each have a case.
    for name in [
        "qwen-3/reasoning",
        "qwen-3/thinking_disabled",
        "gemma-3/content_parts",
        "gemma-4/thinking_enabled",
        "gemma-4/content_parts",
    ] {
        assert!(
            manifest.cases.iter().any(|c| c.name == name),
            "missing case {name}"
        );
    }
    // And some templates reject a conversation on purpose.
    assert!(manifest.cases.iter().any(|c| c.expected_error.is_some()));
}
