//! The live client against an in-process sim-cluster, over plain HTTP and over TLS with a
//! bearer token: discovery, paginated lists, get, server-side apply, merge and status patches,
//! watches until a condition, delete, and errors that name the object.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::TryStreamExt;
use kube::api::{Api, ListParams};
use serde_json::json;
use sim_cluster::{ServeConfig, SimCluster};
use upkeep_kube::{
    ApplyOptions, Cluster, ClusterRead, ConnectOptions, Deleted, ErrorClass, KubeError,
    ListOptions, ResourceRef, Until,
};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sim-cluster/basic")
}

async fn start(tls: bool, dir: &tempfile::TempDir) -> SimCluster {
    let store = sim_cluster::load_dir(&fixture()).expect("fixture loads");
    let mut cfg = ServeConfig::new(dir.path().join("kubeconfig"));
    cfg.tls = tls;
    SimCluster::start(store, cfg)
        .await
        .expect("sim-cluster starts")
}

async fn connect(sim: &SimCluster) -> Cluster {
    Cluster::connect(
        &ConnectOptions::default()
            .kubeconfig(sim.kubeconfig_path())
            .timeout(Duration::from_secs(10)),
    )
    .await
    .expect("client builds")
}

#[tokio::test]
async fn over_http() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(false, &dir).await;
    exercise(&sim).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn over_tls_with_token() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(true, &dir).await;
    assert!(sim.ca_pem().is_some());
    let cluster = connect(&sim).await;
    assert!(
        cluster.server().starts_with("https://"),
        "{}",
        cluster.server()
    );
    exercise(&sim).await;
    sim.shutdown().await;
}

/// TLS verification is on: without the CA the same server is refused, and that is an
/// environment failure naming the certificate problem, not a panic.
#[tokio::test]
async fn tls_without_the_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(true, &dir).await;
    let text = std::fs::read_to_string(sim.kubeconfig_path()).unwrap();
    let mut kc: serde_json::Value = serde_json::from_str(&text).unwrap();
    kc["clusters"][0]["cluster"]
        .as_object_mut()
        .unwrap()
        .remove("certificate-authority-data");
    let no_ca = dir.path().join("no-ca");
    std::fs::write(&no_ca, kc.to_string()).unwrap();
    let cluster = Cluster::connect(
        &ConnectOptions::default()
            .kubeconfig(&no_ca)
            .timeout(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    let err = cluster.server_version().await.unwrap_err();
    assert!(err.is_environment(), "{err}");
    assert_eq!(err.exit_code(), 3);
    let msg = err.to_string();
    assert!(msg.contains("cannot reach https://"), "{msg}");
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
    assert!(!msg.contains('\n'));
    sim.shutdown().await;
}

/// reqwest (as upkeep-http builds it) and kube in one process, both over TLS, in either
/// order: one rustls crypto provider for the whole workspace, so neither panics with
/// "Could not automatically determine the process-level CryptoProvider".
#[tokio::test]
async fn kube_and_reqwest_share_one_crypto_provider() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(true, &dir).await;
    let ca = reqwest::Certificate::from_pem(sim.ca_pem().unwrap().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("reqwest client builds");
    let text = http
        .get(format!("https://{}/version", sim.address()))
        .send()
        .await
        .expect("reqwest reaches sim-cluster over TLS")
        .text()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["gitVersion"], "v1.31.4+k3s1");
    let cluster = connect(&sim).await;
    assert_eq!(
        cluster.server_version().await.unwrap().git_version,
        "v1.31.4+k3s1"
    );
    sim.shutdown().await;
}

async fn exercise(sim: &SimCluster) {
    let cluster = connect(sim).await;
    assert_eq!(cluster.default_namespace(), "default");

    // /version answers, and TLS (when on) went through the one crypto provider.
    let v = cluster.server_version().await.unwrap();
    assert_eq!(v.git_version, "v1.31.4+k3s1");

    // Discovery: built-ins at their preferred versions and the fixture CRD's kind.
    let resources = cluster.resources().await.unwrap();
    let has = |group: &str, version: &str, kind: &str| {
        resources
            .iter()
            .any(|r| r.api.group == group && r.api.version == version && r.api.kind == kind)
    };
    assert!(has("", "v1", "ConfigMap"));
    assert!(has("", "v1", "Namespace"));
    assert!(has("apps", "v1", "Deployment"));
    assert!(has(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition"
    ));
    assert!(
        has("sim.upkeep.dev", "v1", "Widget"),
        "preferred version of the CRD"
    );
    assert!(resources.iter().all(|r| r.is_listable()));
    let widgets = cluster
        .resource(&ResourceRef::preferred("sim.upkeep.dev", "widgets"))
        .await
        .unwrap();
    assert_eq!(widgets.api.kind, "Widget");
    assert_eq!(widgets.api.version, "v1");
    assert!(widgets.namespaced);
    assert!(widgets.has_subresource("status"));
    let beta = cluster
        .resource(&ResourceRef::new("sim.upkeep.dev", "v1beta1", "Widget"))
        .await
        .unwrap();
    assert_eq!(beta.api.api_version, "sim.upkeep.dev/v1beta1");
    let ns_res = cluster
        .resource(&ResourceRef::new("", "v1", "Namespace"))
        .await
        .unwrap();
    assert!(!ns_res.namespaced);
    let missing = cluster
        .resource(&ResourceRef::preferred("nothing.example", "Thing"))
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    assert!(
        missing.to_string().contains("Thing (nothing.example)"),
        "{missing}"
    );

    // Server-side apply creates a namespace and 23 ConfigMaps, owned by our field manager.
    let configmaps = cluster
        .resource(&ResourceRef::new("", "v1", "ConfigMap"))
        .await
        .unwrap();
    let apply = ApplyOptions::new("upkeep-test");
    cluster
        .apply(
            &ns_res,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "paged"}}),
            &apply,
        )
        .await
        .unwrap();
    for i in 0..23 {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i:02}"), "namespace": "paged", "labels": {"n": i.to_string()}},
            "data": {"k": "v"}});
        let stored = cluster.apply(&configmaps, &cm, &apply).await.unwrap();
        let managers: Vec<_> = stored
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|m| m.manager.clone())
            .collect();
        assert_eq!(managers, ["upkeep-test"]);
    }

    // The server really pages at this size: a raw first page is short and carries a token...
    let raw: Api<kube::api::DynamicObject> =
        Api::namespaced_with(cluster.client().clone(), "paged", &configmaps.api);
    let first = raw.list(&ListParams::default().limit(5)).await.unwrap();
    assert_eq!(first.items.len(), 5);
    assert!(first.metadata.continue_.is_some());
    // ...and the stream follows the continue tokens to the end, each object once.
    let opts = ListOptions::in_namespace("paged").page_size(5);
    let names: Vec<String> = cluster
        .list(&configmaps, &opts)
        .map_ok(|o| o.metadata.name.unwrap_or_default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(names.len(), 23);
    let unique: BTreeSet<_> = names.iter().cloned().collect();
    assert_eq!(unique.len(), 23);
    assert!(unique.contains("cm-00") && unique.contains("cm-22"));

    // Label selectors go to the server.
    let web: BTreeSet<String> = cluster
        .list(
            &configmaps,
            &ListOptions::in_namespace("apps").labels("app=web"),
        )
        .map_ok(|o| o.metadata.name.unwrap_or_default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        web,
        BTreeSet::from(["web-canary".into(), "web-settings".into()])
    );
    // All namespaces: the fixture's and ours.
    let all: Vec<_> = cluster
        .list(&configmaps, &ListOptions::all_namespaces().page_size(4))
        .try_collect()
        .await
        .unwrap();
    assert!(all.len() >= 26, "{}", all.len());

    // Apply by another manager over our field conflicts; with force it takes the field over.
    let change = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm-00", "namespace": "paged"}, "data": {"k": "changed"}});
    let conflict = cluster
        .apply(&configmaps, &change, &ApplyOptions::new("someone-else"))
        .await
        .unwrap_err();
    assert!(conflict.is_conflict(), "{conflict}");
    assert!(
        conflict
            .to_string()
            .starts_with("apply ConfigMap paged/cm-00: 409"),
        "{conflict}"
    );
    let forced = cluster
        .apply(
            &configmaps,
            &change,
            &ApplyOptions::new("someone-else").force(),
        )
        .await
        .unwrap();
    assert_eq!(forced.data["data"]["k"], "changed");
    // Dry run answers without storing.
    let dry = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm-dry", "namespace": "paged"}});
    cluster
        .apply(
            &configmaps,
            &dry,
            &ApplyOptions::new("upkeep-test").dry_run(),
        )
        .await
        .unwrap();
    assert!(
        cluster
            .get(&configmaps, Some("paged"), "cm-dry")
            .await
            .unwrap()
            .is_none()
    );
    // No name: refused before any request, naming what is missing.
    let nameless = cluster
        .apply(&configmaps, &json!({"metadata": {}}), &apply)
        .await
        .unwrap_err();
    assert_eq!(
        nameless.to_string(),
        "apply ConfigMap: object has no metadata.name"
    );

    // Get, and a missing object is None rather than an error.
    let blue = cluster
        .get(&widgets, Some("apps"), "blue")
        .await
        .unwrap()
        .expect("widget blue exists");
    assert_eq!(blue.data["spec"]["size"], 3);
    let generation = blue.metadata.generation;
    assert!(
        cluster
            .get(&widgets, Some("apps"), "nope")
            .await
            .unwrap()
            .is_none()
    );

    // Merge patch of metadata: no new generation.
    let patched = cluster
        .patch_merge(
            &widgets,
            Some("apps"),
            "blue",
            &json!({"metadata": {"labels": {"checked": "yes"}}}),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["checked"], "yes");
    assert_eq!(patched.metadata.generation, generation);
    let err = cluster
        .patch_merge(
            &widgets,
            Some("apps"),
            "nope",
            &json!({"spec": {"size": 1}}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound);
    assert!(
        err.to_string()
            .starts_with("patch Widget apps/nope: 404 NotFound"),
        "{err}"
    );

    // Watch until Ready: the status patch arrives while we wait.
    let ready = Until::condition("Ready", "True");
    let waiter = cluster.wait_for(
        &widgets,
        Some("apps"),
        "blue",
        &ready,
        Duration::from_secs(20),
    );
    let patcher = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A spec change first: the waiter sees it and keeps waiting.
        cluster
            .patch_merge(
                &widgets,
                Some("apps"),
                "blue",
                &json!({"spec": {"size": 4}}),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        cluster
            .patch_status(
                &widgets,
                Some("apps"),
                "blue",
                &json!({"status": {"conditions": [{"type": "Ready", "status": "True",
                    "reason": "Done", "message": "ok", "lastTransitionTime": "2026-01-02T00:00:00Z"}]}}),
            )
            .await
            .unwrap()
    };
    let (waited, after_patch) = tokio::join!(waiter, patcher);
    let waited = waited.unwrap();
    assert!(ready.holds(&waited));
    assert_eq!(waited.data["spec"]["size"], 4);
    assert_eq!(
        waited.metadata.resource_version,
        after_patch.metadata.resource_version
    );
    // Status patches do not touch spec, and the condition is there on a fresh get.
    let again = cluster
        .get(&widgets, Some("apps"), "blue")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        upkeep_kube::condition(&again, "Ready").unwrap().reason,
        "Done"
    );

    // A condition already true returns at once; one that never comes ends at the deadline
    // with what was last seen.
    cluster
        .wait_for(
            &widgets,
            Some("apps"),
            "blue",
            &ready,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let never = cluster
        .wait_for(
            &widgets,
            Some("apps"),
            "blue",
            &Until::field("/spec/size", json!(99)),
            Duration::from_millis(800),
        )
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(never.class(), ErrorClass::Unmet);
    assert_eq!(never.exit_code(), 1);
    assert!(
        never.to_string().starts_with(
            "wait for Widget apps/blue /spec/size == 99: not met within 0.8s (/spec/size is 4)"
        ),
        "{never}"
    );

    // Waiting for an object that is created later.
    let has_k = Until::field("/data/k", json!("v"));
    let later = cluster.wait_for(
        &configmaps,
        Some("paged"),
        "late",
        &has_k,
        Duration::from_secs(20),
    );
    let creator = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster
            .apply(
                &configmaps,
                &json!({"metadata": {"name": "late", "namespace": "paged"}, "data": {"k": "v"}}),
                &apply,
            )
            .await
            .unwrap();
    };
    let (late, ()) = tokio::join!(later, creator);
    assert_eq!(late.unwrap().metadata.name.as_deref(), Some("late"));

    // Delete: gone, then absent.
    assert!(matches!(
        cluster
            .delete(&configmaps, Some("paged"), "cm-01")
            .await
            .unwrap(),
        Deleted::Gone
    ));
    assert!(matches!(
        cluster
            .delete(&configmaps, Some("paged"), "cm-01")
            .await
            .unwrap(),
        Deleted::Absent
    ));
    assert!(
        cluster
            .get(&configmaps, Some("paged"), "cm-01")
            .await
            .unwrap()
            .is_none()
    );
    // A finalizer holds the object: deletion starts, the object stays, marked.
    cluster
        .patch_merge(
            &configmaps,
            Some("paged"),
            "cm-02",
            &json!({"metadata": {"finalizers": ["upkeep.dev/hold"]}}),
        )
        .await
        .unwrap();
    match cluster
        .delete(&configmaps, Some("paged"), "cm-02")
        .await
        .unwrap()
    {
        Deleted::Finalizing(obj) => assert!(obj.metadata.deletion_timestamp.is_some()),
        other => panic!("expected Finalizing, got {other:?}"),
    }

    // A CRD created now is found without restarting: resolution refreshes discovery once.
    let crds = cluster
        .resource(&ResourceRef::preferred(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
        ))
        .await
        .unwrap();
    cluster
        .apply(
            &crds,
            &json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "gizmos.sim.upkeep.dev"},
                "spec": {"group": "sim.upkeep.dev", "scope": "Cluster",
                    "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo", "listKind": "GizmoList"},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}),
            &apply,
        )
        .await
        .unwrap();
    let gizmos = cluster
        .resource(&ResourceRef::preferred("sim.upkeep.dev", "Gizmo"))
        .await
        .unwrap();
    assert!(!gizmos.namespaced);
    assert_eq!(gizmos.api.plural, "gizmos");
}

/// Errors carry the object and the operation; a missing namespace on a namespaced call uses
/// the context's default namespace, as kubectl does.
#[tokio::test]
async fn default_namespace_comes_from_the_context() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(false, &dir).await;
    let cluster = Cluster::connect(
        &ConnectOptions::default()
            .kubeconfig(sim.kubeconfig_path())
            .namespace("apps"),
    )
    .await
    .unwrap();
    let cms = cluster
        .resource(&ResourceRef::new("", "v1", "ConfigMap"))
        .await
        .unwrap();
    let got = cluster.get(&cms, None, "web-settings").await.unwrap();
    assert!(got.is_some());
    let err: KubeError = cluster
        .patch_status(&cms, None, "missing", &json!({"status": {}}))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("patch status of ConfigMap apps/missing: 404"),
        "{err}"
    );
    sim.shutdown().await;
}

/// Response bodies are capped (a clear, environment-class error naming the call), except
/// watches, which stream for as long as they last.
#[tokio::test]
async fn responses_are_capped_except_watches() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(false, &dir).await;
    let full = connect(&sim).await;
    let cms = full
        .resource(&ResourceRef::new("", "v1", "ConfigMap"))
        .await
        .unwrap();
    let filler = "x".repeat(400);
    for i in 0..12 {
        let cm = json!({"metadata": {"name": format!("big-{i}"), "namespace": "apps"},
            "data": {"filler": filler}});
        full.apply(&cms, &cm, &ApplyOptions::new("upkeep-test"))
            .await
            .unwrap();
    }
    let capped = Cluster::connect(
        &ConnectOptions::default()
            .kubeconfig(sim.kubeconfig_path())
            .max_response_bytes(4096),
    )
    .await
    .unwrap();
    let err = capped
        .list(&cms, &ListOptions::in_namespace("apps"))
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(err.is_environment(), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "list configmaps/v1 in namespace apps: unexpected answer from http://{}: \
             response larger than 4096 bytes (use smaller pages or raise the limit)",
            sim.address()
        )
    );
    // Small pages fit under the same cap.
    let all: Vec<_> = capped
        .list(&cms, &ListOptions::in_namespace("apps").page_size(2))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 15);

    // A watch that carries far more than the cap in total streams on without error (read
    // through the raw kube API, since `wait_for` would paper over a broken watch by re-listing).
    let raw: Api<kube::api::DynamicObject> =
        Api::namespaced_with(capped.client().clone(), "apps", &cms.api);
    let start_rv = raw
        .get("big-0")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = kube::api::WatchParams::default().fields("metadata.name=big-0");
    let events = raw.watch(&wp, &start_rv).await.unwrap();
    for round in 1..=10 {
        full.patch_merge(
            &cms,
            Some("apps"),
            "big-0",
            &json!({"data": {"round": round.to_string()}}),
        )
        .await
        .unwrap();
    }
    let mut events = std::pin::pin!(events);
    let mut bytes = 0;
    for round in 1..=10 {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .expect("event in time")
            .expect("watch not cut by the cap")
            .expect("watch open");
        let kube::api::WatchEvent::Modified(obj) = ev else {
            panic!("expected MODIFIED, got {ev:?}");
        };
        assert_eq!(obj.data["data"]["round"], round.to_string());
        bytes += serde_json::to_vec(&obj).unwrap().len();
    }
    assert!(bytes > 4096, "the watch carried {bytes} bytes");
    // And `wait_for` (a list, then a watch) works under the cap.
    let done = capped
        .wait_for(
            &cms,
            Some("apps"),
            "big-0",
            &Until::field("/data/round", json!("10")),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(done.data["data"]["round"], "10");
    sim.shutdown().await;
}

/// A server that fails or throttles a read now and then is read anyway: reads
/// are tried again; a failure that lasts is still an error naming the object.
#[tokio::test]
async fn passing_read_failures_are_tried_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = sim_cluster::load_dir(&fixture()).expect("fixture loads");
    let sim_yaml = "faults:\n  rules:\n\
        \x20   - {path: '/api/v1/namespaces', verbs: [list], action: error, status: 503, times: 2}\n\
        \x20   - {path: '/api/v1/namespaces/default', verbs: [get], action: throttle, retryAfter: 1, times: 1}\n\
        \x20   - {path: '/api/v1/namespaces/kube-system', verbs: [get], action: error, status: 500}\n";
    let cfg = ServeConfig::new(dir.path().join("kubeconfig"))
        .with_sim(sim_cluster::SimConfig::parse(sim_yaml).unwrap());
    let sim = SimCluster::start(store, cfg).await.unwrap();
    let cluster = connect(&sim).await;
    let ns = cluster
        .resource(&ResourceRef::preferred("", "Namespace"))
        .await
        .unwrap();
    // Two 503s, then the list.
    let all: Vec<_> = cluster
        .list(&ns, &ListOptions::all_namespaces())
        .try_collect()
        .await
        .unwrap();
    assert!(!all.is_empty());
    // One 429, then the object.
    assert!(cluster.get(&ns, None, "default").await.unwrap().is_some());
    // Every try fails: an error, after the few tries.
    let started = std::time::Instant::now();
    let e = cluster.get(&ns, None, "kube-system").await.unwrap_err();
    assert!(matches!(e, KubeError::Api { code: 500, .. }), "{e}");
    assert!(
        started.elapsed() >= Duration::from_millis(250 + 500 + 1000),
        "{:?}",
        started.elapsed()
    );
    sim.shutdown().await;
}
