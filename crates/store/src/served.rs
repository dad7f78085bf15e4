//! What the store offers to registry clients when `hearth serve` speaks the
//! registry protocol's read side (`/v2/NS/MODEL/manifests/TAG`): a model is
//! found by namespace, model and tag whatever host it was pulled from, the
//! default registry's first, and its manifest is served as stored, so the
//! client computes the same model ID.

use std::fs;

use crate::error::{Result, io_err};
use crate::name::{DEFAULT_HOST, ModelName};
use crate::store::Store;

impl Store {
    /// The stored manifest bytes of the model `namespace/model:tag` (any
    /// host, ignoring case; the default host's first), if there is one.
    pub fn registry_manifest(
        &self,
        namespace: &str,
        model: &str,
        tag: &str,
    ) -> Result<Option<(ModelName, Vec<u8>)>> {
        let Ok(wanted) = ModelName::from_parts(DEFAULT_HOST, namespace, model, tag) else {
            return Ok(None);
        };
        let mut names = self.names()?;
        names.retain(|n| {
            n.namespace.eq_ignore_ascii_case(namespace)
                && n.model.eq_ignore_ascii_case(model)
                && n.tag.eq_ignore_ascii_case(tag)
        });
        names.sort_by_key(|n| !n.eq_fold(&wanted));
        let Some(name) = names.into_iter().next() else {
            return Ok(None);
        };
        let path = self.manifest_path(&name);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        Ok(Some((name, bytes)))
    }
}
