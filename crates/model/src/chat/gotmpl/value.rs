//! The values a Go template sees, shaped as Ollama's template data: Go maps
//! (`map[string]any`, ranged in sorted key order), slices, and structs with a
//! fixed set of fields, some of which print as JSON through a `String` method.
//!
//! Printing follows Go's `fmt` `%v`, and [`Value::write_json`] follows
//! `encoding/json.Marshal` (HTML-safe escapes, sorted map keys, struct field
//! tags with `omitempty`). JSON numbers are Go `float64`s, as a decoded
//! `any` holds them.

use std::rc::Rc;

/// One template value.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// A nil interface: a missing map key or a JSON `null`.
    Nil,
    /// A Go `bool`.
    Bool(bool),
    /// A Go `int`.
    Int(i64),
    /// A Go `float64`.
    Float(f64),
    /// A Go `string`.
    Str(Rc<str>),
    /// A Go slice.
    List(Rc<List>),
    /// A Go map with string keys.
    Map(Rc<Map>),
    /// A Go struct.
    Struct(Rc<Struct>),
}

/// How a slice prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// `[a b c]`.
    Plain,
    /// A type whose `String` method marshals it (Ollama's `templateTools`).
    Json,
    /// Ollama's `api.PropertyType`: one name prints (and marshals) as that
    /// name, several as a list.
    PropertyType,
}

/// A Go slice.
#[derive(Debug)]
pub(crate) struct List {
    /// The elements.
    pub items: Vec<Value>,
    /// How it prints.
    pub kind: ListKind,
    /// A nil slice (marshals as `null`; prints and ranges as empty).
    pub nil: bool,
}

/// A Go map with string keys, in iteration order (sorted, as Go ranges and
/// marshals maps; insertion order for Ollama's ordered maps).
#[derive(Debug)]
pub(crate) struct Map {
    /// Keys and values.
    pub entries: Vec<(String, Value)>,
    /// Whether its `String` method marshals it to JSON.
    pub json_string: bool,
}

/// One struct field.
#[derive(Debug)]
pub(crate) struct Field {
    /// The Go field name templates use.
    pub name: &'static str,
    /// The JSON key (`None`: the Go name, as an untagged field).
    pub json: Option<&'static str>,
    /// Whether `json:",omitempty"` leaves it out when empty.
    pub omit_empty: bool,
    /// The value.
    pub value: Value,
}

/// A Go struct.
#[derive(Debug)]
pub(crate) struct Struct {
    /// The Go type name (errors name it; `toTypeScriptType` recognises
    /// `ToolProperty`).
    pub type_name: &'static str,
    /// The fields, in declaration order.
    pub fields: Vec<Field>,
    /// Whether its `String` method marshals it to JSON.
    pub json_string: bool,
}

impl Value {
    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::Str(Rc::from(s))
    }

    /// A plain slice.
    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Rc::new(List {
            items,
            kind: ListKind::Plain,
            nil: false,
        }))
    }

    /// A slice of `kind` that is nil when it has no items, as Go's
    /// `append` onto a nil slice leaves it.
    pub fn list_or_nil(items: Vec<Value>, kind: ListKind) -> Value {
        Value::List(Rc::new(List {
            nil: items.is_empty(),
            items,
            kind,
        }))
    }

    /// A Go map; entries are sorted by key as Go iterates them.
    pub fn sorted_map(mut entries: Vec<(String, Value)>, json_string: bool) -> Value {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Value::Map(Rc::new(Map {
            entries,
            json_string,
        }))
    }

    /// Converts decoded JSON as Go's `any` holds it (maps sorted, numbers
    /// `float64`).
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Value::str(s),
            serde_json::Value::Array(a) => Value::list(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => Value::sorted_map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
                false,
            ),
        }
    }

    /// Go's truth: false, 0, nil and empty strings, slices and maps are false.
    pub fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.items.is_empty(),
            Value::Map(m) => !m.entries.is_empty(),
            Value::Struct(_) => true,
        }
    }

    /// The Go type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            Value::Struct(s) => s.type_name,
        }
    }

    /// Appends the value as an action prints it: `fmt.Fprint`, except that a
    /// nil value prints nothing (Go would print `<no value>`).
    pub fn write_action(&self, out: &mut String) {
        if !matches!(self, Value::Nil) {
            self.write_v(out);
        }
    }

    /// Appends the value as Go's `%v` formats it.
    pub fn write_v(&self, out: &mut String) {
        match self {
            Value::Nil => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Float(f) => out.push_str(&format_g(*f)),
            Value::Str(s) => out.push_str(s),
            Value::List(l) => match l.kind {
                ListKind::Json => self.write_json(out),
                ListKind::PropertyType if l.items.len() == 1 => l.items[0].write_v(out),
                ListKind::PropertyType if l.items.is_empty() => {}
                _ => {
                    out.push('[');
                    for (i, item) in l.items.iter().enumerate() {
                        if i > 0 {
                            out.push(' ');
                        }
                        item.write_v(out);
                    }
                    out.push(']');
                }
            },
            Value::Map(m) if m.json_string => self.write_json(out),
            Value::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.entries.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_v(out);
                }
                out.push(']');
            }
            Value::Struct(s) if s.json_string => self.write_json(out),
            Value::Struct(s) => {
                out.push('{');
                for (i, f) in s.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    f.value.write_v(out);
                }
                out.push('}');
            }
        }
    }

    /// The `%v` text.
    pub fn to_v(&self) -> String {
        let mut s = String::new();
        self.write_v(&mut s);
        s
    }

    /// Whether `omitempty` leaves the value out.
    fn json_empty(&self) -> bool {
        match self {
            Value::Struct(_) => false,
            other => !other.truth(),
        }
    }

    /// Appends the value as Go's `json.Marshal` encodes it.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Nil => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Float(f) => out.push_str(&format_json_float(*f)),
            Value::Str(s) => write_json_string(s, out),
            Value::List(l) if l.kind == ListKind::PropertyType && l.items.len() == 1 => {
                l.items[0].write_json(out)
            }
            Value::List(l) if l.nil => out.push_str("null"),
            Value::List(l) => {
                out.push('[');
                for (i, item) in l.items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push('{');
                for (i, (k, v)) in m.entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
            Value::Struct(s) => {
                out.push('{');
                let mut first = true;
                for f in &s.fields {
                    if f.omit_empty && f.value.json_empty() {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    write_json_string(f.json.unwrap_or(f.name), out);
                    out.push(':');
                    f.value.write_json(out);
                }
                out.push('}');
            }
        }
    }

    /// The `json.Marshal` text.
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        self.write_json(&mut s);
        s
    }
}

/// Appends `s` as a JSON string the way Go escapes it: `<`, `>`, `&`, U+2028
/// and U+2029 as `\u` escapes, control characters as `\n`-style or `\u00xx`.
pub(crate) fn write_json_string(s: &str, out: &mut String) {
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
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The shortest decimal digits of `|f|` and its decimal exponent (the
/// position of the first digit: `1234.5` is `("12345", 3)`).
fn shortest_digits(f: f64) -> (String, i32) {
    let text = format!("{:e}", f.abs());
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// `digits` (first digit at 10^`exp`) without an exponent.
fn fixed(digits: &str, exp: i32) -> String {
    let mut s = String::new();
    if exp < 0 {
        s.push_str("0.");
        for _ in 0..(-exp - 1) {
            s.push('0');
        }
        s.push_str(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            s.push_str(digits);
            for _ in digits.len()..int_len {
                s.push('0');
            }
        } else {
            s.push_str(&digits[..int_len]);
            s.push('.');
            s.push_str(&digits[int_len..]);
        }
    }
    s
}

/// `digits` as `d.ddde±XX` with at least `exp_width` exponent digits.
fn scientific(digits: &str, exp: i32, exp_width: usize) -> String {
    let mut s = digits[..1].to_owned();
    if digits.len() > 1 {
        s.push('.');
        s.push_str(&digits[1..]);
    }
    s.push('e');
    s.push(if exp < 0 { '-' } else { '+' });
    s.push_str(&format!("{:0exp_width$}", exp.unsigned_abs()));
    s
}

fn special(f: f64) -> Option<String> {
    if f.is_nan() {
        Some("NaN".into())
    } else if f.is_infinite() {
        Some(if f > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else if f == 0.0 {
        Some(if f.is_sign_negative() { "-0" } else { "0" }.into())
    } else {
        None
    }
}

/// Go's `%v` (shortest `%g`) for a float64: `1e+06`, `123456`, `0.0001`.
pub(crate) fn format_g(f: f64) -> String {
    if let Some(s) = special(f) {
        return s;
    }
    let (digits, exp) = shortest_digits(f);
    let body = if !(-4..6).contains(&exp) {
        scientific(&digits, exp, 2)
    } else {
        fixed(&digits, exp)
    };
    if f < 0.0 { format!("-{body}") } else { body }
}

/// Go's `encoding/json` float64: fixed notation between 1e-6 and 1e21,
/// `1e-7` / `1e+21` outside.
pub(crate) fn format_json_float(f: f64) -> String {
    if f.is_nan() || f.is_infinite() {
        return "null".into();
    }
    if f == 0.0 {
        return "0".into();
    }
    let (digits, exp) = shortest_digits(f);
    let abs = f.abs();
    let body = if !(1e-6..1e21).contains(&abs) {
        scientific(&digits, exp, 1)
    } else {
        fixed(&digits, exp)
    };
    if f < 0.0 { format!("-{body}") } else { body }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_print_like_go() {
        let cases = [
            (1.0, "1", "1"),
            (1.5, "1.5", "1.5"),
            (123456.0, "123456", "123456"),
            (1234567.0, "1.234567e+06", "1234567"),
            (1e6, "1e+06", "1000000"),
            (0.0001, "0.0001", "0.0001"),
            (0.00001, "1e-05", "0.00001"),
            (1e-7, "1e-07", "1e-7"),
            (1e21, "1e+21", "1e+21"),
            (-2.5, "-2.5", "-2.5"),
            (0.0, "0", "0"),
        ];
        for (f, v, j) in cases {
            assert_eq!(format_g(f), v, "%v of {f}");
            assert_eq!(format_json_float(f), j, "json of {f}");
        }
    }

    #[test]
    fn json_escapes_like_go() {
        let v = Value::str("a<b>&\"c\"\n\u{1}é");
        assert_eq!(v.to_json(), r#""a\u003cb\u003e\u0026\"c\"\n\u0001é""#);
    }

    #[test]
    fn maps_are_sorted_and_print_as_go() {
        let v = Value::from_json(&json!({"b": [1, "x"], "a": null}));
        assert_eq!(v.to_v(), "map[a:<nil> b:[1 x]]");
        assert_eq!(v.to_json(), r#"{"a":null,"b":[1,"x"]}"#);
    }

    #[test]
    fn structs_follow_tags_and_omitempty() {
        let s = Value::Struct(Rc::new(Struct {
            type_name: "T",
            fields: vec![
                Field {
                    name: "Name",
                    json: Some("name"),
                    omit_empty: false,
                    value: Value::str("f"),
                },
                Field {
                    name: "Items",
                    json: Some("items"),
                    omit_empty: true,
                    value: Value::Nil,
                },
                Field {
                    name: "Index",
                    json: None,
                    omit_empty: false,
                    value: Value::Int(0),
                },
            ],
            json_string: false,
        }));
        assert_eq!(s.to_json(), r#"{"name":"f","Index":0}"#);
        assert_eq!(s.to_v(), "{f <nil> 0}");
        assert!(s.truth());
    }

    #[test]
    fn truth_follows_go() {
        assert!(!Value::Nil.truth());
        assert!(!Value::str("").truth());
        assert!(!Value::Float(0.0).truth());
        assert!(!Value::list(vec![]).truth());
        assert!(Value::Int(-1).truth());
    }
}
