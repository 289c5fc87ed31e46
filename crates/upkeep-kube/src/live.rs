//! The live cluster: kube-rs underneath, a deadline on every call, errors that name the
//! object and the operation.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::discovery::{ApiCapabilities, Discovery, Scope};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::{ConnectOptions, LoadedConfig, load_config};
use crate::error::{KubeError, chain};
use crate::limit::{LIMIT_MESSAGE, LimitLayer};
use crate::read::{ClusterRead, ListOptions};
use crate::resource::{Resource, ResourceRef};
use crate::wait::Until;

/// The longest a single watch request stays open before it is renewed.
const WATCH_WINDOW: Duration = Duration::from_secs(290);
/// Attempts of a read that met something passing (429, 5xx, a dropped
/// connection), with the waits between them doubling from READ_BACKOFF.
const READ_ATTEMPTS: u32 = 4;
const READ_BACKOFF: Duration = Duration::from_millis(250);

/// An error a second try may not meet: the server throttled, failed for
/// itself, or the connection did not get an answer.
fn transient(e: &KubeError) -> bool {
    match e {
        KubeError::Api { code, .. } => matches!(code, 429 | 500 | 502 | 503 | 504),
        KubeError::Unreachable { .. } => true,
        _ => false,
    }
}

/// The API server's version, from `/version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    /// e.g. `v1.31.4+k3s1`.
    pub git_version: String,
    pub major: String,
    pub minor: String,
}

/// Server-side apply settings.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Who owns the applied fields, e.g. `upkeep-restore`.
    pub field_manager: String,
    /// Take over fields another manager owns instead of failing with a conflict.
    pub force: bool,
    /// Let the server validate and answer without persisting (`dryRun=All`).
    pub dry_run: bool,
}

impl ApplyOptions {
    pub fn new(field_manager: &str) -> Self {
        ApplyOptions {
            field_manager: field_manager.to_string(),
            force: false,
            dry_run: false,
        }
    }

    pub fn force(mut self) -> Self {
        self.force = true;
        self
    }

    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }
}

/// What a delete did.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// The object is gone.
    Gone,
    /// Deletion started; finalizers still hold the object (returned as it now is).
    Finalizing(Box<DynamicObject>),
    /// There was nothing to delete.
    Absent,
}

/// A connection to a live cluster. Cheap to share by reference; discovery is cached.
pub struct Cluster {
    client: kube::Client,
    server: String,
    context: Option<String>,
    sources: String,
    default_namespace: String,
    timeout: Duration,
    discovery: Mutex<Option<Arc<Discovery>>>,
    max_response_bytes: usize,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .field("context", &self.context)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Resolves the configuration (see [`crate::load_config`]) and builds a client. Does not
    /// contact the server: the first call does, and fails with an environment error if it
    /// cannot. Async because the client's request queue runs as a task on the current
    /// Tokio runtime.
    pub async fn connect(opts: &ConnectOptions) -> Result<Cluster, KubeError> {
        Cluster::from_loaded(load_config(opts)?).await
    }

    pub async fn from_loaded(loaded: LoadedConfig) -> Result<Cluster, KubeError> {
        let server = loaded.server();
        let default_namespace = loaded.config.default_namespace.clone();
        let max_response_bytes = loaded.max_response_bytes;
        let client = kube::client::ClientBuilder::try_from(loaded.config)
            .map(|b| {
                b.with_layer(&LimitLayer {
                    max: max_response_bytes,
                })
                .build()
            })
            .map_err(|e| {
                let detail = chain(&e);
                match &loaded.context {
                    Some(context) => KubeError::BadContext {
                        sources: loaded.sources.clone(),
                        context: context.clone(),
                        problem: detail,
                    },
                    None => KubeError::InCluster { detail },
                }
            })?;
        Ok(Cluster {
            client,
            server,
            context: loaded.context,
            sources: loaded.sources,
            default_namespace,
            timeout: loaded.timeout,
            discovery: Mutex::new(None),
            max_response_bytes,
        })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// The namespace namespaced calls use when none is given (the context's, or `default`).
    pub fn default_namespace(&self) -> &str {
        &self.default_namespace
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The underlying kube client, for what this API does not cover.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Runs one API call under the deadline and names it in any error.
    pub(crate) async fn call<T>(
        &self,
        op: &str,
        target: &str,
        fut: impl Future<Output = kube::Result<T>>,
    ) -> Result<T, KubeError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.map_err(op, target, e)),
            Err(_) => Err(self.timeout_err(op, target)),
        }
    }

    /// [`Self::call`] for reads, tried again on a passing error, so an API
    /// server that flaps or throttles for a moment does not stop a run.
    /// Writes go through `call` once: a create tried again is not the same.
    pub(crate) async fn call_read<T, F, Fut>(
        &self,
        op: &str,
        target: &str,
        mut attempt: F,
    ) -> Result<T, KubeError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = kube::Result<T>>,
    {
        let mut wait = READ_BACKOFF;
        let mut tries = 1;
        loop {
            match self.call(op, target, attempt()).await {
                Err(e) if tries < READ_ATTEMPTS && transient(&e) => {
                    tracing::debug!("{e}; trying again in {}ms", wait.as_millis());
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    tries += 1;
                }
                result => return result,
            }
        }
    }

    fn timeout_err(&self, op: &str, target: &str) -> KubeError {
        KubeError::Timeout {
            op: op.to_string(),
            target: target.to_string(),
            server: self.server.clone(),
            after: self.timeout,
        }
    }

    fn map_err(&self, op: &str, target: &str, e: kube::Error) -> KubeError {
        let (op, target) = (op.to_string(), target.to_string());
        match e {
            kube::Error::Api(status) => KubeError::Api {
                op,
                target,
                code: status.code,
                reason: status.reason.clone(),
                message: crate::error::one_line(&status.message),
            },
            kube::Error::SerdeError(e) => KubeError::Protocol {
                op,
                target,
                server: self.server.clone(),
                detail: chain(&e),
            },
            other => {
                let detail = chain(&other);
                if detail.contains(LIMIT_MESSAGE) {
                    KubeError::Protocol {
                        op,
                        target,
                        server: self.server.clone(),
                        detail: format!(
                            "response larger than {} bytes (use smaller pages or raise the limit)",
                            self.max_response_bytes
                        ),
                    }
                } else {
                    KubeError::Unreachable {
                        op,
                        target,
                        server: self.server.clone(),
                        detail,
                    }
                }
            }
        }
    }

    fn namespace_for<'a>(&'a self, res: &Resource, namespace: Option<&'a str>) -> Option<&'a str> {
        res.namespaced
            .then(|| namespace.unwrap_or(&self.default_namespace))
    }

    fn api_for(&self, res: &Resource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace.filter(|_| res.namespaced) {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &res.api),
            None => Api::all_with(self.client.clone(), &res.api),
        }
    }

    /// `/version`: also the cheapest way to check the server answers at all.
    pub async fn server_version(&self) -> Result<ServerVersion, KubeError> {
        let info = self
            .call(
                "get /version from",
                &self.server,
                self.client.apiserver_version(),
            )
            .await?;
        Ok(ServerVersion {
            git_version: info.git_version,
            major: info.major,
            minor: info.minor,
        })
    }

    /// Evicts a pod through `pods/eviction` (policy/v1), as `kubectl drain`
    /// does, so PodDisruptionBudgets are honoured: a budget that allows no
    /// disruption now is an `Api` error with code 429, to retry later. A pod
    /// already gone is not an error.
    pub async fn evict(&self, namespace: &str, name: &str) -> Result<(), KubeError> {
        let target = format!("pod {namespace}/{name}");
        let body = serde_json::json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        });
        let path = format!(
            "/api/v1/namespaces/{}/pods/{}/eviction",
            segment(namespace),
            segment(name)
        );
        let request = http::Request::post(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default())
            .map_err(|e| KubeError::InvalidObject {
                op: "evict".to_string(),
                target: target.clone(),
                detail: e.to_string(),
            })?;
        match self
            .call(
                "evict",
                &target,
                self.client.request::<serde_json::Value>(request),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.status_code() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn discovery(&self) -> Result<Arc<Discovery>, KubeError> {
        let mut cached = self.discovery.lock().await;
        if let Some(d) = cached.as_ref() {
            return Ok(d.clone());
        }
        let d = Arc::new(self.run_discovery().await?);
        *cached = Some(d.clone());
        Ok(d)
    }

    /// Forgets cached discovery, e.g. after creating CRDs, so new resources are found.
    pub async fn refresh_discovery(&self) {
        *self.discovery.lock().await = None;
    }

    async fn run_discovery(&self) -> Result<Discovery, KubeError> {
        let target = "served API resources";
        // Aggregated discovery is two requests; servers before 1.26 answer it with the legacy
        // documents, which do not parse as the aggregated kind: fall back to one call per group.
        let aggregated = self
            .call(
                "discover",
                target,
                Discovery::new(self.client.clone()).run_aggregated(),
            )
            .await;
        match aggregated {
            Ok(d) => Ok(d),
            // Only a dead server is final; a refusal or an unparseable answer may just mean
            // the server does not speak aggregated discovery.
            Err(e @ (KubeError::Unreachable { .. } | KubeError::Timeout { .. })) => Err(e),
            Err(e) => {
                tracing::debug!("aggregated discovery failed ({e}); using per-group discovery");
                // Per-group discovery makes one request per group version: give it more time.
                let fut = Discovery::new(self.client.clone()).run();
                match tokio::time::timeout(self.timeout * 4, fut).await {
                    Ok(Ok(d)) => Ok(d),
                    Ok(Err(e)) => Err(self.map_err("discover", target, e)),
                    Err(_) => Err(self.timeout_err("discover", target)),
                }
            }
        }
    }

    /// Every served resource at every served version (not only the preferred ones).
    pub async fn all_versions(&self) -> Result<Vec<Resource>, KubeError> {
        let d = self.discovery().await?;
        let mut out = Vec::new();
        for group in d.groups() {
            for version in group.versions() {
                for (ar, caps) in group.versioned_resources(version) {
                    out.push(to_resource(ar, caps));
                }
            }
        }
        Ok(out)
    }

    fn resolve_in(d: &Discovery, r: &ResourceRef) -> Option<Resource> {
        let group = d.get(&r.group)?;
        let version = match &r.version {
            Some(v) => v.as_str(),
            None => group.preferred_version_or_latest(),
        };
        group
            .versioned_resources(version)
            .into_iter()
            .find(|(ar, _)| r.matches(ar))
            .map(|(ar, caps)| to_resource(ar, caps))
    }

    /// The served resource for an object's `apiVersion` and `kind`.
    pub async fn resource_for(&self, obj: &Value) -> Result<Resource, KubeError> {
        let api_version = obj.get("apiVersion").and_then(Value::as_str);
        let kind = obj.get("kind").and_then(Value::as_str);
        match (api_version, kind) {
            (Some(av), Some(k)) => self.resource(&ResourceRef::from_api_version(av, k)).await,
            _ => Err(KubeError::InvalidObject {
                op: "resolve".to_string(),
                target: describe_value(obj),
                detail: "object has no apiVersion or kind".to_string(),
            }),
        }
    }

    /// Server-side apply of `obj` (which must carry apiVersion, kind and metadata.name; a
    /// missing namespace means the default one). Returns the object as the server stored it.
    pub async fn apply(
        &self,
        res: &Resource,
        obj: &Value,
        opts: &ApplyOptions,
    ) -> Result<DynamicObject, KubeError> {
        // Apply needs apiVersion and kind; write_body fills them from the resource.
        let (name, ns, target, body) = self.write_body("apply", res, obj)?;
        let mut params = PatchParams::apply(&opts.field_manager);
        params.force = opts.force;
        params.dry_run = opts.dry_run;
        let api = self.api_for(res, ns.as_deref());
        self.call(
            "apply",
            &target,
            api.patch(&name, &params, &Patch::Apply(&body)),
        )
        .await
    }

    /// Creates the object (POST); an existing one is a 409 AlreadyExists (`is_conflict`).
    /// `opts.force` does not apply (there is no field ownership to take over); `opts.dry_run`
    /// lets the server validate and answer without storing. Returns the object as stored.
    pub async fn create(
        &self,
        res: &Resource,
        obj: &Value,
        opts: &ApplyOptions,
    ) -> Result<DynamicObject, KubeError> {
        // POST goes to the collection: the name travels in the body only.
        let (_, ns, target, body) = self.write_body("create", res, obj)?;
        let api = self.api_for(res, ns.as_deref());
        self.call("create", &target, api.create(&post_params(opts), &body))
            .await
    }

    /// Replaces the object (PUT). The body must carry the live object's
    /// `metadata.resourceVersion`, so a change made since it was read is a 409 Conflict
    /// rather than silently overwritten; a missing object is a 404. `opts` as for
    /// [`Cluster::create`].
    pub async fn replace(
        &self,
        res: &Resource,
        obj: &Value,
        opts: &ApplyOptions,
    ) -> Result<DynamicObject, KubeError> {
        let (name, ns, target, body) = self.write_body("replace", res, obj)?;
        let api = self.api_for(res, ns.as_deref());
        self.call(
            "replace",
            &target,
            api.replace(&name, &post_params(opts), &body),
        )
        .await
    }

    /// The name, namespace, target text and typed body of an object to apply, POST or PUT, filling
    /// apiVersion and kind from the resource when the caller left them out.
    fn write_body(
        &self,
        op: &str,
        res: &Resource,
        obj: &Value,
    ) -> Result<(String, Option<String>, String, DynamicObject), KubeError> {
        let invalid = |target: String, detail: &str| KubeError::InvalidObject {
            op: op.to_string(),
            target,
            detail: detail.to_string(),
        };
        let Some(map) = obj.as_object() else {
            return Err(invalid(
                res.kind().to_string(),
                "object is not a JSON object",
            ));
        };
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid(res.kind().to_string(), "object has no metadata.name"))?
            .to_string();
        let ns = self
            .namespace_for(
                res,
                obj.pointer("/metadata/namespace").and_then(Value::as_str),
            )
            .map(str::to_string);
        let target = res.object_target(ns.as_deref(), &name);
        let mut map = map.clone();
        map.entry("apiVersion")
            .or_insert_with(|| Value::String(res.api.api_version.clone()));
        map.entry("kind")
            .or_insert_with(|| Value::String(res.api.kind.clone()));
        let body: DynamicObject = serde_json::from_value(Value::Object(map))
            .map_err(|e| invalid(target.clone(), &format!("not a Kubernetes object: {e}")))?;
        Ok((name, ns, target, body))
    }

    /// A JSON merge patch (RFC 7386) of the object.
    pub async fn patch_merge(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<DynamicObject, KubeError> {
        let ns = self.namespace_for(res, namespace);
        let target = res.object_target(ns, name);
        let api = self.api_for(res, ns);
        self.call(
            "patch",
            &target,
            api.patch(name, &PatchParams::default(), &Patch::Merge(patch)),
        )
        .await
    }

    /// A JSON merge patch of the `status` subresource.
    pub async fn patch_status(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<DynamicObject, KubeError> {
        let ns = self.namespace_for(res, namespace);
        let target = res.object_target(ns, name);
        let api = self.api_for(res, ns);
        self.call(
            "patch status of",
            &target,
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch)),
        )
        .await
    }

    /// Deletes with background propagation, as kubectl does.
    pub async fn delete(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Deleted, KubeError> {
        let ns = self.namespace_for(res, namespace);
        let target = res.object_target(ns, name);
        let api = self.api_for(res, ns);
        match self
            .call(
                "delete",
                &target,
                api.delete(name, &DeleteParams::background()),
            )
            .await
        {
            // Servers answer either a Status or the object; the object still exists only
            // when it carries a deletionTimestamp (finalizers or graceful deletion pending).
            Ok(either) => Ok(match either.left() {
                Some(obj) if obj.metadata.deletion_timestamp.is_some() => {
                    Deleted::Finalizing(Box::new(obj))
                }
                _ => Deleted::Gone,
            }),
            Err(e) if e.status_code() == Some(404) => Ok(Deleted::Absent),
            Err(e) => Err(e),
        }
    }

    /// Waits until the object satisfies `until`, by watching it, for at most `within`.
    /// Returns the object as it was when the condition held; at the deadline, an error that
    /// says what was last seen.
    pub async fn wait_for(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        name: &str,
        until: &Until,
        within: Duration,
    ) -> Result<DynamicObject, KubeError> {
        let deadline = Instant::now() + within;
        let ns = self.namespace_for(res, namespace);
        let target = res.object_target(ns, name);
        let api = self.api_for(res, ns);
        let by_name = format!("metadata.name={name}");
        let mut last = "the object does not exist".to_string();
        let expired = |last: String| KubeError::WaitTimeout {
            target: target.clone(),
            condition: until.describe(),
            after: within,
            last,
        };
        loop {
            // List (not get) so a missing object still yields a resourceVersion to watch from.
            let lp = ListParams::default().fields(&by_name);
            let page = match tokio::time::timeout_at(
                deadline,
                self.call("wait for", &target, api.list(&lp)),
            )
            .await
            {
                Err(_) => return Err(expired(last)),
                Ok(r) => r?,
            };
            if let Some(obj) = page.items.into_iter().next() {
                if until.holds(&obj) {
                    return Ok(obj);
                }
                last = until.observe(&obj);
            }
            let rv = page.metadata.resource_version.unwrap_or_default();
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(expired(last));
            }
            // The server ends the watch itself a little after the deadline, so no stream is
            // left open behind us.
            let secs = (remaining.min(WATCH_WINDOW).as_secs() + 1).min(u64::from(u32::MAX));
            let wp = WatchParams::default()
                .fields(&by_name)
                .timeout(u32::try_from(secs).unwrap_or(u32::MAX));
            let events = match tokio::time::timeout_at(
                deadline,
                self.call("watch", &target, api.watch(&wp, &rv)),
            )
            .await
            {
                Err(_) => return Err(expired(last)),
                Ok(r) => r?,
            };
            let mut events = std::pin::pin!(events);
            loop {
                let next = match tokio::time::timeout_at(deadline, events.next()).await {
                    Err(_) => return Err(expired(last)),
                    Ok(n) => n,
                };
                match next {
                    // The server closed the watch: start over from a fresh list.
                    None => break,
                    // A watch connection that breaks is normal (idle timeouts, restarts): list
                    // again, which fails properly if the server is really gone.
                    Some(Err(e)) => {
                        tracing::debug!("watch {target} ended: {}", chain(&e));
                        break;
                    }
                    Some(Ok(WatchEvent::Added(obj) | WatchEvent::Modified(obj))) => {
                        if until.holds(&obj) {
                            return Ok(obj);
                        }
                        last = until.observe(&obj);
                    }
                    Some(Ok(WatchEvent::Deleted(_))) => {
                        last = "the object was deleted".to_string();
                    }
                    Some(Ok(WatchEvent::Bookmark(_))) => {}
                    Some(Ok(WatchEvent::Error(status))) => {
                        // 410 Gone: our resourceVersion is too old; list again and go on.
                        if status.code == 410 {
                            break;
                        }
                        return Err(KubeError::Api {
                            op: "watch".to_string(),
                            target: target.clone(),
                            code: status.code,
                            reason: status.reason.clone(),
                            message: crate::error::one_line(&status.message),
                        });
                    }
                }
            }
        }
    }
}

fn to_resource(ar: ApiResource, caps: ApiCapabilities) -> Resource {
    Resource {
        namespaced: caps.scope == Scope::Namespaced,
        verbs: caps.operations.clone(),
        subresources: caps
            .subresources
            .iter()
            .map(|(s, _)| s.plural.clone())
            .collect(),
        api: ar,
    }
}

fn post_params(opts: &ApplyOptions) -> PostParams {
    PostParams {
        dry_run: opts.dry_run,
        field_manager: Some(opts.field_manager.clone()).filter(|m| !m.is_empty()),
    }
}

fn describe_value(obj: &Value) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("object");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("(no name)");
    format!("{kind} {name}")
}

struct Pager {
    api: Api<DynamicObject>,
    params: ListParams,
    buffered: VecDeque<DynamicObject>,
    next: Option<String>,
    started: bool,
}

impl ClusterRead for Cluster {
    fn source_name(&self) -> String {
        match &self.context {
            Some(ctx) => format!(
                "cluster {} (context {ctx} from {})",
                self.server, self.sources
            ),
            None => format!("cluster {} ({})", self.server, self.sources),
        }
    }

    async fn resources(&self) -> Result<Vec<Resource>, KubeError> {
        let d = self.discovery().await?;
        let mut out = Vec::new();
        for group in d.groups() {
            for (ar, caps) in group.recommended_resources() {
                let r = to_resource(ar, caps);
                if r.is_listable() {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    async fn resource(&self, r: &ResourceRef) -> Result<Resource, KubeError> {
        if let Some(found) = Cluster::resolve_in(&*self.discovery().await?, r) {
            return Ok(found);
        }
        // It may have appeared since discovery ran (a CRD just created): look once more.
        self.refresh_discovery().await;
        Cluster::resolve_in(&*self.discovery().await?, r).ok_or_else(|| KubeError::NotServed {
            what: r.to_string(),
            source_name: self.source_name(),
        })
    }

    fn list<'a>(
        &'a self,
        res: &'a Resource,
        opts: &'a ListOptions,
    ) -> BoxStream<'a, Result<DynamicObject, KubeError>> {
        let ns = if res.namespaced {
            opts.namespace.as_deref()
        } else {
            None
        };
        let target = res.collection_target(ns);
        let mut params = ListParams::default().limit(opts.page_size.max(1));
        if let Some(l) = &opts.label_selector {
            params = params.labels(l);
        }
        if let Some(f) = &opts.field_selector {
            params = params.fields(f);
        }
        let pager = Pager {
            api: self.api_for(res, ns),
            params,
            buffered: VecDeque::new(),
            next: None,
            started: false,
        };
        // One page in memory at a time: the next page is fetched when this one is drained.
        stream::try_unfold(pager, move |mut p| {
            let target = target.clone();
            async move {
                loop {
                    if let Some(obj) = p.buffered.pop_front() {
                        return Ok(Some((obj, p)));
                    }
                    if p.started && p.next.is_none() {
                        return Ok(None);
                    }
                    let mut params = p.params.clone();
                    if let Some(token) = &p.next {
                        params = params.continue_token(token);
                    }
                    let page = self
                        .call_read("list", &target, || p.api.list(&params))
                        .await?;
                    p.started = true;
                    p.next = page.metadata.continue_.filter(|t| !t.is_empty());
                    p.buffered.extend(page.items);
                }
            }
        })
        .boxed()
    }

    async fn get(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<DynamicObject>, KubeError> {
        let ns = self.namespace_for(res, namespace);
        let target = res.object_target(ns, name);
        let api = self.api_for(res, ns);
        self.call_read("get", &target, || api.get_opt(name)).await
    }
}

/// A name as one URL path segment. Kubernetes names are DNS labels or
/// subdomains, so this only guards against a malformed one reaching the path.
fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
