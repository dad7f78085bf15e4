//! `hearth run [MODEL [PROMPT]]`: with a prompt, streams one answer (through
//! the model's chat template, like `ollama run`) and exits; without, an
//! interactive chat ([`repl`]). Without a model, chats with the built-in
//! model ([`crate::builtin`]).

mod remote_chat;
mod repl;

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use engine::{ChatSession, Context, GenerateResult, ModelBackend, Options, Timings};
use model::chat::Think;
use model::chat::output::Piece;
use model::tokenizer::Tokenizer;
use model::{LoadOptions, Model};

/// Arguments of `hearth run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A GGUF model file, or a model name (run on `hearth serve` when one is
    /// running, else loaded from the store) [default: hearth-tiny, the
    /// built-in model].
    #[arg(default_value = crate::builtin::NAME, hide_default_value = true)]
    model: PathBuf,
    /// The prompt (several words are joined with spaces); without one, an
    /// interactive chat starts.
    prompt: Vec<String>,
    /// Context size in tokens [default: 4096, at most the model's training context].
    #[arg(long)]
    ctx: Option<usize>,
    /// Threads for the forward pass (0: all cores) [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Sampling temperature; 0 picks the most likely token [default: 0.8,
    /// unless the model's parameters set it; the same for the options below].
    #[arg(long)]
    temperature: Option<f32>,
    /// Sample from the K most likely tokens (0: all) [default: 40].
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus sampling probability mass [default: 0.9].
    #[arg(long)]
    top_p: Option<f32>,
    /// Drop tokens less likely than this fraction of the most likely one
    /// [default: 0].
    #[arg(long)]
    min_p: Option<f32>,
    /// Penalty for repeating the last 64 tokens (1: off) [default: 1.1].
    #[arg(long)]
    repeat_penalty: Option<f32>,
    /// Random seed, for reproducible answers [default: a new one each time].
    #[arg(long)]
    seed: Option<u64>,
    /// Most tokens to generate (-1: until the model stops, -2: fill the
    /// context) [default: -1].
    #[arg(long, allow_negative_numbers = true)]
    num_predict: Option<i32>,
    /// System prompt.
    #[arg(long)]
    system: Option<String>,
    /// Shift the context (keep the start, drop half of the rest) when it fills
    /// up, and cut a prompt too long for it to its start and end (as Ollama
    /// does), instead of stopping with an error.
    #[arg(long)]
    context_shift: bool,
    /// Print timings and token rates after each answer.
    #[arg(long)]
    verbose: bool,
    /// How long the server keeps the model loaded after this session (5m,
    /// 1h, 0 to unload; with a server).
    #[arg(long, value_name = "DURATION")]
    keepalive: Option<String>,
    /// Do not wrap words at the terminal's width (answers are never wrapped;
    /// accepted for Ollama's scripts).
    #[arg(long)]
    nowordwrap: bool,
    /// Answer in this format: `json` (any JSON object), or a JSON Schema
    /// (inline, or a file holding one); decoding follows it.
    #[arg(long, value_name = "json|SCHEMA")]
    format: Option<String>,
    /// Whether the model thinks before answering, for models that can: true
    /// (`--think` alone), false, or an effort (high, medium, low) [default:
    /// as the model's template does].
    #[arg(
        long,
        value_name = "true|false|high|medium|low",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    think: Option<String>,
    /// Show only the answer, not the model's thinking.
    #[arg(long)]
    hidethinking: bool,
    /// Accepted for Ollama's scripts: `hearth run` never pulls a model, so it
    /// reaches no registry (`hearth pull --insecure` does).
    #[arg(long)]
    insecure: bool,
}

/// `--think` as the template flag it sets.
fn think_value(think: Option<&str>) -> anyhow::Result<Think> {
    match think {
        None => Ok(Think::Default),
        Some(v) => Think::parse(v)
            .with_context(|| format!("--think={v}: use true, false, high, medium or low")),
    }
}

/// Prints an answer's pieces as `ollama run` does: the thinking between
/// `Thinking...` and `...done thinking.` (nothing of it with
/// `--hidethinking`), then the content.
#[derive(Debug, Default)]
pub(super) struct AnswerPrinter {
    hide_thinking: bool,
    /// Inside the printed thinking.
    thinking: bool,
    /// Something was printed.
    pub(super) shown: bool,
}

impl AnswerPrinter {
    pub(super) fn new(hide_thinking: bool) -> AnswerPrinter {
        AnswerPrinter {
            hide_thinking,
            ..AnswerPrinter::default()
        }
    }

    /// Prints a piece of thinking.
    pub(super) fn thinking(&mut self, text: &str, out: &mut dyn Write) -> std::io::Result<()> {
        if self.hide_thinking || text.is_empty() {
            return Ok(());
        }
        if !self.thinking {
            out.write_all(b"Thinking...\n")?;
            self.thinking = true;
        }
        self.write(text, out)
    }

    /// Prints a piece of the answer.
    pub(super) fn content(&mut self, text: &str, out: &mut dyn Write) -> std::io::Result<()> {
        self.end_thinking(out)?;
        self.write(text, out)
    }

    /// Closes the thinking when the answer ends inside it.
    pub(super) fn end_thinking(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        if self.thinking {
            out.write_all(b"\n...done thinking.\n\n")?;
            self.thinking = false;
        }
        Ok(())
    }

    fn write(&mut self, text: &str, out: &mut dyn Write) -> std::io::Result<()> {
        self.shown |= !text.is_empty();
        out.write_all(text.as_bytes())?;
        out.flush()
    }
}

/// `--format`: `"json"` or a JSON Schema, inline or in a file, as the value
/// Ollama's `format` field takes.
fn format_value(format: &str) -> anyhow::Result<serde_json::Value> {
    let format = format.trim();
    if format == "json" {
        return Ok(serde_json::Value::from("json"));
    }
    let text = if format.starts_with('{') {
        format.to_owned()
    } else {
        std::fs::read_to_string(format).with_context(|| {
            format!("--format {format}: not `json`, an inline JSON Schema or a readable file")
        })?
    };
    let schema: serde_json::Value =
        serde_json::from_str(&text).context("--format: the schema is not JSON")?;
    if !schema.is_object() {
        anyhow::bail!("--format: a JSON Schema is an object");
    }
    Ok(schema)
}

/// `--format` as the engine's constraint.
fn format_constraint(format: &serde_json::Value) -> engine::Constraint {
    engine::Constraint::new(match format {
        serde_json::Value::String(_) => engine::Grammar::JsonObject,
        schema => engine::Grammar::JsonSchema(schema.clone()),
    })
}

/// Set while an answer is streaming; Ctrl-C then cancels the answer instead
/// of exiting.
static GENERATING: AtomicBool = AtomicBool::new(false);
/// Set by Ctrl-C during an answer; checked between tokens.
static CANCEL: AtomicBool = AtomicBool::new(false);
/// Which interactive prompt is waiting for a line, if any ([`NO_PROMPT`],
/// [`MAIN_PROMPT`] or [`CONTINUATION_PROMPT`]): Ctrl-C there asks again
/// instead of exiting.
static PROMPT: AtomicU8 = AtomicU8::new(NO_PROMPT);
const NO_PROMPT: u8 = 0;
const MAIN_PROMPT: u8 = 1;
const CONTINUATION_PROMPT: u8 = 2;

/// What an interactive session carries over to a model loaded again: with
/// other settings (`/set parameter num_thread N`), or another model (`/load`,
/// which starts a new conversation with that model's options).
struct Carried {
    system: Option<String>,
    messages: Vec<serde_json::Value>,
    /// The options in effect, kept across a reload of the same model.
    options: Option<Options>,
    verbose: bool,
    /// `--format` or `/set format`.
    format: Option<serde_json::Value>,
    /// `--think` or `/set think`.
    think: Think,
}

/// Stores the KV cache as `HEARTH_KV_CACHE_TYPE` (or `OLLAMA_KV_CACHE_TYPE`)
/// says, as `hearth serve` does.
fn kv_type_from_env(model: &mut Model) -> anyhow::Result<()> {
    let Some((name, value)) = server::config::env_setting("KV_CACHE_TYPE") else {
        return Ok(());
    };
    let ty = model::KvType::parse(&value)
        .with_context(|| format!("{name}={value}: expected f16, q8_0 or q4_0"))?;
    model
        .set_kv_type(ty)
        .with_context(|| format!("{name}={value}"))
}

/// Runs `hearth run`.
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let mut start = Instant::now();
    let format = args.format.as_deref().map(format_value).transpose()?;
    let think = think_value(args.think.as_deref())?;
    // A model name (not a file) runs on a server if one is up, else from the store.
    if !super::model_arg::is_file(&args.model) {
        let name = args.model.to_string_lossy();
        if let Some(client) = super::client::Client::detect() {
            return run_remote(&client, &name, args, format.as_ref(), &think).map_err(|e| {
                if e.to_string().ends_with("not found") {
                    super::model_arg::not_found(&name, None)
                } else {
                    e
                }
            });
        }
    }
    let mut arg = args.model.clone();
    let mut resolved = super::model_arg::resolve(&arg)?;
    install_ctrl_c_handler()?;
    // 0 lets hearth choose, as Ollama's num_thread.
    let mut threads = args.threads.filter(|&n| n > 0);
    let mut carried: Option<Carried> = None;
    // `/set parameter` settings, which also apply to a model `/load`ed later
    // (as they do through a server).
    let mut overrides: Vec<(String, String)> = Vec::new();
    loop {
        let mut model = Model::load_with(&resolved.path, &LoadOptions { threads })
            .with_context(|| format!("loading {}", arg.display()))?;
        kv_type_from_env(&mut model)?;
        let metadata = model.gguf().metadata();
        let tokenizer = Tokenizer::from_metadata(metadata).context("reading the tokenizer")?;
        let load_duration = start.elapsed();

        let mut options = match carried.as_mut().and_then(|c| c.options.take()) {
            Some(o) => o,
            None => {
                let mut o = options(args, &resolved.params, &model)?;
                for (name, value) in &overrides {
                    o.set(name, value)?;
                }
                o
            }
        };
        options.lora = resolved
            .load_adapters(&model)
            .with_context(|| format!("loading the adapters of {}", arg.display()))?;
        let backend = ModelBackend::new(&model, options.num_ctx)?.with_lora(options.lora.clone());
        let mut session = ChatSession::new(Context::new(backend), &tokenizer, metadata, options)?;
        if let Some(template) = &resolved.template {
            session.set_template(template)?;
        }
        let format = carried
            .as_ref()
            .map_or(format.clone(), |c| c.format.clone());
        session
            .set_constraint(format.as_ref().map(format_constraint))
            .context("--format")?;
        session.set_think(carried.as_ref().map_or(think.clone(), |c| c.think.clone()));
        let verbose = match carried.take() {
            Some(c) => {
                session.set_system(c.system);
                session.set_messages(c.messages);
                c.verbose
            }
            None => {
                session.set_system(args.system.clone().or_else(|| resolved.system.clone()));
                args.verbose
            }
        };

        let mut stdout = std::io::stdout();
        if !args.prompt.is_empty() {
            let prompt = args.prompt.join(" ");
            let mut result = answer(&mut session, &prompt, args.hidethinking, &mut stdout)?;
            writeln!(stdout)?;
            if verbose {
                result.timings.load_duration = load_duration;
                result.timings.total_duration += load_duration;
                print_timings(&result.timings, &mut std::io::stderr())?;
            }
            return Ok(());
        }
        let mut chat = LocalChat {
            session: &mut session,
            model: &model,
            arg: &arg,
            overrides: &mut overrides,
            hide_thinking: args.hidethinking,
            format,
            think: think.clone(),
        };
        let mut repl = repl::Repl {
            chat: &mut chat,
            verbose,
            load_duration,
        };
        let exit = repl.run(&mut std::io::stdin().lock(), &mut stdout)?;
        let verbose = repl.verbose;
        let (format, think) = (chat.format.clone(), chat.think.clone());
        match exit {
            repl::Exit::Bye => return Ok(()),
            repl::Exit::Reload { threads: n } => {
                carried = Some(Carried {
                    verbose,
                    system: session.system().map(str::to_owned),
                    messages: session.messages().to_vec(),
                    options: Some(session.options.clone()),
                    format,
                    think,
                });
                threads = n;
            }
            repl::Exit::Load(name) => {
                arg = PathBuf::from(name);
                let next = super::model_arg::resolve(&arg)?;
                // A system message the model brought goes with it; one set
                // here stays.
                let system = session
                    .system()
                    .filter(|s| Some(*s) != resolved.system.as_deref())
                    .map(str::to_owned)
                    .or_else(|| next.system.clone());
                resolved = next;
                carried = Some(Carried {
                    verbose,
                    system,
                    messages: Vec::new(),
                    options: None,
                    format,
                    think,
                });
            }
        }
        start = Instant::now();
    }
}

/// `hearth run NAME` on a running server: one answer, or the interactive chat.
fn run_remote(
    client: &super::client::Client,
    name: &str,
    args: &RunArgs,
    format: Option<&serde_json::Value>,
    think: &Think,
) -> anyhow::Result<()> {
    let mut chat = remote_chat::RemoteChat::open(
        client,
        name,
        args.system.clone(),
        remote_options(args),
        args.keepalive.clone(),
    )?;
    repl::Conversation::set_format(&mut chat, format.cloned())?;
    repl::Conversation::set_think(&mut chat, think.clone());
    chat.set_hide_thinking(args.hidethinking);
    install_ctrl_c_handler()?;
    let mut stdout = std::io::stdout();
    if !args.prompt.is_empty() {
        let timings = repl::Conversation::send(&mut chat, &args.prompt.join(" "), &mut stdout)?;
        writeln!(stdout)?;
        if args.verbose {
            print_timings(&timings, &mut std::io::stderr())?;
        }
        return Ok(());
    }
    let mut repl = repl::Repl {
        chat: &mut chat,
        verbose: args.verbose,
        load_duration: Duration::ZERO,
    };
    match repl.run(&mut std::io::stdin().lock(), &mut stdout)? {
        // The server applies `num_thread` and loads other models itself.
        repl::Exit::Bye | repl::Exit::Reload { .. } | repl::Exit::Load(_) => Ok(()),
    }
}

/// A conversation with a model loaded in this process.
struct LocalChat<'s, 'm, 't, 'a> {
    session: &'s mut ChatSession<'t, ModelBackend<'m>>,
    model: &'m Model,
    /// The model as `hearth run` was given it (a store name or a file).
    arg: &'a std::path::Path,
    /// The `/set parameter` settings so far.
    overrides: &'a mut Vec<(String, String)>,
    /// `--hidethinking`.
    hide_thinking: bool,
    /// The format answers follow (`--format`, `/set format`).
    format: Option<serde_json::Value>,
    /// `--think`, `/set think`.
    think: Think,
}

impl repl::Conversation for LocalChat<'_, '_, '_, '_> {
    fn send(&mut self, message: &str, out: &mut dyn Write) -> anyhow::Result<Timings> {
        Ok(answer(self.session, message, self.hide_thinking, out)?.timings)
    }

    fn set_format(&mut self, format: Option<serde_json::Value>) -> anyhow::Result<()> {
        self.session
            .set_constraint(format.as_ref().map(format_constraint))?;
        self.format = format;
        Ok(())
    }

    fn set_think(&mut self, think: Think) {
        self.session.set_think(think.clone());
        self.think = think;
    }

    fn clear(&mut self) {
        self.session.clear();
    }

    fn system(&self) -> Option<String> {
        self.session.system().map(str::to_owned)
    }

    fn set_system(&mut self, system: Option<String>) {
        self.session.set_system(system);
    }

    /// `num_thread` (0: all cores) needs the model loaded again, as in Ollama:
    /// the thread pool belongs to the loaded model. `num_ctx` makes a new KV
    /// cache.
    fn set_parameter(&mut self, name: &str, value: &str) -> anyhow::Result<Option<repl::Exit>> {
        if name == "num_thread" {
            let n: usize = value
                .parse()
                .map_err(|e| anyhow::anyhow!("option 'num_thread': '{value}': {e}"))?;
            if n == self.model.n_threads() {
                return Ok(None);
            }
            return Ok(Some(repl::Exit::Reload {
                threads: (n > 0).then_some(n),
            }));
        }
        let before = self.session.options.num_ctx;
        self.session.options.set(name, value)?;
        let num_ctx = self.session.options.num_ctx;
        if num_ctx != before {
            match ModelBackend::new(self.model, num_ctx) {
                Ok(backend) => self
                    .session
                    .replace_backend(backend.with_lora(self.session.options.lora.clone())),
                Err(e) => {
                    self.session.options.num_ctx = before;
                    return Err(e.into());
                }
            }
        }
        self.overrides.retain(|(n, _)| n != name);
        self.overrides.push((name.to_owned(), value.to_owned()));
        Ok(None)
    }

    fn info(&self) -> anyhow::Result<repl::Info> {
        let info = self.model.info();
        let quant = info
            .file_type
            .and_then(super::format::file_type_name)
            .unwrap_or("unknown");
        Ok(repl::Info {
            model: vec![
                ("architecture", info.arch.to_string()),
                ("parameters", super::format::count(info.n_params)),
                ("context length", info.n_ctx_train.to_string()),
                ("embedding length", info.n_embd.to_string()),
                ("quantization", quant.to_owned()),
            ],
            options: self.session.options.clone(),
            threads: Some(self.model.n_threads()),
        })
    }

    fn part(&self, part: &str) -> anyhow::Result<String> {
        if !super::model_arg::is_file(self.arg) {
            return super::show_model::part_text(&self.arg.to_string_lossy(), part);
        }
        if part == "template" {
            let metadata = self.model.gguf().metadata();
            return Ok(metadata
                .opt_str("tokenizer.chat_template")
                .ok()
                .flatten()
                .unwrap_or_default()
                .to_owned());
        }
        anyhow::bail!("/show {part} applies to models in the store, not to files")
    }

    fn load(&mut self, name: &str, out: &mut dyn Write) -> anyhow::Result<Option<repl::Exit>> {
        writeln!(out, "Loading model '{name}'")?;
        // Resolved here so that a wrong name leaves this model loaded.
        super::model_arg::resolve(std::path::Path::new(name))?;
        Ok(Some(repl::Exit::Load(name.to_owned())))
    }
}

/// Ctrl-C cancels an answer, asks again at a terminal's prompt, and leaves
/// otherwise (while loading, or with piped input).
fn install_ctrl_c_handler() -> anyhow::Result<()> {
    ctrlc::set_handler(|| {
        if GENERATING.load(Ordering::SeqCst) {
            CANCEL.store(true, Ordering::SeqCst);
            return;
        }
        let marker = match PROMPT.load(Ordering::SeqCst) {
            MAIN_PROMPT => ">>> ",
            CONTINUATION_PROMPT => "... ",
            _ => {
                println!();
                std::process::exit(0);
            }
        };
        // At a terminal's prompt the terminal drops the line being typed; ask
        // again, as Ollama does. The main thread is blocked reading stdin, so
        // stdout is free.
        let mut out = std::io::stdout();
        let _ = write!(out, "\nUse Ctrl + d or /bye to exit.\n{marker}");
        let _ = out.flush();
    })
    .context("installing the Ctrl-C handler")
}

/// The generation options from the command line, the store's Modelfile
/// parameters (which the command line overrides) and the model's limits.
fn options(args: &RunArgs, params: &store::Parameters, model: &Model) -> anyhow::Result<Options> {
    let mut o = Options::default();
    let default_ctx = o.num_ctx.min(model.info().n_ctx_train.max(1));
    for (name, value) in params.iter() {
        match value {
            store::ParamValue::Strings(stop) => o.stop = stop.clone(),
            value if engine::OPTION_NAMES.contains(&name) => o
                .set(name, &value.to_string())
                .with_context(|| format!("the model's parameter {name}"))?,
            _ => {}
        }
    }
    o.num_ctx = match (args.ctx, params.get("num_ctx")) {
        (Some(n), _) => n,
        (None, Some(_)) => o.num_ctx,
        (None, None) => default_ctx,
    };
    let s = &mut o.sampler;
    s.temperature = args.temperature.unwrap_or(s.temperature);
    s.top_k = args.top_k.unwrap_or(s.top_k);
    s.top_p = args.top_p.unwrap_or(s.top_p);
    s.min_p = args.min_p.unwrap_or(s.min_p);
    s.repeat_penalty = args.repeat_penalty.unwrap_or(s.repeat_penalty);
    s.seed = args.seed.or(s.seed);
    o.num_predict = args.num_predict.unwrap_or(o.num_predict);
    o.context_shift = args.context_shift;
    if o.num_ctx == 0 {
        anyhow::bail!("--ctx must be positive");
    }
    Ok(o)
}

/// The command line's options as a server request's `options`.
fn remote_options(args: &RunArgs) -> serde_json::Map<String, serde_json::Value> {
    let mut options = serde_json::Map::new();
    let mut set = |k: &str, v: Option<serde_json::Value>| {
        if let Some(v) = v {
            options.insert(k.to_owned(), v);
        }
    };
    set("num_ctx", args.ctx.map(Into::into));
    set("num_thread", args.threads.map(Into::into));
    set("temperature", args.temperature.map(Into::into));
    set("top_k", args.top_k.map(Into::into));
    set("top_p", args.top_p.map(Into::into));
    set("min_p", args.min_p.map(Into::into));
    set("repeat_penalty", args.repeat_penalty.map(Into::into));
    set("seed", args.seed.map(Into::into));
    set("num_predict", args.num_predict.map(Into::into));
    options
}

/// Sends `prompt` in `session`, streaming the answer to `out`; Ctrl-C ends the
/// answer early. On an error after part of the answer was shown, the line is
/// ended first so that the error starts on its own.
fn answer(
    session: &mut ChatSession<'_, ModelBackend<'_>>,
    prompt: &str,
    hide_thinking: bool,
    out: &mut dyn Write,
) -> anyhow::Result<GenerateResult> {
    let mut write_error = None;
    let mut printer = AnswerPrinter::new(hide_thinking);
    CANCEL.store(false, Ordering::SeqCst);
    GENERATING.store(true, Ordering::SeqCst);
    let result = session.send(prompt, Some(&CANCEL), &mut |piece| {
        let written = match piece {
            Piece::Thinking(t) => printer.thinking(&t, out),
            Piece::Content(t) => printer.content(&t, out),
            Piece::Call(_) => Ok(()),
        };
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                write_error = Some(e);
                ControlFlow::Break(())
            }
        }
    });
    GENERATING.store(false, Ordering::SeqCst);
    if let Some(e) = write_error {
        return Err(e.into());
    }
    printer.end_thinking(out)?;
    if result.is_err() && printer.shown {
        writeln!(out)?;
    }
    Ok(result?)
}

/// Ollama's `--verbose` statistics (`api.Metrics.Summary`), which leaves out
/// a zero count or duration, e.g. the load duration once the model is loaded.
pub(super) fn print_timings(t: &Timings, out: &mut dyn Write) -> std::io::Result<()> {
    if !t.total_duration.is_zero() {
        writeln!(out, "total duration:       {}", duration(t.total_duration))?;
    }
    if !t.load_duration.is_zero() {
        writeln!(out, "load duration:        {}", duration(t.load_duration))?;
    }
    if t.prompt_eval_count > 0 {
        let count = t.prompt_eval_count;
        writeln!(out, "prompt eval count:    {count} token(s)")?;
    }
    if !t.prompt_eval_duration.is_zero() {
        let d = duration(t.prompt_eval_duration);
        writeln!(out, "prompt eval duration: {d}")?;
        let rate = t.prompt_eval_rate();
        writeln!(out, "prompt eval rate:     {rate:.2} tokens/s")?;
    }
    if t.eval_count > 0 {
        writeln!(out, "eval count:           {} token(s)", t.eval_count)?;
    }
    if !t.eval_duration.is_zero() {
        writeln!(out, "eval duration:        {}", duration(t.eval_duration))?;
        writeln!(out, "eval rate:            {:.2} tokens/s", t.eval_rate())?;
    }
    Ok(())
}

/// A duration the way Go prints one (Ollama's output): `1.234s`, `56.7ms`,
/// `0s`.
fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if d.is_zero() {
        "0s".to_owned()
    } else if secs >= 1.0 {
        format!("{secs:.3}s")
    } else if secs >= 1e-3 {
        format!("{:.3}ms", secs * 1e3)
    } else {
        format!("{:.3}µs", secs * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_states_the_real_defaults() {
        use clap::Args as _;
        let help = RunArgs::augment_args(clap::Command::new("run"))
            .render_long_help()
            .to_string();
        let o = Options::default();
        let s = &o.sampler;
        for stated in [
            format!("[default: {},", s.temperature),
            format!("[default: {}]", s.top_k),
            format!("[default: {}]", s.top_p),
            format!("[default: {}]", s.min_p),
            format!(
                "last {} tokens (1: off) [default: {}]",
                o.repeat_last_n, s.repeat_penalty
            ),
            format!("[default: {}]", o.num_predict),
        ] {
            assert!(help.contains(&stated), "{stated:?} not in {help}");
        }
        assert!(s.seed.is_none());
    }

    #[test]
    fn durations_use_go_style_units() {
        assert_eq!(duration(Duration::from_millis(1234)), "1.234s");
        assert_eq!(duration(Duration::from_micros(56_700)), "56.700ms");
        assert_eq!(duration(Duration::from_nanos(12_500)), "12.500µs");
        assert_eq!(duration(Duration::ZERO), "0s");
    }

    #[test]
    fn timings_print_counts_and_rates() {
        let t = Timings {
            prompt_eval_count: 10,
            prompt_eval_duration: Duration::from_millis(500),
            eval_count: 30,
            eval_duration: Duration::from_secs(2),
            ..Timings::default()
        };
        let mut out = Vec::new();
        print_timings(&t, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("prompt eval rate:     20.00 tokens/s"),
            "{text}"
        );
        assert!(
            text.contains("eval rate:            15.00 tokens/s"),
            "{text}"
        );
        assert!(text.contains("eval count:           30 token(s)"), "{text}");
        // Zero durations (here total and load) are left out, as Ollama does.
        assert!(!text.contains("total duration"), "{text}");
        assert!(!text.contains("load duration"), "{text}");
    }
}
