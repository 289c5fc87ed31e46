//! The file source reads what the real `kubectl get -o json|yaml` writes (generated here by
//! running /usr/bin/kubectl against sim-cluster), and answers the same reads as the live
//! cluster it came from.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt};
use sim_cluster::{ServeConfig, SimCluster};
use upkeep_kube::{
    Cluster, ClusterRead, ConnectOptions, FileSource, KubeError, ListOptions, ResourceRef, Source,
};

const KUBECTL: &str = "/usr/bin/kubectl";

async fn kubectl(kubeconfig: &Path, args: &[&str], out: &Path) {
    let output = tokio::process::Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(out, &output.stdout).unwrap();
}

/// The names a source lists for a resource, sorted, as `namespace/name`.
async fn names<S: ClusterRead>(src: &S, r: &ResourceRef, opts: &ListOptions) -> BTreeSet<String> {
    let res = src.resource(r).await.unwrap();
    src.list(&res, opts)
        .map_ok(|o| {
            format!(
                "{}/{}",
                o.metadata.namespace.unwrap_or_default(),
                o.metadata.name.unwrap_or_default()
            )
        })
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn reads_real_kubectl_output_like_the_live_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sim-cluster/basic");
    let store = sim_cluster::load_dir(&fixture).unwrap();
    let sim = SimCluster::start(store, ServeConfig::new(dir.path().join("kc")))
        .await
        .unwrap();
    let kc = sim.kubeconfig_path().to_path_buf();

    let list = dir.path().join("list.json");
    kubectl(
        &kc,
        &[
            "get",
            "configmaps,deployments.apps,widgets.sim.upkeep.dev",
            "-A",
            "-o",
            "json",
        ],
        &list,
    )
    .await;
    let single = dir.path().join("blue.json");
    kubectl(
        &kc,
        &["get", "widget", "blue", "-n", "apps", "-o", "json"],
        &single,
    )
    .await;
    let yaml = dir.path().join("namespaces.yaml");
    kubectl(&kc, &["get", "namespaces", "-o", "yaml"], &yaml).await;
    let empty = dir.path().join("empty.json");
    kubectl(&kc, &["get", "secrets", "-n", "apps", "-o", "json"], &empty).await;
    // The real shape: a v1 List whose items carry their own apiVersion and kind.
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(&list).unwrap()).unwrap();
    assert_eq!(raw["kind"], "List");
    assert_eq!(raw["apiVersion"], "v1");

    let files = FileSource::load([&list, &single, &yaml, &empty]).unwrap();
    let live = Cluster::connect(&ConnectOptions::default().kubeconfig(&kc))
        .await
        .unwrap();
    // What a tool's `--from-file` does: files when given, else the cluster.
    let opts = ConnectOptions::default().kubeconfig(&kc);
    let Source::Files(opened) = Source::open(&[&list], &opts).await.unwrap() else {
        panic!("files given: the file source");
    };
    assert_eq!(opened.len(), 5, "3 ConfigMaps, 1 Deployment, 1 Widget");
    let none: [&Path; 0] = [];
    assert!(matches!(
        Source::open(&none, &opts).await.unwrap(),
        Source::Live(_)
    ));
    assert!(files.source_name().contains("list.json"));

    // Served kinds: what the files hold, with scope and plural derived.
    let served = files.resources().await.unwrap();
    let kinds: BTreeSet<_> = served
        .iter()
        .map(|r| format!("{}:{}:{}", r.api.api_version, r.api.kind, r.namespaced))
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "apps/v1:Deployment:true".to_string(),
            "sim.upkeep.dev/v1:Widget:true".to_string(),
            "v1:ConfigMap:true".to_string(),
            "v1:Namespace:false".to_string(),
        ])
    );
    let widgets = files
        .resource(&ResourceRef::preferred("sim.upkeep.dev", "widgets"))
        .await
        .unwrap();
    assert_eq!(widgets.api.kind, "Widget");
    let secrets = files
        .resource(&ResourceRef::new("", "v1", "Secret"))
        .await
        .unwrap_err();
    assert!(secrets.is_not_found(), "{secrets}");
    assert!(
        secrets.to_string().contains("is not served by files"),
        "{secrets}"
    );

    // The same questions, through one generic type, get the same answers from both sources.
    let sources = [Source::Files(files), Source::Live(live)];
    let cms = ResourceRef::new("", "v1", "ConfigMap");
    let queries = [
        ListOptions::all_namespaces(),
        ListOptions::in_namespace("apps"),
        ListOptions::all_namespaces().labels("app=web"),
        ListOptions::all_namespaces().labels("env in (prod),tier"),
        ListOptions::all_namespaces().labels("app,!tier"),
        ListOptions::all_namespaces().fields("metadata.name=api-settings"),
        ListOptions::in_namespace("nowhere"),
    ];
    for q in &queries {
        let from_files = names(&sources[0], &cms, q).await;
        let from_live = names(&sources[1], &cms, q).await;
        assert_eq!(from_files, from_live, "{q:?}");
    }
    assert_eq!(
        names(&sources[0], &cms, &queries[2]).await,
        BTreeSet::from([
            "apps/web-canary".to_string(),
            "apps/web-settings".to_string()
        ])
    );
    let ns = ResourceRef::new("", "v1", "Namespace");
    assert_eq!(
        names(&sources[0], &ns, &ListOptions::all_namespaces()).await,
        names(&sources[1], &ns, &ListOptions::all_namespaces()).await
    );
    for src in &sources {
        let w = src
            .resource(&ResourceRef::preferred("sim.upkeep.dev", "Widget"))
            .await
            .unwrap();
        let blue = src
            .get(&w, Some("apps"), "blue")
            .await
            .unwrap()
            .expect("blue");
        assert_eq!(blue.data["spec"]["size"], 3, "{}", src.source_name());
        assert!(src.get(&w, Some("apps"), "red").await.unwrap().is_none());
    }

    // Files cannot answer a field selector they do not understand, and say so.
    let res = sources[0].resource(&cms).await.unwrap();
    let bad_query = ListOptions::all_namespaces().fields("status.phase=Running");
    let err: Vec<Result<_, KubeError>> = sources[0].list(&res, &bad_query).collect().await;
    assert_eq!(err.len(), 1);
    let err = err.into_iter().next().unwrap().unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("status.phase"), "{err}");

    sim.shutdown().await;
}

#[test]
fn truncated_kubectl_output_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.json");
    std::fs::write(
        &p,
        r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","#,
    )
    .unwrap();
    let err = FileSource::load([&p]).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("{}: document 1: malformed JSON: EOF", p.display())),
        "{msg}"
    );
    let missing = dir.path().join("missing.json");
    let err = FileSource::load([&missing]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: cannot read: No such file or directory (os error 2)",
            missing.display()
        )
    );
}
