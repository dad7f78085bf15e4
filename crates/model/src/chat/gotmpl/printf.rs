//! Go's `fmt.Sprint`, `fmt.Sprintln` and `fmt.Sprintf` over template values:
//! the verbs templates use (`%v %s %d %q %t %f %e %g %x %X %c %o %b %U %%`)
//! with flags, width and precision, and Go's `%!d(string=x)` markers for a
//! verb that does not fit its argument, a missing or an extra argument.

use super::value::{ListKind, Value, format_g};

/// `fmt.Sprint`: operands in `%v`, a space between two that are not strings.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = matches!(a, Value::Str(_));
        if i > 0 && !is_str && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        a.write_v(&mut out);
    }
    out
}

/// `fmt.Sprintln`: operands in `%v` separated by spaces, then a newline.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let parts: Vec<String> = args.iter().map(Value::to_v).collect();
    let mut out = parts.join(" ");
    out.push('\n');
    out
}

/// Flags, width and precision of one directive.
#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// `fmt.Sprintf`.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next_arg = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        let mut number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            if chars.peek() == Some(&'*') {
                chars.next();
                let v = match args.get(next_arg) {
                    Some(Value::Int(i)) => usize::try_from(*i).ok(),
                    _ => None,
                };
                next_arg += 1;
                return v;
            }
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(
                    n.unwrap_or(0)
                        .saturating_mul(10)
                        .saturating_add(d as usize)
                        .min(1 << 16),
                );
                chars.next();
            }
            n
        };
        spec.width = number(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(number(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next_arg += 1;
        let (text, numeric) = match format_one(verb, &spec, arg) {
            Some(r) => r,
            None => (bad_verb(verb, arg), false),
        };
        pad(&mut out, &text, &spec, numeric);
    }
    if next_arg < args.len() {
        let extra: Vec<String> = args[next_arg..]
            .iter()
            .map(|a| match a {
                Value::Nil => "<nil>".to_owned(),
                a => format!("{}={}", a.type_name(), a.to_v()),
            })
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

/// `%!verb(type=value)`.
fn bad_verb(verb: char, arg: &Value) -> String {
    match arg {
        Value::Nil => format!("%!{verb}(<nil>)"),
        a => format!("%!{verb}({}={})", a.type_name(), a.to_v()),
    }
}

fn pad(out: &mut String, text: &str, spec: &Spec, numeric: bool) {
    let len = text.chars().count();
    let fill = spec.width.unwrap_or(0).saturating_sub(len);
    if spec.minus {
        out.push_str(text);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero && numeric {
        let (sign, digits) = match text.chars().next() {
            Some(s @ ('-' | '+' | ' ')) => (Some(s), &text[1..]),
            _ => (None, text),
        };
        out.extend(sign);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(digits);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(text);
    }
}

fn signed(spec: &Spec, negative: bool, body: String) -> String {
    if negative {
        format!("-{body}")
    } else if spec.plus {
        format!("+{body}")
    } else if spec.space {
        format!(" {body}")
    } else {
        body
    }
}

/// Whether the value prints through a `String` method.
fn is_stringer(v: &Value) -> bool {
    match v {
        Value::List(l) => l.kind != ListKind::Plain,
        Value::Map(m) => m.json_string,
        Value::Struct(s) => s.json_string,
        _ => false,
    }
}

/// The directive's text and whether it is a number (zero padding applies);
/// `None` when the verb does not fit the argument.
fn format_one(verb: char, spec: &Spec, arg: &Value) -> Option<(String, bool)> {
    let truncate = |s: String| match spec.precision {
        Some(p) => s.chars().take(p).collect(),
        None => s,
    };
    Some(match (verb, arg) {
        ('v', Value::Float(f)) if spec.precision.is_none() => {
            (signed(spec, *f < 0.0, format_g(f.abs())), true)
        }
        ('v', Value::Int(i)) => (signed(spec, *i < 0, i.unsigned_abs().to_string()), true),
        ('v', v) => (v.to_v(), false),
        ('s', Value::Str(s)) => (truncate(s.to_string()), false),
        ('s', v) if is_stringer(v) => (truncate(v.to_v()), false),
        ('s', v @ (Value::List(_) | Value::Map(_) | Value::Struct(_))) => (v.to_v(), false),
        ('q', Value::Str(s)) => (quote(s), false),
        ('q', Value::Int(i)) => (
            format!("'{}'", char::from_u32(*i as u32).unwrap_or('\u{FFFD}')),
            false,
        ),
        ('t', Value::Bool(b)) => (b.to_string(), false),
        ('d', Value::Int(i)) => (signed(spec, *i < 0, i.unsigned_abs().to_string()), true),
        ('o', Value::Int(i)) => (
            signed(spec, *i < 0, format!("{:o}", i.unsigned_abs())),
            true,
        ),
        ('b', Value::Int(i)) => (
            signed(spec, *i < 0, format!("{:b}", i.unsigned_abs())),
            true,
        ),
        ('x', Value::Int(i)) => {
            let prefix = if spec.sharp { "0x" } else { "" };
            (
                signed(spec, *i < 0, format!("{prefix}{:x}", i.unsigned_abs())),
                true,
            )
        }
        ('X', Value::Int(i)) => {
            let prefix = if spec.sharp { "0X" } else { "" };
            (
                signed(spec, *i < 0, format!("{prefix}{:X}", i.unsigned_abs())),
                true,
            )
        }
        ('x', Value::Str(s)) => (s.bytes().map(|b| format!("{b:02x}")).collect(), false),
        ('X', Value::Str(s)) => (s.bytes().map(|b| format!("{b:02X}")).collect(), false),
        ('c', Value::Int(i)) => (
            char::from_u32(*i as u32).unwrap_or('\u{FFFD}').to_string(),
            false,
        ),
        ('U', Value::Int(i)) => (format!("U+{:04X}", i), false),
        ('f' | 'F', Value::Float(f)) => {
            let p = spec.precision.unwrap_or(6);
            (
                signed(
                    spec,
                    f.is_sign_negative() && *f != 0.0,
                    format!("{:.p$}", f.abs()),
                ),
                true,
            )
        }
        ('e' | 'E', Value::Float(f)) => {
            let p = spec.precision.unwrap_or(6);
            let s = go_exp(&format!("{:.p$e}", f.abs()));
            let s = if verb == 'E' { s.to_uppercase() } else { s };
            (signed(spec, *f < 0.0, s), true)
        }
        ('g' | 'G', Value::Float(f)) => {
            let s = match spec.precision {
                None => format_g(f.abs()),
                Some(p) => g_with_precision(f.abs(), p.max(1)),
            };
            let s = if verb == 'G' { s.to_uppercase() } else { s };
            (signed(spec, *f < 0.0, s), true)
        }
        _ => return None,
    })
}

/// Rust's `1.5e2` as Go writes it: `1.5e+02`.
fn go_exp(rust: &str) -> String {
    match rust.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => rust.to_owned(),
    }
}

/// `%.Ng`: `p` significant digits, trailing zeros dropped, exponent form
/// when the exponent is below -4 or at least `p`.
fn g_with_precision(f: f64, p: usize) -> String {
    let sci = format!("{:.*e}", p - 1, f);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let m = if mantissa.contains('.') {
            mantissa.trim_end_matches('0').trim_end_matches('.')
        } else {
            mantissa
        };
        go_exp(&format!("{m}e{exp}"))
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        let s = format!("{f:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    }
}

/// Go's `strconv.Quote`.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(format: &str, args: &[Value]) -> String {
        sprintf(format, args)
    }

    #[test]
    fn verbs_templates_use() {
        let s = Value::str("hi\n\"x\"");
        assert_eq!(
            f("%s|%v|%q", &[s.clone(), s.clone(), s]),
            "hi\n\"x\"|hi\n\"x\"|\"hi\\n\\\"x\\\"\""
        );
        assert_eq!(
            f(
                "%d %5d %-4d| %05d %+d",
                &[
                    Value::Int(7),
                    Value::Int(42),
                    Value::Int(3),
                    Value::Int(-12),
                    Value::Int(5)
                ]
            ),
            "7    42 3   | -0012 +5"
        );
        assert_eq!(
            f("%t %v", &[Value::Bool(true), Value::Float(2.0)]),
            "true 2"
        );
        assert_eq!(
            f(
                "%.2f %e %g %.3g",
                &[
                    Value::Float(1.23456),
                    Value::Float(1234.5),
                    Value::Float(1e-7),
                    Value::Float(1234.5)
                ]
            ),
            "1.23 1.234500e+03 1e-07 1.23e+03"
        );
        assert_eq!(
            f(
                "%x %X %c %%",
                &[Value::Int(255), Value::str("hi"), Value::Int(65)]
            ),
            "ff 6869 A %"
        );
    }

    #[test]
    fn mismatches_are_marked_as_go_does() {
        assert_eq!(f("%d", &[Value::str("x")]), "%!d(string=x)");
        assert_eq!(f("%s", &[Value::Int(1)]), "%!s(int=1)");
        assert_eq!(f("%s %s", &[Value::str("a")]), "a %!s(MISSING)");
        assert_eq!(
            f("%s", &[Value::str("a"), Value::Int(2)]),
            "a%!(EXTRA int=2)"
        );
        assert_eq!(f("%s", &[Value::Nil]), "%!s(<nil>)");
        assert_eq!(f("%v", &[Value::Nil]), "<nil>");
    }

    #[test]
    fn print_spaces_between_non_strings() {
        assert_eq!(
            sprint(&[Value::Int(1), Value::Int(2), Value::str("a"), Value::Int(3)]),
            "1 2a3"
        );
        assert_eq!(sprintln(&[Value::str("a"), Value::Int(1)]), "a 1\n");
    }
}
