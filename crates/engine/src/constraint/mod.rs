//! Constrained decoding: a token mask applied before sampling, so that the
//! generated text matches a grammar (structured output, forced tool calls).
//!
//! The grammar engine is llguidance (the one llama.cpp and vLLM use): an
//! Earley parser over a lexer whose masks are computed against a trie of the
//! vocabulary's token bytes. Its pieces here:
//!
//! - [`Constraint`]: what a request asks for, a [`Grammar`] (JSON mode, a JSON
//!   Schema, a llama.cpp GBNF grammar, a Lark grammar or a regular expression)
//!   and optional lazy trigger strings.
//! - [`ConstraintEnv`]: the vocabulary as llguidance sees it (token id to
//!   bytes, special tokens marked, the end-of-generation tokens) and the
//!   grammar compiler over it. Building it walks the whole vocabulary, so it is
//!   built once per loaded model and shared ([`crate::scheduler::Scheduler`]
//!   keeps one).
//! - [`SeqConstraint`]: one sequence's compiled grammar and parser state; the
//!   scheduler computes its mask for the next token (on a helper thread, while
//!   the batch's forward pass runs), samples from the allowed tokens only, and
//!   advances it with the chosen token.
//!
//! The end-of-generation tokens (EOS, end of turn) are allowed exactly when
//! the grammar accepts the text so far; when the grammar can go no further the
//! sequence ends there. Special tokens are never produced by text in a
//! grammar: their bytes are marked (llguidance's `\xff` prefix), so only a
//! Lark grammar naming them (`<|tool_call|>`, `<[128010]>`) can allow them.
//!
//! # Grammars for other features
//!
//! Tool calling builds its grammars as Lark text ([`Grammar::Lark`]), which
//! can embed JSON Schemas with `%json { ... }`, e.g. a Hermes-style call:
//!
//! ```text
//! start: "<tool_call>\n" call "\n</tool_call>"
//! call: %json {"type": "object", "properties": {"name": {"const": "get_weather"},
//!              "arguments": {"type": "object"}}, "required": ["name", "arguments"]}
//! ```
//!
//! With `tool_choice: auto` the model may answer in text or call a tool: give
//! the grammar lazily, [`Constraint::lazy`] with the call's opening strings as
//! triggers (`["<tool_call>"]`). The output is free until one of them is
//! generated; from there on the grammar constrains the rest, and it is
//! matched from the start of the trigger, so the grammar must begin with the
//! trigger text (as llama.cpp's lazy grammars do). The grammar takes the
//! whole token that completed the trigger; if that token ran on into text the
//! grammar refuses, the occurrence does not count and the output stays free.
//! When the grammar is complete the sequence ends, so a grammar for several
//! calls in a row must allow them all.

mod env;
mod gbnf;
mod seq;

pub use env::ConstraintEnv;
pub use gbnf::gbnf_to_lark;
pub use seq::SeqConstraint;

/// What the generated text must match.
#[derive(Debug, Clone, PartialEq)]
pub enum Grammar {
    /// Any JSON object (Ollama's `format: "json"`, OpenAI's `json_object`).
    JsonObject,
    /// A JSON Schema (draft 2020-12 keywords as llguidance supports them:
    /// types, properties, required, additionalProperties, enum, const,
    /// anyOf/oneOf/allOf, `$ref`/`$defs`, min/maxItems, min/maxLength,
    /// pattern, format, numeric bounds).
    JsonSchema(serde_json::Value),
    /// A llama.cpp GBNF grammar (`root ::= ...`), converted to Lark.
    Gbnf(String),
    /// A grammar in llguidance's Lark dialect (`start: ...`), which may embed
    /// JSON Schemas (`%json { ... }`) and regular expressions.
    Lark(String),
    /// A regular expression the whole output must match.
    Regex(String),
}

/// A request's constraint: a grammar, applied from the first generated token
/// or, when `triggers` is not empty, lazily from the first trigger on.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// The grammar.
    pub grammar: Grammar,
    /// Strings that switch the grammar on (empty: on from the start). The
    /// grammar matches the text from the start of the trigger that fired.
    pub triggers: Vec<String>,
}

impl Constraint {
    /// A grammar that constrains the whole output.
    pub fn new(grammar: Grammar) -> Constraint {
        Constraint {
            grammar,
            triggers: Vec::new(),
        }
    }

    /// A grammar that constrains the output from the first of `triggers` on
    /// (llama.cpp's lazy grammar); the text before it is free.
    pub fn lazy(grammar: Grammar, triggers: Vec<String>) -> Constraint {
        Constraint { grammar, triggers }
    }
}
