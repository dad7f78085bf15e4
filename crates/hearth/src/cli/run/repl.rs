//! The interactive chat of `hearth run MODEL`, with Ollama's commands: `/bye`,
//! `/clear`, `/set parameter NAME VALUE` (`num_thread` loads the model again),
//! `/set system TEXT`, `/set verbose`, `/set quiet`, `/show info`, `/?`, and
//! multi-line input between `"""`.
//!
//! Input is read a line at a time from stdin (no line editor), so piped input
//! works the same as typed input; the `>>> ` prompt is shown only on a terminal.
//! There, Ctrl-C while a line is being typed drops it and asks again (as
//! Ollama does); during an answer it ends the answer. With piped input it exits.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::time::Duration;

use engine::{ChatSession, ModelBackend, OPTION_NAMES};
use model::Model;

use super::{CONTINUATION_PROMPT, MAIN_PROMPT, NO_PROMPT, PROMPT, answer, print_timings};
use crate::cli::format;

/// Opens and closes a multi-line message.
const FENCE: &str = "\"\"\"";

const HELP: &str = "Available Commands:
  /set parameter NAME VALUE   Set a parameter (e.g. /set parameter temperature 0.2)
  /set system TEXT            Set the system message
  /set verbose                Show timings after each answer
  /set quiet                  Stop showing timings
  /show info                  Show details for this model
  /clear                      Clear the session context
  /bye                        Exit
  /?, /help                   Help for a command

Use \"\"\" to begin a multi-line message.";

/// The state of one interactive session.
pub(super) struct Repl<'s, 'm, 't> {
    pub(super) session: &'s mut ChatSession<'t, ModelBackend<'m>>,
    pub(super) model: &'m Model,
    pub(super) verbose: bool,
    pub(super) load_duration: Duration,
}

impl Repl<'_, '_, '_> {
    /// Reads messages and commands from `input` until `/bye`, end of input, or
    /// a setting that needs the model loaded again.
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
                match self.command(trimmed, out)? {
                    None => continue,
                    Some(exit) => return Ok(exit),
                }
            }
            match answer(self.session, &message, out) {
                Ok(mut result) => {
                    writeln!(out)?;
                    writeln!(out)?;
                    if self.verbose {
                        if first_answer {
                            result.timings.load_duration = self.load_duration;
                        }
                        print_timings(&result.timings, &mut std::io::stderr())?;
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
                self.session.clear();
                writeln!(out, "Cleared session context")?;
            }
            "/set" => return self.set(line, out),
            "/show" => match words.next() {
                Some("info") => self.show_info(out)?,
                Some("system") => match self.session.system() {
                    Some(system) => writeln!(out, "{system}")?,
                    None => writeln!(out, "No system message was specified for this model.")?,
                },
                _ => writeln!(out, "Usage: /show info | /show system")?,
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
                if name.is_empty() || value.trim().is_empty() {
                    writeln!(out, "Usage: /set parameter NAME VALUE")?;
                    writeln!(out, "Parameters: {}, num_thread", OPTION_NAMES.join(", "))?;
                    return Ok(None);
                }
                if name == "num_thread" {
                    return self.set_threads(value.trim(), out);
                }
                let before = self.session.options.num_ctx;
                match self.session.options.set(name, value) {
                    Ok(()) => {
                        let num_ctx = self.session.options.num_ctx;
                        if num_ctx != before {
                            match ModelBackend::new(self.model, num_ctx) {
                                Ok(backend) => self.session.replace_backend(backend),
                                Err(e) => {
                                    self.session.options.num_ctx = before;
                                    writeln!(out, "error: {e}")?;
                                    return Ok(None);
                                }
                            }
                        }
                        writeln!(out, "Set parameter '{name}' to '{}'", value.trim())?;
                    }
                    Err(e) => writeln!(out, "error: {e}")?,
                }
            }
            "system" => {
                let text = args.strip_prefix(FENCE).unwrap_or(args);
                self.set_system(text.strip_suffix(FENCE).unwrap_or(text), out)?;
            }
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
                "Usage: /set parameter NAME VALUE | /set system TEXT | /set verbose | /set quiet"
            )?,
        }
        Ok(None)
    }

    /// `/set parameter num_thread N` (0: all cores): the thread pool belongs to
    /// the loaded model, so, as in Ollama, the model is loaded again.
    fn set_threads(&mut self, value: &str, out: &mut dyn Write) -> anyhow::Result<Option<Exit>> {
        let n: usize = match value.parse() {
            Ok(n) => n,
            Err(e) => {
                writeln!(out, "error: option 'num_thread': '{value}': {e}")?;
                return Ok(None);
            }
        };
        writeln!(out, "Set parameter 'num_thread' to '{n}'")?;
        if n == self.model.n_threads() {
            return Ok(None);
        }
        Ok(Some(Exit::Reload {
            threads: (n > 0).then_some(n),
        }))
    }

    /// Sets the system message (an empty one removes it).
    fn set_system(&mut self, text: &str, out: &mut dyn Write) -> anyhow::Result<()> {
        let text = text.trim();
        self.session
            .set_system((!text.is_empty()).then(|| text.to_owned()));
        writeln!(out, "Set system message.")?;
        Ok(())
    }

    /// `/show info`: what the model is and the current parameters.
    fn show_info(&self, out: &mut dyn Write) -> anyhow::Result<()> {
        let info = self.model.info();
        let o = &self.session.options;
        let s = &o.sampler;
        writeln!(out, "  Model")?;
        writeln!(out, "    architecture        {}", info.arch)?;
        writeln!(
            out,
            "    parameters          {}",
            format::count(info.n_params)
        )?;
        writeln!(out, "    context length      {}", info.n_ctx_train)?;
        writeln!(out, "    embedding length    {}", info.n_embd)?;
        let quant = info
            .file_type
            .and_then(format::file_type_name)
            .unwrap_or("unknown");
        writeln!(out, "    quantization        {quant}")?;
        writeln!(out)?;
        writeln!(out, "  Parameters")?;
        writeln!(out, "    num_ctx             {}", o.num_ctx)?;
        writeln!(out, "    num_thread          {}", self.model.n_threads())?;
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
