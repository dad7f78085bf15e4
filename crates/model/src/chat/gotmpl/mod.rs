//! Go `text/template` chat templates, as Ollama renders them (its `template`
//! package: Modelfile `TEMPLATE`s and the template layers of registry
//! models).
//!
//! The language is Go's: `{{ }}` actions with `{{-` / `-}}` trimming,
//! comments, pipelines, variables, `if` / `range` / `with` / `define` /
//! `template` / `block`, and the builtin functions, over Ollama's data
//! ([`data`]). Ollama's own rules are kept:
//!
//! - a template that names neither `.Messages` nor `.Response` gets a
//!   `{{ .Response }}` appended;
//! - a template that names `.Messages` is rendered once with `.System`
//!   (every system message joined), `.Messages` (runs of one role merged),
//!   `.Tools` and the thinking flags;
//! - any other ("legacy") template is rendered once per user turn with
//!   `.System`, `.Prompt` and `.Response`, and the last render stops at its
//!   `{{ .Response }}`, so the prompt ends where the model's answer begins.
//!
//! Differences from Go, on purpose: a nil value prints nothing (Go prints
//! `<no value>`); `eq` compares an integer with a float by value (Go refuses);
//! a tool's `.Function` and `.Function.Parameters` print as JSON, as Ollama's
//! `api` types do; a legacy template's last render keeps its named templates
//! and functions. Renders are bounded ([`exec`]) and so is nesting
//! ([`parse::MAX_NESTING`]), so no template can overflow the stack or run
//! without end.

mod data;
mod exec;
mod funcs;
mod lex;
mod parse;
mod printf;
mod value;

use std::collections::BTreeSet;

use super::{ChatRequest, Clock};
use funcs::Env;
use parse::{Arg, Branch, Cmd, Node, Pipe, Templates};
use value::{ListKind, Value};

/// A parsed Go chat template.
pub(crate) struct GoTemplate {
    templates: Templates,
    /// Whether the template names `.Messages` (else it is rendered per turn).
    uses_messages: bool,
    /// The main body up to its first `{{ .Response }}`, for the last turn of
    /// a legacy template.
    legacy_tail: Vec<Node>,
    env: Env,
}

impl GoTemplate {
    /// Parses `source`; the error names the line.
    pub(crate) fn parse(source: &str, clock: Clock) -> Result<Self, String> {
        let mut templates = parse::parse(source, &funcs::is_func)?;
        let vars = identifiers(&templates);
        let uses_messages = vars.contains("messages");
        if !uses_messages && !vars.contains("response") {
            templates.main.push(Node::Action(response_pipe()));
        }
        let legacy_tail = Cutter::default().list(&templates.main);
        Ok(GoTemplate {
            templates,
            uses_messages,
            legacy_tail,
            env: Env { clock },
        })
    }

    /// Renders the conversation in `request`.
    pub(crate) fn render(&self, request: &ChatRequest) -> Result<String, String> {
        let (system, messages) = data::collate(data::messages(&request.messages));
        let think = data::think(&request.extra);
        let think_vars = |vars: &mut Vec<(String, Value)>| {
            vars.push(("Think".into(), Value::Bool(think.think)));
            vars.push(("ThinkLevel".into(), Value::str(&think.level)));
            vars.push(("IsThinkSet".into(), Value::Bool(think.is_set)));
        };
        if self.uses_messages {
            let mut vars = vec![
                ("System".into(), Value::str(&system)),
                (
                    "Messages".into(),
                    Value::list_or_nil(
                        messages.iter().map(data::message_value).collect(),
                        ListKind::Plain,
                    ),
                ),
                (
                    "Tools".into(),
                    request.tools.as_deref().map_or_else(
                        || Value::list_or_nil(Vec::new(), ListKind::Json),
                        data::tools_value,
                    ),
                ),
                ("Response".into(), Value::str("")),
            ];
            think_vars(&mut vars);
            let mut exec = exec::Exec::new(&self.templates, &self.env, String::new());
            exec.run(&self.templates.main, &Value::sorted_map(vars, false))?;
            return Ok(exec.out);
        }
        // Fill-in-the-middle: the text after the insertion point (Ollama's
        // `suffix`), for templates with `.Suffix`.
        let suffix = request
            .extra
            .get("suffix")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let turn = |system: &str, prompt: &str, response: &str| {
            let mut vars = vec![
                ("System".into(), Value::str(system)),
                ("Prompt".into(), Value::str(prompt)),
                ("Response".into(), Value::str(response)),
                ("Suffix".into(), Value::str(suffix)),
            ];
            think_vars(&mut vars);
            Value::sorted_map(vars, false)
        };
        let mut out = String::new();
        let (mut system, mut prompt, mut response) = (String::new(), String::new(), String::new());
        for m in &messages {
            let flush = match m.role.as_str() {
                "system" => !prompt.is_empty() || !response.is_empty(),
                "user" => !response.is_empty(),
                _ => false,
            };
            if flush {
                let mut exec = exec::Exec::new(&self.templates, &self.env, out);
                exec.run(&self.templates.main, &turn(&system, &prompt, &response))?;
                out = exec.out;
                system.clear();
                prompt.clear();
                response.clear();
            }
            match m.role.as_str() {
                "system" => system = m.content.clone(),
                "user" => prompt = m.content.clone(),
                "assistant" => response = m.content.clone(),
                _ => {}
            }
        }
        let mut exec = exec::Exec::new(&self.templates, &self.env, out);
        exec.run(&self.legacy_tail, &turn(&system, &prompt, &response))?;
        Ok(exec.out)
    }
}

/// `{{ .Response }}`.
fn response_pipe() -> Pipe {
    Pipe {
        decl: Vec::new(),
        assign: false,
        cmds: vec![Cmd {
            args: vec![Arg::Field(vec!["Response".into()])],
        }],
        line: 0,
    }
}

/// The lower-cased field and variable names the template's top-level nodes
/// use, as Ollama's `Template.Vars` collects them (through pipelines and
/// control bodies, not through `(pipeline).Field` chains).
fn identifiers(templates: &Templates) -> BTreeSet<String> {
    fn pipe(p: &Pipe, out: &mut BTreeSet<String>) {
        for cmd in &p.cmds {
            for arg in &cmd.args {
                match arg {
                    Arg::Field(names) => out.extend(names.iter().map(|n| n.to_lowercase())),
                    Arg::Var(name, names) => {
                        out.insert(name.to_lowercase());
                        out.extend(names.iter().map(|n| n.to_lowercase()));
                    }
                    Arg::Pipe(p) => pipe(p, out),
                    _ => {}
                }
            }
        }
    }
    fn nodes(list: &[Node], out: &mut BTreeSet<String>) {
        for n in list {
            match n {
                Node::Action(p) => pipe(p, out),
                Node::If(b) | Node::With(b) | Node::Range(b) => {
                    pipe(&b.pipe, out);
                    nodes(&b.list, out);
                    if let Some(e) = &b.else_list {
                        nodes(e, out);
                    }
                }
                Node::Template { pipe: Some(p), .. } => pipe(p, out),
                _ => {}
            }
        }
    }
    let mut out = BTreeSet::new();
    nodes(&templates.main, &mut out);
    for body in templates.defined.values() {
        nodes(body, &mut out);
    }
    out
}

/// Copies a body up to and including its first `.Response` field, dropping
/// everything after it (Ollama's `deleteNode`): a control structure's
/// condition is not searched, only action pipelines.
#[derive(Default)]
struct Cutter {
    cut: bool,
}

impl Cutter {
    fn list(&mut self, nodes: &[Node]) -> Vec<Node> {
        nodes.iter().filter_map(|n| self.node(n)).collect()
    }

    fn node(&mut self, node: &Node) -> Option<Node> {
        if self.cut {
            return None;
        }
        let branch = |c: &mut Self, b: &Branch| {
            let list = c.list(&b.list);
            let else_list = match &b.else_list {
                Some(e) if !c.cut => Some(c.list(e)),
                _ => None,
            };
            Box::new(Branch {
                pipe: b.pipe.clone(),
                list,
                else_list,
            })
        };
        Some(match node {
            Node::If(b) => Node::If(branch(self, b)),
            Node::With(b) => Node::With(branch(self, b)),
            Node::Range(b) => Node::Range(branch(self, b)),
            Node::Action(p) => Node::Action(self.pipe(p)?),
            other => other.clone(),
        })
    }

    fn pipe(&mut self, p: &Pipe) -> Option<Pipe> {
        let mut cmds = Vec::new();
        for cmd in &p.cmds {
            let args: Vec<Arg> = cmd.args.iter().filter_map(|a| self.arg(a)).collect();
            if args.is_empty() {
                return None;
            }
            cmds.push(Cmd { args });
        }
        Some(Pipe { cmds, ..p.clone() })
    }

    fn arg(&mut self, arg: &Arg) -> Option<Arg> {
        if self.cut {
            return None;
        }
        match arg {
            Arg::Field(names) if names.iter().any(|n| n == "Response") => {
                self.cut = true;
                Some(arg.clone())
            }
            Arg::Pipe(p) => self.pipe(p).map(|p| Arg::Pipe(Box::new(p))),
            other => Some(other.clone()),
        }
    }
}

#[cfg(test)]
mod tests;
