//! `upkeep impact` and `upkeep plan --impact` as a user runs them: the
//! homelab served by sim-cluster (plus objects whose managedFields still
//! name an API Kubernetes 1.32 removes), a GitOps checkout, and a report
//! with a Longhorn minor and a k3s minor.

#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use std::path::Path;

use serde_json::{Value, json};
use sim::*;

const BIN: &str = env!("CARGO_BIN_EXE_upkeep");

fn report(dir: &Path) -> std::path::PathBuf {
    let comp = |kind: &str, name: &str, from: &str, to: &str| {
        json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "ComponentUpdates",
               "component": {"kind": kind, "name": name},
               "current": {"version": from},
               "candidates": [{"version": to, "update": "minor", "allowed": true}],
               "path": [{"from": from, "to": to, "update": "minor"}],
               "checkedAt": "2026-11-28T04:00:00Z"})
    };
    let doc = json!({
        "apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdateReport",
        "generatedAt": "2026-11-28T04:00:00Z",
        "summary": {"components": 2, "withUpdates": 2, "patch": 0, "minor": 2, "major": 0,
                    "security": 0, "breaking": 0, "blocked": 0, "errors": 0},
        "components": [comp("longhorn", "longhorn", "v1.9.0", "v1.10.2"),
                       comp("k3s", "k3s", "v1.31.4+k3s1", "v1.32.11+k3s3")]
    });
    let p = dir.join("report.json");
    std::fs::write(&p, doc.to_string()).unwrap();
    p
}

#[test]
fn impact_reads_the_live_cluster_and_the_checkout() {
    let tmp = tempfile::tempdir().unwrap();
    let extra =
        std::fs::read_to_string(workspace().join("testdata/impact/removed-apis.yaml")).unwrap();
    let cluster = Sim::start(&homelab_with(tmp.path(), &extra), None);
    let r = report(tmp.path());
    let out = tool(BIN, tmp.path())
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .arg("--gitops")
        .arg(workspace().join("testdata/impact/gitops"))
        .args(["-o", "json", "impact", "--report"])
        .arg(&r)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["kind"], "ImpactReport");
    let longhorn = &doc["updates"][0];
    let mut workloads: Vec<String> = longhorn["affected"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["object"]["kind"] == "Deployment")
        .map(|a| a["object"]["name"].as_str().unwrap().to_string())
        .collect();
    workloads.sort();
    assert_eq!(workloads, ["jellyfin", "paperless", "vaultwarden"]);
    assert_eq!(longhorn["storage"].as_array().unwrap().len(), 3);
    let k3s = &doc["updates"][1];
    let codes: Vec<&str> = k3s["breaking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["code"].as_str().unwrap())
        .collect();
    // managedFields come through the live API as they were stored.
    assert!(codes.contains(&"removed-api-in-managed-fields"), "{k3s}");
    assert!(codes.contains(&"removed-api-in-git"), "{k3s}");
    assert_eq!(k3s["risk"], "high");

    // The same, for people, and attached to each step of a plan.
    let out = tool(BIN, tmp.path())
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["impact", "--report"])
        .arg(&r)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Deployment media/jellyfin") && text.contains("risk High"),
        "{text}"
    );
    let out = tool(BIN, tmp.path())
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["-o", "json", "plan", "--impact", "--report"])
        .arg(&r)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let lh = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["component"]["kind"] == "longhorn")
        .unwrap();
    assert!(
        lh["touches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["kind"] == "Deployment" && o["name"] == "jellyfin"),
        "{lh}"
    );
}

#[test]
fn impact_bad_input_is_one_line_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, "{\"kind\": \"UpdateReport\"").unwrap();
    for args in [
        vec!["impact", "--report", bad.to_str().unwrap()],
        vec!["impact"],
        vec![
            "impact",
            "--report",
            bad.to_str().unwrap(),
            "--cluster-dump",
            "/nonexistent.json",
        ],
    ] {
        let out = tool(BIN, tmp.path()).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
}

fn helm() -> Option<std::path::PathBuf> {
    let local = workspace().join(".tools/bin/helm");
    std::env::var_os("HELM")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain([local])
        .find(|p| p.is_file())
}

/// A chart `widget` at `version` packaged by the real helm into `repo`.
fn package(
    helm: &Path,
    work: &Path,
    repo: &Path,
    version: &str,
    values: &str,
    v1alpha1_served: bool,
) {
    let dir = work.join(format!("widget-{version}/widget"));
    std::fs::create_dir_all(dir.join("crds")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        format!("apiVersion: v2\nname: widget\nversion: {version}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("values.yaml"), values).unwrap();
    std::fs::write(
        dir.join("crds/widgets.yaml"),
        format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\n\
             spec:\n  group: example.com\n  scope: Namespaced\n  names: {{kind: Widget, plural: widgets}}\n  versions:\n\
             \x20 - {{name: v1alpha1, served: {v1alpha1_served}, storage: false, schema: {{openAPIV3Schema: {{type: object}}}}}}\n\
             \x20 - {{name: v1, served: true, storage: true, schema: {{openAPIV3Schema: {{type: object}}}}}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
    )
    .unwrap();
    let out = std::process::Command::new(helm)
        .arg("package")
        .arg(&dir)
        .arg("-d")
        .arg(repo)
        .env("HOME", work)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm package: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_values_keys_and_crd_versions_the_new_version_drops() {
    let Some(helm) = helm() else {
        assert!(
            !is_root(),
            "helm is missing: scripts/install-test-deps.sh installs it"
        );
        eprintln!("SKIP: helm not found (scripts/install-test-deps.sh installs it)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let fx = tmp.path().join("upstream");
    let repo = fx.join("helm/widget");
    std::fs::create_dir_all(&repo).unwrap();
    package(
        &helm,
        tmp.path(),
        &repo,
        "1.0.0",
        "controller:\n  admissionWebhooks:\n    port: 8443\n  podAnnotations: {}\nreplicas: 1\n",
        true,
    );
    package(
        &helm,
        tmp.path(),
        &repo,
        "2.0.0",
        "controller:\n  webhooks:\n    port: 8443\n  podAnnotations: {}\nreplicas: 1\n",
        false,
    );
    // Relative archive URLs and sha256 digests, as `helm repo index` writes them.
    let out = std::process::Command::new(&helm)
        .args(["repo", "index"])
        .arg(&repo)
        .env("HOME", tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dump = tmp.path().join("cluster.yaml");
    std::fs::write(
        &dump,
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: widget, namespace: apps}\n\
         spec:\n  chart: {spec: {chart: widget, version: 1.0.0}}\n  values:\n    controller:\n      admissionWebhooks: {port: 9443}\n\
         \x20     podAnnotations: {team: media}\n    replicas: 2\n---\n\
         apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\n\
         spec: {group: example.com, names: {kind: Widget, plural: widgets}, scope: Namespaced, versions: []}\n\
         status: {storedVersions: [v1alpha1, v1]}\n---\n\
         apiVersion: example.com/v1alpha1\nkind: Widget\nmetadata: {name: gear, namespace: apps}\n",
    )
    .unwrap();
    let report = tmp.path().join("report.json");
    std::fs::write(
        &report,
        json!({
            "apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdateReport",
            "generatedAt": "2026-11-28T04:00:00Z",
            "summary": {"components": 1, "withUpdates": 1, "patch": 0, "minor": 0, "major": 1,
                        "security": 0, "breaking": 0, "blocked": 0, "errors": 0},
            "components": [{"apiVersion": "upkeep.dev/v1alpha1", "kind": "ComponentUpdates",
                "component": {"kind": "chart", "name": "widget", "namespace": "apps",
                              "source": {"type": "helm-http", "url": "https://charts.example.org", "chart": "widget"}},
                "current": {"version": "1.0.0"},
                "candidates": [{"version": "2.0.0", "update": "major", "allowed": true}],
                "path": [{"from": "1.0.0", "to": "2.0.0", "update": "major"}],
                "checkedAt": "2026-11-28T04:00:00Z"}]
        })
        .to_string(),
    )
    .unwrap();

    let impact = |sim: &sim_upstream::SimUpstream, name: &str| {
        let cfg = tmp.path().join(format!("{name}.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "apiVersion: upkeep.dev/v1alpha1\nkind: Config\nupstreams:\n  helmMirrors:\n    https://charts.example.org: {}/helm/widget\n\
                 http:\n  retries: 0\ncache:\n  dir: {}\n",
                sim.base_url(),
                tmp.path().join(format!("cache-{name}")).display()
            ),
        )
        .unwrap();
        let out = tool(BIN, tmp.path())
            .arg("--config")
            .arg(&cfg)
            .args(["-o", "json", "impact", "--report"])
            .arg(&report)
            .arg("--cluster-dump")
            .arg(&dump)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["updates"][0].clone()
    };

    let sim = sim_upstream::SimUpstream::start(sim_upstream::SimOptions::new(fx.clone()))
        .await
        .unwrap();
    let u = tokio::task::block_in_place(|| impact(&sim, "good"));
    let breaking = u["breaking"].as_array().unwrap();
    let by_code = |c: &str| -> Vec<&Value> { breaking.iter().filter(|b| b["code"] == c).collect() };
    let values = by_code("removed-values-key");
    assert_eq!(values.len(), 1, "{u:#}");
    let msg = values[0]["message"].as_str().unwrap();
    assert!(msg.contains("controller.admissionWebhooks.port"), "{msg}");
    assert!(
        msg.contains("perhaps now controller.webhooks.port"),
        "{msg}"
    );
    assert_eq!(
        values[0]["locations"][0]["field"],
        "spec.values.controller.admissionWebhooks.port"
    );
    let crds = by_code("removed-crd-version");
    assert_eq!(crds.len(), 1, "{u:#}");
    let msg = crds[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("widgets.example.com no longer serves v1alpha1"),
        "{msg}"
    );
    assert!(
        msg.contains("storedVersions") && msg.contains("Widget apps/gear"),
        "{msg}"
    );
    assert_eq!(crds[0]["severity"], "blocking");
    assert_eq!(u["risk"], "high");
    drop(sim);

    // An archive that is not the one the index's digest names is not read.
    let archive = repo.join("widget-2.0.0.tgz");
    let mut bytes = std::fs::read(&archive).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&archive, bytes).unwrap();
    let sim = sim_upstream::SimUpstream::start(sim_upstream::SimOptions::new(fx))
        .await
        .unwrap();
    let u = tokio::task::block_in_place(|| impact(&sim, "tampered"));
    assert!(
        u["breaking"].as_array().is_none_or(|b| b.is_empty()),
        "{u:#}"
    );
    let recs = u["recommendations"].to_string();
    assert!(
        recs.contains("were not compared") && recs.contains("sha256"),
        "{recs}"
    );
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
