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

/// Embeds every text of `input` on `model`, each in a fresh sequence of
/// `num_ctx` positions.
pub fn run(
    model: &Model,
    tokenizer: &Tokenizer,
    input: &EmbedInput,
    num_ctx: usize,
    load_duration: Duration,
    submitted: Instant,
) -> Result<Event, ApiError> {
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
    let pooling = Pooling::of(md, arch)?;
    let n_embd = model.info().n_embd;
    if let Some(d) = input.dimensions
        && (d == 0 || d > n_embd)
    {
        return Err(ApiError::bad_request(format!(
            "dimensions {d} is out of range: this model's embeddings have {n_embd}"
        )));
    }
    let mut state = model
        .new_state(num_ctx)
        .map_err(|e| ApiError::internal("allocating a sequence", &e))?;
    let n_inputs = input.texts.len() + input.token_lists.len();
    let mut vectors = Vec::with_capacity(n_inputs);
    let mut prompt_eval_count = 0;
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
    let encoded = input.texts.iter().map(|t| tokenizer.encode(t, true, true));
    for (i, mut tokens) in encoded.chain(input.token_lists.iter().cloned()).enumerate() {
        if tokens.is_empty() {
            return Err(ApiError::bad_request(format!("input {i} is empty")));
        }
        if tokens.len() > num_ctx {
            if !input.truncate {
                return Err(ApiError::bad_request(format!(
                    "input {i} is {} tokens, more than the context of {num_ctx} holds; \
                     shorten it, raise num_ctx or set truncate",
                    tokens.len()
                )));
            }
            tokens.truncate(num_ctx);
        }
        state.clear();
        let states = model
            .embed(&mut state, &tokens)
            .map_err(|e| ApiError::internal("computing embeddings", &e))?;
        let mut v = pooling.pool(states, n_embd);
        if let Some(d) = input.dimensions {
            v.truncate(d);
        }
        if input.normalize {
            normalize(&mut v);
        }
        prompt_eval_count += tokens.len();
        vectors.push(v);
    }
    Ok(Event::Embedded(Embeddings {
        vectors,
        prompt_eval_count,
        load_duration,
        total_duration: submitted.elapsed(),
    }))
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
