//! Needle in a haystack: a sentence holding a number is placed at a depth of
//! a long filler text, the text ends with a question about it, and greedy
//! decoding either writes the number or not. Run over several lengths and
//! depths, it turns "quality over long contexts" into a retrieval rate.
//!
//! The prompt is built in token space (BOS, filler sentences tokenized one by
//! one, the needle, more filler, the question) so its length is exact.

use model::tokenizer::Tokenizer;
use model::{Logits, Model};

use super::EvalError;

/// Sentences the haystack repeats (plain facts, none about numbers).
const FILLER: &[&str] = &[
    "The river bends twice before it reaches the old mill.",
    "Autumn leaves collect along the stone wall of the garden.",
    "A quiet library keeps its maps in long wooden drawers.",
    "The baker opens the shop before the first tram arrives.",
    "Gulls follow the fishing boats back into the harbour.",
    "The hill path is steep, but the view from the top is wide.",
    "Lanterns hang over the market street every evening.",
    "The choir practises in the hall on the far side of the square.",
];

/// How to run [`needle`].
#[derive(Clone, Debug)]
pub struct NeedleOptions {
    /// Prompt lengths in tokens.
    pub lengths: Vec<usize>,
    /// Depths of the needle, fractions of the haystack (0 = start, 1 = end).
    pub depths: Vec<f64>,
    /// Tokens to generate for the answer.
    pub n_predict: usize,
}

/// One length × depth trial.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NeedleResult {
    /// Prompt length in tokens.
    pub length: usize,
    /// Needle depth (fraction).
    pub depth: f64,
    /// The number hidden.
    pub expected: String,
    /// What the model wrote.
    pub answer: String,
    /// Whether the answer contains the number.
    pub found: bool,
}

/// Runs every length × depth trial; `progress` gets each result.
pub fn needle(
    model: &Model,
    tokenizer: &Tokenizer,
    options: &NeedleOptions,
    progress: &mut dyn FnMut(&NeedleResult),
) -> Result<Vec<NeedleResult>, EvalError> {
    let encode = |s: &str| tokenizer.encode(s, false, false);
    let filler: Vec<Vec<u32>> = FILLER.iter().map(|s| encode(s)).collect();
    let question = encode(
        "\nQuestion: What is the secret number mentioned in the text above?\n\
         Answer: The secret number is",
    );
    let bos: Vec<u32> = tokenizer
        .bos()
        .filter(|_| tokenizer.add_bos())
        .into_iter()
        .collect();
    let mut results = Vec::new();
    for (li, &length) in options.lengths.iter().enumerate() {
        for (di, &depth) in options.depths.iter().enumerate() {
            if !(0.0..=1.0).contains(&depth) {
                return Err(EvalError::Invalid(format!("depth {depth} is not in 0..1")));
            }
            let number = 1000 + (li * 7919 + di * 104_729 + 4_271) % 9000;
            let needle = encode(&format!(" The secret number is {number}. "));
            let fixed = bos.len() + needle.len() + question.len();
            if length < fixed + 8 {
                return Err(EvalError::Invalid(format!(
                    "a prompt of {length} tokens has no room for a haystack \
                     (the needle and question take {fixed})"
                )));
            }
            let n_hay = length - fixed;
            let at = (n_hay as f64 * depth).round() as usize;
            let mut prompt = bos.clone();
            let mut hay = filler.iter().cycle().flatten().copied();
            prompt.extend(hay.by_ref().take(at));
            prompt.extend_from_slice(&needle);
            prompt.extend(hay.take(n_hay - at));
            prompt.extend_from_slice(&question);

            let mut state = model.new_state(length + options.n_predict)?;
            let mut logits = model.forward(&mut state, &prompt, Logits::Last)?.to_vec();
            let mut answer = Vec::new();
            for _ in 0..options.n_predict {
                let next = argmax(&logits);
                if tokenizer.is_eog(next) {
                    break;
                }
                answer.extend_from_slice(tokenizer.token_to_piece(next, false));
                logits = model.forward(&mut state, &[next], Logits::Last)?.to_vec();
            }
            let answer = String::from_utf8_lossy(&answer).trim().to_owned();
            let expected = number.to_string();
            let result = NeedleResult {
                length,
                depth,
                found: answer.contains(&expected),
                expected,
                answer,
            };
            progress(&result);
            results.push(result);
        }
    }
    Ok(results)
}

/// The first index of the largest value.
fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}
