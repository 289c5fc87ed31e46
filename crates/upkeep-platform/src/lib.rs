//! The platform detectors: what k3s, Flux and Longhorn can be updated to, by
//! which safe path, and what each step brings and what blocks it.
//!
//! Each detector ([`k3s::detect`], [`flux::detect`], [`longhorn::detect`])
//! reads the current version from [`Inputs`] (a `--current` flag, a GitOps
//! checkout, the objects of a live cluster or of a dump: [`cluster`]), the
//! releases from upstream
//! ([`upkeep_upstream::Upstream`]), and returns one `ComponentUpdates`
//! document. The path goes one minor at a time, latest patch of the current
//! minor first, and never downgrades; each hop is annotated from the release
//! notes ([`upkeep_notes`]). An upstream that cannot be reached does not fail
//! the detector: the document is still produced, with the failure in
//! `errors` ([`Detection::upstream_failed`]).

pub mod cli;
pub mod cluster;
pub mod flux;
mod gitops;
pub mod k3s;
mod kubernetes;
pub mod longhorn;
mod path;
mod releases;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use upkeep_contract::{ComponentUpdates, DocError, SafeText};
use upkeep_upstream::UpstreamError;
use upkeep_version::{MinorVersion, Version};

pub use cluster::{ClusterObjects, ClusterSource, DumpFile, KubeCluster};
pub use kubernetes::removed_between;

/// Why the detector's inputs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// Bad input: a file, flag, kubeconfig or object the detector cannot use (exit 2).
    #[error("{what}: {message}")]
    Input { what: String, message: String },
    /// The cluster could not be read: unreachable, too slow, or it refused
    /// us (exit 3). The message names the server and the request.
    #[error("{message}")]
    Cluster { message: String },
    /// No kubeconfig anywhere and not in a pod: nothing says where the
    /// cluster is (bad input: the user has to say, exit 2).
    #[error("{message}")]
    NoCluster { message: String },
}

impl PlatformError {
    /// True when the environment, not the input, is at fault (exit 3).
    pub fn is_environment(&self) -> bool {
        matches!(self, PlatformError::Cluster { .. })
    }
}

/// Where the detector should go: a channel, a minor line, or a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The newest release.
    Latest,
    /// The k3s `stable` channel.
    Stable,
    /// The newest release of a minor line (`v1.31`).
    Line(MinorVersion),
    /// Exactly this version.
    Version(Version),
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "latest" => Ok(Target::Latest),
            "stable" => Ok(Target::Stable),
            other => {
                let dots = other.trim_start_matches(['v', 'V']).matches('.').count();
                if dots == 1 {
                    MinorVersion::parse(other)
                        .map(Target::Line)
                        .map_err(|e| e.to_string())
                } else {
                    Version::parse(other)
                        .map(Target::Version)
                        .map_err(|e| format!("{e} (expected latest, stable, v1.NN or a version)"))
                }
            }
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Latest => f.write_str("latest"),
            Target::Stable => f.write_str("stable"),
            Target::Line(l) => write!(f, "{l}"),
            Target::Version(v) => write!(f, "{v}"),
        }
    }
}

/// How far to look and what to allow.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    pub include_prereleases: bool,
    /// The cluster's Kubernetes version when known from a flag; otherwise
    /// the detectors take it from the cluster's nodes, when given.
    pub kubernetes_version: Option<Version>,
    /// Releases never to offer (`--known-bad`, `releases.knownBad`).
    pub known_bad: Vec<Version>,
}

/// Where the current state is read from. Any combination may be given;
/// `current` wins for the version, the others still add what they know
/// (objects on removed APIs, unhealthy volumes, node roles).
#[derive(Debug, Default)]
pub struct Inputs {
    pub current: Option<Version>,
    pub gitops: Option<upkeep_gitops::Tree>,
    pub cluster: Option<ClusterObjects>,
}

impl Inputs {
    /// Reads the GitOps checkout and the cluster source, when given.
    pub async fn load(
        current: Option<Version>,
        gitops_dir: Option<&Path>,
        cluster: Option<&dyn ClusterSource>,
    ) -> Result<Inputs, PlatformError> {
        let gitops = match gitops_dir {
            Some(dir) => Some(upkeep_gitops::scan(dir).map_err(|e| PlatformError::Input {
                what: "--gitops".to_string(),
                message: e.to_string(),
            })?),
            None => None,
        };
        let cluster = match cluster {
            Some(src) => Some(src.load().await?),
            None => None,
        };
        Ok(Inputs {
            current,
            gitops,
            cluster,
        })
    }
}

/// A detector's answer.
#[derive(Debug, Clone)]
pub struct Detection {
    pub document: ComponentUpdates,
    /// Some upstream could not be read; the document says which in `errors`
    /// and is complete for everything else (exit code 3).
    pub upstream_failed: bool,
}

pub(crate) fn upstream_error(target: String, e: &UpstreamError) -> DocError {
    DocError {
        source: "upstream".to_string(),
        message: SafeText::new(&e.to_string()),
        target: Some(upkeep_http_redact(&target)),
    }
}

/// URLs in documents never carry credentials; the base URLs are validated
/// to have none, and anything with a query is cut at it.
fn upkeep_http_redact(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!("latest".parse::<Target>().unwrap(), Target::Latest);
        assert_eq!("stable".parse::<Target>().unwrap(), Target::Stable);
        assert_eq!(
            "v1.31".parse::<Target>().unwrap(),
            Target::Line(MinorVersion::parse("1.31").unwrap())
        );
        assert_eq!(
            "v1.31.4+k3s1".parse::<Target>().unwrap().to_string(),
            "v1.31.4+k3s1"
        );
        let e = "soon".parse::<Target>().unwrap_err();
        assert!(e.contains("expected latest, stable"), "{e}");
    }
}
