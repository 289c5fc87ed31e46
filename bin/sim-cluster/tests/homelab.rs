//! The homelab fixture (testdata/clusters/homelab) as kubectl sees it, alone and with every
//! simulated controller running (testdata/sim-cluster/homelab-SIM.yaml).

mod common;

use common::{Server, eventually, names, repo_root};
use serde_json::Value;

fn homelab() -> std::path::PathBuf {
    repo_root().join("testdata/clusters/homelab")
}

fn sim_yaml() -> String {
    repo_root()
        .join("testdata/sim-cluster/homelab-SIM.yaml")
        .display()
        .to_string()
}

const RELEASES: [&str; 7] = [
    "cert-manager",
    "ingress-nginx",
    "jellyfin",
    "longhorn",
    "paperless",
    "podinfo",
    "vaultwarden",
];

#[test]
fn homelab_loads_and_kubectl_lists_its_helmreleases() {
    let s = Server::start(&homelab(), &[]);
    let out = s.ok(&["get", "helmreleases", "-A"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let mut listed: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    listed.sort();
    assert_eq!(listed, RELEASES, "{out}");
    assert!(rows.iter().all(|r| r[3] == "True"), "all Ready: {out}");
    let hrs = s.json(&["get", "helmreleases", "-A"]);
    for hr in hrs["items"].as_array().unwrap() {
        let h0 = &hr["status"]["history"][0];
        assert_eq!(h0["status"], "deployed", "{hr}");
        assert_eq!(h0["chartVersion"], hr["spec"]["chart"]["spec"]["version"]);
    }
    let nodes = s.json(&["get", "nodes"]);
    assert_eq!(names(&nodes), ["k3s-s1", "k3s-s2", "k3s-s3"]);
    let vols = s.json(&["get", "volumes.longhorn.io", "-n", "longhorn-system"]);
    assert_eq!(vols["items"].as_array().unwrap().len(), 3);
    let pvcs = s.json(&["get", "pvc", "-A"]);
    assert!(
        pvcs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["status"]["phase"] == "Bound")
    );
    let ing = s.json(&["get", "ingress", "-A"]);
    assert_eq!(ing["items"].as_array().unwrap().len(), 4);
    let setting = s.json(&[
        "get",
        "settings.longhorn.io",
        "current-longhorn-version",
        "-n",
        "longhorn-system",
    ]);
    assert_eq!(setting["value"], "v1.9.0");
    let flux_ns = s.json(&["get", "namespace", "flux-system"]);
    assert_eq!(
        flux_ns["metadata"]["labels"]["app.kubernetes.io/version"],
        "v2.9.4"
    );
    s.ok(&["get", "certificates", "-A"]);
    s.ok(&["get", "plans", "-A"]);
}

fn resource_version(s: &Server) -> u64 {
    let v: Value =
        serde_json::from_str(&s.ok(&["get", "--raw", "/api/v1/namespaces?limit=1"])).unwrap();
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn homelab_with_every_controller_settles_then_upgrades_and_remediates() {
    let s = Server::start(&homelab(), &["--config", &sim_yaml()]);
    // The controllers settle: the server plan relabels the nodes, then nothing more changes.
    eventually("a quiet cluster", || {
        let a = resource_version(&s);
        std::thread::sleep(std::time::Duration::from_secs(3));
        (a == resource_version(&s)).then_some(())
    });
    let hrs = s.json(&["get", "helmreleases", "-A"]);
    for hr in hrs["items"].as_array().unwrap() {
        assert_eq!(
            hr["status"]["history"][0]["chartVersion"], hr["spec"]["chart"]["spec"]["version"],
            "settling changed nothing installed: {hr}"
        );
    }
    let vols = s.json(&["get", "volumes.longhorn.io", "-n", "longhorn-system"]);
    for v in vols["items"].as_array().unwrap() {
        assert_eq!(v["status"]["state"], "attached", "{v}");
        assert_eq!(v["status"]["robustness"], "healthy", "{v}");
    }
    // An upgrade goes through.
    s.ok(&[
        "patch",
        "helmrelease",
        "podinfo",
        "-n",
        "podinfo",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"chart":{"spec":{"version":"6.8.0"}}}}"#,
    ]);
    eventually("podinfo 6.8.0", || {
        let hr = s.json(&["get", "helmrelease", "podinfo", "-n", "podinfo"]);
        (hr["status"]["history"][0]["chartVersion"] == "6.8.0"
            && hr["status"]["history"][0]["status"] == "deployed")
            .then_some(())
    });
    // A broken Longhorn chart is rolled back after its 3 retries; the version setting stays.
    s.ok(&[
        "patch",
        "helmrelease",
        "longhorn",
        "-n",
        "longhorn-system",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"chart":{"spec":{"version":"1.10.0"}}}}"#,
    ]);
    let hr = eventually("longhorn 1.10.0 stalled", || {
        let hr = s.json(&["get", "helmrelease", "longhorn", "-n", "longhorn-system"]);
        hr["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Stalled" && c["status"] == "True")
            .then_some(hr)
    });
    assert_eq!(hr["status"]["upgradeFailures"], 4);
    assert_eq!(hr["status"]["history"][0]["chartVersion"], "1.9.0");
    assert_eq!(hr["status"]["history"][0]["action"], "rollback");
    let setting = s.json(&[
        "get",
        "settings.longhorn.io",
        "current-longhorn-version",
        "-n",
        "longhorn-system",
    ]);
    assert_eq!(setting["value"], "v1.9.0");
    // SIGTERM stops the server and its controller threads cleanly.
    assert!(s.terminate().success());
}
