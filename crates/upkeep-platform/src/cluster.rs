//! Cluster objects the detectors read, and where they come from.
//!
//! Two sources, one code path: a live cluster ([`KubeCluster`], reached as
//! kubectl does through upkeep-kube) and a `kubectl get ... -o json|yaml`
//! file ([`DumpFile`]) are both read through [`upkeep_kube::ClusterRead`],
//! and [`read_objects`] lists the same kinds from either, so a dump and the
//! cluster it was taken from give the detectors the same objects.

use std::path::PathBuf;

use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use serde_json::Value;
use upkeep_contract::{Location, ObjectRef};
use upkeep_kube::{
    Cluster, ClusterRead, ConnectOptions, FileSource, KubeError, ListOptions, LoadedConfig,
};

use crate::PlatformError;

/// Largest dump file read: a big homelab's objects are a few MiB.
const DUMP_LIMIT_BYTES: u64 = 256 * 1024 * 1024;

/// What the detectors read, by API group and kind: nodes (k3s versions,
/// roles, the Kubernetes version), namespaces and CRDs (Flux version and
/// stored versions), HelmReleases (Longhorn's chart), Longhorn's volumes,
/// settings and nodes (health, version), k3s's packaged components, and
/// the workloads whose container images tell what version actually runs.
pub const KINDS: &[(&str, &str)] = &[
    ("", "Node"),
    ("", "Namespace"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("helm.toolkit.fluxcd.io", "HelmRelease"),
    ("longhorn.io", "Volume"),
    ("longhorn.io", "Setting"),
    ("longhorn.io", "Node"),
    ("helm.cattle.io", "HelmChart"),
    ("k3s.cattle.io", "Addon"),
    // Flux's controllers and longhorn-manager: their images say what runs.
    ("apps", "Deployment"),
    ("apps", "DaemonSet"),
];

/// CRDs are listed a few at a time: with their schemas a page of 500 can
/// be hundreds of MiB.
const CRD_PAGE_SIZE: u32 = 20;

/// Something that can list the cluster's objects.
pub trait ClusterSource {
    /// Reads every object the detectors need ([`KINDS`]); a kind that is
    /// not served is simply absent.
    fn load(&self) -> BoxFuture<'_, Result<ClusterObjects, PlatformError>>;
}

/// A `kubectl get ... -o json` (or `-o yaml`) output file.
#[derive(Debug, Clone)]
pub struct DumpFile {
    path: PathBuf,
}

impl DumpFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DumpFile { path: path.into() }
    }

    fn source(&self) -> Result<FileSource, PlatformError> {
        let bad = |message: String| PlatformError::Input {
            what: self.path.display().to_string(),
            message,
        };
        // Read through a limit, not by the file's size: a pipe (`/dev/stdin`,
        // `<(kubectl get ...)`) has none.
        let mut bytes = Vec::new();
        std::fs::File::open(&self.path)
            .and_then(|f| {
                use std::io::Read;
                f.take(DUMP_LIMIT_BYTES + 1).read_to_end(&mut bytes)
            })
            .map_err(|e| bad(e.to_string()))?;
        if bytes.len() as u64 > DUMP_LIMIT_BYTES {
            return Err(bad(format!(
                "larger than {} MiB",
                DUMP_LIMIT_BYTES / (1024 * 1024)
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| bad(format!("not UTF-8: {e}")))?;
        // JSON (what kubectl -o json gives) is checked here first, for
        // messages that say where it is broken; YAML goes to the reader.
        let trimmed = text.trim_start();
        if trimmed.starts_with('{') || trimmed.starts_with('[') {
            ClusterObjects::from_json(text.as_bytes()).map_err(bad)?;
        }
        let mut src = FileSource::default();
        src.add_text(&self.path, &text)
            .map_err(|e| PlatformError::Input {
                what: "--cluster-dump".to_string(),
                message: e.to_string(),
            })?;
        Ok(src)
    }
}

impl ClusterSource for DumpFile {
    fn load(&self) -> BoxFuture<'_, Result<ClusterObjects, PlatformError>> {
        Box::pin(async move {
            let src = self.source()?;
            read_objects(&src).await
        })
    }
}

/// A live cluster, found as kubectl finds it (`--kubeconfig`, `--context`,
/// `KUBECONFIG`, `~/.kube/config`, the pod's service account).
#[derive(Debug, Clone)]
pub struct KubeCluster {
    loaded: LoadedConfig,
}

impl KubeCluster {
    /// Resolves the configuration (reads the kubeconfig) without contacting
    /// the server: a malformed kubeconfig or a missing context is bad input.
    pub fn configure(opts: &ConnectOptions) -> Result<KubeCluster, PlatformError> {
        upkeep_kube::load_config(opts)
            .map(|loaded| KubeCluster { loaded })
            .map_err(kube_error)
    }

    /// The API server's URL, for messages and documents.
    pub fn server(&self) -> String {
        self.loaded.server()
    }
}

impl ClusterSource for KubeCluster {
    fn load(&self) -> BoxFuture<'_, Result<ClusterObjects, PlatformError>> {
        Box::pin(async move {
            let cluster = Cluster::from_loaded(self.loaded.clone())
                .await
                .map_err(kube_error)?;
            read_objects(&cluster).await
        })
    }
}

/// A bad kubeconfig or file is bad input; anything the cluster did (not
/// reachable, too slow, refused us) is the environment's.
fn kube_error(e: KubeError) -> PlatformError {
    let message = e.to_string();
    match e {
        // Nothing says where the cluster is: the user has to.
        KubeError::NoConfig { .. } => PlatformError::NoCluster { message },
        e if e.exit_code() == 2 => PlatformError::Input {
            what: "cluster".to_string(),
            message,
        },
        _ => PlatformError::Cluster { message },
    }
}

/// Lists every kind of [`KINDS`] the source serves, at every version it
/// serves it (a file may hold one kind at two versions; a server lists each
/// kind once, at its preferred version).
pub async fn read_objects<R: ClusterRead>(src: &R) -> Result<ClusterObjects, PlatformError> {
    let served = src.resources().await.map_err(kube_error)?;
    let mut items = Vec::new();
    for (group, kind) in KINDS {
        for res in served
            .iter()
            .filter(|r| r.api.group == *group && r.api.kind == *kind && r.is_listable())
        {
            let mut opts = ListOptions::all_namespaces();
            if *kind == "CustomResourceDefinition" {
                opts = opts.page_size(CRD_PAGE_SIZE);
            }
            let listed = src.list(res, &opts).try_for_each(|obj| {
                let mut value = match upkeep_kube::object_value(&obj, res) {
                    Ok(v) => v,
                    Err(e) => return std::future::ready(Err(e)),
                };
                if *kind == "CustomResourceDefinition" {
                    drop_schemas(&mut value);
                }
                items.push(value);
                std::future::ready(Ok(()))
            });
            match listed.await {
                Ok(()) => {}
                // Gone between discovery and the list (a CRD just deleted): nothing to read.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(kube_error(e)),
            }
        }
    }
    Ok(ClusterObjects { items })
}

/// The detectors read a CRD's group, labels and stored versions, never its
/// schema, which is most of its size.
fn drop_schemas(crd: &mut Value) {
    if let Some(Value::Array(versions)) = crd.pointer_mut("/spec/versions") {
        for v in versions {
            if let Value::Object(m) = v {
                m.remove("schema");
            }
        }
    }
}

/// The cluster's objects, as one flat list.
#[derive(Debug, Clone, Default)]
pub struct ClusterObjects {
    items: Vec<Value>,
}

impl ClusterObjects {
    /// Reads `kubectl -o json` output: a `List` (kind `List` or any
    /// `...List`) with `items`, or a single object.
    pub fn from_json(bytes: &[u8]) -> Result<ClusterObjects, String> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("not JSON (line {}, column {}): {e}", e.line(), e.column()))?;
        let Value::Object(map) = &value else {
            return Err("expected a JSON object (a v1 List from kubectl -o json)".to_string());
        };
        let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
        let items = if kind.ends_with("List") {
            match map.get("items") {
                Some(Value::Array(items)) => items.clone(),
                Some(Value::Null) | None => Vec::new(),
                Some(_) => return Err("field `items` is not an array".to_string()),
            }
        } else if kind.is_empty() {
            return Err("field `kind` is missing".to_string());
        } else {
            vec![value.clone()]
        };
        for (i, item) in items.iter().enumerate() {
            let ok = item.get("kind").and_then(Value::as_str).is_some()
                && item.get("apiVersion").and_then(Value::as_str).is_some();
            if !ok {
                return Err(format!("items[{i}]: missing `apiVersion` or `kind`"));
            }
        }
        Ok(ClusterObjects { items })
    }

    /// Objects of `kind` whose API group is `group` (`""` for core).
    pub fn of_kind<'a>(&'a self, group: &'a str, kind: &'a str) -> impl Iterator<Item = &'a Value> {
        self.items.iter().filter(move |o| {
            str_at(o, &["kind"]) == Some(kind) && api_group(str_at(o, &["apiVersion"])) == group
        })
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

fn api_group(api_version: Option<&str>) -> &str {
    api_version
        .and_then(|a| a.split_once('/'))
        .map_or("", |(g, _)| g)
}

/// The string at a path of object keys.
pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

pub(crate) fn name(v: &Value) -> &str {
    str_at(v, &["metadata", "name"]).unwrap_or("<unnamed>")
}

pub(crate) fn namespace(v: &Value) -> Option<&str> {
    str_at(v, &["metadata", "namespace"])
}

pub(crate) fn label<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    at(v, &["metadata", "labels", key]).and_then(Value::as_str)
}

pub(crate) fn has_label(v: &Value, key: &str) -> bool {
    at(v, &["metadata", "labels", key]).is_some()
}

/// The `type` condition's `status` in `status.conditions`.
pub(crate) fn condition<'a>(conditions: Option<&'a Value>, kind: &str) -> Option<&'a str> {
    conditions?
        .as_array()?
        .iter()
        .find(|c| str_at(c, &["type"]) == Some(kind))
        .and_then(|c| str_at(c, &["status"]))
}

pub(crate) fn object_ref(v: &Value) -> ObjectRef {
    ObjectRef {
        api_version: str_at(v, &["apiVersion"]).unwrap_or_default().to_string(),
        kind: str_at(v, &["kind"]).unwrap_or_default().to_string(),
        namespace: namespace(v).map(str::to_string),
        name: name(v).to_string(),
    }
}

pub(crate) fn cluster_location(v: &Value, field: &str) -> Location {
    Location::Cluster {
        object: object_ref(v),
        field: Some(field.to_string()),
    }
}

/// A container image of a workload's pod template, with where it is written.
pub(crate) struct Image<'a> {
    /// The image without tag or digest: `ghcr.io/fluxcd/source-controller`.
    pub repository: &'a str,
    pub tag: Option<&'a str>,
    /// `spec.template.spec.containers[0].image`.
    pub field: String,
}

/// Every container image of a Deployment's or DaemonSet's pod template.
pub(crate) fn images(v: &Value) -> Vec<Image<'_>> {
    let Some(containers) =
        at(v, &["spec", "template", "spec", "containers"]).and_then(Value::as_array)
    else {
        return Vec::new();
    };
    containers
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let (repository, tag) = split_image(str_at(c, &["image"])?);
            Some(Image {
                repository,
                tag,
                field: format!("spec.template.spec.containers[{i}].image"),
            })
        })
        .collect()
}

/// `registry:5000/org/name:tag@sha256:...` → (`registry:5000/org/name`,
/// `tag`). A colon before the last `/` belongs to the registry's port.
fn split_image(image: &str) -> (&str, Option<&str>) {
    let name = image.split_once('@').map_or(image, |(n, _)| n);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(i) => (
            &name[..last_slash + i],
            Some(&name[last_slash + i + 1..]).filter(|t| !t.is_empty()),
        ),
        None => (name, None),
    }
}

/// The lowest kubelet version among the nodes: the Kubernetes version the
/// cluster can be relied on to serve.
pub(crate) fn kubernetes_version(objects: &ClusterObjects) -> Option<upkeep_version::Version> {
    objects
        .of_kind("", "Node")
        .filter_map(|n| str_at(n, &["status", "nodeInfo", "kubeletVersion"]))
        .filter_map(|v| upkeep_version::Version::parse(v).ok())
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_into_repository_and_tag() {
        assert_eq!(
            split_image("ghcr.io/fluxcd/source-controller:v1.5.0"),
            ("ghcr.io/fluxcd/source-controller", Some("v1.5.0"))
        );
        assert_eq!(
            split_image("registry.local:5000/longhornio/longhorn-manager:v1.9.0@sha256:abc"),
            (
                "registry.local:5000/longhornio/longhorn-manager",
                Some("v1.9.0")
            )
        );
        assert_eq!(
            split_image("registry.local:5000/nginx"),
            ("registry.local:5000/nginx", None)
        );
        assert_eq!(split_image("nginx@sha256:abc"), ("nginx", None));
        let d: Value = serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "x/a:v1"}, {"name": "b"}, {"name": "c", "image": "c:2"}]}}}});
        let got: Vec<(&str, Option<&str>, String)> = images(&d)
            .into_iter()
            .map(|i| (i.repository, i.tag, i.field))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "x/a",
                    Some("v1"),
                    "spec.template.spec.containers[0].image".to_string()
                ),
                (
                    "c",
                    Some("2"),
                    "spec.template.spec.containers[2].image".to_string()
                )
            ]
        );
    }

    #[test]
    fn reads_lists_and_single_objects() {
        let list = br#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"Node","metadata":{"name":"a"}},
            {"apiVersion":"longhorn.io/v1beta2","kind":"Node","metadata":{"name":"b","namespace":"longhorn-system"}}]}"#;
        let o = ClusterObjects::from_json(list).unwrap();
        assert_eq!(o.of_kind("", "Node").count(), 1);
        assert_eq!(
            o.of_kind("longhorn.io", "Node")
                .map(name)
                .collect::<Vec<_>>(),
            ["b"]
        );
        let one = br#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"a"}}"#;
        assert_eq!(
            ClusterObjects::from_json(one)
                .unwrap()
                .of_kind("", "Node")
                .count(),
            1
        );
    }

    fn dump_file(text: &str) -> (tempfile::TempDir, DumpFile) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump");
        std::fs::write(&path, text).unwrap();
        (dir, DumpFile::new(path))
    }

    #[tokio::test]
    async fn a_dump_gives_the_detected_kinds_at_every_version() {
        let (_dir, dump) = dump_file(
            r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"x"}},
            {"apiVersion":"helm.toolkit.fluxcd.io/v2beta1","kind":"HelmRelease","metadata":{"name":"old","namespace":"x"}},
            {"apiVersion":"helm.toolkit.fluxcd.io/v2","kind":"HelmRelease","metadata":{"name":"new","namespace":"x"}},
            {"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
             "metadata":{"name":"helmreleases.helm.toolkit.fluxcd.io"},
             "spec":{"group":"helm.toolkit.fluxcd.io","versions":[{"name":"v2","schema":{"openAPIV3Schema":{"type":"object"}}}]},
             "status":{"storedVersions":["v2beta1","v2"]}}]}"#,
        );
        let o = dump.load().await.unwrap();
        // Only what the detectors read; a kind at two versions is read at both.
        assert!(o.of_kind("", "ConfigMap").next().is_none());
        let mut names: Vec<&str> = o
            .of_kind("helm.toolkit.fluxcd.io", "HelmRelease")
            .map(name)
            .collect();
        names.sort();
        assert_eq!(names, ["new", "old"]);
        let crd = o
            .of_kind("apiextensions.k8s.io", "CustomResourceDefinition")
            .next()
            .unwrap();
        assert_eq!(crd["status"]["storedVersions"][0], "v2beta1");
        assert_eq!(crd["spec"]["versions"][0]["name"], "v2");
        assert!(crd["spec"]["versions"][0].get("schema").is_none());
    }

    #[tokio::test]
    async fn a_yaml_dump_is_read_too() {
        let (_dir, dump) = dump_file(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Node\n  metadata: {name: a}\n  status: {nodeInfo: {kubeletVersion: v1.31.4+k3s1}}\n",
        );
        let o = dump.load().await.unwrap();
        assert_eq!(
            kubernetes_version(&o).map(|v| v.to_string()).as_deref(),
            Some("v1.31.4+k3s1")
        );
        let (_dir, bad) = dump_file("items: [\n");
        let e = bad.load().await.unwrap_err();
        assert!(e.to_string().contains("--cluster-dump"), "{e}");
        assert!(!e.is_environment());
    }

    #[test]
    fn kube_errors_keep_their_exit_class() {
        let input = kube_error(KubeError::Kubeconfig {
            sources: "/k".into(),
            problem: "malformed YAML".into(),
        });
        assert!(matches!(input, PlatformError::Input { .. }), "{input}");
        let down = kube_error(KubeError::Unreachable {
            op: "list".into(),
            target: "nodes".into(),
            server: "https://k".into(),
            detail: "refused".into(),
        });
        assert!(down.is_environment());
        assert_eq!(
            down.to_string(),
            "list nodes: cannot reach https://k: refused"
        );
        let none = kube_error(KubeError::NoConfig { detail: "x".into() });
        assert!(matches!(none, PlatformError::NoCluster { .. }));
    }

    #[test]
    fn bad_dumps_name_the_problem() {
        let e = ClusterObjects::from_json(b"{\"kind\": ").unwrap_err();
        assert!(e.contains("not JSON (line 1"), "{e}");
        let e = ClusterObjects::from_json(b"[]").unwrap_err();
        assert!(e.contains("JSON object"), "{e}");
        let e =
            ClusterObjects::from_json(br#"{"kind":"List","items":[{"kind":"Node"}]}"#).unwrap_err();
        assert_eq!(e, "items[0]: missing `apiVersion` or `kind`");
        let e = DumpFile::new("/nonexistent/dump.json")
            .source()
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/dump.json"), "{e}");
    }
}
