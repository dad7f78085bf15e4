//! What a chat with tools or thinking adds to a job: the grammar of the
//! template family's tool calls, the parsed pieces as events, and tool-call
//! arguments in the form a template takes.

use engine::{Constraint, Grammar};
use model::chat::output::{
    Dialect, GRAMMAR_MARKERS, OutputParser, Piece, ToolChoice, lit_with, tool_call_grammar,
};

use super::Loaded;
use crate::error::ApiError;
use crate::request::{ChatInput, Event};

/// A chat request's prompt and what its answer goes through.
pub(super) struct ChatPrompt {
    pub(super) tokens: Vec<u32>,
    /// Splits the answer into content, thinking and calls.
    pub(super) parser: Option<OutputParser>,
    /// The grammar of the family's calls: from the first token when a call
    /// is forced, from the call's opening text on under `auto`.
    pub(super) constraint: Option<Constraint>,
}

impl Loaded {
    /// The constraint on a chat's tool calls, if it offers tools.
    pub(super) fn tool_constraint(
        &self,
        chat: &ChatInput,
        dialect: Dialect,
        thinking_open: bool,
    ) -> Result<Option<Constraint>, ApiError> {
        if !chat.parse_calls || chat.tools.is_empty() {
            return Ok(None);
        }
        // Format tokens that are control tokens here are named by id.
        let specials: Vec<(String, u32)> = GRAMMAR_MARKERS
            .iter()
            .filter_map(|m| {
                let id = self.tokenizer.token_id(m)?;
                self.tokenizer
                    .token_to_piece(id, false)
                    .is_empty()
                    .then(|| ((*m).to_owned(), id))
            })
            .collect();
        let grammar = tool_call_grammar(
            dialect.tools,
            &chat.tools,
            &chat.tool_choice,
            chat.parallel_tool_calls,
            &specials,
        );
        let Some(grammar) = grammar else {
            if let ToolChoice::Function(name) = &chat.tool_choice {
                return Err(ApiError::bad_request(format!(
                    "tool_choice names the function '{name}', which is not among the tools"
                )));
            }
            return Ok(None);
        };
        let forced = grammar.triggers.is_empty();
        let lark = if forced && thinking_open {
            // The prompt opened a thinking block: a forced call comes after
            // closing it.
            format!(
                "start: {} forced_calls\n{}",
                lit_with("</think>\n\n", &specials),
                grammar.lark.replacen("start:", "forced_calls:", 1)
            )
        } else {
            grammar.lark
        };
        Ok(Some(Constraint::lazy(
            Grammar::Lark(lark),
            grammar.triggers,
        )))
    }
}

/// The messages with every tool call's object arguments as a JSON string,
/// or `None` when none has object arguments.
pub(super) fn with_string_arguments(
    messages: &[serde_json::Value],
) -> Option<Vec<serde_json::Value>> {
    let mut changed = false;
    let mut out = messages.to_vec();
    for m in &mut out {
        let Some(calls) = m.get_mut("tool_calls").and_then(|c| c.as_array_mut()) else {
            continue;
        };
        for call in calls {
            if let Some(args) = call
                .get_mut("function")
                .and_then(|f| f.get_mut("arguments"))
                && args.is_object()
            {
                *args = serde_json::Value::String(args.to_string());
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

/// A parsed piece as the job's event.
pub(super) fn piece_event(piece: Piece) -> Event {
    match piece {
        Piece::Content(t) => Event::Text(t),
        Piece::Thinking(t) => Event::Thinking(t),
        Piece::Call(c) => Event::ToolCall(c),
    }
}
