//! `hearth run NAME` through a running server: the interactive chat's
//! [`Conversation`] over `/api/chat`, `/api/show` and `/api/ps`, so that its
//! commands behave as they do with the model loaded in this process.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use engine::{Options, Timings};
use serde_json::{Map, Value, json};

use super::repl::{Conversation, Exit, Info};
use super::{AnswerPrinter, CANCEL, GENERATING};
use crate::cli::client::Client;
use model::chat::Think;

/// The options whose values are whole numbers in a request.
const INTEGER_OPTIONS: &[&str] = &[
    "num_ctx",
    "num_predict",
    "top_k",
    "repeat_last_n",
    "seed",
    "num_keep",
    "num_thread",
];

/// A conversation with a model on a server.
pub(super) struct RemoteChat<'c> {
    client: &'c Client,
    model: String,
    /// The user and assistant messages so far.
    messages: Vec<Value>,
    /// The system message set here (`--system`, `/set system`); the server
    /// applies the model's own when there is none.
    system: Option<String>,
    /// The model's own system message.
    model_system: Option<String>,
    /// The request's `options`: the command line's, then `/set parameter`'s.
    options: Map<String, Value>,
    /// `--keepalive`: the requests' `keep_alive`.
    keep_alive: Option<Value>,
    /// `--format`: the requests' `format`.
    format: Option<Value>,
    /// `--think`: the requests' `think` (`None`: the model's default).
    think: Option<Value>,
    /// `--hidethinking`.
    hide_thinking: bool,
}

/// Why a streamed answer stopped early: Ctrl-C.
#[derive(Debug)]
struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

impl<'c> RemoteChat<'c> {
    /// Loads `model` on the server (so a bad name fails before any input is
    /// read) and starts an empty conversation.
    pub(super) fn open(
        client: &'c Client,
        model: &str,
        system: Option<String>,
        options: Map<String, Value>,
        keep_alive: Option<String>,
    ) -> anyhow::Result<Self> {
        // A number of seconds goes as a number, as Ollama's CLI sends it.
        let keep_alive = keep_alive.map(|k| {
            k.trim()
                .parse::<i64>()
                .map_or_else(|_| Value::from(k.trim()), Value::from)
        });
        let mut load = json!({ "model": model, "options": options });
        if let Some(k) = &keep_alive {
            load["keep_alive"] = k.clone();
        }
        client.post("/api/generate", &load)?;
        Ok(Self {
            client,
            model: model.to_owned(),
            messages: Vec::new(),
            system,
            model_system: model_system(client, model)?,
            options,
            keep_alive,
            format: None,
            think: None,
            hide_thinking: false,
        })
    }

    /// Shows only the answers, not the model's thinking.
    pub(super) fn set_hide_thinking(&mut self, hide: bool) {
        self.hide_thinking = hide;
    }

    /// The options in effect: the defaults, the model's parameters, the
    /// context the server loaded it with, then this session's.
    fn effective_options(&self, show: &Value) -> anyhow::Result<Options> {
        let mut o = Options::default();
        let arch = show["model_info"]["general.architecture"]
            .as_str()
            .unwrap_or_default();
        if let Some(n) = show["model_info"][format!("{arch}.context_length")].as_u64() {
            o.num_ctx = o.num_ctx.min(n.max(1) as usize);
        }
        let mut stops = Vec::new();
        for line in show["parameters"].as_str().unwrap_or_default().lines() {
            let (name, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let value = value.trim();
            if name == "stop" {
                stops.push(serde_json::from_str(value).unwrap_or_else(|_| value.to_owned()));
            } else if engine::OPTION_NAMES.contains(&name) {
                o.set(name, value)
                    .with_context(|| format!("the model's parameter {name}"))?;
            }
        }
        if !stops.is_empty() {
            o.stop = stops;
        }
        if let Ok(ps) = self.client.get("/api/ps")
            && let Some(loaded) = ps["models"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["name"] == self.model.as_str() || m["model"] == self.model.as_str())
            && let Some(n) = loaded["context_length"].as_u64()
        {
            o.num_ctx = n as usize;
        }
        for (name, value) in &self.options {
            match (name.as_str(), value) {
                ("num_thread", _) => {}
                ("stop", Value::Array(items)) => {
                    o.stop = items
                        .iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect();
                }
                (name, Value::String(s)) => o.set(name, s)?,
                (name, value) => o.set(name, &value.to_string())?,
            }
        }
        Ok(o)
    }
}

impl Conversation for RemoteChat<'_> {
    fn send(&mut self, message: &str, out: &mut dyn Write) -> anyhow::Result<Timings> {
        let mut messages = Vec::with_capacity(self.messages.len() + 2);
        if let Some(system) = &self.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.extend(self.messages.iter().cloned());
        messages.push(json!({"role": "user", "content": message}));
        let (text, timings) = answer(
            self.client,
            &self.model,
            &messages,
            &self.options,
            &[
                ("keep_alive", self.keep_alive.as_ref()),
                ("format", self.format.as_ref()),
                ("think", self.think.as_ref()),
            ],
            self.hide_thinking,
            out,
        )?;
        self.messages
            .push(json!({"role": "user", "content": message}));
        let mut reply = json!({"role": "assistant", "content": text.content});
        if !text.thinking.is_empty() {
            reply["thinking"] = text.thinking.into();
        }
        self.messages.push(reply);
        Ok(timings)
    }

    /// Sends `format` (`"json"` or a JSON Schema) with every question.
    fn set_format(&mut self, format: Option<Value>) -> anyhow::Result<()> {
        self.format = format;
        Ok(())
    }

    fn set_think(&mut self, think: Think) {
        self.think = match think {
            Think::Default => None,
            Think::Off => Some(Value::Bool(false)),
            Think::On => Some(Value::Bool(true)),
            Think::Level(level) => Some(Value::String(level)),
        };
    }

    fn clear(&mut self) {
        self.messages.clear();
    }

    fn system(&self) -> Option<String> {
        self.system.clone().or_else(|| self.model_system.clone())
    }

    fn set_system(&mut self, system: Option<String>) {
        self.system = system;
    }

    fn set_parameter(&mut self, name: &str, value: &str) -> anyhow::Result<Option<Exit>> {
        let json = if name == "num_thread" {
            let n: u32 = value
                .parse()
                .map_err(|e| anyhow::anyhow!("option 'num_thread': '{value}': {e}"))?;
            Value::from(n)
        } else {
            // The same checks as with the model loaded here.
            Options::default().set(name, value)?;
            if name == "stop" {
                value.split_whitespace().collect::<Vec<_>>().into()
            } else if name == "context_shift" {
                Value::Bool(value.parse()?)
            } else if INTEGER_OPTIONS.contains(&name) {
                Value::from(value.parse::<i64>()?)
            } else {
                Value::from(value.parse::<f64>()?)
            }
        };
        self.options.insert(name.to_owned(), json);
        Ok(None)
    }

    fn info(&self) -> anyhow::Result<Info> {
        let show = self
            .client
            .post("/api/show", &json!({ "model": self.model }))?;
        let info = &show["model_info"];
        let arch = info["general.architecture"].as_str().unwrap_or_default();
        let text = |v: &Value| match v {
            Value::Null => "-".to_owned(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let model = vec![
            ("architecture", text(&info["general.architecture"])),
            ("parameters", text(&show["details"]["parameter_size"])),
            (
                "context length",
                text(&info[format!("{arch}.context_length")]),
            ),
            (
                "embedding length",
                text(&info[format!("{arch}.embedding_length")]),
            ),
            ("quantization", text(&show["details"]["quantization_level"])),
        ];
        Ok(Info {
            model,
            options: self.effective_options(&show)?,
            threads: self
                .options
                .get("num_thread")
                .and_then(Value::as_u64)
                .filter(|&n| n > 0)
                .map(|n| n as usize),
        })
    }

    fn part(&self, part: &str) -> anyhow::Result<String> {
        crate::cli::remote::show_field(self.client, &self.model, part)
    }

    fn load(&mut self, name: &str, out: &mut dyn Write) -> anyhow::Result<Option<Exit>> {
        writeln!(out, "Loading model '{name}'")?;
        let mut load = json!({ "model": name, "options": self.options });
        if let Some(k) = &self.keep_alive {
            load["keep_alive"] = k.clone();
        }
        self.client.post("/api/generate", &load).map_err(|e| {
            if e.to_string().ends_with("not found") {
                crate::cli::model_arg::not_found(name, None)
            } else {
                e
            }
        })?;
        self.model_system = model_system(self.client, name)?;
        self.model = name.to_owned();
        self.messages.clear();
        Ok(None)
    }
}

/// The SYSTEM message of the server's model `name`.
fn model_system(client: &Client, name: &str) -> anyhow::Result<Option<String>> {
    let system = crate::cli::remote::show_field(client, name, "system")?;
    Ok((!system.is_empty()).then_some(system))
}

/// An answer's text: what the model thought and what it said.
#[derive(Debug, Default)]
pub(super) struct AnswerText {
    pub(super) thinking: String,
    pub(super) content: String,
}

/// Streams one assistant answer to `out` (its thinking too, unless
/// `hide_thinking`); its text and timings. Ctrl-C ends it early, keeping what
/// came.
pub(super) fn answer(
    client: &Client,
    model: &str,
    messages: &[Value],
    options: &Map<String, Value>,
    extra: &[(&str, Option<&Value>)],
    hide_thinking: bool,
    out: &mut dyn Write,
) -> anyhow::Result<(AnswerText, Timings)> {
    let mut body =
        json!({"model": model, "messages": messages, "options": options, "stream": true});
    for (key, value) in extra {
        if let Some(v) = value {
            body[*key] = (*v).clone();
        }
    }
    let mut text = AnswerText::default();
    let mut printer = AnswerPrinter::new(hide_thinking);
    let mut last = Value::Null;
    CANCEL.store(false, Ordering::SeqCst);
    GENERATING.store(true, Ordering::SeqCst);
    let streamed = client.stream("/api/chat", &body, &mut |line| {
        if CANCEL.load(Ordering::SeqCst) {
            return Err(Cancelled.into());
        }
        if let Some(piece) = line["message"]["thinking"].as_str() {
            printer.thinking(piece, out)?;
            text.thinking.push_str(piece);
        }
        if let Some(piece) = line["message"]["content"].as_str() {
            printer.content(piece, out)?;
            text.content.push_str(piece);
        }
        if line["done"] == true {
            last = line.clone();
        }
        Ok(())
    });
    GENERATING.store(false, Ordering::SeqCst);
    printer.end_thinking(out)?;
    match streamed {
        Ok(()) => {}
        Err(e) if e.downcast_ref::<Cancelled>().is_some() => {}
        Err(e) => {
            if printer.shown {
                writeln!(out)?;
            }
            return Err(e);
        }
    }
    let nanos = |k: &str| Duration::from_nanos(last[k].as_u64().unwrap_or(0));
    let count = |k: &str| last[k].as_u64().unwrap_or(0) as usize;
    let timings = Timings {
        load_duration: nanos("load_duration"),
        prompt_eval_count: count("prompt_eval_count"),
        prompt_eval_duration: nanos("prompt_eval_duration"),
        eval_count: count("eval_count"),
        eval_duration: nanos("eval_duration"),
        total_duration: nanos("total_duration"),
    };
    Ok((text, timings))
}
