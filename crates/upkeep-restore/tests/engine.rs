//! The restore run against an in-process sim-cluster serving the homelab fixture (Flux,
//! Longhorn, apps), with "stored" objects taken from the cluster itself: create and replace
//! modes, the server's dry run, CRDs before their custom resources, failures reported, and
//! Flux suspended around the restore and resumed after, only what the restore suspended.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use kube::api::{Api, DynamicObject, WatchEvent, WatchParams};
use serde_json::{Value, json};
use sim_cluster::{ServeConfig, SimCluster};
use upkeep_contract::{RestoreAction, RestoreMode};
use upkeep_kube::{ApplyOptions, Cluster, ClusterRead, ConnectOptions, Resource, ResourceRef};
use upkeep_restore::{RestoreOptions, RestoreRun, restore};

struct Env {
    sim: SimCluster,
    cluster: Cluster,
    _dir: tempfile::TempDir,
}

async fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/clusters/homelab");
    let store = sim_cluster::load_dir(&fixture).expect("homelab loads");
    let sim = SimCluster::start(store, ServeConfig::new(dir.path().join("kubeconfig")))
        .await
        .unwrap();
    let cluster = Cluster::connect(
        &ConnectOptions::default()
            .kubeconfig(sim.kubeconfig_path())
            .timeout(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    Env {
        sim,
        cluster,
        _dir: dir,
    }
}

impl Env {
    async fn res(&self, api_version: &str, kind: &str) -> Resource {
        self.cluster
            .resource(&ResourceRef::from_api_version(api_version, kind))
            .await
            .unwrap()
    }

    async fn live(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let res = self.res(api_version, kind).await;
        self.cluster
            .get(&res, ns, name)
            .await
            .unwrap()
            .map(|o| serde_json::to_value(o).unwrap())
    }

    async fn must(&self, api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> Value {
        self.live(api_version, kind, ns, name)
            .await
            .unwrap_or_else(|| panic!("{kind} {name} exists"))
    }

    async fn apply(&self, obj: Value) {
        let res = self
            .res(
                obj["apiVersion"].as_str().unwrap(),
                obj["kind"].as_str().unwrap(),
            )
            .await;
        self.cluster
            .apply(&res, &obj, &ApplyOptions::new("test").force())
            .await
            .unwrap();
    }

    async fn run(&self, objects: Vec<Value>, mode: RestoreMode, dry_run: bool) -> RestoreRun {
        let mut opts = RestoreOptions::new(mode);
        opts.dry_run = dry_run;
        opts.crd_timeout = Duration::from_secs(20);
        restore(&self.cluster, "test-point", objects, &opts)
            .await
            .unwrap()
    }
}

fn action(run: &RestoreRun, kind: &str, name: &str) -> (RestoreAction, String) {
    let o = run
        .result
        .objects
        .iter()
        .find(|o| o.object.kind == kind && o.object.name == name)
        .unwrap_or_else(|| panic!("{kind} {name} in {:?}", run.result.objects));
    (
        o.action,
        o.message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

fn suspended_names(run: &RestoreRun) -> Vec<String> {
    let mut v: Vec<String> = run
        .result
        .suspended
        .iter()
        .map(|o| format!("{}/{}", o.kind, o.name))
        .collect();
    v.sort();
    v
}

fn config_map(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "podinfo"}, "data": {"k": value}})
}

#[tokio::test]
async fn create_mode_creates_the_missing_and_leaves_the_existing() {
    let env = start().await;
    env.apply(config_map("same", "v")).await;
    env.apply(config_map("changed", "new")).await;
    // Stored as the cluster shows them (server-set fields and all): a restore point taken
    // from this cluster has the same shape, minus what the snapshot strips.
    let same = env.must("v1", "ConfigMap", Some("podinfo"), "same").await;
    let objects = vec![
        same,
        config_map("changed", "old"),
        config_map("missing", "v"),
    ];
    let run = env.run(objects, RestoreMode::Create, false).await;
    assert_eq!(
        action(&run, "ConfigMap", "same").0,
        RestoreAction::Unchanged
    );
    assert_eq!(
        action(&run, "ConfigMap", "missing").0,
        RestoreAction::Created
    );
    let (a, msg) = action(&run, "ConfigMap", "changed");
    assert_eq!(a, RestoreAction::Skipped);
    assert!(msg.contains("exists and differs (data.k)"), "{msg}");
    assert!(msg.contains("--mode replace"), "{msg}");
    // Skipped means left alone.
    let live = env
        .must("v1", "ConfigMap", Some("podinfo"), "changed")
        .await;
    assert_eq!(live["data"]["k"], "new");
    assert!(
        env.live("v1", "ConfigMap", Some("podinfo"), "missing")
            .await
            .is_some()
    );
    assert!(!run.has_failures());
    assert!(run.stopped.is_none());
    env.sim.shutdown().await;
}

#[tokio::test]
async fn replace_mode_puts_the_stored_objects_back_and_dry_run_changes_nothing() {
    let env = start().await;
    let stored_deploy = env
        .must("apps/v1", "Deployment", Some("podinfo"), "podinfo")
        .await;
    let stored_svc = env.must("v1", "Service", Some("podinfo"), "podinfo").await;
    env.apply(config_map("settings", "v1")).await;
    let stored_cm = env
        .must("v1", "ConfigMap", Some("podinfo"), "settings")
        .await;
    // Drift: the Deployment's image and replicas change, the ConfigMap is deleted.
    let mut drifted = stored_deploy.clone();
    drifted["spec"]["replicas"] = json!(5);
    drifted["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("ghcr.io/stefanprodan/podinfo:9.9.9");
    let deploy_res = env.res("apps/v1", "Deployment").await;
    env.cluster
        .patch_merge(
            &deploy_res,
            Some("podinfo"),
            "podinfo",
            &json!({"spec": {"replicas": 5, "template": {"spec": {"containers": drifted["spec"]["template"]["spec"]["containers"]}}}}),
        )
        .await
        .unwrap();
    let cm_res = env.res("v1", "ConfigMap").await;
    env.cluster
        .delete(&cm_res, Some("podinfo"), "settings")
        .await
        .unwrap();
    let objects = vec![stored_deploy.clone(), stored_svc, stored_cm.clone()];

    // Dry run first: the answer says what would change, the cluster stays drifted.
    let before_rv = env
        .must("apps/v1", "Deployment", Some("podinfo"), "podinfo")
        .await["metadata"]["resourceVersion"]
        .clone();
    let dry = env.run(objects.clone(), RestoreMode::Replace, true).await;
    assert!(dry.result.dry_run);
    let (a, msg) = action(&dry, "Deployment", "podinfo");
    assert_eq!(a, RestoreAction::Replaced);
    assert!(
        msg.contains("spec.replicas") && msg.contains("spec.template"),
        "{msg}"
    );
    assert_eq!(
        action(&dry, "ConfigMap", "settings").0,
        RestoreAction::Created
    );
    assert_eq!(
        action(&dry, "Service", "podinfo").0,
        RestoreAction::Unchanged
    );
    let after_dry = env
        .must("apps/v1", "Deployment", Some("podinfo"), "podinfo")
        .await;
    assert_eq!(after_dry["metadata"]["resourceVersion"], before_rv);
    assert_eq!(after_dry["spec"]["replicas"], 5);
    assert!(
        env.live("v1", "ConfigMap", Some("podinfo"), "settings")
            .await
            .is_none()
    );
    // A dry run lists the Flux objects it would suspend, and touches none.
    assert!(!dry.result.suspended.is_empty());
    let ks = env
        .must(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            Some("flux-system"),
            "apps",
        )
        .await;
    assert!(ks["spec"].get("suspend").is_none(), "{}", ks["spec"]);

    // The real thing: both back as stored.
    let run = env.run(objects, RestoreMode::Replace, false).await;
    assert_eq!(
        action(&run, "Deployment", "podinfo").0,
        RestoreAction::Replaced
    );
    assert_eq!(
        action(&run, "ConfigMap", "settings").0,
        RestoreAction::Created
    );
    assert_eq!(
        action(&run, "Service", "podinfo").0,
        RestoreAction::Unchanged
    );
    assert!(!run.has_failures(), "{:?}", run.result);
    let deploy = env
        .must("apps/v1", "Deployment", Some("podinfo"), "podinfo")
        .await;
    assert_eq!(
        upkeep_restore::diff::differences(&stored_deploy, &deploy),
        Vec::<String>::new()
    );
    let cm = env
        .must("v1", "ConfigMap", Some("podinfo"), "settings")
        .await;
    assert_eq!(cm["data"], stored_cm["data"]);
    // Run again: nothing left to do.
    let again = env
        .run(vec![stored_deploy, stored_cm], RestoreMode::Replace, false)
        .await;
    assert!(
        again
            .result
            .objects
            .iter()
            .all(|o| o.action == RestoreAction::Unchanged),
        "{:?}",
        again.result.objects
    );
    env.sim.shutdown().await;
}

#[tokio::test]
async fn crds_come_first_and_their_resources_follow_in_the_same_run() {
    let env = start().await;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.restore.upkeep.dev"},
        "spec": {"group": "restore.upkeep.dev", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let gadget = json!({"apiVersion": "restore.upkeep.dev/v1", "kind": "Gadget",
        "metadata": {"name": "g1", "namespace": "podinfo"}, "spec": {"size": 1}});
    // The custom resource comes first in the input; the order puts its CRD before it.
    let dry = env
        .run(vec![gadget.clone(), crd.clone()], RestoreMode::Create, true)
        .await;
    let (a, msg) = action(&dry, "Gadget", "g1");
    assert_eq!(a, RestoreAction::Created);
    assert!(msg.contains("not checked by the server"), "{msg}");
    let run = env.run(vec![gadget, crd], RestoreMode::Create, false).await;
    assert_eq!(
        run.result.objects[0].object.kind,
        "CustomResourceDefinition"
    );
    assert_eq!(
        action(
            &run,
            "CustomResourceDefinition",
            "gadgets.restore.upkeep.dev"
        )
        .0,
        RestoreAction::Created
    );
    assert_eq!(action(&run, "Gadget", "g1").0, RestoreAction::Created);
    assert!(
        env.live("restore.upkeep.dev/v1", "Gadget", Some("podinfo"), "g1")
            .await
            .is_some()
    );
    env.sim.shutdown().await;
}

/// Collects every change to Kustomization flux-system/apps's `spec.suspend` while `f` runs.
async fn suspend_history<F: std::future::Future<Output = RestoreRun>>(
    env: &Env,
    f: F,
) -> (RestoreRun, Vec<Option<bool>>) {
    let res = env
        .res("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
        .await;
    let api: Api<DynamicObject> =
        Api::namespaced_with(env.cluster.client().clone(), "flux-system", &res.api);
    let rv = env
        .must(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            Some("flux-system"),
            "apps",
        )
        .await["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let wp = WatchParams::default()
        .fields("metadata.name=apps")
        .timeout(30);
    let mut events = Box::pin(api.watch(&wp, &rv).await.unwrap());
    let run = f.await;
    let mut seen = Vec::new();
    while let Ok(Some(Ok(ev))) =
        tokio::time::timeout(Duration::from_millis(500), events.next()).await
    {
        if let WatchEvent::Modified(o) = ev {
            seen.push(o.data.pointer("/spec/suspend").and_then(Value::as_bool));
        }
    }
    (run, seen)
}

#[tokio::test]
async fn flux_is_suspended_around_the_restore_and_resumed_even_after_a_failure() {
    let env = start().await;
    // The user had suspended one HelmRelease: the restore must leave it suspended.
    let hr_res = env.res("helm.toolkit.fluxcd.io/v2", "HelmRelease").await;
    env.cluster
        .patch_merge(
            &hr_res,
            Some("podinfo"),
            "podinfo",
            &json!({"spec": {"suspend": true}}),
        )
        .await
        .unwrap();
    // One object the server refuses (its kind is not served): a failure, not a skip.
    let orphan = json!({"apiVersion": "gone.upkeep.dev/v1", "kind": "Orphan",
        "metadata": {"name": "o", "namespace": "podinfo"}});
    let (run, history) = suspend_history(
        &env,
        env.run(
            vec![config_map("x", "1"), orphan],
            RestoreMode::Replace,
            false,
        ),
    )
    .await;
    let (a, msg) = action(&run, "Orphan", "o");
    assert_eq!(a, RestoreAction::Failed);
    assert!(
        msg.contains("Orphan (gone.upkeep.dev/v1) is not served"),
        "{msg}"
    );
    assert!(run.has_failures());
    assert_eq!(action(&run, "ConfigMap", "x").0, RestoreAction::Created);
    // Suspended first, then resumed (the field removed, as it was), despite the failure.
    assert_eq!(history, [Some(true), None]);
    let ks = env
        .must(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            Some("flux-system"),
            "apps",
        )
        .await;
    assert!(ks["spec"].get("suspend").is_none(), "{}", ks["spec"]);
    // Exactly the running reconcilers were suspended: the user's HelmRelease is not among
    // them and is still suspended.
    let names = suspended_names(&run);
    assert!(
        names.contains(&"Kustomization/apps".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"GitRepository/flux-system".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"HelmRepository/podinfo".to_string()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"HelmRelease/podinfo".to_string()),
        "{names:?}"
    );
    let hr = env
        .must(
            "helm.toolkit.fluxcd.io/v2",
            "HelmRelease",
            Some("podinfo"),
            "podinfo",
        )
        .await;
    assert_eq!(hr["spec"]["suspend"], true);
    // Every other HelmRelease was running, so it was suspended and is running again.
    let jellyfin = names
        .iter()
        .filter(|n| n.starts_with("HelmRelease/"))
        .count();
    assert!(jellyfin >= 5, "{names:?}");
    env.sim.shutdown().await;
}

#[tokio::test]
async fn restored_flux_objects_end_as_stored() {
    let env = start().await;
    let stored = env
        .must(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            Some("flux-system"),
            "apps",
        )
        .await;
    let res = env
        .res("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
        .await;
    env.cluster
        .delete(&res, Some("flux-system"), "apps")
        .await
        .unwrap();
    let run = env
        .run(vec![stored.clone()], RestoreMode::Replace, false)
        .await;
    assert_eq!(
        action(&run, "Kustomization", "apps").0,
        RestoreAction::Created
    );
    assert!(suspended_names(&run).contains(&"Kustomization/apps".to_string()));
    // Created suspended (so it did not start before the rest), resumed to the stored state.
    let live = env
        .must(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            Some("flux-system"),
            "apps",
        )
        .await;
    assert!(live["spec"].get("suspend").is_none(), "{}", live["spec"]);
    assert_eq!(
        upkeep_restore::diff::differences(&stored, &live),
        Vec::<String>::new()
    );
    env.sim.shutdown().await;
}
