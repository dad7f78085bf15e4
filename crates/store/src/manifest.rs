//! Manifests and config blobs in Ollama's layout: a Docker image manifest v2
//! (ollama server/manifest.go `ManifestV2`, server/images.go `ConfigV2`) whose
//! layers are the model's parts, each a blob addressed by its digest.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Media type of the manifest itself.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Media type of the config blob.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";
/// The GGUF weights.
pub const MODEL_MEDIA_TYPE: &str = "application/vnd.ollama.image.model";
/// A LoRA adapter (GGUF).
pub const ADAPTER_MEDIA_TYPE: &str = "application/vnd.ollama.image.adapter";
/// The chat template (text).
pub const TEMPLATE_MEDIA_TYPE: &str = "application/vnd.ollama.image.template";
/// The system prompt (text).
pub const SYSTEM_MEDIA_TYPE: &str = "application/vnd.ollama.image.system";
/// Parameters (a JSON object).
pub const PARAMS_MEDIA_TYPE: &str = "application/vnd.ollama.image.params";
/// MESSAGE history (a JSON array of `{role, content}`).
pub const MESSAGES_MEDIA_TYPE: &str = "application/vnd.ollama.image.messages";
/// One license text.
pub const LICENSE_MEDIA_TYPE: &str = "application/vnd.ollama.image.license";

/// A manifest: the config blob and the layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`MANIFEST_MEDIA_TYPE`].
    pub media_type: String,
    /// The config blob ([`ModelConfig`]).
    pub config: Layer,
    /// The model's parts.
    pub layers: Vec<Layer>,
}

/// A blob reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    /// What the blob holds (one of the `*_MEDIA_TYPE` constants).
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// The model this layer was inherited from (Ollama records it for `FROM
    /// model`; informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl Manifest {
    /// A manifest with `config` and `layers`.
    pub fn new(config: Layer, layers: Vec<Layer>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: MANIFEST_MEDIA_TYPE.to_owned(),
            config,
            layers,
        }
    }

    /// Total size of the config and layer blobs (what `ollama list` reports).
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum::<u64>() + self.config.size
    }

    /// Every blob this manifest references, the config first.
    pub fn digests(&self) -> impl Iterator<Item = Digest> + '_ {
        std::iter::once(self.config.digest).chain(self.layers.iter().map(|l| l.digest))
    }

    /// The first layer of `media_type`.
    pub fn layer(&self, media_type: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.media_type == media_type)
    }

    /// The manifest as stored: compact JSON and a newline (as Go's
    /// `json.Encoder` writes it). Its SHA-256 is the model's ID.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Strings and integers only: serialising cannot fail.
        let mut bytes = serde_json::to_vec(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

/// The config blob: what the model is, for listings and the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ModelConfig {
    /// `gguf`.
    #[serde(default)]
    pub model_format: String,
    /// `general.architecture`, e.g. `llama`.
    #[serde(default)]
    pub model_family: String,
    /// The families (one: the architecture).
    #[serde(default)]
    pub model_families: Option<Vec<String>>,
    /// Parameter count, e.g. `3.2B` or `494.03M`.
    #[serde(default)]
    pub model_type: String,
    /// The quantization, by llama.cpp's file type name, e.g. `Q4_K_M`.
    #[serde(default)]
    pub file_type: String,
    /// CPU architecture, as Go names it (`amd64`, `arm64`); required by the
    /// image spec.
    #[serde(default)]
    pub architecture: String,
    /// Operating system (`linux`, `darwin`, `windows`); required by the spec.
    #[serde(default)]
    pub os: String,
    /// The layer digests.
    #[serde(default)]
    pub rootfs: RootFs,
}

/// The image spec's `rootfs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The layers' digests, in manifest order.
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".to_owned(),
            diff_ids: Vec::new(),
        }
    }
}

impl ModelConfig {
    /// The host's architecture and OS in Go's spelling, as Ollama records them.
    pub fn host_platform() -> (String, String) {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        };
        let os = match std::env::consts::OS {
            "macos" => "darwin",
            other => other,
        };
        (arch.to_owned(), os.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_json_shape() {
        let layer = |media: &str, data: &[u8]| Layer {
            media_type: media.to_owned(),
            digest: Digest::of(data),
            size: data.len() as u64,
            from: None,
        };
        let m = Manifest::new(
            layer(CONFIG_MEDIA_TYPE, b"{}"),
            vec![
                layer(MODEL_MEDIA_TYPE, b"GGUF"),
                layer(SYSTEM_MEDIA_TYPE, b"hi"),
            ],
        );
        let bytes = m.to_bytes();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with(
            "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"config\":{\"mediaType\":"
        ));
        assert!(text.ends_with("}]}\n"));
        assert!(!text.contains("\"from\""));
        let back: Manifest = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(m.size(), 8);
        assert_eq!(m.digests().count(), 3);
        assert_eq!(m.layer(SYSTEM_MEDIA_TYPE).unwrap().size, 2);
    }

    #[test]
    fn reads_an_ollama_config() {
        // The config blob of an Ollama-pulled model, abridged.
        let json = br#"{"model_format":"gguf","model_family":"llama","model_families":["llama"],"model_type":"3.2B","file_type":"Q4_K_M","architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:dde5aa3fc5ffc17176b5e8bdc82f587b24b2678c6c66101bf7da77af9f7ccdff"]}}"#;
        let c: ModelConfig = serde_json::from_slice(json).unwrap();
        assert_eq!(c.file_type, "Q4_K_M");
        assert_eq!(c.rootfs.diff_ids.len(), 1);
        assert_eq!(c.rootfs.kind, "layers");
    }
}
