//! `--only KIND|NAMESPACE ...`: which stored objects a restore touches.
//!
//! Each value names a kind (`Deployment`, `deployments`, `helmreleases.helm.toolkit.fluxcd.io`)
//! or a namespace (`apps`). Values of one sort add up; kinds and namespaces narrow each other
//! (`--only ConfigMap --only apps`: the ConfigMaps in apps), as `kubectl get cm -n apps` does.
//! A namespace selects its Namespace object too, and a namespaced object brings its Namespace
//! along, since it cannot be created without it.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::RestoreError;

/// Where a stored object sits in the restore point, read from its file path
/// (`resources/<group|core>/<Kind>/<namespace|_cluster>/<name>.json[.age]`), so that the
/// selection can be decided without decrypting anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPath {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl StoredPath {
    /// `None` for a path outside that layout (not an object file).
    pub fn parse(path: &str) -> Option<StoredPath> {
        let parts: Vec<&str> = path.split('/').collect();
        let parts = match parts.as_slice() {
            ["resources", rest @ ..] => rest,
            all => all,
        };
        let [group, kind, namespace, file] = parts else {
            return None;
        };
        let name = file
            .strip_suffix(".json.age")
            .or_else(|| file.strip_suffix(".json"))?;
        Some(StoredPath {
            group: if *group == "core" { "" } else { group }.to_string(),
            kind: kind.to_string(),
            namespace: (*namespace != "_cluster").then(|| namespace.to_string()),
            name: name.to_string(),
        })
    }

    pub fn of_object(obj: &Value) -> StoredPath {
        let (group, kind) = crate::order::group_kind(obj);
        let meta = |k: &str| {
            obj.pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
        };
        StoredPath {
            group: group.to_string(),
            kind: kind.to_string(),
            namespace: meta("namespace").map(str::to_string),
            name: meta("name").unwrap_or("").to_string(),
        }
    }
}

/// A kind as a value names it: kind or plural, with or without its group.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KindName {
    name: String,
    group: Option<String>,
}

impl KindName {
    fn matches(&self, group: &str, kind: &str) -> bool {
        self.group.as_deref().is_none_or(|g| g == group)
            && (self.name.eq_ignore_ascii_case(kind) || self.name == plural(kind))
    }
}

/// The plural Kubernetes derives for a kind when a CRD does not say otherwise (the same rule
/// kube-rs uses): lowercase, then `s`, `es` or `ies`.
pub fn plural(kind: &str) -> String {
    let k = kind.to_ascii_lowercase();
    if k.ends_with('s') || k.ends_with('x') || k.ends_with("ch") || k.ends_with("sh") {
        format!("{k}es")
    } else if let Some(stem) = k.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{k}s")
    }
}

/// What `--only` selected. The default selects everything.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    kinds: Vec<KindName>,
    namespaces: BTreeSet<String>,
}

impl Selection {
    pub fn all() -> Selection {
        Selection::default()
    }

    pub fn is_all(&self) -> bool {
        self.kinds.is_empty() && self.namespaces.is_empty()
    }

    /// Reads the `--only` values against what the restore point holds, so a typo is an error
    /// instead of a restore of nothing. A lowercase value that is both a namespace and a kind
    /// (`secrets`) is refused as ambiguous; `Secret` or `secrets.` (kind) says which.
    pub fn parse(values: &[String], stored: &[StoredPath]) -> Result<Selection, RestoreError> {
        let mut sel = Selection::default();
        for raw in values {
            let v = raw.trim();
            let bad = |problem: String| RestoreError::Only {
                value: raw.clone(),
                problem,
            };
            if v.is_empty() {
                return Err(bad("empty value".to_string()));
            }
            let kind = match v.split_once('.') {
                Some((name, group)) => KindName {
                    name: name.to_string(),
                    group: Some(group.to_string()).filter(|g| !g.is_empty()),
                },
                None => KindName {
                    name: v.to_string(),
                    group: None,
                },
            };
            let is_kind = stored.iter().any(|p| kind.matches(&p.group, &p.kind));
            // Namespace names are lowercase DNS labels: anything else can only be a kind.
            let could_be_ns = !v.contains('.') && !v.chars().any(|c| c.is_ascii_uppercase());
            let is_ns = could_be_ns && stored.iter().any(|p| p.namespace.as_deref() == Some(v));
            match (is_kind, is_ns) {
                (true, false) => sel.kinds.push(kind),
                (false, true) => {
                    sel.namespaces.insert(v.to_string());
                }
                (true, true) => {
                    return Err(bad(format!(
                        "both a kind and a namespace in the restore point; write the kind with a capital ({}) or a trailing dot ({v}.) for the kind",
                        kind_display(stored, &kind)
                    )));
                }
                (false, false) => {
                    return Err(bad(
                        "no kind or namespace of that name in the restore point".to_string(),
                    ));
                }
            }
        }
        Ok(sel)
    }

    /// Whether the selection names this object itself (not counting the Namespace objects
    /// [`Selection::select`] adds for what it selects).
    pub fn includes(&self, p: &StoredPath) -> bool {
        let kind_ok =
            self.kinds.is_empty() || self.kinds.iter().any(|k| k.matches(&p.group, &p.kind));
        let ns_ok = self.namespaces.is_empty()
            || p.namespace
                .as_ref()
                .is_some_and(|n| self.namespaces.contains(n))
            || (p.group.is_empty() && p.kind == "Namespace" && self.namespaces.contains(&p.name));
        kind_ok && ns_ok
    }

    /// Whether a stored file is needed: selected, or the Namespace of something selected.
    pub fn needs(&self, p: &StoredPath, stored: &[StoredPath]) -> bool {
        self.includes(p)
            || (p.group.is_empty()
                && p.kind == "Namespace"
                && stored
                    .iter()
                    .any(|o| o.namespace.as_deref() == Some(p.name.as_str()) && self.includes(o)))
    }

    /// The selected objects, with the Namespace objects their namespaces need.
    pub fn select(&self, objects: Vec<Value>) -> Vec<Value> {
        if self.is_all() {
            return objects;
        }
        let paths: Vec<StoredPath> = objects.iter().map(StoredPath::of_object).collect();
        objects
            .into_iter()
            .zip(paths.iter())
            .filter(|(_, p)| self.needs(p, &paths))
            .map(|(o, _)| o)
            .collect()
    }
}

fn kind_display(stored: &[StoredPath], kind: &KindName) -> String {
    stored
        .iter()
        .find(|p| kind.matches(&p.group, &p.kind))
        .map(|p| p.kind.clone())
        .unwrap_or_else(|| kind.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(path: &str) -> StoredPath {
        StoredPath::parse(path).unwrap()
    }

    fn stored() -> Vec<StoredPath> {
        [
            "resources/core/Namespace/_cluster/apps.json",
            "resources/core/Namespace/_cluster/secrets.json",
            "resources/core/Namespace/_cluster/media.json",
            "resources/core/ConfigMap/apps/settings.json",
            "resources/core/ConfigMap/media/jellyfin.json",
            "resources/core/Secret/apps/creds.json.age",
            "resources/core/Secret/secrets/vault.json.age",
            "resources/apps/Deployment/apps/web.json",
            "resources/helm.toolkit.fluxcd.io/HelmRelease/media/jellyfin.json",
            "resources/storage.k8s.io/StorageClass/_cluster/longhorn.json",
        ]
        .iter()
        .map(|s| p(s))
        .collect()
    }

    fn only(values: &[&str]) -> Result<Selection, RestoreError> {
        let v: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        Selection::parse(&v, &stored())
    }

    fn selected(sel: &Selection) -> Vec<String> {
        let all = stored();
        all.iter()
            .filter(|x| sel.needs(x, &all))
            .map(|x| {
                format!(
                    "{}/{}/{}",
                    x.kind,
                    x.namespace.as_deref().unwrap_or("-"),
                    x.name
                )
            })
            .collect()
    }

    #[test]
    fn paths_are_read_with_or_without_the_resources_prefix() {
        assert_eq!(
            p("resources/core/Secret/apps/creds.json.age"),
            StoredPath {
                group: "".into(),
                kind: "Secret".into(),
                namespace: Some("apps".into()),
                name: "creds".into()
            }
        );
        let crd = p(
            "apiextensions.k8s.io/CustomResourceDefinition/_cluster/helmreleases.helm.toolkit.fluxcd.io.json",
        );
        assert_eq!(crd.name, "helmreleases.helm.toolkit.fluxcd.io");
        assert_eq!(crd.namespace, None);
        assert!(StoredPath::parse("manifest.json").is_none());
        assert!(StoredPath::parse("resources/core/Secret/apps/creds.yaml").is_none());
    }

    #[test]
    fn kinds_and_namespaces_add_up_and_narrow_each_other() {
        // A namespace: its objects and its Namespace.
        assert_eq!(
            selected(&only(&["media"]).unwrap()),
            [
                "Namespace/-/media",
                "ConfigMap/media/jellyfin",
                "HelmRelease/media/jellyfin"
            ]
        );
        // A kind, by kind, plural or kind.group: its objects and their Namespaces.
        for v in ["ConfigMap", "configmaps", "configmap", "configmaps."] {
            assert_eq!(
                selected(&only(&[v]).unwrap()),
                [
                    "Namespace/-/apps",
                    "Namespace/-/media",
                    "ConfigMap/apps/settings",
                    "ConfigMap/media/jellyfin"
                ],
                "{v}"
            );
        }
        assert_eq!(
            selected(&only(&["helmreleases.helm.toolkit.fluxcd.io"]).unwrap()),
            ["Namespace/-/media", "HelmRelease/media/jellyfin"]
        );
        // Kind and namespace together: the intersection.
        assert_eq!(
            selected(&only(&["ConfigMap", "apps"]).unwrap()),
            ["Namespace/-/apps", "ConfigMap/apps/settings"]
        );
        // Two kinds: the union. Cluster-scoped kinds need no Namespace.
        assert_eq!(
            selected(&only(&["StorageClass", "Deployment"]).unwrap()),
            [
                "Namespace/-/apps",
                "Deployment/apps/web",
                "StorageClass/-/longhorn"
            ]
        );
        // No values: everything.
        assert_eq!(selected(&only(&[]).unwrap()).len(), stored().len());
    }

    #[test]
    fn unknown_and_ambiguous_values_are_errors_naming_the_value() {
        let e = only(&["Deploymnet"]).unwrap_err().to_string();
        assert_eq!(
            e,
            "--only Deploymnet: no kind or namespace of that name in the restore point"
        );
        // `secrets` is a namespace and the plural of Secret.
        let e = only(&["secrets"]).unwrap_err().to_string();
        assert!(
            e.starts_with("--only secrets: both a kind and a namespace"),
            "{e}"
        );
        assert!(e.contains("(Secret)"), "{e}");
        // Written as a kind, it is one.
        assert_eq!(
            selected(&only(&["Secret"]).unwrap()),
            [
                "Namespace/-/apps",
                "Namespace/-/secrets",
                "Secret/apps/creds",
                "Secret/secrets/vault"
            ]
        );
        assert!(only(&[""]).is_err());
    }

    #[test]
    fn select_filters_objects_the_same_way() {
        let objs = vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "media"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "apps"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "apps"}}),
        ];
        let sel = only(&["ConfigMap"]).unwrap();
        let picked = sel.select(objs.clone());
        let names: Vec<&str> = picked
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["apps", "settings"]);
        assert_eq!(Selection::all().select(objs).len(), 4);
        assert_eq!(plural("Ingress"), "ingresses");
        assert_eq!(plural("NetworkPolicy"), "networkpolicies");
        assert_eq!(plural("Gateway"), "gateways");
    }
}
