//! Each family's tool-call parser reads back what its real template writes:
//! a conversation ending in an assistant turn with a tool call is rendered
//! through llama.cpp's template (`models/templates`), the text after the
//! generation prompt (up to the end-of-turn token, which generation never
//! shows) is what the model would have produced, and parsing it gives the
//! call back.
//!
//! The templates are not committed: `tools/fetch-llama-vocabs.sh` unpacks
//! them and `HEARTH_LLAMA_VOCAB_DIR` names where.

use std::path::PathBuf;

use model::chat::output::{Dialect, ToolSyntax};
use model::chat::{ChatRequest, ChatTemplate};
use serde_json::{Value, json};

fn templates() -> PathBuf {
    std::env::var_os("HEARTH_LLAMA_VOCAB_DIR")
        .map(|d| PathBuf::from(d).join("templates"))
        .expect("HEARTH_LLAMA_VOCAB_DIR is not set (run tools/fetch-llama-vocabs.sh)")
}

/// Texts that end an assistant turn: generation stops at these tokens.
const END_OF_TURN: &[&str] = &[
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<｜end▁of▁sentence｜>",
    "</s>",
    "<|END_OF_TURN_TOKEN|>",
    "<|end_of_text|>",
    "<|call|>",
    "<|return|>",
];

fn render(template: &ChatTemplate, messages: Vec<Value>, generation_prompt: bool) -> String {
    try_render(template, messages, generation_prompt).unwrap()
}

fn try_render(
    template: &ChatTemplate,
    messages: Vec<Value>,
    generation_prompt: bool,
) -> Result<String, model::chat::ChatError> {
    let tools = vec![json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city"}},
                       "required": ["city"]},
    }})];
    let mut extra = serde_json::Map::new();
    // FireFunction v2's variables, as the server passes them.
    extra.insert(
        "functions".into(),
        serde_json::to_string_pretty(&tools).unwrap().into(),
    );
    extra.insert("datetime".into(), "Jan 01 2026".into());
    let request = ChatRequest {
        messages,
        add_generation_prompt: generation_prompt,
        bos_token: "<s>".into(),
        eos_token: "</s>".into(),
        tools: Some(tools),
        extra,
    };
    template.render(&request)
}

/// The assistant turn a template writes for a call of `get_weather`.
fn answer(source: &str) -> String {
    let template = ChatTemplate::new(source).unwrap();
    let user = json!({"role": "user", "content": "What is the weather in Paris?"});
    let prompt = render(&template, vec![user.clone()], true);
    let call = |arguments: Value| {
        json!({"role": "assistant", "content": "", "tool_calls": [{
            "id": "abc123def", "type": "function",
            "function": {"name": "get_weather", "arguments": arguments},
        }]})
    };
    // Arguments as an object, or as a JSON string for templates that
    // concatenate them (as the server retries).
    let full = try_render(
        &template,
        vec![user.clone(), call(json!({"city": "Paris"}))],
        false,
    )
    .unwrap_or_else(|_| {
        render(
            &template,
            vec![user, call(json!("{\"city\": \"Paris\"}"))],
            false,
        )
    });
    // The answer starts where the rendered prompt and conversation part.
    let common = prompt
        .char_indices()
        .zip(full.chars())
        .find(|((_, a), b)| a != b)
        .map_or(prompt.len().min(full.len()), |((i, _), _)| i);
    // A tag both start (`<think>` in the prompt, `<｜tool…` in the answer)
    // belongs to the answer.
    let common = full[..common].trim_end_matches('<').len();
    let mut text = full[common..].to_owned();
    if let Some(end) = END_OF_TURN.iter().filter_map(|e| text.find(e)).min() {
        text.truncate(end);
    }
    text
}

// Granite 3.3's template is not here: it renders an assistant turn's
// content only, never its tool calls (its `<|tool_call|>[…]` format is tested
// in model::chat::output's unit tests).
#[test]
#[cfg_attr(
    not(hearth_llama_vocabs),
    ignore = "needs HEARTH_LLAMA_VOCAB_DIR (tools/fetch-llama-vocabs.sh)"
)]
fn each_family_parses_the_call_its_template_writes() {
    let cases = [
        ("Qwen-Qwen2.5-7B-Instruct", ToolSyntax::Hermes),
        ("Qwen-Qwen3-0.6B", ToolSyntax::Hermes),
        (
            "NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
            ToolSyntax::Hermes,
        ),
        ("meta-llama-Llama-3.1-8B-Instruct", ToolSyntax::Llama3),
        ("meta-llama-Llama-3.3-70B-Instruct", ToolSyntax::Llama3),
        (
            "mistralai-Mistral-Nemo-Instruct-2407",
            ToolSyntax::MistralNemo,
        ),
        (
            "CohereForAI-c4ai-command-r7b-12-2024-tool_use",
            ToolSyntax::CommandR7b,
        ),
        ("llama-cpp-deepseek-r1", ToolSyntax::DeepSeekR1),
        ("deepseek-ai-DeepSeek-V3.1", ToolSyntax::DeepSeekV31),
        ("openai-gpt-oss-120b", ToolSyntax::GptOss),
        (
            "meetkai-functionary-medium-v3.1",
            ToolSyntax::FunctionaryV31,
        ),
        (
            "meetkai-functionary-medium-v3.2",
            ToolSyntax::FunctionaryV32,
        ),
        (
            "fireworks-ai-llama-3-firefunction-v2",
            ToolSyntax::FireFunctionV2,
        ),
    ];
    let mut failures = Vec::new();
    for (name, syntax) in cases {
        let path = templates().join(format!("{name}.jinja"));
        let source = std::fs::read_to_string(&path).unwrap();
        let dialect = Dialect::detect(&source);
        assert_eq!(dialect.tools, syntax, "{name}");
        let text = answer(&source);
        let parsed = dialect.parse(&text, true, false);
        let ok = parsed.calls.len() == 1
            && parsed.calls[0].name == "get_weather"
            && parsed.calls[0].arguments == json!({"city": "Paris"})
            && parsed.content.trim().is_empty();
        if !ok {
            failures.push(format!("{name}: {text:?} -> {parsed:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
