//! Embeddings: each text's final hidden states (after the output norm),
//! pooled as the model's `{arch}.pooling_type` says and optionally scaled to
//! unit length.
//!
//! Pooling types are llama.cpp's numbering (`enum llama_pooling_type`):
//! 0 none, 1 mean, 2 CLS (the first token), 3 last. A model without the key
//! (a chat model) is pooled by its last token, as Ollama's runner does when
//! llama.cpp has no pooled embedding for the sequence.

use std::time::{Duration, Instant};

use model::Model;
use model::tokenizer::Tokenizer;

use crate::error::ApiError;
use crate::request::{EmbedInput, Embeddings, Event};

/// How token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The average over the tokens.
    Mean,
    /// The first token's.
    Cls,
    /// The last token's.
    Last,
}

impl Pooling {
    /// The pooling of a model from its metadata.
    pub fn of(metadata: &gguf::Metadata, arch: &str) -> Result<Pooling, ApiError> {
        let key = format!("{arch}.pooling_type");
        match metadata.opt_u32(&key).ok().flatten() {
            None | Some(3) => Ok(Pooling::Last),
            Some(1) => Ok(Pooling::Mean),
            Some(2) => Ok(Pooling::Cls),
            // "none" asks for per-token vectors, which these endpoints do not
            // return; Ollama's runner takes the last token's then too.
            Some(0) => Ok(Pooling::Last),
            Some(other) => Err(ApiError::bad_request(format!(
                "this model's pooling type {other} ({key}) is not supported for embeddings"
            ))),
        }
    }

    /// Pools `states` (`n_tokens` rows of `n_embd`).
    pub fn pool(self, states: &[f32], n_embd: usize) -> Vec<f32> {
        let rows: Vec<&[f32]> = states.chunks_exact(n_embd).collect();
        match (self, rows.first(), rows.last()) {
            (_, None, _) | (_, _, None) => vec![0.0; n_embd],
            (Pooling::Cls, Some(first), _) => first.to_vec(),
            (Pooling::Last, _, Some(last)) => last.to_vec(),
            (Pooling::Mean, _, _) => {
                let mut sum = vec![0.0f32; n_embd];
                for row in &rows {
                    for (s, x) in sum.iter_mut().zip(row.iter()) {
                        *s += x;
                    }
                }
                let n = rows.len() as f32;
                sum.iter_mut().for_each(|s| *s /= n);
                sum
            }
        }
    }
}

/// Scales `v` to unit Euclidean length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        v.iter_mut()
            .for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
}

/// The most inputs one request may embed (OpenAI's limit per request).
pub const MAX_INPUTS: usize = 2048;

/// One request's embeddings, computed an input at a time so that the
/// runner can run a batched generation step between inputs and drop the
/// work as soon as the client has gone.
pub struct Embedder {
    input: EmbedInput,
    pooling: Pooling,
    n_embd: usize,
    num_ctx: usize,
    state: model::State,
    /// The next input to embed.
    next: usize,
    vectors: Vec<Vec<f32>>,
    prompt_eval_count: usize,
    load_duration: Duration,
    submitted: Instant,
}

impl Embedder {
    /// Checks `input` against `model` and sets up its sequence of `num_ctx`
    /// positions.
    pub fn new(
        model: &Model,
        tokenizer: &Tokenizer,
        input: EmbedInput,
        num_ctx: usize,
        load_duration: Duration,
        submitted: Instant,
    ) -> Result<Embedder, ApiError> {
        let md = model.gguf().metadata();
        let arch = &model.info().arch;
        if md
            .opt_bool(&format!("{arch}.attention.causal"))
            .ok()
            .flatten()
            == Some(false)
        {
            return Err(ApiError::bad_request(
                "this model needs non-causal attention for embeddings, which is not implemented yet",
            ));
        }
        let n_inputs = input.texts.len() + input.token_lists.len();
        if n_inputs > MAX_INPUTS {
            return Err(ApiError::bad_request(format!(
                "{n_inputs} inputs are too many for one request: send at most {MAX_INPUTS}"
            )));
        }
        let pooling = Pooling::of(md, arch)?;
        let n_embd = model.info().n_embd;
        if let Some(d) = input.dimensions
            && (d == 0 || d > n_embd)
        {
            return Err(ApiError::bad_request(format!(
                "dimensions {d} is out of range: this model's embeddings have {n_embd}"
            )));
        }
        let n_vocab = tokenizer.n_vocab();
        if let Some((i, bad)) = input.token_lists.iter().enumerate().find_map(|(i, t)| {
            t.iter()
                .find(|&&id| id as usize >= n_vocab)
                .map(|&id| (input.texts.len() + i, id))
        }) {
            return Err(ApiError::bad_request(format!(
                "input {i} holds token {bad}, outside the model's vocabulary of {n_vocab}"
            )));
        }
        let state = model
            .new_state(num_ctx)
            .map_err(|e| ApiError::internal("allocating a sequence", &e))?;
        Ok(Embedder {
            input,
            pooling,
            n_embd,
            num_ctx,
            state,
            next: 0,
            vectors: Vec::with_capacity(n_inputs),
            prompt_eval_count: 0,
            load_duration,
            submitted,
        })
    }

    /// Runs every input with the LoRA adapters `lora` (a model's ADAPTERs,
    /// or the request's `lora` choice).
    pub fn set_lora(&mut self, lora: Vec<model::LoraUse>) {
        self.state.set_lora(lora);
    }

    /// Embeds the next input; `true` once every input is done.
    pub fn step(&mut self, model: &Model, tokenizer: &Tokenizer) -> Result<bool, ApiError> {
        let n_texts = self.input.texts.len();
        let n_inputs = n_texts + self.input.token_lists.len();
        if self.next >= n_inputs {
            return Ok(true);
        }
        let i = self.next;
        self.next += 1;
        let mut tokens = match self.input.texts.get(i) {
            Some(text) => tokenizer.encode(text, true, true),
            None => self.input.token_lists[i - n_texts].clone(),
        };
        if tokens.is_empty() {
            return Err(ApiError::bad_request(format!("input {i} is empty")));
        }
        let num_ctx = self.num_ctx;
        if tokens.len() > num_ctx {
            if !self.input.truncate {
                return Err(ApiError::bad_request(format!(
                    "input {i} is {} tokens, more than the context of {num_ctx} holds; \
                     shorten it, raise num_ctx or set truncate",
                    tokens.len()
                )));
            }
            tokens.truncate(num_ctx);
        }
        self.state.clear();
        let states = model
            .embed(&mut self.state, &tokens)
            .map_err(|e| ApiError::internal("computing embeddings", &e))?;
        let mut v = self.pooling.pool(states, self.n_embd);
        if let Some(d) = self.input.dimensions {
            v.truncate(d);
        }
        if self.input.normalize {
            normalize(&mut v);
        }
        self.prompt_eval_count += tokens.len();
        self.vectors.push(v);
        Ok(self.next >= n_inputs)
    }

    /// Inputs embedded so far, and in all.
    pub fn progress(&self) -> (usize, usize) {
        let total = self.input.texts.len() + self.input.token_lists.len();
        (self.vectors.len(), total)
    }

    /// The answer, once [`Embedder::step`] has said every input is done.
    pub fn finish(self) -> Event {
        Event::Embedded(Embeddings {
            vectors: self.vectors,
            prompt_eval_count: self.prompt_eval_count,
            load_duration: self.load_duration,
            total_duration: self.submitted.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_takes_the_right_rows() {
        let states = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(Pooling::Cls.pool(&states, 2), [1.0, 2.0]);
        assert_eq!(Pooling::Last.pool(&states, 2), [5.0, 6.0]);
        assert_eq!(Pooling::Mean.pool(&states, 2), [3.0, 4.0]);
        assert_eq!(Pooling::Mean.pool(&[], 2), [0.0, 0.0]);
    }

    #[test]
    fn normalize_gives_unit_length() {
        let mut v = [3.0, 4.0];
        normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut z = [0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, [0.0, 0.0]);
    }

    #[test]
    fn pooling_type_comes_from_metadata() {
        let mut md = gguf::Metadata::new();
        assert_eq!(Pooling::of(&md, "llama").unwrap(), Pooling::Last);
        md.set("llama.pooling_type", gguf::Value::U32(1));
        assert_eq!(Pooling::of(&md, "llama").unwrap(), Pooling::Mean);
        md.set("llama.pooling_type", gguf::Value::U32(2));
        assert_eq!(Pooling::of(&md, "llama").unwrap(), Pooling::Cls);
        md.set("llama.pooling_type", gguf::Value::U32(4));
        assert!(Pooling::of(&md, "llama").is_err());
    }
}
