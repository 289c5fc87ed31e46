//! What the cluster says about its HelmReleases: the objects read through
//! [`upkeep_kube::ClusterRead`] (a live cluster or a `kubectl get -o json`
//! file, one code path), turned into the same [`upkeep_gitops::Object`]s a
//! checkout gives, so a release's source is resolved by the same rules
//! whichever side it came from.
//!
//! Cluster objects carry an empty `path` and line 0: they have no file.
//! The resolver turns their locations into `Location::Cluster`.

use futures_util::TryStreamExt;
use serde_json::Value;
use upkeep_contract::{Location, ObjectRef};
use upkeep_gitops::{
    BucketSpec, Dependency, Field, GitRef, GitRepositorySpec, HelmChartSpec, HelmReleaseChart,
    HelmReleaseSpec, HelmRepositorySpec, Namespace, NamespaceSource, Object, OciRef,
    OciRepositorySpec, SourceRef, Spec,
};
use upkeep_kube::{Cluster, ClusterRead, KubeError, ListOptions};
use upkeep_version::Version;

use crate::resolve::Objects;

/// The kinds read, by API group: HelmReleases and every source kind a
/// release can point at, and Nodes for the Kubernetes version.
pub const KINDS: &[(&str, &str)] = &[
    ("", "Node"),
    ("helm.toolkit.fluxcd.io", "HelmRelease"),
    ("source.toolkit.fluxcd.io", "HelmRepository"),
    ("source.toolkit.fluxcd.io", "OCIRepository"),
    ("source.toolkit.fluxcd.io", "HelmChart"),
    ("source.toolkit.fluxcd.io", "GitRepository"),
    ("source.toolkit.fluxcd.io", "Bucket"),
];

/// Reading the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Listing `what` from `source` failed (unreachable, forbidden, a bad
    /// dump file...); the KubeError names the operation and object.
    #[error("{source}")]
    Read {
        what: String,
        #[source]
        source: KubeError,
    },
    /// An object came back that is not a JSON object.
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
}

impl ClusterError {
    /// Whether the environment failed (exit 3) rather than the input (exit 2).
    pub fn is_environment(&self) -> bool {
        match self {
            ClusterError::Read { source, .. } => source.exit_code() == 3,
            ClusterError::Invalid { .. } => false,
        }
    }
}

/// The HelmReleases and chart sources of one cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    /// `cluster https://...` or `files dump.json`, for messages.
    pub source: String,
    /// The lowest kubelet version of the nodes (what every node can be
    /// relied on to serve), else the API server's `/version`.
    pub kubernetes: Option<Version>,
    releases: Vec<ClusterRelease>,
    sources: Vec<Object>,
}

/// One HelmRelease as the cluster holds it.
#[derive(Debug, Clone)]
pub(crate) struct ClusterRelease {
    pub object: Object,
    /// The whole object, for its status.
    pub raw: Value,
}

impl ClusterState {
    /// Builds the state from objects as `kubectl get -o json` prints them
    /// (each with `apiVersion` and `kind`); other kinds are ignored.
    pub fn from_values(source: &str, items: Vec<Value>) -> ClusterState {
        let mut state = ClusterState {
            source: source.to_string(),
            ..ClusterState::default()
        };
        for item in items {
            let Some(object) = to_object(&item) else {
                continue;
            };
            match (object.group(), object.kind.value.as_str()) {
                ("helm.toolkit.fluxcd.io", "HelmRelease") => {
                    state.releases.push(ClusterRelease { object, raw: item })
                }
                ("source.toolkit.fluxcd.io", _) => state.sources.push(object),
                ("", "Node") => {
                    let v = str_at(&item, &["status", "nodeInfo", "kubeletVersion"])
                        .and_then(|v| Version::parse(v).ok());
                    if let Some(v) = v
                        && state.kubernetes.as_ref().is_none_or(|k| v < *k)
                    {
                        state.kubernetes = Some(v);
                    }
                }
                _ => {}
            }
        }
        // Server order differs from file order; documents should not.
        state.releases.sort_by(|a, b| {
            (a.object.namespace(), a.object.name()).cmp(&(b.object.namespace(), b.object.name()))
        });
        state
    }

    pub(crate) fn releases(&self) -> &[ClusterRelease] {
        &self.releases
    }

    /// How many HelmReleases the cluster has.
    pub fn release_count(&self) -> usize {
        self.releases.len()
    }
}

impl Objects for ClusterState {
    fn find(
        &self,
        _from: &Object,
        group: Option<&str>,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<&Object> {
        self.sources.iter().find(|o| {
            o.kind.value == kind
                && o.name() == Some(name)
                && o.namespace() == namespace
                && group.is_none_or(|g| o.group() == g)
        })
    }
}

/// Lists every kind of [`KINDS`] that `src` serves (at each version it
/// serves: a dump may hold one kind at two versions; a server lists each
/// kind once, at its preferred version).
pub async fn read<R: ClusterRead>(src: &R) -> Result<ClusterState, ClusterError> {
    let name = src.source_name();
    let served = src.resources().await.map_err(|e| ClusterError::Read {
        what: "resources".to_string(),
        source: e,
    })?;
    let mut items = Vec::new();
    for (group, kind) in KINDS {
        for res in served
            .iter()
            .filter(|r| r.api.group == *group && r.api.kind == *kind && r.is_listable())
        {
            let opts = ListOptions::all_namespaces();
            let listed: Result<Vec<_>, KubeError> = src.list(res, &opts).try_collect().await;
            let objects = match listed {
                Ok(o) => o,
                // Gone between discovery and the list (a CRD just deleted): nothing to read.
                Err(e) if e.is_not_found() => continue,
                Err(e) => {
                    return Err(ClusterError::Read {
                        what: res.collection_target(None),
                        source: e,
                    });
                }
            };
            for obj in objects {
                let value =
                    upkeep_kube::object_value(&obj, res).map_err(|e| ClusterError::Invalid {
                        what: res.collection_target(None),
                        message: e.to_string(),
                    })?;
                items.push(value);
            }
        }
    }
    Ok(ClusterState::from_values(&name, items))
}

/// [`read`] on a live cluster, asking `/version` when no node says which
/// Kubernetes runs (a dump without nodes simply has none).
pub async fn read_live(cluster: &Cluster) -> Result<ClusterState, ClusterError> {
    let mut state = read(cluster).await?;
    if state.kubernetes.is_none() {
        let v = cluster
            .server_version()
            .await
            .map_err(|e| ClusterError::Read {
                what: "/version".to_string(),
                source: e,
            })?;
        state.kubernetes = Version::parse(&v.git_version).ok();
    }
    Ok(state)
}

pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
}

/// A string field, without a line: cluster objects have none.
fn field(v: &Value, path: &[&str]) -> Option<Field> {
    str_at(v, path).map(|s| Field {
        value: s.to_string(),
        line: 0,
    })
}

fn source_ref(v: &Value, path: &[&str]) -> Option<SourceRef> {
    let r = path.iter().try_fold(v, |v, k| v.get(k))?;
    Some(SourceRef {
        line: 0,
        api_version: field(r, &["apiVersion"]),
        kind: field(r, &["kind"]),
        name: field(r, &["name"]),
        namespace: field(r, &["namespace"]),
    })
}

/// The object as the resolver reads it; `None` without apiVersion/kind.
fn to_object(v: &Value) -> Option<Object> {
    let api_version = field(v, &["apiVersion"])?;
    let kind = field(v, &["kind"])?;
    let group = api_version.value.split_once('/').map_or("", |(g, _)| g);
    let spec = match (group, kind.value.as_str()) {
        ("helm.toolkit.fluxcd.io", "HelmRelease") => Spec::HelmRelease(HelmReleaseSpec {
            chart: v.pointer("/spec/chart/spec").map(|c| HelmReleaseChart {
                chart: field(c, &["chart"]),
                version: field(c, &["version"]),
                source_ref: source_ref(c, &["sourceRef"]),
            }),
            chart_ref: source_ref(v, &["spec", "chartRef"]),
            target_namespace: field(v, &["spec", "targetNamespace"]),
            release_name: field(v, &["spec", "releaseName"]),
            depends_on: v
                .pointer("/spec/dependsOn")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|d| {
                    Some(Dependency {
                        name: field(d, &["name"])?,
                        namespace: field(d, &["namespace"]),
                    })
                })
                .collect(),
        }),
        ("source.toolkit.fluxcd.io", "HelmRepository") => {
            Spec::HelmRepository(HelmRepositorySpec {
                url: field(v, &["spec", "url"]),
                repo_type: field(v, &["spec", "type"]),
            })
        }
        ("source.toolkit.fluxcd.io", "OCIRepository") => Spec::OciRepository(OciRepositorySpec {
            url: field(v, &["spec", "url"]),
            reference: v.pointer("/spec/ref").map(|r| OciRef {
                tag: field(r, &["tag"]),
                semver: field(r, &["semver"]),
                semver_filter: field(r, &["semverFilter"]),
                digest: field(r, &["digest"]),
            }),
        }),
        ("source.toolkit.fluxcd.io", "GitRepository") => Spec::GitRepository(GitRepositorySpec {
            url: field(v, &["spec", "url"]),
            reference: v.pointer("/spec/ref").map(|r| GitRef {
                branch: field(r, &["branch"]),
                tag: field(r, &["tag"]),
                semver: field(r, &["semver"]),
                commit: field(r, &["commit"]),
            }),
        }),
        ("source.toolkit.fluxcd.io", "Bucket") => Spec::Bucket(BucketSpec {
            endpoint: field(v, &["spec", "endpoint"]),
            bucket_name: field(v, &["spec", "bucketName"]),
        }),
        ("source.toolkit.fluxcd.io", "HelmChart") => Spec::HelmChart(HelmChartSpec {
            chart: field(v, &["spec", "chart"]),
            version: field(v, &["spec", "version"]),
            source_ref: source_ref(v, &["spec", "sourceRef"]),
        }),
        _ => Spec::Other,
    };
    let declared_namespace = field(v, &["metadata", "namespace"]);
    Some(Object {
        api_version,
        kind,
        name: field(v, &["metadata", "name"]),
        namespace: declared_namespace.as_ref().map(|n| Namespace {
            name: n.value.clone(),
            source: NamespaceSource::Object,
        }),
        declared_namespace,
        path: String::new(),
        line: 0,
        clusters: Vec::new(),
        spec,
    })
}

/// `Location::Cluster` of a cluster object, naming the field read.
pub(crate) fn location(o: &Object, field: Option<&str>) -> Location {
    Location::Cluster {
        object: ObjectRef {
            api_version: o.api_version.value.clone(),
            kind: o.kind.value.clone(),
            namespace: o.namespace().map(str::to_string),
            name: o.name().unwrap_or_default().to_string(),
        },
        field: field.map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_become_resolver_objects_and_nodes_give_the_lowest_version() {
        let state = ClusterState::from_values(
            "test",
            vec![
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "a"},
                       "status": {"nodeInfo": {"kubeletVersion": "v1.31.4+k3s1"}}}),
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "b"},
                       "status": {"nodeInfo": {"kubeletVersion": "v1.30.6+k3s1"}}}),
                json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                       "metadata": {"name": "z", "namespace": "b"},
                       "spec": {"chart": {"spec": {"chart": "c", "version": "1.x",
                                "sourceRef": {"kind": "HelmRepository", "name": "r"}}}}}),
                json!({"apiVersion": "helm.toolkit.fluxcd.io/v2beta1", "kind": "HelmRelease",
                       "metadata": {"name": "y", "namespace": "a"}}),
                json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
                       "metadata": {"name": "r", "namespace": "b"},
                       "spec": {"url": "https://charts.example", "type": "oci"}}),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
                json!({"kind": "NoApiVersion"}),
            ],
        );
        assert_eq!(
            state.kubernetes.as_ref().map(Version::to_string).as_deref(),
            Some("v1.30.6+k3s1")
        );
        // Sorted by namespace/name, whatever the input order.
        let names: Vec<_> = state
            .releases()
            .iter()
            .map(|r| r.object.name().unwrap())
            .collect();
        assert_eq!(names, ["y", "z"]);
        let Spec::HelmRelease(spec) = &state.releases()[1].object.spec else {
            panic!("not a HelmRelease spec");
        };
        let chart = spec.chart.as_ref().unwrap();
        assert_eq!(chart.version.as_ref().unwrap().value, "1.x");
        assert_eq!(
            chart
                .source_ref
                .as_ref()
                .unwrap()
                .name
                .as_ref()
                .unwrap()
                .value,
            "r"
        );
        let from = &state.releases()[1].object;
        let repo = state
            .find(
                from,
                Some("source.toolkit.fluxcd.io"),
                "HelmRepository",
                Some("b"),
                "r",
            )
            .unwrap();
        let Spec::HelmRepository(r) = &repo.spec else {
            panic!("not a HelmRepository spec");
        };
        assert_eq!(r.repo_type.as_ref().unwrap().value, "oci");
        assert!(
            state
                .find(from, None, "HelmRepository", Some("a"), "r")
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_dump_is_read_through_cluster_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.json");
        std::fs::write(
            &path,
            r#"{"apiVersion":"v1","kind":"List","items":[
              {"apiVersion":"helm.toolkit.fluxcd.io/v2beta1","kind":"HelmRelease","metadata":{"name":"old","namespace":"x"}},
              {"apiVersion":"helm.toolkit.fluxcd.io/v2","kind":"HelmRelease","metadata":{"name":"new","namespace":"x"}},
              {"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","namespace":"x"}}]}"#,
        )
        .unwrap();
        let src = upkeep_kube::FileSource::load([&path]).unwrap();
        let state = read(&src).await.unwrap();
        assert_eq!(state.release_count(), 2);
        assert!(state.kubernetes.is_none());
    }
}
