//! gpt-oss's harmony format: the answer is a run of messages, each a header
//! (`<|channel|>analysis`, `<|start|>assistant<|channel|>final`,
//! `<|channel|>commentary to=functions.NAME <|constrain|>json`) then
//! `<|message|>` and a body ending at `<|end|>`, `<|call|>` or `<|return|>`
//! (the last two end the generation, so they rarely appear in the text).
//! `analysis` is thinking, `final` (and `commentary` without a recipient) is
//! content, a message to `functions.NAME` is a call whose body is its JSON
//! arguments.

use super::families::json_prefix;
use super::{Piece, ToolCall, partial_suffix, push_piece};

const MESSAGE: &str = "<|message|>";
const BODY_ENDS: [&str; 4] = ["<|end|>", "<|call|>", "<|return|>", "<|start|>"];
/// A header longer than this without `<|message|>` is not a header.
const MAX_HEADER: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading a message's header.
    Header,
    /// In a body of thinking, content, or a call to the named function.
    Thinking,
    Content,
    Call(String),
}

/// The harmony parser's state.
#[derive(Debug)]
pub(super) struct Harmony {
    tools: bool,
    state: State,
    held: String,
}

impl Harmony {
    pub(super) fn new(tools: bool) -> Harmony {
        Harmony {
            tools,
            state: State::Header,
            held: String::new(),
        }
    }

    pub(super) fn push(&mut self, text: &str) -> Vec<Piece> {
        self.held.push_str(text);
        let mut out = Vec::new();
        self.advance(&mut out, false);
        out
    }

    pub(super) fn finish(mut self) -> Vec<Piece> {
        let mut out = Vec::new();
        self.advance(&mut out, true);
        let held = std::mem::take(&mut self.held);
        match std::mem::replace(&mut self.state, State::Header) {
            State::Header | State::Content => push_piece(&mut out, Piece::Content(held)),
            State::Thinking => push_piece(&mut out, Piece::Thinking(held)),
            State::Call(name) => self.end_call(&mut out, name, &held),
        }
        out
    }

    /// A call's body: its arguments, or content if they do not parse.
    fn end_call(&self, out: &mut Vec<Piece>, name: String, body: &str) {
        let args = json_prefix(body).filter(|(v, rest)| v.is_object() && rest.trim().is_empty());
        match args {
            Some((arguments, _)) => push_piece(
                out,
                Piece::Call(ToolCall {
                    id: None,
                    name,
                    arguments,
                }),
            ),
            None => push_piece(out, Piece::Content(body.to_owned())),
        }
    }

    fn advance(&mut self, out: &mut Vec<Piece>, end: bool) {
        loop {
            match self.state.clone() {
                State::Header => {
                    let Some(i) = self.held.find(MESSAGE) else {
                        let trimmed = self.held.trim_start();
                        let plausible = trimmed.is_empty()
                            || trimmed.starts_with("<|")
                            || "<|".starts_with(trimmed)
                            || trimmed.starts_with(" to=")
                            || trimmed.starts_with("to=");
                        if !plausible || self.held.len() > MAX_HEADER {
                            // Not harmony: the rest is plain content.
                            self.state = State::Content;
                            continue;
                        }
                        return;
                    };
                    let header: String = self.held.drain(..i + MESSAGE.len()).collect();
                    self.state = self.header_state(&header[..i]);
                }
                State::Thinking | State::Content | State::Call(_) => {
                    let found = BODY_ENDS
                        .iter()
                        .filter_map(|m| self.held.find(m).map(|i| (i, *m)))
                        .min();
                    match found {
                        Some((i, marker)) => {
                            let body: String = self.held.drain(..i).collect();
                            // `<|start|>` opens the next header, which keeps it.
                            if marker != "<|start|>" {
                                self.held.drain(..marker.len());
                            }
                            self.end_body(out, body);
                            self.state = State::Header;
                        }
                        None => {
                            if matches!(self.state, State::Call(_)) {
                                return;
                            }
                            let keep = if end {
                                0
                            } else {
                                partial_suffix(&self.held, &BODY_ENDS)
                            };
                            let cut = self.held.len() - keep;
                            let text: String = self.held.drain(..cut).collect();
                            self.end_body(out, text);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Releases a body (or part of one) as its state says.
    fn end_body(&self, out: &mut Vec<Piece>, body: String) {
        match &self.state {
            State::Thinking => push_piece(out, Piece::Thinking(body)),
            State::Call(name) => self.end_call(out, name.clone(), &body),
            State::Content | State::Header => push_piece(out, Piece::Content(body)),
        }
    }

    /// What a header announces.
    fn header_state(&self, header: &str) -> State {
        let word_after = |key: &str| {
            header.find(key).map(|i| {
                let rest = &header[i + key.len()..];
                let end = rest
                    .find(|c: char| c.is_whitespace() || c == '<')
                    .unwrap_or(rest.len());
                rest[..end].to_owned()
            })
        };
        if let Some(recipient) = word_after("to=")
            && let Some(name) = recipient.strip_prefix("functions.")
            && self.tools
            && !name.is_empty()
        {
            return State::Call(name.to_owned());
        }
        match word_after("<|channel|>").as_deref() {
            Some("analysis") => State::Thinking,
            _ => State::Content,
        }
    }
}
