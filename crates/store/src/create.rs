//! Building a model from a Modelfile (`hearth create`, `POST /api/create`):
//! import the GGUF (or take an existing model's layers), add the text and JSON
//! layers, write the config blob and the manifest (ollama server/create.go).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::digest::{self, Digest};
use crate::error::{Result, StoreError, io_err};
use crate::fsutil::LockMode;
use crate::gguf_info;
use crate::manifest::{self, Layer, Manifest, ModelConfig};
use crate::modelfile::Modelfile;
use crate::name::ModelName;
use crate::params::Parameters;
use crate::store::Store;

/// A step of a create, for progress display (the fields of Ollama's
/// `ProgressResponse`, so the server can stream them as they are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// What is happening: `gathering model components`, `transferring model
    /// data`, `using existing layer sha256:…`, `creating new layer sha256:…`,
    /// `writing manifest`, `success`.
    pub status: String,
    /// The blob concerned, if any.
    pub digest: Option<Digest>,
    /// Bytes to process in this step, for steps that stream a file.
    pub total: Option<u64>,
    /// Bytes processed so far.
    pub completed: Option<u64>,
}

impl Progress {
    pub(crate) fn status(status: impl Into<String>) -> Progress {
        Progress {
            status: status.into(),
            digest: None,
            total: None,
            completed: None,
        }
    }

    pub(crate) fn bytes(
        status: &str,
        digest: Option<Digest>,
        total: u64,
        completed: u64,
    ) -> Progress {
        Progress {
            status: status.to_owned(),
            digest,
            total: Some(total),
            completed: Some(completed),
        }
    }
}

/// Where a Modelfile's FROM points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A GGUF file on disk.
    File(PathBuf),
    /// A model in the store (or a built-in one).
    Model(ModelName),
}

impl Store {
    /// Builds the model `name` from `modelfile`, replacing any model of that
    /// name (matched ignoring case). A relative FROM path is taken relative to
    /// `base_dir` (the Modelfile's directory). `progress` is called with each
    /// step. Returns the new manifest.
    ///
    /// Holds the store lock shared throughout, so a concurrent `delete` cannot
    /// collect the blobs between their writing and the manifest's.
    pub fn create(
        &self,
        name: &ModelName,
        modelfile: &Modelfile,
        base_dir: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Manifest> {
        let _guard = self.lock(LockMode::Shared)?;
        self.create_locked(name, modelfile, base_dir, progress)
    }

    /// [`Store::create`] for callers already holding the lock (shared or
    /// exclusive).
    pub(crate) fn create_locked(
        &self,
        name: &ModelName,
        modelfile: &Modelfile,
        base_dir: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Manifest> {
        let (mut layers, mut config) = match resolve_from(&modelfile.from, base_dir)? {
            Source::File(path) => {
                let (layer, config) = self.import_gguf(&path, progress)?;
                (vec![layer], config)
            }
            Source::Model(base) => {
                let (stored, base_manifest, _) = self.read_manifest(&base)?;
                let config: ModelConfig = self.read_json_blob(&base_manifest.config.digest)?;
                let from = stored.display_short();
                let layers = base_manifest
                    .layers
                    .into_iter()
                    .map(|mut l| {
                        progress(Progress {
                            digest: Some(l.digest),
                            ..Progress::status(format!("using existing layer {}", l.digest))
                        });
                        l.from.get_or_insert_with(|| from.clone());
                        l
                    })
                    .collect();
                (layers, config)
            }
        };

        if let Some(preset) = &modelfile.quantize {
            let model = layers
                .iter()
                .position(|l| l.media_type == manifest::MODEL_MEDIA_TYPE)
                .ok_or_else(|| {
                    StoreError::Unsupported(format!(
                        "FROM {}: the model has no weights layer to quantize",
                        modelfile.from
                    ))
                })?;
            let (layer, quantized) = self.quantize_layer(&layers[model], preset, progress)?;
            layers[model] = layer;
            config = quantized;
        }

        for adapter in &modelfile.adapters {
            let layer = self.import_adapter(adapter, base_dir, progress)?;
            if !layers.iter().any(|l| l.digest == layer.digest) {
                layers.push(layer);
            }
        }

        let mut add = |layers: &mut Vec<Layer>, media_type: &str, bytes: &[u8]| -> Result<()> {
            let layer = self.put_bytes(media_type, bytes)?;
            progress(Progress {
                digest: Some(layer.digest),
                ..Progress::status(format!("creating new layer {}", layer.digest))
            });
            layers.push(layer);
            Ok(())
        };
        if let Some(template) = &modelfile.template {
            layers.retain(|l| l.media_type != manifest::TEMPLATE_MEDIA_TYPE);
            add(
                &mut layers,
                manifest::TEMPLATE_MEDIA_TYPE,
                template.as_bytes(),
            )?;
        }
        if let Some(system) = &modelfile.system {
            layers.retain(|l| l.media_type != manifest::SYSTEM_MEDIA_TYPE);
            add(&mut layers, manifest::SYSTEM_MEDIA_TYPE, system.as_bytes())?;
        }
        if !modelfile.parameters.is_empty() {
            let mut params = modelfile.parameters.clone();
            if let Some(base) = layers
                .iter()
                .find(|l| l.media_type == manifest::PARAMS_MEDIA_TYPE)
            {
                let path = self.blob_path(&base.digest);
                let bytes = std::fs::read(&path).map_err(io_err(&path))?;
                let base = Parameters::from_json(&bytes)
                    .map_err(|msg| StoreError::CorruptManifest { path, msg })?;
                params.inherit(&base);
            }
            layers.retain(|l| l.media_type != manifest::PARAMS_MEDIA_TYPE);
            add(&mut layers, manifest::PARAMS_MEDIA_TYPE, &params.to_json())?;
        }
        if !modelfile.messages.is_empty() {
            let json = serde_json::to_vec(&modelfile.messages)
                .map_err(|e| StoreError::Unsupported(format!("messages cannot be encoded: {e}")))?;
            layers.retain(|l| l.media_type != manifest::MESSAGES_MEDIA_TYPE);
            add(&mut layers, manifest::MESSAGES_MEDIA_TYPE, &json)?;
        }
        for license in &modelfile.licenses {
            let digest = Digest::of(license.as_bytes());
            if !layers.iter().any(|l| l.digest == digest) {
                add(
                    &mut layers,
                    manifest::LICENSE_MEDIA_TYPE,
                    license.as_bytes(),
                )?;
            }
        }

        config.rootfs.diff_ids = layers.iter().map(|l| l.digest).collect();
        let config_json = serde_json::to_vec(&config)
            .map_err(|e| StoreError::Unsupported(format!("config cannot be encoded: {e}")))?;
        let config_layer = self.put_bytes(manifest::CONFIG_MEDIA_TYPE, &config_json)?;
        let manifest = Manifest::new(config_layer, layers);

        progress(Progress::status("writing manifest"));
        let name = self.spelling_for_write(name)?;
        self.write_manifest(&name, &manifest)?;
        progress(Progress::status("success"));
        Ok(manifest)
    }

    /// Adds the GGUF file at `path` as a model blob and describes it. The file
    /// is parsed first (a non-GGUF file is rejected before anything is copied),
    /// hashed, and copied only if the store lacks that digest; the copy is
    /// hashed again as it streams, so a file changed meanwhile is rejected.
    /// A blob of this store given by path is used in place.
    fn import_gguf(
        &self,
        path: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(Layer, ModelConfig)> {
        let gguf = gguf_info::check(path)?;
        let config = gguf_info::describe(&gguf);
        let size = gguf.file_size();
        drop(gguf);

        let digest = match self.own_blob(path) {
            Some(digest) => digest,
            None => {
                let status = "gathering model components";
                progress(Progress::bytes(status, None, size, 0));
                let mut file = File::open(path).map_err(io_err(path))?;
                let mut report = |n| progress(Progress::bytes(status, None, size, n));
                digest::copy_hashing(&mut file, &mut std::io::sink(), &mut report)
                    .map_err(io_err(path))?
                    .0
            }
        };
        if self.has_blob(&digest) {
            progress(Progress {
                digest: Some(digest),
                ..Progress::status(format!("using existing layer {digest}"))
            });
        } else {
            let status = "transferring model data";
            let mut file = File::open(path).map_err(io_err(path))?;
            let mut report = |n| progress(Progress::bytes(status, Some(digest), size, n));
            self.put_blob_locked(&digest, &mut file, &mut report)?;
            // What was stored must itself parse: the source may have changed.
            gguf_info::check(&self.blob_path(&digest))?;
            progress(Progress {
                digest: Some(digest),
                ..Progress::status(format!("creating new layer {digest}"))
            });
        }
        let layer = Layer {
            media_type: manifest::MODEL_MEDIA_TYPE.to_owned(),
            digest,
            size,
            from: None,
        };
        Ok((layer, config))
    }

    /// Adds the GGUF LoRA adapter an ADAPTER line names (a path resolved as
    /// FROM's is) as an adapter blob. The file must be a GGUF whose
    /// `general.type` is `adapter` (llama.cpp's `convert_lora_to_gguf.py`
    /// writes it); whether it fits the base model is checked when the model
    /// loads, as llama.cpp checks it.
    fn import_adapter(
        &self,
        adapter: &str,
        base_dir: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Layer> {
        let path = resolve_adapter(adapter, base_dir)?;
        let gguf = gguf::GgufFile::open(&path).map_err(|e| {
            StoreError::Unsupported(format!("ADAPTER {adapter}: not a GGUF file: {e}"))
        })?;
        let kind = gguf
            .metadata()
            .opt_str("general.type")
            .ok()
            .flatten()
            .unwrap_or("")
            .to_owned();
        let size = gguf.file_size();
        drop(gguf);
        if kind != "adapter" {
            return Err(StoreError::Unsupported(format!(
                "ADAPTER {adapter}: general.type is '{kind}', not 'adapter' (a LoRA GGUF)"
            )));
        }
        let digest = match self.own_blob(&path) {
            Some(digest) => digest,
            None => {
                let mut file = File::open(&path).map_err(io_err(&path))?;
                digest::copy_hashing(&mut file, &mut std::io::sink(), &mut |_| {})
                    .map_err(io_err(&path))?
                    .0
            }
        };
        if self.has_blob(&digest) {
            progress(Progress {
                digest: Some(digest),
                ..Progress::status(format!("using existing layer {digest}"))
            });
        } else {
            let status = "transferring adapter data";
            let mut file = File::open(&path).map_err(io_err(&path))?;
            let mut report = |n| progress(Progress::bytes(status, Some(digest), size, n));
            self.put_blob_locked(&digest, &mut file, &mut report)?;
            progress(Progress {
                digest: Some(digest),
                ..Progress::status(format!("creating new layer {digest}"))
            });
        }
        Ok(Layer {
            media_type: manifest::ADAPTER_MEDIA_TYPE.to_owned(),
            digest,
            size,
            from: None,
        })
    }

    /// Quantizes the GGUF of `layer` to `preset` (as `hearth quantize` does,
    /// without an importance matrix) into a new model layer. Only F16, BF16
    /// and F32 weights are quantized, as Ollama's create does; the output is
    /// written under the store's `partial/` directory and removed once it is
    /// a blob.
    fn quantize_layer(
        &self,
        layer: &Layer,
        preset: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(Layer, ModelConfig)> {
        use crate::quantize::{Event, Options, Preset, QuantizeError, Request, quantize_file};
        let Some(parsed) = Preset::parse(preset) else {
            return Err(StoreError::Unsupported(format!(
                "unknown quantization type '{preset}': use one of {}",
                Preset::names().collect::<Vec<_>>().join(", ")
            )));
        };
        let input = self.blob_path(&layer.digest);
        let dir = self.root().join("partial");
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let output = dir.join(format!(
            "quantize-{}-{}.gguf",
            std::process::id(),
            &layer.digest.hex()[..12]
        ));
        let status = format!("quantizing model to {}", parsed.name());
        progress(Progress::status(&status));
        let request = Request {
            input: &input,
            output: &output,
            options: Options::new(parsed),
            allow_requantize: false,
            imatrix: None,
            n_threads: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        };
        let (mut total, mut done) = (0, 0);
        let quantized = quantize_file(&request, &mut |event| match event {
            Event::Planned { bytes_in, .. } => {
                total = bytes_in;
                progress(Progress::bytes(&status, None, total, 0));
            }
            Event::Tensor { bytes_in, .. } => {
                done += bytes_in;
                progress(Progress::bytes(&status, None, total, done));
            }
        });
        match quantized {
            Ok(_) => {}
            Err(QuantizeError::Requantize { tensor, ty }) => {
                return Err(StoreError::Unsupported(format!(
                    "quantization is only supported for F16, BF16 and F32 models: {tensor} is {ty}"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let imported = self.import_gguf(&output, progress);
        let _ = std::fs::remove_file(&output);
        imported
    }

    /// The digest of `path` if it is one of this store's blobs (as in a FROM
    /// line written by `show --modelfile`): no need to hash or copy it.
    fn own_blob(&self, path: &Path) -> Option<Digest> {
        let path = path.canonicalize().ok()?;
        let blobs = self.blobs_dir().canonicalize().ok()?;
        if path.parent()? != blobs {
            return None;
        }
        Digest::parse(path.file_name()?.to_str()?).ok()
    }
}

/// Interprets a FROM argument: an existing file or directory (relative to
/// `base_dir`, `~` for the home directory), else a model name. A client
/// sending a Modelfile to a server resolves it the same way first, so both
/// paths give the same errors.
pub fn resolve_from(from: &str, base_dir: &Path) -> Result<Source> {
    let path = expand_path(from, base_dir);
    if path.is_dir() {
        return Err(StoreError::Unsupported(format!(
            "FROM {from}: importing a directory (safetensors) is not supported yet; give a GGUF file"
        )));
    }
    if path.exists() {
        return Ok(Source::File(path));
    }
    match ModelName::parse(from) {
        Ok(name) => Ok(Source::Model(name)),
        // Neither: report the path, which is what a user most likely meant.
        Err(_) => Err(StoreError::Io {
            path,
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }),
    }
}

/// Interprets an ADAPTER argument as [`resolve_from`] does a FROM path: a
/// file relative to `base_dir` (`~` for the home directory). A directory (a
/// PEFT adapter in safetensors) is refused; whether the file is a GGUF LoRA
/// is checked when it is stored.
pub fn resolve_adapter(adapter: &str, base_dir: &Path) -> Result<PathBuf> {
    let path = expand_path(adapter, base_dir);
    if path.is_dir() {
        return Err(StoreError::Unsupported(format!(
            "ADAPTER {adapter}: a directory (a PEFT adapter in safetensors) is not \
             supported; convert it to a GGUF LoRA first"
        )));
    }
    Ok(path)
}

/// `~` and `~/…` expand to the home directory; absolute paths stay; anything
/// else is relative to `base_dir` (ollama parser.go `expandPath`, without the
/// `~user` form).
fn expand_path(from: &str, base_dir: &Path) -> PathBuf {
    if (from == "~" || from.starts_with("~/"))
        && let Some(home) = dirs::home_dir()
    {
        return home.join(from.trim_start_matches('~').trim_start_matches('/'));
    }
    base_dir.join(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_paths() {
        let base = Path::new("/work/models");
        assert_eq!(
            expand_path("./m.gguf", base),
            Path::new("/work/models/./m.gguf")
        );
        assert_eq!(expand_path("/abs/m.gguf", base), Path::new("/abs/m.gguf"));
        if let Some(home) = dirs::home_dir() {
            assert_eq!(expand_path("~/m.gguf", base), home.join("m.gguf"));
            assert_eq!(expand_path("~", base), home);
        }
    }
}
