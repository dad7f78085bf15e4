//! What the generation loop needs from a model: run tokens into a sequence's KV
//! cache and hand back the last logits; forget or shift cached positions.
//!
//! [`ModelBackend`] is the real one (a [`Model`] with one [`State`]); tests drive
//! the loop with scripted fakes through the same trait.

use model::{Logits, LoraUse, Model, ModelError, State};

/// One sequence on one model.
pub trait Backend {
    /// Positions the sequence can hold.
    fn n_ctx(&self) -> usize;
    /// Positions already cached (where the next token goes).
    fn n_past(&self) -> usize;
    /// Runs `tokens` at positions `n_past()..`, caches them, and returns the last
    /// token's logits (`n_vocab` floats).
    fn forward(&mut self, tokens: &[u32]) -> Result<&[f32], ModelError>;
    /// Keeps only the first `n` cached positions.
    fn truncate(&mut self, n: usize);
    /// Drops cached positions `keep..keep + discard` and moves the later ones
    /// down (a context shift).
    fn shift(&mut self, keep: usize, discard: usize) -> Result<(), ModelError>;
}

/// A loaded model with the state of one sequence.
#[derive(Debug)]
pub struct ModelBackend<'m> {
    model: &'m Model,
    state: State,
}

impl<'m> ModelBackend<'m> {
    /// A fresh sequence of `n_ctx` positions on `model`.
    pub fn new(model: &'m Model, n_ctx: usize) -> Result<Self, ModelError> {
        Ok(Self {
            model,
            state: model.new_state(n_ctx)?,
        })
    }

    /// Runs the sequence with the LoRA adapters `lora` from now on (a fresh
    /// backend, or one cleared first: cached positions are not recomputed).
    pub fn with_lora(mut self, lora: Vec<LoraUse>) -> Self {
        self.state.set_lora(lora);
        self
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }
}

impl Backend for ModelBackend<'_> {
    fn n_ctx(&self) -> usize {
        self.state.n_ctx()
    }

    fn n_past(&self) -> usize {
        self.state.n_past()
    }

    fn forward(&mut self, tokens: &[u32]) -> Result<&[f32], ModelError> {
        self.model.forward(&mut self.state, tokens, Logits::Last)
    }

    fn truncate(&mut self, n: usize) {
        self.state.truncate(n);
    }

    fn shift(&mut self, keep: usize, discard: usize) -> Result<(), ModelError> {
        self.state.shift(self.model, keep, discard)
    }
}
