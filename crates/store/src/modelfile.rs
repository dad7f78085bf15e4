//! The Modelfile: how a model in the store is built (ollama docs/modelfile.md,
//! grammar from ollama parser/parser.go).
//!
//! ```text
//! # comment (a whole line)
//! FROM ./model.gguf          # or an existing model: FROM llama3.2
//! ADAPTER ./lora.gguf        # a GGUF LoRA adapter (repeatable)
//! PARAMETER temperature 0.7
//! PARAMETER stop "<|eot_id|>"
//! TEMPLATE """{{ bos_token }}..."""
//! SYSTEM You are a helpful assistant.
//! MESSAGE user Is the sky blue?
//! MESSAGE assistant Yes.
//! LICENSE """..."""
//! ```
//!
//! Commands are case-insensitive. A value is the rest of the line, or a string in
//! `"..."` or `"""..."""` that may span lines; it ends at a line that ends with
//! the closing quotes. There are no escapes. TEMPLATE is a chat template, a Go
//! template as Ollama's or a Jinja one, replacing the file's
//! `tokenizer.chat_template`; the store keeps it as text (the model crate's
//! `ChatTemplate::new` parses it, and the CLI and server check it at create).

use crate::params::{self, Parameters};

/// A parsed Modelfile.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Modelfile {
    /// The FROM argument as written: a path to a GGUF file (relative to the
    /// Modelfile's directory, or starting with `~`), or a model name.
    pub from: String,
    /// ADAPTER arguments as written: paths to GGUF LoRA adapters (relative
    /// to the Modelfile's directory, or starting with `~`), applied on top
    /// of the FROM model's own adapters.
    pub adapters: Vec<String>,
    /// A chat template (Go or Jinja) replacing the model's.
    pub template: Option<String>,
    /// The default system prompt.
    pub system: Option<String>,
    /// PARAMETER values.
    pub parameters: Parameters,
    /// MESSAGE history prepended to every conversation.
    pub messages: Vec<Message>,
    /// LICENSE texts (repeatable).
    pub licenses: Vec<String>,
    /// Notes for the user that do not stop the build (deprecated parameters
    /// that were ignored). Not part of the model.
    pub warnings: Vec<String>,
    /// A llama-quantize preset (`q4_K_M`, `q8_0`, ...) to quantize the
    /// model's weights to on the way into the store (`hearth create
    /// --quantize`, `/api/create`'s `quantize`). Not a Modelfile command.
    pub quantize: Option<String>,
}

/// One MESSAGE.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// A Modelfile that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{msg}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct ModelfileError {
    /// 1-based line of the command at fault; `None` for the file as a whole.
    pub line: Option<usize>,
    /// What is wrong.
    pub msg: String,
}

/// Roles a MESSAGE may have (parser.go `isValidMessageRole`).
const MESSAGE_ROLES: [&str; 3] = ["system", "user", "assistant"];

/// Ollama commands we recognise but cannot build yet.
const UNSUPPORTED: [&str; 4] = ["draft", "renderer", "parser", "requires"];

impl Modelfile {
    /// A Modelfile with only a FROM line.
    pub fn new(from: impl Into<String>) -> Modelfile {
        Modelfile {
            from: from.into(),
            ..Modelfile::default()
        }
    }

    /// Parses Modelfile text.
    pub fn parse(text: &str) -> Result<Modelfile, ModelfileError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let lines: Vec<&str> = text.lines().collect();
        let mut from = None;
        let mut m = Modelfile::default();
        let mut next = 0;
        while next < lines.len() {
            let line_no = next + 1;
            let line = lines[next].trim_start_matches(is_space);
            next += 1;
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |msg: String| ModelfileError {
                line: Some(line_no),
                msg,
            };
            let (word, rest) = split_word(line);
            if !word.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(err(invalid_command(word)));
            }
            let command = word.to_ascii_lowercase();
            match command.as_str() {
                "adapter" => {
                    let value = read_value(&command, rest, &lines, &mut next, line_no)?;
                    m.adapters.push(value);
                }
                "from" | "template" | "system" | "license" => {
                    let value = read_value(&command, rest, &lines, &mut next, line_no)?;
                    match command.as_str() {
                        "from" if from.is_some() => {
                            return Err(err("more than one FROM line".to_owned()));
                        }
                        "from" => from = Some(value),
                        "template" => m.template = Some(value),
                        "system" => m.system = Some(value),
                        _ => m.licenses.push(value),
                    }
                }
                "parameter" => {
                    let (name, rest) = split_word(rest.trim_start_matches(is_space));
                    if name.is_empty() {
                        return Err(err("PARAMETER needs a name and a value".to_owned()));
                    }
                    let value = read_value("PARAMETER", rest, &lines, &mut next, line_no)?;
                    if params::is_deprecated(name) {
                        m.warnings
                            .push(format!("parameter {name} is deprecated and ignored"));
                    } else {
                        m.parameters.set(name, &value).map_err(err)?;
                    }
                }
                "message" => {
                    let (role, rest) = split_word(rest.trim_start_matches(is_space));
                    if !MESSAGE_ROLES.contains(&role) {
                        return Err(err(format!(
                            "message role must be one of \"system\", \"user\", or \"assistant\" (found {role:?})"
                        )));
                    }
                    let content = read_value("MESSAGE", rest, &lines, &mut next, line_no)?;
                    m.messages.push(Message {
                        role: role.to_owned(),
                        content,
                    });
                }
                c if UNSUPPORTED.contains(&c) => {
                    return Err(err(format!("{} is not supported yet", word.to_uppercase())));
                }
                _ => return Err(err(invalid_command(word))),
            }
        }
        m.from = from.ok_or_else(|| ModelfileError {
            line: None,
            msg: "no FROM line".to_owned(),
        })?;
        Ok(m)
    }

    /// The Modelfile as text that [`Modelfile::parse`] reads back to `self`
    /// (warnings aside): FROM, ADAPTERs, TEMPLATE, SYSTEM, PARAMETERs, MESSAGEs, LICENSEs.
    pub fn render(&self) -> String {
        let mut out = format!("FROM {}\n", quote(&self.from));
        for adapter in &self.adapters {
            out.push_str(&format!("ADAPTER {}\n", quote(adapter)));
        }
        if let Some(t) = &self.template {
            out.push_str(&format!("TEMPLATE {}\n", block(t)));
        }
        if let Some(s) = &self.system {
            out.push_str(&format!("SYSTEM {}\n", block(s)));
        }
        for (name, value) in self.parameters.iter() {
            match value {
                params::ParamValue::Strings(items) => {
                    for item in items {
                        out.push_str(&format!("PARAMETER {name} {}\n", quote(item)));
                    }
                }
                scalar => out.push_str(&format!("PARAMETER {name} {scalar}\n")),
            }
        }
        for msg in &self.messages {
            out.push_str(&format!("MESSAGE {} {}\n", msg.role, quote(&msg.content)));
        }
        for license in &self.licenses {
            out.push_str(&format!("LICENSE {}\n", block(license)));
        }
        out
    }
}

impl std::str::FromStr for Modelfile {
    type Err = ModelfileError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Modelfile::parse(s)
    }
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The first word of `s` and what follows it.
fn split_word(s: &str) -> (&str, &str) {
    s.split_once(is_space).unwrap_or((s, ""))
}

fn invalid_command(word: &str) -> String {
    format!(
        "unknown command {word:?}: expected FROM, ADAPTER, PARAMETER, TEMPLATE, SYSTEM, MESSAGE or LICENSE"
    )
}

/// Reads the value that starts at `first` (the rest of the command's line),
/// consuming further lines from `lines[*next..]` for a quoted string that
/// spans lines.
fn read_value(
    command: &str,
    first: &str,
    lines: &[&str],
    next: &mut usize,
    line_no: usize,
) -> Result<String, ModelfileError> {
    let first = first.trim_start_matches(is_space);
    let delim = if first.starts_with("\"\"\"") {
        "\"\"\""
    } else if first.starts_with('"') {
        "\""
    } else {
        let value = first.trim_end_matches(is_space);
        if value.is_empty() {
            return Err(ModelfileError {
                line: Some(line_no),
                msg: format!("{} needs a value", command.to_uppercase()),
            });
        }
        return Ok(value.to_owned());
    };
    let mut value = String::new();
    let mut line = &first[delim.len()..];
    loop {
        let trimmed = line.trim_end_matches(is_space);
        if let Some(body) = trimmed.strip_suffix(delim) {
            value.push_str(body);
            return Ok(value);
        }
        value.push_str(line);
        match lines.get(*next) {
            Some(l) => {
                value.push('\n');
                line = l;
                *next += 1;
            }
            None => {
                return Err(ModelfileError {
                    line: Some(line_no),
                    msg: format!(
                        "unterminated {delim} string: no line ends with the closing {delim}"
                    ),
                });
            }
        }
    }
}

/// A one-line value as written after PARAMETER/MESSAGE/FROM: bare when that
/// reads back the same, else in `"..."`, or `"""..."""` when it holds a quote.
fn quote(s: &str) -> String {
    let bare =
        !s.is_empty() && !s.contains('\n') && !s.starts_with('"') && s.trim_matches(is_space) == s;
    if bare {
        s.to_owned()
    } else if s.contains('"') {
        format!("\"\"\"{s}\"\"\"")
    } else {
        format!("\"{s}\"")
    }
}

/// A multi-line block (TEMPLATE, SYSTEM, LICENSE), always in `"""..."""` as
/// `ollama show --modelfile` writes them.
fn block(s: &str) -> String {
    format!("\"\"\"{s}\"\"\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ParamValue;

    #[test]
    fn parses_every_command() {
        let text = "\u{feff}# a comment\n\
            from ./model.gguf\n\
            \n\
            PARAMETER temperature 0.2\n\
            Parameter stop \"<|eot_id|>\"\n\
            PARAMETER stop \"\"\"User:\"\"\"\n\
            \tPARAMETER num_ctx   8192  \n\
            TEMPLATE \"\"\"{{ bos_token }}\n\
            {% for m in messages %}{{ m.content }}{% endfor %}\n\
            \"\"\"\n\
            SYSTEM You are \"Bob\", a #1 helper.\n\
            MESSAGE user Is the sky blue?\n\
            MESSAGE assistant \"Yes, it is.\"\n\
            LICENSE \"\"\"MIT\"\"\"\n\
            license \"\"\"Apache-2.0\n\
            second line\"\"\"\r\n";
        let m = Modelfile::parse(text).unwrap();
        assert_eq!(m.from, "./model.gguf");
        assert_eq!(
            m.template.as_deref(),
            Some("{{ bos_token }}\n{% for m in messages %}{{ m.content }}{% endfor %}\n")
        );
        assert_eq!(m.system.as_deref(), Some("You are \"Bob\", a #1 helper."));
        assert_eq!(
            m.parameters.get("temperature"),
            Some(&ParamValue::Float(0.2))
        );
        assert_eq!(m.parameters.get("num_ctx"), Some(&ParamValue::Int(8192)));
        assert_eq!(
            m.parameters.get("stop"),
            Some(&ParamValue::Strings(vec![
                "<|eot_id|>".into(),
                "User:".into()
            ]))
        );
        assert_eq!(
            m.messages,
            [
                Message {
                    role: "user".into(),
                    content: "Is the sky blue?".into()
                },
                Message {
                    role: "assistant".into(),
                    content: "Yes, it is.".into()
                }
            ]
        );
        assert_eq!(m.licenses, ["MIT", "Apache-2.0\nsecond line"]);
        assert!(m.warnings.is_empty());
    }

    #[test]
    fn errors_carry_line_numbers() {
        let table: &[(&str, Option<usize>, &str)] = &[
            ("", None, "no FROM line"),
            ("# only a comment\nSYSTEM hi\n", None, "no FROM line"),
            ("FROM a\nFROM b\n", Some(2), "more than one FROM"),
            ("FROM a\nRUN x\n", Some(2), "unknown command \"RUN\""),
            ("FROM a\nFROM2 x\n", Some(2), "unknown command \"FROM2\""),
            ("FROM a\n\nPARAMETER\n", Some(3), "PARAMETER needs a name"),
            (
                "FROM a\nPARAMETER top_k\n",
                Some(2),
                "PARAMETER needs a value",
            ),
            (
                "FROM a\nPARAMETER topk 1\n",
                Some(2),
                "unknown parameter 'topk'",
            ),
            (
                "FROM a\nPARAMETER top_k x\n",
                Some(2),
                "invalid int value for top_k",
            ),
            (
                "FROM a\nMESSAGE bot hi\n",
                Some(2),
                "message role must be one of",
            ),
            ("FROM a\nMESSAGE user\n", Some(2), "MESSAGE needs a value"),
            ("FROM\n", Some(1), "FROM needs a value"),
            (
                "FROM a\nSYSTEM \"\"\"x\ny\n",
                Some(2),
                "unterminated \"\"\" string",
            ),
            ("FROM a\nSYSTEM \"x\n", Some(2), "unterminated \" string"),
            (
                "FROM a\nDRAFT ./small.gguf\n",
                Some(2),
                "DRAFT is not supported yet",
            ),
            ("FROM a\nADAPTER\n", Some(2), "ADAPTER needs a value"),
        ];
        for &(text, line, expected) in table {
            let e = Modelfile::parse(text).expect_err(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.msg.contains(expected), "{text:?}: {e}");
        }
    }

    #[test]
    fn deprecated_parameters_warn() {
        let m = Modelfile::parse("FROM a\nPARAMETER mirostat 2\n").unwrap();
        assert!(m.parameters.is_empty());
        assert_eq!(m.warnings, ["parameter mirostat is deprecated and ignored"]);
    }

    #[test]
    fn render_round_trips() {
        let mut m = Modelfile::new("/models/blobs/sha256-00");
        m.template = Some("{{ x }}\n\"quoted\"\n".into());
        m.system = Some("  leading spaces".into());
        m.parameters.set("stop", "\"").unwrap();
        m.parameters.set("stop", " ").unwrap();
        m.parameters.set("stop", "</s>").unwrap();
        m.parameters.set("top_p", "0.9").unwrap();
        m.parameters.set("use_mmap", "0").unwrap();
        m.messages.push(Message {
            role: "system".into(),
            content: "two\nlines".into(),
        });
        m.licenses.push("L1".into());
        m.licenses.push("L2 \"x\"".into());
        let text = m.render();
        assert_eq!(Modelfile::parse(&text).unwrap(), m, "{text}");
        assert!(text.starts_with("FROM /models/blobs/sha256-00\nTEMPLATE \"\"\""));
        assert!(text.contains("PARAMETER top_p 0.9\n"), "{text}");
        assert!(text.contains("PARAMETER use_mmap false\n"), "{text}");

        m.adapters = vec!["/models/blobs/sha256-01".into(), "./my lora.gguf".into()];
        let text = m.render();
        assert_eq!(Modelfile::parse(&text).unwrap(), m, "{text}");
        assert!(
            text.starts_with(
                "FROM /models/blobs/sha256-00\nADAPTER /models/blobs/sha256-01\n\
                 ADAPTER ./my lora.gguf\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn adapters_are_repeatable() {
        let m = Modelfile::parse("FROM base\nadapter ./a.gguf\nADAPTER \"b c.gguf\"\n").unwrap();
        assert_eq!(m.adapters, ["./a.gguf", "b c.gguf"]);
    }
}
