//! Where an object lives inside a restore point.

use serde_json::Value;

/// The manifest's name inside a restore point.
pub(crate) const MANIFEST: &str = "manifest.json";
/// The directory holding the objects.
pub(crate) const RESOURCES: &str = "resources";
/// Suffix of an age-encrypted object.
pub(crate) const AGE_SUFFIX: &str = ".age";

/// `resources/<group>/<Kind>/<namespace>/<name>.json`: `core` for the core
/// group and `_cluster` for cluster-scoped objects (neither can be a real
/// CRD group or namespace: CRD groups contain a dot, namespaces no `_`).
pub(crate) fn object_path(obj: &Value, encrypted: bool) -> Option<String> {
    let api_version = obj.get("apiVersion")?.as_str()?;
    let kind = obj.get("kind")?.as_str()?;
    let name = obj.pointer("/metadata/name")?.as_str()?;
    let group = match api_version.split_once('/') {
        Some((g, _)) => g,
        None => "core",
    };
    let namespace = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or("_cluster");
    let safe = |s: &str| !s.is_empty() && !s.contains('/') && s != "." && s != "..";
    if ![group, kind, namespace, name].iter().all(|s| safe(s)) {
        return None;
    }
    let suffix = if encrypted { AGE_SUFFIX } else { "" };
    Some(format!(
        "{RESOURCES}/{group}/{kind}/{namespace}/{name}.json{suffix}"
    ))
}

/// A path read from a manifest or archive is only ever a plain relative
/// path: no `..`, no absolute path, so a crafted restore point cannot make
/// us read or write outside it.
pub(crate) fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_by_group_kind_namespace_name() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "apps"}});
        assert_eq!(
            object_path(&cm, false).unwrap(),
            "resources/core/ConfigMap/apps/c.json"
        );
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "volumes.longhorn.io"}});
        assert_eq!(
            object_path(&crd, true).unwrap(),
            "resources/apiextensions.k8s.io/CustomResourceDefinition/_cluster/volumes.longhorn.io.json.age"
        );
        let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "../x"}});
        assert!(object_path(&bad, false).is_none());
        assert!(object_path(&json!({"kind": "ConfigMap"}), false).is_none());
    }

    #[test]
    fn only_plain_relative_paths_are_safe() {
        assert!(is_safe_relative("resources/core/ConfigMap/a/b.json"));
        assert!(!is_safe_relative("/etc/passwd"));
        assert!(!is_safe_relative("resources/../../x"));
        assert!(!is_safe_relative("a//b"));
        assert!(!is_safe_relative(""));
    }
}
