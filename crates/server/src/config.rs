//! Server settings from the environment, named after Ollama's (`OLLAMA_HOST` →
//! `HEARTH_HOST`, envconfig/config.go) with the same defaults, each falling
//! back to its `OLLAMA_*` twin when unset, and the `keep_alive` duration format
//! shared by the environment and the API.

use std::time::Duration;

/// Where the server listens unless `HEARTH_HOST` says otherwise.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Ollama's port.
pub const DEFAULT_PORT: u16 = 11434;
/// The largest request body accepted (blob uploads excepted): 32 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 << 20;

/// How long a model stays loaded after its last request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Unload this long after the last request ends (zero: right away).
    For(Duration),
    /// Never unload (a negative duration in the API).
    Forever,
}

impl KeepAlive {
    /// Ollama's default: five minutes.
    pub const DEFAULT: KeepAlive = KeepAlive::For(Duration::from_secs(300));

    /// From a number of seconds, as the API accepts (`keep_alive: 300`); a
    /// negative number keeps the model forever.
    pub fn from_secs_f64(secs: f64) -> Result<KeepAlive, String> {
        if secs.is_nan() {
            return Err("keep_alive must be a number or a duration like \"5m\"".to_owned());
        }
        if secs < 0.0 {
            return Ok(KeepAlive::Forever);
        }
        Duration::try_from_secs_f64(secs)
            .map(KeepAlive::For)
            .map_err(|_| format!("keep_alive {secs} is too large"))
    }

    /// From text: a Go duration (`"5m"`, `"1h30m"`, `"-1s"`, `"0"`) or a plain
    /// number of seconds (`"300"`), as Ollama's API and `OLLAMA_KEEP_ALIVE` take.
    pub fn parse(text: &str) -> Result<KeepAlive, String> {
        let text = text.trim();
        if let Ok(secs) = text.parse::<f64>() {
            return KeepAlive::from_secs_f64(secs);
        }
        let (negative, nanos) = parse_go_duration(text).ok_or_else(|| {
            format!(
                "keep_alive '{text}' is not a duration (examples: \"5m\", \"1h\", \"30s\", \"-1\")"
            )
        })?;
        if negative && nanos > 0 {
            return Ok(KeepAlive::Forever);
        }
        Ok(KeepAlive::For(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        )))
    }

    /// Whether the model unloads as soon as it is idle.
    pub fn is_zero(self) -> bool {
        self == KeepAlive::For(Duration::ZERO)
    }
}

/// Parses Go's `time.ParseDuration` syntax: an optional sign, then one or more
/// decimal numbers each followed by a unit (ns, us, µs, ms, s, m, h). Returns
/// the sign and the magnitude in nanoseconds.
fn parse_go_duration(text: &str) -> Option<(bool, u128)> {
    let (negative, mut rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some((negative, 0));
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * nanos_per_unit;
    }
    Some((negative, total as u128))
}

/// Everything `hearth serve` reads from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `HEARTH_HOST`: the address to bind, `host[:port]` (default
    /// `127.0.0.1:11434`; a scheme such as `http://` is ignored).
    pub host: String,
    /// `HEARTH_ORIGINS`: comma-separated origins allowed by CORS besides the
    /// local ones (`*` allows every origin).
    pub origins: Vec<String>,
    /// `HEARTH_NUM_PARALLEL`: sequences each loaded model serves at once,
    /// batched into every forward pass. Unset: what the model's KV budget
    /// holds, 4 to 16 (see `scheduler::sizing`).
    pub num_parallel: Option<usize>,
    /// `HEARTH_MAX_QUEUE`: requests that may wait for a sequence of one model
    /// (Ollama counts per server) before new ones get 503.
    pub max_queue: usize,
    /// `HEARTH_MAX_LOADED_MODELS`: models resident at once.
    pub max_loaded_models: usize,
    /// `HEARTH_KEEP_ALIVE`: how long an idle model stays loaded by default.
    pub keep_alive: KeepAlive,
    /// `HEARTH_LOG_PROMPTS=1`: log prompt and response text (off by default,
    /// so that the log never holds what users typed).
    pub log_prompts: bool,
    /// `HEARTH_NUM_THREAD`: threads per model's forward pass (default: all cores).
    pub num_thread: Option<usize>,
    /// Largest request body in bytes (blob uploads excepted).
    pub max_body_bytes: usize,
    /// `HEARTH_MAX_MEMORY`: the most memory loaded models may take together
    /// (`16GiB`, bytes); models that would not fit are refused. Unset: the
    /// memory the system has available.
    pub max_memory: Option<u64>,
    /// `HEARTH_CONTEXT_LENGTH`: the context (`num_ctx`) of a request that
    /// sets none and whose model's parameters set none (default 4096, as
    /// Ollama's; capped by the model's training context).
    pub context_length: usize,
    /// `HEARTH_KV_CACHE_MEMORY`: bytes of the paged KV cache each loaded model
    /// shares among its sequences (`4GiB`, bytes). Unset: room for
    /// `HEARTH_NUM_PARALLEL` contexts of the loading request's `num_ctx` (at
    /// least the default context).
    pub kv_cache_memory: Option<u64>,
    /// `HEARTH_KV_CACHE_TYPE`: the element type of the KV cache.
    pub kv_cache_type: KvCacheType,
    /// `HEARTH_DETERMINISTIC=1`: batch-invariant sums (see
    /// `model::set_batch_invariant`), so that a request with a fixed seed
    /// gives the same output whatever else is batched with it; slower.
    pub deterministic: bool,
    /// `HEARTH_FLASH_ATTENTION`: accepted for Ollama's service files. The CPU
    /// attention is the same either way (it never materialises the whole
    /// score matrix), so the flag changes nothing.
    pub flash_attention: bool,
    /// `HEARTH_ALLOWED_HOSTS`: comma-separated host names a loopback-bound
    /// server answers to besides the local ones (see guard.rs).
    pub allowed_hosts: Vec<String>,
    /// Connection limits: `HEARTH_HEADER_TIMEOUT` and `HEARTH_BODY_TIMEOUT`
    /// (durations, as `10s`), `HEARTH_MAX_CONNECTIONS`.
    pub limits: crate::listen::Limits,
    /// `HEARTH_DRAIN_TIMEOUT`: on SIGTERM, how long requests in flight may
    /// run to their end before they are cancelled (default 30s).
    pub drain_timeout: Duration,
    /// `HEARTH_MAX_BLOB_SIZE`: the largest blob `/api/blobs` stores (`50GiB`,
    /// bytes); uploads are also capped by the store's free disk space.
    pub max_blob_bytes: Option<u64>,
    /// Per-request limits: `HEARTH_MAX_PROMPT_TOKENS` (a longer prompt is a
    /// 400) and `HEARTH_MAX_NUM_PREDICT` (a larger `num_predict` or
    /// `max_tokens` is a 400; "until done" stops there).
    pub request_limits: RequestLimits,
    /// API keys: the config file's `[[keys]]`, plus `HEARTH_API_KEY` (an
    /// admin key named `HEARTH_API_KEY`). None: no key is asked for.
    pub keys: Vec<crate::config_file::KeyEntry>,
    /// `HEARTH_TLS_CERT` and `HEARTH_TLS_KEY`: PEM files of the certificate
    /// chain and its private key; set, the server speaks only HTTPS.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// `HEARTH_AUDIT_LOG`: where to append one JSON line per request (never
    /// its text), rotated past `HEARTH_AUDIT_LOG_MAX_SIZE` (100MiB, five old
    /// files kept).
    pub audit_log: Option<(std::path::PathBuf, u64)>,
    /// Upstreams, the routing policy and channel splits (the config file's
    /// `[[upstreams]]`, `[routing]` and `[[channels]]`), with
    /// `HEARTH_OFFLINE=1` forbidding every outbound connection.
    pub routing: crate::route::Routing,
}

/// The operator's limits on each request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestLimits {
    /// The most prompt tokens a request may bring.
    pub max_prompt_tokens: Option<usize>,
    /// The most tokens a request may generate.
    pub max_num_predict: Option<usize>,
}

/// The KV cache's element type (`HEARTH_KV_CACHE_TYPE`, Ollama's
/// `OLLAMA_KV_CACHE_TYPE`): f16, q8_0 or q4_0.
pub type KvCacheType = model::KvType;

impl Default for Config {
    fn default() -> Self {
        Config {
            host: format!("{DEFAULT_HOST}:{DEFAULT_PORT}"),
            origins: Vec::new(),
            num_parallel: None,
            max_queue: 512,
            max_loaded_models: 3,
            keep_alive: KeepAlive::DEFAULT,
            log_prompts: false,
            num_thread: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_memory: None,
            context_length: crate::scheduler::DEFAULT_NUM_CTX,
            kv_cache_memory: None,
            kv_cache_type: KvCacheType::F16,
            deterministic: false,
            flash_attention: false,
            allowed_hosts: Vec::new(),
            limits: crate::listen::Limits::default(),
            drain_timeout: Duration::from_secs(30),
            max_blob_bytes: None,
            request_limits: RequestLimits::default(),
            keys: Vec::new(),
            tls: None,
            audit_log: None,
            routing: crate::route::Routing::default(),
        }
    }
}

/// A setting that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub name: String,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

impl Config {
    /// The settings from the process environment and the config file
    /// (`HEARTH_CONFIG` or `~/.hearth/config.toml`), the environment first.
    pub fn from_env() -> Result<Config, ConfigError> {
        let file = crate::config_file::ConfigFile::from_env()?;
        Config::from_sources(|name| std::env::var(name).ok(), &file)
    }

    /// [`Config::from_sources`] without a config file.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::from_sources(lookup, &crate::config_file::ConfigFile::default())
    }

    /// The settings from `lookup` (the environment, or a map in tests); unset
    /// and empty variables keep their defaults. Each `HEARTH_X` that is unset
    /// falls back to its Ollama twin `OLLAMA_X` (see [`TWINS`]), so service
    /// files and scripts written for Ollama work unchanged; errors name the
    /// variable that was read. Settings no variable holds come from `file`.
    pub fn from_sources(
        lookup: impl Fn(&str) -> Option<String>,
        file: &crate::config_file::ConfigFile,
    ) -> Result<Config, ConfigError> {
        let get = |suffix: &str| {
            setting(&lookup, suffix).or_else(|| {
                let key = suffix.to_ascii_lowercase();
                let value = file.get(&key)?;
                let source = file
                    .path
                    .as_deref()
                    .map_or_else(String::new, |p| p.display().to_string());
                Some((format!("{source}: {key}"), value))
            })
        };
        let err = |name: &str, value: &str, reason: &str| ConfigError {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let positive = |suffix: &str, default: usize| -> Result<usize, ConfigError> {
            match get(suffix) {
                None => Ok(default),
                Some((name, v)) => match v.trim().parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(err(&name, &v, "expected a positive integer")),
                },
            }
        };
        let optional_positive = |suffix: &str| -> Result<Option<usize>, ConfigError> {
            match get(suffix) {
                None => Ok(None),
                Some((name, v)) => match v.trim().parse::<usize>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(err(&name, &v, "expected a positive integer")),
                },
            }
        };
        let defaults = Config::default();
        let host = match get("HOST") {
            Some((_, v)) => host_with_port(&v),
            None => defaults.host,
        };
        let list = |suffix: &str| -> Vec<String> {
            get(suffix)
                .map(|(_, v)| {
                    v.split(',')
                        .map(|o| o.trim().to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let duration = |suffix: &str, default: Duration| -> Result<Duration, ConfigError> {
            match get(suffix) {
                None => Ok(default),
                Some((name, v)) => match KeepAlive::parse(&v) {
                    Ok(KeepAlive::For(d)) if !d.is_zero() => Ok(d),
                    _ => Err(err(&name, &v, "expected a positive duration such as 10s")),
                },
            }
        };
        let origins = list("ORIGINS");
        let limits = crate::listen::Limits {
            header_timeout: duration("HEADER_TIMEOUT", defaults.limits.header_timeout)?,
            body_timeout: duration("BODY_TIMEOUT", defaults.limits.body_timeout)?,
            max_connections: positive("MAX_CONNECTIONS", defaults.limits.max_connections)?,
        };
        let keep_alive = match get("KEEP_ALIVE") {
            Some((name, v)) => KeepAlive::parse(&v).map_err(|e| err(&name, &v, &e))?,
            None => defaults.keep_alive,
        };
        let flag = |suffix: &str| -> Result<bool, ConfigError> {
            match get(suffix) {
                None => Ok(false),
                Some((name, v)) => match v.trim().to_ascii_lowercase().as_str() {
                    "0" | "false" | "no" | "off" => Ok(false),
                    "1" | "true" | "yes" | "on" => Ok(true),
                    _ => Err(err(&name, &v, "expected 1 or 0")),
                },
            }
        };
        let num_thread = match get("NUM_THREAD") {
            None => None,
            Some(_) => Some(positive("NUM_THREAD", 1)?),
        };
        let size = |suffix: &str| -> Result<Option<u64>, ConfigError> {
            match get(suffix) {
                None => Ok(None),
                Some((name, v)) => crate::memory::parse_size(&v)
                    .map(Some)
                    .ok_or_else(|| err(&name, &v, "expected a size such as 8GiB or 512MiB")),
            }
        };
        let max_memory = size("MAX_MEMORY")?;
        let kv_cache_memory = match get("KV_CACHE_MEMORY") {
            None => None,
            Some((name, v)) => Some(
                crate::memory::parse_size(&v)
                    .filter(|&b| b > 0)
                    .ok_or_else(|| err(&name, &v, "expected a size such as 4GiB or 512MiB"))?,
            ),
        };
        let kv_cache_type = match get("KV_CACHE_TYPE") {
            None => defaults.kv_cache_type,
            Some((name, v)) => KvCacheType::parse(&v)
                .ok_or_else(|| err(&name, &v, "expected f16, q8_0 or q4_0"))?,
        };
        Ok(Config {
            host,
            origins,
            num_parallel: optional_positive("NUM_PARALLEL")?,
            max_queue: positive("MAX_QUEUE", defaults.max_queue)?,
            max_loaded_models: positive("MAX_LOADED_MODELS", defaults.max_loaded_models)?,
            keep_alive,
            log_prompts: flag("LOG_PROMPTS")?,
            num_thread,
            max_body_bytes: defaults.max_body_bytes,
            max_memory,
            context_length: positive("CONTEXT_LENGTH", defaults.context_length)?,
            kv_cache_memory,
            kv_cache_type,
            deterministic: flag("DETERMINISTIC")?,
            flash_attention: flag("FLASH_ATTENTION")?,
            allowed_hosts: list("ALLOWED_HOSTS"),
            limits,
            drain_timeout: duration("DRAIN_TIMEOUT", defaults.drain_timeout)?,
            max_blob_bytes: size("MAX_BLOB_SIZE")?,
            request_limits: RequestLimits {
                max_prompt_tokens: optional_positive("MAX_PROMPT_TOKENS")?,
                max_num_predict: optional_positive("MAX_NUM_PREDICT")?,
            },
            keys: keys(&lookup, file)?,
            routing: crate::route::Routing::from_file(file, flag("OFFLINE")?)?,
            audit_log: match get("AUDIT_LOG") {
                None => None,
                Some((_, path)) => Some((
                    path.into(),
                    size("AUDIT_LOG_MAX_SIZE")?.unwrap_or(100 << 20),
                )),
            },
            tls: match (get("TLS_CERT"), get("TLS_KEY")) {
                (None, None) => None,
                (Some((_, cert)), Some((_, key))) => Some((cert.into(), key.into())),
                (Some((name, v)), None) | (None, Some((name, v))) => {
                    return Err(err(
                        &name,
                        &v,
                        "HEARTH_TLS_CERT and HEARTH_TLS_KEY go together",
                    ));
                }
            },
        })
    }
}

/// The API keys: `file`'s `[[keys]]`, and `HEARTH_API_KEY` as an admin key.
fn keys(
    lookup: impl Fn(&str) -> Option<String>,
    file: &crate::config_file::ConfigFile,
) -> Result<Vec<crate::config_file::KeyEntry>, ConfigError> {
    let mut keys = file.keys()?;
    if let Some(key) = lookup("HEARTH_API_KEY").filter(|k| !k.trim().is_empty()) {
        keys.push(crate::config_file::KeyEntry {
            name: "HEARTH_API_KEY".to_owned(),
            sha256: crate::auth::key_hash(key.trim()),
            models: None,
            admin: true,
            local_only: false,
            requests_per_minute: None,
            tokens_per_minute: None,
            max_concurrent: None,
        });
    }
    Ok(keys)
}

/// The settings that have an Ollama twin: `HEARTH_X` unset means `OLLAMA_X`
/// is read. (`OLLAMA_MODELS` is read by the store, `OLLAMA_HOST` by the CLI
/// too; both go through [`setting`].)
pub const TWINS: [&str; 10] = [
    "HOST",
    "MODELS",
    "ORIGINS",
    "NUM_PARALLEL",
    "MAX_QUEUE",
    "MAX_LOADED_MODELS",
    "KEEP_ALIVE",
    "CONTEXT_LENGTH",
    "KV_CACHE_TYPE",
    "FLASH_ATTENTION",
];

/// The value of setting `suffix` (`"HOST"`): `HEARTH_HOST` if set and not
/// empty, else `OLLAMA_HOST` when the setting has a twin ([`TWINS`]), with the
/// name of the variable that held it.
pub fn setting(lookup: impl Fn(&str) -> Option<String>, suffix: &str) -> Option<(String, String)> {
    let read = |name: String| {
        lookup(&name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (name, v))
    };
    read(format!("HEARTH_{suffix}")).or_else(|| {
        TWINS
            .contains(&suffix)
            .then(|| read(format!("OLLAMA_{suffix}")))
            .flatten()
    })
}

/// [`setting`] from the process environment.
pub fn env_setting(suffix: &str) -> Option<(String, String)> {
    setting(|name| std::env::var(name).ok(), suffix)
}

/// `HEARTH_HOST` as a bindable `host:port`: the scheme and any path dropped,
/// Ollama's port added when none is given, an empty host taken as 127.0.0.1
/// (as envconfig.Host does).
pub fn host_with_port(value: &str) -> String {
    let v = value.trim();
    let v = v.split_once("://").map_or(v, |(_, rest)| rest);
    let v = v.split('/').next().unwrap_or_default();
    let (host, port) = match v.rsplit_once(':') {
        // "[::1]:8080", "host:8080", ":8080"; a bare IPv6 address has more colons.
        Some((h, p)) if p.parse::<u16>().is_ok() && (h.starts_with('[') || !h.contains(':')) => {
            (h, p.to_owned())
        }
        _ => (v, DEFAULT_PORT.to_string()),
    };
    let host = if host.is_empty() { DEFAULT_HOST } else { host };
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment of `pairs`.
    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn keep_alive_accepts_go_durations_and_seconds() {
        let secs = |s| KeepAlive::For(Duration::from_secs(s));
        assert_eq!(KeepAlive::parse("5m"), Ok(secs(300)));
        assert_eq!(KeepAlive::parse("1h30m"), Ok(secs(5400)));
        assert_eq!(KeepAlive::parse("300"), Ok(secs(300)));
        assert_eq!(
            KeepAlive::parse("1.5s"),
            Ok(KeepAlive::For(Duration::from_millis(1500)))
        );
        assert_eq!(KeepAlive::parse("0"), Ok(secs(0)));
        assert_eq!(KeepAlive::parse("0s"), Ok(secs(0)));
        assert_eq!(KeepAlive::parse("-1"), Ok(KeepAlive::Forever));
        assert_eq!(KeepAlive::parse("-5m"), Ok(KeepAlive::Forever));
        assert!(KeepAlive::parse("soon").is_err());
        assert!(KeepAlive::parse("5 minutes").is_err());
        assert!(KeepAlive::parse("").is_err());
        assert!(KeepAlive::parse("m").is_err());
    }

    #[test]
    fn environment_overrides_defaults_and_rejects_nonsense() {
        assert_eq!(Config::from_lookup(env(&[])).unwrap(), Config::default());
        let c = Config::from_lookup(env(&[
            ("HEARTH_HOST", "0.0.0.0:8080"),
            ("HEARTH_NUM_PARALLEL", "4"),
            ("HEARTH_MAX_QUEUE", "1"),
            ("HEARTH_KEEP_ALIVE", "-1"),
            ("HEARTH_ORIGINS", "https://a.example, *"),
            ("HEARTH_LOG_PROMPTS", "1"),
        ]))
        .unwrap();
        assert_eq!(c.host, "0.0.0.0:8080");
        assert_eq!((c.num_parallel, c.max_queue), (Some(4), 1));
        let limited = Config::from_lookup(env(&[
            ("HEARTH_MAX_PROMPT_TOKENS", "1000"),
            ("HEARTH_MAX_NUM_PREDICT", "64"),
        ]))
        .unwrap();
        assert_eq!(
            limited.request_limits,
            RequestLimits {
                max_prompt_tokens: Some(1000),
                max_num_predict: Some(64)
            }
        );
        assert!(Config::from_lookup(env(&[("HEARTH_MAX_NUM_PREDICT", "0")])).is_err());
        assert_eq!(c.keep_alive, KeepAlive::Forever);
        assert_eq!(c.origins, ["https://a.example", "*"]);
        assert!(c.log_prompts);
        let e = Config::from_lookup(env(&[("HEARTH_NUM_PARALLEL", "0")])).unwrap_err();
        assert_eq!(e.name, "HEARTH_NUM_PARALLEL");
        assert!(Config::from_lookup(env(&[("HEARTH_MAX_QUEUE", "many")])).is_err());
        assert!(Config::from_lookup(env(&[("HEARTH_KEEP_ALIVE", "later")])).is_err());
        let c = Config::from_lookup(env(&[("HEARTH_KV_CACHE_MEMORY", "512MiB")])).unwrap();
        assert_eq!(c.kv_cache_memory, Some(512 << 20));
        let e = Config::from_lookup(env(&[("HEARTH_KV_CACHE_MEMORY", "0")])).unwrap_err();
        assert_eq!(e.name, "HEARTH_KV_CACHE_MEMORY");
    }

    #[test]
    fn ollama_twins_apply_where_hearth_settings_are_unset() {
        let c = Config::from_lookup(env(&[
            ("OLLAMA_HOST", "0.0.0.0"),
            ("OLLAMA_NUM_PARALLEL", "3"),
            ("HEARTH_NUM_PARALLEL", ""),
            ("OLLAMA_MAX_QUEUE", "7"),
            ("HEARTH_MAX_QUEUE", "9"),
            ("OLLAMA_KEEP_ALIVE", "10m"),
            ("OLLAMA_MAX_LOADED_MODELS", "2"),
            ("OLLAMA_ORIGINS", "https://b.example"),
            ("OLLAMA_CONTEXT_LENGTH", "8192"),
            ("OLLAMA_KV_CACHE_TYPE", "q8_0"),
            ("OLLAMA_FLASH_ATTENTION", "1"),
            ("OLLAMA_LOG_PROMPTS", "1"),
        ]))
        .unwrap();
        assert_eq!(c.host, "0.0.0.0:11434");
        // An empty HEARTH_ value counts as unset; a set one wins.
        assert_eq!((c.num_parallel, c.max_queue), (Some(3), 9));
        assert_eq!(c.keep_alive, KeepAlive::For(Duration::from_secs(600)));
        assert_eq!(c.max_loaded_models, 2);
        assert_eq!(c.origins, ["https://b.example"]);
        assert_eq!(c.context_length, 8192);
        assert_eq!(c.kv_cache_type, KvCacheType::Q8_0);
        assert!(c.flash_attention);
        // Prompt logging is hearth's own switch: no twin.
        assert!(!c.log_prompts);
        let e = Config::from_lookup(env(&[("OLLAMA_NUM_PARALLEL", "x")])).unwrap_err();
        assert_eq!(e.name, "OLLAMA_NUM_PARALLEL");
        let e = Config::from_lookup(env(&[("OLLAMA_KV_CACHE_TYPE", "q2")])).unwrap_err();
        assert_eq!(e.name, "OLLAMA_KV_CACHE_TYPE");
    }

    #[test]
    fn host_gets_a_port_and_loses_its_scheme() {
        assert_eq!(host_with_port("0.0.0.0"), "0.0.0.0:11434");
        assert_eq!(host_with_port("http://localhost:8080/"), "localhost:8080");
        assert_eq!(host_with_port(":9000"), "127.0.0.1:9000");
        assert_eq!(host_with_port("[::1]:8080"), "[::1]:8080");
        assert_eq!(host_with_port("::1"), "[::1]:11434");
    }
}
