//! What a chat model's answer holds besides text: tool calls and thinking.
//!
//! Every template family writes tool calls its own way (llama.cpp's
//! `common/chat.cpp` lists them): Hermes and Qwen wrap JSON in
//! `<tool_call>…</tool_call>`, Mistral opens a JSON list with `[TOOL_CALLS]`,
//! DeepSeek uses its `<｜tool▁call▁begin｜>` tokens, gpt-oss sends calls on a
//! harmony channel addressed `to=functions.NAME`, and so on. [`Dialect::detect`]
//! tells the family from the template's text; [`OutputParser`] then splits the
//! generated text, as it streams, into content, thinking and tool calls.
//!
//! Content is released as soon as it cannot be the start of a call or of a
//! thinking tag; from the moment a call opens, the rest of the answer is held
//! and parsed at the end. A call that does not parse is returned as content,
//! never dropped.

mod families;
mod grammar;
mod harmony;
#[cfg(test)]
mod tests;

use serde_json::Value;

pub use grammar::{GRAMMAR_MARKERS, ToolChoice, ToolGrammar, lit_with, tool_call_grammar};

/// One tool call the model made.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The id the model gave the call, if its format has one.
    pub id: Option<String>,
    /// The function's name.
    pub name: String,
    /// The arguments: a JSON object.
    pub arguments: Value,
}

/// How a family writes tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolSyntax {
    /// Llama 3.x: a bare JSON `{"name", "parameters"}` object, or after
    /// `<|python_tag|>` (also `name.call(k=v)` for built-in tools).
    Llama3,
    /// Hermes 2 Pro, Qwen 2.5, Qwen 3: `<tool_call>{"name", "arguments"}</tool_call>`
    /// (Qwen3-Coder: `<tool_call><function=NAME><parameter=K>V</parameter>…`).
    Hermes,
    /// Mistral Nemo: `[TOOL_CALLS][{"name", "arguments", "id"}]` (newer
    /// Mistral: `[TOOL_CALLS]NAME[ARGS]{…}`).
    MistralNemo,
    /// Command R7B: `<|START_ACTION|>[{"tool_call_id", "tool_name", "parameters"}]<|END_ACTION|>`.
    CommandR7b,
    /// DeepSeek R1: `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{…}\n```<｜tool▁call▁end｜>…`.
    DeepSeekR1,
    /// DeepSeek V3.1 and later: `<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{…}<｜tool▁call▁end｜>`.
    DeepSeekV31,
    /// gpt-oss: harmony messages, calls on `commentary to=functions.NAME`.
    GptOss,
    /// Granite 3.x: `<|tool_call|>[{"name", "arguments"}]`.
    Granite,
    /// Functionary v3.1 (Llama 3.1): `<function=NAME>{…}</function>`.
    FunctionaryV31,
    /// Functionary v3.2: `>>>NAME\n{…}` sections (`all` is content).
    FunctionaryV32,
    /// FireFunction v2: ` functools[{"name", "arguments"}]`.
    FireFunctionV2,
    /// Any other template that takes tools: the answer is one JSON object,
    /// `{"tool_calls": [{"name", "arguments"}]}`, `{"tool_call": {…}}` or
    /// `{"response": "…"}` (llama.cpp's generic format).
    Generic,
}

/// How a family marks thinking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkSyntax {
    /// The template knows no thinking.
    None,
    /// `<think>…</think>` (DeepSeek R1, Qwen 3, QwQ, Granite 3.3).
    Tags,
    /// Command R7B's `<|START_THINKING|>…<|END_THINKING|>`.
    CommandR7b,
    /// gpt-oss's `analysis` channel.
    Harmony,
}

/// A template family's output conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// How it writes tool calls.
    pub tools: ToolSyntax,
    /// How it marks thinking.
    pub think: ThinkSyntax,
    /// Whether the template renders the request's tools at all.
    pub takes_tools: bool,
}

impl Dialect {
    /// The family of a template (Jinja or Go), from markers in its text, in
    /// the order llama.cpp's `common_chat_templates_apply` tries them.
    pub fn detect(source: &str) -> Dialect {
        let has = |s: &str| source.contains(s);
        let tools = if has("<|channel|>") {
            ToolSyntax::GptOss
        } else if has("<|END_THINKING|><|START_ACTION|>") || has("<|START_ACTION|>") {
            ToolSyntax::CommandR7b
        } else if has("<｜tool▁calls▁begin｜>") || has("<｜tool▁call▁begin｜>") {
            if has("```json") {
                ToolSyntax::DeepSeekR1
            } else {
                ToolSyntax::DeepSeekV31
            }
        } else if has("<|tool_call|>") {
            ToolSyntax::Granite
        } else if has(">>>all") {
            ToolSyntax::FunctionaryV32
        } else if has(" functools[") {
            ToolSyntax::FireFunctionV2
        } else if has("<function=") && has("<|start_header_id|>") {
            ToolSyntax::FunctionaryV31
        } else if has("<tool_call>") {
            ToolSyntax::Hermes
        } else if has("<|start_header_id|>ipython<|end_header_id|>") || has("<|python_tag|>") {
            ToolSyntax::Llama3
        } else if has("[TOOL_CALLS]") {
            ToolSyntax::MistralNemo
        } else {
            ToolSyntax::Generic
        };
        let think = if tools == ToolSyntax::GptOss {
            ThinkSyntax::Harmony
        } else if has("<|START_THINKING|>") {
            ThinkSyntax::CommandR7b
        } else if has("<think>") || has("</think>") {
            ThinkSyntax::Tags
        } else {
            ThinkSyntax::None
        };
        let takes_tools = has("tools") || has(".Tools") || tools != ToolSyntax::Generic;
        Dialect {
            tools,
            think,
            takes_tools,
        }
    }

    /// Whether the model can think (its template marks thinking).
    pub fn thinks(&self) -> bool {
        self.think != ThinkSyntax::None
    }

    /// The thinking tags, for the families that use tags.
    fn think_tags(&self) -> Option<(&'static str, &'static str)> {
        match self.think {
            ThinkSyntax::Tags => Some(("<think>", "</think>")),
            ThinkSyntax::CommandR7b => Some(("<|START_THINKING|>", "<|END_THINKING|>")),
            ThinkSyntax::None | ThinkSyntax::Harmony => None,
        }
    }

    /// Whether a rendered prompt leaves a thinking block open (a generation
    /// prompt ending in `<think>`, as DeepSeek R1's does): the answer then
    /// starts inside it.
    pub fn prompt_opens_thinking(&self, prompt: &str) -> bool {
        self.think_tags()
            .is_some_and(|(open, _)| prompt.trim_end().ends_with(open))
    }

    /// Texts that open a call anywhere in the answer.
    fn call_markers(&self) -> &'static [&'static str] {
        match self.tools {
            ToolSyntax::Llama3 => &["<|python_tag|>"],
            ToolSyntax::Hermes => &["<tool_call>"],
            ToolSyntax::MistralNemo => &["[TOOL_CALLS]"],
            ToolSyntax::CommandR7b => &["<|START_ACTION|>"],
            ToolSyntax::DeepSeekR1 | ToolSyntax::DeepSeekV31 => {
                &["<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>"]
            }
            ToolSyntax::Granite => &["<|tool_call|>"],
            ToolSyntax::FunctionaryV31 => &["<function=", "<|python_tag|>"],
            ToolSyntax::FunctionaryV32 => &[">>>"],
            ToolSyntax::FireFunctionV2 => &[" functools[", "functools["],
            ToolSyntax::GptOss | ToolSyntax::Generic => &[],
        }
    }

    /// Whether a call may also open the answer without a marker: a bare JSON
    /// object (Llama 3, generic) or a first `NAME\n` section (Functionary v3.2,
    /// whose generation prompt ends in `>>>`).
    fn call_at_start(&self) -> bool {
        matches!(
            self.tools,
            ToolSyntax::Llama3 | ToolSyntax::Generic | ToolSyntax::FunctionaryV32
        )
    }

    /// Format tokens that frame content and are not part of it.
    fn content_frames(&self) -> &'static [&'static str] {
        match (self.tools, self.think) {
            (ToolSyntax::CommandR7b, _) => &["<|START_RESPONSE|>", "<|END_RESPONSE|>"],
            (ToolSyntax::Granite, _) => &["<response>", "</response>"],
            _ => &[],
        }
    }

    /// Parses a whole answer (`tools`: whether the request offered tools, so
    /// calls are looked for; `thinking_open`: whether the prompt left a
    /// thinking block open).
    pub fn parse(&self, text: &str, tools: bool, thinking_open: bool) -> Parsed {
        let mut parser = OutputParser::new(*self, tools, thinking_open);
        let mut pieces = parser.push(text);
        pieces.extend(parser.finish());
        let mut out = Parsed::default();
        for piece in pieces {
            match piece {
                Piece::Content(t) => out.content.push_str(&t),
                Piece::Thinking(t) => out.thinking.push_str(&t),
                Piece::Call(c) => out.calls.push(c),
            }
        }
        out
    }
}

/// A whole answer, split.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// The text meant for the user.
    pub content: String,
    /// The model's reasoning.
    pub thinking: String,
    /// The calls, in order.
    pub calls: Vec<ToolCall>,
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Text meant for the user.
    Content(String),
    /// Reasoning.
    Thinking(String),
    /// A complete tool call.
    Call(ToolCall),
}

/// Where a streamed answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing released yet: a thinking tag or a call may open the answer.
    Start,
    /// Inside a thinking block.
    Thinking,
    /// Content.
    Content,
    /// A call has opened: everything from here is held for [`families::parse_calls`].
    Calls,
}

/// Splits a streamed answer into [`Piece`]s.
#[derive(Debug)]
pub struct OutputParser {
    dialect: Dialect,
    tools: bool,
    phase: Phase,
    /// Text received and not yet released.
    held: String,
    /// gpt-oss's parser, which has its own states.
    harmony: Option<harmony::Harmony>,
    /// A thinking block has ended: the whitespace after it is not content.
    after_thinking: bool,
}

impl OutputParser {
    /// A parser for one answer of `dialect` (see [`Dialect::parse`]).
    pub fn new(dialect: Dialect, tools: bool, thinking_open: bool) -> OutputParser {
        let phase = if thinking_open && dialect.think_tags().is_some() {
            Phase::Thinking
        } else {
            Phase::Start
        };
        OutputParser {
            dialect,
            tools,
            phase,
            held: String::new(),
            harmony: (dialect.tools == ToolSyntax::GptOss).then(|| harmony::Harmony::new(tools)),
            after_thinking: false,
        }
    }

    /// Takes the next piece of generated text; returns what may be released.
    pub fn push(&mut self, text: &str) -> Vec<Piece> {
        if let Some(h) = &mut self.harmony {
            return h.push(text);
        }
        self.held.push_str(text);
        let mut out = Vec::new();
        self.advance(&mut out, false);
        out
    }

    /// Ends the answer: releases what is held, with any calls parsed.
    pub fn finish(mut self) -> Vec<Piece> {
        if let Some(h) = self.harmony.take() {
            return h.finish();
        }
        let mut out = Vec::new();
        self.advance(&mut out, true);
        let held = std::mem::take(&mut self.held);
        match self.phase {
            Phase::Calls => {
                let (calls, content) = families::parse_calls(self.dialect.tools, &held);
                for piece in content_then_calls(content, calls) {
                    match piece {
                        Piece::Content(t) => self.content(&mut out, &t),
                        other => out.push(other),
                    }
                }
            }
            Phase::Thinking => push_piece(&mut out, Piece::Thinking(held)),
            Phase::Start | Phase::Content => self.content(&mut out, &held),
        }
        out
    }

    /// Releases content with the family's framing tokens removed.
    fn content(&self, out: &mut Vec<Piece>, text: &str) {
        let mut text = text.to_owned();
        for frame in self.dialect.content_frames() {
            text = text.replace(frame, "");
        }
        push_piece(out, Piece::Content(text));
    }

    /// Moves through the held text as far as it is certain; `end`: no more
    /// text will come.
    fn advance(&mut self, out: &mut Vec<Piece>, end: bool) {
        loop {
            match self.phase {
                Phase::Calls => return,
                Phase::Thinking => {
                    let (_, close) = self.dialect.think_tags().unwrap_or(("", "</think>"));
                    if let Some(i) = self.held.find(close) {
                        let thinking = self.held[..i].to_owned();
                        push_piece(out, Piece::Thinking(thinking));
                        self.held.drain(..i + close.len());
                        self.after_thinking = true;
                        self.phase = Phase::Start;
                        continue;
                    }
                    let keep = if end {
                        0
                    } else {
                        partial_suffix(&self.held, &[close])
                    };
                    let cut = self.held.len() - keep;
                    let thinking: String = self.held.drain(..cut).collect();
                    push_piece(out, Piece::Thinking(thinking));
                    return;
                }
                Phase::Start => {
                    if self.after_thinking {
                        self.held = self.held.trim_start().to_owned();
                    }
                    let trimmed = self.held.trim_start();
                    if let Some((open, _)) = self.dialect.think_tags() {
                        if let Some(rest) = trimmed.strip_prefix(open) {
                            self.held = rest.to_owned();
                            self.phase = Phase::Thinking;
                            continue;
                        }
                        if !end && open.starts_with(trimmed) {
                            return;
                        }
                    }
                    if self.tools && self.dialect.call_at_start() {
                        let opens = match self.dialect.tools {
                            ToolSyntax::FunctionaryV32 => !trimmed.starts_with("all\n"),
                            _ => trimmed.starts_with('{'),
                        };
                        let undecided = match self.dialect.tools {
                            ToolSyntax::FunctionaryV32 => "all\n".starts_with(trimmed),
                            _ => trimmed.is_empty(),
                        };
                        if undecided && !end {
                            return;
                        }
                        if opens && !trimmed.is_empty() {
                            self.phase = Phase::Calls;
                            return;
                        }
                        if self.dialect.tools == ToolSyntax::FunctionaryV32 {
                            self.held = trimmed["all\n".len().min(trimmed.len())..].to_owned();
                        }
                    }
                    self.phase = Phase::Content;
                }
                Phase::Content => {
                    let markers: &[&str] = if self.tools {
                        self.dialect.call_markers()
                    } else {
                        &[]
                    };
                    if let Some(i) = markers.iter().filter_map(|m| self.held.find(m)).min() {
                        let before: String = self.held.drain(..i).collect();
                        self.content(out, &before);
                        self.phase = Phase::Calls;
                        return;
                    }
                    let keep = if end {
                        0
                    } else {
                        let frames = self.dialect.content_frames();
                        partial_suffix(&self.held, markers).max(partial_suffix(&self.held, frames))
                    };
                    let cut = self.held.len() - keep;
                    let content: String = self.held.drain(..cut).collect();
                    self.content(out, &content);
                    return;
                }
            }
        }
    }
}

/// Content before calls, in the order a client reads them.
fn content_then_calls(content: String, calls: Vec<ToolCall>) -> Vec<Piece> {
    let mut out = Vec::new();
    if !content.trim().is_empty() || calls.is_empty() {
        out.push(Piece::Content(content));
    }
    out.extend(calls.into_iter().map(Piece::Call));
    out
}

/// Adds a piece, skipping empty text and joining text to a like neighbour.
fn push_piece(out: &mut Vec<Piece>, piece: Piece) {
    match (out.last_mut(), piece) {
        (_, Piece::Content(t) | Piece::Thinking(t)) if t.is_empty() => {}
        (Some(Piece::Content(a)), Piece::Content(b)) => a.push_str(&b),
        (Some(Piece::Thinking(a)), Piece::Thinking(b)) => a.push_str(&b),
        (_, piece) => out.push(piece),
    }
}

/// The length of the longest end of `text` that is a proper beginning of one
/// of `markers`: text that must be held until the next piece shows whether a
/// marker follows. Always on a character boundary.
fn partial_suffix(text: &str, markers: &[&str]) -> usize {
    let mut best = 0;
    for marker in markers {
        for (i, _) in marker.char_indices().skip(1) {
            if i > best && text.ends_with(&marker[..i]) {
                best = i;
            }
        }
    }
    best
}
