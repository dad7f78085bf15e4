//! The vocabulary as llguidance sees it, and the grammar compiler over it.

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use model::tokenizer::Tokenizer;
use toktrie::{TokEnv, TokRxInfo, TokTrie, TokenizerEnv};

use super::{Constraint, Grammar, SeqConstraint, gbnf_to_lark};
use crate::EngineError;

/// A model's vocabulary as a token trie, with the grammar compiler over it.
/// Build it once per model ([`ConstraintEnv::new`] walks every token) and
/// compile each request's constraint with [`ConstraintEnv::compile`].
pub struct ConstraintEnv {
    factory: ParserFactory,
}

impl std::fmt::Debug for ConstraintEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConstraintEnv")
            .field("n_vocab", &self.factory.tok_env().tok_trie().vocab_size())
            .finish()
    }
}

/// The token trie, tokenizing greedily. llguidance tokenizes only to feed
/// text it already holds (a lazy grammar's trigger); any tokenization of the
/// same bytes is accepted, so greedy is enough, and it is marked
/// non-canonical so that llguidance never forces tokens from it.
struct TrieEnv {
    trie: TokTrie,
}

impl TokenizerEnv for TrieEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<u32> {
        self.trie.greedy_tokenize(s)
    }

    fn tokenize_is_canonical(&self) -> bool {
        false
    }
}

impl ConstraintEnv {
    /// The environment for `tokenizer`'s vocabulary. A token's bytes are what
    /// it renders as text (byte-fallback tokens their byte, SentencePiece's
    /// `▁` a space); a token that renders as nothing unless special tokens are
    /// shown (control tokens such as `</s>`, `<|eot_id|>`) gets its text
    /// behind llguidance's special-token marker byte, so that no grammar text
    /// can produce it (as llama.cpp's llguidance sampler builds it). The
    /// end-of-generation tokens are the ones a grammar's end allows.
    pub fn new(tokenizer: &Tokenizer) -> Result<ConstraintEnv, EngineError> {
        let n_vocab = tokenizer.n_vocab();
        let words: Vec<Vec<u8>> = (0..n_vocab as u32)
            .map(|id| {
                let plain = tokenizer.token_to_piece(id, false);
                if !plain.is_empty() {
                    return plain.to_vec();
                }
                let special = tokenizer.token_to_piece(id, true);
                if special.is_empty() {
                    return Vec::new();
                }
                let mut marked = Vec::with_capacity(special.len() + 1);
                marked.push(TokTrie::SPECIAL_TOKEN_MARKER);
                marked.extend_from_slice(special);
                marked
            })
            .collect();
        let eog = tokenizer.eog_ids();
        let eos = tokenizer
            .eos()
            .filter(|&t| (t as usize) < n_vocab)
            .or_else(|| eog.first().copied())
            .ok_or_else(|| {
                EngineError::Constraint(
                    "this model has no end-of-generation token, which constrained decoding needs"
                        .to_owned(),
                )
            })?;
        let mut eos_tokens = vec![eos];
        eos_tokens.extend(
            eog.iter()
                .copied()
                .filter(|&t| t != eos && (t as usize) < n_vocab),
        );
        let info = TokRxInfo {
            tok_bos: tokenizer.bos(),
            tok_end_of_turn: tokenizer.eot(),
            ..TokRxInfo::new(n_vocab as u32, eos)
        };
        let trie = TokTrie::from(&info, &words).with_eos_tokens(&eos_tokens);
        let env: TokEnv = Arc::new(TrieEnv { trie });
        let mut factory = ParserFactory::new_simple(&env)
            .map_err(|e| EngineError::Constraint(format!("building the token trie: {e}")))?;
        // Grammar problems are returned as errors, never printed.
        factory.quiet();
        Ok(ConstraintEnv { factory })
    }

    /// Compiles `constraint` for one sequence. An invalid schema, grammar or
    /// regular expression is an [`EngineError::Constraint`] naming the problem.
    pub fn compile(&self, constraint: &Constraint) -> Result<SeqConstraint, EngineError> {
        let grammar = top_level(&constraint.grammar)?;
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| invalid(&constraint.grammar, &e.to_string()))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(invalid(&constraint.grammar, &e));
        }
        for t in &constraint.triggers {
            if t.is_empty() {
                return Err(EngineError::Constraint(
                    "a lazy grammar's trigger is empty".to_owned(),
                ));
            }
        }
        Ok(SeqConstraint::new(
            matcher,
            self.factory.tok_env().clone(),
            &constraint.triggers,
        ))
    }

    /// Tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.factory.tok_env().tok_trie().vocab_size()
    }
}

/// The llguidance grammar for `grammar`.
fn top_level(grammar: &Grammar) -> Result<TopLevelGrammar, EngineError> {
    Ok(match grammar {
        Grammar::JsonObject => {
            TopLevelGrammar::from_json_schema(serde_json::json!({"type": "object"}))
        }
        Grammar::JsonSchema(schema) => {
            if !schema.is_object() && !schema.is_boolean() {
                return Err(invalid(grammar, "a JSON Schema is an object or a boolean"));
            }
            TopLevelGrammar::from_json_schema(schema.clone())
        }
        Grammar::Gbnf(text) => {
            let lark = gbnf_to_lark(text).map_err(|e| invalid(grammar, &e))?;
            TopLevelGrammar::from_lark(lark)
        }
        Grammar::Lark(text) => TopLevelGrammar::from_lark(text.clone()),
        Grammar::Regex(rx) => TopLevelGrammar::from_regex(rx),
    })
}

fn invalid(grammar: &Grammar, reason: &str) -> EngineError {
    let what = match grammar {
        Grammar::JsonObject => "JSON mode",
        Grammar::JsonSchema(_) => "invalid JSON Schema",
        Grammar::Gbnf(_) => "invalid GBNF grammar",
        Grammar::Lark(_) => "invalid Lark grammar",
        Grammar::Regex(_) => "invalid regular expression",
    };
    // llguidance's messages can carry the whole grammar; the first lines say
    // what is wrong.
    let reason: String = reason.lines().take(4).collect::<Vec<_>>().join("; ");
    EngineError::Constraint(format!("{what}: {reason}"))
}
