//! Loading a fixture directory: every `*.yaml`/`*.yml`/`*.json` file under it, each possibly
//! holding several `---`-separated documents. All documents are parsed and checked before any
//! is stored, so a bad fixture never leaves the server half-loaded.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::resources::crd_resources;
use crate::store::Store;

/// A fixture document that cannot be loaded, named by file and 0-based document index.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: document {index}: {message}")]
    Document {
        path: PathBuf,
        index: usize,
        message: String,
    },
}

struct Doc {
    path: PathBuf,
    index: usize,
    object: Value,
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), FixtureError> {
    let entries = std::fs::read_dir(dir).map_err(|source| FixtureError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::new();
    for e in entries {
        let e = e.map_err(|source| FixtureError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        paths.push(e.path());
    }
    paths.sort();
    for p in paths {
        if p.is_dir() {
            collect_files(&p, out)?;
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
    Ok(())
}

/// Splits a YAML stream at document markers; a `---` line always starts a new document.
fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    let mut seen_content = false;
    for line in text.lines() {
        let is_marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_marker {
            if seen_content || !docs.last().is_some_and(|d| d.trim().is_empty()) {
                docs.push(String::new());
            }
            seen_content = true;
            if let Some(rest) = line.strip_prefix("---")
                && !rest.trim().is_empty()
                && let Some(d) = docs.last_mut()
            {
                d.push_str(rest);
                d.push('\n');
            }
            continue;
        }
        if line == "..." {
            continue;
        }
        if let Some(d) = docs.last_mut() {
            d.push_str(line);
            d.push('\n');
        }
        seen_content = true;
    }
    docs
}

/// Parses YAML (or JSON, which is YAML) into a JSON value with budgets fit for large CRDs.
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = 10_000_000;
    budget.max_events = 40_000_000;
    budget.max_depth = 512;
    budget.max_total_scalar_bytes = 1 << 30;
    budget.max_reader_input_bytes = Some(1 << 30);
    let options = serde_saphyr::options! { budget: Some(budget) };
    serde_saphyr::from_str_with_options::<Value>(text, options).map_err(|e| {
        e.to_string()
            .lines()
            .next()
            .unwrap_or("invalid YAML")
            .to_string()
    })
}

/// Parses a multi-document YAML stream into its objects (`List` kinds flattened); the error
/// names the 0-based document index.
pub(crate) fn parse_stream(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (index, doc) in split_documents(text).into_iter().enumerate() {
        if doc
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        let value = parse_yaml(&doc).map_err(|m| format!("document {index}: invalid YAML: {m}"))?;
        match value {
            Value::Null => continue,
            Value::Object(_) => {}
            _ => {
                return Err(format!(
                    "document {index}: not a Kubernetes object (expected a mapping)"
                ));
            }
        }
        if value
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"))
            && let Some(items) = value.get("items").and_then(Value::as_array)
        {
            out.extend(items.iter().cloned());
            continue;
        }
        out.push(value);
    }
    Ok(out)
}

fn is_crd(v: &Value) -> bool {
    v.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
        && v.get("apiVersion").and_then(Value::as_str) == Some("apiextensions.k8s.io/v1")
}

fn read_docs(path: &Path, out: &mut Vec<Doc>) -> Result<(), FixtureError> {
    let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    for (index, doc) in split_documents(&text).into_iter().enumerate() {
        let err = |message: String| FixtureError::Document {
            path: path.to_path_buf(),
            index,
            message,
        };
        if doc
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        let value = parse_yaml(&doc).map_err(|m| err(format!("invalid YAML: {m}")))?;
        match value {
            Value::Null => continue,
            Value::Object(_) => {}
            _ => {
                return Err(err(
                    "not a Kubernetes object (expected a mapping)".to_string()
                ));
            }
        }
        if value
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"))
            && let Some(items) = value.get("items").and_then(Value::as_array)
        {
            for item in items {
                out.push(Doc {
                    path: path.to_path_buf(),
                    index,
                    object: item.clone(),
                });
            }
            continue;
        }
        out.push(Doc {
            path: path.to_path_buf(),
            index,
            object: value,
        });
    }
    Ok(())
}

pub(crate) fn gvk(v: &Value) -> Result<(String, String, String), String> {
    let av = v
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or("missing apiVersion")?;
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("missing kind")?;
    let (g, ver) = av.rsplit_once('/').unwrap_or(("", av));
    Ok((g.to_string(), ver.to_string(), kind.to_string()))
}

/// Loads every manifest under `dir` into a fresh store, or fails without serving anything.
pub fn load_dir(dir: &Path) -> Result<Store, FixtureError> {
    let mut files = Vec::new();
    if dir.is_file() {
        files.push(dir.to_path_buf());
    } else {
        collect_files(dir, &mut files)?;
    }
    let mut docs = Vec::new();
    for f in &files {
        read_docs(f, &mut docs)?;
    }
    // CRDs first, whatever the file order, so their kinds exist for what follows; then
    // Namespaces, so one declared in a later file (with its labels) is not pre-empted by the
    // bare namespace created for an object that names it.
    docs.sort_by_key(|d| {
        if is_crd(&d.object) {
            0
        } else if d.object.get("kind").and_then(Value::as_str) == Some("Namespace")
            && d.object.get("apiVersion").and_then(Value::as_str) == Some("v1")
        {
            1
        } else {
            2
        }
    });
    let store = Store::new();
    for d in &docs {
        let err = |message: String| FixtureError::Document {
            path: d.path.clone(),
            index: d.index,
            message,
        };
        let (g, v, k) = gvk(&d.object).map_err(|m| err(m.to_string()))?;
        if is_crd(&d.object) {
            crd_resources(&d.object)
                .map_err(|e| err(format!("invalid CustomResourceDefinition: {e}")))?;
        }
        let info = store.registry().lookup_kind(&g, &v, &k).ok_or_else(|| {
            err(format!(
                "unknown kind {k} in {} (no built-in kind and no CustomResourceDefinition in the fixture serves it)",
                if g.is_empty() { v.clone() } else { format!("{g}/{v}") }
            ))
        })?;
        store
            .load(&info, d.object.clone())
            .map_err(|e| err(e.message.clone()))?;
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_declared_in_later_files_keep_their_labels() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a-app.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: media}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("z-ns.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: media, labels: {team: home}}\n",
        )
        .unwrap();
        let store = load_dir(dir.path()).unwrap();
        let ns = store.registry().lookup("", "v1", "namespaces").unwrap();
        let media = store.get(&ns, None, "media").unwrap();
        assert_eq!(media["metadata"]["labels"]["team"], "home");
    }

    #[test]
    fn splits_documents_with_markers_and_comments() {
        let docs = split_documents("---\na: 1\n---\n# only a comment\n---\nb: 2\n...\n");
        let non_empty: Vec<_> = docs.iter().filter(|d| !d.trim().is_empty()).collect();
        assert_eq!(non_empty.len(), 3);
        assert_eq!(docs.iter().position(|d| d.contains("b: 2")), Some(2));
    }

    #[test]
    fn loads_crds_before_custom_resources_and_reports_bad_documents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a-widget.yaml"),
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: apps\nspec:\n  size: 3\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("z-crd.yaml"),
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: widgets, kind: Widget}\n  versions:\n  - {name: v1, served: true, storage: true}\n",
        )
        .unwrap();
        let store = load_dir(dir.path()).unwrap();
        let info = store
            .registry()
            .lookup("example.com", "v1", "widgets")
            .unwrap();
        let w = store.get(&info, Some("apps"), "w").unwrap();
        assert_eq!(w["spec"]["size"], 3);

        std::fs::write(
            dir.path().join("m-bad.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: Gizmo\nmetadata: {name: g}\n",
        )
        .unwrap();
        let e = load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("m-bad.yaml: document 1: unknown kind Gizmo"),
            "{e}"
        );

        std::fs::write(dir.path().join("m-bad.yaml"), "a: [unclosed\n").unwrap();
        let e = load_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("m-bad.yaml: document 0: invalid YAML"), "{e}");
    }
}
