//! What can be updated: `ComponentUpdates` (one per component, written by
//! the detectors) and `UpdateReport` (all of them, merged).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use upkeep_version::{Constraint, UpdateType, Version};

use crate::common::{DocError, Finding, Location, SafeText, Timestamp};
use crate::kind::{self, ApiVersion};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    K3s,
    Flux,
    Longhorn,
    Chart,
}

impl ComponentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::K3s => "k3s",
            ComponentKind::Flux => "flux",
            ComponentKind::Longhorn => "longhorn",
            ComponentKind::Chart => "chart",
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where new versions of a component come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SourceType {
    /// A Helm repository served over HTTP(S) (index.yaml).
    HelmHttp,
    /// A Helm repository in an OCI registry (HelmRepository `type: oci`).
    HelmOci,
    /// A Flux OCIRepository (`chartRef`).
    OciRepository,
    /// A chart inside a Git repository; not checkable for new versions.
    Git,
    /// A chart in a Flux Bucket; not checkable for new versions.
    Bucket,
    /// GitHub releases of a repository.
    GithubReleases,
    /// The k3s channel server.
    K3sChannel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    #[serde(rename = "type")]
    pub source_type: SourceType,
    pub url: String,
    /// The chart's name in the repository, for Helm sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
}

/// What is being updated. `(kind, namespace, name)` identifies a component
/// across documents.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Component {
    pub kind: ComponentKind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

impl Component {
    /// The identity used to merge documents about the same component.
    pub fn key(&self) -> (ComponentKind, Option<&str>, &str) {
        (self.kind, self.namespace.as_deref(), &self.name)
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The version running now and the range it is allowed to move in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Current {
    pub version: Version,
    /// The constraint as written (a HelmRelease `version`, a Plan channel);
    /// absent when the component is pinned by something that is not a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<Constraint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Security {
    /// CVE and GHSA identifiers named by the release.
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<SafeText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Breaking {
    pub reasons: Vec<SafeText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requires {
    /// The Kubernetes versions the release supports (a chart's `kubeVersion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<Constraint>,
}

/// One version the component could move to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Candidate {
    pub version: Version,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Timestamp>,
    #[serde(default)]
    pub prerelease: bool,
    pub update: UpdateType,
    /// Whether the version is inside the current constraint.
    #[serde(default)]
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaking: Option<Breaking>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<Requires>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<SafeText>,
}

/// A bundled part whose version a hop changes (k3s ships Traefik, CoreDNS...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundledChange {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
}

/// One step of an upgrade path. Kubernetes and Longhorn move one minor per
/// hop; a hop lists what it brings and what blocks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hop {
    pub from: Version,
    pub to: Version,
    pub update: UpdateType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaking: Option<Breaking>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<Requires>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bundled: Vec<BundledChange>,
    /// Findings that must be resolved before this hop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blockers: Vec<Finding>,
}

/// What one detector found out about one component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentUpdates {
    pub api_version: ApiVersion,
    pub kind: kind::ComponentUpdates,
    pub component: Component,
    /// Where the current version was read.
    #[serde(default)]
    pub observed: Vec<Location>,
    /// Absent when the current version could not be determined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Current>,
    /// The newest release, whatever the constraint says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<Version>,
    /// The newest release the constraint allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_allowed: Option<Version>,
    /// Newer versions, newest first.
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    /// The safe way to the target, in order.
    #[serde(default)]
    pub path: Vec<Hop>,
    /// Components that must be updated and Ready first: the HelmRelease's
    /// `spec.dependsOn`, and the HelmReleases applied by the Kustomizations
    /// its Kustomization dependsOn (transitively), as `namespace/name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub errors: Vec<DocError>,
    pub checked_at: Timestamp,
}

impl ComponentUpdates {
    pub fn new(component: Component, checked_at: Timestamp) -> Self {
        ComponentUpdates {
            api_version: ApiVersion,
            kind: kind::ComponentUpdates,
            component,
            observed: Vec::new(),
            current: None,
            latest: None,
            latest_allowed: None,
            candidates: Vec::new(),
            path: Vec::new(),
            depends_on: Vec::new(),
            findings: Vec::new(),
            errors: Vec::new(),
            checked_at,
        }
    }

    /// The largest update type among the candidates, if any.
    pub fn biggest_update(&self) -> Option<UpdateType> {
        self.candidates.iter().map(|c| c.update).max()
    }

    pub fn has_security(&self) -> bool {
        self.candidates.iter().any(|c| {
            c.security
                .as_ref()
                .is_some_and(|s| !s.ids.is_empty() || s.summary.is_some())
        })
    }

    pub fn has_breaking(&self) -> bool {
        self.candidates.iter().any(|c| c.breaking.is_some())
            || self.path.iter().any(|h| h.breaking.is_some())
    }

    pub fn has_blocking(&self) -> bool {
        use crate::common::Severity;
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Blocking)
            || self.path.iter().any(|h| !h.blockers.is_empty())
    }
}

/// Counts over a report, for the ten-second read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportSummary {
    pub components: usize,
    pub with_updates: usize,
    pub patch: usize,
    pub minor: usize,
    pub major: usize,
    pub security: usize,
    pub breaking: usize,
    pub blocked: usize,
    pub errors: usize,
}

/// Every component's updates, merged, ordered security first, then
/// breaking, then by component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateReport {
    pub api_version: ApiVersion,
    pub kind: kind::UpdateReport,
    pub generated_at: Timestamp,
    pub summary: ReportSummary,
    pub components: Vec<ComponentUpdates>,
}
