//! The read API every tool uses, with two implementations: a live [`Cluster`] and a
//! [`FileSource`] over `kubectl get -o json` output, so any tool can run without a cluster.

use std::future::Future;

use futures_util::stream::BoxStream;
use kube::api::DynamicObject;

use crate::error::KubeError;
use crate::files::FileSource;
use crate::live::Cluster;
use crate::resource::{Resource, ResourceRef};

/// Default page size for lists: large enough to be few requests, small enough to keep memory
/// flat (kubectl uses 500 too).
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// What to list.
#[derive(Debug, Clone)]
pub struct ListOptions {
    /// `None`: all namespaces (ignored for cluster-scoped resources).
    pub namespace: Option<String>,
    /// A label selector as kubectl's `-l` takes it (`app=web,env!=prod,tier in (a,b),!x`).
    pub label_selector: Option<String>,
    /// A field selector; the file source understands `metadata.name` and `metadata.namespace`.
    pub field_selector: Option<String>,
    /// Objects fetched per request on a live cluster.
    pub page_size: u32,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            namespace: None,
            label_selector: None,
            field_selector: None,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl ListOptions {
    pub fn all_namespaces() -> Self {
        ListOptions::default()
    }

    pub fn in_namespace(namespace: &str) -> Self {
        ListOptions {
            namespace: Some(namespace.to_string()),
            ..Default::default()
        }
    }

    pub fn labels(mut self, selector: &str) -> Self {
        self.label_selector = Some(selector.to_string());
        self
    }

    pub fn fields(mut self, selector: &str) -> Self {
        self.field_selector = Some(selector.to_string());
        self
    }

    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = n.max(1);
        self
    }
}

/// Reading objects, from a cluster or from files.
pub trait ClusterRead: Send + Sync {
    /// What is being read, for messages: `cluster https://... (context x)` or `files a.json`.
    fn source_name(&self) -> String;

    /// Every listable resource, each group at its preferred version.
    fn resources(&self) -> impl Future<Output = Result<Vec<Resource>, KubeError>> + Send;

    /// Resolves a resource by group, version and kind or plural.
    fn resource(&self, r: &ResourceRef)
    -> impl Future<Output = Result<Resource, KubeError>> + Send;

    /// The objects of a resource, streamed a page at a time (sorted by namespace and name
    /// from files; in server order from a cluster).
    fn list<'a>(
        &'a self,
        res: &'a Resource,
        opts: &'a ListOptions,
    ) -> BoxStream<'a, Result<DynamicObject, KubeError>>;

    /// One object; `None` when it does not exist. A namespaced resource asked for without a
    /// namespace is looked up in the default namespace (the context's on a live cluster,
    /// `default` in files), as kubectl does.
    fn get(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> impl Future<Output = Result<Option<DynamicObject>, KubeError>> + Send;
}

/// Either source, chosen at run time (e.g. by a `--from-file` flag).
#[expect(
    clippy::large_enum_variant,
    reason = "one per process; boxing would only add a hop to every call"
)]
pub enum Source {
    Live(Cluster),
    Files(FileSource),
}

impl Source {
    /// What every tool does with `--from-file F...` and the cluster flags: the files when any
    /// are given, else the cluster.
    pub async fn open<P: AsRef<std::path::Path>>(
        from_files: &[P],
        cluster: &crate::ConnectOptions,
    ) -> Result<Source, KubeError> {
        if from_files.is_empty() {
            Ok(Source::Live(Cluster::connect(cluster).await?))
        } else {
            Ok(Source::Files(FileSource::load(from_files)?))
        }
    }
}

impl ClusterRead for Source {
    fn source_name(&self) -> String {
        match self {
            Source::Live(c) => c.source_name(),
            Source::Files(f) => f.source_name(),
        }
    }

    async fn resources(&self) -> Result<Vec<Resource>, KubeError> {
        match self {
            Source::Live(c) => c.resources().await,
            Source::Files(f) => f.resources().await,
        }
    }

    async fn resource(&self, r: &ResourceRef) -> Result<Resource, KubeError> {
        match self {
            Source::Live(c) => c.resource(r).await,
            Source::Files(f) => f.resource(r).await,
        }
    }

    fn list<'a>(
        &'a self,
        res: &'a Resource,
        opts: &'a ListOptions,
    ) -> BoxStream<'a, Result<DynamicObject, KubeError>> {
        match self {
            Source::Live(c) => c.list(res, opts),
            Source::Files(f) => f.list(res, opts),
        }
    }

    async fn get(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<DynamicObject>, KubeError> {
        match self {
            Source::Live(c) => c.get(res, namespace, name).await,
            Source::Files(f) => f.get(res, namespace, name).await,
        }
    }
}

/// Every object of `res` that `opts` selects, as JSON ([`object_value`]).
pub async fn list_values<R: ClusterRead>(
    src: &R,
    res: &Resource,
    opts: &ListOptions,
) -> Result<Vec<serde_json::Value>, KubeError> {
    use futures_util::TryStreamExt;
    let listed: Vec<DynamicObject> = src.list(res, opts).try_collect().await?;
    listed.iter().map(|o| object_value(o, res)).collect()
}

/// A listed object as JSON, with the `apiVersion` and `kind` a server's list
/// items leave out filled in from the resource they were listed as.
pub fn object_value(obj: &DynamicObject, res: &Resource) -> Result<serde_json::Value, KubeError> {
    let mut value = serde_json::to_value(obj).map_err(|e| KubeError::InvalidObject {
        op: "read".to_string(),
        target: res.collection_target(None),
        detail: e.to_string(),
    })?;
    if let serde_json::Value::Object(map) = &mut value {
        map.entry("apiVersion")
            .or_insert_with(|| serde_json::Value::String(res.api.api_version.clone()));
        map.entry("kind")
            .or_insert_with(|| serde_json::Value::String(res.api.kind.clone()));
    }
    Ok(value)
}
