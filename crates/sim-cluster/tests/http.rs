//! The in-process handle over real HTTP: watch semantics, paging, and Status errors as a
//! generic client (kube-rs, client-go) sees them.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use sim_cluster::{ServeConfig, SimCluster, Store};

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

struct Fixture {
    cluster: SimCluster,
    client: HttpClient,
    _dir: tempfile::TempDir,
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cluster = SimCluster::start(Store::new(), ServeConfig::new(dir.path().join("kc")))
        .await
        .unwrap();
    assert!(cluster.kubeconfig_path().is_file());
    let client = Client::builder(TokioExecutor::new()).build_http();
    Fixture {
        cluster,
        client,
        _dir: dir,
    }
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.cluster.address(), path)
    }

    async fn call(&self, method: &str, path: &str, ct: &str, body: Option<Value>) -> (u16, Value) {
        let req = http::Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("content-type", ct)
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .unwrap();
        let resp = self.client.request(req).await.unwrap();
        let code = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, "application/json", None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, "application/json", Some(body))
            .await
    }

    /// Opens a watch and returns a channel of its event lines.
    async fn watch(&self, path: &str) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
        let req = http::Request::get(self.url(path))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = self.client.request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut body = resp.into_body();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    buf.extend_from_slice(data);
                    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        if tx.send(serde_json::from_slice(&line).unwrap()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        rx
    }
}

fn cm(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("watch event within 10s")
        .expect("watch still open")
}

#[tokio::test]
async fn watch_resumes_from_resource_version_and_follows_selectors() {
    let f = start().await;
    let (code, a) = f
        .post(
            "/api/v1/namespaces/default/configmaps",
            cm("a", json!({"app": "x"})),
        )
        .await;
    assert_eq!(code, 201);
    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    f.call(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/a",
        "application/merge-patch+json",
        Some(json!({"data": {"k": "2"}})),
    )
    .await;

    // Resuming at `rv` replays what happened after it, then streams live changes.
    let mut rx = f
        .watch(&format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&labelSelector=app%3Dx"))
        .await;
    let ev = next(&mut rx).await;
    assert_eq!(
        (ev["type"].as_str(), ev["object"]["data"]["k"].as_str()),
        (Some("MODIFIED"), Some("2"))
    );

    // Leaving the selector is a DELETED event for this watch; entering it an ADDED.
    f.call(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/a",
        "application/merge-patch+json",
        Some(json!({"metadata": {"labels": {"app": "y"}}})),
    )
    .await;
    assert_eq!(next(&mut rx).await["type"], "DELETED");
    f.post(
        "/api/v1/namespaces/default/configmaps",
        cm("b", json!({"app": "x"})),
    )
    .await;
    let ev = next(&mut rx).await;
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("b"))
    );
    f.call(
        "DELETE",
        "/api/v1/namespaces/default/configmaps/b",
        "application/json",
        Some(
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}),
        ),
    )
    .await;
    assert_eq!(next(&mut rx).await["type"], "DELETED");
}

#[tokio::test]
async fn watch_initial_events_bookmarks_and_timeout() {
    let f = start().await;
    f.post("/api/v1/namespaces/default/configmaps", cm("a", json!({})))
        .await;
    let mut rx = f
        .watch("/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=7")
        .await;
    assert_eq!(next(&mut rx).await["type"], "ADDED");
    let end = next(&mut rx).await;
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    // A periodic bookmark follows (every 5s), then the server ends the watch at the timeout.
    let periodic = next(&mut rx).await;
    assert_eq!(periodic["type"], "BOOKMARK");
    let closed = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap();
    assert!(closed.is_none(), "watch ends at timeoutSeconds");
}

#[tokio::test]
async fn too_old_resource_version_is_410_gone() {
    let f = start().await;
    for i in 0..10_050 {
        f.cluster
            .store()
            .create(
                &f.cluster
                    .store()
                    .registry()
                    .lookup("", "v1", "configmaps")
                    .unwrap(),
                Some("default"),
                cm(&format!("c{i}"), json!({})),
                &Default::default(),
            )
            .unwrap();
    }
    let (code, status) = f
        .get("/api/v1/configmaps?watch=true&resourceVersion=3")
        .await;
    assert_eq!(code, 410);
    assert_eq!(status["reason"], "Expired");
}

#[tokio::test]
async fn pages_over_http_and_status_errors() {
    let f = start().await;
    for i in 0..5 {
        f.post(
            "/api/v1/namespaces/default/configmaps",
            cm(&format!("c{i}"), json!({})),
        )
        .await;
    }
    let (_, page) = f.get("/api/v1/namespaces/default/configmaps?limit=2").await;
    assert_eq!(page["kind"], "ConfigMapList");
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["metadata"]["remainingItemCount"], 3);
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    let (_, page2) = f
        .get(&format!(
            "/api/v1/namespaces/default/configmaps?limit=2&continue={token}"
        ))
        .await;
    assert_eq!(page2["items"][0]["metadata"]["name"], "c2");
    assert_eq!(
        page2["metadata"]["resourceVersion"],
        page["metadata"]["resourceVersion"]
    );

    let (code, s) = f.get("/api/v1/namespaces/default/configmaps/nope").await;
    assert_eq!(
        (code, s["kind"].as_str(), s["reason"].as_str()),
        (404, Some("Status"), Some("NotFound"))
    );
    assert_eq!(s["details"]["name"], "nope");
    let (code, s) = f
        .post("/api/v1/namespaces/default/configmaps", cm("c0", json!({})))
        .await;
    assert_eq!((code, s["reason"].as_str()), (409, Some("AlreadyExists")));
    let (code, s) = f
        .post(
            "/api/v1/namespaces/default/configmaps",
            cm("Not_Valid", json!({})),
        )
        .await;
    assert_eq!((code, s["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
    let (code, s) = f.get("/api/v1/configmaps?labelSelector=a%20in%20b").await;
    assert_eq!((code, s["reason"].as_str()), (400, Some("BadRequest")));
    let (code, s) = f
        .call(
            "PUT",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            Some(cm("x", json!({}))),
        )
        .await;
    assert_eq!(
        (code, s["reason"].as_str()),
        (405, Some("MethodNotAllowed"))
    );
    let (code, _) = f
        .call(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/c0",
            "text/plain",
            Some(json!({})),
        )
        .await;
    assert_eq!(code, 415);

    // generateName and dryRun=All.
    let mut generated = cm("", json!({}));
    generated["metadata"] = json!({"generateName": "gen-"});
    let (code, made) = f
        .post(
            "/api/v1/namespaces/default/configmaps?dryRun=All",
            generated,
        )
        .await;
    assert_eq!(code, 201);
    let name = made["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    let (code, _) = f
        .get(&format!("/api/v1/namespaces/default/configmaps/{name}"))
        .await;
    assert_eq!(code, 404, "dry run stored nothing");
}

#[tokio::test]
async fn shutdown_ends_open_watches() {
    let f = start().await;
    let mut rx = f.watch("/api/v1/configmaps?watch=true").await;
    let Fixture {
        cluster,
        client,
        _dir,
    } = f;
    tokio::time::timeout(Duration::from_secs(10), cluster.shutdown())
        .await
        .expect("shutdown completes with a watch open");
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while rx.recv().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the watch stream was closed");
    drop(client);
}

#[tokio::test]
async fn legacy_discovery_documents() {
    let f = start().await;
    let (code, v) = f.get("/version").await;
    assert_eq!(
        (code, v["gitVersion"].as_str(), v["minor"].as_str()),
        (200, Some("v1.31.4+k3s1"), Some("31"))
    );
    let (_, api) = f.get("/api").await;
    assert_eq!(api["versions"], json!(["v1"]));
    let (_, core) = f.get("/api/v1").await;
    assert_eq!(core["groupVersion"], "v1");
    let pods: Vec<&Value> = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"].as_str().unwrap().starts_with("pods"))
        .collect();
    assert_eq!(pods.len(), 3, "pods, pods/status and pods/eviction");
    assert_eq!(pods[2]["name"], "pods/eviction");
    assert_eq!(pods[2]["kind"], "Eviction");
    assert_eq!(pods[0]["shortNames"], json!(["po"]));
    assert_eq!(pods[0]["categories"], json!(["all"]));
    let (_, apps) = f.get("/apis/apps/v1").await;
    let names: Vec<&str> = apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"deployments/scale") && names.contains(&"statefulsets/status"),
        "{names:?}"
    );
    let (_, group) = f.get("/apis/apps").await;
    assert_eq!(
        (
            group["kind"].as_str(),
            group["preferredVersion"]["groupVersion"].as_str()
        ),
        (Some("APIGroup"), Some("apps/v1"))
    );
    let (code, _) = f.get("/apis/nothing.example.com/v1").await;
    assert_eq!(code, 404);
    let (code, openapi) = f.get("/openapi/v3").await;
    assert_eq!(code, 200);
    assert!(openapi["paths"]["apis/apps/v1"]["serverRelativeURL"].is_string());
}
