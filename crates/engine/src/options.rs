//! Generation options, named and defaulted as Ollama's (`api.Options` in
//! ollama/api/types.go), so that `/set parameter` and the API share one set.

use model::LoraUse;
use model::sampler::SamplerParams;

use crate::EngineError;

/// Everything that shapes one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The sampler chain's parameters (`repeat_last_n` is resolved from
    /// [`Options::repeat_last_n`] by [`Options::sampler_params`]).
    pub sampler: SamplerParams,
    /// Penalty window: `-1` is the whole context, `0` disables the penalties.
    pub repeat_last_n: i32,
    /// Context size in tokens.
    pub num_ctx: usize,
    /// Most tokens to generate: `-1` until the model stops, `-2` until the
    /// context is full.
    pub num_predict: i32,
    /// Tokens at the start of the context a context shift keeps.
    pub num_keep: usize,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// When the context fills up during generation: shift it (keep `num_keep`,
    /// drop half of the rest) instead of failing; and a prompt longer than the
    /// context keeps its first `num_keep` and its last tokens instead of being
    /// refused (Ollama's truncation).
    pub context_shift: bool,
    /// Report each generated token's log-probability with this many top
    /// alternatives ([`crate::GenerateResult::logprobs`]); `None` skips the work.
    pub logprobs: Option<usize>,
    /// Render control tokens (`<|channel|>`, `[TOOL_CALLS]`, ...) in the
    /// generated text instead of hiding them: the tool-call and thinking
    /// parsers read a family's markers from the text.
    pub special: bool,
    /// LoRA adapters of the model to run with, at their scales (empty: the
    /// base model). Honoured by the [`crate::scheduler::Scheduler`].
    pub lora: Vec<LoraUse>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sampler: SamplerParams::default(),
            repeat_last_n: 64,
            num_ctx: 4096,
            num_predict: -1,
            num_keep: 4,
            stop: Vec::new(),
            context_shift: false,
            logprobs: None,
            special: false,
            lora: Vec::new(),
        }
    }
}

/// The names [`Options::set`] understands.
pub const OPTION_NAMES: &[&str] = &[
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "repeat_last_n",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "num_predict",
    "num_ctx",
    "num_keep",
    "stop",
    "context_shift",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
];

impl Options {
    /// The sampler parameters with the penalty window resolved against the
    /// context size.
    pub fn sampler_params(&self) -> SamplerParams {
        let repeat_last_n = match self.repeat_last_n {
            n if n < 0 => self.num_ctx,
            n => n as usize,
        };
        SamplerParams {
            repeat_last_n,
            ..self.sampler.clone()
        }
    }

    /// Sets one option from text, as `/set parameter NAME VALUE` gives it. `stop`
    /// takes one or more whitespace-separated sequences (replacing the list);
    /// `seed` takes a non-negative integer or `-1` for a random seed.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), EngineError> {
        let s = &mut self.sampler;
        let value = value.trim();
        match name {
            "temperature" => s.temperature = parse(name, value)?,
            "top_k" => s.top_k = parse(name, value)?,
            "top_p" => s.top_p = parse(name, value)?,
            "min_p" => s.min_p = parse(name, value)?,
            "typical_p" => s.typical_p = parse(name, value)?,
            "repeat_penalty" => s.repeat_penalty = parse(name, value)?,
            "presence_penalty" => s.presence_penalty = parse(name, value)?,
            "frequency_penalty" => s.frequency_penalty = parse(name, value)?,
            "repeat_last_n" => self.repeat_last_n = parse(name, value)?,
            "seed" => {
                let seed: i64 = parse(name, value)?;
                s.seed = u64::try_from(seed).ok();
            }
            "num_predict" => self.num_predict = parse(name, value)?,
            "num_ctx" => {
                let n: usize = parse(name, value)?;
                if n == 0 {
                    return Err(invalid(name, "must be positive"));
                }
                self.num_ctx = n;
            }
            "num_keep" => self.num_keep = parse(name, value)?,
            "stop" => {
                let stop: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
                if stop.is_empty() {
                    return Err(invalid(name, "needs at least one sequence"));
                }
                self.stop = stop;
            }
            "context_shift" => self.context_shift = parse(name, value)?,
            "mirostat" => {
                let v: u8 = parse(name, value)?;
                if v > 2 {
                    return Err(invalid(name, "must be 0 (off), 1 or 2"));
                }
                s.mirostat = v;
            }
            "mirostat_tau" => s.mirostat_tau = parse(name, value)?,
            "mirostat_eta" => s.mirostat_eta = parse(name, value)?,
            _ => {
                return Err(invalid(
                    name,
                    &format!("unknown parameter (known: {})", OPTION_NAMES.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, EngineError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| invalid(name, &format!("'{value}': {e}")))
}

fn invalid(name: &str, reason: &str) -> EngineError {
    EngineError::Option {
        name: name.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_parses_each_kind_of_value() {
        let mut o = Options::default();
        o.set("temperature", "0.25").unwrap();
        o.set("top_k", "7").unwrap();
        o.set("seed", "42").unwrap();
        o.set("stop", "<|end|> ###").unwrap();
        o.set("num_predict", "-2").unwrap();
        o.set("context_shift", "true").unwrap();
        o.set("mirostat", "2").unwrap();
        o.set("mirostat_tau", "3.5").unwrap();
        assert_eq!(o.sampler.temperature, 0.25);
        assert_eq!(o.sampler.top_k, 7);
        assert_eq!(o.sampler.seed, Some(42));
        assert_eq!(o.stop, ["<|end|>", "###"]);
        assert_eq!(o.num_predict, -2);
        assert!(o.context_shift);
        assert_eq!(o.sampler.mirostat, 2);
        assert_eq!(o.sampler.mirostat_tau, 3.5);
        assert!(o.set("mirostat", "3").is_err());
        o.set("seed", "-1").unwrap();
        assert_eq!(o.sampler.seed, None);
    }

    #[test]
    fn bad_names_and_values_are_errors_that_change_nothing() {
        let mut o = Options::default();
        let before = o.clone();
        let err = o.set("top_k", "many").unwrap_err().to_string();
        assert!(err.starts_with("option 'top_k': 'many'"), "{err}");
        assert!(o.set("warmth", "1").is_err());
        assert!(o.set("num_ctx", "0").is_err());
        assert!(o.set("stop", "  ").is_err());
        assert_eq!(o, before);
    }

    #[test]
    fn negative_repeat_last_n_means_the_whole_context() {
        let mut o = Options::default();
        o.set("num_ctx", "512").unwrap();
        o.set("repeat_last_n", "-1").unwrap();
        assert_eq!(o.sampler_params().repeat_last_n, 512);
        o.set("repeat_last_n", "0").unwrap();
        assert_eq!(o.sampler_params().repeat_last_n, 0);
    }
}
