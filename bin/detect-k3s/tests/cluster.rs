//! detect-k3s reading a live cluster: the built binary with `--kubeconfig`
//! against sim-cluster (serving testdata/sim-cluster fixtures) and
//! sim-upstream, both in process.

mod common;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_detect-k3s");

fn minors(path: &[String]) -> Vec<u64> {
    path.iter()
        .map(|v| v.split('.').nth(1).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn a_129_cluster_told_to_reach_stable_goes_one_minor_at_a_time() {
    let sim = Sim::start();
    let k8s = sim.cluster("sim-cluster/k3s-v1.29", "v1.29.4+k3s1", false);
    let (code, doc, stderr) = run_doc(
        sim.cmd(BIN)
            .arg("--kubeconfig")
            .arg(k8s.kubeconfig())
            .args(["--target", "stable"]),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["current"]["version"], "v1.29.4+k3s1");
    assert_eq!(doc["observed"][0]["from"], "cluster");
    assert_eq!(doc["observed"][0]["object"]["kind"], "Node");
    let path = hops(&doc);
    // The latest 1.29 patch first, then each minor up to the stable channel.
    assert_eq!(path.first().map(String::as_str), Some("v1.29.11+k3s1"));
    assert_eq!(minors(&path), (29..=36).collect::<Vec<_>>());
    assert_eq!(
        doc["latestAllowed"].as_str(),
        path.last().map(String::as_str)
    );
    assert_eq!(doc["path"][0]["from"], "v1.29.4+k3s1");
    let codes = finding_codes(&doc);
    assert!(!codes.contains(&"mixed-versions".to_string()), "{codes:?}");
    let datastore = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "datastore")
        .expect("datastore finding");
    // One server without the etcd role: SQLite, not embedded etcd.
    assert!(
        datastore["message"].as_str().unwrap().contains("SQLite"),
        "{datastore}"
    );
    assert!(doc["errors"].as_array().unwrap().is_empty());
}

#[test]
fn a_mixed_version_cluster_is_a_finding_and_its_dump_says_the_same() {
    let sim = Sim::start();
    let k8s = sim.cluster("sim-cluster/k3s-mixed", "v1.30.6+k3s1", false);
    let (code, live, stderr) = run_doc(sim.cmd(BIN).arg("--kubeconfig").arg(k8s.kubeconfig()));
    assert_eq!(code, 0, "{stderr}");
    // The oldest node decides where the path starts.
    assert_eq!(live["current"]["version"], "v1.29.10+k3s1");
    let codes = finding_codes(&live);
    assert!(codes.contains(&"mixed-versions".to_string()), "{codes:?}");
    let mixed = live["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "mixed-versions")
        .unwrap();
    assert!(
        mixed["message"]
            .as_str()
            .unwrap()
            .contains("worker-2 v1.29.10+k3s1"),
        "the lagging node is named: {mixed}"
    );
    assert!(codes.contains(&"datastore".to_string()));
    // k3s's own HelmChart and Addon, served by the cluster's CRDs, are
    // reported under k3s; the user's HelmChart is not.
    let packaged: Vec<String> = live["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "k3s-packaged-component")
        .map(|f| {
            f["locations"][0]["object"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(packaged, ["traefik", "coredns"]);
    assert_eq!(minors(&hops(&live))[..2], [29, 30]);

    // The same objects saved by the real kubectl and read back with
    // --cluster-dump give the same document.
    let dump = k8s.kubectl(&[
        "get",
        "nodes,namespaces,crds,helmcharts.helm.cattle.io,addons.k3s.cattle.io",
        "-A",
        "-o",
        "json",
    ]);
    let file = k8s.dir.path().join("dump.json");
    std::fs::write(&file, dump).unwrap();
    let (code, from_dump, stderr) = run_doc(sim.cmd(BIN).arg("--cluster-dump").arg(&file));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(comparable(from_dump), comparable(live));
}

#[test]
fn tls_and_contexts_work_as_kubectl_does() {
    let sim = Sim::start();
    let k8s = sim.cluster("sim-cluster/k3s-v1.29", "v1.29.4+k3s1", true);
    let kubeconfig = std::fs::read_to_string(k8s.kubeconfig()).unwrap();
    assert!(kubeconfig.contains("https://"), "{kubeconfig}");
    let (code, doc, stderr) = run_doc(sim.cmd(BIN).arg("--kubeconfig").arg(k8s.kubeconfig()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["current"]["version"], "v1.29.4+k3s1");
    // KUBECONFIG and ~/.kube/config are read as kubectl reads them: with
    // nothing else given, the cluster they name is the source.
    let (code, doc, stderr) = run_doc(sim.cmd(BIN).env("KUBECONFIG", k8s.kubeconfig()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["current"]["version"], "v1.29.4+k3s1");
    let kube_dir = sim.home.path().join(".kube");
    std::fs::create_dir_all(&kube_dir).unwrap();
    std::fs::copy(k8s.kubeconfig(), kube_dir.join("config")).unwrap();
    let (code, doc, stderr) = run_doc(&mut sim.cmd(BIN));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["observed"][0]["from"], "cluster");
    // A context the kubeconfig does not define is bad input, named.
    assert_usage_error(
        sim.cmd(BIN)
            .arg("--kubeconfig")
            .arg(k8s.kubeconfig())
            .args(["--context", "nope"]),
        "context \"nope\" not found",
    );
}

#[test]
fn an_ad_hoc_current_run_does_not_reach_the_shells_cluster() {
    let sim = Sim::start();
    let home = tempfile::tempdir().unwrap();
    let dead = dead_kubeconfig(home.path());
    // KUBECONFIG names a cluster that is not there; --current says enough.
    let (code, doc, stderr) = run_doc(
        sim.cmd(BIN)
            .env("KUBECONFIG", &dead)
            .args(["--current", "v1.29.0+k3s1"]),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(doc["errors"].as_array().unwrap().is_empty());
    assert_eq!(doc["observed"].as_array().unwrap().len(), 1);
}

#[test]
fn an_unreachable_cluster_is_exit_3() {
    let sim = Sim::start();
    let home = tempfile::tempdir().unwrap();
    let dead = dead_kubeconfig(home.path());
    // With --current the rest can proceed: the document is written, the
    // cluster's failure in `errors`.
    let (code, doc, stderr) = run_doc(
        sim.cmd(BIN)
            .arg("--kubeconfig")
            .arg(&dead)
            .args(["--current", "v1.29.0+k3s1"]),
    );
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(doc["current"]["version"], "v1.29.0+k3s1");
    assert!(!hops(&doc).is_empty());
    let errors = doc["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["source"], "cluster");
    let server = std::fs::read_to_string(&dead).unwrap();
    let target = errors[0]["target"].as_str().unwrap();
    assert!(server.contains(target), "{target} not in {server}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot reach"),
        "{errors:?}"
    );
    // Without it there is nothing to report: one line, exit 3.
    let out = sim
        .cmd(BIN)
        .arg("--kubeconfig")
        .arg(&dead)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
}

#[test]
fn a_bad_kubeconfig_is_exit_2_with_one_line() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("kubeconfig");
    std::fs::write(&bad, "apiVersion: v1\nclusters: [\n").unwrap();
    assert_usage_error(
        sim.cmd(BIN)
            .arg("--kubeconfig")
            .arg(&bad)
            .args(["--current", "v1.29.0+k3s1"]),
        "malformed YAML",
    );
    assert_usage_error(
        sim.cmd(BIN)
            .args(["--kubeconfig", "/nonexistent/kubeconfig"]),
        "/nonexistent/kubeconfig",
    );
    assert_usage_error(
        sim.cmd(BIN)
            .args(["--kubeconfig", "/nonexistent/kubeconfig"])
            .arg("--cluster-dump")
            .arg(cluster("k3s-mixed-etcd.json")),
        "--cluster-dump",
    );
    assert!(
        sim.requests().is_empty(),
        "bad input must not reach upstream"
    );
}
