//! The grammar of a family's tool calls, for constrained decoding: Lark text
//! as llguidance reads it (`%json{…}` embeds a JSON schema), whose start rule
//! matches one call (or several, when parallel calls are allowed) with
//! arguments valid under each function's `parameters` schema.
//!
//! With `tool_choice: auto` the grammar is lazy: the answer is free until
//! it produces one of the triggers (the family's call openers), and the
//! grammar applies from the trigger on (the trigger is the grammar's start).
//! A family whose calls have no opener (generic JSON, Functionary v3.2) has
//! no lazy grammar.

use serde_json::{Value, json};

use super::ToolSyntax;

/// What `tool_choice` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model may answer or call (the grammar applies once a call opens).
    Auto,
    /// The model must call one of the tools.
    Required,
    /// The model must call this function.
    Function(String),
}

/// A tool-call grammar.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolGrammar {
    /// Lark source; its `start` rule matches the calls.
    pub lark: String,
    /// For a lazy grammar: texts that switch it on (empty: on from the first token).
    pub triggers: Vec<String>,
}

/// A function's name and parameters schema, from an OpenAI-shaped tool
/// (`{"type": "function", "function": {"name", "parameters"}}`).
fn function(tool: &Value) -> Option<(&str, Value)> {
    let f = tool.get("function").unwrap_or(tool);
    let name = f.get("name")?.as_str()?;
    let params = match f.get("parameters") {
        Some(p @ Value::Object(_)) => p.clone(),
        _ => json!({"type": "object"}),
    };
    Some((name, params))
}

/// A schema compiled as the templates print JSON (Python's `json.dumps`:
/// `", "` and `": "`, no other whitespace), so that a call reads as the
/// model was trained on and no call runs on in whitespace.
fn compact(mut schema: Value) -> Value {
    if let Some(map) = schema.as_object_mut() {
        map.insert(
            "x-guidance".into(),
            json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
        );
    }
    schema
}

/// The format tokens the grammars write: where one is a control token of
/// the model's vocabulary (one that renders as nothing unless special tokens
/// are shown), the grammar must name it as a token (`<[id]>`), since no text
/// produces it.
pub const GRAMMAR_MARKERS: &[&str] = &[
    "<tool_call>",
    "</tool_call>",
    "<|python_tag|>",
    "[TOOL_CALLS]",
    "<|START_ACTION|>",
    "<|END_ACTION|>",
    "<｜tool▁calls▁begin｜>",
    "<｜tool▁calls▁end｜>",
    "<｜tool▁call▁begin｜>",
    "<｜tool▁call▁end｜>",
    "<｜tool▁sep｜>",
    "<|channel|>",
    "<|constrain|>",
    "<|message|>",
    "<|end|>",
    "<|start|>",
    "<|tool_call|>",
    "</think>",
];

/// `text` as a Lark expression: quoted strings, with the control tokens in
/// `specials` (text and id) as token references.
pub fn lit_with(text: &str, specials: &[(String, u32)]) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let next = specials
            .iter()
            .filter(|(t, _)| !t.is_empty())
            .filter_map(|(t, id)| rest.find(t.as_str()).map(|i| (i, t.len(), *id)))
            .min_by_key(|&(i, len, _)| (i, usize::MAX - len));
        match next {
            Some((i, len, id)) => {
                if i > 0 {
                    parts.push(quote(&rest[..i]));
                }
                parts.push(format!("<[{id}]>"));
                rest = &rest[i + len..];
            }
            None => {
                parts.push(quote(rest));
                rest = "";
            }
        }
    }
    if parts.is_empty() {
        "\"\"".to_owned()
    } else {
        parts.join(" ")
    }
}

/// The grammar for calls of `tools` in `syntax`, or `None` when no function
/// can be called (no tools, or a named function that is not among them).
/// `specials`: the [`GRAMMAR_MARKERS`] that are control tokens of the
/// model's vocabulary, with their ids.
pub fn tool_call_grammar(
    syntax: ToolSyntax,
    tools: &[Value],
    choice: &ToolChoice,
    parallel: bool,
    specials: &[(String, u32)],
) -> Option<ToolGrammar> {
    let lit = |s: &str| lit_with(s, specials);
    let functions: Vec<(&str, Value)> = tools
        .iter()
        .filter_map(function)
        .filter(|(name, _)| match choice {
            ToolChoice::Function(n) => name == n,
            _ => true,
        })
        .collect();
    if functions.is_empty() {
        return None;
    }
    // One object per call, `{NAME_KEY: name, ARGS_KEY: args}`.
    let object = |name_key: &str, args_key: &str, extra: Option<(&str, Value)>| -> Value {
        let options: Vec<Value> = functions
            .iter()
            .map(|(name, params)| {
                let mut props = serde_json::Map::new();
                props.insert(name_key.into(), json!({"const": name}));
                props.insert(args_key.into(), params.clone());
                let mut required = vec![json!(name_key), json!(args_key)];
                if let Some((id, schema)) = &extra {
                    props.insert((*id).into(), schema.clone());
                    required.push(json!(id));
                }
                json!({"type": "object", "properties": props, "required": required,
                       "additionalProperties": false})
            })
            .collect();
        if options.len() == 1 {
            options.into_iter().next().unwrap_or_default()
        } else {
            json!({"anyOf": options})
        }
    };
    let list_raw = |item: Value| -> Value {
        let mut v = json!({"type": "array", "items": item, "minItems": 1});
        if !parallel {
            v["maxItems"] = json!(1);
        }
        v
    };
    let list = |item: Value| compact(list_raw(item));
    // A call per function, NAME outside the JSON: `prefix(name) ARGS suffix`.
    let per_function = |prefix: &dyn Fn(&str) -> String, suffix: &str, sep: &str| -> String {
        let mut rules = String::new();
        let mut names = Vec::new();
        for (i, (name, params)) in functions.iter().enumerate() {
            names.push(format!("call_{i}"));
            rules.push_str(&format!(
                "call_{i}: {} %json{} {}\n",
                lit(&prefix(name)),
                compact(params.clone()),
                lit(suffix)
            ));
        }
        let start = if parallel {
            format!("start: call ({} call)*\n", lit(sep))
        } else {
            "start: call\n".to_owned()
        };
        format!("{start}call: {}\n{rules}", names.join(" | "))
    };
    let json_calls = |open: &str, close: &str, sep: &str, obj: Value| -> String {
        let start = if parallel {
            format!("start: call ({} call)*\n", lit(sep))
        } else {
            "start: call\n".to_owned()
        };
        format!(
            "{start}call: {} %json{} {}\n",
            lit(open),
            compact(obj),
            lit(close)
        )
    };
    let (lark, triggers): (String, &[&str]) = match syntax {
        ToolSyntax::Hermes => (
            json_calls(
                "<tool_call>\n",
                "\n</tool_call>",
                "\n",
                object("name", "arguments", None),
            ),
            &["<tool_call>"],
        ),
        ToolSyntax::Llama3 => (
            json_calls("", "", "; ", object("name", "parameters", None)),
            &["{\"name\""],
        ),
        ToolSyntax::MistralNemo => (
            format!(
                "start: {} %json{}\n",
                lit("[TOOL_CALLS]"),
                list(object(
                    "name",
                    "arguments",
                    // Mistral's ids: nine letters and digits.
                    Some((
                        "id",
                        json!({"type": "string", "pattern": "^[a-zA-Z0-9]{9}$"})
                    )),
                ))
            ),
            &["[TOOL_CALLS]"],
        ),
        ToolSyntax::CommandR7b => (
            format!(
                "start: {} %json{} {}\n",
                lit("<|START_ACTION|>"),
                list(object(
                    "tool_name",
                    "parameters",
                    Some((
                        "tool_call_id",
                        json!({"type": "string", "pattern": "^[0-9]{1,3}$"})
                    )),
                )),
                lit("<|END_ACTION|>")
            ),
            &["<|START_ACTION|>"],
        ),
        ToolSyntax::Granite => (
            format!(
                "start: {} %json{}\n",
                lit("<|tool_call|>"),
                list(object("name", "arguments", None))
            ),
            &["<|tool_call|>"],
        ),
        ToolSyntax::FireFunctionV2 => (
            format!(
                "start: \" functools\" %json{}\n",
                list(object("name", "arguments", None))
            ),
            &[" functools["],
        ),
        ToolSyntax::Generic => {
            let calls = list_raw(object("name", "arguments", None));
            (
                format!(
                    "start: %json{}\n",
                    compact(
                        json!({"type": "object", "properties": {"tool_calls": calls},
                           "required": ["tool_calls"], "additionalProperties": false})
                    )
                ),
                &[],
            )
        }
        ToolSyntax::DeepSeekR1 => {
            let body = per_function(
                &|n| format!("<｜tool▁call▁begin｜>function<｜tool▁sep｜>{n}\n```json\n"),
                "\n```<｜tool▁call▁end｜>",
                "\n",
            );
            (
                format!(
                    "start: {} calls {}\n{}",
                    lit("<｜tool▁calls▁begin｜>"),
                    lit("<｜tool▁calls▁end｜>"),
                    body.replacen("start:", "calls:", 1)
                ),
                &["<｜tool▁calls▁begin｜>"],
            )
        }
        ToolSyntax::DeepSeekV31 => {
            let body = per_function(
                &|n| format!("<｜tool▁call▁begin｜>{n}<｜tool▁sep｜>"),
                "<｜tool▁call▁end｜>",
                "",
            );
            (
                format!(
                    "start: {} calls {}\n{}",
                    lit("<｜tool▁calls▁begin｜>"),
                    lit("<｜tool▁calls▁end｜>"),
                    body.replacen("start:", "calls:", 1)
                ),
                &["<｜tool▁calls▁begin｜>"],
            )
        }
        ToolSyntax::FunctionaryV31 => (
            per_function(&|n| format!("<function={n}>"), "</function>", ""),
            &["<function="],
        ),
        ToolSyntax::FunctionaryV32 => (per_function(&|n| format!("{n}\n"), "", ">>>"), &[]),
        ToolSyntax::GptOss => (
            per_function(
                &|n| format!("<|channel|>commentary to=functions.{n} <|constrain|>json<|message|>"),
                "",
                "<|end|><|start|>assistant",
            ),
            &["<|channel|>commentary to="],
        ),
    };
    let triggers = match choice {
        // A family whose calls have no opener cannot be constrained lazily:
        // under `auto` its answer stays free.
        ToolChoice::Auto if triggers.is_empty() => return None,
        ToolChoice::Auto => triggers.iter().map(|t| (*t).to_owned()).collect(),
        ToolChoice::Required | ToolChoice::Function(_) => Vec::new(),
    };
    Some(ToolGrammar { lark, triggers })
}
