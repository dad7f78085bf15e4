//! The local model store: model names, content-addressed blobs, manifests and
//! Modelfiles, in Ollama's on-disk layout.
//!
//! - [`ModelName`]: `[host/][namespace/]model[:tag]` with Ollama's defaults.
//! - [`Store`]: `create` from a [`Modelfile`], `list`, `resolve`, `copy`,
//!   `delete` (with garbage collection of unreferenced blobs), `put_blob`.
//! - Built-in models ([`Store::with_builtin_bytes`]): installed into every
//!   store, refreshed when the program's version changes (builtin.rs).
//! - [`Store::pull`]: models from a registry speaking Ollama's protocol, or a
//!   GGUF file by URL, resumable and verified ([`PullOptions`]).
//! - [`Store::push`]: a model to such a registry.
//! - [`Store::registry_manifest`]: models as a registry serves them.
//! - [`Store::import_ollama`]: an Ollama store's models, by hard link.
//! - [`quantize`]: a GGUF model quantized as llama-quantize does it.
//! - [`Modelfile`]: parse and render FROM / PARAMETER / TEMPLATE / SYSTEM /
//!   MESSAGE / LICENSE.
//!
//! Writes are atomic (temporary file, sync, rename) and a store-wide lock keeps
//! garbage collection from racing a create; see store.rs for the details. The
//! store never loads or runs a model: it only checks that a file parses as GGUF.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod builtin;
mod create;
mod digest;
mod error;
mod fsutil;
mod gguf_info;
mod import;
mod manifest;
mod modelfile;
mod name;
mod params;
mod pull;
mod push;
pub mod quantize;
mod served;
mod store;

pub use create::{Progress, Source, resolve_adapter, resolve_from};
pub use digest::{Digest, DigestError};
pub use error::{Result, StoreError};
pub use gguf_info::{file_type_name, human_number};
pub use import::ImportReport;
pub use manifest::{
    ADAPTER_MEDIA_TYPE, CONFIG_MEDIA_TYPE, LICENSE_MEDIA_TYPE, Layer, MANIFEST_MEDIA_TYPE,
    MESSAGES_MEDIA_TYPE, MODEL_MEDIA_TYPE, Manifest, ModelConfig, PARAMS_MEDIA_TYPE, RootFs,
    SYSTEM_MEDIA_TYPE, TEMPLATE_MEDIA_TYPE,
};
pub use modelfile::{Message, Modelfile, ModelfileError};
pub use name::{
    DEFAULT_HOST, DEFAULT_NAMESPACE, DEFAULT_TAG, HF_DEFAULT_TAG, ModelName, NameError, is_hf_host,
};
pub use params::{ParamKind, ParamValue, Parameters, is_deprecated, param_kind};
pub use pull::{PullOptions, PullSource, RemoteModel, TemplateCheck};
pub use store::{MODELS_ENV, ModelEntry, PruneReport, ResolvedModel, Store, default_root};
