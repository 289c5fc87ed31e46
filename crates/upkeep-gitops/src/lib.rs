//! Reads a Flux GitOps checkout: every Kubernetes object in every YAML file,
//! with the file and line it was read from, its namespace as Flux would
//! apply it, and the cluster it belongs to.
//!
//! [`scan`] walks the tree (skipping `.git` and other hidden directories),
//! reads each `*.yaml`/`*.yml` file document by document, and returns a
//! [`Tree`]. Values are kept as the strings written (a chart version `1.10`
//! stays `1.10`; `${VAR}` substitutions stay as written, see
//! [`Field::has_substitution`]), each with its 1-based line so that later
//! tools can edit exactly that line. A file that is not YAML (a Helm
//! template, an odd tag) is reported in [`Tree::problems`] and skipped; it
//! never stops the scan.
//!
//! Namespaces ([`Object::namespace`]) follow what Flux and kustomize do when
//! they apply the file, strongest first:
//! 1. the `targetNamespace` of the Flux `Kustomization` whose `spec.path`
//!    covers the file (the deepest such path), because Flux overrides every
//!    namespaced object with it;
//! 2. the `namespace:` of a kustomize `kustomization.yaml` that includes the
//!    file: from the file's directory upwards, each `kustomization.yaml`
//!    met must list the file or the directory leading to it (a directory
//!    without one is included whole, as Flux generates it); the outermost
//!    such `namespace:` wins, because kustomize applies it last;
//! 3. the object's own `metadata.namespace`.
//!
//! Cluster-scoped kinds (Namespace, CRDs, ClusterRoles...) get no namespace.
//!
//! A repository may hold several clusters: each directory holding a
//! `flux-system/gotk-sync.yaml` or `flux-system/gotk-components.yaml` is a
//! cluster root. With two or more, an object belongs to the cluster whose
//! root contains it, and to every cluster whose Flux Kustomizations' paths
//! (followed transitively) cover it; [`Tree::resolve`] finds references
//! within the referrer's cluster. With one root or none, everything is one
//! cluster.

mod docs;
mod document;
mod layout;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use docs::split_documents;
pub use document::{Document, document};
pub use layout::FluxVersionHeader;

/// A scalar read from a manifest, as written, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field {
    pub value: String,
    pub line: u32,
}

impl Field {
    /// Whether the value holds a Flux post-build substitution (`${VAR}`),
    /// which only the cluster can resolve.
    pub fn has_substitution(&self) -> bool {
        self.value.contains("${")
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// A `sourceRef` or `chartRef`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    /// Line of the reference's first key.
    pub line: u32,
    pub api_version: Option<Field>,
    pub kind: Option<Field>,
    pub name: Option<Field>,
    pub namespace: Option<Field>,
}

/// `spec.chart.spec` of a HelmRelease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmReleaseChart {
    pub chart: Option<Field>,
    pub version: Option<Field>,
    pub source_ref: Option<SourceRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmReleaseSpec {
    pub chart: Option<HelmReleaseChart>,
    pub chart_ref: Option<SourceRef>,
    pub target_namespace: Option<Field>,
    pub release_name: Option<Field>,
    /// `spec.dependsOn`: the HelmReleases Flux installs first.
    pub depends_on: Vec<Dependency>,
}

/// One entry of a HelmRelease's `spec.dependsOn`; no namespace means the
/// HelmRelease's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub name: Field,
    pub namespace: Option<Field>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmRepositorySpec {
    pub url: Option<Field>,
    /// `oci` or `default`.
    pub repo_type: Option<Field>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRef {
    pub tag: Option<Field>,
    pub semver: Option<Field>,
    pub semver_filter: Option<Field>,
    pub digest: Option<Field>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRepositorySpec {
    pub url: Option<Field>,
    pub reference: Option<OciRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef {
    pub branch: Option<Field>,
    pub tag: Option<Field>,
    pub semver: Option<Field>,
    pub commit: Option<Field>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRepositorySpec {
    pub url: Option<Field>,
    pub reference: Option<GitRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    pub endpoint: Option<Field>,
    pub bucket_name: Option<Field>,
}

/// A Flux `HelmChart` (source.toolkit.fluxcd.io).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmChartSpec {
    pub chart: Option<Field>,
    pub version: Option<Field>,
    pub source_ref: Option<SourceRef>,
}

/// A Flux `Kustomization` (kustomize.toolkit.fluxcd.io).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluxKustomizationSpec {
    pub path: Option<Field>,
    pub target_namespace: Option<Field>,
    pub source_ref: Option<SourceRef>,
    /// `spec.dependsOn`: the Kustomizations Flux applies (and sees Ready) first.
    pub depends_on: Vec<Dependency>,
}

/// The parts of `spec` we read, for the Flux kinds we know.
// A checkout has tens to hundreds of objects: boxing the largest variant
// would save little and cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    HelmRelease(HelmReleaseSpec),
    HelmRepository(HelmRepositorySpec),
    OciRepository(OciRepositorySpec),
    GitRepository(GitRepositorySpec),
    Bucket(BucketSpec),
    HelmChart(HelmChartSpec),
    Kustomization(FluxKustomizationSpec),
    /// Any other kind, or a Flux kind without `spec`.
    Other,
}

/// Where an object's namespace came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceSource {
    /// Its own `metadata.namespace`.
    Object,
    /// `namespace:` of the kustomize file at this path (relative to the root).
    Kustomize { path: String },
    /// `targetNamespace` of this Flux Kustomization.
    FluxKustomization { name: String, path: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub source: NamespaceSource,
}

/// One Kubernetes object read from the checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub api_version: Field,
    pub kind: Field,
    pub name: Option<Field>,
    /// `metadata.namespace` as written.
    pub declared_namespace: Option<Field>,
    /// The namespace Flux would apply it in (see the crate docs).
    pub namespace: Option<Namespace>,
    /// Path relative to the scan root, with `/` separators.
    pub path: String,
    /// 1-based line where the document's content starts.
    pub line: u32,
    /// Ids of the clusters it belongs to; empty when the tree is one cluster
    /// or the object is reached by none.
    pub clusters: Vec<String>,
    pub spec: Spec,
}

impl Object {
    pub fn name(&self) -> Option<&str> {
        self.name.as_ref().map(|f| f.value.as_str())
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_ref().map(|n| n.name.as_str())
    }

    /// `group` of `group/version`, empty for the core group.
    pub fn group(&self) -> &str {
        self.api_version
            .value
            .split_once('/')
            .map_or("", |(g, _)| g)
    }

    /// `kind namespace/name at path:line`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} {}{} at {}:{}",
            self.kind.value,
            self.namespace()
                .map(|n| format!("{n}/"))
                .unwrap_or_default(),
            self.name().unwrap_or("<unnamed>"),
            self.path,
            self.line
        )
    }
}

/// A file (or one document of it) that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseProblem {
    /// Relative to the scan root.
    pub path: String,
    pub line: Option<u32>,
    pub reason: String,
}

impl fmt::Display for ParseProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.path, l, self.reason),
            None => write!(f, "{}: {}", self.path, self.reason),
        }
    }
}

/// One Flux root of a multi-cluster repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The root directory relative to the scan root (`.` for the root);
    /// also the id used in [`Object::clusters`].
    pub id: String,
    /// The directory's name (`production` for `clusters/production`).
    pub name: String,
}

/// Only the root itself failing is an error; everything below it is
/// reported in [`Tree::problems`].
#[derive(Debug, thiserror::Error)]
pub enum GitopsError {
    #[error("gitops checkout {path}: {source}")]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("gitops checkout {0}: not a directory")]
    NotADirectory(PathBuf),
}

/// Everything read from a checkout.
#[derive(Debug, Clone)]
pub struct Tree {
    root: PathBuf,
    objects: Vec<Object>,
    problems: Vec<ParseProblem>,
    clusters: Vec<Cluster>,
    flux_version: Option<FluxVersionHeader>,
    by_kind: BTreeMap<String, Vec<usize>>,
    /// The directory each Flux Kustomization applies, by object index.
    flux_dirs: Vec<(usize, String)>,
}

impl Tree {
    /// The directory that was scanned.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every object, in file order (files sorted by path).
    pub fn objects(&self) -> &[Object] {
        &self.objects
    }

    /// The Flux Kustomization that applies `obj`: the one whose `spec.path`
    /// is the deepest directory holding its file, as nested paths are laid
    /// out (`clusters/prod` applies the Kustomization of `apps/`, which
    /// applies what is under it).
    pub fn applied_by(&self, obj: &Object) -> Option<&Object> {
        self.flux_dirs
            .iter()
            .filter(|(_, dir)| layout::under(&obj.path, dir))
            .max_by_key(|(_, dir)| layout::depth(dir))
            .map(|(i, _)| &self.objects[*i])
    }

    /// What Flux applies before `obj`: every object applied by a Kustomization
    /// that `obj`'s Kustomization `dependsOn`, directly or through others.
    /// Flux holds a Kustomization back until those are Ready, so an update
    /// to one of them belongs before an update to `obj`.
    pub fn flux_dependencies(&self, obj: &Object) -> Vec<&Object> {
        let Some(own) = self.applied_by(obj) else {
            return Vec::new();
        };
        let kustomizations: Vec<&Object> = self
            .flux_dirs
            .iter()
            .map(|(i, _)| &self.objects[*i])
            .collect();
        let mut seen: Vec<&Object> = vec![own];
        let mut queue: Vec<&Object> = vec![own];
        while let Some(k) = queue.pop() {
            let Spec::Kustomization(spec) = &k.spec else {
                continue;
            };
            for d in &spec.depends_on {
                let ns = d
                    .namespace
                    .as_ref()
                    .map(|n| n.value.as_str())
                    .or(k.namespace());
                for &dep in kustomizations
                    .iter()
                    .filter(|o| o.name() == Some(d.name.value.as_str()) && o.namespace() == ns)
                {
                    if !seen.iter().any(|s| std::ptr::eq(*s, dep)) {
                        seen.push(dep);
                        queue.push(dep);
                    }
                }
            }
        }
        // The Kustomization's own objects are not before it (a cycle back
        // to it says nothing about order).
        let before: Vec<&Object> = seen
            .into_iter()
            .filter(|k| !std::ptr::eq(*k, own))
            .collect();
        self.objects
            .iter()
            .filter(|o| {
                self.applied_by(o)
                    .is_some_and(|k| before.iter().any(|b| std::ptr::eq(*b, k)))
            })
            .collect()
    }

    /// Objects of one kind (`HelmRelease`), any API group or version.
    pub fn of_kind<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Object> + 'a {
        self.by_kind
            .get(kind)
            .into_iter()
            .flatten()
            .map(|&i| &self.objects[i])
    }

    /// Files and documents that could not be read.
    pub fn problems(&self) -> &[ParseProblem] {
        &self.problems
    }

    /// The Flux roots found; empty when there is none (one implicit cluster).
    pub fn clusters(&self) -> &[Cluster] {
        &self.clusters
    }

    /// The `# Flux Version: v2.5.1` header of `flux-system/gotk-components.yaml`
    /// (the first one found, by path).
    pub fn gotk_components_version(&self) -> Option<&FluxVersionHeader> {
        self.flux_version.as_ref()
    }

    /// The object of `kind` named `namespace/name` that `from` can see:
    /// one in a cluster `from` belongs to, or in no particular cluster.
    /// `group`, when given, must match the object's API group.
    pub fn resolve(
        &self,
        from: &Object,
        group: Option<&str>,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<&Object> {
        self.of_kind(kind).find(|o| {
            o.name() == Some(name)
                && o.namespace() == namespace
                && group.is_none_or(|g| o.group() == g)
                && (o.clusters.is_empty()
                    || from.clusters.is_empty()
                    || o.clusters.iter().any(|c| from.clusters.contains(c)))
        })
    }
}

/// What the scanner makes of one manifest file's text: the number of
/// Kubernetes objects it holds, or the line and reason it is not YAML (a
/// problem with an object's spec keeps the object, as in [`scan`]). For
/// tools that check one file, and for fuzzing the scanner.
pub fn read_manifest(text: &str) -> Result<usize, (u32, String)> {
    let mut spec_problems = Vec::new();
    docs::read_file_with(text, &mut spec_problems)
        .map(|objects| objects.len())
        .map_err(|p| (p.line, p.reason))
}

/// Reads the checkout at `root`. Fails only when `root` cannot be read.
pub fn scan(root: &Path) -> Result<Tree, GitopsError> {
    layout::scan(root)
}
