//! llama.cpp's GBNF grammars (grammars/README.md there) translated to
//! llguidance's Lark dialect, which has the same operators: a GBNF grammar is
//! parsed into rules of alternatives and written back with Lark's spelling.
//!
//! What changes: `root` becomes `start`; other rule names become lowercase
//! Lark rule names (`g_` + the name, `-` kept); strings are written with JSON
//! escapes; character classes and `.` become regular expressions with every
//! character escaped; an empty alternative becomes an optional group.
//! Repetitions (`*`, `+`, `?`, `{m}`, `{m,}`, `{m,n}`) and special tokens
//! (`<|eot_id|>`, `<[128009]>`) carry over unchanged.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// The Lark grammar for GBNF `text`, or what is wrong with it.
pub fn gbnf_to_lark(text: &str) -> Result<String, String> {
    let rules = Parser::new(text).rules()?;
    if !rules.iter().any(|(name, _)| name == "root") {
        return Err("the grammar has no 'root' rule".to_owned());
    }
    let mut names = Names::default();
    for (name, _) in &rules {
        names.lark(name);
    }
    let mut out = String::new();
    let mut seen = HashSet::new();
    for (name, alts) in &rules {
        if !seen.insert(name.clone()) {
            return Err(format!("rule '{name}' is defined twice"));
        }
        let body = alternatives(alts, &mut names, true)?;
        let _ = writeln!(out, "{}: {body}", names.lark(name));
    }
    for name in names.map.keys() {
        if !seen.contains(name) {
            return Err(format!("rule '{name}' is used but not defined"));
        }
    }
    Ok(out)
}

/// Alternatives, each a sequence of items.
type Alternatives = Vec<Vec<Item>>;

/// One element of a sequence with its repetition.
#[derive(Debug)]
struct Item {
    atom: Atom,
    /// `(min, max)`; `max == None` is unbounded; `(1, Some(1))` is once.
    repeat: (u32, Option<u32>),
}

#[derive(Debug)]
enum Atom {
    Literal(String),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Any,
    Rule(String),
    Token(String),
    Group(Alternatives),
}

/// GBNF rule names to Lark rule names.
#[derive(Default)]
struct Names {
    map: HashMap<String, String>,
    used: HashSet<String>,
}

impl Names {
    fn lark(&mut self, name: &str) -> String {
        if let Some(n) = self.map.get(name) {
            return n.clone();
        }
        let base = if name == "root" {
            "start".to_owned()
        } else {
            format!("g_{}", name.to_ascii_lowercase())
        };
        let mut lark = base.clone();
        let mut i = 1;
        while self.used.contains(&lark) {
            i += 1;
            lark = format!("{base}_{i}");
        }
        self.used.insert(lark.clone());
        self.map.insert(name.to_owned(), lark.clone());
        lark
    }
}

/// `a | b | c`; an empty alternative makes the whole an optional group.
fn alternatives(alts: &[Vec<Item>], names: &mut Names, top: bool) -> Result<String, String> {
    let mut parts = Vec::new();
    let mut has_empty = false;
    for seq in alts {
        let mut items = Vec::new();
        for item in seq {
            if let Some(text) = item_text(item, names)? {
                items.push(text);
            }
        }
        if items.is_empty() {
            has_empty = true;
        } else {
            parts.push(items.join(" "));
        }
    }
    if parts.is_empty() {
        return Err("a rule or group matches only the empty string".to_owned());
    }
    let joined = parts.join(" | ");
    Ok(if has_empty {
        format!("({joined})?")
    } else if top || parts.len() == 1 {
        joined
    } else {
        format!("({joined})")
    })
}

fn item_text(item: &Item, names: &mut Names) -> Result<Option<String>, String> {
    let atom = match &item.atom {
        Atom::Literal(s) if s.is_empty() => return Ok(None),
        Atom::Literal(s) => json_string(s),
        Atom::Class { negated, ranges } => {
            let mut rx = String::from("/[");
            if *negated {
                rx.push('^');
            }
            for &(lo, hi) in ranges {
                escape_char(&mut rx, lo);
                if hi != lo {
                    rx.push('-');
                    escape_char(&mut rx, hi);
                }
            }
            rx.push_str("]/");
            rx
        }
        Atom::Any => "/(?s:.)/".to_owned(),
        Atom::Rule(name) => names.lark(name),
        Atom::Token(t) => t.clone(),
        Atom::Group(alts) => {
            let inner = alternatives(alts, names, false)?;
            if inner.starts_with('(') {
                inner
            } else {
                format!("({inner})")
            }
        }
    };
    Ok(match item.repeat {
        (1, Some(1)) => Some(atom),
        (_, Some(0)) => None,
        (0, None) => Some(format!("{atom}*")),
        (1, None) => Some(format!("{atom}+")),
        (0, Some(1)) => Some(format!("{atom}?")),
        (m, None) => Some(format!("{atom}{{{m},}}")),
        (m, Some(n)) if m == n => Some(format!("{atom}{{{m}}}")),
        (m, Some(n)) => Some(format!("{atom}{{{m},{n}}}")),
    })
}

/// A Lark string: JSON escapes, control characters and DEL escaped.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A character inside a regular expression's class, escaped unless it is
/// a letter or digit.
fn escape_char(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:x}}}", c as u32);
    }
}

/// A recursive-descent reader of GBNF (llama.cpp's src/llama-grammar.cpp
/// accepts the same language).
struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Parser<'a> {
        Parser { src, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn error(&self, what: &str) -> String {
        let line = self.src[..self.pos].matches('\n').count() + 1;
        let near: String = self.rest().chars().take(20).collect();
        format!("line {line}: {what} (at {near:?})")
    }

    /// Skips spaces and comments; newlines too when `newlines`.
    fn space(&mut self, newlines: bool) {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' => {
                    self.bump();
                }
                '\r' | '\n' if newlines => {
                    self.bump();
                }
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                _ => break,
            }
        }
    }

    fn name(&mut self) -> Option<String> {
        let n = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(self.rest().len());
        if n == 0 {
            return None;
        }
        let name = self.rest()[..n].to_owned();
        self.pos += n;
        Some(name)
    }

    fn rules(mut self) -> Result<Vec<(String, Alternatives)>, String> {
        let mut rules = Vec::new();
        self.space(true);
        while self.peek().is_some() {
            let name = self
                .name()
                .ok_or_else(|| self.error("expected a rule name"))?;
            self.space(false);
            if !self.rest().starts_with("::=") {
                return Err(self.error(&format!("expected '::=' after '{name}'")));
            }
            self.pos += 3;
            self.space(true);
            let alts = self.alternatives(false)?;
            rules.push((name, alts));
            self.space(true);
        }
        if rules.is_empty() {
            return Err("the grammar is empty".to_owned());
        }
        Ok(rules)
    }

    /// Alternatives up to the end of the rule (a newline not inside a group
    /// and not followed by `|`) or, `nested`, up to `)`.
    fn alternatives(&mut self, nested: bool) -> Result<Alternatives, String> {
        let mut alts = vec![self.sequence(nested)?];
        loop {
            let save = self.pos;
            self.space(true);
            if self.peek() == Some('|') {
                self.bump();
                self.space(true);
                alts.push(self.sequence(nested)?);
            } else {
                if !nested {
                    self.pos = save;
                }
                return Ok(alts);
            }
        }
    }

    fn sequence(&mut self, nested: bool) -> Result<Vec<Item>, String> {
        let mut items = Vec::new();
        loop {
            self.space(nested);
            let Some(c) = self.peek() else { break };
            let atom = match c {
                '"' => {
                    self.bump();
                    Atom::Literal(self.literal()?)
                }
                '[' => {
                    self.bump();
                    self.class()?
                }
                '.' => {
                    self.bump();
                    Atom::Any
                }
                '(' => {
                    self.bump();
                    self.space(true);
                    let alts = self.alternatives(true)?;
                    self.space(true);
                    if self.bump() != Some(')') {
                        return Err(self.error("expected ')'"));
                    }
                    Atom::Group(alts)
                }
                '<' => {
                    let end = self
                        .rest()
                        .find('>')
                        .ok_or_else(|| self.error("unterminated special token"))?;
                    let token = self.rest()[..=end].to_owned();
                    self.pos += end + 1;
                    Atom::Token(token)
                }
                c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => {
                    let save = self.pos;
                    let name = self.name().expect("starts with a name character");
                    // `name ::=` starts the next rule.
                    let after = self.pos;
                    self.space(false);
                    if self.rest().starts_with("::=") {
                        self.pos = save;
                        break;
                    }
                    self.pos = after;
                    Atom::Rule(name)
                }
                '|' | ')' | '\n' | '\r' => break,
                c => return Err(self.error(&format!("unexpected '{c}'"))),
            };
            let repeat = self.repetition()?;
            items.push(Item { atom, repeat });
        }
        Ok(items)
    }

    fn repetition(&mut self) -> Result<(u32, Option<u32>), String> {
        match self.peek() {
            Some('*') => {
                self.bump();
                Ok((0, None))
            }
            Some('+') => {
                self.bump();
                Ok((1, None))
            }
            Some('?') => {
                self.bump();
                Ok((0, Some(1)))
            }
            Some('{') => {
                self.bump();
                let end = self
                    .rest()
                    .find('}')
                    .ok_or_else(|| self.error("unterminated '{'"))?;
                let body: String = self.rest()[..end].chars().filter(|c| *c != ' ').collect();
                self.pos += end + 1;
                let num = |s: &str| {
                    s.parse::<u32>()
                        .map_err(|_| format!("bad repetition count '{s}' in '{{{body}}}'"))
                };
                match body.split_once(',') {
                    None => {
                        let n = num(&body)?;
                        Ok((n, Some(n)))
                    }
                    Some((lo, hi)) => {
                        let lo = if lo.is_empty() { 0 } else { num(lo)? };
                        let hi = if hi.is_empty() { None } else { Some(num(hi)?) };
                        if hi.is_some_and(|hi| hi < lo) {
                            return Err(format!(
                                "repetition '{{{body}}}': the maximum is below the minimum"
                            ));
                        }
                        Ok((lo, hi))
                    }
                }
            }
            _ => Ok((1, Some(1))),
        }
    }

    /// A string's characters after its opening quote.
    fn literal(&mut self) -> Result<String, String> {
        let mut s = String::new();
        loop {
            match self.bump() {
                None | Some('\n') => return Err(self.error("unterminated string")),
                Some('"') => return Ok(s),
                Some('\\') => s.push(self.escape()?),
                Some(c) => s.push(c),
            }
        }
    }

    /// A character class's ranges after its `[`.
    fn class(&mut self) -> Result<Atom, String> {
        let negated = self.peek() == Some('^');
        if negated {
            self.bump();
        }
        let mut ranges = Vec::new();
        loop {
            let lo = match self.bump() {
                None => return Err(self.error("unterminated character class")),
                Some(']') => break,
                Some('\\') => self.escape()?,
                Some(c) => c,
            };
            let mut hi = lo;
            if self.peek() == Some('-') && !self.rest().starts_with("-]") {
                self.bump();
                hi = match self.bump() {
                    None => return Err(self.error("unterminated character class")),
                    Some('\\') => self.escape()?,
                    Some(c) => c,
                };
                if hi < lo {
                    return Err(self.error(&format!("range '{lo}-{hi}' is backwards")));
                }
            }
            ranges.push((lo, hi));
        }
        if ranges.is_empty() && !negated {
            return Err(self.error("empty character class"));
        }
        Ok(Atom::Class { negated, ranges })
    }

    /// The character of an escape after its backslash.
    fn escape(&mut self) -> Result<char, String> {
        let hex = |p: &mut Self, n: usize| -> Result<char, String> {
            let digits: String = p.rest().chars().take(n).collect();
            if digits.len() != n {
                return Err(p.error("short hex escape"));
            }
            let v = u32::from_str_radix(&digits, 16).map_err(|_| p.error("bad hex escape"))?;
            p.pos += n;
            char::from_u32(v).ok_or_else(|| p.error("escape is not a character"))
        };
        match self.bump() {
            Some('n') => Ok('\n'),
            Some('r') => Ok('\r'),
            Some('t') => Ok('\t'),
            Some('x') => hex(self, 2),
            Some('u') => hex(self, 4),
            Some('U') => hex(self, 8),
            Some(c @ ('\\' | '"' | '[' | ']' | '-' | '^' | '/')) => Ok(c),
            Some(c) => Err(self.error(&format!("unknown escape '\\{c}'"))),
            None => Err(self.error("escape at the end")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_alternatives_and_repetitions_translate() {
        let lark = gbnf_to_lark(
            "root ::= answer (\", \" answer){0,2}\n\
             # a comment\n\
             answer ::= \"yes\" | \"no\"\n\
             \x20 | [0-9]+ \".\"?\n",
        )
        .unwrap();
        assert_eq!(
            lark,
            "start: g_answer (\", \" g_answer){0,2}\n\
             g_answer: \"yes\" | \"no\" | /[0-9]/+ \".\"?\n"
        );
    }

    #[test]
    fn empty_alternatives_become_optional_and_classes_are_escaped() {
        let lark = gbnf_to_lark("root ::= ws [^\"\\\\\\n] .\nws ::= | [ \\t] ws\n").unwrap();
        assert_eq!(
            lark,
            "start: g_ws /[^\\x{22}\\x{5c}\\x{a}]/ /(?s:.)/\n\
             g_ws: (/[\\x{20}\\x{9}]/ g_ws)?\n"
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (grammar, says) in [
            ("answer ::= \"x\"", "no 'root'"),
            ("root ::= missing", "'missing' is used but not defined"),
            ("root ::= \"open", "unterminated string"),
            ("root ::= [a-", "unterminated character class"),
            ("root = \"x\"", "expected '::='"),
            ("root ::= \"x\"{3,1}", "below the minimum"),
            ("root ::= \"a\"\nroot ::= \"b\"", "defined twice"),
        ] {
            let err = gbnf_to_lark(grammar).unwrap_err();
            assert!(err.contains(says), "{grammar:?}: {err}");
        }
    }
}
