//! The lexer of Go's `text/template`: text between `{{ }}` actions, the
//! `{{- ` / ` -}}` trim markers (which remove the whitespace next to them),
//! `{{/* comments */}}`, and the tokens inside an action.

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// Text outside actions (already trimmed).
    Text(String),
    /// `{{`.
    Open,
    /// `}}`.
    Close,
    /// A keyword (`if`, `else`, `end`, `range`, `with`, `define`, `template`,
    /// `block`, `break`, `continue`) or a function name.
    Ident(String),
    /// `.Name`.
    Field(String),
    /// `.` alone.
    Dot,
    /// `$` or `$name`.
    Variable(String),
    /// A quoted or raw string, unescaped.
    Str(String),
    /// An integer constant (also a character constant).
    Int(i64),
    /// A floating-point constant.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `nil`.
    Nil,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `|`.
    Pipe,
    /// `:=`.
    Declare,
    /// `=`.
    Assign,
    /// `,`.
    Comma,
}

/// A token with where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    /// The token.
    pub tok: Tok,
    /// 1-based line.
    pub line: usize,
    /// Whether whitespace precedes it inside an action (it starts a new
    /// argument rather than continuing a field chain).
    pub space_before: bool,
}

/// Go's `isSpace`: the whitespace trim markers remove.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Splits `src` into tokens; an error names the line and the problem.
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, String> {
    let mut lexer = Lexer {
        src,
        pos: 0,
        line: 1,
        out: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.out)
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    line: usize,
    out: Vec<Token>,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn err(&self, msg: impl std::fmt::Display) -> String {
        format!("line {}: {msg}", self.line)
    }

    fn push(&mut self, tok: Tok, space_before: bool) {
        self.out.push(Token {
            tok,
            line: self.line,
            space_before,
        });
    }

    /// Moves past `n` bytes, counting newlines.
    fn advance(&mut self, n: usize) {
        self.line += self.src[self.pos..self.pos + n].matches('\n').count();
        self.pos += n;
    }

    fn run(&mut self) -> Result<(), String> {
        let mut trim_next = false;
        loop {
            let rest = self.rest();
            let end = rest.find("{{").unwrap_or(rest.len());
            let mut text = &rest[..end];
            if trim_next {
                text = text.trim_start_matches(is_space);
            }
            let at_action = end < rest.len();
            let trim_left = at_action
                && rest[end + 2..].starts_with('-')
                && rest[end + 3..].starts_with(is_space);
            if trim_left {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                let text = text.to_owned();
                self.push(Tok::Text(text), false);
            }
            self.advance(end);
            if !at_action {
                return Ok(());
            }
            self.advance(if trim_left { 4 } else { 2 });
            trim_next = self.action()?;
        }
    }

    /// Whether the action ends here: `}}`, or whitespace then `-}}`. Returns
    /// the length of the closing and whether it trims.
    fn close_here(&self) -> Option<(usize, bool)> {
        let rest = self.rest();
        if rest.starts_with("}}") {
            return Some((2, false));
        }
        let mut chars = rest.chars();
        match chars.next() {
            Some(c) if is_space(c) && chars.as_str().starts_with("-}}") => {
                Some((c.len_utf8() + 3, true))
            }
            _ => None,
        }
    }

    /// Lexes one action after its `{{`; returns whether it trims the text after.
    fn action(&mut self) -> Result<bool, String> {
        if self.rest().starts_with("/*") {
            let Some(end) = self.rest().find("*/") else {
                return Err(self.err("unclosed comment"));
            };
            self.advance(end + 2);
            return match self.close_here() {
                Some((n, trim)) => {
                    self.advance(n);
                    Ok(trim)
                }
                None => Err(self.err("comment ends before closing delimiter")),
            };
        }
        self.push(Tok::Open, false);
        let mut space_before = false;
        let mut parens = 0usize;
        loop {
            if let Some((n, trim)) = self.close_here() {
                if parens > 0 {
                    return Err(self.err("unclosed left paren"));
                }
                self.advance(n);
                self.push(Tok::Close, false);
                return Ok(trim);
            }
            let Some(c) = self.rest().chars().next() else {
                return Err(self.err("unclosed action"));
            };
            if is_space(c) {
                self.advance(1);
                space_before = true;
                continue;
            }
            let tok = match c {
                '(' => {
                    parens += 1;
                    self.advance(1);
                    Tok::LParen
                }
                ')' => {
                    if parens == 0 {
                        return Err(self.err("unexpected right paren"));
                    }
                    parens -= 1;
                    self.advance(1);
                    Tok::RParen
                }
                '|' => {
                    self.advance(1);
                    Tok::Pipe
                }
                ',' => {
                    self.advance(1);
                    Tok::Comma
                }
                '=' => {
                    self.advance(1);
                    Tok::Assign
                }
                ':' if self.rest().starts_with(":=") => {
                    self.advance(2);
                    Tok::Declare
                }
                '"' => self.quoted()?,
                '`' => {
                    let Some(end) = self.rest()[1..].find('`') else {
                        return Err(self.err("unterminated raw quoted string"));
                    };
                    let s = self.rest()[1..end + 1].to_owned();
                    self.advance(end + 2);
                    Tok::Str(s)
                }
                '\'' => self.char_constant()?,
                '$' => {
                    let n = self.word_len(1);
                    let name = self.rest()[..n].to_owned();
                    self.advance(n);
                    Tok::Variable(name)
                }
                '.' => {
                    let next = self.rest()[1..].chars().next();
                    match next {
                        Some(d) if d.is_ascii_digit() => self.number()?,
                        Some(a) if is_alnum(a) => {
                            let n = self.word_len(1);
                            let name = self.rest()[1..n].to_owned();
                            self.advance(n);
                            Tok::Field(name)
                        }
                        _ => {
                            self.advance(1);
                            Tok::Dot
                        }
                    }
                }
                '+' | '-' | '0'..='9' => self.number()?,
                c if is_alnum(c) => {
                    let n = self.word_len(0);
                    let word = self.rest()[..n].to_owned();
                    self.advance(n);
                    match word.as_str() {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        _ => Tok::Ident(word),
                    }
                }
                other => return Err(self.err(format!("unexpected {other:?} in command"))),
            };
            self.push(tok, space_before);
            space_before = false;
        }
    }

    /// The length of an identifier starting `skip` bytes in.
    fn word_len(&self, skip: usize) -> usize {
        let rest = &self.rest()[skip..];
        skip + rest.find(|c: char| !is_alnum(c)).unwrap_or(rest.len())
    }

    fn number(&mut self) -> Result<Tok, String> {
        let rest = self.rest();
        let mut n = 0;
        let bytes = rest.as_bytes();
        if matches!(bytes.first(), Some(b'+' | b'-')) {
            n = 1;
        }
        while n < bytes.len() {
            let b = bytes[n];
            let exp_sign = matches!(b, b'+' | b'-') && matches!(bytes[n - 1], b'e' | b'E');
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || exp_sign {
                n += 1;
            } else {
                break;
            }
        }
        let text = &rest[..n];
        let tok =
            parse_number(text).ok_or_else(|| self.err(format!("bad number syntax: {text:?}")))?;
        self.advance(n);
        Ok(tok)
    }

    fn quoted(&mut self) -> Result<Tok, String> {
        let mut out = String::new();
        let mut chars = self.rest()[1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.advance(i + 2);
                    return Ok(Tok::Str(out));
                }
                '\n' => break,
                '\\' => match unescape(&mut chars) {
                    Some(c) => out.push(c),
                    None => return Err(self.err("bad escape in quoted string")),
                },
                c => out.push(c),
            }
        }
        Err(self.err("unterminated quoted string"))
    }

    fn char_constant(&mut self) -> Result<Tok, String> {
        let mut chars = self.rest()[1..].char_indices();
        let c = match chars.next() {
            Some((_, '\\')) => unescape(&mut chars),
            Some((_, c)) if c != '\'' && c != '\n' => Some(c),
            _ => None,
        };
        match (c, chars.next()) {
            (Some(c), Some((i, '\''))) => {
                self.advance(i + 2);
                Ok(Tok::Int(c as i64))
            }
            _ => Err(self.err("bad character constant")),
        }
    }
}

/// One escape after a backslash, as Go's `strconv.Unquote` reads it.
fn unescape(chars: &mut std::str::CharIndices<'_>) -> Option<char> {
    let (_, c) = chars.next()?;
    let hex = |chars: &mut std::str::CharIndices<'_>, n: usize| -> Option<char> {
        let mut v = 0u32;
        for _ in 0..n {
            v = v * 16 + chars.next()?.1.to_digit(16)?;
        }
        char::from_u32(v)
    };
    Some(match c {
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'v' => '\u{b}',
        '\\' => '\\',
        '"' => '"',
        '\'' => '\'',
        'x' => hex(chars, 2)?,
        'u' => hex(chars, 4)?,
        'U' => hex(chars, 8)?,
        '0'..='7' => {
            let mut v = c.to_digit(8)?;
            for _ in 0..2 {
                v = v * 8 + chars.next()?.1.to_digit(8)?;
            }
            char::from_u32(v)?
        }
        _ => return None,
    })
}

/// A Go number literal: decimal, `0x`, `0o`, `0b` integers (with `_`
/// separators) or a float.
fn parse_number(text: &str) -> Option<Tok> {
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let clean = body.replace('_', "");
    let lower = clean.to_ascii_lowercase();
    let radix = [("0x", 16), ("0o", 8), ("0b", 2)]
        .into_iter()
        .find(|(p, _)| lower.starts_with(p));
    let int = match radix {
        Some((p, r)) => i64::from_str_radix(&lower[p.len()..], r).ok(),
        None if lower.len() > 1
            && lower.starts_with('0')
            && lower.bytes().all(|b| b.is_ascii_digit()) =>
        {
            i64::from_str_radix(&lower[1..], 8).ok()
        }
        None => lower.parse::<i64>().ok(),
    };
    if let Some(i) = int {
        return Some(Tok::Int(if neg { -i } else { i }));
    }
    if radix.is_some() || !lower.bytes().next()?.is_ascii_digit() && !lower.starts_with('.') {
        return None;
    }
    let f: f64 = lower.parse().ok()?;
    Some(Tok::Float(if neg { -f } else { f }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        lex(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn trim_markers_remove_adjacent_whitespace() {
        assert_eq!(
            toks("a \n {{- .X -}} \n b"),
            vec![
                Tok::Text("a".into()),
                Tok::Open,
                Tok::Field("X".into()),
                Tok::Close,
                Tok::Text("b".into())
            ]
        );
    }

    #[test]
    fn minus_number_is_not_a_trim_marker() {
        assert_eq!(
            toks("a {{-3}}"),
            vec![Tok::Text("a ".into()), Tok::Open, Tok::Int(-3), Tok::Close]
        );
    }

    #[test]
    fn comments_vanish_and_trim() {
        assert_eq!(
            toks("a  {{- /* note */ -}}\n b"),
            vec![Tok::Text("a".into()), Tok::Text("b".into())]
        );
        assert!(lex("{{/* open").is_err());
        assert!(lex("{{/* x */ .X }}").is_err());
    }

    #[test]
    fn action_tokens() {
        assert_eq!(
            toks(r#"{{ $i, $v := .A.B | printf "%d\n" 0x1F 1.5 'a' `r` nil true }}"#),
            vec![
                Tok::Open,
                Tok::Variable("$i".into()),
                Tok::Comma,
                Tok::Variable("$v".into()),
                Tok::Declare,
                Tok::Field("A".into()),
                Tok::Field("B".into()),
                Tok::Pipe,
                Tok::Ident("printf".into()),
                Tok::Str("%d\n".into()),
                Tok::Int(31),
                Tok::Float(1.5),
                Tok::Int(97),
                Tok::Str("r".into()),
                Tok::Nil,
                Tok::Bool(true),
                Tok::Close,
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let err = lex("a\n{{ \"open }}").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        assert!(lex("{{ .X ").is_err());
        assert!(lex("{{ ) }}").is_err());
        assert!(lex("{{ ( }}").is_err());
    }
}
