//! detect-k3s as a user runs it: the built binary against sim-upstream.

mod common;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_detect-k3s");

#[test]
fn k3s_129_to_stable_hop_by_hop() {
    let sim = Sim::start();
    let (code, doc, _) = run_doc(sim.cmd(BIN).args(["--current", "v1.29.0+k3s1"]));
    assert_eq!(code, 0);
    assert_eq!(doc["component"]["kind"], "k3s");
    assert_eq!(doc["current"]["version"], "v1.29.0+k3s1");
    assert_eq!(doc["observed"][0]["from"], "flag");
    let path = hops(&doc);
    // Latest 1.29 patch first, then every minor up to the stable channel.
    assert_eq!(path.first().map(String::as_str), Some("v1.29.11+k3s1"));
    assert_eq!(path.last().map(String::as_str), Some("v1.36.2+k3s1"));
    let minors: Vec<u64> = path
        .iter()
        .map(|v| v.split('.').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(minors, (29..=36).collect::<Vec<_>>());
    assert_eq!(doc["latestAllowed"], "v1.36.2+k3s1");
    let first = &doc["path"][0];
    assert_eq!(first["from"], "v1.29.0+k3s1");
    assert!(
        first["security"]["ids"]
            .as_array()
            .unwrap()
            .contains(&"CVE-2024-21626".into())
    );
    assert!(first["published"].as_str().unwrap().starts_with("20"));
    let bundled = doc["path"][1]["bundled"].as_array().unwrap();
    assert!(
        bundled
            .iter()
            .any(|b| b["name"] == "CoreDNS" && b["from"] != b["to"]),
        "{bundled:?}"
    );
}

#[test]
fn mixed_version_dump_is_a_finding() {
    let sim = Sim::start();
    let (code, doc, _) = run_doc(
        sim.cmd(BIN)
            .arg("--cluster-dump")
            .arg(cluster("k3s-mixed-etcd.json")),
    );
    assert_eq!(code, 0);
    assert_eq!(doc["current"]["version"], "v1.29.2+k3s1");
    let codes = finding_codes(&doc);
    assert!(codes.contains(&"mixed-versions".to_string()), "{codes:?}");
    assert!(codes.contains(&"datastore".to_string()));
    assert_eq!(doc["observed"][0]["from"], "cluster");
    assert_eq!(doc["observed"][0]["object"]["kind"], "Node");
}

#[test]
fn channel_below_installed_gives_no_downgrade() {
    let sim = Sim::start();
    let (code, doc, _) =
        run_doc(
            sim.cmd(BIN)
                .args(["--current", "v1.37.0+k3s1", "--target", "stable"]),
        );
    assert_eq!(code, 0);
    assert!(hops(&doc).is_empty());
    assert!(finding_codes(&doc).contains(&"target-below-current".to_string()));
    // Every candidate is newer than what is installed.
    for c in doc["candidates"].as_array().unwrap() {
        assert_eq!(c["version"], "v1.37.1+k3s1");
    }
}

#[test]
fn second_run_uses_the_etag_cache_and_offline_works() {
    let sim = Sim::start();
    let args = ["--current", "v1.31.4+k3s1"];
    let (code, first, _) = run_doc(sim.cmd(BIN).args(args));
    assert_eq!(code, 0);
    let n = sim.requests().len();
    assert!(n >= 2, "channels and releases fetched");
    assert!(sim.requests().iter().all(|r| !r.not_modified));

    let (code, second, _) = run_doc(sim.cmd(BIN).args(args));
    assert_eq!(code, 0);
    let log = sim.requests();
    assert_eq!(log.len(), 2 * n);
    assert!(
        log[n..]
            .iter()
            .all(|r| r.status == Some(304) && r.not_modified),
        "{:?}",
        &log[n..]
    );
    assert_eq!(first["path"], second["path"]);
    assert_eq!(first["candidates"], second["candidates"]);

    let (code, offline, _) = run_doc(sim.cmd(BIN).args(args).arg("--offline"));
    assert_eq!(code, 0);
    assert_eq!(sim.requests().len(), 2 * n, "--offline sent requests");
    assert_eq!(offline["path"], first["path"]);
}

#[test]
fn unreachable_upstream_still_writes_the_document_and_exits_3() {
    let home = tempfile::tempdir().unwrap();
    let base = dead_base();
    let (code, doc, stderr) = run_doc(
        isolated(BIN, home.path())
            .args(["--current", "v1.29.0+k3s1", "--github-api", &base])
            .args(["--channels-url", &format!("{base}/v1-release/channels")])
            .arg("--cache-dir")
            .arg(home.path().join("cache")),
    );
    assert_eq!(code, 3, "{stderr}");
    let errors = doc["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e["source"] == "upstream"));
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot reach")
    );
    assert_eq!(doc["current"]["version"], "v1.29.0+k3s1");
    assert!(stderr.contains("cannot reach"), "{stderr}");
}

#[test]
fn offline_with_an_empty_cache_is_an_environment_failure() {
    let sim = Sim::start();
    let (code, doc, _) = run_doc(
        sim.cmd(BIN)
            .args(["--current", "v1.29.0+k3s1", "--offline"]),
    );
    assert_eq!(code, 3);
    assert!(
        doc["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not in the cache")
    );
    assert!(sim.requests().is_empty());
}

#[test]
fn bad_input_is_exit_2_with_one_line() {
    let sim = Sim::start();
    assert_usage_error(sim.cmd(BIN).args(["--current", "one.two"]), "--current");
    assert_usage_error(
        sim.cmd(BIN)
            .args(["--current", "v1.29.0+k3s1", "--target", "soon"]),
        "--target",
    );
    assert_usage_error(
        &mut sim.cmd(BIN),
        "give --current, --gitops DIR or --cluster-dump FILE",
    );
    assert_usage_error(
        sim.cmd(BIN)
            .args(["--cluster-dump", "/nonexistent/dump.json"]),
        "/nonexistent/dump.json",
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("dump.json");
    std::fs::write(&bad, "{\"kind\": \"List\", \"items\": [").unwrap();
    assert_usage_error(sim.cmd(BIN).arg("--cluster-dump").arg(&bad), "not JSON");
    assert_usage_error(
        sim.cmd(BIN)
            .args(["--current", "v1.29.0+k3s1", "--kubernetes-version", "1.29"]),
        "--kubernetes-version",
    );
    assert_usage_error(sim.cmd(BIN).args(["--bogus"]), "--bogus");
    assert!(
        sim.requests().is_empty(),
        "bad input must not reach upstream"
    );
}

#[test]
fn gitops_plan_channel_from_a_real_repo() {
    let Some(repo) = realdata("gitops/billimek__k8s-gitops") else {
        return;
    };
    let sim = Sim::start();
    let (code, doc, _) = run_doc(sim.cmd(BIN).arg("--gitops").arg(&repo).args(["-o", "json"]));
    assert_eq!(code, 0);
    assert_eq!(doc["current"]["version"], "v1.31.10+k3s1");
    assert_eq!(doc["observed"][0]["path"], "system-upgrade/k3s-plan.yaml");
    assert_eq!(
        hops(&doc).first().map(String::as_str),
        Some("v1.32.11+k3s3")
    );
}
