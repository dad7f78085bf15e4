//! Model parameters (`PARAMETER name value` in a Modelfile; the
//! `application/vnd.ollama.image.params` layer, a JSON object): the names Ollama
//! knows, each with its type (ollama api/types.go `Options` and `Runner`, and
//! `FormatParams` for how values are parsed).

use std::collections::BTreeMap;
use std::fmt;

/// The type of a known parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A signed integer (`strconv.ParseInt`: no fraction, no exponent).
    Int,
    /// A finite 32-bit float.
    Float,
    /// A boolean (`true`/`false`, `1`/`0`, `t`/`f`, as Go's `ParseBool`).
    Bool,
    /// A list of strings; each `PARAMETER` line adds one (only `stop`).
    Strings,
}

/// Every parameter a Modelfile may set, with its type.
const KNOWN: &[(&str, ParamKind)] = &[
    // Runner options: how the model is loaded.
    ("num_ctx", ParamKind::Int),
    ("num_batch", ParamKind::Int),
    ("num_gpu", ParamKind::Int),
    ("main_gpu", ParamKind::Int),
    ("use_mmap", ParamKind::Bool),
    ("num_thread", ParamKind::Int),
    // Sampling and generation options.
    ("num_keep", ParamKind::Int),
    ("seed", ParamKind::Int),
    ("num_predict", ParamKind::Int),
    ("top_k", ParamKind::Int),
    ("top_p", ParamKind::Float),
    ("min_p", ParamKind::Float),
    ("typical_p", ParamKind::Float),
    ("repeat_last_n", ParamKind::Int),
    ("temperature", ParamKind::Float),
    ("repeat_penalty", ParamKind::Float),
    ("presence_penalty", ParamKind::Float),
    ("frequency_penalty", ParamKind::Float),
    ("stop", ParamKind::Strings),
];

/// Parameters Ollama once accepted and now ignores with a warning (parser.go
/// `deprecatedParameters`); old Modelfiles still carry them.
const DEPRECATED: &[&str] = &[
    "penalize_newline",
    "low_vram",
    "f16_kv",
    "logits_all",
    "vocab_only",
    "use_mlock",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
];

/// The type of parameter `name`, if it is one we know.
pub fn param_kind(name: &str) -> Option<ParamKind> {
    KNOWN.iter().find(|(n, _)| *n == name).map(|&(_, k)| k)
}

/// Whether `name` is a parameter that is accepted and ignored.
pub fn is_deprecated(name: &str) -> bool {
    DEPRECATED.contains(&name)
}

/// One parameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// An integer parameter.
    Int(i64),
    /// A float parameter.
    Float(f32),
    /// A boolean parameter.
    Bool(bool),
    /// A list parameter (`stop`).
    Strings(Vec<String>),
}

impl ParamValue {
    /// The value as JSON, as the params layer stores it.
    fn to_json(&self) -> serde_json::Value {
        match self {
            ParamValue::Int(v) => (*v).into(),
            // Through the shortest decimal form, so 0.7 is written as 0.7 and not
            // as the f64 nearest the f32 (0.699999988079071).
            ParamValue::Float(v) => v
                .to_string()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            ParamValue::Bool(v) => (*v).into(),
            ParamValue::Strings(v) => v.clone().into(),
        }
    }

    /// The value as `kind`, from JSON (numbers written by other tools may be
    /// integral floats, and a list may be a single string).
    fn from_json(kind: ParamKind, v: &serde_json::Value) -> Option<ParamValue> {
        use serde_json::Value as J;
        Some(match (kind, v) {
            (ParamKind::Int, J::Number(n)) => ParamValue::Int(n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })?),
            (ParamKind::Float, J::Number(n)) => ParamValue::Float(n.as_f64()? as f32),
            (ParamKind::Bool, J::Bool(b)) => ParamValue::Bool(*b),
            (ParamKind::Strings, J::String(s)) => ParamValue::Strings(vec![s.clone()]),
            (ParamKind::Strings, J::Array(items)) => ParamValue::Strings(
                items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect::<Option<_>>()?,
            ),
            _ => return None,
        })
    }
}

/// A named set of parameters, ordered by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parameters(BTreeMap<String, ParamValue>);

impl Parameters {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The parameters as `/api/show`'s `parameters` field lists them (and
    /// `show --parameters` prints them): one `name value` line per value,
    /// the name padded to 30 columns, strings quoted.
    pub fn show_text(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.0 {
            let values = match value {
                ParamValue::Int(v) => vec![v.to_string()],
                ParamValue::Float(v) => vec![v.to_string()],
                ParamValue::Bool(v) => vec![v.to_string()],
                ParamValue::Strings(v) => v.iter().map(|s| format!("{s:?}")).collect(),
            };
            for v in values {
                out.push_str(&format!("{name:<30} {v}\n"));
            }
        }
        out
    }

    /// Parses `raw` as the value of `name` and sets it; for a list parameter the
    /// value is appended. Errors name the parameter and say what was expected.
    /// Deprecated parameters are rejected here; callers that accept them (the
    /// Modelfile parser) check [`is_deprecated`] first.
    pub fn set(&mut self, name: &str, raw: &str) -> Result<(), String> {
        let kind = param_kind(name).ok_or_else(|| format!("unknown parameter '{name}'"))?;
        let value = match kind {
            ParamKind::Int => ParamValue::Int(
                raw.parse()
                    .map_err(|_| format!("invalid int value for {name}: {raw:?}"))?,
            ),
            ParamKind::Float => ParamValue::Float(
                raw.parse::<f32>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| format!("invalid float value for {name}: {raw:?}"))?,
            ),
            ParamKind::Bool => ParamValue::Bool(match raw {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                _ => return Err(format!("invalid bool value for {name}: {raw:?}")),
            }),
            ParamKind::Strings => {
                if let Some(ParamValue::Strings(list)) = self.0.get_mut(name) {
                    list.push(raw.to_owned());
                    return Ok(());
                }
                ParamValue::Strings(vec![raw.to_owned()])
            }
        };
        self.0.insert(name.to_owned(), value);
        Ok(())
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.0.get(name)
    }

    /// Every parameter, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether no parameter is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `base`'s parameters that `self` does not set (ollama server/create.go
    /// `setParameters`: a derived model's value replaces the base's, lists
    /// included).
    pub fn inherit(&mut self, base: &Parameters) {
        for (name, value) in &base.0 {
            self.0.entry(name.clone()).or_insert_with(|| value.clone());
        }
    }

    /// The params layer: a JSON object, keys sorted.
    pub fn to_json(&self) -> Vec<u8> {
        let map: serde_json::Map<String, serde_json::Value> = self
            .0
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        serde_json::Value::Object(map).to_string().into_bytes()
    }

    /// Reads a params layer. Names this version does not know, and values of
    /// the wrong type, are skipped: a model written by a newer tool still loads.
    pub fn from_json(bytes: &[u8]) -> Result<Parameters, String> {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(bytes).map_err(|e| format!("params layer: {e}"))?;
        let params = map
            .iter()
            .filter_map(|(name, v)| {
                let value = ParamValue::from_json(param_kind(name)?, v)?;
                Some((name.clone(), value))
            })
            .collect();
        Ok(Parameters(params))
    }
}

impl fmt::Display for ParamValue {
    /// Scalars as written in a Modelfile; a list's items joined by ", " (use
    /// [`Parameters::iter`] and match on the list to print one per line).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::Float(v) => write!(f, "{v}"),
            ParamValue::Bool(v) => write!(f, "{v}"),
            ParamValue::Strings(v) => write!(f, "{}", v.join(", ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values() {
        let mut p = Parameters::new();
        p.set("temperature", "0.7").unwrap();
        p.set("num_ctx", "4096").unwrap();
        p.set("use_mmap", "false").unwrap();
        p.set("stop", "<|eot_id|>").unwrap();
        p.set("stop", "User:").unwrap();
        p.set("seed", "-1").unwrap();
        assert_eq!(p.get("temperature"), Some(&ParamValue::Float(0.7)));
        assert_eq!(p.get("num_ctx"), Some(&ParamValue::Int(4096)));
        assert_eq!(p.get("use_mmap"), Some(&ParamValue::Bool(false)));
        assert_eq!(p.get("seed"), Some(&ParamValue::Int(-1)));
        assert_eq!(
            p.get("stop"),
            Some(&ParamValue::Strings(vec![
                "<|eot_id|>".into(),
                "User:".into()
            ]))
        );
        let json = String::from_utf8(p.to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"num_ctx":4096,"seed":-1,"stop":["<|eot_id|>","User:"],"temperature":0.7,"use_mmap":false}"#
        );
        assert_eq!(Parameters::from_json(json.as_bytes()).unwrap(), p);
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let mut p = Parameters::new();
        let cases = [
            ("num_ctx", "4k", "invalid int value for num_ctx"),
            ("num_ctx", "1.5", "invalid int value for num_ctx"),
            ("top_p", "high", "invalid float value for top_p"),
            ("top_p", "inf", "invalid float value for top_p"),
            ("use_mmap", "yes", "invalid bool value for use_mmap"),
            ("temprature", "1", "unknown parameter 'temprature'"),
        ];
        for (name, raw, expected) in cases {
            let e = p.set(name, raw).unwrap_err();
            assert!(e.contains(expected), "{name} {raw}: {e}");
        }
        assert!(p.is_empty());
    }

    #[test]
    fn inherit_keeps_own_values() {
        let mut base = Parameters::new();
        base.set("stop", "a").unwrap();
        base.set("stop", "b").unwrap();
        base.set("top_k", "20").unwrap();
        let mut derived = Parameters::new();
        derived.set("stop", "c").unwrap();
        derived.inherit(&base);
        assert_eq!(
            derived.get("stop"),
            Some(&ParamValue::Strings(vec!["c".into()]))
        );
        assert_eq!(derived.get("top_k"), Some(&ParamValue::Int(20)));
    }

    #[test]
    fn reads_json_from_other_writers() {
        // Go writes float32(1) as 1; a lone stop string; unknown keys skipped.
        let json = br#"{"temperature":1,"num_ctx":2048.0,"stop":"x","mirostat":2}"#;
        let p = Parameters::from_json(json).unwrap();
        assert_eq!(p.get("temperature"), Some(&ParamValue::Float(1.0)));
        assert_eq!(p.get("num_ctx"), Some(&ParamValue::Int(2048)));
        assert_eq!(p.get("stop"), Some(&ParamValue::Strings(vec!["x".into()])));
        assert_eq!(p.iter().count(), 3);
        assert!(Parameters::from_json(b"[1]").is_err());
    }
}
