//! `restore --volumes` against the real sim-cluster binary serving the homelab with its
//! simulated Longhorn (snapshots, CSI provisioning from a VolumeSnapshot, reclaim) and
//! workloads (the data check Job prints what SIM.yaml says): restore points taken by the real
//! `snapshot create --longhorn snapshot`.

mod common;

use common::*;
use serde_json::Value;

/// What the simulated data check prints: a file count and the digest.
const DIGEST: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

fn sim_yaml() -> String {
    format!(
        "controllers:\n  longhorn:\n    interval: 100ms\n  workloads:\n    interval: 100ms\n    pods:\n      - match: \"upkeep-volume-check-*\"\n        logs: \"files 3\\n{DIGEST}  -\\n\"\n"
    )
}

fn homelab() -> Server {
    Server::start_with(
        &workspace().join("testdata/clusters/homelab"),
        Some(&sim_yaml()),
    )
}

/// The recorded volume of a claim, from the restore point's manifest.
fn recorded(point: &std::path::Path, server: &Server, ns: &str, claim: &str) -> (String, String) {
    let pvc = server
        .get(&["pvc", claim, "-n", ns])
        .unwrap_or_else(|| panic!("no PVC {ns}/{claim}"));
    let volume = pvc["spec"]["volumeName"].as_str().unwrap().to_string();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(point.join("manifest.json")).unwrap()).unwrap();
    let v = manifest["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["volume"] == volume.as_str())
        .unwrap_or_else(|| panic!("{volume} not recorded in {manifest}"));
    assert_eq!(v["kind"], "snapshot");
    (volume, v["object"]["name"].as_str().unwrap().to_string())
}

fn volume_entry<'a>(doc: &'a Value, claim: &str) -> &'a Value {
    doc["volumes"]
        .as_array()
        .unwrap_or_else(|| panic!("no volumes in {doc}"))
        .iter()
        .find(|v| v["claim"]["name"] == claim)
        .unwrap_or_else(|| panic!("{claim} not in {doc}"))
}

fn retain(server: &Server, pv: &str) {
    server.kubectl(&[
        "patch",
        "pv",
        pv,
        "--type=merge",
        "-p",
        r#"{"spec":{"persistentVolumeReclaimPolicy":"Retain"}}"#,
    ]);
}

/// Waits (up to 10 s) until `kubectl get ARGS` finds nothing.
fn wait_gone(server: &Server, args: &[&str]) {
    for _ in 0..100 {
        if server.get(args).is_none() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{args:?} is still there");
}

fn check_jobs_left(server: &Server) -> String {
    server.kubectl(&[
        "get",
        "jobs,pods",
        "-A",
        "-l",
        "upkeep.dev/volume-check",
        "-o",
        "name",
    ])
}

#[test]
fn a_deleted_namespace_comes_back_with_its_volumes_from_the_recorded_snapshots() {
    let server = homelab();
    let point = server.dir.path().join("point");
    let identity = server.snapshot_with(&point, &["--longhorn", "snapshot"]);
    let (vault_vol, vault_snap) = recorded(&point, &server, "home", "vaultwarden-data");
    let (paper_vol, paper_snap) = recorded(&point, &server, "home", "paperless-data");
    // Retained PVs keep their Longhorn volumes, and so the in-cluster snapshots, when the
    // namespace goes.
    retain(&server, &vault_vol);
    retain(&server, &paper_vol);
    server.kubectl(&["delete", "namespace", "home", "--wait=true"]);
    assert!(server.get(&["namespace", "home"]).is_none());

    // The restore: both claims come back Bound, made from the recorded snapshots.
    let (code, doc, stderr) = run(server
        .restore()
        .arg(&point)
        .arg("--age-identity")
        .arg(&identity)
        .args(["--only", "home", "--volumes", "--volume-timeout", "30s"]));
    assert_eq!(code, 0, "{stderr}\n{doc}");
    for (claim, volume, snap) in [
        ("vaultwarden-data", &vault_vol, &vault_snap),
        ("paperless-data", &paper_vol, &paper_snap),
    ] {
        let v = volume_entry(&doc, claim);
        assert_eq!(v["action"], "created", "{v}");
        assert_eq!(v["digest"], DIGEST, "{v}");
        assert_eq!(v["files"], 3, "{v}");
        let handle = format!("snap://{volume}/{snap}");
        assert_eq!(v["handle"], handle.as_str());
        assert_eq!(v["source"]["name"], snap.as_str());
        let (action, message) = entry(&doc, "PersistentVolumeClaim", Some("home"), claim);
        assert_eq!(action, "created", "{message}");
        assert!(message.contains(DIGEST), "{message}");

        let pvc = server.get(&["pvc", claim, "-n", "home"]).unwrap();
        assert_eq!(pvc["status"]["phase"], "Bound", "{pvc}");
        let new_volume = pvc["spec"]["volumeName"].as_str().unwrap();
        assert_ne!(new_volume, volume.as_str(), "a new volume is made");
        assert_eq!(pvc["spec"]["dataSource"]["kind"], "VolumeSnapshot");
        let vs_name = pvc["spec"]["dataSource"]["name"].as_str().unwrap();
        let vs = server
            .get(&["volumesnapshot", vs_name, "-n", "home"])
            .unwrap();
        assert_eq!(vs["status"]["readyToUse"], true);
        let content = vs["spec"]["source"]["volumeSnapshotContentName"]
            .as_str()
            .unwrap();
        let vsc = server.get(&["volumesnapshotcontent", content]).unwrap();
        assert_eq!(vsc["spec"]["source"]["snapshotHandle"], handle.as_str());
        assert_eq!(vsc["spec"]["driver"], "driver.longhorn.io");
        // Deleting these objects later must never delete the recorded snapshot.
        assert_eq!(vsc["spec"]["deletionPolicy"], "Retain");
        // The new Longhorn volume was made from the snapshot.
        let lh = server
            .get(&["volumes.longhorn.io", new_volume, "-n", "longhorn-system"])
            .unwrap();
        assert_eq!(lh["spec"]["dataSource"], handle.as_str());
    }
    // The workloads that mount them come back too, after them.
    assert!(
        server
            .get(&["deployment", "vaultwarden", "-n", "home"])
            .is_some()
    );
    assert_eq!(check_jobs_left(&server).trim(), "");

    // Again: already restored from these snapshots, checked, nothing replaced.
    let (code, doc, stderr) = run(server
        .restore()
        .arg(&point)
        .arg("--age-identity")
        .arg(&identity)
        .args([
            "--only",
            "home",
            "--volumes",
            "--mode",
            "replace",
            "--volume-timeout",
            "30s",
        ]));
    assert_eq!(code, 0, "{stderr}\n{doc}");
    assert_eq!(
        volume_entry(&doc, "vaultwarden-data")["action"],
        "unchanged"
    );
    assert_eq!(volume_entry(&doc, "vaultwarden-data")["digest"], DIGEST);
}

#[test]
fn a_mounted_claim_is_refused_an_unused_one_replaced_and_a_lost_snapshot_fails_plainly() {
    let server = homelab();
    let point = server.dir.path().join("point");
    let identity = server.snapshot_with(&point, &["--longhorn", "snapshot"]);
    let (jelly_vol, jelly_snap) = recorded(&point, &server, "media", "jellyfin-data");
    let before = server
        .get(&["pvc", "jellyfin-data", "-n", "media"])
        .unwrap();

    // Mounted by the Running jellyfin pod: a failure naming it, and the claim untouched.
    let restore = |only: &str| {
        let mut c = server.restore();
        c.arg(&point)
            .arg("--age-identity")
            .arg(&identity)
            .args(["--only", only, "--volumes", "--mode", "replace"])
            .args(["--volume-timeout", "30s"]);
        c
    };
    let (code, doc, stderr) = run(&mut restore("media"));
    assert_eq!(code, 1, "{stderr}\n{doc}");
    let v = volume_entry(&doc, "jellyfin-data");
    assert_eq!(v["action"], "failed");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("media/jellyfin-28d81f2e7f-aade7") && message.contains("scale"),
        "{message}"
    );
    assert!(stderr.contains("jellyfin-28d81f2e7f-aade7"), "{stderr}");
    let after = server
        .get(&["pvc", "jellyfin-data", "-n", "media"])
        .unwrap();
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(after["spec"]["volumeName"], jelly_vol.as_str());
    let vs = server.kubectl(&["get", "volumesnapshots", "-A", "-o", "name"]);
    assert_eq!(
        vs.trim(),
        "",
        "nothing is created for a refused claim: {vs}"
    );

    // Scaled down (the pod gone), the unused claim is replaced from the snapshot.
    server.kubectl(&["delete", "pod", "jellyfin-28d81f2e7f-aade7", "-n", "media"]);

    // --dry-run says what it would do and changes nothing.
    let (code, doc, stderr) = run(restore("media").arg("--dry-run"));
    assert_eq!(code, 0, "{stderr}\n{doc}");
    let v = volume_entry(&doc, "jellyfin-data");
    assert_eq!(v["action"], "replaced", "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("dry run: would delete the unused") && message.contains(&jelly_snap),
        "{message}"
    );
    assert!(v.get("digest").is_none(), "{v}");
    let same = server
        .get(&["pvc", "jellyfin-data", "-n", "media"])
        .unwrap();
    assert_eq!(same["metadata"]["uid"], before["metadata"]["uid"]);
    let made = server.kubectl(&[
        "get",
        "volumesnapshots,volumesnapshotcontents",
        "-A",
        "-o",
        "name",
    ]);
    assert_eq!(made.trim(), "", "a dry run created {made}");
    assert_eq!(check_jobs_left(&server).trim(), "");
    let (code, doc, stderr) = run(&mut restore("media"));
    assert_eq!(code, 0, "{stderr}\n{doc}");
    let v = volume_entry(&doc, "jellyfin-data");
    assert_eq!(v["action"], "replaced", "{v}");
    assert_eq!(v["digest"], DIGEST);
    // The old PV holds the in-cluster snapshot: kept (Retain) rather than reclaimed with it.
    assert!(v["message"].as_str().unwrap().contains("Retain"), "{v}");
    let old_pv = server.get(&["pv", &jelly_vol]).unwrap();
    assert_eq!(old_pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert!(
        server
            .get(&[
                "snapshots.longhorn.io",
                &jelly_snap,
                "-n",
                "longhorn-system"
            ])
            .is_some()
    );
    let pvc = server
        .get(&["pvc", "jellyfin-data", "-n", "media"])
        .unwrap();
    assert_ne!(pvc["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(pvc["status"]["phase"], "Bound");
    let vsc = server
        .get(&[
            "volumesnapshotcontent",
            pvc["spec"]["dataSource"]["name"].as_str().unwrap(),
        ])
        .unwrap();
    assert_eq!(
        vsc["spec"]["source"]["snapshotHandle"],
        format!("snap://{jelly_vol}/{jelly_snap}").as_str()
    );

    // With the default Delete reclaim policy, deleting the namespace deletes the volumes and
    // their in-cluster snapshots: said plainly, nothing made up.
    let (_, vault_snap) = recorded(&point, &server, "home", "vaultwarden-data");
    server.kubectl(&["delete", "namespace", "home", "--wait=true"]);
    wait_gone(
        &server,
        &[
            "snapshots.longhorn.io",
            &vault_snap,
            "-n",
            "longhorn-system",
        ],
    );
    let (code, doc, stderr) = run(&mut restore("home"));
    assert_eq!(code, 1, "{stderr}\n{doc}");
    for claim in ["vaultwarden-data", "paperless-data"] {
        let v = volume_entry(&doc, claim);
        assert_eq!(v["action"], "failed");
        let m = v["message"].as_str().unwrap();
        assert!(
            m.contains("no longer exists") && m.contains("--longhorn backup"),
            "{m}"
        );
        assert!(server.get(&["pvc", claim, "-n", "home"]).is_none());
    }
    assert_eq!(check_jobs_left(&server).trim(), "");
}

#[test]
fn volumes_without_recorded_volumes_is_refused_before_anything_changes() {
    let server = Server::homelab();
    let point = server.dir.path().join("point");
    let identity = server.snapshot(&point);
    let (code, doc, stderr) = run(server
        .restore()
        .arg(&point)
        .arg("--age-identity")
        .arg(&identity)
        .arg("--volumes"));
    assert_eq!(code, 2, "{stderr}");
    assert!(doc.is_null());
    assert!(
        stderr.contains("--volumes") && stderr.contains("--longhorn none"),
        "{stderr}"
    );
    let (code, _, stderr) = run(server
        .restore()
        .arg(&point)
        .arg("--age-identity")
        .arg(&identity)
        .args(["--volumes", "--volume-timeout", "soon"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--volume-timeout"), "{stderr}");
}
