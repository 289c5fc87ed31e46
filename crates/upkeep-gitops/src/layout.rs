//! The checkout as a whole: walking it, kustomize files, namespaces and
//! clusters. The rules are in the crate docs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::docs::{self, KustomizeFile};
use crate::{Cluster, GitopsError, Namespace, NamespaceSource, Object, ParseProblem, Spec, Tree};

/// The `# Flux Version: v2.5.1` line `flux install --export` writes at the
/// top of `gotk-components.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluxVersionHeader {
    /// As written, e.g. `v2.5.1`.
    pub version: String,
    pub path: String,
    pub line: u32,
}

const KUSTOMIZE_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Kinds kustomize and Flux never put in a namespace.
const CLUSTER_SCOPED: [&str; 18] = [
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "APIService",
    "ClusterIssuer",
    "ClusterSecretStore",
    "CSIDriver",
    "IngressClass",
    "RuntimeClass",
    "VolumeSnapshotClass",
    "Node",
    "ClusterPolicy",
];

struct Walk {
    /// (relative path, absolute path) of every YAML file, sorted.
    yaml: Vec<(String, PathBuf)>,
    /// Directory (relative, "" for the root) → its kustomize file's path.
    kustomize: Vec<(String, String, PathBuf)>,
    problems: Vec<ParseProblem>,
}

fn walk(root: &Path) -> Result<Walk, GitopsError> {
    let meta = std::fs::metadata(root).map_err(|source| GitopsError::Root {
        path: root.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(GitopsError::NotADirectory(root.to_path_buf()));
    }
    let mut w = Walk {
        yaml: Vec::new(),
        kustomize: Vec::new(),
        problems: Vec::new(),
    };
    // The root must be listable; below it, an unreadable directory is a problem.
    let first = std::fs::read_dir(root).map_err(|source| GitopsError::Root {
        path: root.to_path_buf(),
        source,
    })?;
    let mut stack = vec![(String::new(), first)];
    while let Some((rel_dir, entries)) = stack.pop() {
        let mut names: Vec<(String, std::fs::DirEntry)> = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => names.push((e.file_name().to_string_lossy().into_owned(), e)),
                Err(e) => w.problems.push(ParseProblem {
                    path: display_dir(&rel_dir),
                    line: None,
                    reason: format!("cannot list directory: {e}"),
                }),
            }
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, entry) in names {
            if name.starts_with('.') {
                continue;
            }
            let rel = join(&rel_dir, &name);
            let Ok(ft) = entry.file_type() else { continue };
            let path = entry.path();
            // Symlinked directories are not followed: they can loop, and
            // Flux reads a Git tree, where they are not directories.
            if ft.is_dir() {
                match std::fs::read_dir(&path) {
                    Ok(rd) => stack.push((rel, rd)),
                    Err(e) => w.problems.push(ParseProblem {
                        path: rel,
                        line: None,
                        reason: format!("cannot list directory: {e}"),
                    }),
                }
                continue;
            }
            let is_file = ft.is_file() || (ft.is_symlink() && path.is_file());
            if !is_file {
                continue;
            }
            if KUSTOMIZE_FILES.contains(&name.as_str()) {
                w.kustomize
                    .push((rel_dir.clone(), rel.clone(), path.clone()));
            }
            if name.ends_with(".yaml") || name.ends_with(".yml") {
                w.yaml.push((rel, path));
            }
        }
    }
    w.yaml.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(w)
}

fn display_dir(rel: &str) -> String {
    if rel.is_empty() {
        ".".into()
    } else {
        rel.into()
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn parent(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(p, _)| p)
}

/// `entry` (relative to `dir`) as a path relative to the root; `None` for
/// remote resources and paths that leave the root.
fn resolve_relative(dir: &str, entry: &str) -> Option<String> {
    if entry.contains("://") || entry.starts_with("github.com/") || entry.contains('?') {
        return None;
    }
    let mut segs: Vec<&str> = if entry.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|s| !s.is_empty()).collect()
    };
    for seg in entry.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop()?;
            }
            s => segs.push(s),
        }
    }
    Some(segs.join("/"))
}

/// Whether `path` is `dir` or below it ("" is the root).
/// Path components of a directory relative to the root ("" is the root).
pub(crate) fn depth(dir: &str) -> usize {
    if dir.is_empty() {
        0
    } else {
        dir.split('/').count()
    }
}

pub(crate) fn under(path: &str, dir: &str) -> bool {
    dir.is_empty() || path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

fn flux_version_header(text: &str) -> Option<(String, u32)> {
    text.lines().take(50).enumerate().find_map(|(i, l)| {
        let v = l
            .trim()
            .strip_prefix('#')?
            .trim()
            .strip_prefix("Flux Version:")?;
        let v = v.trim();
        (!v.is_empty()).then(|| (v.to_string(), i as u32 + 1))
    })
}

pub(crate) fn scan(root: &Path) -> Result<Tree, GitopsError> {
    let w = walk(root)?;
    let mut problems = w.problems;
    let mut objects = Vec::new();
    let mut flux_version = None;
    for (rel, path) in &w.yaml {
        let text = match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(_) => {
                    problems.push(ParseProblem {
                        path: rel.clone(),
                        line: None,
                        reason: "not UTF-8 text".into(),
                    });
                    continue;
                }
            },
            Err(e) => {
                problems.push(ParseProblem {
                    path: rel.clone(),
                    line: None,
                    reason: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        if flux_version.is_none() && rel.ends_with("gotk-components.yaml") {
            flux_version = flux_version_header(&text).map(|(version, line)| FluxVersionHeader {
                version,
                path: rel.clone(),
                line,
            });
        }
        let mut spec_problems = Vec::new();
        let read = docs::read_file_with(&text, &mut spec_problems);
        problems.extend(spec_problems.into_iter().map(|p| ParseProblem {
            path: rel.clone(),
            line: Some(p.line),
            reason: p.reason,
        }));
        match read {
            Ok(raw) => objects.extend(raw.into_iter().map(|r| Object {
                api_version: r.api_version,
                kind: r.kind,
                name: r.name,
                declared_namespace: r.namespace,
                namespace: None,
                path: rel.clone(),
                line: r.line,
                clusters: Vec::new(),
                spec: r.spec,
            })),
            Err(p) => problems.push(ParseProblem {
                path: rel.clone(),
                line: Some(p.line),
                reason: p.reason,
            }),
        }
    }

    let mut kustomize: BTreeMap<String, (String, KustomizeFile)> = BTreeMap::new();
    for (dir, rel, path) in &w.kustomize {
        // Two kustomize files in one directory is an error for kustomize; keep the first.
        if kustomize.contains_key(dir) {
            continue;
        }
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| docs::read_kustomize_file(&t));
        match parsed {
            Ok(k) => {
                kustomize.insert(dir.clone(), (rel.clone(), k));
            }
            Err(reason) => {
                // The YAML walk already reports files that are not YAML.
                if !problems.iter().any(|p| &p.path == rel) {
                    problems.push(ParseProblem {
                        path: rel.clone(),
                        line: None,
                        reason: format!("kustomization: {reason}"),
                    });
                }
            }
        }
    }

    let canonical_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    // Directories the Flux Kustomizations apply, by object index.
    let flux_paths: Vec<(usize, String)> = objects
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match &o.spec {
            Spec::Kustomization(k) => {
                let p = k.path.as_ref().filter(|p| !p.has_substitution())?;
                Some((i, flux_path_dir(&canonical_root, &p.value)?))
            }
            _ => None,
        })
        .collect();

    for o in &mut objects {
        o.namespace = infer_namespace(o, &kustomize);
    }
    // Second pass for targetNamespace, which needs the Kustomizations' names.
    let targets: Vec<(String, String, String, String)> = flux_paths
        .iter()
        .filter_map(|(i, dir)| {
            let o = &objects[*i];
            let Spec::Kustomization(k) = &o.spec else {
                return None;
            };
            let ns = k
                .target_namespace
                .as_ref()
                .filter(|t| !t.value.is_empty())?;
            Some((
                dir.clone(),
                ns.value.clone(),
                o.name().unwrap_or_default().to_string(),
                o.path.clone(),
            ))
        })
        .collect();
    for o in &mut objects {
        if CLUSTER_SCOPED.contains(&o.kind.value.as_str()) {
            continue;
        }
        if let Some((_, ns, name, path)) = targets
            .iter()
            .filter(|(dir, ..)| under(&o.path, dir))
            .max_by_key(|(dir, ..)| depth(dir))
        {
            o.namespace = Some(Namespace {
                name: ns.clone(),
                source: NamespaceSource::FluxKustomization {
                    name: name.clone(),
                    path: path.clone(),
                },
            });
        }
    }

    let clusters = assign_clusters(&w.yaml, &mut objects, &flux_paths, &kustomize);

    let mut by_kind: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, o) in objects.iter().enumerate() {
        by_kind.entry(o.kind.value.clone()).or_default().push(i);
    }
    Ok(Tree {
        root: root.to_path_buf(),
        objects,
        problems,
        clusters,
        flux_version,
        by_kind,
        flux_dirs: flux_paths,
    })
}

/// A Flux Kustomization's `spec.path` is relative to the root of its
/// source, which may be above the scanned directory (`./kubernetes/apps`
/// while `kubernetes/` is scanned): try the root and then its parents.
fn flux_path_dir(root: &Path, path: &str) -> Option<String> {
    let norm = resolve_relative("", path)?;
    let mut base = Some(root);
    while let Some(b) = base {
        let candidate = if norm.is_empty() {
            b.to_path_buf()
        } else {
            b.join(&norm)
        };
        if candidate.is_dir() {
            if let Ok(rel) = candidate.strip_prefix(root) {
                return Some(rel.to_string_lossy().replace('\\', "/"));
            }
            if root.starts_with(&candidate) {
                return Some(String::new());
            }
            return None;
        }
        base = b.parent();
    }
    None
}

fn infer_namespace(
    o: &Object,
    kustomize: &BTreeMap<String, (String, KustomizeFile)>,
) -> Option<Namespace> {
    if CLUSTER_SCOPED.contains(&o.kind.value.as_str()) {
        return None;
    }
    let own = o
        .declared_namespace
        .as_ref()
        .filter(|n| !n.value.is_empty())
        .map(|n| Namespace {
            name: n.value.clone(),
            source: NamespaceSource::Object,
        });
    let mut found = None;
    let mut dir = parent(&o.path);
    loop {
        if let Some((kpath, k)) = kustomize.get(dir) {
            let included = k
                .resources
                .iter()
                .filter_map(|r| resolve_relative(dir, r))
                .any(|p| under(&o.path, &p));
            if !included {
                break;
            }
            if let Some(ns) = &k.namespace {
                found = Some(Namespace {
                    name: ns.clone(),
                    source: NamespaceSource::Kustomize {
                        path: kpath.clone(),
                    },
                });
            }
        }
        if dir.is_empty() {
            break;
        }
        dir = parent(dir);
    }
    found.or(own)
}

/// Cluster roots are the parents of `flux-system` directories holding the
/// Flux install or sync manifests.
fn assign_clusters(
    files: &[(String, PathBuf)],
    objects: &mut [Object],
    flux_paths: &[(usize, String)],
    kustomize: &BTreeMap<String, (String, KustomizeFile)>,
) -> Vec<Cluster> {
    let roots: BTreeSet<String> = files
        .iter()
        .filter_map(|(rel, _)| {
            let dir = parent(rel);
            let name = rel.rsplit('/').next()?;
            let is_flux = matches!(name, "gotk-sync.yaml" | "gotk-components.yaml")
                && (dir == "flux-system" || dir.ends_with("/flux-system"));
            is_flux.then(|| parent(dir).to_string())
        })
        .collect();
    let clusters: Vec<Cluster> = roots
        .iter()
        .map(|r| Cluster {
            id: display_dir(r),
            name: if r.is_empty() {
                ".".into()
            } else {
                r.rsplit('/').next().unwrap_or(r).to_string()
            },
        })
        .collect();
    if roots.len() < 2 {
        return clusters;
    }
    for (root, cluster) in roots.iter().zip(&clusters) {
        let mut dirs: BTreeSet<String> = BTreeSet::from([root.clone()]);
        // Follow Flux paths and kustomize resources until nothing new is reached.
        loop {
            let before = dirs.len();
            for (i, d) in flux_paths {
                if dirs.iter().any(|c| under(&objects[*i].path, c)) {
                    dirs.insert(d.clone());
                }
            }
            for (kdir, (_, k)) in kustomize {
                if dirs.iter().any(|c| under(kdir, c)) {
                    dirs.extend(k.resources.iter().filter_map(|r| resolve_relative(kdir, r)));
                }
            }
            if dirs.len() == before {
                break;
            }
        }
        for o in objects.iter_mut() {
            if dirs.iter().any(|d| under(&o.path, d)) {
                o.clusters.push(cluster.id.clone());
            }
        }
    }
    clusters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(resolve_relative("a/b", "../c").as_deref(), Some("a/c"));
        assert_eq!(
            resolve_relative("a/b", "./x.yaml").as_deref(),
            Some("a/b/x.yaml")
        );
        assert_eq!(resolve_relative("a", "../../x"), None);
        assert_eq!(resolve_relative("", "https://example.com/x"), None);
        assert!(under("a/b/c.yaml", "a/b"));
        assert!(!under("a/bc/c.yaml", "a/b"));
        assert!(under("x", ""));
    }

    #[test]
    fn flux_header() {
        let t = "---\n# Flux Version: v2.5.1\n# Components: source-controller\n";
        assert_eq!(flux_version_header(t), Some(("v2.5.1".into(), 2)));
        assert_eq!(flux_version_header("apiVersion: v1\n"), None);
    }
}
