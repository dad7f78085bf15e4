//! The interactive chat of `hearth run MODEL`, with Ollama's commands: `/bye`,
//! `/clear`, `/set parameter NAME VALUE` (`num_thread` loads the model again),
//! `/set system TEXT`, `/set think|nothink`, `/set format json|noformat`,
//! `/set verbose`, `/set quiet`, `/show info|parameters|
//! system|template|modelfile|license`, `/load MODEL`, `/?`, and multi-line
//! input between `"""`. The same commands work on a model loaded here and on
//! one on a running server (a [`Conversation`] each).
//!
//! Input is read a line at a time from stdin (no line editor), so piped input
//! works the same as typed input; the `>>> ` prompt is shown only on a terminal.
//! There, Ctrl-C while a line is being typed drops it and asks again (as
//! Ollama does); during an answer it ends the answer. With piped input it exits.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::Ordering;

use engine::{OPTION_NAMES, Options, Timings};
use model::chat::Think;

use super::{CONTINUATION_PROMPT, MAIN_PROMPT, NO_PROMPT, PROMPT, print_timings};

/// Opens and closes a multi-line message.
const FENCE: &str = "\"\"\"";

const HELP: &str = "Available Commands:
  /set parameter NAME VALUE   Set a parameter (e.g. /set parameter temperature 0.2)
  /set system TEXT            Set the system message
  /set think [LEVEL]          Let the model think (LEVEL: high, medium, low)
  /set nothink                Stop the model thinking
  /set format json            Answer in JSON
  /set noformat               Answer in free text
  /set verbose                Show timings after each answer
  /set quiet                  Stop showing timings
  /show info                  Show details for this model
  /show parameters            Show the model's parameters
  /show system                Show the system message
  /show template              Show the chat template
  /show modelfile             Show the Modelfile
  /show license               Show the license
  /load MODEL                 Load another model (a new conversation)
  /clear                      Clear the session context
  /bye                        Exit
  /?, /help                   Help for a command

Use \"\"\" to begin a multi-line message.";

/// What the interactive chat talks to: a model loaded in this process, or a
/// model on a running server. The commands behave the same with either.
pub(super) trait Conversation {
    /// Sends `message`, streaming the answer to `out`; the answer's timings.
    fn send(&mut self, message: &str, out: &mut dyn Write) -> anyhow::Result<Timings>;
    /// Forgets the messages (the system message stays).
    fn clear(&mut self);
    /// The system message.
    fn system(&self) -> Option<String>;
    /// Sets the system message (`None` removes it).
    fn set_system(&mut self, system: Option<String>);
    /// `/set parameter NAME VALUE`, validated; `Some` when the model must be
    /// loaded again to apply it.
    fn set_parameter(&mut self, name: &str, value: &str) -> anyhow::Result<Option<Exit>>;
    /// What `/show info` lists: the model's facts and the options in effect.
    fn info(&self) -> anyhow::Result<Info>;
    /// A text part of the model (`parameters`, `template`, `modelfile`,
    /// `license`), as `hearth show --PART` prints it.
    fn part(&self, part: &str) -> anyhow::Result<String>;
    /// `/load NAME`: goes on with another model; `Some` when this process
    /// must load it.
    fn load(&mut self, name: &str, out: &mut dyn Write) -> anyhow::Result<Option<Exit>>;
    /// `/set format json`, `/set noformat`: the format answers follow.
    fn set_format(&mut self, format: Option<serde_json::Value>) -> anyhow::Result<()>;
    /// `/set think [LEVEL]`, `/set nothink`.
    fn set_think(&mut self, think: Think);
}

/// The facts `/show info` prints.
pub(super) struct Info {
    /// `(label, value)` rows of the Model section.
    pub(super) model: Vec<(&'static str, String)>,
    /// The options in effect.
    pub(super) options: Options,
    /// The thread count (`None`: the runtime's default).
    pub(super) threads: Option<usize>,
}

/// The state of one interactive session.
pub(super) struct Repl<'c> {
    pub(super) chat: &'c mut dyn Conversation,
    pub(super) verbose: bool,
    /// Reported with the first answer's timings (`--verbose`).
    pub(super) load_duration: std::time::Duration,
}

impl Repl<'_> {
    /// Reads messages and commands from `input` until `/bye`, end of input, or
    /// a command that needs a model loaded again.
    pub(super) fn run(
        &mut self,
        input: &mut dyn BufRead,
        out: &mut dyn Write,
    ) -> anyhow::Result<Exit> {
        let interactive = std::io::stdin().is_terminal();
        let mut first_answer = true;
        loop {
            if interactive {
                write!(out, ">>> ")?;
                out.flush()?;
            }
            let Some(line) = read_line(input, interactive.then_some(MAIN_PROMPT))? else {
                // End of input (Ctrl-D) leaves, like /bye.
                return Ok(Exit::Bye);
            };
            if let Some(first) = open_system_fence(&line) {
                match read_fenced(first, input, out, interactive)? {
                    Some(text) => self.set_system(&text, out)?,
                    None => return Ok(Exit::Bye),
                }
                continue;
            }
            let message = match line.trim_start().strip_prefix(FENCE) {
                Some(rest) => match read_fenced(rest, input, out, interactive)? {
                    Some(text) => text,
                    None => return Ok(Exit::Bye),
                },
                None => line,
            };
            let trimmed = message.trim();
            if trimmed.is_empty() {
                continue;
            }
            if trimmed.starts_with('/') && !message.contains('\n') {
                match self.command(trimmed, out) {
                    Ok(None) => continue,
                    Ok(Some(exit)) => return Ok(exit),
                    Err(e) if crate::cli::is_broken_pipe(&e) => return Err(e),
                    Err(e) => {
                        writeln!(out, "error: {e:#}")?;
                        continue;
                    }
                }
            }
            match self.chat.send(&message, out) {
                Ok(mut timings) => {
                    writeln!(out)?;
                    writeln!(out)?;
                    if self.verbose {
                        if first_answer && timings.load_duration.is_zero() {
                            timings.load_duration = self.load_duration;
                        }
                        print_timings(&timings, &mut std::io::stderr())?;
                    }
                    first_answer = false;
                }
                Err(e) if crate::cli::is_broken_pipe(&e) => return Err(e),
                Err(e) => eprintln!("error: {e:#}"),
            }
        }
    }

    /// Runs one `/` command; `Some` when the session ends here.
    fn command(&mut self, line: &str, out: &mut dyn Write) -> anyhow::Result<Option<Exit>> {
        let mut words = line.split_whitespace();
        let command = words.next().unwrap_or_default();
        match command {
            "/bye" | "/exit" => return Ok(Some(Exit::Bye)),
            "/?" | "/help" => writeln!(out, "{HELP}\n")?,
            "/clear" => {
                self.chat.clear();
                writeln!(out, "Cleared session context")?;
            }
            "/set" => return self.set(line, out),
            "/show" => match words.next() {
                Some("info") => show_info(&self.chat.info()?, out)?,
                Some("system") => match self.chat.system() {
                    Some(system) => writeln!(out, "{system}")?,
                    None => writeln!(out, "No system message was specified for this model.")?,
                },
                Some(part @ ("parameters" | "template" | "modelfile" | "license")) => {
                    let text = self.chat.part(part)?;
                    if text.trim().is_empty() {
                        writeln!(out, "No {part} was specified for this model.")?;
                    } else {
                        writeln!(out, "{}", text.trim_end())?;
                    }
                }
                _ => writeln!(
                    out,
                    "Usage: /show info | license | modelfile | parameters | system | template"
                )?,
            },
            "/load" => match (words.next(), words.next()) {
                (Some(name), None) => return self.chat.load(name, out),
                _ => writeln!(out, "Usage: /load MODEL")?,
            },
            _ => writeln!(out, "Unknown command '{command}'. Type /? for help")?,
        }
        Ok(None)
    }

    /// `/set parameter NAME VALUE`, `/set system TEXT`, `/set verbose|quiet`.
    fn set(&mut self, line: &str, out: &mut dyn Write) -> anyhow::Result<Option<Exit>> {
        let rest = line.strip_prefix("/set").unwrap_or_default().trim_start();
        let (what, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let args = args.trim();
        match what {
            "parameter" => {
                let (name, value) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
                let value = value.trim();
                if name.is_empty() || value.is_empty() {
                    writeln!(out, "Usage: /set parameter NAME VALUE")?;
                    writeln!(out, "Parameters: {}, num_thread", OPTION_NAMES.join(", "))?;
                    return Ok(None);
                }
                let exit = self.chat.set_parameter(name, value)?;
                writeln!(out, "Set parameter '{name}' to '{value}'")?;
                return Ok(exit);
            }
            "system" => {
                let text = args.strip_prefix(FENCE).unwrap_or(args);
                self.set_system(text.strip_suffix(FENCE).unwrap_or(text), out)?;
            }
            "think" => {
                let think = if args.is_empty() {
                    Think::On
                } else {
                    match Think::parse(args) {
                        Some(t) => t,
                        None => {
                            writeln!(out, "Invalid think level '{args}': use high, medium or low")?;
                            return Ok(None);
                        }
                    }
                };
                self.chat.set_think(think.clone());
                match think {
                    Think::Level(level) => writeln!(out, "Set 'think' mode to '{level}'.")?,
                    Think::Off => writeln!(out, "Set 'nothink' mode.")?,
                    Think::On | Think::Default => writeln!(out, "Set 'think' mode.")?,
                }
            }
            "nothink" => {
                self.chat.set_think(Think::Off);
                writeln!(out, "Set 'nothink' mode.")?;
            }
            "format" if args == "json" => {
                self.chat.set_format(Some("json".into()))?;
                writeln!(out, "Set format to 'json' mode.")?;
            }
            "format" => writeln!(
                out,
                "Invalid or missing format. For 'json' mode use '/set format json'"
            )?,
            "noformat" => {
                self.chat.set_format(None)?;
                writeln!(out, "Disabled format.")?;
            }
            // Answers are never wrapped; accepted for Ollama users' habits.
            "wordwrap" => writeln!(out, "Set 'wordwrap' mode.")?,
            "nowordwrap" => writeln!(out, "Set 'nowordwrap' mode.")?,
            "verbose" => {
                self.verbose = true;
                writeln!(out, "Set 'verbose' mode.")?;
            }
            "quiet" => {
                self.verbose = false;
                writeln!(out, "Set 'quiet' mode.")?;
            }
            _ => writeln!(
                out,
                "Usage: /set parameter NAME VALUE | /set system TEXT | /set think [LEVEL] | \
                 /set nothink | /set format json | /set noformat | /set verbose | /set quiet"
            )?,
        }
        Ok(None)
    }

    /// Sets the system message (an empty one removes it).
    fn set_system(&mut self, text: &str, out: &mut dyn Write) -> anyhow::Result<()> {
        let text = text.trim();
        self.chat
            .set_system((!text.is_empty()).then(|| text.to_owned()));
        writeln!(out, "Set system message.")?;
        Ok(())
    }
}

/// `/show info`: what the model is and the options in effect.
fn show_info(info: &Info, out: &mut dyn Write) -> anyhow::Result<()> {
    let o = &info.options;
    let s = &o.sampler;
    writeln!(out, "  Model")?;
    for (label, value) in &info.model {
        writeln!(out, "    {label:<20}{value}")?;
    }
    writeln!(out)?;
    writeln!(out, "  Parameters")?;
    writeln!(out, "    num_ctx             {}", o.num_ctx)?;
    match info.threads {
        Some(n) => writeln!(out, "    num_thread          {n}")?,
        None => writeln!(out, "    num_thread          default")?,
    }
    writeln!(out, "    num_predict         {}", o.num_predict)?;
    writeln!(out, "    temperature         {}", s.temperature)?;
    writeln!(out, "    top_k               {}", s.top_k)?;
    writeln!(out, "    top_p               {}", s.top_p)?;
    writeln!(out, "    min_p               {}", s.min_p)?;
    writeln!(out, "    typical_p           {}", s.typical_p)?;
    writeln!(out, "    repeat_penalty      {}", s.repeat_penalty)?;
    writeln!(out, "    repeat_last_n       {}", o.repeat_last_n)?;
    writeln!(out, "    presence_penalty    {}", s.presence_penalty)?;
    writeln!(out, "    frequency_penalty   {}", s.frequency_penalty)?;
    writeln!(out, "    num_keep            {}", o.num_keep)?;
    writeln!(out, "    context_shift       {}", o.context_shift)?;
    match s.seed {
        Some(seed) => writeln!(out, "    seed                {seed}")?,
        None => writeln!(out, "    seed                random")?,
    }
    for stop in &o.stop {
        writeln!(out, "    stop                {stop:?}")?;
    }
    writeln!(out)?;
    Ok(())
}

/// Why the interactive session ended.
pub(super) enum Exit {
    /// `/bye` or end of input.
    Bye,
    /// `/set parameter num_thread`: load the model again with this many
    /// threads (`None`: all cores) and go on with the conversation.
    Reload {
        /// The new thread count.
        threads: Option<usize>,
    },
    /// `/load NAME`: load this model instead, with a new conversation.
    Load(String),
}

/// One line without its line ending; `None` at end of input. `prompt` says
/// which terminal prompt is waiting (for Ctrl-C), `None` when not interactive.
fn read_line(input: &mut dyn BufRead, prompt: Option<u8>) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if let Some(prompt) = prompt {
        PROMPT.store(prompt, Ordering::SeqCst);
    }
    let read = input.read_line(&mut line);
    PROMPT.store(NO_PROMPT, Ordering::SeqCst);
    if read? == 0 {
        return Ok(None);
    }
    let end = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(end);
    Ok(Some(line))
}

/// For `/set system """TEXT` whose closing `"""` is on a later line (as
/// Ollama takes a multi-line system message), the text after the opening one.
fn open_system_fence(line: &str) -> Option<&str> {
    let rest = after_word(after_word(line, "/set")?, "system")?;
    let rest = rest.trim_start().strip_prefix(FENCE)?;
    (!rest.trim_end().ends_with(FENCE)).then_some(rest)
}

/// `text` after its first word when that word is `word`.
fn after_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let rest = text.trim_start().strip_prefix(word)?;
    rest.starts_with(char::is_whitespace).then_some(rest)
}

/// The rest of a `"""` message whose first line (after the fence) is `first`:
/// lines up to one ending in `"""`. `None` when the input ends first.
fn read_fenced(
    first: &str,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    interactive: bool,
) -> anyhow::Result<Option<String>> {
    if let Some(text) = first.strip_suffix(FENCE) {
        return Ok(Some(text.to_owned()));
    }
    let mut text = first.to_owned();
    loop {
        if interactive {
            write!(out, "... ")?;
            out.flush()?;
        }
        let Some(line) = read_line(input, interactive.then_some(CONTINUATION_PROMPT))? else {
            return Ok(None);
        };
        text.push('\n');
        if let Some(last) = line.trim_end().strip_suffix(FENCE) {
            text.push_str(last);
            return Ok(Some(text.trim_start_matches('\n').to_owned()));
        }
        text.push_str(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fenced(first: &str, rest: &str) -> Option<String> {
        let mut input = rest.as_bytes();
        read_fenced(first, &mut input, &mut Vec::new(), false).unwrap()
    }

    #[test]
    fn fenced_messages_span_lines() {
        assert_eq!(fenced("one line\"\"\"", ""), Some("one line".into()));
        assert_eq!(
            fenced("", "first\nsecond\nthird\"\"\"\nafter\n"),
            Some("first\nsecond\nthird".into())
        );
        assert_eq!(
            fenced("start", "middle\n\"\"\"\n"),
            Some("start\nmiddle\n".into())
        );
        assert_eq!(fenced("never closed", "x\n"), None);
    }

    #[test]
    fn only_an_unclosed_system_fence_reads_more_lines() {
        assert_eq!(
            open_system_fence("/set system \"\"\"You are"),
            Some("You are")
        );
        assert_eq!(open_system_fence("  /set  system  \"\"\""), Some(""));
        assert_eq!(open_system_fence("/set system \"\"\"One line.\"\"\""), None);
        assert_eq!(open_system_fence("/set system Plain text"), None);
        assert_eq!(open_system_fence("/set systemic \"\"\"x"), None);
        assert_eq!(open_system_fence("\"\"\"/set system x"), None);
    }

    #[test]
    fn read_line_strips_line_endings() {
        let mut input = "a\r\nb\n".as_bytes();
        assert_eq!(read_line(&mut input, None).unwrap(), Some("a".into()));
        assert_eq!(read_line(&mut input, None).unwrap(), Some("b".into()));
        assert_eq!(read_line(&mut input, None).unwrap(), None);
    }
}
