//! Each family's tool-call syntax, parsed from the text where the first call
//! opened to the end of the answer. Whatever is not a well-formed call (text
//! between calls, a call whose JSON is broken) comes back as content.

use serde_json::{Map, Value};

use super::{ToolCall, ToolSyntax};

/// Parses `text` (which starts where the first call opened) into calls and
/// the content that is not part of one.
pub(super) fn parse_calls(syntax: ToolSyntax, text: &str) -> (Vec<ToolCall>, String) {
    let mut out = Calls::default();
    match syntax {
        ToolSyntax::Hermes => tagged(&mut out, text, "<tool_call>", "</tool_call>", hermes_body),
        ToolSyntax::FunctionaryV31 => functionary_v31(&mut out, text),
        ToolSyntax::FunctionaryV32 => functionary_v32(&mut out, text),
        ToolSyntax::Llama3 => llama3(&mut out, text),
        ToolSyntax::MistralNemo => mistral(&mut out, text),
        ToolSyntax::CommandR7b => tagged(
            &mut out,
            text,
            "<|START_ACTION|>",
            "<|END_ACTION|>",
            |c, body| json_list(c, body, &["tool_name"], &["parameters"], &["tool_call_id"]),
        ),
        ToolSyntax::DeepSeekR1 | ToolSyntax::DeepSeekV31 => deepseek(&mut out, text),
        ToolSyntax::Granite => after_marker(&mut out, text, "<|tool_call|>"),
        ToolSyntax::FireFunctionV2 => after_marker(&mut out, text, "functools"),
        ToolSyntax::Generic => generic(&mut out, text),
        // gpt-oss has its own parser (harmony.rs).
        ToolSyntax::GptOss => out.content.push_str(text),
    }
    (out.calls, out.content)
}

/// Calls found so far and the text that is not part of one.
#[derive(Debug, Default)]
struct Calls {
    calls: Vec<ToolCall>,
    content: String,
}

impl Calls {
    /// A JSON list of `{"name", "arguments", "id"}` calls, then content; all
    /// of it is content when the list is not such a list.
    fn list_or_content(&mut self, text: &str) {
        json_list(self, text, &["name"], &["arguments", "parameters"], &["id"]);
    }
}

/// Parses one JSON value at the start of `text` (after whitespace); returns
/// it and the rest.
pub(super) fn json_prefix(text: &str) -> Option<(Value, &str)> {
    let start = text.len() - text.trim_start().len();
    let mut values = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
    match values.next() {
        Some(Ok(v)) => {
            let end = start + values.byte_offset();
            Some((v, &text[end..]))
        }
        _ => None,
    }
}

/// Arguments as an object: an object, or a string holding one.
fn arguments(v: Option<&Value>) -> Option<Value> {
    match v {
        None | Some(Value::Null) => Some(Value::Object(Map::new())),
        Some(Value::Object(_)) => v.cloned(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Some(v),
            _ => None,
        },
        Some(_) => None,
    }
}

/// A call from an object with its name, arguments and id under any of the
/// given keys (`{"type": "function", "function": {…}}` wrappers unwrapped).
pub(super) fn call_from(
    v: &Value,
    names: &[&str],
    args: &[&str],
    ids: &[&str],
) -> Option<ToolCall> {
    let obj = v.as_object()?;
    if let Some(inner @ Value::Object(_)) = obj.get("function")
        && !names.iter().any(|k| obj.contains_key(*k))
    {
        return call_from(inner, names, args, ids);
    }
    let name = names.iter().find_map(|k| obj.get(*k)?.as_str())?;
    if name.is_empty() {
        return None;
    }
    let arguments = arguments(args.iter().find_map(|k| obj.get(*k)))?;
    let id = ids
        .iter()
        .find_map(|k| match obj.get(*k)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .filter(|s| !s.is_empty());
    Some(ToolCall {
        id,
        name: name.to_owned(),
        arguments,
    })
}

/// A JSON list of calls (or one call object) at the start of `text`, then
/// content. If it does not parse as calls, all of `text` is content.
fn json_list(out: &mut Calls, text: &str, names: &[&str], args: &[&str], ids: &[&str]) {
    let parsed = json_prefix(text).and_then(|(v, rest)| {
        let items = match v {
            Value::Array(items) => items,
            v @ Value::Object(_) => vec![v],
            _ => return None,
        };
        let calls: Option<Vec<ToolCall>> = items
            .iter()
            .map(|item| call_from(item, names, args, ids))
            .collect();
        calls.filter(|c| !c.is_empty()).map(|c| (c, rest))
    });
    match parsed {
        Some((calls, rest)) => {
            out.calls.extend(calls);
            out.content.push_str(rest.trim_start());
        }
        None => out.content.push_str(text),
    }
}

/// Blocks `open BODY close` (the last one may be unclosed); text around them
/// is content; a body `parse` refuses is content, tags and all.
fn tagged(out: &mut Calls, text: &str, open: &str, close: &str, parse: impl Fn(&mut Calls, &str)) {
    let mut rest = text;
    while let Some(i) = rest.find(open) {
        out.content.push_str(&rest[..i]);
        let after = &rest[i + open.len()..];
        let (body, next, closed) = match after.find(close) {
            Some(j) => (&after[..j], &after[j + close.len()..], true),
            None => (after, "", false),
        };
        let mut one = Calls::default();
        parse(&mut one, body);
        if one.calls.is_empty() || !one.content.trim().is_empty() {
            out.content.push_str(open);
            out.content.push_str(body);
            if closed {
                out.content.push_str(close);
            }
        } else {
            out.calls.extend(one.calls);
        }
        rest = next;
    }
    out.content.push_str(rest);
}

/// The text after `marker`, a JSON list of calls; text before it is content.
fn after_marker(out: &mut Calls, text: &str, marker: &str) {
    match text.find(marker) {
        Some(i) => {
            out.content.push_str(&text[..i]);
            let before = out.calls.len();
            let body = &text[i + marker.len()..];
            out.list_or_content(body);
            if out.calls.len() == before {
                // Not calls after all: the marker stays with its text.
                let n = out.content.len() - body.len();
                out.content.insert_str(n, marker);
            }
        }
        None => out.content.push_str(text),
    }
}

/// `<tool_call>` bodies: JSON `{"name", "arguments"}`, or Qwen3-Coder's
/// `<function=NAME><parameter=K>V</parameter></function>`.
fn hermes_body(out: &mut Calls, body: &str) {
    let body = body.trim();
    if body.starts_with("<function=") {
        xml_function(out, body);
        return;
    }
    match json_prefix(body).and_then(|(v, rest)| {
        Some((
            call_from(&v, &["name"], &["arguments", "parameters"], &["id"])?,
            rest,
        ))
    }) {
        Some((call, rest)) => {
            out.calls.push(call);
            out.content.push_str(rest);
        }
        None => out.content.push_str(body),
    }
}

/// Qwen3-Coder's XML call; a parameter's value is JSON when it parses as
/// JSON, else a string.
fn xml_function(out: &mut Calls, body: &str) {
    let parsed = (|| {
        let rest = body.strip_prefix("<function=")?;
        let (name, mut rest) = rest.split_once('>')?;
        let mut args = Map::new();
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix("</function>") {
                return after.trim().is_empty().then_some((name, args));
            }
            if rest.is_empty() {
                return Some((name, args));
            }
            let p = rest.strip_prefix("<parameter=")?;
            let (key, p) = p.split_once('>')?;
            let (value, p) = p.split_once("</parameter>")?;
            let value = value.strip_prefix('\n').unwrap_or(value);
            let value = value.strip_suffix('\n').unwrap_or(value);
            let v = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
            args.insert(key.trim().to_owned(), v);
            rest = p;
        }
    })();
    match parsed {
        Some((name, args)) if !name.trim().is_empty() => out.calls.push(ToolCall {
            id: None,
            name: name.trim().to_owned(),
            arguments: Value::Object(args),
        }),
        _ => out.content.push_str(body),
    }
}

/// `<function=NAME>{…}</function>` blocks, and `<|python_tag|>CODE` as a
/// call of `python` with `{"code": CODE}`.
fn functionary_v31(out: &mut Calls, text: &str) {
    let (text, code) = match text.split_once("<|python_tag|>") {
        Some((before, code)) => (before, Some(code)),
        None => (text, None),
    };
    let mut rest = text;
    while let Some(i) = rest.find("<function=") {
        out.content.push_str(&rest[..i]);
        let after = &rest[i + "<function=".len()..];
        let parsed = after.split_once('>').and_then(|(name, body)| {
            let (args, tail) = json_prefix(body)?;
            let arguments = arguments(Some(&args))?;
            let tail = tail.strip_prefix("</function>").unwrap_or(tail);
            (!name.is_empty()).then(|| {
                (
                    ToolCall {
                        id: None,
                        name: name.to_owned(),
                        arguments,
                    },
                    tail,
                )
            })
        });
        match parsed {
            Some((call, tail)) => {
                out.calls.push(call);
                rest = tail;
            }
            None => {
                out.content.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.content.push_str(rest);
    if let Some(code) = code {
        out.calls.push(python_call(code));
    }
}

fn python_call(code: &str) -> ToolCall {
    let mut args = Map::new();
    args.insert("code".into(), Value::String(code.to_owned()));
    ToolCall {
        id: None,
        name: "python".into(),
        arguments: Value::Object(args),
    }
}

/// `NAME\nBODY` sections separated by `>>>`: `all` is content, `python` may
/// be raw code, anything else a JSON object of arguments.
fn functionary_v32(out: &mut Calls, text: &str) {
    for (i, section) in text.split(">>>").enumerate() {
        if section.is_empty() {
            continue;
        }
        let Some((name, body)) = section.split_once('\n') else {
            if i > 0 {
                out.content.push_str(">>>");
            }
            out.content.push_str(section);
            continue;
        };
        let name = name.trim();
        if name == "all" {
            out.content.push_str(body);
            continue;
        }
        let call = match json_prefix(body) {
            Some((args, tail)) if tail.trim().is_empty() => {
                arguments(Some(&args)).map(|arguments| ToolCall {
                    id: None,
                    name: name.to_owned(),
                    arguments,
                })
            }
            _ if name == "python" => Some(python_call(body)),
            _ => None,
        };
        match call {
            Some(call) if !name.is_empty() => out.calls.push(call),
            _ => {
                if i > 0 {
                    out.content.push_str(">>>");
                }
                out.content.push_str(section);
            }
        }
    }
}

/// Llama 3.x: `<|python_tag|>` then JSON calls or `NAME.call(k=v, …)`, or
/// bare JSON `{"name", "parameters"}` objects separated by `;`.
fn llama3(out: &mut Calls, text: &str) {
    let (before, body) = match text.split_once("<|python_tag|>") {
        Some((before, body)) => (before, body),
        None => ("", text),
    };
    out.content.push_str(before);
    let mut rest = body;
    let mut calls = Vec::new();
    loop {
        let trimmed = rest.trim_start().trim_start_matches(';').trim_start();
        if trimmed.is_empty() {
            break;
        }
        let call = json_prefix(trimmed).and_then(|(v, tail)| {
            Some((
                call_from(&v, &["name"], &["parameters", "arguments"], &["id"])?,
                tail,
            ))
        });
        match call.or_else(|| builtin_call(trimmed)) {
            Some((call, tail)) => {
                calls.push(call);
                rest = tail;
            }
            None => break,
        }
    }
    if calls.is_empty() || !rest.trim().is_empty() {
        // Not (only) calls: the whole body is content, the tag with it.
        if text.contains("<|python_tag|>") {
            out.content.push_str("<|python_tag|>");
        }
        out.content.push_str(body);
    } else {
        out.calls.extend(calls);
    }
}

/// A built-in tool call, `name.call(key="value", n=1)`, and the rest.
fn builtin_call(text: &str) -> Option<(ToolCall, &str)> {
    let (name, rest) = text.split_once(".call(")?;
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let mut args = Map::new();
    let mut rest = rest.trim_start();
    loop {
        if let Some(tail) = rest.strip_prefix(')') {
            let call = ToolCall {
                id: None,
                name: name.to_owned(),
                arguments: Value::Object(args),
            };
            return Some((call, tail));
        }
        let (key, tail) = rest.split_once('=')?;
        let (value, tail) = json_prefix(tail)?;
        args.insert(key.trim().to_owned(), value);
        rest = tail.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
}

/// `[TOOL_CALLS][{…}]`, or newer Mistral's `[TOOL_CALLS]NAME[ARGS]{…}` (repeated).
fn mistral(out: &mut Calls, text: &str) {
    let Some(i) = text.find("[TOOL_CALLS]") else {
        out.content.push_str(text);
        return;
    };
    out.content.push_str(&text[..i]);
    let body = &text[i + "[TOOL_CALLS]".len()..];
    if body.trim_start().starts_with('[') || body.trim_start().starts_with('{') {
        let before = out.calls.len();
        out.list_or_content(body);
        if out.calls.len() == before {
            let n = out.content.len() - body.len();
            out.content.insert_str(n, "[TOOL_CALLS]");
        }
        return;
    }
    let mut calls = Vec::new();
    let mut rest = body;
    let ok = loop {
        let Some((name, after)) = rest.split_once("[ARGS]") else {
            break false;
        };
        let Some((args, tail)) = json_prefix(after) else {
            break false;
        };
        let Some(arguments) = arguments(Some(&args)) else {
            break false;
        };
        let name = name.trim();
        if name.is_empty() {
            break false;
        }
        calls.push(ToolCall {
            id: None,
            name: name.to_owned(),
            arguments,
        });
        rest = tail.trim_start();
        rest = rest.strip_prefix("[TOOL_CALLS]").unwrap_or(rest);
        if rest.trim().is_empty() {
            break true;
        }
    };
    if ok {
        out.calls.extend(calls);
    } else {
        out.content.push_str("[TOOL_CALLS]");
        out.content.push_str(body);
    }
}

/// DeepSeek's call tokens, R1's `function<｜tool▁sep｜>NAME\n```json\n{…}\n```` and
/// V3.1's `NAME<｜tool▁sep｜>{…}` alike.
fn deepseek(out: &mut Calls, text: &str) {
    const CALLS_BEGIN: &str = "<｜tool▁calls▁begin｜>";
    const CALLS_END: &str = "<｜tool▁calls▁end｜>";
    let (before, body) = match text.find(CALLS_BEGIN) {
        Some(i) => (&text[..i], &text[i + CALLS_BEGIN.len()..]),
        None => ("", text),
    };
    out.content.push_str(before);
    let (body, after) = match body.find(CALLS_END) {
        Some(i) => (&body[..i], &body[i + CALLS_END.len()..]),
        None => (body, ""),
    };
    let mut inner = Calls::default();
    tagged(
        &mut inner,
        body,
        "<｜tool▁call▁begin｜>",
        "<｜tool▁call▁end｜>",
        deepseek_call,
    );
    if inner.calls.is_empty() {
        out.content.push_str(&text[before.len()..]);
        return;
    }
    out.calls.extend(inner.calls);
    out.content.push_str(inner.content.trim());
    out.content.push_str(after);
}

fn deepseek_call(out: &mut Calls, body: &str) {
    let parsed = body.split_once("<｜tool▁sep｜>").and_then(|(kind, rest)| {
        let (name, args) = if kind.trim() == "function" {
            let (name, args) = rest.split_once('\n')?;
            let args = args.trim();
            let args = args.strip_prefix("```json").unwrap_or(args);
            let args = args.trim().strip_suffix("```").unwrap_or(args);
            (name, args)
        } else {
            (kind, rest)
        };
        let (v, tail) = json_prefix(args)?;
        let tail = tail.trim();
        if !(tail.is_empty() || tail == "```") || name.trim().is_empty() {
            return None;
        }
        Some(ToolCall {
            id: None,
            name: name.trim().to_owned(),
            arguments: arguments(Some(&v))?,
        })
    });
    match parsed {
        Some(call) => out.calls.push(call),
        None => out.content.push_str(body),
    }
}

/// The generic format: one JSON object with `tool_calls`, `tool_call` or
/// `response`.
fn generic(out: &mut Calls, text: &str) {
    let keys = (&["name"][..], &["arguments", "parameters"][..], &["id"][..]);
    let parsed = json_prefix(text).and_then(|(v, rest)| {
        if !rest.trim().is_empty() {
            return None;
        }
        if let Some(Value::Array(items)) = v.get("tool_calls") {
            let calls: Option<Vec<ToolCall>> = items
                .iter()
                .map(|c| call_from(c, keys.0, keys.1, keys.2))
                .collect();
            return calls.map(|c| (c, String::new()));
        }
        if let Some(call) = v.get("tool_call") {
            return call_from(call, keys.0, keys.1, keys.2).map(|c| (vec![c], String::new()));
        }
        match v.get("response") {
            Some(Value::String(s)) => Some((Vec::new(), s.clone())),
            Some(other) => Some((Vec::new(), other.to_string())),
            None => None,
        }
    });
    match parsed {
        Some((calls, content)) => {
            out.calls.extend(calls);
            out.content.push_str(&content);
        }
        None => out.content.push_str(text),
    }
}
