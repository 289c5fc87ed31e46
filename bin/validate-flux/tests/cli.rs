//! validate-flux as a user runs it: the built binary against sim-cluster
//! serving the homelab (healthy) and the charts-releases fixture (a stalled,
//! a failed and a drifted HelmRelease).

#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use std::process::Command;

use serde_json::Value;
use sim::*;

const BIN: &str = env!("CARGO_BIN_EXE_validate-flux");

fn run(c: &mut Command) -> (i32, Value, String) {
    let out = c.output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let report = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not a report ({e}): {stdout:?} {stderr}"));
    (out.status.code().unwrap(), report, stderr)
}

fn validate(sim: &Sim, home: &std::path::Path) -> Command {
    let mut c = tool(BIN, home);
    c.arg("--kubeconfig").arg(sim.kubeconfig());
    c
}

fn failing(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_healthy_homelab_passes_and_a_kustomization_behind_git_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&workspace().join("testdata/clusters/homelab"), None);
    let (code, report, stderr) = run(&mut validate(&sim, tmp.path()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["kind"], "ValidationReport");
    assert_eq!(report["validator"], "flux");
    assert!(failing(&report).is_empty(), "{:?}", failing(&report));
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.len() > 20, "{}", checks.len());
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "flux/controllers-available")
    );

    // Git moved on; the Kustomizations have not applied it.
    sim.kubectl(&[
        "-n",
        "flux-system",
        "patch",
        "gitrepository",
        "flux-system",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"artifact":{"revision":"main@sha1:0123456789abcdef0123456789abcdef01234567"}}}"#,
    ]);
    let (code, report, _) = run(&mut validate(&sim, tmp.path()));
    assert_eq!(code, 1);
    let f = failing(&report);
    assert!(!f.is_empty());
    assert!(
        f.iter()
            .all(|(name, detail)| name == "flux/kustomization-revision"
                && detail.contains("but its source has main@sha1:0123456789")),
        "{f:?}"
    );
}

#[test]
fn stalled_failed_and_drifted_releases_are_caught_and_a_baseline_blames_only_new_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(
        &workspace().join("testdata/sim-cluster/charts-releases"),
        None,
    );
    let (code, before, _) = run(&mut validate(&sim, tmp.path()));
    assert_eq!(code, 1);
    let f = failing(&before);
    assert!(
        f.iter()
            .any(|(n, d)| n == "flux/helmrelease-ready" && d.contains("longhorn-stuck is Stalled")),
        "{f:?}"
    );
    assert!(f.iter().any(|(n, d)| n == "flux/helmrelease-version"
        && d.contains("1.9.1 installed, but the spec asks for 1.9.2")));
    // What could not be checked says why.
    assert!(
        before["notRun"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "flux/controllers-available")
    );
    let baseline = tmp.path().join("before.json");
    std::fs::write(&baseline, before.to_string()).unwrap();

    // Nothing new broke: the old failures are reported, not blamed.
    let (code, same, _) = run(validate(&sim, tmp.path()).arg("--baseline").arg(&baseline));
    assert_eq!(code, 0);
    assert!(!failing(&same).is_empty());
    assert!(
        same["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["regression"] == false)
    );

    // A release that was fine goes bad: that one is the regression.
    sim.kubectl(&[
        "-n",
        "longhorn-system",
        "patch",
        "helmrelease",
        "longhorn-manual",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"False","reason":"UpgradeFailed","message":"post-upgrade hook failed","lastTransitionTime":"2026-11-28T04:00:00Z"}]}}"#,
    ]);
    // helm-controller's Event about it, which the report gives as the likely cause.
    let event = tmp.path().join("event.yaml");
    std::fs::write(
        &event,
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: longhorn-manual.1875a\n  namespace: longhorn-system\ninvolvedObject:\n  apiVersion: helm.toolkit.fluxcd.io/v2\n  kind: HelmRelease\n  name: longhorn-manual\n  namespace: longhorn-system\nreason: UpgradeFailed\nmessage: 'Helm upgrade failed for release longhorn-system/longhorn-manual: post-upgrade hooks failed'\ntype: Warning\nlastTimestamp: '2026-11-28T04:00:00Z'\nsource:\n  component: helm-controller\n",
    )
    .unwrap();
    sim.kubectl(&["create", "-f", event.to_str().unwrap()]);
    let (code, after, _) = run(validate(&sim, tmp.path()).arg("--baseline").arg(&baseline));
    assert_eq!(code, 1);
    let new: Vec<&Value> = after["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["regression"] == true)
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0]["objects"][0]["name"], "longhorn-manual");
    assert!(
        new[0]["detail"]
            .as_str()
            .unwrap()
            .contains("post-upgrade hook failed")
    );
    let cause = new[0]["cause"].as_str().unwrap();
    assert!(
        cause.contains("Warning HelmRelease UpgradeFailed: Helm upgrade failed"),
        "{cause}"
    );
    // Old failures are not explained: they are not the update's.
    assert!(
        after["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["regression"] == false)
            .all(|c| c.get("cause").is_none())
    );
}

#[test]
fn bad_input_is_one_line_and_exit_2_and_a_dump_works_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"apiVersion":"upkeep.dev/v1alpha1","kind":"ValidationReport"}"#,
    )
    .unwrap();
    let sim = Sim::start(
        &workspace().join("testdata/sim-cluster/charts-releases"),
        None,
    );
    let out = validate(&sim, tmp.path())
        .arg("--baseline")
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--baseline") && stderr.contains("bad.json"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    // The same checks from a saved `kubectl get -A -o json`.
    let dump = tmp.path().join("dump.json");
    let json = sim.kubectl(&[
        "get",
        "helmreleases.helm.toolkit.fluxcd.io,helmrepositories.source.toolkit.fluxcd.io",
        "-A",
        "-o",
        "json",
    ]);
    std::fs::write(&dump, json).unwrap();
    let (code, live, _) = run(&mut validate(&sim, tmp.path()));
    let (dcode, from_dump, stderr) = run(tool(BIN, tmp.path()).arg("--cluster-dump").arg(&dump));
    assert_eq!((code, dcode), (1, 1), "{stderr}");
    assert_eq!(failing(&live), failing(&from_dump));
}

#[test]
fn reconcile_asks_flux_and_waits_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let homelab = workspace().join("testdata/clusters/homelab");
    let sim_yaml =
        std::fs::read_to_string(workspace().join("testdata/sim-cluster/homelab-SIM.yaml")).unwrap();
    let sim = Sim::start(&homelab, Some(&sim_yaml));
    let (code, report, stderr) = run(validate(&sim, tmp.path()).args([
        "--reconcile",
        "--timeout",
        "20s",
        "-n",
        "podinfo",
        "-n",
        "home",
    ]));
    assert_eq!(code, 0, "{stderr} {report}");
    let asked: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "flux/reconcile")
        .collect();
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert!(asked.iter().all(|c| c["status"] == "pass"), "{asked:?}");
    // The request is on the object, and Flux's echo of it.
    let hr = sim.json(&["-n", "podinfo", "get", "helmrelease", "podinfo"]);
    let at = hr["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
        .as_str()
        .unwrap();
    assert_eq!(hr["status"]["lastHandledReconcileAt"], at);
    drop(sim);

    // No Flux controller running: nothing handles the request, and that fails.
    let sim = Sim::start(&homelab, None);
    let (code, report, _) =
        run(validate(&sim, tmp.path()).args(["--reconcile", "--timeout", "2s", "-n", "podinfo"]));
    assert_eq!(code, 1);
    let f = failing(&report);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0].1.contains("did not handle the reconcile request"),
        "{f:?}"
    );
}
