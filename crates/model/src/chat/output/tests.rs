//! Each family's parser on the text its template writes for a call (the
//! assistant turn of `messages[i].tool_calls`, as llama.cpp's templates in
//! `models/templates` render it), streamed in every split, and broken calls.

use serde_json::json;

use super::*;

fn dialect(tools: ToolSyntax, think: ThinkSyntax) -> Dialect {
    Dialect {
        tools,
        think,
        takes_tools: true,
    }
}

fn call(name: &str, arguments: Value) -> ToolCall {
    ToolCall {
        id: None,
        name: name.into(),
        arguments,
    }
}

/// Parses `text` whole, and streamed in pieces of every size from 1 to 7
/// bytes (on character boundaries): every way gives the same answer.
fn parse(d: Dialect, text: &str) -> Parsed {
    let whole = d.parse(text, true, false);
    for size in 1..8 {
        let mut parser = OutputParser::new(d, true, false);
        let mut pieces = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let mut n = size.min(rest.len());
            while !rest.is_char_boundary(n) {
                n += 1;
            }
            pieces.extend(parser.push(&rest[..n]));
            rest = &rest[n..];
        }
        pieces.extend(parser.finish());
        let mut streamed = Parsed::default();
        for p in pieces {
            match p {
                Piece::Content(t) => streamed.content.push_str(&t),
                Piece::Thinking(t) => streamed.thinking.push_str(&t),
                Piece::Call(c) => streamed.calls.push(c),
            }
        }
        assert_eq!(streamed, whole, "streamed in pieces of {size}: {text:?}");
    }
    whole
}

fn weather() -> Value {
    json!({"city": "Paris", "unit": "celsius"})
}

#[test]
fn detects_families_from_real_template_markers() {
    let cases = [
        ("{{- '<tool_call>\\n' }}", ToolSyntax::Hermes),
        (
            "<|start_header_id|>ipython<|end_header_id|>",
            ToolSyntax::Llama3,
        ),
        ("{{ '[TOOL_CALLS]' }}", ToolSyntax::MistralNemo),
        ("<|END_THINKING|><|START_ACTION|>", ToolSyntax::CommandR7b),
        (
            "<｜tool▁calls▁begin｜>function<｜tool▁sep｜>```json",
            ToolSyntax::DeepSeekR1,
        ),
        (
            "<｜tool▁calls▁begin｜>{{name}}<｜tool▁sep｜>",
            ToolSyntax::DeepSeekV31,
        ),
        ("<|start|>assistant<|channel|>final", ToolSyntax::GptOss),
        ("<|tool_call|>", ToolSyntax::Granite),
        ("<|start_header_id|> <function=", ToolSyntax::FunctionaryV31),
        (">>>all\n", ToolSyntax::FunctionaryV32),
        (" functools[", ToolSyntax::FireFunctionV2),
        (
            "{% if tools %}{{ tools | tojson }}{% endif %}",
            ToolSyntax::Generic,
        ),
    ];
    for (source, want) in cases {
        assert_eq!(Dialect::detect(source).tools, want, "{source}");
    }
    assert!(!Dialect::detect("{{ messages }}").takes_tools);
    assert_eq!(Dialect::detect("<think>\n").think, ThinkSyntax::Tags);
    assert_eq!(Dialect::detect("<|channel|>").think, ThinkSyntax::Harmony);
}

#[test]
#[cfg_attr(
    not(hearth_llama_vocabs),
    ignore = "needs HEARTH_LLAMA_VOCAB_DIR (tools/fetch-llama-vocabs.sh)"
)]
fn real_templates_are_detected() {
    // The templates themselves, where tools/fetch-llama-vocabs.sh has put them.
    let dir = std::env::var_os("HEARTH_LLAMA_VOCAB_DIR")
        .map(|d| std::path::PathBuf::from(d).join("templates"))
        .expect("HEARTH_LLAMA_VOCAB_DIR is not set (run tools/fetch-llama-vocabs.sh)");
    let cases = [
        (
            "Qwen-Qwen2.5-7B-Instruct",
            ToolSyntax::Hermes,
            ThinkSyntax::None,
        ),
        ("Qwen-Qwen3-0.6B", ToolSyntax::Hermes, ThinkSyntax::Tags),
        ("Qwen-QwQ-32B", ToolSyntax::Hermes, ThinkSyntax::Tags),
        (
            "NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
            ToolSyntax::Hermes,
            ThinkSyntax::None,
        ),
        (
            "meta-llama-Llama-3.1-8B-Instruct",
            ToolSyntax::Llama3,
            ThinkSyntax::None,
        ),
        (
            "meta-llama-Llama-3.2-3B-Instruct",
            ToolSyntax::Llama3,
            ThinkSyntax::None,
        ),
        (
            "mistralai-Mistral-Nemo-Instruct-2407",
            ToolSyntax::MistralNemo,
            ThinkSyntax::None,
        ),
        (
            "CohereForAI-c4ai-command-r7b-12-2024-tool_use",
            ToolSyntax::CommandR7b,
            ThinkSyntax::CommandR7b,
        ),
        (
            "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
            ToolSyntax::DeepSeekR1,
            ThinkSyntax::Tags,
        ),
        (
            "deepseek-ai-DeepSeek-V3.1",
            ToolSyntax::DeepSeekV31,
            ThinkSyntax::Tags,
        ),
        (
            "openai-gpt-oss-120b",
            ToolSyntax::GptOss,
            ThinkSyntax::Harmony,
        ),
        (
            "ibm-granite-granite-3.3-2B-Instruct",
            ToolSyntax::Granite,
            ThinkSyntax::Tags,
        ),
        (
            "meetkai-functionary-medium-v3.1",
            ToolSyntax::FunctionaryV31,
            ThinkSyntax::None,
        ),
        (
            "meetkai-functionary-medium-v3.2",
            ToolSyntax::FunctionaryV32,
            ThinkSyntax::None,
        ),
        (
            "fireworks-ai-llama-3-firefunction-v2",
            ToolSyntax::FireFunctionV2,
            ThinkSyntax::None,
        ),
    ];
    let mut seen = 0;
    for (name, tools, think) in cases {
        let Ok(source) = std::fs::read_to_string(dir.join(format!("{name}.jinja"))) else {
            continue;
        };
        seen += 1;
        let d = Dialect::detect(&source);
        assert_eq!((d.tools, d.think), (tools, think), "{name}");
        assert!(d.takes_tools, "{name}");
    }
    // Without the fetched templates there is nothing to check here; the
    // markers are covered above.
    assert!(
        seen == 0 || seen == cases.len(),
        "{seen} of {} templates",
        cases.len()
    );
}

#[test]
fn hermes_and_qwen() {
    let d = dialect(ToolSyntax::Hermes, ThinkSyntax::Tags);
    let text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
    let p = parse(d, text);
    assert_eq!(p.content, "Let me check.\n");
    assert_eq!(
        p.calls,
        [call("get_weather", weather()), call("get_time", json!({}))]
    );
    // Qwen 3 thinks first.
    let p = parse(
        d,
        "<think>\nThe user wants weather.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>",
    );
    assert_eq!(p.thinking, "\nThe user wants weather.\n");
    assert_eq!(p.content, "");
    assert_eq!(p.calls, [call("get_weather", weather())]);
    // Qwen3-Coder's XML form.
    let p = parse(
        d,
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>",
    );
    assert_eq!(
        p.calls,
        [call("get_weather", json!({"city": "Paris", "days": 3}))]
    );
}

#[test]
fn broken_calls_are_content() {
    let d = dialect(ToolSyntax::Hermes, ThinkSyntax::None);
    let text =
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \n</tool_call> after";
    let p = parse(d, text);
    assert!(p.calls.is_empty());
    assert_eq!(p.content, text);
    // One good call and one broken: the good one is a call, the rest content.
    let text = "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call><tool_call>{\"nam";
    let p = parse(d, text);
    assert_eq!(p.calls, [call("a", json!({}))]);
    assert_eq!(p.content, "<tool_call>{\"nam");
    for syntax in [
        ToolSyntax::Llama3,
        ToolSyntax::MistralNemo,
        ToolSyntax::CommandR7b,
        ToolSyntax::DeepSeekR1,
        ToolSyntax::Granite,
        ToolSyntax::FunctionaryV31,
        ToolSyntax::FireFunctionV2,
        ToolSyntax::Generic,
    ] {
        let d = dialect(syntax, ThinkSyntax::None);
        for marker in d.call_markers().iter().copied().chain(["{"]) {
            if syntax == ToolSyntax::FunctionaryV31 && marker == "<|python_tag|>" {
                // Whatever follows the tag is code for `python`.
                continue;
            }
            let text = format!("{marker}{{\"name\": \"x\", \"argu");
            let p = parse(d, &text);
            assert!(p.calls.is_empty(), "{syntax:?}");
            assert_eq!(p.content, text, "{syntax:?}");
        }
    }
}

#[test]
fn llama3() {
    let d = dialect(ToolSyntax::Llama3, ThinkSyntax::None);
    let p = parse(
        d,
        "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}",
    );
    assert_eq!(p.calls, [call("get_weather", weather())]);
    assert_eq!(p.content, "");
    let p = parse(
        d,
        "<|python_tag|>brave_search.call(query=\"weather in Paris\")",
    );
    assert_eq!(
        p.calls,
        [call("brave_search", json!({"query": "weather in Paris"}))]
    );
    let p = parse(
        d,
        "<|python_tag|>{\"type\": \"function\", \"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"x\": 1}}",
    );
    assert_eq!(p.calls, [call("a", json!({})), call("b", json!({"x": 1}))]);
    // Text that is not a call streams as content.
    let p = parse(d, "The weather is fine {not json}");
    assert_eq!(p.content, "The weather is fine {not json}");
}

#[test]
fn mistral_nemo() {
    let d = dialect(ToolSyntax::MistralNemo, ThinkSyntax::None);
    let p = parse(
        d,
        "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}, \"id\": \"abcdefghi\"}]",
    );
    assert_eq!(p.calls.len(), 1);
    assert_eq!(p.calls[0].id.as_deref(), Some("abcdefghi"));
    assert_eq!(p.calls[0].arguments, weather());
    let p = parse(
        d,
        "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\", \"unit\": \"celsius\"}",
    );
    assert_eq!(p.calls, [call("get_weather", weather())]);
}

#[test]
fn command_r7b() {
    let d = dialect(ToolSyntax::CommandR7b, ThinkSyntax::CommandR7b);
    let p = parse(
        d,
        "<|START_THINKING|>I will look it up.<|END_THINKING|><|START_ACTION|>[\n    {\"tool_call_id\": \"0\", \"tool_name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n]<|END_ACTION|>",
    );
    assert_eq!(p.thinking, "I will look it up.");
    assert_eq!(p.calls[0].name, "get_weather");
    assert_eq!(p.calls[0].id.as_deref(), Some("0"));
    let p = parse(d, "<|START_RESPONSE|>It is sunny.<|END_RESPONSE|>");
    assert_eq!(p.content, "It is sunny.");
    assert!(p.calls.is_empty());
}

#[test]
fn deepseek_r1_and_v31() {
    let d = dialect(ToolSyntax::DeepSeekR1, ThinkSyntax::Tags);
    let p = parse(
        d,
        "<think>\nNeed weather.\n</think>\n\n<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\", \"unit\": \"celsius\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
    );
    assert_eq!(p.thinking, "\nNeed weather.\n");
    assert_eq!(p.calls, [call("get_weather", weather())]);
    assert_eq!(p.content, "");
    let d = dialect(ToolSyntax::DeepSeekV31, ThinkSyntax::Tags);
    let p = parse(
        d,
        "Checking.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Paris\", \"unit\": \"celsius\"}<｜tool▁call▁end｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
    );
    assert_eq!(p.content, "Checking.");
    assert_eq!(
        p.calls,
        [call("get_weather", weather()), call("get_time", json!({}))]
    );
}

#[test]
fn thinking_opened_by_the_prompt() {
    // DeepSeek R1's generation prompt ends in `<think>\n`.
    let d = dialect(ToolSyntax::DeepSeekR1, ThinkSyntax::Tags);
    assert!(d.prompt_opens_thinking("<｜Assistant｜><think>\n"));
    assert!(!d.prompt_opens_thinking("<think>\n\n</think>\n\n"));
    let p = d.parse("Hmm, 2+2.\n</think>\n\nIt is 4.", false, true);
    assert_eq!(p.thinking, "Hmm, 2+2.\n");
    assert_eq!(p.content, "It is 4.");
    // Unclosed: all thinking.
    let p = d.parse("Still thinking", false, true);
    assert_eq!(
        (p.thinking.as_str(), p.content.as_str()),
        ("Still thinking", "")
    );
    // Without tools, tool markers are content.
    let d = dialect(ToolSyntax::Hermes, ThinkSyntax::Tags);
    let p = d.parse("<think>a</think>b<tool_call>{}", false, false);
    assert_eq!(
        (p.thinking.as_str(), p.content.as_str()),
        ("a", "b<tool_call>{}")
    );
    // A model that does not think keeps `<think>` as text.
    let d = dialect(ToolSyntax::Hermes, ThinkSyntax::None);
    assert_eq!(
        d.parse("<think>a</think>", false, false).content,
        "<think>a</think>"
    );
}

#[test]
fn gpt_oss_harmony() {
    let d = dialect(ToolSyntax::GptOss, ThinkSyntax::Harmony);
    let p = parse(
        d,
        "<|channel|>analysis<|message|>User asks weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\", \"unit\": \"celsius\"}",
    );
    assert_eq!(p.thinking, "User asks weather.");
    assert_eq!(p.calls, [call("get_weather", weather())]);
    assert_eq!(p.content, "");
    let p = parse(
        d,
        "<|channel|>analysis<|message|>Simple.<|end|><|start|>assistant<|channel|>final<|message|>Hello there.",
    );
    assert_eq!(
        (p.thinking.as_str(), p.content.as_str()),
        ("Simple.", "Hello there.")
    );
    // Not harmony at all: content.
    let p = parse(d, "plain words");
    assert_eq!(p.content, "plain words");
    // A call with broken arguments is content.
    let p = parse(
        d,
        "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{\"a\":",
    );
    assert!(p.calls.is_empty());
    assert_eq!(p.content, "{\"a\":");
}

#[test]
fn granite() {
    let d = dialect(ToolSyntax::Granite, ThinkSyntax::Tags);
    let p = parse(
        d,
        "<|tool_call|>[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}]",
    );
    assert_eq!(p.calls, [call("get_weather", weather())]);
    let p = parse(d, "<think>ok</think><response>Sunny.</response>");
    assert_eq!((p.thinking.as_str(), p.content.as_str()), ("ok", "Sunny."));
}

#[test]
fn functionary() {
    let d = dialect(ToolSyntax::FunctionaryV31, ThinkSyntax::None);
    let p = parse(
        d,
        "<function=get_weather>{\"city\": \"Paris\", \"unit\": \"celsius\"}</function><function=get_time>{}</function>",
    );
    assert_eq!(
        p.calls,
        [call("get_weather", weather()), call("get_time", json!({}))]
    );
    let p = parse(d, "<|python_tag|>print(1)");
    assert_eq!(p.calls, [call("python", json!({"code": "print(1)"}))]);
    // v3.2: the generation prompt ends in `>>>`.
    let d = dialect(ToolSyntax::FunctionaryV32, ThinkSyntax::None);
    let p = parse(
        d,
        "all\nLet me check.>>>get_weather\n{\"city\": \"Paris\", \"unit\": \"celsius\"}",
    );
    assert_eq!(p.content, "Let me check.");
    assert_eq!(p.calls, [call("get_weather", weather())]);
    let p = parse(
        d,
        "get_weather\n{\"city\": \"Paris\", \"unit\": \"celsius\"}>>>get_time\n{}",
    );
    assert_eq!(
        p.calls,
        [call("get_weather", weather()), call("get_time", json!({}))]
    );
    let p = parse(d, "all\nJust text.");
    assert_eq!(p.content, "Just text.");
}

#[test]
fn firefunction_v2() {
    let d = dialect(ToolSyntax::FireFunctionV2, ThinkSyntax::None);
    let p = parse(
        d,
        " functools[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}]",
    );
    assert_eq!(p.calls, [call("get_weather", weather())]);
    assert_eq!(p.content, "");
}

#[test]
fn generic_json() {
    let d = dialect(ToolSyntax::Generic, ThinkSyntax::None);
    let p = parse(
        d,
        "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}, \"id\": \"c1\"}]}",
    );
    assert_eq!(p.calls[0].id.as_deref(), Some("c1"));
    let p = parse(d, "{\"tool_call\": {\"name\": \"a\", \"arguments\": {}}}");
    assert_eq!(p.calls, [call("a", json!({}))]);
    let p = parse(d, "{\"response\": \"Hi.\"}");
    assert_eq!(p.content, "Hi.");
}

#[test]
fn content_streams_before_a_call_opens() {
    let d = dialect(ToolSyntax::Hermes, ThinkSyntax::None);
    let mut parser = OutputParser::new(d, true, false);
    assert_eq!(
        parser.push("Hello <tool"),
        [Piece::Content("Hello ".into())]
    );
    assert_eq!(parser.push("_ca"), []);
    assert_eq!(parser.push("t>"), [Piece::Content("<tool_cat>".into())]);
}

#[test]
fn grammars_name_each_function_and_schema() {
    let tools = [
        json!({"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}),
    ];
    let g = tool_call_grammar(
        ToolSyntax::Hermes,
        &tools,
        &ToolChoice::Required,
        false,
        &[],
    )
    .unwrap();
    assert_eq!(
        g.lark,
        "start: call\ncall: \"<tool_call>\\n\" %json{\"type\":\"object\",\"properties\":{\"name\":{\"const\":\"get_weather\"},\"arguments\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}},\"required\":[\"name\",\"arguments\"],\"additionalProperties\":false,\"x-guidance\":{\"whitespace_flexible\":false,\"item_separator\":\", \",\"key_separator\":\": \"}} \"\\n</tool_call>\"\n"
    );
    assert!(g.triggers.is_empty());
    let g = tool_call_grammar(ToolSyntax::Hermes, &tools, &ToolChoice::Auto, true, &[]).unwrap();
    assert_eq!(g.triggers, ["<tool_call>"]);
    assert!(g.lark.starts_with("start: call (\"\\n\" call)*\n"));
    // A named function that is not offered has no grammar.
    assert!(
        tool_call_grammar(
            ToolSyntax::Hermes,
            &tools,
            &ToolChoice::Function("x".into()),
            false,
            &[]
        )
        .is_none()
    );
    let g = tool_call_grammar(
        ToolSyntax::FunctionaryV31,
        &tools,
        &ToolChoice::Function("get_weather".into()),
        false,
        &[],
    )
    .unwrap();
    assert!(
        g.lark
            .contains("call_0: \"<function=get_weather>\" %json{\"type\":\"object\""),
        "{}",
        g.lark
    );
    for syntax in [
        ToolSyntax::Llama3,
        ToolSyntax::MistralNemo,
        ToolSyntax::CommandR7b,
        ToolSyntax::DeepSeekR1,
        ToolSyntax::DeepSeekV31,
        ToolSyntax::GptOss,
        ToolSyntax::Granite,
        ToolSyntax::FunctionaryV32,
        ToolSyntax::FireFunctionV2,
        ToolSyntax::Generic,
    ] {
        let g = tool_call_grammar(syntax, &tools, &ToolChoice::Required, false, &[]).unwrap();
        assert!(g.lark.starts_with("start:"), "{syntax:?}");
        assert!(g.lark.contains("get_weather"), "{syntax:?}");
        assert!(g.lark.contains("\"required\":[\"city\"]"), "{syntax:?}");
    }
}

#[test]
fn control_tokens_are_named_by_id_in_grammars() {
    let tools = [json!({"type": "function", "function": {"name": "f"}})];
    let specials = [("[TOOL_CALLS]".to_owned(), 5)];
    let g = tool_call_grammar(
        ToolSyntax::MistralNemo,
        &tools,
        &ToolChoice::Required,
        true,
        &specials,
    )
    .unwrap();
    assert!(g.lark.starts_with("start: <[5]> %json{"), "{}", g.lark);
    let specials = [
        ("<|channel|>".to_owned(), 1),
        ("<|constrain|>".to_owned(), 2),
        ("<|message|>".to_owned(), 3),
    ];
    let g = tool_call_grammar(
        ToolSyntax::GptOss,
        &tools,
        &ToolChoice::Required,
        false,
        &specials,
    )
    .unwrap();
    assert!(
        g.lark
            .contains("call_0: <[1]> \"commentary to=functions.f \" <[2]> \"json\" <[3]> %json{"),
        "{}",
        g.lark
    );
}
