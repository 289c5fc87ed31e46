//! `--state-out`: the final objects, one JSON file each, laid out as
//! `DIR/<namespace or _cluster>/<resource>.<group>/<name>.json`.

use std::path::{Path, PathBuf};

use crate::store::Store;

#[derive(Debug, thiserror::Error)]
#[error("cannot write state to {path}: {source}")]
pub struct StateError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Writes every object in `store` under `dir`; returns how many were written.
pub fn write_state(store: &Store, dir: &Path) -> Result<usize, StateError> {
    let objects = store.dump();
    for (key, obj) in &objects {
        let ns = if key.namespace.is_empty() {
            "_cluster"
        } else {
            &key.namespace
        };
        let res = if key.group.is_empty() {
            key.resource.clone()
        } else {
            format!("{}.{}", key.resource, key.group)
        };
        let folder = dir.join(ns).join(res);
        let path = folder.join(format!("{}.json", key.name));
        let err = |source| StateError {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&folder).map_err(err)?;
        let text = serde_json::to_string_pretty(obj).unwrap_or_default();
        std::fs::write(&path, text + "\n").map_err(err)?;
    }
    Ok(objects.len())
}
