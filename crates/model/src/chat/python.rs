//! Python semantics that chat templates rely on but minijinja does not share.
//!
//! The reference renderer is Python's jinja2, so whatever a template prints goes
//! through Python's `str()`: `True`, `None`, `['a', 1]`, `{'k': 0.5}`, `1e-05`.
//! minijinja prints `true`, `none` and JSON-ish containers instead. This module
//! supplies the Python spellings for the output formatter and the `string` filter,
//! and jinja2's own `indent` filter, whose line handling differs from minijinja's.

use std::fmt::Write;

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Error, ErrorKind};

/// Python's `str(value)`: strings as they are, everything else as `repr`.
/// Undefined values print as nothing (jinja2's default `Undefined`).
pub(crate) fn str_of(value: &Value) -> String {
    match value.kind() {
        ValueKind::Undefined => String::new(),
        ValueKind::String => value.as_str().unwrap_or_default().to_owned(),
        _ => {
            let mut out = String::new();
            write_repr(&mut out, value);
            out
        }
    }
}

/// Python's `repr(value)` for the JSON-like values templates handle.
pub(crate) fn write_repr(out: &mut String, value: &Value) {
    match value.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => write_number(out, value),
        ValueKind::String => write_str_repr(out, value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            // Tuples come from `dict.items()`; Python prints them in parentheses,
            // with a trailing comma when they hold one item.
            let tuple = value.is_tuple();
            out.push(if tuple { '(' } else { '[' });
            let mut count = 0;
            if let Ok(items) = value.try_iter() {
                for item in items {
                    if count > 0 {
                        out.push_str(", ");
                    }
                    write_repr(out, &item);
                    count += 1;
                }
            }
            if tuple && count == 1 {
                out.push(',');
            }
            out.push(if tuple { ')' } else { ']' });
        }
        ValueKind::Map => {
            out.push('{');
            if let Ok(keys) = value.try_iter() {
                for (i, key) in keys.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_repr(out, &key);
                    out.push_str(": ");
                    let item = value.get_item(&key).unwrap_or_default();
                    write_repr(out, &item);
                }
            }
            out.push('}');
        }
        // Bytes, plain objects and invalid values have no Python counterpart in a
        // chat request; minijinja's own rendering is the best available.
        _ => {
            let _ = write!(out, "{value}");
        }
    }
}

/// Integers print in full; floats like Python's `repr(float)`.
pub(crate) fn write_number(out: &mut String, value: &Value) {
    if value.is_integer() {
        let _ = write!(out, "{value}");
    } else {
        let x = f64::try_from(value.clone()).unwrap_or(f64::NAN);
        write_float(out, x, "inf", "nan");
    }
}

/// Python's `repr(float)` (`float_repr_style = 'short'`): the shortest digits
/// that round-trip, positional when the decimal exponent is in `-4..16`,
/// scientific (`1e-05`, `1.5e+16`) otherwise. Non-finite values use the given
/// spellings (`inf`/`nan` for `repr`, `Infinity`/`NaN` for `json.dumps`).
pub(crate) fn write_float(out: &mut String, x: f64, inf: &str, nan: &str) {
    if x.is_nan() {
        out.push_str(nan);
        return;
    }
    if x.is_infinite() {
        if x < 0.0 {
            out.push('-');
        }
        out.push_str(inf);
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "-1.5e-7".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    out.push_str(sign);
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

/// Python's `repr(str)`: single quotes unless the text contains a single quote
/// and no double quote; backslash escapes for the quote, `\\`, `\n`, `\r`, `\t`
/// and other non-printable characters. (Printability is approximated by Unicode
/// control and separator characters; Python's exact table is larger.)
fn write_str_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_unprintable(c) => {
                let code = c as u32;
                let _ = match code {
                    0..=0xff => write!(out, "\\x{code:02x}"),
                    0x100..=0xffff => write!(out, "\\u{code:04x}"),
                    _ => write!(out, "\\U{code:08x}"),
                };
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

fn is_unprintable(c: char) -> bool {
    c.is_control() || (c != ' ' && c.is_whitespace()) || matches!(c, '\u{ad}' | '\u{feff}')
}

/// The `string` filter: Python's `str()` instead of minijinja's rendering.
pub(crate) fn string_filter(value: &Value) -> String {
    str_of(value)
}

/// jinja2's `indent(s, width=4, first=False, blank=False)` (jinja2 3.1,
/// `filters.do_indent`): a newline is appended before splitting into lines, so
/// a trailing newline survives (`'{\n'|indent(4, first=true)` is `'    {\n'`);
/// minijinja's `indent` drops it. `width` may be a number of spaces or a string.
pub(crate) fn indent(s: String, width: Option<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let width = match kwargs.get::<Option<Value>>("width")? {
        Some(w) => Some(w),
        None => width,
    };
    let first = kwargs.get::<Option<bool>>("first")?.unwrap_or(false);
    let blank = kwargs.get::<Option<bool>>("blank")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let indention = match width {
        None => "    ".to_owned(),
        Some(w) if w.kind() == ValueKind::String => w.as_str().unwrap_or_default().to_owned(),
        Some(w) => {
            let n = w.as_i64().ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    "indent: width must be a number or string",
                )
            })?;
            " ".repeat(n.max(0) as usize)
        }
    };
    let text = s + "\n";
    let lines = splitlines(&text);
    let mut out = String::new();
    if first {
        out.push_str(&indention);
    }
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
            if blank || !line.is_empty() {
                out.push_str(&indention);
            }
        }
        out.push_str(line);
    }
    Ok(out)
}

/// Python's `str.splitlines()`: splits on every line boundary Python knows
/// (`\n`, `\r`, `\r\n`, `\v`, `\f`, `\x1c`-`\x1e`, `\x85`, U+2028, U+2029) and
/// drops the terminators; a final terminator does not start an empty line.
fn splitlines(s: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\u{b}'
                | '\u{c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if is_break {
            lines.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' && chars.peek().is_some_and(|&(_, n)| n == '\n') {
                chars.next();
                end += 1;
            }
            start = end;
        }
    }
    if start < s.len() {
        lines.push(&s[start..]);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::value::Serde;

    fn float(x: f64) -> String {
        let mut out = String::new();
        write_float(&mut out, x, "inf", "nan");
        out
    }

    #[test]
    fn floats_print_like_python_repr() {
        // Expected strings are Python 3.11's repr() of the same floats.
        let cases = [
            (0.5, "0.5"),
            (1.0, "1.0"),
            (-2.0, "-2.0"),
            (21.5, "21.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
            (1234567890123456.0, "1234567890123456.0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, want) in cases {
            assert_eq!(float(x), want, "{x:e}");
        }
    }

    #[test]
    fn containers_print_like_python() {
        let value = Value::from(Serde(serde_json::json!({
            "a": [1, 2.5, null, true, "it's"],
            "b": {"c": "x\ny"}
        })));
        assert_eq!(
            str_of(&value),
            r#"{'a': [1, 2.5, None, True, "it's"], 'b': {'c': 'x\ny'}}"#
        );
        let pair = Value::from(minijinja::value::Tuple::from([
            Value::from("a"),
            Value::from(1),
        ]));
        assert_eq!(str_of(&Value::from(vec![pair])), "[('a', 1)]");
        assert_eq!(
            str_of(&Value::from(minijinja::value::Tuple::from([Value::from(
                1
            )]))),
            "(1,)"
        );
        assert_eq!(str_of(&Value::from("plain")), "plain");
        assert_eq!(str_of(&Value::UNDEFINED), "");
    }

    #[test]
    fn indent_matches_jinja2() {
        let no_kwargs = || Kwargs::from_iter(std::iter::empty::<(&str, Value)>());
        let first = || Kwargs::from_iter([("first", Value::from(true))]);
        // Expected strings are jinja2 3.1.6's do_indent on the same input.
        assert_eq!(
            indent("{\n".into(), Some(Value::from(4)), first()).unwrap(),
            "    {\n"
        );
        assert_eq!(
            indent("a\n\nb".into(), None, no_kwargs()).unwrap(),
            "a\n\n    b"
        );
        assert_eq!(
            indent("a\r\nb\n".into(), Some(Value::from("> ")), first()).unwrap(),
            "> a\n> b\n"
        );
        let blank = Kwargs::from_iter([("blank", Value::from(true))]);
        assert_eq!(
            indent("a\n\nb".into(), Some(Value::from(2)), blank).unwrap(),
            "a\n  \n  b"
        );
    }
}
