//! detect-charts with the cluster as an input: the real binary against
//! sim-cluster serving testdata/sim-cluster/charts-releases (HelmReleases
//! whose status is installed, failed, stuck or drifted), next to the
//! checkout testdata/gitops/charts-cluster, with sim-upstream serving the
//! Longhorn chart repository through an upkeep.yaml mirror.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sim_upstream::{SimOptions, SimUpstream};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn checkout() -> PathBuf {
    root().join("testdata/gitops/charts-cluster")
}

/// The binary with no user config, kubeconfig or cache of the developer's.
fn command(home: &Path, args: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_detect-charts"));
    c.args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("UPKEEP_CONFIG")
        .env_remove("UPKEEP_GITOPS_DIR")
        .env_remove("UPKEEP_OFFLINE")
        .env_remove("UPKEEP_CACHE_DIR");
    c
}

async fn run(home: &Path, args: Vec<String>) -> Output {
    let home = home.to_path_buf();
    tokio::task::spawn_blocking(move || command(&home, &args).output().unwrap())
        .await
        .unwrap()
}

fn docs(o: &Output) -> Vec<Value> {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn by_name<'a>(docs: &'a [Value], name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["component"]["name"] == name)
        .unwrap_or_else(|| panic!("no document for {name}"))
}

fn codes(d: &Value) -> Vec<&str> {
    d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect()
}

fn finding<'a>(d: &'a Value, code: &str) -> &'a Value {
    d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {}", d["findings"]))
}

fn line_of(file: &Path, needle: &str) -> u64 {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap() as u64 + 1
}

/// sim-upstream (the Longhorn repository), sim-cluster on the fixture, and
/// an upkeep.yaml mapping the repository to the sim.
struct World {
    sim: SimUpstream,
    cluster: Option<sim_cluster::SimCluster>,
    dir: tempfile::TempDir,
}

impl World {
    async fn start() -> World {
        let sim = SimUpstream::start(SimOptions::new(sim_upstream::workspace_fixture()))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store =
            sim_cluster::load_dir(&root().join("testdata/sim-cluster/charts-releases")).unwrap();
        let cfg = sim_cluster::ServeConfig::new(dir.path().join("kubeconfig"));
        let cluster = sim_cluster::SimCluster::start(store, cfg).await.unwrap();
        std::fs::write(
            dir.path().join("upkeep.yaml"),
            format!(
                "upstreams:\n  helmMirrors:\n    https://charts.longhorn.io: {}/helm/longhorn\nhttp:\n  retries: 0\n  timeout: 10s\n",
                sim.base_url()
            ),
        )
        .unwrap();
        World {
            sim,
            cluster: Some(cluster),
            dir,
        }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.cluster
            .as_ref()
            .unwrap()
            .kubeconfig_path()
            .to_path_buf()
    }

    fn home(&self) -> &Path {
        self.dir.path()
    }

    /// `--config` and `--cache-dir` of this world, then `extra`.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut a = vec![
            "--config".to_string(),
            self.dir.path().join("upkeep.yaml").display().to_string(),
            "--cache-dir".to_string(),
            self.dir.path().join("cache").display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    async fn stop(mut self) {
        if let Some(c) = self.cluster.take() {
            c.shutdown().await;
        }
        drop(self.sim);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_and_checkout_disagreements_are_findings() {
    let w = World::start().await;
    let kubeconfig = w.kubeconfig().display().to_string();
    let gitops = checkout().display().to_string();
    let out = run(
        w.home(),
        w.args(&["--gitops", &gitops, "--kubeconfig", &kubeconfig]),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let docs = docs(&out);
    // Five in the checkout (in file order), then the one only the cluster has.
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["component"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "longhorn",
            "longhorn-dr",
            "longhorn-drift",
            "longhorn-stuck",
            "longhorn-new",
            "longhorn-manual"
        ]
    );
    let releases = checkout().join("apps/releases.yaml");

    // Installed 1.9.0 is current (not the checkout's 1.9.1), read from both places.
    let lh = by_name(&docs, "longhorn");
    assert_eq!(lh["current"]["version"], "1.9.0");
    assert_eq!(lh["observed"][0]["from"], "cluster");
    assert_eq!(lh["observed"][0]["field"], "status.history[0].chartVersion");
    assert_eq!(lh["observed"][0]["object"]["name"], "longhorn");
    assert_eq!(lh["observed"][1]["from"], "gitops");
    assert_eq!(lh["observed"][1]["path"], "apps/releases.yaml");
    let spec_differs = finding(lh, "spec-differs");
    assert!(
        spec_differs["message"].as_str().unwrap().contains("1.9.1"),
        "{spec_differs}"
    );
    // The checkout's pin is 1.9.1 and 1.9.0 runs.
    assert!(codes(lh).contains(&"installed-differs"), "{:?}", codes(lh));
    let git = finding(lh, "needs-git-change");
    assert_eq!(git["severity"], "info");
    assert!(
        git["message"].as_str().unwrap().contains(&format!(
            "apps/releases.yaml:{}",
            line_of(&releases, "\"1.9.1\"")
        )),
        "{git}"
    );
    // The Kubernetes version came from the node: candidates exist, nothing is held back for lack of it.
    assert!(!lh["candidates"].as_array().unwrap().is_empty());

    // ~1.10.0 with 1.10.0 installed: Flux moves to 1.10.2 on its own.
    let dr = by_name(&docs, "longhorn-dr");
    assert_eq!(dr["current"]["version"], "1.10.0");
    assert_eq!(dr["latestAllowed"], "1.10.2");
    let auto = finding(dr, "auto-update-in-range");
    assert_eq!(auto["severity"], "info");
    assert!(auto["message"].as_str().unwrap().contains("1.10.2"));
    assert!(!codes(dr).contains(&"installed-differs"));
    assert!(!codes(dr).contains(&"spec-differs"));

    // Pinned 1.9.2, upgrade failed and rolled back to 1.9.1.
    let drift = by_name(&docs, "longhorn-drift");
    assert_eq!(drift["current"]["version"], "1.9.1");
    let differs = finding(drift, "installed-differs");
    assert!(
        differs["message"]
            .as_str()
            .unwrap()
            .contains("1.9.1 is installed but the HelmRelease pins 1.9.2"),
        "{differs}"
    );
    let failed = finding(drift, "release-failed");
    assert_eq!(failed["severity"], "warning");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("UpgradeFailed: context deadline exceeded"),
        "{failed}"
    );

    // Stalled: helm-controller gave up; that blocks updating it.
    let stuck = by_name(&docs, "longhorn-stuck");
    let s = finding(stuck, "release-stuck");
    assert_eq!(s["severity"], "blocking");
    assert!(s["message"].as_str().unwrap().contains("RetriesExceeded"));
    assert!(codes(stuck).contains(&"release-failed"));

    let new = by_name(&docs, "longhorn-new");
    assert_eq!(codes(new)[0], "checkout-only");
    assert_eq!(new["observed"].as_array().unwrap().len(), 1);
    let manual = by_name(&docs, "longhorn-manual");
    assert!(codes(manual).contains(&"cluster-only"));
    assert_eq!(manual["current"]["version"], "1.8.2");
    assert_eq!(
        manual["component"]["source"]["url"],
        "https://charts.longhorn.io"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_of_the_cluster_gives_the_same_documents() {
    let w = World::start().await;
    let kubeconfig = w.kubeconfig().display().to_string();
    // No checkout: the cluster alone, and the same from kubectl's output.
    let live = run(w.home(), w.args(&["--kubeconfig", &kubeconfig])).await;
    assert_eq!(
        live.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    let dump = w.home().join("cluster.json");
    let out = Command::new("kubectl")
        .env_clear()
        .env("HOME", w.home())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "get",
            "nodes,helmreleases.helm.toolkit.fluxcd.io,helmrepositories.source.toolkit.fluxcd.io",
            "-A",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&dump, &out.stdout).unwrap();
    let dump_arg = dump.display().to_string();
    let from_dump = run(w.home(), w.args(&["--cluster-dump", &dump_arg])).await;
    assert_eq!(from_dump.status.code(), Some(0));
    let strip = |mut docs: Vec<Value>| {
        for d in &mut docs {
            d.as_object_mut().unwrap().remove("checkedAt");
        }
        docs
    };
    let (live, from_dump) = (strip(docs(&live)), strip(docs(&from_dump)));
    assert_eq!(live.len(), 5);
    assert_eq!(live, from_dump);
    // Cluster only: no checkout-only/cluster-only findings, the cluster's spec is what is checked.
    let drift = by_name(&live, "longhorn-drift");
    assert!(codes(drift).contains(&"installed-differs"));
    assert!(!codes(drift).contains(&"cluster-only"));
    assert_eq!(drift["observed"].as_array().unwrap().len(), 1);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_exit_3_with_the_checkout_still_reported() {
    let w = World::start().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let kubeconfig = w.home().join("dead-kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: {dead}\n\
             contexts:\n- name: gone\n  context:\n    cluster: gone\n    user: nobody\n\
             current-context: gone\nusers:\n- name: nobody\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let kc = kubeconfig.display().to_string();
    let gitops = checkout().display().to_string();
    let out = run(
        w.home(),
        w.args(&["--gitops", &gitops, "--kubeconfig", &kc]),
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    let docs = docs(&out);
    assert_eq!(docs.len(), 5);
    for d in &docs {
        let e = d["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["source"] == "cluster")
            .unwrap_or_else(|| panic!("no cluster error in {}", d["errors"]));
        assert_eq!(e["target"], dead.as_str());
        // The checkout alone still gives the version it selects.
        assert!(d["observed"][0]["from"] == "gitops");
    }
    // Without a checkout there is nothing to report: exit 3, nothing on stdout.
    let out = run(w.home(), w.args(&["--kubeconfig", &kc])).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    w.stop().await;
}

#[test]
fn no_input_and_bad_cluster_input_are_exit_2_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let usage = |args: &[&str], needle: &str| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = command(home.path(), &args).output().unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    };
    // No checkout, no kubeconfig anywhere, not in a pod.
    usage(&[], "nothing to read");
    let dump = home.path().join("dump.json");
    std::fs::write(&dump, "{\"kind\": ").unwrap();
    let d = dump.display().to_string();
    usage(&["--cluster-dump", &d], "dump.json");
    usage(
        &["--cluster-dump", &d, "--kubeconfig", "/dev/null"],
        "--kubeconfig",
    );
    let bad = home.path().join("kubeconfig");
    std::fs::write(&bad, "clusters: [").unwrap();
    usage(&["--kubeconfig", &bad.display().to_string()], "kubeconfig");
}
