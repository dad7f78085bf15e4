//! The functions a Go template may call: `text/template`'s builtins and the
//! ones Ollama's template package adds (`json`, `currentDate`,
//! `yesterdayDate`, `toTypeScriptType`). `and` / `or` are evaluated lazily by
//! the executor; the rest receive their evaluated arguments here.

use std::cmp::Ordering;

use super::printf::{sprint, sprintf, sprintln};
use super::value::{ListKind, Value};
use crate::chat::Clock;

/// What functions may read besides their arguments.
pub(crate) struct Env {
    /// The clock behind `currentDate` / `yesterdayDate`.
    pub clock: Clock,
}

/// Every function name a template may use.
pub(crate) const NAMES: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "slice",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "print",
    "printf",
    "println",
    "html",
    "js",
    "urlquery",
    "call",
    "json",
    "currentDate",
    "yesterdayDate",
    "toTypeScriptType",
];

/// Whether `name` is a function.
pub(crate) fn is_func(name: &str) -> bool {
    NAMES.contains(&name)
}

fn want(args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!("wrong number of args: want {n} got {}", args.len()));
    }
    Ok(())
}

/// Calls `name` (not `and` / `or`).
pub(crate) fn call(name: &str, args: Vec<Value>, env: &Env) -> Result<Value, String> {
    match name {
        "not" => {
            want(&args, 1)?;
            Ok(Value::Bool(!args[0].truth()))
        }
        "len" => {
            want(&args, 1)?;
            len(&args[0]).map(|n| Value::Int(n as i64))
        }
        "index" => {
            let (item, keys) = args
                .split_first()
                .ok_or("wrong number of args: want at least 1 got 0")?;
            keys.iter().try_fold(item.clone(), |v, k| index(&v, k))
        }
        "slice" => slice(&args),
        "eq" => {
            let (first, rest) = args
                .split_first()
                .ok_or("missing argument for comparison")?;
            if rest.is_empty() {
                return Err("missing argument for comparison".into());
            }
            for other in rest {
                if equal(first, other)? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" => {
            want(&args, 2)?;
            Ok(Value::Bool(!equal(&args[0], &args[1])?))
        }
        "lt" | "le" | "gt" | "ge" => {
            want(&args, 2)?;
            let ord = order(&args[0], &args[1])?;
            Ok(Value::Bool(match name {
                "lt" => ord == Ordering::Less,
                "le" => ord != Ordering::Greater,
                "gt" => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            }))
        }
        "print" => Ok(Value::str(&sprint(&args))),
        "println" => Ok(Value::str(&sprintln(&args))),
        "printf" => {
            let (format, rest) = args
                .split_first()
                .ok_or("wrong number of args: want at least 1 got 0")?;
            let Value::Str(format) = format else {
                return Err(format!(
                    "wrong type for value; expected string; got {}",
                    format.type_name()
                ));
            };
            Ok(Value::str(&sprintf(format, rest)))
        }
        "html" => Ok(Value::str(&html_escape(&escaper_text(&args)))),
        "js" => Ok(Value::str(&js_escape(&escaper_text(&args)))),
        "urlquery" => Ok(Value::str(&query_escape(&escaper_text(&args)))),
        "call" => match args.first() {
            None => Err("wrong number of args: want at least 1 got 0".into()),
            Some(v) => Err(format!("non-function of type {}", v.type_name())),
        },
        "json" => {
            want(&args, 1)?;
            Ok(Value::str(&args[0].to_json()))
        }
        "currentDate" => Ok(Value::str(&(env.clock)().date().to_string())),
        "yesterdayDate" => {
            let today = (env.clock)().date();
            let yesterday = today.yesterday().map_err(|e| e.to_string())?;
            Ok(Value::str(&yesterday.to_string()))
        }
        "toTypeScriptType" => {
            want(&args, 1)?;
            Ok(Value::str(&typescript_type(&args[0])))
        }
        other => Err(format!("function {other:?} not defined")),
    }
}

fn len(v: &Value) -> Result<usize, String> {
    match v {
        Value::Str(s) => Ok(s.len()),
        Value::List(l) => Ok(l.items.len()),
        Value::Map(m) => Ok(m.entries.len()),
        Value::Nil => Err("len of nil pointer".into()),
        other => Err(format!("len of type {}", other.type_name())),
    }
}

fn int_arg(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(format!(
            "cannot index slice/array with type {}",
            other.type_name()
        )),
    }
}

fn index(item: &Value, key: &Value) -> Result<Value, String> {
    match item {
        Value::List(l) => {
            let i = int_arg(key)?;
            usize::try_from(i)
                .ok()
                .and_then(|i| l.items.get(i))
                .cloned()
                .ok_or_else(|| format!("error calling index: index out of range: {i}"))
        }
        Value::Str(s) => {
            let i = int_arg(key)?;
            usize::try_from(i)
                .ok()
                .and_then(|i| s.as_bytes().get(i))
                .map(|b| Value::Int(i64::from(*b)))
                .ok_or_else(|| format!("error calling index: index out of range: {i}"))
        }
        Value::Map(m) => match key {
            Value::Str(k) => Ok(m
                .entries
                .iter()
                .find(|(name, _)| name.as_str() == &**k)
                .map_or(Value::Nil, |(_, v)| v.clone())),
            other => Err(format!(
                "value has type {}; should be string",
                other.type_name()
            )),
        },
        Value::Nil => Err("index of untyped nil".into()),
        other => Err(format!("can't index item of type {}", other.type_name())),
    }
}

fn slice(args: &[Value]) -> Result<Value, String> {
    let (item, bounds) = args
        .split_first()
        .ok_or("wrong number of args: want at least 1 got 0")?;
    if bounds.len() > 3 {
        return Err(format!("too many slice indexes: {}", bounds.len()));
    }
    let len = match item {
        Value::Str(s) => s.len(),
        Value::List(l) => l.items.len(),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut idx = Vec::new();
    for b in bounds {
        let i = int_arg(b)?;
        let i = usize::try_from(i).map_err(|_| format!("index out of range: {i}"))?;
        if i > len {
            return Err(format!("index out of range: {i}"));
        }
        idx.push(i);
    }
    let start = idx.first().copied().unwrap_or(0);
    let end = idx.get(1).copied().unwrap_or(len);
    if start > end {
        return Err(format!("invalid slice index: {start} > {end}"));
    }
    Ok(match item {
        Value::Str(s) => {
            if bounds.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            Value::str(&String::from_utf8_lossy(&s.as_bytes()[start..end]))
        }
        Value::List(l) => Value::List(std::rc::Rc::new(super::value::List {
            items: l.items[start..end].to_vec(),
            kind: l.kind,
            nil: l.nil,
        })),
        _ => Value::Nil,
    })
}

/// Go's `eq` on basic values; integers and floats compare by value.
fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    Ok(match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Nil, _) | (_, Value::Nil) => false,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            order(a, b)? == Ordering::Equal
        }
        (Value::List(_) | Value::Map(_) | Value::Struct(_), _)
        | (_, Value::List(_) | Value::Map(_) | Value::Struct(_)) => {
            return Err("non-comparable type".into());
        }
        _ => return Err("incompatible types for comparison".into()),
    })
}

fn order(a: &Value, b: &Value) -> Result<Ordering, String> {
    let num = |v: &Value| match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    };
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y).ok_or_else(|| "NaN in comparison".into()),
            _ if std::mem::discriminant(a) == std::mem::discriminant(b) => {
                Err(format!("invalid type for comparison: {}", a.type_name()))
            }
            _ => Err("incompatible types for comparison".into()),
        },
    }
}

/// The text `html`, `js` and `urlquery` escape: a lone string as is, else
/// the arguments as `print` joins them.
fn escaper_text(args: &[Value]) -> String {
    match args {
        [Value::Str(s)] => s.to_string(),
        _ => sprint(args),
    }
}

/// Go's `template.HTMLEscapeString`.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' | '>' | '&' | '=' => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if (c as u32) < 0x20 || c.is_control() => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Ollama's `api.ToolProperty.ToTypeScriptType`; `any` for other values.
fn typescript_type(v: &Value) -> String {
    let Value::Struct(s) = v else {
        return "any".into();
    };
    if s.type_name != "ToolProperty" {
        return "any".into();
    }
    let field = |name: &str| s.fields.iter().find(|f| f.name == name).map(|f| &f.value);
    if let Some(Value::List(any_of)) = field("AnyOf")
        && !any_of.items.is_empty()
    {
        let parts: Vec<String> = any_of.items.iter().map(typescript_type).collect();
        return parts.join(" | ");
    }
    let types: Vec<&str> = match field("Type") {
        Some(Value::List(l)) if l.kind == ListKind::PropertyType => l
            .items
            .iter()
            .filter_map(|t| match t {
                Value::Str(s) => Some(&**s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if types.is_empty() {
        return "any".into();
    }
    let parts: Vec<&str> = types
        .iter()
        .map(|t| match *t {
            "string" => "string",
            "number" | "integer" => "number",
            "boolean" => "boolean",
            "array" => "any[]",
            "object" => "Record<string, any>",
            "null" => "null",
            _ => "any",
        })
        .collect();
    parts.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn env() -> Env {
        Env {
            clock: Arc::new(|| jiff::civil::DateTime::constant(2024, 3, 1, 9, 0, 0, 0)),
        }
    }

    fn call_ok(name: &str, args: Vec<Value>) -> Value {
        call(name, args, &env()).unwrap()
    }

    #[test]
    fn comparisons() {
        assert!(
            call_ok(
                "eq",
                vec![Value::str("a"), Value::str("b"), Value::str("a")]
            )
            .truth()
        );
        assert!(call_ok("eq", vec![Value::Int(1), Value::Float(1.0)]).truth());
        assert!(call_ok("lt", vec![Value::str("a"), Value::str("b")]).truth());
        assert!(!call_ok("ge", vec![Value::Int(1), Value::Int(2)]).truth());
        assert!(call("eq", vec![Value::str("1"), Value::Int(1)], &env()).is_err());
        assert!(call("eq", vec![Value::list(vec![]), Value::Int(1)], &env()).is_err());
    }

    #[test]
    fn index_slice_len() {
        let list = Value::list(vec![Value::Int(1), Value::Int(2), Value::Int(3)]);
        assert_eq!(
            call_ok("index", vec![list.clone(), Value::Int(2)]).to_v(),
            "3"
        );
        assert!(call("index", vec![list.clone(), Value::Int(3)], &env()).is_err());
        assert_eq!(
            call_ok("slice", vec![list.clone(), Value::Int(1)]).to_v(),
            "[2 3]"
        );
        assert_eq!(call_ok("len", vec![list]).to_v(), "3");
        assert_eq!(
            call_ok("slice", vec![Value::str("héllo"), Value::Int(3)]).to_v(),
            "llo"
        );
        assert_eq!(
            call_ok("slice", vec![Value::str("é"), Value::Int(1)]).to_v(),
            "\u{FFFD}"
        );
        let map = Value::from_json(&serde_json::json!({"a": 1}));
        assert_eq!(
            call_ok("index", vec![map.clone(), Value::str("a")]).to_v(),
            "1"
        );
        assert!(matches!(
            call_ok("index", vec![map, Value::str("b")]),
            Value::Nil
        ));
    }

    #[test]
    fn escapers_and_dates() {
        assert_eq!(
            call_ok("html", vec![Value::str("<a href='x'>&")]).to_v(),
            "&lt;a href=&#39;x&#39;&gt;&amp;"
        );
        assert_eq!(
            call_ok("js", vec![Value::str("a'b<\n")]).to_v(),
            "a\\'b\\u003C\\u000A"
        );
        assert_eq!(
            call_ok("urlquery", vec![Value::str("a b&c/é")]).to_v(),
            "a+b%26c%2F%C3%A9"
        );
        assert_eq!(call_ok("currentDate", vec![]).to_v(), "2024-03-01");
        assert_eq!(call_ok("yesterdayDate", vec![]).to_v(), "2024-02-29");
        assert_eq!(
            call_ok("json", vec![Value::str("<x>")]).to_v(),
            r#""\u003cx\u003e""#
        );
        assert_eq!(
            call_ok("toTypeScriptType", vec![Value::Int(1)]).to_v(),
            "any"
        );
    }
}
