//! Model names: `[host/][namespace/]model[:tag]`, with Ollama's defaults and rules
//! (ollama types/model/name.go: `ParseNameBare`, `isValidPart`, `DisplayShortest`,
//! `EqualFold`, `Filepath`).
//!
//! A parsed name always has all four parts; missing ones take the defaults, so
//! `llama3.2` is `registry.ollama.ai/library/llama3.2:latest`. The registry host is
//! kept as the default so that names and manifest paths match Ollama's, which lets
//! pulls from the Ollama registry slot in without renaming anything.

use std::fmt;
use std::path::PathBuf;

/// Host of names written without one.
pub const DEFAULT_HOST: &str = "registry.ollama.ai";
/// Namespace of names written without one.
pub const DEFAULT_NAMESPACE: &str = "library";
/// Tag of names written without one.
pub const DEFAULT_TAG: &str = "latest";
/// Tag of Hugging Face names written without one: Hugging Face serves a GGUF
/// repository's quantizations as tags, and Ollama picks this one by default.
pub const HF_DEFAULT_TAG: &str = "Q4_K_M";
/// Hosts that are Hugging Face (`hf.co/USER/REPO[:QUANT]`).
const HF_HOSTS: [&str; 2] = ["hf.co", "huggingface.co"];

/// Longest host part, in bytes (name.go `isValidLen`).
const MAX_HOST_LEN: usize = 350;
/// Longest namespace, model or tag part, in bytes.
const MAX_PART_LEN: usize = 80;

/// A fully qualified model name. Parts keep the case they were written in;
/// compare names with [`ModelName::eq_fold`], as Ollama treats `Mistral` and
/// `mistral` as the same model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelName {
    /// Registry host, e.g. `registry.ollama.ai` or `example.com:5000`.
    pub host: String,
    /// Namespace (user or organisation), e.g. `library`.
    pub namespace: String,
    /// The model, e.g. `llama3.2`.
    pub model: String,
    /// The tag, e.g. `latest` or `3b-instruct-q4_K_M`.
    pub tag: String,
}

/// Which part of a name a check concerns (named in errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NamePart {
    /// The registry host.
    Host,
    /// The namespace.
    Namespace,
    /// The model.
    Model,
    /// The tag.
    Tag,
}

impl fmt::Display for NamePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NamePart::Host => "host",
            NamePart::Namespace => "namespace",
            NamePart::Model => "model",
            NamePart::Tag => "tag",
        })
    }
}

/// Why a string is not a model name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid model name {name:?}: {reason}")]
pub struct NameError {
    /// The string as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ModelName {
    /// Parses `[scheme://][host/][namespace/]model[:tag]`, filling missing parts
    /// with the defaults and validating every part.
    pub fn parse(s: &str) -> Result<ModelName, NameError> {
        let fail = |reason: String| NameError {
            name: s.to_owned(),
            reason,
        };
        let mut rest = s;
        // A ':' after the last '/' starts the tag; one before it belongs to a
        // host:port ("/" cannot occur in a tag).
        let mut tag = None;
        if let Some(colon) = rest.rfind(':')
            && rest.rfind('/').is_none_or(|slash| colon > slash)
        {
            tag = Some(&rest[colon + 1..]);
            rest = &rest[..colon];
        }
        let mut parts = rest.rsplitn(3, '/');
        let model = parts.next().unwrap_or_default();
        let namespace = parts.next();
        let host = parts
            .next()
            .map(|h| h.split_once("://").map_or(h, |(_, h)| h));

        let host = host.unwrap_or(DEFAULT_HOST);
        let default_tag = if is_hf_host(host) {
            HF_DEFAULT_TAG
        } else {
            DEFAULT_TAG
        };
        let name = ModelName {
            host: host.to_owned(),
            namespace: namespace.unwrap_or(DEFAULT_NAMESPACE).to_owned(),
            model: model.to_owned(),
            tag: tag.unwrap_or(default_tag).to_owned(),
        };
        for (part, value) in name.parts() {
            check_part(part, value).map_err(fail)?;
        }
        Ok(name)
    }

    /// Builds a name from the four components of a manifest path
    /// (`host/namespace/model/tag`), validating each.
    pub fn from_parts(
        host: &str,
        namespace: &str,
        model: &str,
        tag: &str,
    ) -> Result<ModelName, NameError> {
        let name = ModelName {
            host: host.to_owned(),
            namespace: namespace.to_owned(),
            model: model.to_owned(),
            tag: tag.to_owned(),
        };
        for (part, value) in name.parts() {
            check_part(part, value).map_err(|reason| NameError {
                name: name.to_string(),
                reason,
            })?;
        }
        Ok(name)
    }

    /// The parts in order, each with its kind.
    fn parts(&self) -> [(NamePart, &str); 4] {
        [
            (NamePart::Host, &self.host),
            (NamePart::Namespace, &self.namespace),
            (NamePart::Model, &self.model),
            (NamePart::Tag, &self.tag),
        ]
    }

    /// Whether `self` and `other` name the same model, ignoring ASCII case.
    pub fn eq_fold(&self, other: &ModelName) -> bool {
        self.parts()
            .iter()
            .zip(other.parts())
            .all(|((_, a), (_, b))| a.eq_ignore_ascii_case(b))
    }

    /// The short form `ollama list` prints: the host is left out when it is the
    /// default, and the namespace too when it is also `library`; the tag is
    /// always shown (`llama3.2:latest`, `me/mine:v1`, `example.com/me/mine:v1`).
    pub fn display_short(&self) -> String {
        if !self.host.eq_ignore_ascii_case(DEFAULT_HOST) {
            format!(
                "{}/{}/{}:{}",
                self.host, self.namespace, self.model, self.tag
            )
        } else if !self.namespace.eq_ignore_ascii_case(DEFAULT_NAMESPACE) {
            format!("{}/{}:{}", self.namespace, self.model, self.tag)
        } else {
            format!("{}:{}", self.model, self.tag)
        }
    }

    /// Where the manifest lives relative to the manifests directory:
    /// `host/namespace/model/tag`. Validated parts never contain a separator or
    /// start with '.', so the path cannot leave that directory.
    pub fn manifest_path(&self) -> PathBuf {
        [&self.host, &self.namespace, &self.model, &self.tag]
            .iter()
            .collect()
    }
}

impl fmt::Display for ModelName {
    /// The full form, `host/namespace/model:tag`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}:{}",
            self.host, self.namespace, self.model, self.tag
        )
    }
}

impl std::str::FromStr for ModelName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelName::parse(s)
    }
}

/// Whether `host` is Hugging Face's (names there default to [`HF_DEFAULT_TAG`]).
pub fn is_hf_host(host: &str) -> bool {
    HF_HOSTS.iter().any(|h| host.eq_ignore_ascii_case(h))
}

/// Turns any text into a valid name part of kind `part`: characters that are
/// not allowed become '-', a bad first character gets a '_' before it, and
/// the result is cut to the part's length limit. Used for names derived from
/// URLs.
pub(crate) fn sanitize_part(part_is_namespace: bool, text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| match c {
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => c,
            '.' if !part_is_namespace => c,
            _ => '-',
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        out.insert(0, '_');
    }
    out.truncate(MAX_PART_LEN);
    out
}

/// Checks one part: its length, a first character that is alphanumeric or '_',
/// then alphanumerics, '_', '-' and '.' (no '.' in a namespace), and ':' in the
/// host only (a port).
fn check_part(part: NamePart, value: &str) -> Result<(), String> {
    let max = match part {
        NamePart::Host => MAX_HOST_LEN,
        _ => MAX_PART_LEN,
    };
    if value.is_empty() {
        return Err(format!("the {part} is empty"));
    }
    if value.len() > max {
        return Err(format!(
            "the {part} is {} bytes long (at most {max})",
            value.len()
        ));
    }
    for (i, c) in value.char_indices() {
        let ok = match c {
            c if c.is_ascii_alphanumeric() || c == '_' => true,
            _ if i == 0 => false,
            '-' => true,
            '.' => part != NamePart::Namespace,
            ':' => part == NamePart::Host,
            _ => false,
        };
        if !ok {
            let allowed = match part {
                NamePart::Host => "letters, digits, '_', '-', '.' and ':'",
                NamePart::Namespace => "letters, digits, '_' and '-'",
                NamePart::Model | NamePart::Tag => "letters, digits, '_', '-' and '.'",
            };
            return Err(if i == 0 {
                format!("the {part} {value:?} must start with a letter, digit or '_'")
            } else {
                format!("the {part} {value:?} contains {c:?} (allowed: {allowed})")
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_defaults() {
        let table = [
            ("llama3.2", "registry.ollama.ai/library/llama3.2:latest"),
            ("llama3.2:1b", "registry.ollama.ai/library/llama3.2:1b"),
            ("me/mine", "registry.ollama.ai/me/mine:latest"),
            ("me/mine:v1.0", "registry.ollama.ai/me/mine:v1.0"),
            ("example.com/me/mine:v1", "example.com/me/mine:v1"),
            (
                "example.com:5000/me/mine",
                "example.com:5000/me/mine:latest",
            ),
            ("example.com:5000/me/mine:t", "example.com:5000/me/mine:t"),
            ("https://example.com/me/mine", "example.com/me/mine:latest"),
            ("http://localhost:8080/a/b:c", "localhost:8080/a/b:c"),
            (
                "Qwen2.5-Coder_7B:Q4_K_M",
                "registry.ollama.ai/library/Qwen2.5-Coder_7B:Q4_K_M",
            ),
            ("_x", "registry.ollama.ai/library/_x:latest"),
            (
                "hf.co/bartowski/Llama-3.2-1B-GGUF",
                "hf.co/bartowski/Llama-3.2-1B-GGUF:Q4_K_M",
            ),
            ("hf.co/me/repo:Q8_0", "hf.co/me/repo:Q8_0"),
            ("huggingface.co/me/repo", "huggingface.co/me/repo:Q4_K_M"),
            ("HF.co/me/repo", "HF.co/me/repo:Q4_K_M"),
        ];
        for (input, full) in table {
            let name = ModelName::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(name.to_string(), full, "{input}");
            assert_eq!(ModelName::parse(full).unwrap(), name, "{full} round trip");
        }
    }

    #[test]
    fn rejects_invalid_names() {
        let table = [
            ("", "the model is empty"),
            (":tag", "the model is empty"),
            ("model:", "the tag is empty"),
            ("/model", "the namespace is empty"),
            ("a/b/c/d", "contains '/'"),
            ("-model", "must start with"),
            (".hidden", "must start with"),
            ("..", "must start with"),
            ("my.ns/model", "namespace \"my.ns\" contains '.'"),
            ("model:a:b", "contains ':'"),
            ("mod el", "contains ' '"),
            ("modèle", "contains 'è'"),
            ("model+q4", "contains '+'"),
            ("model@sha256-00", "contains '@'"),
        ];
        for (input, expected) in table {
            let e = ModelName::parse(input).expect_err(input);
            assert!(
                e.to_string().contains(expected),
                "{input:?}: {e} (expected {expected:?})"
            );
        }
        let long = "m".repeat(81);
        let e = ModelName::parse(&long).unwrap_err();
        assert!(e.to_string().contains("81 bytes long (at most 80)"), "{e}");
        assert!(ModelName::parse(&"m".repeat(80)).is_ok());
        let long_host = format!("{}/ns/m", "h".repeat(351));
        assert!(ModelName::parse(&long_host).is_err());
    }

    #[test]
    fn sanitized_parts_are_valid() {
        for (text, ns, expected) in [
            ("Llama-3.2-1B.Q4_K_M", false, "Llama-3.2-1B.Q4_K_M"),
            ("my.org", true, "my-org"),
            ("-x y", false, "_-x-y"),
            ("", false, "_"),
        ] {
            assert_eq!(sanitize_part(ns, text), expected);
        }
        let long = sanitize_part(false, &"a".repeat(200));
        assert_eq!(long.len(), MAX_PART_LEN);
    }

    #[test]
    fn short_display() {
        let table = [
            ("llama3.2", "llama3.2:latest"),
            ("Registry.Ollama.AI/Library/x:1b", "x:1b"),
            ("me/mine", "me/mine:latest"),
            ("example.com/library/m:t", "example.com/library/m:t"),
        ];
        for (input, short) in table {
            assert_eq!(ModelName::parse(input).unwrap().display_short(), short);
        }
    }

    #[test]
    fn case_insensitive_equality() {
        let a = ModelName::parse("Mistral:Latest").unwrap();
        let b = ModelName::parse("registry.ollama.ai/library/mistral").unwrap();
        assert!(a.eq_fold(&b));
        assert_ne!(a, b, "case is preserved");
        let c = ModelName::parse("mistral:7b").unwrap();
        assert!(!a.eq_fold(&c));
    }

    #[test]
    fn manifest_path_has_four_components() {
        let name = ModelName::parse("me/mine:v1").unwrap();
        let path = name.manifest_path();
        let parts: Vec<_> = path.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(parts, ["registry.ollama.ai", "me", "mine", "v1"]);
        assert_eq!(
            ModelName::from_parts("registry.ollama.ai", "me", "mine", "v1").unwrap(),
            name
        );
        assert!(ModelName::from_parts("h", "n", ".tmp", "t").is_err());
    }
}
