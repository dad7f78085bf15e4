//! Ollama's template data built from a [`ChatRequest`]: messages as
//! `api.Message` (role, content, thinking, tool calls, tool name), the
//! conversation collated as Ollama's `collate` does, tools as its
//! `templateTool` structs, and the thinking flags.
//!
//! Requests arrive OpenAI-shaped: content may be a list of parts, tool-call
//! arguments may be a JSON string, a tool result's name may be `name` or
//! `tool_name`, thinking may be `thinking` or `reasoning_content`.

use std::rc::Rc;

use serde_json::Value as Json;

use super::value::{Field, List, ListKind, Map, Struct, Value};

/// One message as Ollama's `api.Message` holds it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Message {
    /// `system`, `user`, `assistant` or `tool` (lower-cased).
    pub role: String,
    /// The text.
    pub content: String,
    /// The reasoning that preceded the content.
    pub thinking: String,
    /// Calls the assistant made.
    pub tool_calls: Vec<ToolCall>,
    /// The tool a `tool` message answers for.
    pub tool_name: String,
    /// The call a `tool` message answers.
    pub tool_call_id: String,
}

/// One tool call.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ToolCall {
    /// The call's id.
    pub id: String,
    /// Its position among the message's calls.
    pub index: i64,
    /// The function called.
    pub name: String,
    /// The arguments, in the order given.
    pub arguments: serde_json::Map<String, Json>,
}

fn text(v: Option<&Json>) -> String {
    match v {
        Some(Json::String(s)) => s.clone(),
        // OpenAI content parts: the text parts, joined.
        Some(Json::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Json::as_str))
            .collect(),
        _ => String::new(),
    }
}

fn first_text(m: &Json, keys: &[&str]) -> String {
    keys.iter()
        .map(|k| text(m.get(*k)))
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

/// Reads OpenAI- or Ollama-shaped messages.
pub(crate) fn messages(raw: &[Json]) -> Vec<Message> {
    raw.iter()
        .map(|m| Message {
            role: text(m.get("role")).to_lowercase(),
            content: text(m.get("content")),
            thinking: first_text(m, &["thinking", "reasoning_content", "reasoning"]),
            tool_calls: m
                .get("tool_calls")
                .and_then(Json::as_array)
                .map(|calls| {
                    calls
                        .iter()
                        .enumerate()
                        .map(|(i, c)| tool_call(i, c))
                        .collect()
                })
                .unwrap_or_default(),
            tool_name: first_text(m, &["tool_name", "name"]),
            tool_call_id: text(m.get("tool_call_id")),
        })
        .collect()
}

fn tool_call(position: usize, call: &Json) -> ToolCall {
    let function = call.get("function").unwrap_or(call);
    let arguments = match function.get("arguments") {
        Some(Json::Object(o)) => o.clone(),
        Some(Json::String(s)) => match serde_json::from_str::<Json>(s) {
            Ok(Json::Object(o)) => o,
            _ => serde_json::Map::new(),
        },
        _ => serde_json::Map::new(),
    };
    ToolCall {
        id: text(call.get("id")),
        index: function
            .get("index")
            .or_else(|| call.get("index"))
            .and_then(Json::as_i64)
            .unwrap_or(position as i64),
        name: text(function.get("name")),
        arguments,
    }
}

/// Ollama's `collate`: every system message's content joined by blank lines,
/// and the messages with consecutive ones of the same role (tool results
/// aside) merged by blank lines.
pub(crate) fn collate(messages: Vec<Message>) -> (String, Vec<Message>) {
    let mut system = Vec::new();
    let mut out: Vec<Message> = Vec::new();
    for m in messages {
        if m.role == "system" {
            system.push(m.content.clone());
        }
        match out.last_mut() {
            Some(last) if last.role == m.role && m.role != "tool" => {
                last.content.push_str("\n\n");
                last.content.push_str(&m.content);
            }
            _ => out.push(m),
        }
    }
    (system.join("\n\n"), out)
}

/// The thinking flags: `.Think`, `.ThinkLevel`, `.IsThinkSet`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Think {
    /// Whether to think.
    pub think: bool,
    /// `high` / `medium` / `low` when a level was given.
    pub level: String,
    /// Whether the request said either way.
    pub is_set: bool,
}

/// Reads `think` (a bool or a level), `enable_thinking` or
/// `reasoning_effort` from the request's extra variables.
pub(crate) fn think(extra: &serde_json::Map<String, Json>) -> Think {
    let value = ["think", "enable_thinking", "reasoning_effort"]
        .iter()
        .find_map(|k| extra.get(*k).filter(|v| !v.is_null()));
    match value {
        Some(Json::Bool(b)) => Think {
            think: *b,
            level: String::new(),
            is_set: true,
        },
        Some(Json::String(level)) => Think {
            think: true,
            level: level.clone(),
            is_set: true,
        },
        _ => Think::default(),
    }
}

fn field(name: &'static str, json: Option<&'static str>, omit_empty: bool, value: Value) -> Field {
    Field {
        name,
        json,
        omit_empty,
        value,
    }
}

fn structure(type_name: &'static str, json_string: bool, fields: Vec<Field>) -> Value {
    Value::Struct(Rc::new(Struct {
        type_name,
        fields,
        json_string,
    }))
}

fn strings(v: Option<&Json>) -> Value {
    let items = match v {
        Some(Json::Array(a)) => a.iter().filter_map(Json::as_str).map(Value::str).collect(),
        Some(Json::String(s)) => vec![Value::str(s)],
        _ => Vec::new(),
    };
    Value::list_or_nil(items, ListKind::Plain)
}

fn any(v: Option<&Json>) -> Value {
    v.map_or(Value::Nil, Value::from_json)
}

/// A message as Ollama's `templateMessage` (untagged, so JSON keys are the
/// Go names).
pub(crate) fn message_value(m: &Message) -> Value {
    let calls = m
        .tool_calls
        .iter()
        .map(|c| {
            let arguments = Value::Map(Rc::new(Map {
                entries: {
                    let mut e: Vec<(String, Value)> = c
                        .arguments
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::from_json(v)))
                        .collect();
                    e.sort_by(|a, b| a.0.cmp(&b.0));
                    e
                },
                json_string: true,
            }));
            let function = structure(
                "templateToolCallFunction",
                false,
                vec![
                    field("Index", None, false, Value::Int(c.index)),
                    field("Name", None, false, Value::str(&c.name)),
                    field("Arguments", None, false, arguments),
                ],
            );
            structure(
                "templateToolCall",
                false,
                vec![
                    field("ID", None, false, Value::str(&c.id)),
                    field("Function", None, false, function),
                ],
            )
        })
        .collect();
    structure(
        "templateMessage",
        false,
        vec![
            field("Role", None, false, Value::str(&m.role)),
            field("Content", None, false, Value::str(&m.content)),
            field("Thinking", None, false, Value::str(&m.thinking)),
            field(
                "Images",
                None,
                false,
                Value::list_or_nil(Vec::new(), ListKind::Plain),
            ),
            field(
                "ToolCalls",
                None,
                false,
                Value::list_or_nil(calls, ListKind::Plain),
            ),
            field("ToolName", None, false, Value::str(&m.tool_name)),
            field("ToolCallID", None, false, Value::str(&m.tool_call_id)),
        ],
    )
}

/// A JSON-schema property as Ollama's `api.ToolProperty` (keys it does not
/// know are dropped, as its decoder drops them).
fn property(p: &Json) -> Value {
    let any_of = match p.get("anyOf") {
        Some(Json::Array(a)) => a.iter().map(property).collect(),
        _ => Vec::new(),
    };
    let kind = match strings(p.get("type")) {
        Value::List(l) => Value::list_or_nil(l.items.clone(), ListKind::PropertyType),
        other => other,
    };
    let enum_values = match p.get("enum") {
        Some(Json::Array(a)) => Value::list(a.iter().map(Value::from_json).collect()),
        _ => Value::list_or_nil(Vec::new(), ListKind::Plain),
    };
    let nested = match p.get("properties") {
        Some(Json::Object(o)) => Value::Map(Rc::new(Map {
            entries: o.iter().map(|(k, v)| (k.clone(), property(v))).collect(),
            json_string: false,
        })),
        _ => Value::Nil,
    };
    structure(
        "ToolProperty",
        false,
        vec![
            field(
                "AnyOf",
                Some("anyOf"),
                true,
                Value::list_or_nil(any_of, ListKind::Plain),
            ),
            field("Type", Some("type"), true, kind),
            field("Items", Some("items"), true, any(p.get("items"))),
            field(
                "Description",
                Some("description"),
                true,
                Value::str(&text(p.get("description"))),
            ),
            field("Enum", Some("enum"), true, enum_values),
            field("Properties", Some("properties"), true, nested),
            field(
                "Required",
                Some("required"),
                true,
                strings(p.get("required")),
            ),
        ],
    )
}

/// Tools as Ollama's `templateTools`: each prints as its JSON, and so do a
/// tool's `.Function` and `.Function.Parameters` (whose `String` methods
/// Ollama's `api` types have) and `.Function.Parameters.Properties`.
pub(crate) fn tools_value(tools: &[Json]) -> Value {
    let items = tools
        .iter()
        .map(|t| {
            let f = t.get("function").unwrap_or(&Json::Null);
            let params = f.get("parameters").unwrap_or(&Json::Null);
            let mut props: Vec<(String, Value)> = match params.get("properties") {
                Some(Json::Object(o)) => o.iter().map(|(k, v)| (k.clone(), property(v))).collect(),
                _ => Vec::new(),
            };
            props.sort_by(|a, b| a.0.cmp(&b.0));
            let parameters = structure(
                "templateToolFunctionParameters",
                true,
                vec![
                    field(
                        "Type",
                        Some("type"),
                        false,
                        Value::str(&text(params.get("type"))),
                    ),
                    field("Defs", Some("$defs"), true, any(params.get("$defs"))),
                    field("Items", Some("items"), true, any(params.get("items"))),
                    field(
                        "Required",
                        Some("required"),
                        true,
                        strings(params.get("required")),
                    ),
                    field(
                        "Properties",
                        Some("properties"),
                        false,
                        Value::Map(Rc::new(Map {
                            entries: props,
                            json_string: true,
                        })),
                    ),
                ],
            );
            let function = structure(
                "templateToolFunction",
                true,
                vec![
                    field(
                        "Name",
                        Some("name"),
                        false,
                        Value::str(&text(f.get("name"))),
                    ),
                    field(
                        "Description",
                        Some("description"),
                        false,
                        Value::str(&text(f.get("description"))),
                    ),
                    field("Parameters", Some("parameters"), false, parameters),
                ],
            );
            structure(
                "templateTool",
                true,
                vec![
                    field(
                        "Type",
                        Some("type"),
                        false,
                        Value::str(&text(t.get("type"))),
                    ),
                    field("Items", Some("items"), true, any(t.get("items"))),
                    field("Function", Some("function"), false, function),
                ],
            )
        })
        .collect();
    Value::List(Rc::new(List {
        items,
        kind: ListKind::Json,
        nil: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_shapes_are_read() {
        let m = messages(&[
            json!({"role": "User", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
            json!({"role": "assistant", "content": null, "reasoning_content": "hm",
                   "tool_calls": [{"id": "c1", "type": "function",
                                   "function": {"name": "f", "arguments": "{\"y\": 1, \"x\": \"s\"}"}}]}),
            json!({"role": "tool", "content": "ok", "name": "f", "tool_call_id": "c1"}),
        ]);
        assert_eq!(m[0].role, "user");
        assert_eq!(m[0].content, "ab");
        assert_eq!(m[1].thinking, "hm");
        assert_eq!(m[1].tool_calls[0].name, "f");
        assert_eq!(m[1].tool_calls[0].arguments.len(), 2);
        assert_eq!(m[2].tool_name, "f");
        let v = message_value(&m[1]);
        let Value::Struct(s) = &v else { panic!() };
        let calls = &s.fields[4].value;
        assert_eq!(calls.to_v(), r#"[{c1 {0 f {"x":"s","y":1}}}]"#);
    }

    #[test]
    fn collate_merges_runs_and_gathers_system() {
        let m = |role: &str, content: &str| Message {
            role: role.into(),
            content: content.into(),
            ..Message::default()
        };
        let (system, out) = collate(vec![
            m("system", "s1"),
            m("system", "s2"),
            m("user", "a"),
            m("user", "b"),
            m("tool", "t1"),
            m("tool", "t2"),
        ]);
        assert_eq!(system, "s1\n\ns2");
        let contents: Vec<&str> = out.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(contents, ["s1\n\ns2", "a\n\nb", "t1", "t2"]);
    }

    #[test]
    fn tools_marshal_as_ollama() {
        let tools = tools_value(&[json!({
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather <now>",
                "parameters": {
                    "type": "object",
                    "required": ["city"],
                    "properties": {
                        "unit": {"type": "string", "enum": ["c", "f"], "default": "c"},
                        "city": {"type": ["string", "null"], "description": "City"}
                    }
                }
            }
        })]);
        assert_eq!(
            tools.to_v(),
            r#"[{"type":"function","function":{"name":"get_weather","description":"Weather \u003cnow\u003e","parameters":{"type":"object","required":["city"],"properties":{"city":{"type":["string","null"],"description":"City"},"unit":{"type":"string","enum":["c","f"]}}}}}]"#
        );
    }

    #[test]
    fn think_flags() {
        let mut extra = serde_json::Map::new();
        assert_eq!(think(&extra), Think::default());
        extra.insert("enable_thinking".into(), json!(false));
        assert_eq!(
            think(&extra),
            Think {
                think: false,
                level: String::new(),
                is_set: true
            }
        );
        extra.insert("think".into(), json!("high"));
        assert_eq!(
            think(&extra),
            Think {
                think: true,
                level: "high".into(),
                is_set: true
            }
        );
    }
}
