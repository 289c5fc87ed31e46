//! `Cluster::create` (POST) and `Cluster::replace` (PUT) against an in-process sim-cluster:
//! what they store, that dry run stores nothing, and that the errors a restore must tell
//! apart (exists, stale resourceVersion, missing, invalid) come back classed and named.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use sim_cluster::{ServeConfig, SimCluster};
use upkeep_kube::{ApplyOptions, Cluster, ClusterRead, ConnectOptions, ErrorClass, ResourceRef};

async fn start(dir: &tempfile::TempDir) -> (SimCluster, Cluster) {
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sim-cluster/basic");
    let store = sim_cluster::load_dir(&fixture).expect("fixture loads");
    let sim = SimCluster::start(store, ServeConfig::new(dir.path().join("kubeconfig")))
        .await
        .expect("sim-cluster starts");
    let cluster = Cluster::connect(
        &ConnectOptions::default()
            .kubeconfig(sim.kubeconfig_path())
            .timeout(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    (sim, cluster)
}

#[tokio::test]
async fn create_then_replace_with_the_live_resource_version() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, cluster) = start(&dir).await;
    let cms = cluster
        .resource(&ResourceRef::new("", "v1", "ConfigMap"))
        .await
        .unwrap();
    let opts = ApplyOptions::new("upkeep-test");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "made", "namespace": "apps", "labels": {"a": "1"}},
        "data": {"k": "v1"}});

    // Dry run: validated and answered, nothing stored.
    let dry = cluster
        .create(&cms, &cm, &opts.clone().dry_run())
        .await
        .unwrap();
    assert_eq!(dry.data["data"]["k"], "v1");
    assert!(
        cluster
            .get(&cms, Some("apps"), "made")
            .await
            .unwrap()
            .is_none()
    );

    // Create stores it, with our field manager recorded.
    let made = cluster.create(&cms, &cm, &opts).await.unwrap();
    assert_eq!(made.metadata.labels.as_ref().unwrap()["a"], "1");
    let managers: Vec<_> = made
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, ["upkeep-test"]);
    // A second create is a conflict (AlreadyExists), named.
    let again = cluster.create(&cms, &cm, &opts).await.unwrap_err();
    assert_eq!(again.class(), ErrorClass::Conflict, "{again}");
    assert!(
        again
            .to_string()
            .starts_with("create ConfigMap apps/made: 409"),
        "{again}"
    );

    // Replace with the live resourceVersion: the whole object is the new one (the label is
    // gone, which a merge patch would have kept).
    let rv = made.metadata.resource_version.clone().unwrap();
    let mut next = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "made", "namespace": "apps", "resourceVersion": rv},
        "data": {"k": "v2"}});
    let dry = cluster
        .replace(&cms, &next, &opts.clone().dry_run())
        .await
        .unwrap();
    assert_eq!(dry.data["data"]["k"], "v2");
    let live = cluster
        .get(&cms, Some("apps"), "made")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.data["data"]["k"], "v1", "dry run changed nothing");
    let replaced = cluster.replace(&cms, &next, &opts).await.unwrap();
    assert_eq!(replaced.data["data"]["k"], "v2");
    assert!(replaced.metadata.labels.unwrap_or_default().is_empty());
    assert_ne!(
        replaced.metadata.resource_version.as_deref(),
        Some(rv.as_str())
    );

    // The old resourceVersion is stale now: a conflict, not an overwrite.
    next["data"]["k"] = json!("v3");
    let stale = cluster.replace(&cms, &next, &opts).await.unwrap_err();
    assert!(stale.is_conflict(), "{stale}");
    assert!(
        stale
            .to_string()
            .starts_with("replace ConfigMap apps/made: 409"),
        "{stale}"
    );
    let live = cluster
        .get(&cms, Some("apps"), "made")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.data["data"]["k"], "v2");

    // Replacing what does not exist is NotFound.
    let missing = cluster
        .replace(
            &cms,
            &json!({"metadata": {"name": "nope", "namespace": "apps", "resourceVersion": "1"}}),
            &opts,
        )
        .await
        .unwrap_err();
    assert_eq!(missing.class(), ErrorClass::NotFound, "{missing}");
    assert!(
        missing
            .to_string()
            .starts_with("replace ConfigMap apps/nope: 404"),
        "{missing}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_objects_are_refused_before_or_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, cluster) = start(&dir).await;
    let cms = cluster
        .resource(&ResourceRef::new("", "v1", "ConfigMap"))
        .await
        .unwrap();
    let opts = ApplyOptions::new("upkeep-test");
    // No name: refused before any request, naming what is missing.
    let nameless = cluster
        .create(&cms, &json!({"metadata": {}}), &opts)
        .await
        .unwrap_err();
    assert_eq!(
        nameless.to_string(),
        "create ConfigMap: object has no metadata.name"
    );
    assert_eq!(nameless.exit_code(), 2);
    let not_object = cluster.replace(&cms, &json!([1]), &opts).await.unwrap_err();
    assert_eq!(
        not_object.to_string(),
        "replace ConfigMap: object is not a JSON object"
    );
    // A namespace that does not exist: the server's message, classed NotFound.
    let nowhere = cluster
        .create(
            &cms,
            &json!({"metadata": {"name": "x", "namespace": "no-such-ns"}}),
            &opts,
        )
        .await
        .unwrap_err();
    assert_eq!(nowhere.class(), ErrorClass::NotFound, "{nowhere}");
    assert!(
        nowhere
            .to_string()
            .starts_with("create ConfigMap no-such-ns/x: 404"),
        "{nowhere}"
    );
    sim.shutdown().await;
}
