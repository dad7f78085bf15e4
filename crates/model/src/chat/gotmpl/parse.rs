//! The parser: tokens into a tree of nodes, as Go's `text/template/parse`
//! builds it, with its checks (undefined variables and functions, `break`
//! outside `range`, unbalanced `end`) and a bound on nesting depth.

use std::collections::HashMap;

use super::lex::{Tok, Token, lex};

/// Deepest nesting of control structures and parentheses a template may use.
pub(crate) const MAX_NESTING: usize = 100;

/// One node of a template body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// Literal text.
    Text(String),
    /// `{{ pipeline }}`: prints the value unless the pipeline declares.
    Action(Pipe),
    /// `{{ if }}`.
    If(Box<Branch>),
    /// `{{ with }}`.
    With(Box<Branch>),
    /// `{{ range }}`.
    Range(Box<Branch>),
    /// `{{ template "name" pipeline }}`.
    Template {
        /// The template invoked.
        name: String,
        /// Its dot (nil when absent).
        pipe: Option<Pipe>,
        /// Where it is.
        line: usize,
    },
    /// `{{ break }}`.
    Break,
    /// `{{ continue }}`.
    Continue,
}

/// A control structure's pipeline and bodies.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Branch {
    /// The condition or value.
    pub pipe: Pipe,
    /// The body.
    pub list: Vec<Node>,
    /// The `{{ else }}` body.
    pub else_list: Option<Vec<Node>>,
}

/// A pipeline: optional variable declarations, then commands joined by `|`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pipe {
    /// Declared or assigned variables (`$i, $v :=`).
    pub decl: Vec<String>,
    /// `=` rather than `:=`.
    pub assign: bool,
    /// The commands; each one's value is the last argument of the next.
    pub cmds: Vec<Cmd>,
    /// Where it is.
    pub line: usize,
}

/// One command: a function and its arguments, or a single operand.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cmd {
    /// The operands.
    pub args: Vec<Arg>,
}

/// One operand.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    /// `.`.
    Dot,
    /// `nil`.
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// An integer constant.
    Int(i64),
    /// A float constant.
    Float(f64),
    /// A string constant.
    Str(String),
    /// A function name.
    Func(String),
    /// `.A.B`: fields of dot.
    Field(Vec<String>),
    /// `$x.A.B`: a variable and fields of it.
    Var(String, Vec<String>),
    /// `( pipeline )`.
    Pipe(Box<Pipe>),
    /// `(pipeline).A.B`: fields of an operand.
    Chain(Box<Arg>, Vec<String>),
}

/// A parsed template set: the main body and the `define`d templates.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Templates {
    /// The main template's body.
    pub main: Vec<Node>,
    /// Named templates.
    pub defined: HashMap<String, Vec<Node>>,
}

/// Where a list stopped.
#[derive(Debug, PartialEq)]
enum Stop {
    Eof,
    End,
    Else,
}

/// Parses `src`; `is_func` says which function names exist.
pub(crate) fn parse(src: &str, is_func: &dyn Fn(&str) -> bool) -> Result<Templates, String> {
    let tokens = lex(src)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        vars: vec!["$".into()],
        depth: 0,
        range_depth: 0,
        is_func,
        templates: Templates::default(),
    };
    let (main, stop) = p.list(true)?;
    match stop {
        Stop::Eof => {}
        Stop::End => return Err(p.err("unexpected {{end}}")),
        Stop::Else => return Err(p.err("unexpected {{else}}")),
    }
    p.templates.main = main;
    Ok(p.templates)
}

struct Parser<'f> {
    tokens: Vec<Token>,
    pos: usize,
    /// Variables in scope, innermost last.
    vars: Vec<String>,
    depth: usize,
    range_depth: usize,
    is_func: &'f dyn Fn(&str) -> bool,
    templates: Templates,
}

impl Parser<'_> {
    fn line(&self) -> usize {
        self.tokens
            .get(self.pos.min(self.tokens.len().saturating_sub(1)))
            .map_or(1, |t| t.line)
    }

    fn err(&self, msg: impl std::fmt::Display) -> String {
        format!("line {}: {msg}", self.line())
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn next(&mut self) -> Result<Token, String> {
        let t = self
            .tokens
            .get(self.pos)
            .cloned()
            .ok_or_else(|| self.err("unexpected end of template"))?;
        self.pos += 1;
        Ok(t)
    }

    fn expect_close(&mut self, context: &str) -> Result<(), String> {
        match self.next()?.tok {
            Tok::Close => Ok(()),
            other => Err(self.err(format!("unexpected {other:?} in {context}"))),
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.err(format!("nested deeper than {MAX_NESTING} levels")));
        }
        Ok(())
    }

    /// Nodes up to `{{end}}`, `{{else}}` (left unconsumed after `else`) or
    /// the end of input (only allowed at the top).
    fn list(&mut self, top: bool) -> Result<(Vec<Node>, Stop), String> {
        let mut nodes = Vec::new();
        loop {
            let Some(tok) = self.peek().cloned() else {
                return if top {
                    Ok((nodes, Stop::Eof))
                } else {
                    Err(self.err("unexpected EOF: missing {{end}}"))
                };
            };
            self.pos += 1;
            match tok {
                Tok::Text(t) => nodes.push(Node::Text(t)),
                Tok::Open => {
                    let keyword = match self.peek() {
                        Some(Tok::Ident(k)) => k.clone(),
                        _ => String::new(),
                    };
                    match keyword.as_str() {
                        "end" => {
                            self.pos += 1;
                            self.expect_close("end")?;
                            return Ok((nodes, Stop::End));
                        }
                        "else" => {
                            self.pos += 1;
                            return Ok((nodes, Stop::Else));
                        }
                        "if" | "with" | "range" => {
                            self.pos += 1;
                            nodes.push(self.control(&keyword)?);
                        }
                        "break" | "continue" => {
                            self.pos += 1;
                            if self.range_depth == 0 {
                                return Err(
                                    self.err(format!("{{{{{keyword}}}}} outside {{{{range}}}}"))
                                );
                            }
                            self.expect_close(&keyword)?;
                            nodes.push(if keyword == "break" {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        "template" => {
                            self.pos += 1;
                            nodes.push(self.template_call("template")?);
                        }
                        "block" => {
                            self.pos += 1;
                            nodes.push(self.block()?);
                        }
                        "define" => {
                            self.pos += 1;
                            if !top || self.depth > 0 {
                                return Err(self.err("{{define}} must be at the top level"));
                            }
                            self.define()?;
                        }
                        _ => {
                            let pipe = self.pipeline("command", false)?;
                            self.expect_close("command")?;
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
                other => return Err(self.err(format!("unexpected {other:?}"))),
            }
        }
    }

    /// `if`, `with` or `range` after its keyword, through its `{{end}}`.
    fn control(&mut self, keyword: &str) -> Result<Node, String> {
        self.enter()?;
        let mark = self.vars.len();
        let pipe = self.pipeline(keyword, keyword == "range")?;
        self.expect_close(keyword)?;
        if keyword == "range" {
            self.range_depth += 1;
        }
        let (list, stop) = self.list(false)?;
        if keyword == "range" {
            self.range_depth -= 1;
        }
        let else_list = match stop {
            Stop::End => None,
            Stop::Else => {
                // `{{else if ...}}` / `{{else with ...}}` nest a control that
                // ends at this one's `{{end}}`.
                match self.peek() {
                    Some(Tok::Ident(k)) if keyword != "range" && k == keyword => {
                        let k = k.clone();
                        self.pos += 1;
                        Some(vec![self.control(&k)?])
                    }
                    _ => {
                        self.expect_close("else")?;
                        let (list, stop) = self.list(false)?;
                        if stop != Stop::End {
                            return Err(self.err("expected {{end}} after {{else}}"));
                        }
                        Some(list)
                    }
                }
            }
            Stop::Eof => return Err(self.err("unexpected EOF")),
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        let branch = Box::new(Branch {
            pipe,
            list,
            else_list,
        });
        Ok(match keyword {
            "if" => Node::If(branch),
            "with" => Node::With(branch),
            _ => Node::Range(branch),
        })
    }

    fn template_name(&mut self, context: &str) -> Result<String, String> {
        match self.next()?.tok {
            Tok::Str(name) => Ok(name),
            other => Err(self.err(format!(
                "unexpected {other:?} in {context}: expected a quoted name"
            ))),
        }
    }

    /// `{{template "name" [pipeline]}}` after its keyword.
    fn template_call(&mut self, context: &str) -> Result<Node, String> {
        let line = self.line();
        let name = self.template_name(context)?;
        let pipe = if self.peek() == Some(&Tok::Close) {
            None
        } else {
            Some(self.pipeline(context, false)?)
        };
        self.expect_close(context)?;
        Ok(Node::Template { name, pipe, line })
    }

    /// `{{block "name" pipeline}} body {{end}}`: defines and invokes.
    fn block(&mut self) -> Result<Node, String> {
        let line = self.line();
        let name = self.template_name("block")?;
        let pipe = self.pipeline("block", false)?;
        self.expect_close("block")?;
        let body = self.body_of(&name)?;
        self.templates.defined.insert(name.clone(), body);
        Ok(Node::Template {
            name,
            pipe: Some(pipe),
            line,
        })
    }

    fn define(&mut self) -> Result<(), String> {
        let name = self.template_name("define")?;
        self.expect_close("define")?;
        let body = self.body_of(&name)?;
        self.templates.defined.insert(name, body);
        Ok(())
    }

    /// A named template's body, with its own variable scope.
    fn body_of(&mut self, name: &str) -> Result<Vec<Node>, String> {
        self.enter()?;
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let saved_range = std::mem::replace(&mut self.range_depth, 0);
        let (body, stop) = self.list(false)?;
        if stop != Stop::End {
            return Err(self.err(format!("unexpected {{{{else}}}} in template {name:?}")));
        }
        self.vars = saved_vars;
        self.range_depth = saved_range;
        self.depth -= 1;
        Ok(body)
    }

    /// A pipeline up to (not including) `}}` or `)`.
    fn pipeline(&mut self, context: &str, two_vars: bool) -> Result<Pipe, String> {
        let line = self.line();
        let mut decl = Vec::new();
        let mut assign = false;
        if let Some(Tok::Variable(first)) = self.peek().cloned() {
            let after = self.tokens.get(self.pos + 1).map(|t| &t.tok);
            let second = match (after, self.tokens.get(self.pos + 2).map(|t| &t.tok)) {
                (Some(Tok::Comma), Some(Tok::Variable(v))) => Some(v.clone()),
                _ => None,
            };
            let op_at = if second.is_some() { 3 } else { 1 };
            match self.tokens.get(self.pos + op_at).map(|t| &t.tok) {
                Some(Tok::Declare) | Some(Tok::Assign) => {
                    assign = matches!(self.tokens[self.pos + op_at].tok, Tok::Assign);
                    if second.is_some() && (!two_vars || assign) {
                        return Err(self.err(format!("too many declarations in {context}")));
                    }
                    decl.push(first);
                    decl.extend(second);
                    self.pos += op_at + 1;
                    if assign {
                        if !self.vars.contains(&decl[0]) {
                            return Err(self.err(format!("undefined variable {:?}", decl[0])));
                        }
                    } else {
                        self.vars.extend(decl.iter().cloned());
                    }
                }
                _ => {}
            }
        }
        let mut cmds = Vec::new();
        loop {
            let cmd = self.command()?;
            if cmds.is_empty() {
                if cmd.args.len() == 1 && matches!(cmd.args[0], Arg::Nil) {
                    return Err(self.err("nil is not a command"));
                }
            } else if !matches!(
                cmd.args[0],
                Arg::Func(_) | Arg::Field(_) | Arg::Var(..) | Arg::Chain(..) | Arg::Pipe(_)
            ) {
                return Err(self.err(format!(
                    "non executable command in pipeline stage {}",
                    cmds.len() + 1
                )));
            }
            cmds.push(cmd);
            if self.peek() == Some(&Tok::Pipe) {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(Pipe {
            decl,
            assign,
            cmds,
            line,
        })
    }

    /// One command: operands up to `|`, `}}` or `)`.
    fn command(&mut self) -> Result<Cmd, String> {
        let mut args = Vec::new();
        while !matches!(
            self.peek(),
            Some(Tok::Pipe | Tok::Close | Tok::RParen) | None
        ) {
            args.push(self.operand()?);
        }
        if args.is_empty() {
            return Err(self.err("missing value for command"));
        }
        Ok(Cmd { args })
    }

    /// A term followed by any fields joined to it (`$x.A`, `(p).B`).
    fn operand(&mut self) -> Result<Arg, String> {
        let term = self.term()?;
        let mut fields = Vec::new();
        while let Some(Token {
            tok: Tok::Field(name),
            space_before: false,
            ..
        }) = self.tokens.get(self.pos)
        {
            fields.push(name.clone());
            self.pos += 1;
        }
        if fields.is_empty() {
            return Ok(term);
        }
        Ok(match term {
            Arg::Field(mut f) => {
                f.extend(fields);
                Arg::Field(f)
            }
            Arg::Var(name, mut f) => {
                f.extend(fields);
                Arg::Var(name, f)
            }
            Arg::Dot | Arg::Nil | Arg::Bool(_) | Arg::Int(_) | Arg::Float(_) | Arg::Str(_) => {
                return Err(self.err("unexpected field after a constant"));
            }
            other => Arg::Chain(Box::new(other), fields),
        })
    }

    fn term(&mut self) -> Result<Arg, String> {
        let tok = self.next()?.tok;
        Ok(match tok {
            Tok::Dot => Arg::Dot,
            Tok::Nil => Arg::Nil,
            Tok::Bool(b) => Arg::Bool(b),
            Tok::Int(i) => Arg::Int(i),
            Tok::Float(f) => Arg::Float(f),
            Tok::Str(s) => Arg::Str(s),
            Tok::Field(name) => Arg::Field(vec![name]),
            Tok::Variable(name) => {
                if !self.vars.contains(&name) {
                    return Err(self.err(format!("undefined variable {name:?}")));
                }
                Arg::Var(name, Vec::new())
            }
            Tok::Ident(name) => {
                if !(self.is_func)(&name) {
                    return Err(self.err(format!("function {name:?} not defined")));
                }
                Arg::Func(name)
            }
            Tok::LParen => {
                self.enter()?;
                let pipe = self.pipeline("parenthesized pipeline", false)?;
                match self.next()?.tok {
                    Tok::RParen => {}
                    other => return Err(self.err(format!("unexpected {other:?}: expected )"))),
                }
                self.depth -= 1;
                Arg::Pipe(Box::new(pipe))
            }
            other => return Err(self.err(format!("unexpected {other:?} in operand"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(src: &str) -> Templates {
        parse(src, &|f| f == "len" || f == "eq").unwrap()
    }

    fn parse_err(src: &str) -> String {
        parse(src, &|f| f == "len" || f == "eq").unwrap_err()
    }

    #[test]
    fn else_if_nests_in_the_else_list() {
        let t = parse_ok("{{ if .A }}a{{ else if .B }}b{{ else }}c{{ end }}");
        let Node::If(b) = &t.main[0] else {
            panic!("{t:?}")
        };
        let else_list = b.else_list.as_ref().unwrap();
        assert!(matches!(&else_list[0], Node::If(inner) if inner.else_list.is_some()));
    }

    #[test]
    fn chains_and_pipelines() {
        let t = parse_ok("{{ $x := (len .A).B | eq 1 }}{{ $x.C }}");
        let Node::Action(p) = &t.main[0] else {
            panic!()
        };
        assert_eq!(p.decl, vec!["$x".to_string()]);
        assert_eq!(p.cmds.len(), 2);
        assert!(matches!(&p.cmds[0].args[0], Arg::Chain(_, f) if f == &["B".to_string()]));
        assert!(
            matches!(&t.main[1], Node::Action(p) if p.cmds[0].args[0] == Arg::Var("$x".into(), vec!["C".into()]))
        );
    }

    #[test]
    fn define_and_block_register_templates() {
        let t = parse_ok(r#"{{ define "a" }}A{{ end }}{{ block "b" . }}B{{ end }}"#);
        assert_eq!(t.defined.len(), 2);
        assert!(matches!(&t.main[0], Node::Template { name, .. } if name == "b"));
    }

    #[test]
    fn errors() {
        assert!(parse_err("{{ $y }}").contains("undefined variable"));
        assert!(
            parse_err("{{ if .A }}{{ $v := 1 }}{{ end }}{{ $v }}").contains("undefined variable")
        );
        assert!(parse_err("{{ nope 1 }}").contains("not defined"));
        assert!(parse_err("{{ break }}").contains("outside"));
        assert!(parse_err("{{ if .A }}").contains("EOF"));
        assert!(parse_err("{{ end }}").contains("unexpected"));
        assert!(parse_err("{{ }}").contains("missing value"));
        assert!(parse_err("{{ .A | 1 }}").contains("non executable"));
        assert!(parse_err("{{ $a, $b := .X }}").contains("too many"));
        assert!(parse_err("{{ if .A }}{{ define \"x\" }}{{ end }}{{ end }}").contains("top level"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "{{ if .A }}".repeat(10_000);
        assert!(parse_err(&deep).contains("nested deeper"));
        let parens = format!("{{{{ {}.A{} }}}}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse_err(&parens).contains("nested deeper"));
    }
}
