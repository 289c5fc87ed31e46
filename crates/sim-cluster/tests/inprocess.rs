//! Controllers in process: `ServeConfig::with_sim` runs them next to the server, their writes
//! go through the shared `Store`, and `shutdown` stops them.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use sim_cluster::{ServeConfig, SimCluster, SimConfig, Store, WriteOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_controller_runs_a_pod_and_serves_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimConfig::parse(
        "controllers:\n  workloads:\n    interval: 50ms\n    pods:\n      - {match: 'report-*', logs: \"42 checks passed\\n\"}\n",
    )
    .unwrap();
    let cluster = SimCluster::start(
        Store::new(),
        ServeConfig::new(dir.path().join("kc")).with_sim(sim),
    )
    .await
    .unwrap();
    let store = cluster.store().clone();
    let pods = store.registry().lookup("", "v1", "pods").unwrap();
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "report-1", "namespace": "default"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}});
    store
        .create(&pods, Some("default"), pod, &WriteOptions::default())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let p = store.get(&pods, Some("default"), "report-1").unwrap();
        if p["status"]["phase"] == "Succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "pod never finished: {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let uri = format!(
        "http://{}/api/v1/namespaces/default/pods/report-1/log",
        cluster.address()
    );
    let resp = client.get(uri.parse().unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/plain"
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"42 checks passed\n");
    // After shutdown the controllers are gone: a new pod is left alone.
    cluster.shutdown().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "report-2", "namespace": "default"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}});
    store
        .create(&pods, Some("default"), pod, &WriteOptions::default())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let p = store.get(&pods, Some("default"), "report-2").unwrap();
    assert!(
        p.get("status").is_none_or(|s| s.get("phase").is_none()),
        "{p}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_controller_does_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let sim =
        SimConfig::parse("controllers:\n  workloads: {enabled: false, interval: 50ms}\n").unwrap();
    let cluster = SimCluster::start(
        Store::new(),
        ServeConfig::new(dir.path().join("kc")).with_sim(sim),
    )
    .await
    .unwrap();
    let store = cluster.store().clone();
    let pods = store.registry().lookup("", "v1", "pods").unwrap();
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "idle", "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]}});
    store
        .create(&pods, Some("default"), pod, &WriteOptions::default())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p = store.get(&pods, Some("default"), "idle").unwrap();
    assert!(
        p.get("status").is_none_or(|s| s.get("phase").is_none()),
        "{p}"
    );
    cluster.shutdown().await;
}
