//! The MODEL argument of every command that takes one: a GGUF file's path or
//! the name of a model in the store, told apart as Ollama users expect (a
//! file that exists, or anything that looks like a path, is a file).

use std::path::{Path, PathBuf};

use store::{ModelName, Parameters, StoreError};

/// Whether `arg` names a file rather than a model of the store: an existing
/// file, a `.gguf` name, or an absolute, `./` or `~` path.
pub(super) fn is_file(arg: &Path) -> bool {
    arg.is_file()
        || arg.extension().is_some_and(|e| e == "gguf")
        || arg.is_absolute()
        || arg.starts_with(".")
        || arg.starts_with("~")
}

/// A model to load: its GGUF file and, for a model of the store, the
/// parameters its Modelfile set (none for a file).
pub(super) struct Resolved {
    /// The GGUF file.
    pub(super) path: PathBuf,
    /// The stored model's parameters.
    pub(super) params: Parameters,
    /// The stored model's TEMPLATE, which replaces the file's chat template.
    pub(super) template: Option<String>,
    /// The stored model's SYSTEM message, used when none is given.
    pub(super) system: Option<String>,
    /// The stored model's LoRA adapters (ADAPTER lines), applied at scale 1.
    pub(super) adapters: Vec<PathBuf>,
}

impl Resolved {
    /// Loads the model's adapters for `model`, each at scale 1.
    pub(super) fn load_adapters(
        &self,
        model: &model::Model,
    ) -> anyhow::Result<Vec<model::LoraUse>> {
        self.adapters
            .iter()
            .map(|path| {
                Ok(model::LoraUse {
                    lora: std::sync::Arc::new(model.load_lora(path)?),
                    scale: 1.0,
                })
            })
            .collect()
    }
}

/// Resolves MODEL to a file: the path itself, or the store's model of that
/// name (a missing one is an error that says how to get a model).
pub(super) fn resolve(arg: &Path) -> anyhow::Result<Resolved> {
    if is_file(arg) {
        return Ok(Resolved {
            path: arg.to_owned(),
            params: Parameters::new(),
            template: None,
            system: None,
            adapters: Vec::new(),
        });
    }
    let name = arg.to_string_lossy();
    let store = crate::builtin::open_store()?;
    let resolved = store
        .resolve(&ModelName::parse(&name)?)
        .map_err(|e| match e {
            StoreError::NotFound(_) => not_found(&name, Some(store.root())),
            e => e.into(),
        })?;
    Ok(Resolved {
        path: resolved.gguf_path,
        params: resolved.params,
        template: resolved.template,
        system: resolved.system,
        adapters: resolved.adapters,
    })
}

/// The error for a model that is not in the store (or on the server): what
/// to do instead, and where the models are kept when that is known.
pub(super) fn not_found(name: &str, store_root: Option<&Path>) -> anyhow::Error {
    let short = ModelName::parse(name).map_or_else(|_| name.to_owned(), |n| n.display_short());
    let mut message = format!(
        "model '{short}' not found\n\
         \x20 - download it:        hearth pull {name}\n\
         \x20 - run a GGUF file:    hearth run ./path/to/model.gguf\n\
         \x20 - create one:         hearth create NAME -f Modelfile (FROM a .gguf file or a model)\n\
         \x20 - see what you have:  hearth list"
    );
    if let Some(root) = store_root {
        message.push_str(&format!(
            "\nmodels are kept in {} (set HEARTH_MODELS to use another store)",
            root.display()
        ));
    }
    anyhow::Error::msg(message)
}
