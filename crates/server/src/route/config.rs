//! The routing policy as the config file writes it:
//!
//! ```toml
//! [[upstreams]]
//! name = "cloud"
//! url = "https://api.example.com/v1"
//! api_key_env = "CLOUD_API_KEY"        # read from this variable, never logged
//! models = ["gpt-mini"]                # served as cloud/gpt-mini
//! price_per_million_input = 0.15       # for the cost metrics (default 0)
//! price_per_million_output = 0.60
//!
//! [routing]
//! sensitive = "local"        # personal data never leaves ("allow": no check)
//! fallback = "llama3.2"      # the local model that answers instead
//! patterns = ["ACME-\\d{6}"] # regexes that also mark a request sensitive
//! keywords = ["project falcon"]
//! burst = true               # overflow: a long local queue sends work out
//! burst_queue = 4            # ... when more than this many requests wait
//! burst_model = "cloud/gpt-mini"
//!
//! [[channels]]
//! name = "prod"              # promoted with `hearth promote MODEL prod`
//! experimental = "qwen-q4"   # the model under test
//! canary = 10                # percent of prod's requests it answers
//! shadow = false             # or: answers a copy of each, never returned
//! ```
//!
//! `HEARTH_OFFLINE=1` forbids every outbound connection.

use std::path::Path;

use toml_edit::Item;

use crate::config::ConfigError;
use crate::config_file::{ConfigFile, error};

/// One OpenAI-compatible endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// The prefix of its models' names (`cloud` in `cloud/gpt-mini`).
    pub name: String,
    /// Its API's base URL, up to and including `/v1`.
    pub url: String,
    /// The variable that holds its API key (the key itself is never kept
    /// in the config, so it cannot reach a log).
    pub api_key_env: Option<String>,
    /// The models it serves, by its own names.
    pub models: Vec<String>,
    /// Price of a million prompt tokens, and of a million generated ones.
    pub price_per_million: (f64, f64),
}

/// A channel's traffic split.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelPolicy {
    /// The channel's name (a model name that resolves to its target).
    pub name: String,
    /// The model under test.
    pub experimental: String,
    /// Percent of the channel's requests the experimental model answers.
    pub canary: u32,
    /// Whether the experimental model answers a copy of each request (never
    /// returned, recorded for comparison).
    pub shadow: bool,
}

/// The whole policy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Routing {
    /// `[[upstreams]]`.
    pub upstreams: Vec<Upstream>,
    /// `sensitive = "local"`: requests with personal data stay here.
    pub sensitive_local: bool,
    /// The local model that answers what may not (or cannot) go upstream.
    pub fallback: Option<String>,
    /// Regexes that mark a request sensitive (checked when loaded).
    pub patterns: Vec<String>,
    /// Words that mark a request sensitive (matched case-insensitively).
    pub keywords: Vec<String>,
    /// Overflow: when more than `burst_queue` requests wait for a local
    /// sequence, requests allowed to leave go to `burst_model`.
    pub burst: Option<(usize, String)>,
    /// `HEARTH_OFFLINE=1`: no outbound connection at all.
    pub offline: bool,
    /// `[[channels]]`.
    pub channels: Vec<ChannelPolicy>,
}

impl Routing {
    /// The policy in `file`, with `offline` from `HEARTH_OFFLINE`.
    pub fn from_file(file: &ConfigFile, offline: bool) -> Result<Routing, ConfigError> {
        let path = file.path.as_deref().unwrap_or(Path::new("config"));
        let mut routing = Routing {
            offline,
            ..Routing::default()
        };
        if let Some(item) = file.item("upstreams") {
            let tables = item
                .as_array_of_tables()
                .ok_or_else(|| error(path, "upstreams", "expected [[upstreams]] tables"))?;
            for (i, table) in tables.iter().enumerate() {
                let fields = Fields {
                    path,
                    at: format!("upstreams[{i}]"),
                    table,
                };
                fields.only(&[
                    "name",
                    "url",
                    "api_key_env",
                    "models",
                    "price_per_million_input",
                    "price_per_million_output",
                ])?;
                let name = fields.required("name")?;
                if name.is_empty() || name.contains(['/', ':', ' ']) {
                    return Err(fields.error("name", "expected a name without / : or spaces"));
                }
                if routing.upstreams.iter().any(|u| u.name == name) {
                    return Err(fields.error("name", "another upstream has this name"));
                }
                let url = fields.required("url")?.trim_end_matches('/').to_owned();
                if !url.starts_with("http://") && !url.starts_with("https://") {
                    return Err(fields.error("url", "expected an http:// or https:// URL"));
                }
                routing.upstreams.push(Upstream {
                    name,
                    url,
                    api_key_env: fields.text("api_key_env")?,
                    models: fields.list("models")?,
                    price_per_million: (
                        fields.price("price_per_million_input")?,
                        fields.price("price_per_million_output")?,
                    ),
                });
            }
        }
        if let Some(item) = file.item("routing") {
            let table = item
                .as_table_like()
                .ok_or_else(|| error(path, "routing", "expected a [routing] table"))?;
            let fields = Fields {
                path,
                at: "routing".to_owned(),
                table,
            };
            fields.only(&[
                "sensitive",
                "fallback",
                "patterns",
                "keywords",
                "burst",
                "burst_queue",
                "burst_model",
            ])?;
            routing.sensitive_local = match fields.text("sensitive")?.as_deref() {
                None | Some("allow") => false,
                Some("local") => true,
                Some(_) => return Err(fields.error("sensitive", "expected \"local\" or \"allow\"")),
            };
            routing.fallback = fields.text("fallback")?;
            routing.patterns = fields.list("patterns")?;
            for (n, pattern) in routing.patterns.iter().enumerate() {
                if let Err(e) = regex::Regex::new(pattern) {
                    return Err(fields.error(&format!("patterns[{n}]"), &e.to_string()));
                }
            }
            routing.keywords = fields.list("keywords")?;
            if fields.flag("burst")? {
                let queue = fields.count("burst_queue")?.unwrap_or(4);
                let model = fields.text("burst_model")?.ok_or_else(|| {
                    fields.error(
                        "burst_model",
                        "burst = true needs the upstream model to use",
                    )
                })?;
                routing.burst = Some((queue, model));
            }
        }
        if let Some(item) = file.item("channels") {
            let tables = item
                .as_array_of_tables()
                .ok_or_else(|| error(path, "channels", "expected [[channels]] tables"))?;
            for (i, table) in tables.iter().enumerate() {
                let fields = Fields {
                    path,
                    at: format!("channels[{i}]"),
                    table,
                };
                fields.only(&["name", "experimental", "canary", "shadow"])?;
                let canary = fields.count("canary")?.unwrap_or(0);
                if canary > 100 {
                    return Err(fields.error("canary", "expected a percentage from 0 to 100"));
                }
                routing.channels.push(ChannelPolicy {
                    name: fields.required("name")?,
                    experimental: fields.required("experimental")?,
                    canary: canary as u32,
                    shadow: fields.flag("shadow")?,
                });
            }
        }
        if let Some(channel) = routing
            .channels
            .iter()
            .find(|c| c.shadow && routing.upstream_of(&c.experimental).is_some())
        {
            return Err(error(
                path,
                "channels.shadow",
                &format!(
                    "channel '{}': a shadow model must be local ('{}' is an upstream's)",
                    channel.name, channel.experimental
                ),
            ));
        }
        if let Some((_, model)) = &routing.burst
            && routing.upstream_of(model).is_none()
        {
            return Err(error(
                path,
                "routing.burst_model",
                &format!("'{model}' is not a model of an [[upstreams]] entry"),
            ));
        }
        Ok(routing)
    }

    /// The upstream and its model name for `name` (`cloud/gpt-mini`), if
    /// `name` is one of an upstream's models.
    pub fn upstream_of(&self, name: &str) -> Option<(&Upstream, &str)> {
        let (prefix, model) = name.split_once('/')?;
        let upstream = self.upstreams.iter().find(|u| u.name == prefix)?;
        let model = upstream.models.iter().find(|m| *m == model)?;
        Some((upstream, model.as_str()))
    }

    /// Whether anything here changes where a request goes.
    pub fn is_active(&self) -> bool {
        !self.upstreams.is_empty() || !self.channels.is_empty() || self.offline
    }
}

/// The fields of one table, for errors that name `at.field`.
struct Fields<'a> {
    path: &'a Path,
    at: String,
    table: &'a dyn toml_edit::TableLike,
}

impl Fields<'_> {
    fn error(&self, field: &str, reason: &str) -> ConfigError {
        error(self.path, &format!("{}.{field}", self.at), reason)
    }

    fn only(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        match self.table.iter().find(|(k, _)| !allowed.contains(k)) {
            Some((k, _)) => Err(self.error(k, "unknown field")),
            None => Ok(()),
        }
    }

    fn get(&self, field: &str) -> Option<&Item> {
        self.table.get(field)
    }

    fn text(&self, field: &str) -> Result<Option<String>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.to_owned()))
                .ok_or_else(|| self.error(field, "expected a string")),
        }
    }

    fn required(&self, field: &str) -> Result<String, ConfigError> {
        self.text(field)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.error(field, "missing"))
    }

    fn list(&self, field: &str) -> Result<Vec<String>, ConfigError> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(v) => v
                .as_array()
                .and_then(|a| a.iter().map(|m| m.as_str().map(str::to_owned)).collect())
                .ok_or_else(|| self.error(field, "expected a list of strings")),
        }
    }

    fn flag(&self, field: &str) -> Result<bool, ConfigError> {
        match self.get(field) {
            None => Ok(false),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.error(field, "expected true or false")),
        }
    }

    fn count(&self, field: &str) -> Result<Option<usize>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_integer()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| self.error(field, "expected a non-negative integer")),
        }
    }

    fn price(&self, field: &str) -> Result<f64, ConfigError> {
        match self.get(field) {
            None => Ok(0.0),
            Some(v) => v
                .as_float()
                .or_else(|| v.as_integer().map(|n| n as f64))
                .filter(|p| p.is_finite() && *p >= 0.0)
                .ok_or_else(|| self.error(field, "expected a non-negative number")),
        }
    }
}
