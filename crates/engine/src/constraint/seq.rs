//! One sequence's constraint: its parser state, the mask for its next token,
//! and the lazy trigger's watch over the free text before it fires.

use llguidance::Matcher;
use llguidance::toktrie::SimpleVob;
use toktrie::TokEnv;

use crate::EngineError;

/// A compiled constraint for one sequence ([`super::ConstraintEnv::compile`]).
///
/// Per token: [`SeqConstraint::prepare_mask`] (the costly part, which may run
/// on another thread while the forward pass runs), sample from
/// [`SeqConstraint::mask`], then [`SeqConstraint::accept`] the chosen token.
pub struct SeqConstraint {
    matcher: Matcher,
    tok_env: TokEnv,
    /// Waits for a trigger; `None` once the grammar is on.
    lazy: Option<Lazy>,
    /// The mask for the next token, or why it could not be computed.
    mask: Option<Result<SimpleVob, String>>,
}

impl std::fmt::Debug for SeqConstraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqConstraint")
            .field("active", &self.is_active())
            .field("stopped", &self.matcher.is_stopped())
            .finish()
    }
}

/// The free text generated since the last possible start of a trigger.
struct Lazy {
    triggers: Vec<Vec<u8>>,
    /// Bytes of the recent tokens, in order.
    text: Vec<u8>,
    /// The recent tokens with the offset in `text` where each starts.
    tokens: Vec<(u32, usize)>,
    /// Where in `text` a trigger may start (past occurrences the grammar
    /// refused).
    search_from: usize,
}

impl SeqConstraint {
    pub(super) fn new(matcher: Matcher, tok_env: TokEnv, triggers: &[String]) -> SeqConstraint {
        let lazy = (!triggers.is_empty()).then(|| Lazy {
            triggers: triggers.iter().map(|t| t.as_bytes().to_vec()).collect(),
            text: Vec::new(),
            tokens: Vec::new(),
            search_from: 0,
        });
        SeqConstraint {
            matcher,
            tok_env,
            lazy,
            mask: None,
        }
    }

    /// Whether the grammar constrains the next token (a lazy one only after
    /// its trigger).
    pub fn is_active(&self) -> bool {
        self.lazy.is_none()
    }

    /// Computes the mask for the next token, if the grammar is on and it is
    /// not computed yet. Errors are kept for [`SeqConstraint::mask`].
    pub fn prepare_mask(&mut self) {
        if self.is_active() && self.mask.is_none() {
            self.mask = Some(
                self.matcher
                    .compute_mask_or_eos()
                    .map_err(|e| e.to_string()),
            );
        }
    }

    /// The allowed tokens for the next one (bit `i % 32` of word `i / 32`),
    /// computing them if [`SeqConstraint::prepare_mask`] has not; `None` while
    /// a lazy grammar waits for its trigger.
    pub fn mask(&mut self) -> Result<Option<&[u32]>, EngineError> {
        if !self.is_active() {
            return Ok(None);
        }
        self.prepare_mask();
        match self.mask.as_ref().expect("prepared") {
            Ok(mask) => Ok(Some(mask.as_slice())),
            Err(e) => Err(EngineError::Constraint(format!(
                "the grammar failed while generating: {}",
                first_line(e)
            ))),
        }
    }

    /// Advances past the generated `token`, whose text is `piece` (special
    /// tokens rendered). A lazy grammar watches the text for its triggers and,
    /// when one completes, takes the text from the trigger's start on, the
    /// rest of the token that completed it included. If the grammar cannot
    /// take that text (the token ran on past the trigger into something the
    /// grammar refuses), that occurrence does not count and the text stays
    /// free. End-of-generation tokens need not be passed.
    pub fn accept(&mut self, token: u32, piece: &[u8]) -> Result<(), EngineError> {
        self.mask = None;
        let Some(lazy) = self.lazy.as_mut() else {
            return self.consume(&[token]);
        };
        lazy.push(token, piece);
        while let Some((start, feed)) = lazy.triggered(&self.tok_env) {
            if self
                .matcher
                .validate_tokens(&feed)
                .is_ok_and(|n| n == feed.len())
            {
                self.lazy = None;
                return self.consume(&feed);
            }
            lazy.search_from = start + 1;
        }
        lazy.forget_old();
        Ok(())
    }

    /// Whether the grammar is complete and allows nothing more: the sequence
    /// ends here.
    pub fn is_finished(&self) -> bool {
        self.is_active() && self.matcher.is_stopped()
    }

    fn consume(&mut self, tokens: &[u32]) -> Result<(), EngineError> {
        self.matcher.consume_tokens(tokens).map_err(|e| {
            EngineError::Constraint(format!(
                "the grammar rejected a generated token: {}",
                first_line(&e.to_string())
            ))
        })
    }
}

impl Lazy {
    /// Adds a token's text.
    fn push(&mut self, token: u32, piece: &[u8]) {
        self.tokens.push((token, self.text.len()));
        self.text.extend_from_slice(piece);
    }

    /// The first trigger at or after `search_from`: where it starts, and the
    /// tokens the grammar takes from there on: the bytes of the token the
    /// trigger starts in from that point (tokenized again), then the later
    /// tokens as they are.
    fn triggered(&self, tok_env: &TokEnv) -> Option<(usize, Vec<u32>)> {
        let rest = self.text.get(self.search_from..)?;
        let start = self.search_from + self.triggers.iter().filter_map(|t| find(rest, t)).min()?;
        // The token the trigger starts in: the last one starting at or before it.
        let i = self
            .tokens
            .iter()
            .rposition(|&(_, at)| at <= start)
            .expect("the first token starts at 0");
        let (first, at) = self.tokens[i];
        let mut feed = if at == start {
            vec![first]
        } else {
            let end = self.tokens.get(i + 1).map_or(self.text.len(), |&(_, e)| e);
            tok_env.tokenize_bytes(&self.text[start..end])
        };
        feed.extend(self.tokens[i + 1..].iter().map(|&(t, _)| t));
        Some((start, feed))
    }

    /// Drops the tokens that lie wholly before any text a trigger could still
    /// start in.
    fn forget_old(&mut self) {
        let longest = self.triggers.iter().map(Vec::len).max().unwrap_or(1);
        let keep_from = self.text.len().saturating_sub(longest - 1);
        let n = self
            .tokens
            .iter()
            .skip(1)
            .take_while(|&&(_, at)| at <= keep_from)
            .count();
        if n == 0 {
            return;
        }
        let cut = self.tokens[n].1;
        self.text.drain(..cut);
        self.tokens.drain(..n);
        for t in &mut self.tokens {
            t.1 -= cut;
        }
        self.search_from = self.search_from.saturating_sub(cut);
    }
}

/// The first line of an llguidance error (the rest dumps the parser's state
/// and the grammar).
fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or_default()
}

/// The first position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
