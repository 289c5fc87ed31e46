//! The read API over files: `kubectl get ... -o json` (a `List`, a typed `XList`, or a single
//! object), several documents concatenated, or the same as YAML (`-o yaml`).
//!
//! Files know only what is in them: a resource is "served" when at least one object of its
//! kind is present, its plural is derived from the kind (kube-rs's rules), and it is taken as
//! namespaced when any of its objects has a namespace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use kube::api::DynamicObject;
use serde_json::Value;

use crate::error::{KubeError, headline, one_line};
use crate::read::{ClusterRead, ListOptions};
use crate::resource::{Resource, ResourceRef, split_api_version};
use crate::selector::{FieldSelector, LabelSelector};

/// (group, version, kind, namespace, name): sorts like `kubectl get -A` output within a kind.
type Key = (String, String, String, String, String);

/// Objects read from files, served through [`ClusterRead`].
#[derive(Debug, Clone, Default)]
pub struct FileSource {
    files: Vec<PathBuf>,
    objects: BTreeMap<Key, DynamicObject>,
}

impl FileSource {
    /// Reads every file; a later file's object replaces an earlier one with the same identity.
    pub fn load<P: AsRef<Path>>(
        paths: impl IntoIterator<Item = P>,
    ) -> Result<FileSource, KubeError> {
        let mut src = FileSource::default();
        for path in paths {
            let path = path.as_ref().to_path_buf();
            let text = std::fs::read_to_string(&path).map_err(|e| KubeError::File {
                path: path.clone(),
                detail: format!("cannot read: {}", one_line(&e.to_string())),
            })?;
            src.add_text(&path, &text)?;
            src.files.push(path);
        }
        Ok(src)
    }

    /// Adds objects from text already read, named `path` in messages.
    pub fn add_text(&mut self, path: &Path, text: &str) -> Result<(), KubeError> {
        let bad = |detail: String| KubeError::File {
            path: path.to_path_buf(),
            detail,
        };
        if text.trim().is_empty() {
            // kubectl writes an empty List, never nothing: this is not its output.
            return Err(bad(
                "empty: no objects (kubectl get ... -o json writes a List even when nothing matches)"
                    .to_string(),
            ));
        }
        let docs = parse_documents(text).map_err(bad)?;
        for (i, doc) in docs.into_iter().enumerate() {
            let at = |detail: String| bad(format!("document {}: {detail}", i + 1));
            for (j, obj) in expand(doc).map_err(at)?.into_iter().enumerate() {
                let obj = to_object(obj).map_err(|d| at(format!("item {}: {d}", j + 1)))?;
                let key = key_of(&obj);
                self.objects.insert(key, obj);
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    fn served(&self) -> Vec<Resource> {
        let mut out: Vec<Resource> = Vec::new();
        for (group, version, kind, ns, _) in self.objects.keys() {
            match out.last_mut() {
                Some(r)
                    if r.api.group == *group
                        && r.api.version == *version
                        && r.api.kind == *kind =>
                {
                    r.namespaced |= !ns.is_empty();
                }
                _ => out.push(Resource::from_gvk(group, version, kind, !ns.is_empty())),
            }
        }
        out
    }
}

fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let mut docs = Vec::new();
        for (i, doc) in serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .enumerate()
        {
            docs.push(doc.map_err(|e| format!("document {}: malformed JSON: {e}", i + 1))?);
        }
        Ok(docs)
    } else {
        let docs: Vec<Value> = serde_saphyr::from_multiple(text)
            .map_err(|e| format!("malformed YAML: {}", headline(&e.to_string())))?;
        Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
    }
}

/// A List (or typed XList) becomes its items, typed from the list when they carry no
/// apiVersion/kind (as the raw API's typed lists do); anything else is one object.
fn expand(doc: Value) -> Result<Vec<Value>, String> {
    let Value::Object(mut map) = doc else {
        return Err("not an object".to_string());
    };
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !(kind.ends_with("List") && map.contains_key("items")) {
        return Ok(vec![Value::Object(map)]);
    }
    let list_api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let item_kind = kind.strip_suffix("List").unwrap_or("").to_string();
    let Some(Value::Array(items)) = map.remove("items") else {
        return Err(format!("{kind}: items is not an array"));
    };
    Ok(items
        .into_iter()
        .map(|mut item| {
            // The generic `v1 List` carries typed items already; only typed lists need this.
            if let Some(m) = item.as_object_mut().filter(|_| !item_kind.is_empty()) {
                m.entry("kind")
                    .or_insert_with(|| Value::String(item_kind.clone()));
                m.entry("apiVersion")
                    .or_insert_with(|| Value::String(list_api_version.clone()));
            }
            item
        })
        .collect())
}

fn to_object(v: Value) -> Result<DynamicObject, String> {
    let field = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if field("/apiVersion").is_none() {
        return Err("no apiVersion".to_string());
    }
    let kind = field("/kind").ok_or("no kind")?.to_string();
    if field("/metadata/name").is_none() {
        return Err(format!("{kind} has no metadata.name"));
    }
    serde_json::from_value(v).map_err(|e| format!("{kind}: {}", one_line(&e.to_string())))
}

fn key_of(obj: &DynamicObject) -> Key {
    let (api_version, kind) = obj
        .types
        .as_ref()
        .map(|t| (t.api_version.as_str(), t.kind.as_str()))
        .unwrap_or(("", ""));
    let (group, version) = split_api_version(api_version);
    (
        group.to_string(),
        version.to_string(),
        kind.to_string(),
        obj.metadata.namespace.clone().unwrap_or_default(),
        obj.metadata.name.clone().unwrap_or_default(),
    )
}

impl ClusterRead for FileSource {
    fn source_name(&self) -> String {
        let names: Vec<String> = self.files.iter().map(|p| p.display().to_string()).collect();
        if names.is_empty() {
            "files (none)".to_string()
        } else {
            format!("files {}", names.join(", "))
        }
    }

    async fn resources(&self) -> Result<Vec<Resource>, KubeError> {
        Ok(self.served())
    }

    async fn resource(&self, r: &ResourceRef) -> Result<Resource, KubeError> {
        let mut candidates: Vec<Resource> = self
            .served()
            .into_iter()
            .filter(|s| r.matches(&s.api))
            .collect();
        // Without a version, prefer the most stable one present (v2 over v2beta1 over v1alpha1),
        // as a server's preferred version usually is.
        candidates.sort_by_key(|c| {
            std::cmp::Reverse(kube::core::Version::parse(&c.api.version).priority())
        });
        candidates
            .into_iter()
            .next()
            .ok_or_else(|| KubeError::NotServed {
                what: r.to_string(),
                source_name: self.source_name(),
            })
    }

    fn list<'a>(
        &'a self,
        res: &'a Resource,
        opts: &'a ListOptions,
    ) -> BoxStream<'a, Result<DynamicObject, KubeError>> {
        let bad = |detail: String| KubeError::InvalidObject {
            op: "list".to_string(),
            target: res.collection_target(opts.namespace.as_deref()),
            detail,
        };
        let labels = match opts
            .label_selector
            .as_deref()
            .map(LabelSelector::parse)
            .transpose()
        {
            Ok(l) => l,
            Err(e) => {
                return stream::once(async move { Err(bad(format!("label selector: {e}"))) })
                    .boxed();
            }
        };
        let fields = match opts
            .field_selector
            .as_deref()
            .map(FieldSelector::parse)
            .transpose()
        {
            Ok(f) => f,
            Err(e) => {
                return stream::once(async move { Err(bad(format!("field selector: {e}"))) })
                    .boxed();
            }
        };
        let namespace = opts.namespace.as_deref().filter(|_| res.namespaced);
        let iter = self
            .objects
            .iter()
            .filter(move |((g, v, k, ns, _), _)| {
                *g == res.api.group
                    && *v == res.api.version
                    && *k == res.api.kind
                    && namespace.is_none_or(|want| ns == want)
            })
            .map(|(_, o)| o)
            .filter(move |o| {
                labels
                    .as_ref()
                    .is_none_or(|l| l.matches(o.metadata.labels.as_ref()))
            })
            .filter(move |o| fields.as_ref().is_none_or(|f| f.matches(&o.metadata)))
            .map(|o| Ok(o.clone()));
        stream::iter(iter).boxed()
    }

    async fn get(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<DynamicObject>, KubeError> {
        let ns = if res.namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        let key = (
            res.api.group.clone(),
            res.api.version.clone(),
            res.api.kind.clone(),
            ns.to_string(),
            name.to_string(),
        );
        Ok(self.objects.get(&key).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<FileSource, KubeError> {
        let mut f = FileSource::default();
        f.add_text(Path::new("in.json"), text)?;
        Ok(f)
    }

    #[test]
    fn typed_lists_lend_their_kind_to_items() {
        let f = load(
            r#"{"apiVersion":"v1","kind":"ConfigMapList","items":[{"metadata":{"name":"a","namespace":"x"}}]}"#,
        )
        .unwrap();
        let served = f.served();
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].api.kind, "ConfigMap");
        assert_eq!(served[0].api.plural, "configmaps");
        assert!(served[0].namespaced);
    }

    #[test]
    fn bad_documents_name_the_document_and_item() {
        let e = load(r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}},{"apiVersion":"v1","kind":"Pod","metadata":{}}]}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "in.json: document 1: item 2: Pod has no metadata.name"
        );
        assert_eq!(e.exit_code(), 2);
        let e = load("{\"apiVersion\": \"v1\",").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("in.json: document 1: malformed JSON"),
            "{e}"
        );
        let e = load("a: [1, 2\nb: c").unwrap_err();
        assert!(e.to_string().starts_with("in.json: malformed YAML"), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn yaml_multi_document_is_read() {
        let f = load("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n").unwrap();
        assert_eq!(f.len(), 2);
        assert!(!f.served()[0].namespaced);
    }
}
