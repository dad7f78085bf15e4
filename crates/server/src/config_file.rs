//! The config file: `HEARTH_CONFIG`, else `~/.hearth/config.toml` (none is
//! fine). It holds every setting the `HEARTH_*` variables hold, under the
//! variable's name without the prefix, in lower case, plus the API keys:
//!
//! ```toml
//! host = "0.0.0.0:11434"
//! num_parallel = 4
//! origins = ["https://chat.example"]
//! keep_alive = "10m"
//!
//! [[keys]]
//! name = "alice"
//! sha256 = "9f86d0…"          # of the key; `hearth keys add alice` writes this
//! models = ["llama3*", "qwen*"] # globs; absent: every model
//! admin = false               # create, delete, copy, pull, push
//! requests_per_minute = 60
//! tokens_per_minute = 20000  # prompt and generated tokens
//! max_concurrent = 4
//! ```
//!
//! `[[upstreams]]`, `[routing]` and `[[channels]]` hold the routing policy
//! (see `route`).
//!
//! An environment variable (`HEARTH_X`, or its `OLLAMA_X` twin) overrides the
//! file. Unknown settings are errors naming the key, so a typo does not pass
//! silently.

use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, Value};

use crate::config::ConfigError;

/// The settings a file may hold besides `keys` (the `HEARTH_*` names without
/// the prefix, in lower case).
pub const SETTINGS: [&str; 29] = [
    "host",
    "models",
    "origins",
    "num_parallel",
    "max_queue",
    "max_loaded_models",
    "keep_alive",
    "context_length",
    "kv_cache_type",
    "flash_attention",
    "num_thread",
    "max_memory",
    "log_prompts",
    "allowed_hosts",
    "header_timeout",
    "body_timeout",
    "max_connections",
    "drain_timeout",
    "max_blob_size",
    "tls_cert",
    "tls_key",
    "log_format",
    "audit_log",
    "audit_log_max_size",
    "kv_cache_memory",
    "deterministic",
    "max_prompt_tokens",
    "max_num_predict",
    "offline",
];

/// The tables a file may hold: `[[keys]]`, and the routing policy's
/// `[[upstreams]]`, `[routing]` and `[[channels]]` (see `route`).
const TABLES: [&str; 4] = ["keys", "upstreams", "routing", "channels"];

/// Where the config file is: `HEARTH_CONFIG` if set, else
/// `~/.hearth/config.toml`.
pub fn path() -> Option<PathBuf> {
    match std::env::var_os("HEARTH_CONFIG").filter(|p| !p.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => dirs::home_dir().map(|h| h.join(".hearth").join("config.toml")),
    }
}

/// A parsed config file.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    /// Where it was read from (`None`: no file).
    pub path: Option<PathBuf>,
    doc: DocumentMut,
}

impl ConfigFile {
    /// Reads the file at `path`; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(error(path, "", &e.to_string())),
        };
        let doc: DocumentMut = text
            .parse()
            .map_err(|e: toml_edit::TomlError| error(path, "", &e.to_string()))?;
        for (key, _) in doc.iter() {
            if !TABLES.contains(&key) && !SETTINGS.contains(&key) {
                return Err(error(
                    path,
                    key,
                    "unknown setting (see README's configuration section)",
                ));
            }
        }
        Ok(ConfigFile {
            path: Some(path.to_owned()),
            doc,
        })
    }

    /// Reads the file at [`path()`], if there is one.
    pub fn from_env() -> Result<ConfigFile, ConfigError> {
        match path() {
            Some(path) => ConfigFile::load(&path),
            None => Ok(ConfigFile::default()),
        }
    }

    /// The setting `key` as the text its environment variable would hold
    /// (numbers and booleans spelled out, arrays joined with commas).
    pub fn get(&self, key: &str) -> Option<String> {
        let value = self.doc.get(key)?.as_value()?;
        Some(match value {
            Value::String(s) => s.value().clone(),
            Value::Integer(i) => i.value().to_string(),
            Value::Float(f) => f.value().to_string(),
            Value::Boolean(b) => if *b.value() { "1" } else { "0" }.to_owned(),
            Value::Array(a) => a
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        })
    }

    /// The top-level item `key`, as written.
    pub(crate) fn item(&self, key: &str) -> Option<&Item> {
        self.doc.get(key)
    }

    /// The `[[keys]]` entries.
    pub fn keys(&self) -> Result<Vec<KeyEntry>, ConfigError> {
        let Some(item) = self.doc.get("keys") else {
            return Ok(Vec::new());
        };
        let path = self.path.as_deref().unwrap_or(Path::new("config"));
        let tables = item
            .as_array_of_tables()
            .ok_or_else(|| error(path, "keys", "expected [[keys]] tables"))?;
        let mut keys = Vec::new();
        for (i, table) in tables.iter().enumerate() {
            let at = |field: &str| format!("keys[{i}].{field}");
            let text = |field: &str| table.get(field).and_then(Item::as_str).map(str::to_owned);
            let int = |field: &str| -> Result<Option<u64>, ConfigError> {
                match table.get(field) {
                    None => Ok(None),
                    Some(v) => v
                        .as_integer()
                        .and_then(|n| u64::try_from(n).ok())
                        .map(Some)
                        .ok_or_else(|| error(path, &at(field), "expected a non-negative integer")),
                }
            };
            for (field, _) in table.iter() {
                if !KEY_FIELDS.contains(&field) {
                    return Err(error(path, &at(field), "unknown field"));
                }
            }
            let name = text("name").ok_or_else(|| error(path, &at("name"), "missing"))?;
            let sha256 = text("sha256")
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| {
                    error(
                        path,
                        &at("sha256"),
                        "expected the key's SHA-256 as 64 hex digits",
                    )
                })?
                .to_ascii_lowercase();
            let models = match table.get("models") {
                None => None,
                Some(v) => Some(
                    v.as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|m| m.as_str().map(str::to_owned))
                                .collect()
                        })
                        .ok_or_else(|| error(path, &at("models"), "expected a list of globs"))?,
                ),
            };
            let flag = |field: &str| -> Result<bool, ConfigError> {
                match table.get(field) {
                    None => Ok(false),
                    Some(v) => v
                        .as_bool()
                        .ok_or_else(|| error(path, &at(field), "expected true or false")),
                }
            };
            keys.push(KeyEntry {
                name,
                sha256,
                models,
                admin: flag("admin")?,
                local_only: flag("local_only")?,
                requests_per_minute: int("requests_per_minute")?,
                tokens_per_minute: int("tokens_per_minute")?,
                max_concurrent: int("max_concurrent")?,
            });
        }
        Ok(keys)
    }

    /// Appends a `[[keys]]` entry and writes the file back (atomically,
    /// keeping the rest of its text as it was; created with mode 0600).
    pub fn add_key(&mut self, entry: &KeyEntry) -> Result<(), ConfigError> {
        let path = self
            .path
            .clone()
            .ok_or_else(|| error(Path::new("config"), "", "no config file path"))?;
        if self.keys()?.iter().any(|k| k.name == entry.name) {
            return Err(error(
                &path,
                "keys",
                &format!("a key named '{}' exists", entry.name),
            ));
        }
        let mut table = toml_edit::Table::new();
        table.insert("name", toml_edit::value(entry.name.as_str()));
        table.insert("sha256", toml_edit::value(entry.sha256.as_str()));
        if let Some(models) = &entry.models {
            table.insert(
                "models",
                toml_edit::value(models.iter().collect::<toml_edit::Array>()),
            );
        }
        table.insert("admin", toml_edit::value(entry.admin));
        if entry.local_only {
            table.insert("local_only", toml_edit::value(true));
        }
        for (field, limit) in [
            ("requests_per_minute", entry.requests_per_minute),
            ("tokens_per_minute", entry.tokens_per_minute),
            ("max_concurrent", entry.max_concurrent),
        ] {
            if let Some(n) = limit {
                let n = i64::try_from(n).unwrap_or(i64::MAX);
                table.insert(field, toml_edit::value(n));
            }
        }
        let keys = self
            .doc
            .entry("keys")
            .or_insert(Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
        let Some(keys) = keys.as_array_of_tables_mut() else {
            return Err(error(&path, "keys", "expected [[keys]] tables"));
        };
        keys.push(table);
        write_private(&path, self.doc.to_string().as_bytes())
            .map_err(|e| error(&path, "", &e.to_string()))
    }
}

/// The fields a `[[keys]]` entry may have.
const KEY_FIELDS: [&str; 8] = [
    "name",
    "sha256",
    "models",
    "admin",
    "local_only",
    "requests_per_minute",
    "tokens_per_minute",
    "max_concurrent",
];

/// One `[[keys]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// Who the key belongs to (shown in logs and the audit trail).
    pub name: String,
    /// SHA-256 of the key, lower-case hex.
    pub sha256: String,
    /// Globs of the models the key may use (`None`: every model).
    pub models: Option<Vec<String>>,
    /// Whether the key may manage models (create, delete, copy, pull, push).
    pub admin: bool,
    /// Whether requests made with the key must stay on this machine (never
    /// routed to an upstream).
    pub local_only: bool,
    /// Requests allowed per minute (`None`: no limit).
    pub requests_per_minute: Option<u64>,
    /// Prompt and generated tokens allowed per minute (`None`: no limit).
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once (`None`: no limit).
    pub max_concurrent: Option<u64>,
}

/// Writes `bytes` to `path` through a temporary file beside it, readable by
/// the owner only (it holds key hashes and settings), creating the directory.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("config"),
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A config file error naming the file and the key.
pub(crate) fn error(path: &Path, key: &str, reason: &str) -> ConfigError {
    ConfigError {
        name: if key.is_empty() {
            path.display().to_string()
        } else {
            format!("{}: {key}", path.display())
        },
        value: String::new(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<ConfigFile, ConfigError> {
        let dir = std::env::temp_dir().join(format!(
            "hearth-config-{}-{}",
            std::process::id(),
            text.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        ConfigFile::load(&path)
    }

    #[test]
    fn settings_read_as_their_variables_would() {
        let f = file(
            "host = \"0.0.0.0\"\nnum_parallel = 4\nlog_prompts = true\norigins = [\"https://a\", \"https://b\"]\n",
        )
        .unwrap();
        assert_eq!(f.get("host").as_deref(), Some("0.0.0.0"));
        assert_eq!(f.get("num_parallel").as_deref(), Some("4"));
        assert_eq!(f.get("log_prompts").as_deref(), Some("1"));
        assert_eq!(f.get("origins").as_deref(), Some("https://a,https://b"));
        assert_eq!(f.get("max_queue"), None);
        let e = file("num_paralel = 4\n").unwrap_err();
        assert!(
            e.to_string().contains("num_paralel") && e.reason.contains("unknown"),
            "{e}"
        );
        assert!(file("host = \n").is_err());
    }

    #[test]
    fn keys_are_parsed_checked_and_added() {
        let hash = "a".repeat(64);
        let mut f = file(&format!(
            "# team server\nhost = \"0.0.0.0\"\n\n[[keys]]\nname = \"alice\"\nsha256 = \"{hash}\"\nmodels = [\"llama3*\"]\nrequests_per_minute = 60\n"
        ))
        .unwrap();
        let keys = f.keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].models.as_deref(), Some(&["llama3*".to_owned()][..]));
        assert_eq!(keys[0].requests_per_minute, Some(60));
        assert!(!keys[0].admin);
        let bob = KeyEntry {
            name: "bob".into(),
            sha256: "b".repeat(64),
            models: None,
            admin: true,
            local_only: true,
            requests_per_minute: Some(30),
            tokens_per_minute: Some(1000),
            max_concurrent: Some(2),
        };
        f.add_key(&bob).unwrap();
        assert!(f.add_key(&bob).is_err());
        let path = f.path.clone().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# team server\n"), "{text}");
        let again = ConfigFile::load(&path).unwrap();
        assert_eq!(again.keys().unwrap()[1], bob);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let bad = file("[[keys]]\nname = \"x\"\nsha256 = \"short\"\n").unwrap();
        assert!(
            bad.keys()
                .unwrap_err()
                .to_string()
                .contains("keys[0].sha256")
        );
        let bad = file(&format!(
            "[[keys]]\nname = \"x\"\nsha256 = \"{hash}\"\nadmn = true\n"
        ))
        .unwrap();
        assert!(bad.keys().unwrap_err().to_string().contains("keys[0].admn"));
    }
}
