//! The round trip the restore point exists for, at homelab-and-then-some
//! scale: the homelab fixture grown to over 10,000 objects across built-in
//! kinds and CRDs, captured, its namespaces and custom resources deleted,
//! restored, and captured again: the two captures must hold the same objects
//! (server-set fields aside, as a restore point stores them).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;
use upkeep_snapshot::{Identity, Snapshot};

const BULK: usize = 10_000;

fn objects(point: &Path, identity: &Identity) -> BTreeMap<String, Value> {
    let snap = Snapshot::open(point).unwrap();
    snap.objects(Some(identity))
        .unwrap()
        .map(|o| {
            let o = o.unwrap();
            (o.path, o.object)
        })
        .collect()
}

#[test]
fn ten_thousand_objects_deleted_and_restored_come_back_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = tmp.path().join("fixture");
    let status = Command::new("cp")
        .arg("-r")
        .arg(workspace().join("testdata/clusters/homelab"))
        .arg(&fixture)
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("python3")
        .arg(workspace().join("scripts/fixtures/bulk-objects.py"))
        .arg(BULK.to_string())
        .arg(fixture.join("95-bulk.yaml"))
        .status()
        .unwrap();
    assert!(status.success());
    let server = Server::start(&fixture);

    let before_point = tmp.path().join("before.tar.zst");
    let identity_file = server.snapshot(&before_point);
    let identity = Identity::from_file(&identity_file).unwrap();
    let before = objects(&before_point, &identity);
    assert!(before.len() >= BULK, "{} objects captured", before.len());
    let widgets = before.keys().filter(|p| p.contains("/Widget/")).count();
    let secrets = before.keys().filter(|p| p.contains("/Secret/")).count();
    assert!(
        widgets > 1000 && secrets > 1000,
        "{widgets} widgets, {secrets} secrets"
    );

    // Lose the namespaces (and everything in them), the custom resources and their CRD.
    let namespaces: Vec<String> = (0..10).map(|i| format!("bulk-{i}")).collect();
    let mut args = vec!["delete", "namespace", "--wait=false"];
    args.extend(namespaces.iter().map(String::as_str));
    server.kubectl(&args);
    server.kubectl(&["delete", "crd", "widgets.bulk.upkeep.dev"]);
    server.kubectl(&[
        "delete",
        "helmreleases.helm.toolkit.fluxcd.io",
        "--all",
        "-A",
    ]);
    // Wait until the namespaces are really gone (their finalizers ran).
    for _ in 0..600 {
        if namespaces
            .iter()
            .all(|n| server.get(&["namespace", n]).is_none())
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        server.get(&["namespace", "bulk-0"]).is_none(),
        "namespace not deleted"
    );
    assert!(server.get(&["crd", "widgets.bulk.upkeep.dev"]).is_none());

    let out = server
        .restore()
        .arg(&before_point)
        .arg("--age-identity")
        .arg(&identity_file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["kind"], "RestoreResult");
    let failed: Vec<&Value> = result["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["action"] == "failed")
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    let created = result["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["action"] == "created")
        .count();
    assert!(created >= BULK - 20, "only {created} created");

    let after_point = tmp.path().join("after.tar.zst");
    let identity_file = server.snapshot(&after_point);
    let identity = Identity::from_file(&identity_file).unwrap();
    let after = objects(&after_point, &identity);
    let missing: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let extra: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let differing: Vec<&String> = before
        .iter()
        .filter(|(k, v)| after.get(*k).is_some_and(|a| a != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differing.is_empty(),
        "missing {} (e.g. {:?}), extra {} (e.g. {:?}), differing {} (e.g. {:?})",
        missing.len(),
        missing.iter().take(3).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(3).collect::<Vec<_>>(),
        differing.len(),
        differing
            .iter()
            .take(2)
            .map(|k| (k, &before[*k], &after[*k]))
            .collect::<Vec<_>>()
    );
}
