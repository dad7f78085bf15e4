//! The `tojson` filter as the Hugging Face reference defines it:
//! `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`
//! (transformers, `utils/chat_template_utils.py`, `_compile_jinja_template`).
//!
//! minijinja's built-in `tojson` escapes `<`, `>`, `&` and `'` for HTML and uses
//! compact separators; Python's `json.dumps` does neither. The output here follows
//! CPython's `json.encoder`: `", "` and `": "` separators (`","` between items
//! when `indent` is given), newline + indent per level, `[]`/`{}` for empty
//! containers, floats as `float.__repr__`, `Infinity`/`NaN`, and string escapes
//! `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, `\u00XX` for other control
//! characters (and `\uXXXX` for all non-ASCII with `ensure_ascii=True`).

use std::fmt::Write;

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Error, ErrorKind};

use super::python::{write_float, write_number};

/// Options of `json.dumps` that templates pass to `tojson`.
struct DumpOptions {
    ensure_ascii: bool,
    /// Per-level indentation; `None` puts everything on one line.
    indent: Option<String>,
    item_separator: String,
    key_separator: String,
    sort_keys: bool,
}

impl DumpOptions {
    /// Reads `tojson`'s arguments: positionally or by name, in the order of
    /// the reference signature `(ensure_ascii, indent, separators, sort_keys)`.
    fn from_args(args: &[Value], kwargs: &Kwargs) -> Result<Self, Error> {
        let arg = |name: &str, position: usize| -> Result<Option<Value>, Error> {
            let named: Option<Value> = kwargs.get(name)?;
            Ok(named.or_else(|| args.get(position).cloned()))
        };
        let ensure_ascii = arg("ensure_ascii", 0)?.is_some_and(|v| v.is_true());
        let indent = match arg("indent", 1)? {
            None => None,
            Some(v) if v.is_none() => None,
            Some(v) if v.kind() == ValueKind::String => v.as_str().map(str::to_owned),
            Some(v) => {
                let n = v.as_i64().ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: indent must be an integer",
                    )
                })?;
                Some(" ".repeat(n.max(0) as usize))
            }
        };
        let (item_separator, key_separator) = match arg("separators", 2)? {
            Some(v) if !v.is_none() => {
                let parts: Vec<String> = v
                    .try_iter()?
                    .map(|p| p.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::InvalidOperation,
                            "tojson: separators must be strings",
                        )
                    })?;
                match <[String; 2]>::try_from(parts) {
                    Ok([item, key]) => (item, key),
                    Err(_) => {
                        return Err(Error::new(
                            ErrorKind::InvalidOperation,
                            "tojson: separators must be a pair",
                        ));
                    }
                }
            }
            // json.dumps drops the trailing space of the item separator when indenting.
            _ if indent.is_some() => (",".to_owned(), ": ".to_owned()),
            _ => (", ".to_owned(), ": ".to_owned()),
        };
        let sort_keys = arg("sort_keys", 3)?.is_some_and(|v| v.is_true());
        kwargs.assert_all_used()?;
        Ok(Self {
            ensure_ascii,
            indent,
            item_separator,
            key_separator,
            sort_keys,
        })
    }
}

/// The `tojson` filter.
pub(crate) fn tojson(value: &Value, args: &[Value], kwargs: Kwargs) -> Result<Value, Error> {
    let options = DumpOptions::from_args(args, &kwargs)?;
    let mut out = String::new();
    dump(&mut out, value, &options, 0)?;
    // Marked safe, like jinja2's own tojson, so no auto-escaping can touch it.
    Ok(Value::from_safe_string(out))
}

fn newline(out: &mut String, options: &DumpOptions, depth: usize) {
    if let Some(indent) = &options.indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(indent);
        }
    }
}

fn dump(out: &mut String, value: &Value, options: &DumpOptions, depth: usize) -> Result<(), Error> {
    match value.kind() {
        ValueKind::None | ValueKind::Undefined => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number if value.is_integer() => write_number(out, value),
        ValueKind::Number => {
            let x = f64::try_from(value.clone()).unwrap_or(f64::NAN);
            write_float(out, x, "Infinity", "NaN");
        }
        ValueKind::String => dump_str(
            out,
            value.as_str().unwrap_or_default(),
            options.ensure_ascii,
        ),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&options.item_separator);
                }
                newline(out, options, depth + 1);
                dump(out, item, options, depth + 1)?;
            }
            newline(out, options, depth);
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = value.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            if options.sort_keys {
                keys.sort();
            }
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(&options.item_separator);
                }
                newline(out, options, depth + 1);
                dump_key(out, key, options)?;
                out.push_str(&options.key_separator);
                dump(out, &value.get_item(key)?, options, depth + 1)?;
            }
            newline(out, options, depth);
            out.push('}');
        }
        kind => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson: a value of type {kind} is not JSON serializable"),
            ));
        }
    }
    Ok(())
}

/// Keys: strings as they are; numbers, booleans and None converted the way
/// `json.dumps` converts them (`1` -> `"1"`, `True` -> `"true"`).
fn dump_key(out: &mut String, key: &Value, options: &DumpOptions) -> Result<(), Error> {
    match key.kind() {
        ValueKind::String => dump_str(out, key.as_str().unwrap_or_default(), options.ensure_ascii),
        ValueKind::Number | ValueKind::Bool | ValueKind::None => {
            let mut text = String::new();
            dump(&mut text, key, options, 0)?;
            dump_str(out, &text, options.ensure_ascii);
        }
        kind => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson: keys must be str, int, float, bool or None, not {kind}"),
            ));
        }
    }
    Ok(())
}

fn dump_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ensure_ascii && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::value::Serde;

    fn render(source: &str, ctx: serde_json::Value) -> String {
        let mut env = minijinja::Environment::new();
        env.add_filter("tojson", tojson);
        env.render_str(source, Serde(ctx)).unwrap()
    }

    #[test]
    fn matches_python_json_dumps() {
        // Expected strings are CPython 3.11's json.dumps(x, ensure_ascii=False, ...).
        let x = serde_json::json!({
            "b": [1, 2.5, null, true, {}],
            "a": "<Zürich & 'co'>\n\u{1}",
            "e": []
        });
        assert_eq!(
            render("{{ x | tojson }}", serde_json::json!({ "x": x })),
            r#"{"b": [1, 2.5, null, true, {}], "a": "<Zürich & 'co'>\n\u0001", "e": []}"#
        );
        assert_eq!(
            render("{{ x | tojson(indent=2) }}", serde_json::json!({ "x": x })),
            "{\n  \"b\": [\n    1,\n    2.5,\n    null,\n    true,\n    {}\n  ],\n  \
             \"a\": \"<Zürich & 'co'>\\n\\u0001\",\n  \"e\": []\n}"
        );
        assert_eq!(
            render(
                "{{ x | tojson(separators=[',', ':'], sort_keys=true, ensure_ascii=true) }}",
                serde_json::json!({ "x": x })
            ),
            r#"{"a":"<Z\u00fcrich & 'co'>\n\u0001","b":[1,2.5,null,true,{}],"e":[]}"#
        );
    }
}
