//! The HTTP surface: discovery, CRUD, patch, watch and Table output, routed the way
//! kube-apiserver lays out its paths.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiError;
use crate::openapi;
use crate::patch::PatchKind;
use crate::resources::{Registry, ResourceInfo};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{
    ChangeEvent, DeleteOptions, EventType, ListQuery, Store, WatchStart, WriteOptions,
};
use crate::table;

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);
/// Server-side cap on a watch without `timeoutSeconds`.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// State shared by all requests.
pub(crate) struct App {
    pub store: Store,
    pub git_version: String,
    pub token: Option<String>,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// What `pods/log` answers, filled by the workloads controller.
    pub logs: crate::controllers::PodLogs,
}

fn json_response(code: u16, v: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, v.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(uri: &Uri) -> Self {
        Query(
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    fn strict(&self) -> Result<bool, ApiError> {
        match self.get("fieldValidation") {
            None | Some("" | "Ignore" | "Warn") => Ok(false),
            Some("Strict") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }

    fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dryRun value {other:?}: supported values: \"All\""
            ))),
        }
    }
}

impl table::QueryLike for Query {
    fn param(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
}

/// Orders versions the way Kubernetes prefers them: GA > beta > alpha, higher numbers first.
fn version_priority(v: &str) -> (u8, u32, u32, String) {
    let parse = || -> Option<(u8, u32, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u32 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((3, major, 0));
        }
        let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
            (2, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (1, n)
        } else {
            return None;
        };
        Some((level, major, num.parse().ok()?))
    };
    match parse() {
        Some((l, ma, mi)) => (l, ma, mi, String::new()),
        None => (0, 0, 0, v.to_string()),
    }
}

fn sorted_versions(mut versions: Vec<String>) -> Vec<String> {
    versions.sort_by(|a, b| {
        let (pa, pb) = (version_priority(a), version_priority(b));
        (pb.0, pb.1, pb.2)
            .cmp(&(pa.0, pa.1, pa.2))
            .then_with(|| pa.3.cmp(&pb.3))
    });
    versions
}

fn api_group(name: &str, versions: &[String]) -> Value {
    let gv = |v: &String| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({
        "name": name,
        "versions": versions.iter().map(gv).collect::<Vec<_>>(),
        "preferredVersion": gv(&versions[0]),
    })
}

fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let verbs = json!([
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch"
    ]);
    let mut resources = Vec::new();
    for r in reg.in_group_version(group, version) {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        if r.has_status {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.has_scale {
            resources.push(json!({
                "name": format!("{}/scale", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.group.is_empty() && r.plural == "pods" {
            // kubectl drain looks for this to use evictions.
            resources.push(json!({
                "name": "pods/eviction",
                "singularName": "",
                "namespaced": true,
                "group": "policy",
                "version": "v1",
                "kind": "Eviction",
                "verbs": ["create"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

/// The aggregated discovery version a request prefers (`v2` or `v2beta1`), if it asks for
/// aggregated discovery before plain JSON.
fn aggregated_version(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    for choice in accept.split(',') {
        let params: Vec<&str> = choice.split(';').map(str::trim).collect();
        if params.first() != Some(&"application/json") {
            continue;
        }
        if !params.contains(&"as=APIGroupDiscoveryList") {
            return None;
        }
        if !params.contains(&"g=apidiscovery.k8s.io") {
            continue;
        }
        if params.contains(&"v=v2") {
            return Some("v2");
        }
        if params.contains(&"v=v2beta1") {
            return Some("v2beta1");
        }
    }
    None
}

/// `APIGroupDiscoveryList` (apidiscovery.k8s.io): every group, version and resource in one
/// document, as kube-apiserver serves it on `/api` (core) and `/apis` (named groups).
fn aggregated_discovery(reg: &Registry, core: bool, api_version: &str) -> Value {
    let verbs = json!([
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch"
    ]);
    let sub_verbs = json!(["get", "patch", "update"]);
    let items: Vec<Value> = reg
        .groups()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = sorted_versions(versions)
                .into_iter()
                .map(|v| {
                    let resources: Vec<Value> = reg
                        .in_group_version(&group, &v)
                        .map(|r| {
                            let mut subs = Vec::new();
                            if r.has_status {
                                subs.push(json!({"subresource": "status",
                                    "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                                    "verbs": sub_verbs}));
                            }
                            if r.has_scale {
                                subs.push(json!({"subresource": "scale",
                                    "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                                    "verbs": sub_verbs}));
                            }
                            if r.group.is_empty() && r.plural == "pods" {
                                subs.push(json!({"subresource": "eviction",
                                    "responseKind": {"group": "policy", "version": "v1", "kind": "Eviction"},
                                    "verbs": ["create"]}));
                            }
                            let mut e = json!({
                                "resource": r.plural,
                                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": r.singular,
                                "verbs": verbs,
                            });
                            if !r.short_names.is_empty() {
                                e["shortNames"] = json!(r.short_names);
                            }
                            if !r.categories.is_empty() {
                                e["categories"] = json!(r.categories);
                            }
                            if !subs.is_empty() {
                                e["subresources"] = json!(subs);
                            }
                            e
                        })
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{api_version}"),
        "metadata": {},
        "items": items,
    })
}

fn version_info(git_version: &str) -> Value {
    let core = git_version.trim_start_matches('v');
    let mut parts = core.split(['.', '+', '-']);
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("0");
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.4",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// What a resource path names.
struct Target {
    info: Arc<ResourceInfo>,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn resolve(reg: &Registry, group: &str, version: &str, segs: &[&str]) -> Result<Target, ApiError> {
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let lookup = |plural: &str| reg.lookup(group, version, plural);
    // namespaces/{ns}/{resource}[/{name}[/{sub}]] when {resource} is a namespaced kind.
    if segs.len() >= 3
        && segs[0] == "namespaces"
        && let Some(info) = lookup(segs[2]).filter(|i| i.namespaced)
    {
        if segs.len() > 5 {
            return Err(not_found());
        }
        return Ok(Target {
            info,
            namespace: Some(segs[1].to_string()),
            name: segs.get(3).map(|s| s.to_string()),
            subresource: segs.get(4).map(|s| s.to_string()),
        });
    }
    if segs.is_empty() || segs.len() > 3 {
        return Err(not_found());
    }
    let info = lookup(segs[0]).ok_or_else(not_found)?;
    Ok(Target {
        info,
        namespace: None,
        name: segs.get(1).map(|s| s.to_string()),
        subresource: segs.get(2).map(|s| s.to_string()),
    })
}

fn parse_body(body: &[u8], yaml_ok: bool) -> Result<Value, ApiError> {
    if body.starts_with(crate::protobuf::MAGIC) {
        return crate::protobuf::decode(body)
            .map_err(|e| ApiError::unsupported_media(e.to_string()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(e) if yaml_ok => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
            crate::fixture::parse_yaml(text)
                .map_err(|m| ApiError::bad_request(format!("error decoding YAML: {m} (JSON: {e})")))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "error decoding the request body: {e}"
        ))),
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string()
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .next()
                .is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"))
        })
}

/// The field manager of a write: the query parameter, else the user agent's program name.
fn field_manager(q: &Query, headers: &HeaderMap) -> Option<String> {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        return Some(m.to_string());
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.split('/').next().unwrap_or(ua).to_string())
        .filter(|m| !m.is_empty())
}

fn list_query(q: &Query, ns: Option<String>) -> Result<ListQuery, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let limit = match q.get("limit") {
        None | Some("") => None,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n > 0 => Some(n as usize),
            Ok(_) => None,
            Err(_) => return Err(ApiError::bad_request(format!("invalid limit {l:?}"))),
        },
    };
    Ok(ListQuery {
        namespace: ns,
        labels,
        fields,
        limit,
        continue_token: q
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
    })
}

pub(crate) async fn handle(
    app: Arc<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match route(&app, &method, &uri, &headers, &body) {
        Ok(Reply::Json(code, v)) => json_response(code, &v),
        Ok(Reply::Typed(content_type, v)) => {
            let mut resp = json_response(200, &v);
            if let Ok(ct) = HeaderValue::from_str(&content_type) {
                resp.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            resp
        }
        Ok(Reply::Text(t)) => (StatusCode::OK, t).into_response(),
        Ok(Reply::Plain(t)) => {
            let mut resp = (StatusCode::OK, t).into_response();
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            resp
        }
        Ok(Reply::Watch(w)) => watch_response(&app, *w),
        Err(e) => error_response(&e),
    }
}

enum Reply {
    Json(u16, Value),
    /// 200 with a content type other than plain JSON (aggregated discovery).
    Typed(String, Value),
    Text(&'static str),
    /// `pods/log`.
    Plain(String),
    Watch(Box<WatchRequest>),
}

struct WatchRequest {
    info: Arc<ResourceInfo>,
    query: ListQuery,
    start: WatchStart,
    rx: tokio::sync::broadcast::Receiver<Arc<ChangeEvent>>,
    bookmarks: bool,
    initial_end_bookmark: bool,
    timeout: Duration,
    /// Table output: each event's object is a one-row Table (the value is `includeObject`).
    table: Option<String>,
    /// The store's resourceVersion when the starting point was taken.
    start_rv: u64,
}

fn route(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Reply, ApiError> {
    let path = uri.path().trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let q = Query::parse(uri);
    let reg = app.store.registry();
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let read_only = |r: Reply| {
        if method == Method::GET {
            Ok(r)
        } else {
            Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method} {path})"
            )))
        }
    };
    match segs.as_slice() {
        ["healthz"] | ["livez"] | ["readyz"] => read_only(Reply::Text("ok")),
        ["version"] => read_only(Reply::Json(200, version_info(&app.git_version))),
        ["api"] | ["apis"] if aggregated_version(headers).is_some() => {
            let v = aggregated_version(headers).unwrap_or("v2");
            let list = aggregated_discovery(&reg, segs[0] == "api", v);
            read_only(Reply::Typed(
                format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"),
                list,
            ))
        }
        ["api"] => read_only(Reply::Json(
            200,
            json!({"kind": "APIVersions", "versions": ["v1"],
                   "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}),
        )),
        ["apis"] => {
            let groups: Vec<Value> = reg
                .groups()
                .into_iter()
                .filter(|(g, _)| !g.is_empty())
                .map(|(g, vs)| api_group(&g, &sorted_versions(vs)))
                .collect();
            read_only(Reply::Json(
                200,
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            ))
        }
        ["api", "v1"] => read_only(Reply::Json(
            200,
            resource_list(&reg, "", "v1").unwrap_or(json!({})),
        )),
        ["apis", group] => {
            let versions = reg
                .groups()
                .into_iter()
                .find(|(g, _)| g == group)
                .map(|(_, vs)| sorted_versions(vs))
                .ok_or_else(|| {
                    ApiError::new(
                        404,
                        "NotFound",
                        "the server could not find the requested resource",
                    )
                })?;
            let mut g = api_group(group, &versions);
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            read_only(Reply::Json(200, g))
        }
        ["apis", group, version] => {
            let list = resource_list(&reg, group, version).ok_or_else(|| {
                ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )
            })?;
            read_only(Reply::Json(200, list))
        }
        ["openapi", "v3"] => read_only(Reply::Json(200, openapi::root(&reg, &app.git_version))),
        ["openapi", "v3", "api", version] => read_only(Reply::Json(
            200,
            openapi::gv_document(&reg, "", version, &app.git_version).ok_or_else(not_found)?,
        )),
        ["openapi", "v3", "apis", group, version] => read_only(Reply::Json(
            200,
            openapi::gv_document(&reg, group, version, &app.git_version).ok_or_else(not_found)?,
        )),
        ["api", "v1", rest @ ..] => {
            resource_request(app, &reg, "", "v1", rest, method, &q, headers, body)
        }
        ["apis", group, version, rest @ ..] => {
            resource_request(app, &reg, group, version, rest, method, &q, headers, body)
        }
        _ => Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )),
    }
}

/// `pods/log`: the text the workloads controller recorded for the pod (empty when none).
fn pod_log(
    app: &App,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    q: &Query,
) -> Result<String, ApiError> {
    let pod = app.store.get(info, Some(ns), name)?;
    let containers: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let container = match q.get("container") {
        Some(c) if containers.contains(&c) => c,
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if containers.len() == 1 => containers[0],
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    if matches!(phase, None | Some("Pending")) {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    }
    let text = app.logs.get(ns, name).unwrap_or_default();
    let Some(tail) = q.get("tailLines") else {
        return Ok(text);
    };
    let n: usize = tail
        .parse()
        .map_err(|_| ApiError::bad_request(format!("tailLines: invalid value {tail:?}")))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn resource_request(
    app: &App,
    reg: &Registry,
    group: &str,
    version: &str,
    segs: &[&str],
    method: &Method,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Reply, ApiError> {
    let t = resolve(reg, group, version, segs)?;
    let info = t.info.clone();
    let store = &app.store;
    let ns = t.namespace.as_deref();
    if t.subresource.as_deref() == Some("scale")
        && info.has_scale
        && let Some(name) = t.name.as_deref()
    {
        return scale_request(app, &info, ns, name, method, q, headers, body);
    }
    if t.subresource.as_deref() == Some("log")
        && info.group.is_empty()
        && info.plural == "pods"
        && let Some(name) = t.name.as_deref()
    {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method} pods/log)"
            )));
        }
        return pod_log(app, &info, ns.unwrap_or("default"), name, q).map(Reply::Plain);
    }
    if t.subresource.as_deref() == Some("eviction")
        && info.group.is_empty()
        && info.plural == "pods"
        && let Some(name) = t.name.as_deref()
    {
        if method != Method::POST {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method} pods/eviction)"
            )));
        }
        return evict(app, reg, &info, ns.unwrap_or("default"), name, q, body);
    }
    let status = match t.subresource.as_deref() {
        None => false,
        Some("status") if info.has_status => true,
        Some(sub) => {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!(
                    "the server could not find the requested resource ({sub} of {})",
                    info.plural
                ),
            ));
        }
    };
    let table = wants_table(headers);
    match (method.as_str(), t.name.as_deref()) {
        ("GET", None) => {
            let lq = list_query(q, t.namespace.clone())?;
            if q.flag("watch") {
                return start_watch(app, &info, lq, q, table);
            }
            let page = store.list(&info, &lq)?;
            if table {
                return Ok(Reply::Json(200, table::table(&info, &page, q)));
            }
            let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
            if let Some(c) = &page.continue_token {
                meta["continue"] = json!(c);
            }
            if let Some(n) = page.remaining {
                meta["remainingItemCount"] = json!(n);
            }
            Ok(Reply::Json(
                200,
                json!({"kind": info.list_kind(), "apiVersion": info.api_version(),
                       "metadata": meta, "items": page.items}),
            ))
        }
        ("GET", Some(name)) => {
            if q.flag("watch") {
                let mut lq = list_query(q, t.namespace.clone())?;
                lq.fields = FieldSelector::parse(&format!("metadata.name={name}"))
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                return start_watch(app, &info, lq, q, table);
            }
            let obj = store.get(&info, ns, name)?;
            if table {
                return Ok(Reply::Json(200, table::table_one(&info, obj, q)));
            }
            Ok(Reply::Json(200, obj))
        }
        ("POST", None) => {
            if status {
                return Err(ApiError::method_not_allowed(
                    "POST is not allowed on status",
                ));
            }
            let obj = parse_body(body, true)?;
            let opts = WriteOptions {
                dry_run: q.dry_run()?,
                field_manager: field_manager(q, headers),
                force: false,
                strict_fields: q.strict()?,
            };
            let created = store.create(&info, ns, obj, &opts)?;
            Ok(Reply::Json(201, created))
        }
        ("PUT", Some(name)) => {
            let obj = parse_body(body, true)?;
            let opts = WriteOptions {
                dry_run: q.dry_run()?,
                field_manager: field_manager(q, headers),
                force: false,
                strict_fields: q.strict()?,
            };
            Ok(Reply::Json(
                200,
                store.update(&info, ns, name, obj, status, &opts)?,
            ))
        }
        ("PATCH", Some(name)) => {
            let kind = PatchKind::from_content_type(&content_type(headers))
                .map_err(|e| ApiError::unsupported_media(e.to_string()))?;
            let patch = parse_body(body, kind == PatchKind::Apply)?;
            let force = match q.get("force") {
                None => false,
                Some("true") if kind == PatchKind::Apply => true,
                Some("false") => false,
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "force is only allowed with application/apply-patch+yaml",
                    ));
                }
            };
            let opts = WriteOptions {
                dry_run: q.dry_run()?,
                field_manager: field_manager(q, headers),
                force,
                strict_fields: q.strict()?,
            };
            let existed = store.get(&info, ns, name).is_ok();
            let out = store.patch(&info, ns, name, kind, &patch, status, &opts)?;
            Ok(Reply::Json(if existed { 200 } else { 201 }, out))
        }
        ("DELETE", name) => {
            let mut opts = DeleteOptions {
                dry_run: q.dry_run()?,
                ..DeleteOptions::default()
            };
            if q.get("propagationPolicy") == Some("Orphan") {
                opts.orphan = true;
            }
            if !body.is_empty() {
                let d = parse_body(body, false)?;
                if d.get("dryRun")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|x| x == "All"))
                {
                    opts.dry_run = true;
                }
                if d.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan")
                    || d.get("orphanDependents").and_then(Value::as_bool) == Some(true)
                {
                    opts.orphan = true;
                }
                opts.precondition_uid = d
                    .pointer("/preconditions/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                opts.precondition_rv = d
                    .pointer("/preconditions/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            match name {
                Some(name) if !status => {
                    Ok(Reply::Json(200, store.delete(&info, ns, name, &opts)?))
                }
                None => {
                    let lq = list_query(q, t.namespace.clone())?;
                    Ok(Reply::Json(
                        200,
                        store.delete_collection(&info, &lq, &opts)?,
                    ))
                }
                Some(_) => Err(ApiError::method_not_allowed(
                    "DELETE is not allowed on status",
                )),
            }
        }
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}

/// The autoscaling/v1 Scale view of an object with `spec.replicas`.
/// `POST pods/NAME/eviction`: the pod is deleted unless a
/// PodDisruptionBudget selecting it allows no disruption, which is answered
/// 429 as the real API server does (kubectl drain and upkeep retry then).
/// A budget allows `healthy - minAvailable` disruptions, or `maxUnavailable`
/// minus the pods it selects that are not running; percentages are read as
/// their share of the selected pods, rounded up as Kubernetes does.
fn evict(
    app: &App,
    reg: &Registry,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    q: &Query,
    body: &Bytes,
) -> Result<Reply, ApiError> {
    let eviction = parse_body(body, true)?;
    if eviction.get("kind").and_then(Value::as_str) != Some("Eviction") {
        return Err(ApiError::bad_request(
            "the body of pods/eviction must be an Eviction",
        ));
    }
    if let Some(n) = eviction.pointer("/metadata/name").and_then(Value::as_str)
        && n != name
    {
        return Err(ApiError::bad_request(format!(
            "name in URL does not match name in Eviction object ({n} != {name})"
        )));
    }
    let store = &app.store;
    let pod = store.get(info, Some(ns), name)?;
    if let Some(pdbs) = reg.lookup("policy", "v1", "poddisruptionbudgets") {
        let budgets = store.list(
            &pdbs,
            &ListQuery {
                namespace: Some(ns.to_string()),
                ..ListQuery::default()
            },
        )?;
        let pods = store.list(
            info,
            &ListQuery {
                namespace: Some(ns.to_string()),
                ..ListQuery::default()
            },
        )?;
        for pdb in &budgets.items {
            let sel = LabelSelector::from_object(pdb.pointer("/spec/selector"))
                .map_err(ApiError::bad_request)?;
            if !sel.matches(&pod) {
                continue;
            }
            let selected: Vec<&Value> = pods.items.iter().filter(|p| sel.matches(p)).collect();
            let total = selected.len() as i64;
            let healthy = selected
                .iter()
                .filter(|p| p.pointer("/status/phase").and_then(Value::as_str) == Some("Running"))
                .count() as i64;
            let count = |v: &Value| -> i64 {
                match v {
                    Value::Number(n) => n.as_i64().unwrap_or(0),
                    Value::String(s) => s
                        .strip_suffix('%')
                        .and_then(|p| p.parse::<i64>().ok())
                        .map_or(0, |p| (p * total + 99) / 100),
                    _ => 0,
                }
            };
            let allowed = match (
                pdb.pointer("/spec/minAvailable"),
                pdb.pointer("/spec/maxUnavailable"),
            ) {
                (Some(min), _) => healthy - count(min),
                (None, Some(max)) => count(max) - (total - healthy),
                (None, None) => 1,
            };
            if allowed < 1 {
                let pdb_name = pdb
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                return Err(ApiError::new(
                    429,
                    "TooManyRequests",
                    format!(
                        "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {pdb_name} needs {} healthy pods and has {healthy} currently",
                        healthy - allowed + 1
                    ),
                ));
            }
        }
    }
    let dry_run = q.dry_run()?;
    store.delete(
        info,
        Some(ns),
        name,
        &DeleteOptions {
            dry_run,
            ..DeleteOptions::default()
        },
    )?;
    Ok(Reply::Json(
        201,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

fn to_scale(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    let pick: serde_json::Map<String, Value> = [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ]
    .iter()
    .filter_map(|k| meta.get(*k).map(|v| (k.to_string(), v.clone())))
    .collect();
    let selector: Vec<String> = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": pick,
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector.join(","),
        },
    })
}

#[allow(clippy::too_many_arguments)]
fn scale_request(
    app: &App,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    method: &Method,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Reply, ApiError> {
    let store = &app.store;
    let current = to_scale(&store.get(info, ns, name)?);
    let wanted = match method.as_str() {
        "GET" => return Ok(Reply::Json(200, current)),
        "PUT" => parse_body(body, true)?,
        "PATCH" => {
            let kind = PatchKind::from_content_type(&content_type(headers))
                .map_err(|e| ApiError::unsupported_media(e.to_string()))?;
            let patch = parse_body(body, false)?;
            let mut scale = current.clone();
            match kind {
                PatchKind::Merge => crate::patch::merge_patch(&mut scale, &patch),
                PatchKind::Strategic => crate::patch::strategic_merge(&mut scale, &patch)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
                PatchKind::Json => crate::patch::json_patch(&mut scale, &patch)
                    .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?,
                PatchKind::Apply => {
                    return Err(ApiError::unsupported_media(
                        "apply is not supported on scale",
                    ));
                }
            }
            scale
        }
        m => {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({m} scale)"
            )));
        }
    };
    let replicas = wanted
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::invalid(
                info,
                name,
                &[(
                    "spec.replicas".to_string(),
                    "Invalid value: must be a non-negative integer".to_string(),
                )],
            )
        })?;
    let mut patch = json!({"spec": {"replicas": replicas}});
    if let Some(rv) = wanted
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    let opts = WriteOptions {
        dry_run: q.dry_run()?,
        field_manager: field_manager(q, headers),
        force: false,
        strict_fields: q.strict()?,
    };
    let updated = store.patch(info, ns, name, PatchKind::Merge, &patch, false, &opts)?;
    Ok(Reply::Json(200, to_scale(&updated)))
}

fn start_watch(
    app: &App,
    info: &Arc<ResourceInfo>,
    query: ListQuery,
    q: &Query,
    table: bool,
) -> Result<Reply, ApiError> {
    let since = match q.get("resourceVersion") {
        None | Some("") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let send_initial = q.flag("sendInitialEvents");
    let bookmarks = q.flag("allowWatchBookmarks");
    if send_initial && !bookmarks {
        return Err(ApiError::invalid(
            info,
            "",
            &[(
                "allowWatchBookmarks".to_string(),
                "Required value: allowWatchBookmarks must be set to true when sendInitialEvents is set".to_string(),
            )],
        ));
    }
    let since = if send_initial { None } else { since };
    let (start, rx, start_rv) = app.store.watch(info, &query, since)?;
    let timeout = match q.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        ),
        None => DEFAULT_WATCH_TIMEOUT,
    };
    Ok(Reply::Watch(Box::new(WatchRequest {
        info: info.clone(),
        query,
        start,
        rx,
        bookmarks,
        initial_end_bookmark: send_initial,
        timeout,
        table: table.then(|| q.get("includeObject").unwrap_or("Metadata").to_string()),
        start_rv,
    })))
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// Translates a store event into what this watch sees: objects entering or leaving the
/// selector show up as ADDED or DELETED, as in the real watch cache.
fn translate(req: &WatchRequest, ev: &ChangeEvent) -> Option<Bytes> {
    let (info, q) = (&*req.info, &req.query);
    if ev.key.group != info.group || ev.key.resource != info.plural {
        return None;
    }
    let now = q.matches(&ev.object);
    let before = ev.old.as_ref().is_some_and(|o| q.matches(o));
    let kind = match ev.kind {
        EventType::Added if now => "ADDED",
        EventType::Modified if now && before => "MODIFIED",
        EventType::Modified if now => "ADDED",
        EventType::Modified if before => "DELETED",
        EventType::Deleted if now || before => "DELETED",
        _ => return None,
    };
    Some(event_object(req, kind, &ev.object))
}

fn event_object(req: &WatchRequest, kind: &str, obj: &Value) -> Bytes {
    let obj = Store::present(&req.info, obj);
    match &req.table {
        Some(include) => event_line(kind, &table::table_rows(&req.info, vec![obj], include)),
        None => event_line(kind, &obj),
    }
}

fn bookmark(info: &ResourceInfo, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": meta}),
    )
}

struct WatchState {
    req: WatchRequest,
    queue: VecDeque<Bytes>,
    last_rv: u64,
    deadline: tokio::time::Instant,
    next_bookmark: tokio::time::Instant,
    shutdown: tokio::sync::watch::Receiver<bool>,
    done: bool,
}

fn watch_response(app: &App, mut req: WatchRequest) -> Response {
    let mut queue = VecDeque::new();
    let last_rv = req.start_rv;
    match std::mem::replace(&mut req.start, WatchStart::Replay(Vec::new())) {
        WatchStart::Current(objects) => {
            for o in &objects {
                queue.push_back(event_object(&req, "ADDED", o));
            }
            if req.initial_end_bookmark {
                queue.push_back(bookmark(&req.info, last_rv, true));
            }
        }
        WatchStart::Replay(events) => {
            for ev in &events {
                if let Some(line) = translate(&req, ev) {
                    queue.push_back(line);
                }
            }
        }
    }
    let now = tokio::time::Instant::now();
    let state = WatchState {
        deadline: now + req.timeout,
        next_bookmark: now + BOOKMARK_EVERY,
        req,
        queue,
        last_rv,
        shutdown: app.shutdown.clone(),
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(b) = st.queue.pop_front() {
                return Some((Ok::<Bytes, Infallible>(b), st));
            }
            if st.done || *st.shutdown.borrow() {
                return None;
            }
            tokio::select! {
                ev = st.req.rx.recv() => match ev {
                    Ok(ev) => {
                        // Events already replayed or older than the start are skipped.
                        if ev.resource_version <= st.last_rv {
                            continue;
                        }
                        st.last_rv = ev.resource_version;
                        if let Some(line) = translate(&st.req, &ev) {
                            st.queue.push_back(line);
                        }
                    }
                    // A watcher that falls behind is closed; clients re-list and re-watch.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => st.done = true,
                },
                _ = tokio::time::sleep_until(st.deadline) => st.done = true,
                _ = tokio::time::sleep_until(st.next_bookmark), if st.req.bookmarks => {
                    st.next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
                    st.queue.push_back(bookmark(&st.req.info, st.last_rv, false));
                }
                _ = st.shutdown.changed() => st.done = true,
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_by_kubernetes_priority() {
        let v = sorted_versions(
            ["v2beta1", "v1", "v2", "v1alpha1", "v2beta2", "foo"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        assert_eq!(v, ["v2", "v1", "v2beta2", "v2beta1", "v1alpha1", "foo"]);
    }

    #[test]
    fn resolve_distinguishes_namespace_paths() {
        let reg = Registry::builtin();
        let t = resolve(&reg, "", "v1", &["namespaces", "a", "pods", "p", "status"]).unwrap();
        assert_eq!(
            (
                t.info.plural.as_str(),
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("pods", Some("a"), Some("p"), Some("status"))
        );
        let t = resolve(&reg, "", "v1", &["namespaces", "a", "status"]).unwrap();
        assert_eq!(
            (
                t.info.plural.as_str(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("namespaces", Some("a"), Some("status"))
        );
        assert!(resolve(&reg, "", "v1", &["gizmos"]).is_err());
    }
}
