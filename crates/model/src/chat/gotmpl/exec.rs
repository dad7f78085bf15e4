//! The evaluator: walks a parsed template over a [`Value`], as Go's
//! `text/template` executes it (variable scopes, `range` over slices, maps
//! and integers with `break` / `continue`, `with`, named templates), with
//! bounds on output size, template call depth and steps so that no template
//! runs away.

use super::funcs::{self, Env};
use super::parse::{Arg, Branch, Cmd, Node, Pipe, Templates};
use super::value::Value;

/// The largest output a render may produce.
pub(crate) const MAX_OUTPUT: usize = 32 << 20;
/// The deepest nesting of bodies and template calls while executing.
pub(crate) const MAX_DEPTH: usize = 200;
/// The most nodes and loop iterations one render may execute.
pub(crate) const MAX_STEPS: u64 = 20_000_000;

/// How a body ended.
enum Flow {
    Normal,
    Break,
    Continue,
}

/// One execution of a template set.
pub(crate) struct Exec<'t> {
    templates: &'t Templates,
    env: &'t Env,
    /// Variables in scope, innermost last.
    vars: Vec<(String, Value)>,
    depth: usize,
    steps: u64,
    /// The rendered text.
    pub out: String,
}

impl<'t> Exec<'t> {
    /// An execution writing to `out` (renders may share one buffer).
    pub fn new(templates: &'t Templates, env: &'t Env, out: String) -> Self {
        Exec {
            templates,
            env,
            vars: Vec::new(),
            depth: 0,
            steps: 0,
            out,
        }
    }

    /// Runs `nodes` with `data` as dot and `$`.
    pub fn run(&mut self, nodes: &[Node], data: &Value) -> Result<(), String> {
        self.vars.clear();
        self.vars.push(("$".into(), data.clone()));
        self.walk(nodes, data)?;
        Ok(())
    }

    fn step(&mut self) -> Result<(), String> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(format!("template ran more than {MAX_STEPS} steps"));
        }
        if self.out.len() > MAX_OUTPUT {
            return Err(format!("template output exceeds {} MiB", MAX_OUTPUT >> 20));
        }
        Ok(())
    }

    fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("template nesting exceeds {MAX_DEPTH} levels"));
        }
        let mark = self.vars.len();
        let mut flow = Flow::Normal;
        for node in nodes {
            self.step()?;
            flow = self.node(node, dot)?;
            if !matches!(flow, Flow::Normal) {
                break;
            }
        }
        self.vars.truncate(mark);
        self.depth -= 1;
        Ok(flow)
    }

    fn node(&mut self, node: &Node, dot: &Value) -> Result<Flow, String> {
        match node {
            Node::Text(t) => self.out.push_str(t),
            Node::Action(pipe) => {
                let v = self.pipe(pipe, dot)?;
                if pipe.decl.is_empty() {
                    v.write_action(&mut self.out);
                }
            }
            Node::If(b) | Node::With(b) => {
                let mark = self.vars.len();
                let v = self.pipe(&b.pipe, dot)?;
                let flow = if v.truth() {
                    let inner = if matches!(node, Node::With(_)) {
                        &v
                    } else {
                        dot
                    };
                    self.walk(&b.list, inner)?
                } else if let Some(e) = &b.else_list {
                    self.walk(e, dot)?
                } else {
                    Flow::Normal
                };
                self.vars.truncate(mark);
                return Ok(flow);
            }
            Node::Range(b) => self.range(b, dot)?,
            Node::Template { name, pipe, line } => {
                let Some(body) = self.templates.defined.get(name) else {
                    return Err(format!("line {line}: no such template {name:?}"));
                };
                let v = match pipe {
                    Some(p) => self.pipe(p, dot)?,
                    None => Value::Nil,
                };
                let saved = std::mem::replace(&mut self.vars, vec![("$".into(), v.clone())]);
                let result = self.walk(body, &v);
                self.vars = saved;
                result?;
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn range(&mut self, b: &Branch, dot: &Value) -> Result<(), String> {
        let mark = self.vars.len();
        let line = b.pipe.line;
        // The declared variables are set per element, not to the pipeline.
        let decl = &b.pipe.decl;
        let v = self.commands(&b.pipe, dot)?;
        let len = match &v {
            Value::List(l) => l.items.len(),
            Value::Map(m) => m.entries.len(),
            Value::Int(n) => {
                if decl.len() > 1 {
                    return Err(format!(
                        "line {line}: can't use two variables ranging over an integer"
                    ));
                }
                usize::try_from(*n).unwrap_or(0)
            }
            Value::Nil => 0,
            other => {
                return Err(format!(
                    "line {line}: range can't iterate over {}",
                    other.to_v()
                ));
            }
        };
        if len == 0 {
            if let Some(e) = &b.else_list {
                self.walk(e, dot)?;
            }
            return Ok(());
        }
        for i in 0..len {
            self.step()?;
            let Some((key, elem)) = nth(&v, i) else {
                break;
            };
            match decl.as_slice() {
                [v] => self.vars.push((v.clone(), elem.clone())),
                [k, v] => {
                    self.vars.push((k.clone(), key));
                    self.vars.push((v.clone(), elem.clone()));
                }
                _ => {}
            }
            let flow = self.walk(&b.list, &elem)?;
            self.vars.truncate(mark);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        Ok(())
    }

    /// The value of a pipeline's commands, without its declarations.
    fn commands(&mut self, pipe: &Pipe, dot: &Value) -> Result<Value, String> {
        let mut value = None;
        for cmd in &pipe.cmds {
            value = Some(self.cmd(cmd, dot, value, pipe.line)?);
        }
        Ok(value.unwrap_or(Value::Nil))
    }

    /// A pipeline's value, declared or assigned to its variables.
    fn pipe(&mut self, pipe: &Pipe, dot: &Value) -> Result<Value, String> {
        let value = self.commands(pipe, dot)?;
        for name in &pipe.decl {
            if pipe.assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = value.clone(),
                    None => return Err(format!("line {}: undefined variable {name:?}", pipe.line)),
                }
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn cmd(
        &mut self,
        cmd: &Cmd,
        dot: &Value,
        last: Option<Value>,
        line: usize,
    ) -> Result<Value, String> {
        let first = &cmd.args[0];
        if let Arg::Func(name) = first {
            return self
                .call(name, &cmd.args[1..], dot, last)
                .map_err(|e| format!("line {line}: error calling {name}: {e}"));
        }
        if cmd.args.len() > 1 || last.is_some() {
            return Err(format!("line {line}: can't give argument to non-function"));
        }
        self.arg(first, dot)
            .map_err(|e| format!("line {line}: {e}"))
    }

    fn call(
        &mut self,
        name: &str,
        args: &[Arg],
        dot: &Value,
        last: Option<Value>,
    ) -> Result<Value, String> {
        // `and` / `or` stop at the first argument that decides them.
        if name == "and" || name == "or" {
            let n = args.len() + usize::from(last.is_some());
            if n == 0 {
                return Err("wrong number of args: want at least 1 got 0".into());
            }
            let mut v = Value::Nil;
            for a in args {
                v = self.arg(a, dot)?;
                if v.truth() != (name == "and") {
                    return Ok(v);
                }
            }
            return Ok(last.unwrap_or(v));
        }
        let mut values = Vec::with_capacity(args.len() + 1);
        for a in args {
            values.push(self.arg(a, dot)?);
        }
        values.extend(last);
        // Strings built by doubling (`$x = print $x $x`) grow outside the
        // output; bound what one call may join.
        let text: usize = values
            .iter()
            .map(|v| match v {
                Value::Str(s) => s.len(),
                _ => 0,
            })
            .sum();
        if text > MAX_OUTPUT {
            return Err(format!("arguments exceed {} MiB", MAX_OUTPUT >> 20));
        }
        funcs::call(name, values, self.env)
    }

    fn arg(&mut self, arg: &Arg, dot: &Value) -> Result<Value, String> {
        Ok(match arg {
            Arg::Dot => dot.clone(),
            Arg::Nil => Value::Nil,
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Int(i) => Value::Int(*i),
            Arg::Float(f) => Value::Float(*f),
            Arg::Str(s) => Value::str(s),
            Arg::Func(name) => self.call(name, &[], dot, None)?,
            Arg::Field(names) => fields(dot.clone(), names)?,
            Arg::Var(name, names) => {
                let Some((_, v)) = self.vars.iter().rev().find(|(n, _)| n == name) else {
                    return Err(format!("undefined variable {name:?}"));
                };
                fields(v.clone(), names)?
            }
            Arg::Pipe(p) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(format!("template nesting exceeds {MAX_DEPTH} levels"));
                }
                let v = self.pipe(p, dot);
                self.depth -= 1;
                v?
            }
            Arg::Chain(inner, names) => {
                let v = self.arg(inner, dot)?;
                fields(v, names)?
            }
        })
    }
}

/// The `i`th key (index) and element of a ranged value.
fn nth(v: &Value, i: usize) -> Option<(Value, Value)> {
    let key = Value::Int(i64::try_from(i).ok()?);
    match v {
        Value::List(l) => Some((key, l.items.get(i)?.clone())),
        Value::Map(m) => m.entries.get(i).map(|(k, x)| (Value::str(k), x.clone())),
        Value::Int(_) => Some((key.clone(), key)),
        _ => None,
    }
}

/// `value.A.B...`: struct fields (unknown ones are an error, as Go's), map
/// keys (missing ones are nil).
fn fields(mut value: Value, names: &[String]) -> Result<Value, String> {
    for name in names {
        value = match &value {
            Value::Struct(s) => match s.fields.iter().find(|f| f.name == name) {
                Some(f) => f.value.clone(),
                None => {
                    return Err(format!(
                        "can't evaluate field {name} in type {}",
                        s.type_name
                    ));
                }
            },
            Value::Map(m) => m
                .entries
                .iter()
                .find(|(k, _)| k == name)
                .map_or(Value::Nil, |(_, v)| v.clone()),
            Value::Nil => return Err(format!("nil pointer evaluating interface {{}}.{name}")),
            other => {
                return Err(format!(
                    "can't evaluate field {name} in type {}",
                    other.type_name()
                ));
            }
        };
    }
    Ok(value)
}
