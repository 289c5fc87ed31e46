//! The object store: every object as JSON, a global resourceVersion, and the write semantics
//! of kube-apiserver (generation, status subresource, optimistic concurrency, finalizers,
//! namespace and CRD cascades, owner-reference garbage collection).
//!
//! Every committed change is published as a [`ChangeEvent`] on a broadcast channel: watches
//! are built on it, and simulated controllers can subscribe to it too.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::patch::{self, PatchKind};
use crate::resources::{
    GroupResource, Registry, ResourceInfo, crd_established_status, crd_resources,
};
use crate::schema;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::ssa;

/// How many past events a watch can resume from before getting 410 Gone.
const HISTORY: usize = 10_000;

/// Storage identity of one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group: String,
    pub resource: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn group_resource(&self) -> GroupResource {
        GroupResource {
            group: self.group.clone(),
            resource: self.resource.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change. `object` is the object after the change (for DELETED, the last
/// state with the deletion's resourceVersion); `old` is the state before it.
#[derive(Debug, Clone)]
pub struct ChangeEvent {
    pub kind: EventType,
    pub resource_version: u64,
    pub key: ObjectKey,
    pub object: Value,
    pub old: Option<Value>,
}

/// Options common to writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub force: bool,
    /// `fieldValidation=Strict`: undeclared fields of a custom resource are an error
    /// instead of being pruned.
    pub strict_fields: bool,
}

/// The body of a DELETE, as far as the simulator honours it.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    /// `Orphan` keeps dependents; anything else deletes them.
    pub orphan: bool,
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// A list request's filters and paging.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

impl ListQuery {
    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace {
            let ons = obj.pointer("/metadata/namespace").and_then(Value::as_str);
            if ons != Some(ns.as_str()) {
                return false;
            }
        }
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

/// Where a watch starts.
pub enum WatchStart {
    /// Synthetic ADDED events for the current objects, then live events.
    Current(Vec<Value>),
    /// Past events after the requested resourceVersion, then live events.
    Replay(Vec<Arc<ChangeEvent>>),
}

struct Inner {
    registry: Registry,
    objects: BTreeMap<ObjectKey, Value>,
    rv: u64,
    history: VecDeque<Arc<ChangeEvent>>,
    /// Events at or below this resourceVersion are no longer in `history`.
    compacted: u64,
}

/// The shared, thread-safe store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    tx: broadcast::Sender<Arc<ChangeEvent>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("resource_version", &self.resource_version())
            .finish_non_exhaustive()
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex_string(&b);
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        (b[8] & 0x3) | 0x8,
        &h[17..20],
        &h[20..32]
    )
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

fn finalizers(obj: &Value) -> usize {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// Everything but metadata and status: a change here bumps `metadata.generation`.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

/// Kinds whose strategy maintains `metadata.generation` (all custom resources, workloads and
/// the other spec-carrying API kinds); ConfigMaps, Secrets, Namespaces etc. have none.
fn tracks_generation(info: &ResourceInfo) -> bool {
    info.custom
        || matches!(
            info.group.as_str(),
            "apps"
                | "batch"
                | "networking.k8s.io"
                | "apiextensions.k8s.io"
                | "admissionregistration.k8s.io"
                | "snapshot.storage.k8s.io"
                | "storage.k8s.io"
                | "discovery.k8s.io"
        )
}

/// Compares two objects ignoring what every write touches (resourceVersion, timestamps).
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            // Ownership changes are changes; a refreshed timestamp alone is not.
            if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
                for e in entries.iter_mut().filter_map(Value::as_object_mut) {
                    e.remove("time");
                }
            }
        }
        if let Some(m) = v.as_object_mut() {
            m.remove("apiVersion");
        }
        v
    };
    strip(a) == strip(b)
}

/// Secrets store `stringData` as base64 `data`, as the real API does on every write.
fn fold_string_data(info: &ResourceInfo, obj: &mut Value) {
    if !(info.group.is_empty() && info.plural == "secrets") {
        return;
    }
    let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) else {
        return;
    };
    if !obj.get("data").is_some_and(Value::is_object) {
        obj["data"] = json!({});
    }
    for (k, v) in sd {
        let text = v
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string());
        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// Prunes a custom resource to its schema; under strict validation, pruning is an error.
fn enforce_schema(info: &ResourceInfo, obj: &mut Value, strict: bool) -> Result<(), ApiError> {
    let Some(schema) = info.schema.as_ref().filter(|_| info.custom) else {
        return Ok(());
    };
    let unknown = schema::prune(schema, obj);
    if strict && !unknown.is_empty() {
        let fields: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
            fields.join(", "),
            kind = info.kind,
            v = info.version,
        )));
    }
    Ok(())
}

fn valid_name(info: &ResourceInfo, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Required value: name or generateName is required".to_string());
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('%') {
        return Err(format!(
            "Invalid value: \"{name}\": may not contain '/' or '%' or be '.' or '..'"
        ));
    }
    if info.group == "rbac.authorization.k8s.io" {
        return Ok(());
    }
    let ok = name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

fn encode_continue(t: &ContinueToken) -> String {
    let raw = serde_json::to_vec(t).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(s: &str) -> Result<ContinueToken, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or_else(|| ApiError::bad_request(format!("invalid continue token {s:?}")))
}

impl Store {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        let store = Store {
            inner: Arc::new(Mutex::new(Inner {
                registry: Registry::builtin(),
                objects: BTreeMap::new(),
                rv: 0,
                history: VecDeque::new(),
                compacted: 0,
            })),
            tx,
        };
        let ns = store.registry().lookup("", "v1", "namespaces");
        if let Some(ns) = ns {
            for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let obj =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
                // Creating the well-known namespaces in a fresh store cannot fail.
                let _ = store.create(&ns, None, obj, &WriteOptions::default());
            }
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (writes commit at the end).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A snapshot of the served resources.
    pub fn registry(&self) -> Registry {
        self.lock().registry.clone()
    }

    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Live change events, for watches and simulated controllers.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeEvent>> {
        self.tx.subscribe()
    }

    /// Every stored object (for `--state-out`).
    pub fn dump(&self) -> Vec<(ObjectKey, Value)> {
        self.lock()
            .objects
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn key(info: &ResourceInfo, ns: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: info.group.clone(),
            resource: info.plural.clone(),
            namespace: if info.namespaced {
                ns.unwrap_or("").to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    /// Serves a stored object in the requested version.
    pub fn present(info: &ResourceInfo, obj: &Value) -> Value {
        let mut v = obj.clone();
        if let Some(m) = v.as_object_mut() {
            m.insert("apiVersion".to_string(), json!(info.api_version()));
            m.insert("kind".to_string(), json!(info.kind));
        }
        v
    }

    pub fn get(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let inner = self.lock();
        inner
            .objects
            .get(&Self::key(info, ns, name))
            .map(|o| Self::present(info, o))
            .ok_or_else(|| ApiError::not_found(info, name))
    }

    pub fn list(&self, info: &ResourceInfo, q: &ListQuery) -> Result<ListPage, ApiError> {
        let inner = self.lock();
        let token = q
            .continue_token
            .as_deref()
            .map(decode_continue)
            .transpose()?;
        let start = ObjectKey {
            group: info.group.clone(),
            resource: info.plural.clone(),
            namespace: q.namespace.clone().unwrap_or_default(),
            name: String::new(),
        };
        let start = match &token {
            Some(t) => ObjectKey {
                namespace: t.ns.clone(),
                name: t.name.clone(),
                ..start
            },
            None => start,
        };
        // Continued pages are served from the snapshot the first page saw, as etcd does.
        let snapshot;
        let objects = match &token {
            Some(t) if t.rv < inner.rv => {
                snapshot = Self::rewind(&inner, info, t.rv)?;
                &snapshot
            }
            _ => &inner.objects,
        };
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0u64;
        let filtered = !q.labels.is_empty() || !q.fields.is_empty();
        for (k, obj) in objects.range(start..) {
            if k.group != info.group || k.resource != info.plural {
                break;
            }
            if let Some(ns) = &q.namespace
                && k.namespace != *ns
            {
                break;
            }
            if let Some(t) = &token
                && k.namespace == t.ns
                && k.name == t.name
            {
                continue;
            }
            if !q.matches(obj) {
                continue;
            }
            if let Some(limit) = q.limit
                && items.len() >= limit
            {
                if next.is_none() {
                    next = items.last().map(|last: &Value| ContinueToken {
                        rv: token.as_ref().map_or(inner.rv, |t| t.rv),
                        ns: meta_str(last, "namespace").unwrap_or("").to_string(),
                        name: meta_str(last, "name").unwrap_or("").to_string(),
                    });
                }
                remaining += 1;
                if filtered {
                    break;
                }
                continue;
            }
            items.push(Self::present(info, obj));
        }
        Ok(ListPage {
            items,
            resource_version: token.as_ref().map_or(inner.rv, |t| t.rv),
            continue_token: next.as_ref().map(encode_continue),
            remaining: next.as_ref().filter(|_| !filtered).map(|_| remaining),
        })
    }

    /// The objects of one resource as they were at resourceVersion `rv`, rebuilt by undoing
    /// the history after it; 410 Expired when that history has been compacted away.
    fn rewind(
        inner: &Inner,
        info: &ResourceInfo,
        rv: u64,
    ) -> Result<BTreeMap<ObjectKey, Value>, ApiError> {
        if rv < inner.compacted {
            return Err(ApiError::gone(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ));
        }
        let ours = |k: &ObjectKey| k.group == info.group && k.resource == info.plural;
        let mut view: BTreeMap<ObjectKey, Value> = inner
            .objects
            .iter()
            .filter(|(k, _)| ours(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ev in inner
            .history
            .iter()
            .rev()
            .take_while(|e| e.resource_version > rv)
        {
            if !ours(&ev.key) {
                continue;
            }
            match ev.kind {
                EventType::Added => {
                    view.remove(&ev.key);
                }
                EventType::Modified | EventType::Deleted => {
                    let before = ev.old.clone().unwrap_or_else(|| ev.object.clone());
                    view.insert(ev.key.clone(), before);
                }
            }
        }
        Ok(view)
    }

    /// Starts a watch: resolves the starting point and subscribes under one lock, so no
    /// event falls between the two. Also returns the resourceVersion at that instant: live
    /// events at or below it are already covered by the starting point.
    pub fn watch(
        &self,
        info: &ResourceInfo,
        q: &ListQuery,
        since: Option<u64>,
    ) -> Result<(WatchStart, broadcast::Receiver<Arc<ChangeEvent>>, u64), ApiError> {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let start = match since {
            None | Some(0) => WatchStart::Current(
                inner
                    .objects
                    .iter()
                    .filter(|(k, o)| {
                        k.group == info.group && k.resource == info.plural && q.matches(o)
                    })
                    .map(|(_, o)| o.clone())
                    .collect(),
            ),
            Some(rv) => {
                if rv < inner.compacted {
                    return Err(ApiError::gone(format!(
                        "too old resource version: {rv} ({})",
                        inner.compacted + 1
                    )));
                }
                WatchStart::Replay(
                    inner
                        .history
                        .iter()
                        .filter(|e| e.resource_version > rv)
                        .cloned()
                        .collect(),
                )
            }
        };
        Ok((start, rx, inner.rv))
    }

    fn commit(
        &self,
        inner: &mut Inner,
        kind: EventType,
        key: ObjectKey,
        object: Value,
        old: Option<Value>,
    ) {
        let ev = Arc::new(ChangeEvent {
            kind,
            resource_version: inner.rv,
            key: key.clone(),
            object: object.clone(),
            old,
        });
        match kind {
            EventType::Deleted => {
                inner.objects.remove(&key);
            }
            _ => {
                inner.objects.insert(key, object);
            }
        }
        inner.history.push_back(ev.clone());
        while inner.history.len() > HISTORY {
            if let Some(e) = inner.history.pop_front() {
                inner.compacted = e.resource_version;
            }
        }
        // No receivers is normal (nobody watching).
        let _ = self.tx.send(ev);
    }

    fn check_body(info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        if let Some(kind) = obj.get("kind").and_then(Value::as_str)
            && kind != info.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({kind}) does not match the resource ({})",
                info.kind
            )));
        }
        if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
            let group = av.rsplit_once('/').map_or("", |(g, _)| g);
            if group != info.group {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    info.api_version()
                )));
            }
        }
        Ok(())
    }

    fn place_namespace(
        info: &ResourceInfo,
        obj: &mut Value,
        ns: Option<&str>,
    ) -> Result<(), ApiError> {
        let meta = meta_mut(obj);
        if info.namespaced {
            let url_ns = ns.unwrap_or("default");
            match meta.get("namespace").and_then(Value::as_str) {
                Some(body_ns) if !body_ns.is_empty() && body_ns != url_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".to_string(), json!(url_ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
        Ok(())
    }

    fn manager(opts: &WriteOptions) -> &str {
        opts.field_manager.as_deref().unwrap_or("unknown")
    }

    /// Creates an object through the API (status is dropped where a status subresource exists).
    pub fn create(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        self.create_inner(info, ns, obj, opts, false)
    }

    /// Loads an object as a fixture: like create, but keeps the status it carries.
    pub fn load(&self, info: &ResourceInfo, obj: Value) -> Result<Value, ApiError> {
        let ns = meta_str(&obj, "namespace").map(str::to_string);
        let opts = WriteOptions {
            field_manager: Some("sim-cluster-fixture".to_string()),
            ..WriteOptions::default()
        };
        if info.namespaced {
            let ns_name = ns.clone().unwrap_or_else(|| "default".to_string());
            let exists = self.lock().objects.contains_key(&ObjectKey {
                group: String::new(),
                resource: "namespaces".to_string(),
                namespace: String::new(),
                name: ns_name.clone(),
            });
            if !exists && let Some(nsinfo) = self.registry().lookup("", "v1", "namespaces") {
                let nsobj =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns_name}});
                self.create(&nsinfo, None, nsobj, &opts)?;
            }
        }
        self.create_inner(info, ns.as_deref(), obj, &opts, true)
    }

    fn create_inner(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
        keep_status: bool,
    ) -> Result<Value, ApiError> {
        Self::check_body(info, &obj)?;
        Self::place_namespace(info, &mut obj, ns)?;
        fold_string_data(info, &mut obj);
        let mut name = meta_str(&obj, "name").unwrap_or("").to_string();
        if name.is_empty()
            && let Some(prefix) = meta_str(&obj, "generateName").filter(|p| !p.is_empty())
        {
            name = format!("{prefix}{}", random_suffix());
            meta_mut(&mut obj).insert("name".to_string(), json!(name));
        }
        if let Err(msg) = valid_name(info, &name) {
            return Err(ApiError::invalid(
                info,
                &name,
                &[("metadata.name".to_string(), msg)],
            ));
        }
        let crd =
            if info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions" {
                Some(crd_resources(&obj).map_err(|e| {
                    ApiError::invalid(info, &name, &[(e.field.clone(), e.message.clone())])
                })?)
            } else {
                None
            };
        let now = now();
        let mut inner = self.lock();
        let ns_name = if info.namespaced {
            meta_str(&obj, "namespace").map(str::to_string)
        } else {
            None
        };
        if let Some(ns_name) = &ns_name {
            let nskey = ObjectKey {
                group: String::new(),
                resource: "namespaces".to_string(),
                namespace: String::new(),
                name: ns_name.clone(),
            };
            match inner.objects.get(&nskey) {
                None => return Err(ApiError::namespace_not_found(ns_name)),
                Some(nso) if nso.pointer("/metadata/deletionTimestamp").is_some() => {
                    return Err(ApiError::forbidden(format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns_name} because it is being terminated",
                        info.qualified_plural()
                    )));
                }
                Some(_) => {}
            }
        }
        let key = Self::key(info, ns_name.as_deref(), &name);
        if inner.objects.contains_key(&key) {
            return Err(ApiError::already_exists(info, &name));
        }
        if !keep_status
            && info.has_status
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        if info.group.is_empty()
            && info.plural == "secrets"
            && obj
                .get("type")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            obj["type"] = json!("Opaque");
        }
        if info.group.is_empty() && info.plural == "namespaces" {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
            let labels = meta_mut(&mut obj)
                .entry("labels".to_string())
                .or_insert_with(|| json!({}));
            if let Value::Object(l) = labels {
                l.insert("kubernetes.io/metadata.name".to_string(), json!(name));
            }
        }
        if let Some((_, _)) = &crd {
            obj["status"] = crd_established_status(&obj, &now);
        }
        enforce_schema(info, &mut obj, opts.strict_fields)?;
        let rv = inner.rv + 1;
        // A fixture's managedFields are the history of who wrote it (and at
        // which API version): kept as loaded, as a cluster would have them.
        let loaded_fields = keep_status
            .then(|| obj.pointer("/metadata/managedFields").cloned())
            .flatten()
            .filter(|m| m.as_array().is_some_and(|a| !a.is_empty()));
        {
            let meta = meta_mut(&mut obj);
            meta.insert("uid".to_string(), json!(new_uid()));
            meta.insert("creationTimestamp".to_string(), json!(now));
            meta.insert("resourceVersion".to_string(), json!(rv.to_string()));
            if tracks_generation(info) {
                meta.insert("generation".to_string(), json!(1));
            } else {
                meta.remove("generation");
            }
            meta.remove("deletionTimestamp");
            meta.remove("deletionGracePeriodSeconds");
            meta.remove("managedFields");
            meta.remove("selfLink");
        }
        let av = info.api_version();
        obj["apiVersion"] = json!(av);
        obj["kind"] = json!(info.kind);
        ssa::record_update(
            None,
            &mut obj,
            &ssa::Writer {
                manager: Self::manager(opts),
                api_version: &av,
                subresource: None,
                now: &now,
            },
        );
        if let Some(mf) = loaded_fields {
            meta_mut(&mut obj).insert("managedFields".to_string(), mf);
        }
        if opts.dry_run {
            return Ok(Self::present(info, &obj));
        }
        inner.rv = rv;
        if let Some((gr, infos)) = crd {
            inner.registry.set_crd(&gr, infos);
        }
        self.commit(&mut inner, EventType::Added, key, obj.clone(), None);
        Ok(Self::present(info, &obj))
    }

    /// PUT of the main resource or of its `status` subresource.
    pub fn update(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        status: bool,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        Self::check_body(info, &obj)?;
        Self::place_namespace(info, &mut obj, ns)?;
        let body_name = meta_str(&obj, "name").unwrap_or("");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_rv = meta_str(&obj, "resourceVersion").unwrap_or("").to_string();
        let mut inner = self.lock();
        let key = Self::key(info, ns, name);
        let old = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(info, name))?;
        if body_rv.is_empty() {
            if info.custom && !status {
                return Err(ApiError::invalid(
                    info,
                    name,
                    &[(
                        "metadata.resourceVersion".to_string(),
                        "Invalid value: 0x0: must be specified for an update".to_string(),
                    )],
                ));
            }
        } else if Some(body_rv.as_str()) != meta_str(&old, "resourceVersion") {
            return Err(ApiError::stale(info, name));
        }
        self.write(&mut inner, info, key, old, obj, status, opts)
    }

    /// Applies the write strategy to `new` given `old`, then commits it.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        inner: &mut Inner,
        info: &ResourceInfo,
        key: ObjectKey,
        old: Value,
        mut new: Value,
        status: bool,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let now = now();
        let name = key.name.clone();
        fold_string_data(info, &mut new);
        if status {
            // The status subresource changes status only.
            let mut merged = old.clone();
            match new.get("status") {
                Some(s) => merged["status"] = s.clone(),
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            new = merged;
        } else if info.has_status {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        // Server-owned metadata is not writable by clients.
        {
            let om = old.get("metadata").cloned().unwrap_or(json!({}));
            let meta = meta_mut(&mut new);
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match om.get(f) {
                    Some(v) => meta.insert(f.to_string(), v.clone()),
                    None => meta.remove(f),
                };
            }
            meta.insert("name".to_string(), json!(name));
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                // Finalizers may only be removed from an object being deleted, not added.
                let old_f = om
                    .get("finalizers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if let Some(Value::Array(nf)) = meta.get("finalizers")
                    && nf.iter().any(|f| !old_f.contains(f))
                {
                    return Err(ApiError::forbidden(format!(
                        "{} \"{name}\" is forbidden: no new finalizers can be added if the object is being deleted",
                        info.qualified_plural()
                    )));
                }
            }
        }
        if info.group.is_empty() && info.plural == "namespaces" && !status {
            new["status"] = old
                .get("status")
                .cloned()
                .unwrap_or(json!({"phase": "Active"}));
        }
        let crd =
            if info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions" {
                let parsed = crd_resources(&new).map_err(|e| {
                    ApiError::invalid(info, &name, &[(e.field.clone(), e.message.clone())])
                })?;
                if !status {
                    new["status"] = crd_established_status(&new, &now);
                }
                Some(parsed)
            } else {
                None
            };
        enforce_schema(info, &mut new, opts.strict_fields)?;
        if tracks_generation(info) && spec_part(&old) != spec_part(&new) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".to_string(), json!(g + 1));
        }
        let av = info.api_version();
        new["apiVersion"] = json!(av);
        new["kind"] = json!(info.kind);
        if opts.field_manager.is_some() || !opts.force {
            // Apply has already recorded its ownership; plain writes record theirs here.
            ssa::record_update(
                Some(&old),
                &mut new,
                &ssa::Writer {
                    manager: Self::manager(opts),
                    api_version: &av,
                    subresource: status.then_some("status"),
                    now: &now,
                },
            );
        }
        let remove = new.pointer("/metadata/deletionTimestamp").is_some() && finalizers(&new) == 0;
        if same_content(&old, &new) && !remove {
            return Ok(Self::present(info, &old));
        }
        let rv = inner.rv + 1;
        meta_mut(&mut new).insert("resourceVersion".to_string(), json!(rv.to_string()));
        if opts.dry_run {
            return Ok(Self::present(info, &new));
        }
        inner.rv = rv;
        if let Some((gr, infos)) = crd {
            inner.registry.set_crd(&gr, infos);
        }
        if remove {
            self.finalize_removal(inner, key, new.clone(), Some(old));
        } else {
            self.commit(inner, EventType::Modified, key, new.clone(), Some(old));
        }
        Ok(Self::present(info, &new))
    }

    /// PATCH of the main resource or its status; server-side apply may create.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        kind: PatchKind,
        body: &Value,
        status: bool,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = Self::key(info, ns, name);
        let current = inner.objects.get(&key).cloned();
        let now = now();
        let av = info.api_version();
        if kind == PatchKind::Apply {
            Self::check_body(info, body)?;
            let body_name = meta_str(body, "name").unwrap_or("");
            if body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            let Some(manager) = opts.field_manager.as_deref() else {
                return Err(ApiError::bad_request(
                    "PATCH, application/apply-patch+yaml requests require fieldManager",
                ));
            };
            let writer = ssa::Writer {
                manager,
                api_version: &av,
                subresource: status.then_some("status"),
                now: &now,
            };
            let applied = ssa::apply(current.as_ref(), body, &writer, opts.force).map_err(|c| {
                let mut e = ApiError::new(409, "Conflict", c.message());
                e.details = Some(json!({"causes": c.causes()}));
                e
            })?;
            let no_record = WriteOptions {
                field_manager: None,
                force: true,
                ..opts.clone()
            };
            return match current {
                None => {
                    drop(inner);
                    // A create by apply keeps the ownership the apply recorded.
                    let mut created =
                        self.create_inner(info, ns, applied.clone(), &no_record, false)?;
                    if let Some(mf) = applied.pointer("/metadata/managedFields") {
                        created["metadata"]["managedFields"] = mf.clone();
                        if !opts.dry_run {
                            let mut inner = self.lock();
                            if let Some(o) = inner.objects.get_mut(&key) {
                                o["metadata"]["managedFields"] = mf.clone();
                            }
                        }
                    }
                    Ok(created)
                }
                Some(old) => self.write(&mut inner, info, key, old, applied, status, &no_record),
            };
        }
        let Some(old) = current else {
            return Err(ApiError::not_found(info, name));
        };
        let mut new = old.clone();
        match kind {
            PatchKind::Merge => patch::merge_patch(&mut new, body),
            PatchKind::Strategic => {
                if info.custom {
                    return Err(ApiError::unsupported_media(
                        "strategic merge patch is not supported for custom resources; use --type merge",
                    ));
                }
                patch::strategic_merge(&mut new, body)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?
            }
            PatchKind::Json => patch::json_patch(&mut new, body).map_err(|e| match e {
                patch::PatchError::Failed(m) => ApiError::new(422, "Invalid", m),
                other => ApiError::bad_request(other.to_string()),
            })?,
            PatchKind::Apply => unreachable!("handled above"),
        }
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the patched object is not a JSON object",
            ));
        }
        if meta_str(&new, "name") != Some(name) {
            return Err(ApiError::bad_request(
                "metadata.name may not be changed by a patch",
            ));
        }
        let patched_rv = meta_str(&new, "resourceVersion").unwrap_or("");
        if !patched_rv.is_empty() && Some(patched_rv) != meta_str(&old, "resourceVersion") {
            return Err(ApiError::stale(info, name));
        }
        self.write(&mut inner, info, key, old, new, status, opts)
    }

    pub fn delete(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = Self::key(info, ns, name);
        let old = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(info, name))?;
        if let Some(uid) = &opts.precondition_uid
            && Some(uid.as_str()) != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict(
                info,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid").unwrap_or("")
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && Some(rv.as_str()) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(
                info,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion").unwrap_or("")
                ),
            ));
        }
        if opts.dry_run {
            return Ok(Self::present(info, &old));
        }
        let result = self.delete_locked(&mut inner, key, old, opts.orphan);
        Ok(Self::present(info, &result))
    }

    /// Marks or removes one object, running the cascades; returns its last state.
    fn delete_locked(&self, inner: &mut Inner, key: ObjectKey, old: Value, orphan: bool) -> Value {
        let is_ns = key.group.is_empty() && key.resource == "namespaces";
        let is_crd =
            key.group == "apiextensions.k8s.io" && key.resource == "customresourcedefinitions";
        if finalizers(&old) > 0 || is_ns {
            let mut marked = old.clone();
            if marked.pointer("/metadata/deletionTimestamp").is_none() {
                let meta = meta_mut(&mut marked);
                meta.insert("deletionTimestamp".to_string(), json!(now()));
                meta.insert("deletionGracePeriodSeconds".to_string(), json!(0));
                if is_ns {
                    marked["status"] = json!({"phase": "Terminating"});
                }
                inner.rv += 1;
                meta_mut(&mut marked)
                    .insert("resourceVersion".to_string(), json!(inner.rv.to_string()));
                self.commit(
                    inner,
                    EventType::Modified,
                    key.clone(),
                    marked.clone(),
                    Some(old),
                );
            }
            if is_ns {
                let ns_name = key.name.clone();
                let contents: Vec<(ObjectKey, Value)> = inner
                    .objects
                    .iter()
                    .filter(|(k, o)| {
                        k.namespace == ns_name && o.pointer("/metadata/deletionTimestamp").is_none()
                    })
                    .map(|(k, o)| (k.clone(), o.clone()))
                    .collect();
                for (k, o) in contents {
                    if inner.objects.contains_key(&k) {
                        self.delete_locked(inner, k, o, false);
                    }
                }
                if finalizers(&marked) == 0 && !inner.objects.keys().any(|k| k.namespace == ns_name)
                {
                    inner.rv += 1;
                    meta_mut(&mut marked)
                        .insert("resourceVersion".to_string(), json!(inner.rv.to_string()));
                    self.finalize_removal(inner, key, marked.clone(), None);
                }
            }
            return marked;
        }
        if is_crd && let Ok((gr, _)) = crd_resources(&old) {
            let owned: Vec<(ObjectKey, Value)> = inner
                .objects
                .iter()
                .filter(|(k, _)| k.group == gr.group && k.resource == gr.resource)
                .map(|(k, o)| (k.clone(), o.clone()))
                .collect();
            for (k, o) in owned {
                inner.rv += 1;
                let mut gone = o.clone();
                meta_mut(&mut gone)
                    .insert("resourceVersion".to_string(), json!(inner.rv.to_string()));
                self.commit(inner, EventType::Deleted, k, gone, Some(o));
            }
            inner.registry.remove_crd(&gr);
        }
        inner.rv += 1;
        let mut gone = old.clone();
        meta_mut(&mut gone).insert("resourceVersion".to_string(), json!(inner.rv.to_string()));
        if orphan {
            self.commit(inner, EventType::Deleted, key, gone.clone(), Some(old));
        } else {
            self.finalize_removal(inner, key, gone.clone(), Some(old));
        }
        gone
    }

    /// Removes an object whose deletion is complete, then collects what depended on it.
    fn finalize_removal(&self, inner: &mut Inner, key: ObjectKey, last: Value, old: Option<Value>) {
        let uid = meta_str(&last, "uid").unwrap_or("").to_string();
        let ns = key.namespace.clone();
        self.commit(inner, EventType::Deleted, key, last, old);
        if !uid.is_empty() {
            let dependents: Vec<(ObjectKey, Value)> = inner
                .objects
                .iter()
                .filter(|(_, o)| {
                    o.pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|refs| {
                            refs.iter()
                                .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid.as_str()))
                        })
                })
                .map(|(k, o)| (k.clone(), o.clone()))
                .collect();
            for (k, o) in dependents {
                if o.pointer("/metadata/deletionTimestamp").is_none() {
                    self.delete_locked(inner, k, o, false);
                }
            }
        }
        // A terminating namespace goes once its last object has gone.
        if !ns.is_empty() && !inner.objects.keys().any(|k| k.namespace == ns) {
            let nskey = ObjectKey {
                group: String::new(),
                resource: "namespaces".to_string(),
                namespace: String::new(),
                name: ns,
            };
            if let Some(nso) = inner.objects.get(&nskey).cloned()
                && nso.pointer("/metadata/deletionTimestamp").is_some()
                && finalizers(&nso) == 0
            {
                inner.rv += 1;
                let mut gone = nso.clone();
                meta_mut(&mut gone)
                    .insert("resourceVersion".to_string(), json!(inner.rv.to_string()));
                self.commit(inner, EventType::Deleted, nskey, gone, Some(nso));
            }
        }
    }

    /// DELETE on a collection: deletes every object the query matches.
    pub fn delete_collection(
        &self,
        info: &ResourceInfo,
        q: &ListQuery,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let page = self.list(
            info,
            &ListQuery {
                limit: None,
                continue_token: None,
                ..q.clone()
            },
        )?;
        let mut deleted = Vec::new();
        for item in page.items {
            let ns = meta_str(&item, "namespace").map(str::to_string);
            let name = meta_str(&item, "name").unwrap_or("").to_string();
            match self.delete(info, ns.as_deref(), &name, opts) {
                Ok(v) => deleted.push(v),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json!({
            "kind": info.list_kind(),
            "apiVersion": info.api_version(),
            "metadata": {"resourceVersion": self.resource_version().to_string()},
            "items": deleted,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(store: &Store, g: &str, v: &str, r: &str) -> Arc<ResourceInfo> {
        store.registry().lookup(g, v, r).unwrap()
    }

    fn cm(name: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
    }

    #[test]
    fn create_sets_server_fields_and_conflicts_on_duplicate() {
        let s = Store::new();
        let i = info(&s, "", "v1", "configmaps");
        let o = s
            .create(
                &i,
                Some("default"),
                cm("a", json!({})),
                &WriteOptions::default(),
            )
            .unwrap();
        assert!(o["metadata"]["uid"].as_str().unwrap().len() == 36);
        assert!(o["metadata"]["creationTimestamp"].is_string());
        assert_eq!(o["metadata"]["namespace"], "default");
        let rv: u64 = o["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(rv, s.resource_version());
        let e = s
            .create(
                &i,
                Some("default"),
                cm("a", json!({})),
                &WriteOptions::default(),
            )
            .unwrap_err();
        assert_eq!((e.code, e.reason), (409, "AlreadyExists"));
        let e = s
            .create(
                &i,
                Some("nope"),
                cm("b", json!({})),
                &WriteOptions::default(),
            )
            .unwrap_err();
        assert_eq!((e.code, e.reason), (404, "NotFound"));
        let e = s
            .create(
                &i,
                Some("default"),
                cm("Bad_Name", json!({})),
                &WriteOptions::default(),
            )
            .unwrap_err();
        assert_eq!((e.code, e.reason), (422, "Invalid"));
    }

    #[test]
    fn generation_bumps_on_spec_only_and_stale_updates_conflict() {
        let s = Store::new();
        let i = info(&s, "apps", "v1", "deployments");
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 1}, "status": {"replicas": 5}});
        let o = s
            .create(&i, Some("default"), d, &WriteOptions::default())
            .unwrap();
        assert_eq!(o["metadata"]["generation"], 1);
        assert!(
            o.get("status").is_none(),
            "create drops status with a status subresource"
        );
        let mut u = o.clone();
        u["metadata"]["labels"] = json!({"a": "b"});
        let o2 = s
            .update(
                &i,
                Some("default"),
                "web",
                u,
                false,
                &WriteOptions::default(),
            )
            .unwrap();
        assert_eq!(
            o2["metadata"]["generation"], 1,
            "metadata change keeps generation"
        );
        let mut st = o2.clone();
        st["status"] = json!({"readyReplicas": 1});
        let o3 = s
            .update(
                &i,
                Some("default"),
                "web",
                st,
                true,
                &WriteOptions::default(),
            )
            .unwrap();
        assert_eq!(
            o3["metadata"]["generation"], 1,
            "status change keeps generation"
        );
        assert_eq!(o3["status"]["readyReplicas"], 1);
        let mut sp = o3.clone();
        sp["spec"]["replicas"] = json!(3);
        sp["status"] = json!({"ignored": true});
        let o4 = s
            .update(
                &i,
                Some("default"),
                "web",
                sp,
                false,
                &WriteOptions::default(),
            )
            .unwrap();
        assert_eq!(o4["metadata"]["generation"], 2);
        assert_eq!(
            o4["status"],
            json!({"readyReplicas": 1}),
            "main writes leave status alone"
        );
        let e = s
            .update(
                &i,
                Some("default"),
                "web",
                o3,
                false,
                &WriteOptions::default(),
            )
            .unwrap_err();
        assert_eq!((e.code, e.reason), (409, "Conflict"));
    }

    #[test]
    fn noop_update_keeps_resource_version() {
        let s = Store::new();
        let i = info(&s, "", "v1", "configmaps");
        let o = s
            .create(
                &i,
                Some("default"),
                cm("a", json!({})),
                &WriteOptions::default(),
            )
            .unwrap();
        let o2 = s
            .update(
                &i,
                Some("default"),
                "a",
                o.clone(),
                false,
                &WriteOptions::default(),
            )
            .unwrap();
        assert_eq!(
            o["metadata"]["resourceVersion"],
            o2["metadata"]["resourceVersion"]
        );
    }

    #[test]
    fn pagination_is_stable_under_writes() {
        let s = Store::new();
        let i = info(&s, "", "v1", "configmaps");
        for n in 0..7 {
            s.create(
                &i,
                Some("default"),
                cm(&format!("c{n}"), json!({})),
                &WriteOptions::default(),
            )
            .unwrap();
        }
        let q = ListQuery {
            limit: Some(3),
            ..ListQuery::default()
        };
        let p1 = s.list(&i, &q).unwrap();
        assert_eq!(p1.items.len(), 3);
        assert_eq!(p1.remaining, Some(4));
        // Writes between pages do not show: later pages come from the first page's snapshot.
        s.delete(&i, Some("default"), "c5", &DeleteOptions::default())
            .unwrap();
        s.create(
            &i,
            Some("default"),
            cm("c9", json!({})),
            &WriteOptions::default(),
        )
        .unwrap();
        s.patch(
            &i,
            Some("default"),
            "c4",
            PatchKind::Merge,
            &json!({"data": {"k": "new"}}),
            false,
            &WriteOptions::default(),
        )
        .unwrap();
        let mut items = p1.items.clone();
        let mut token = p1.continue_token;
        while let Some(t) = token {
            let p = s
                .list(
                    &i,
                    &ListQuery {
                        continue_token: Some(t),
                        ..q.clone()
                    },
                )
                .unwrap();
            assert_eq!(p.resource_version, p1.resource_version);
            items.extend(p.items);
            token = p.continue_token;
        }
        let names: Vec<&str> = items
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]);
        assert_eq!(items[4]["data"]["k"], "v", "c4 as it was at the snapshot");
        // A fresh list sees the writes.
        let fresh = s.list(&i, &ListQuery::default()).unwrap();
        let names: Vec<&str> = fresh
            .items
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["c0", "c1", "c2", "c3", "c4", "c6", "c9"]);
        assert!(
            s.list(
                &i,
                &ListQuery {
                    continue_token: Some("!!".into()),
                    ..q
                }
            )
            .is_err()
        );
    }

    #[test]
    fn list_filters_by_labels_and_namespace() {
        let s = Store::new();
        let i = info(&s, "", "v1", "configmaps");
        s.create(
            &i,
            Some("default"),
            cm("a", json!({"app": "x"})),
            &WriteOptions::default(),
        )
        .unwrap();
        s.create(
            &i,
            Some("kube-system"),
            cm("b", json!({"app": "x"})),
            &WriteOptions::default(),
        )
        .unwrap();
        s.create(
            &i,
            Some("default"),
            cm("c", json!({"app": "y"})),
            &WriteOptions::default(),
        )
        .unwrap();
        let all = ListQuery {
            labels: LabelSelector::parse("app=x").unwrap(),
            ..ListQuery::default()
        };
        assert_eq!(s.list(&i, &all).unwrap().items.len(), 2);
        let one = ListQuery {
            namespace: Some("default".into()),
            ..all
        };
        assert_eq!(s.list(&i, &one).unwrap().items.len(), 1);
    }

    #[test]
    fn finalizers_hold_deletion_and_namespace_cascades() {
        let s = Store::new();
        let nsi = info(&s, "", "v1", "namespaces");
        let i = info(&s, "", "v1", "configmaps");
        s.create(
            &nsi,
            None,
            json!({"metadata": {"name": "team"}}),
            &WriteOptions::default(),
        )
        .unwrap();
        let mut held = cm("held", json!({}));
        held["metadata"]["finalizers"] = json!(["example.com/hold"]);
        s.create(&i, Some("team"), held, &WriteOptions::default())
            .unwrap();
        s.create(
            &i,
            Some("team"),
            cm("plain", json!({})),
            &WriteOptions::default(),
        )
        .unwrap();
        let ns = s
            .delete(&nsi, None, "team", &DeleteOptions::default())
            .unwrap();
        assert_eq!(ns["status"]["phase"], "Terminating");
        assert!(s.get(&i, Some("team"), "plain").is_err());
        let h = s.get(&i, Some("team"), "held").unwrap();
        assert!(h["metadata"]["deletionTimestamp"].is_string());
        assert!(
            s.get(&nsi, None, "team").is_ok(),
            "namespace waits for its last object"
        );
        let e = s
            .create(
                &i,
                Some("team"),
                cm("new", json!({})),
                &WriteOptions::default(),
            )
            .unwrap_err();
        assert_eq!(e.code, 403);
        let mut release = h.clone();
        release["metadata"]["finalizers"] = json!([]);
        s.update(
            &i,
            Some("team"),
            "held",
            release,
            false,
            &WriteOptions::default(),
        )
        .unwrap();
        assert!(s.get(&i, Some("team"), "held").is_err());
        assert!(s.get(&nsi, None, "team").is_err());
    }

    #[test]
    fn crd_lifecycle_serves_and_removes_kinds() {
        let s = Store::new();
        let crdi = info(
            &s,
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
        );
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true}]}});
        let o = s
            .create(&crdi, None, crd, &WriteOptions::default())
            .unwrap();
        assert_eq!(o["status"]["conditions"][1]["type"], "Established");
        let wi = info(&s, "example.com", "v1", "widgets");
        let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"a": 1}});
        let created = s
            .create(&wi, Some("default"), w, &WriteOptions::default())
            .unwrap();
        let mut no_rv = created.clone();
        no_rv["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        let e = s
            .update(
                &wi,
                Some("default"),
                "w",
                no_rv,
                false,
                &WriteOptions::default(),
            )
            .unwrap_err();
        assert_eq!(e.code, 422, "custom resources refuse unconditional updates");
        s.delete(
            &crdi,
            None,
            "widgets.example.com",
            &DeleteOptions::default(),
        )
        .unwrap();
        assert!(
            s.registry()
                .lookup("example.com", "v1", "widgets")
                .is_none()
        );
        assert!(s.dump().iter().all(|(k, _)| k.group != "example.com"));
    }

    #[test]
    fn owner_references_cascade() {
        let s = Store::new();
        let i = info(&s, "", "v1", "configmaps");
        let owner = s
            .create(
                &i,
                Some("default"),
                cm("owner", json!({})),
                &WriteOptions::default(),
            )
            .unwrap();
        let mut dep = cm("dep", json!({}));
        dep["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap",
            "name": "owner", "uid": owner["metadata"]["uid"]}]);
        s.create(&i, Some("default"), dep, &WriteOptions::default())
            .unwrap();
        s.delete(&i, Some("default"), "owner", &DeleteOptions::default())
            .unwrap();
        assert!(s.get(&i, Some("default"), "dep").is_err());
    }

    #[test]
    fn watch_replays_from_resource_version() {
        let s = Store::new();
        let i = info(&s, "", "v1", "configmaps");
        let o = s
            .create(
                &i,
                Some("default"),
                cm("a", json!({})),
                &WriteOptions::default(),
            )
            .unwrap();
        let rv: u64 = o["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        s.patch(
            &i,
            Some("default"),
            "a",
            PatchKind::Merge,
            &json!({"data": {"k": "2"}}),
            false,
            &WriteOptions::default(),
        )
        .unwrap();
        let (start, _rx, _) = s.watch(&i, &ListQuery::default(), Some(rv)).unwrap();
        match start {
            WatchStart::Replay(evs) => {
                let kinds: Vec<_> = evs
                    .iter()
                    .filter(|e| e.key.resource == "configmaps")
                    .map(|e| e.kind)
                    .collect();
                assert_eq!(kinds, [EventType::Modified]);
            }
            WatchStart::Current(_) => panic!("expected a replay"),
        }
    }

    #[test]
    fn dry_run_stores_nothing() {
        let s = Store::new();
        let i = info(&s, "", "v1", "configmaps");
        let rv = s.resource_version();
        let opts = WriteOptions {
            dry_run: true,
            ..WriteOptions::default()
        };
        s.create(&i, Some("default"), cm("a", json!({})), &opts)
            .unwrap();
        assert!(s.get(&i, Some("default"), "a").is_err());
        assert_eq!(s.resource_version(), rv);
    }
}
