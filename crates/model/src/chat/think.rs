//! Whether a model should think before it answers, and the template variables
//! that say so: each family's template reads its own flag.

use serde_json::{Map, Value};

/// Ollama's `think`, OpenAI's `reasoning_effort`, `hearth run --think`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Think {
    /// As the template does by default.
    #[default]
    Default,
    /// Thinking switched off through the template's flags.
    Off,
    /// Thinking switched on.
    On,
    /// Thinking on at `low`, `medium` or `high` effort.
    Level(String),
}

impl Think {
    /// A named effort (`low`, `medium`, `high`; `minimal` and `none` switch
    /// thinking off), or `None` for any other name.
    pub fn level(name: &str) -> Option<Think> {
        match name {
            "low" | "medium" | "high" => Some(Think::Level(name.to_owned())),
            "minimal" | "none" => Some(Think::Off),
            _ => None,
        }
    }

    /// A command-line value: `true`/`false` or a level.
    pub fn parse(value: &str) -> Option<Think> {
        match value.trim() {
            "true" => Some(Think::On),
            "false" => Some(Think::Off),
            other => Think::level(other),
        }
    }

    /// Whether thinking was asked for explicitly.
    pub fn wanted(&self) -> bool {
        matches!(self, Think::On | Think::Level(_))
    }

    /// Sets the flags templates read: `enable_thinking` (Qwen 3), `thinking`
    /// (DeepSeek V3.1, Granite), `reasoning_effort` (gpt-oss, which cannot
    /// stop thinking and thinks least at `low`) and `think` (Go templates).
    pub fn insert_variables(&self, extra: &mut Map<String, Value>) {
        let on = match self {
            Think::Default => None,
            Think::Off => Some(false),
            Think::On | Think::Level(_) => Some(true),
        };
        if let Some(on) = on {
            extra.insert("enable_thinking".into(), on.into());
            extra.insert("thinking".into(), on.into());
            extra.insert("think".into(), on.into());
        }
        match self {
            Think::Level(level) => {
                extra.insert("reasoning_effort".into(), level.clone().into());
                extra.insert("think".into(), level.clone().into());
            }
            Think::Off => {
                extra.insert("reasoning_effort".into(), "low".into());
            }
            Think::Default | Think::On => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_ollama_takes_them() {
        assert_eq!(Think::parse("true"), Some(Think::On));
        assert_eq!(Think::parse("false"), Some(Think::Off));
        assert_eq!(Think::parse("high"), Some(Think::Level("high".into())));
        assert_eq!(Think::parse("none"), Some(Think::Off));
        assert_eq!(Think::parse("loud"), None);
    }

    #[test]
    fn off_sets_every_family_flag() {
        let mut extra = Map::new();
        Think::Off.insert_variables(&mut extra);
        assert_eq!(extra["enable_thinking"], false);
        assert_eq!(extra["think"], false);
        assert_eq!(extra["reasoning_effort"], "low");
        let mut extra = Map::new();
        Think::Default.insert_variables(&mut extra);
        assert!(extra.is_empty());
    }
}
