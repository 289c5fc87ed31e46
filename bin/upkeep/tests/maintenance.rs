//! `upkeep maintenance on|off|status` against sim-cluster: on freezes
//! (policy, binding, announcement ConfigMap) and suspends the Flux objects
//! that were running; off leaves the cluster exactly as before.

#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sim::*;

const BIN: &str = env!("CARGO_BIN_EXE_upkeep");

const FLUX_OBJECTS: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: flux-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: apps}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: infra, namespace: flux-system}
spec: {interval: 1h, path: ./infra, prune: true, sourceRef: {kind: GitRepository, name: home}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: paused, namespace: flux-system}
spec: {interval: 1h, path: ./paused, prune: true, suspend: true, sourceRef: {kind: GitRepository, name: home}}
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: web, namespace: apps}
spec: {interval: 1h, chart: {spec: {chart: web, version: 1.0.0, sourceRef: {kind: HelmRepository, name: charts, namespace: flux-system}}}}
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: held, namespace: apps}
spec: {interval: 1h, suspend: true, chart: {spec: {chart: held, version: 2.0.0, sourceRef: {kind: HelmRepository, name: charts, namespace: flux-system}}}}
"#;

fn fixture(dir: &Path) -> std::path::PathBuf {
    let fx = dir.join("fixture");
    std::fs::create_dir_all(fx.join("crds")).unwrap();
    for e in std::fs::read_dir(workspace().join("testdata/clusters/homelab/crds/flux")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, fx.join("crds").join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(fx.join("objects.yaml"), FLUX_OBJECTS).unwrap();
    fx
}

fn upkeep(home: &Path, sim: &Sim) -> Command {
    let mut c = tool(BIN, home);
    c.arg("--kubeconfig").arg(sim.kubeconfig());
    c
}

/// What maintenance may touch, as (kind/name, spec) pairs, plus whether
/// its own objects exist.
fn state(sim: &Sim) -> (Vec<(String, Value)>, [bool; 3]) {
    let mut specs = Vec::new();
    for kind in ["kustomizations", "helmreleases"] {
        let list = sim.json(&["get", kind, "-A"]);
        for o in list["items"].as_array().unwrap() {
            specs.push((
                format!("{kind}/{}", o["metadata"]["name"].as_str().unwrap()),
                o["spec"].clone(),
            ));
        }
    }
    let exists = |args: &[&str]| sim.kubectl_out(args).status.success();
    (
        specs,
        [
            exists(&[
                "get",
                "configmap",
                "upkeep-maintenance",
                "-n",
                "kube-system",
            ]),
            exists(&[
                "get",
                "validatingadmissionpolicy",
                "upkeep-maintenance-freeze",
            ]),
            exists(&[
                "get",
                "validatingadmissionpolicybinding",
                "upkeep-maintenance-freeze",
            ]),
        ],
    )
}

fn suspended(specs: &[(String, Value)]) -> Vec<&str> {
    specs
        .iter()
        .filter(|(_, s)| s["suspend"] == true)
        .map(|(k, _)| k.as_str())
        .collect()
}

#[test]
fn maintenance_on_freezes_and_suspends_and_off_puts_everything_back() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&fixture(tmp.path()), None);
    let before = state(&sim);
    assert_eq!(before.1, [false, false, false]);
    assert_eq!(
        suspended(&before.0),
        ["kustomizations/paused", "helmreleases/held"]
    );

    let out = upkeep(tmp.path(), &sim)
        .args(["maintenance", "on"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "on needs a reason");

    let out = upkeep(tmp.path(), &sim)
        .args(["maintenance", "on", "--reason", "disk swap", "--for", "30m"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("maintenance on: disk swap"), "{text}");
    let during = state(&sim);
    assert_eq!(during.1, [true, true, true]);
    let mut now = suspended(&during.0);
    now.sort();
    assert_eq!(
        now,
        [
            "helmreleases/held",
            "helmreleases/web",
            "kustomizations/infra",
            "kustomizations/paused"
        ]
    );
    let policy = sim.json(&[
        "get",
        "validatingadmissionpolicy",
        "upkeep-maintenance-freeze",
    ]);
    assert!(
        policy["spec"]["validations"][0]["message"]
            .as_str()
            .unwrap()
            .contains("disk swap")
    );
    let cm = sim.json(&[
        "get",
        "configmap",
        "upkeep-maintenance",
        "-n",
        "kube-system",
    ]);
    assert_eq!(cm["data"]["reason"], "disk swap");
    let recorded: Vec<String> =
        serde_json::from_str(cm["data"]["suspended"].as_str().unwrap()).unwrap();
    assert_eq!(
        recorded,
        ["Kustomization flux-system/infra", "HelmRelease apps/web"]
    );
    // Another `on` is refused while this one lasts; status says so.
    let out = upkeep(tmp.path(), &sim)
        .args(["maintenance", "on", "--reason", "other"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already on (disk swap"));
    let out = upkeep(tmp.path(), &sim)
        .args(["maintenance", "status"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("maintenance on: disk swap")
    );

    let out = upkeep(tmp.path(), &sim)
        .args(["maintenance", "off"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        state(&sim),
        before,
        "off leaves the cluster exactly as before"
    );
    // Off again is harmless.
    let out = upkeep(tmp.path(), &sim)
        .args(["maintenance", "off"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("was not on")
    );
    assert_eq!(state(&sim), before);
}
