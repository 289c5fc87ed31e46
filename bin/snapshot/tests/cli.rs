//! `snapshot` as a user runs it: the built binary against sim-cluster
//! serving the homelab fixture.

mod common;

use std::path::Path;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_snapshot");

const SECRETS: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: vault
---
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: vault
type: Opaque
data:
  password: aHVudGVyMi1wbGFpbi10ZXh0LXZhbHVl
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: tokens
  namespace: vault
  labels:
    upkeep.dev/sensitive: \"true\"
data:
  token: cm-sensitive-plain-text-value
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: vault
data:
  colour: blue-plain-config
";
/// The Secret's value decoded, and the sensitive ConfigMap's.
const SECRET_PLAIN: &str = "hunter2-plain-text-value";
const SECRET_B64: &str = "aHVudGVyMi1wbGFpbi10ZXh0LXZhbHVl";
const CM_PLAIN: &str = "cm-sensitive-plain-text-value";

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn run(c: &mut std::process::Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn create(sim: &Sim, home: &Path, out: &Path, extra: &[&str]) -> (i32, String, String) {
    run(tool(BIN, home)
        .arg("create")
        .arg("--kubeconfig")
        .arg(sim.kubeconfig())
        .arg("--out")
        .arg(out)
        .args(extra))
}

#[test]
fn secrets_never_touch_disk_in_plain_text() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = homelab_with(tmp.path(), SECRETS);
    let sim = Sim::start(&fixture, None);
    let (public, identity) = age_key(tmp.path(), "key.txt");
    let work = tmp.path().join("points");
    std::fs::create_dir(&work).unwrap();

    for out in [work.join("a.tar.zst"), work.join("b")] {
        let (code, stdout, stderr) = create(&sim, tmp.path(), &out, &["--age-recipient", &public]);
        assert_eq!(code, 0, "{stderr}");
        let manifest: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(manifest["kind"], "SnapshotManifest");
        assert_eq!(manifest["recipients"][0], public.as_str());
        let files = manifest["files"].as_array().unwrap();
        let enc: Vec<&str> = files
            .iter()
            .filter(|f| f["encrypted"] == true)
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert!(
            enc.contains(&"resources/core/Secret/vault/db.json.age"),
            "{enc:?}"
        );
        assert!(
            enc.contains(&"resources/core/ConfigMap/vault/tokens.json.age"),
            "{enc:?}"
        );
        assert!(files.iter().any(
            |f| f["path"] == "resources/core/ConfigMap/vault/settings.json"
                && f["encrypted"] == false
        ));
    }
    // Nothing on disk (the archive decompressed, every file of the directory,
    // and anything left in the work directory) holds a secret in the clear.
    let mut blobs = vec![unzstd(&work.join("a.tar.zst"))];
    for f in files_under(&work) {
        blobs.push(std::fs::read(&f).unwrap());
    }
    for b in &blobs {
        for needle in [SECRET_PLAIN, SECRET_B64, CM_PLAIN] {
            assert!(!contains(b, needle), "{needle} found in plain text");
        }
    }
    // ...while the ordinary ConfigMap is readable, so the test can see content at all.
    assert!(blobs.iter().any(|b| contains(b, "blue-plain-config")));
    // Files and directories are the owner's only.
    use std::os::unix::fs::PermissionsExt;
    for f in files_under(&work) {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }

    // verify decrypts with the right key, and refuses the wrong one.
    let (code, stdout, stderr) = run(tool(BIN, tmp.path())
        .arg("verify")
        .arg(work.join("a.tar.zst"))
        .arg("--age-identity")
        .arg(&identity));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(", 2 decrypted,"), "{stdout}");
    let (_, wrong) = age_key(tmp.path(), "other.txt");
    let (code, stdout, _) = run(tool(BIN, tmp.path())
        .arg("verify")
        .arg(work.join("b"))
        .arg("--age-identity")
        .arg(&wrong));
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("not one this part was encrypted to"),
        "{stdout}"
    );
}

#[test]
fn no_recipient_means_no_secrets_and_nothing_written() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = homelab_with(tmp.path(), SECRETS);
    let sim = Sim::start(&fixture, None);
    let out = tmp.path().join("p.tar.zst");
    let (code, stdout, stderr) = create(&sim, tmp.path(), &out, &[]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--age-recipient"), "{stderr}");
    assert!(!out.exists());
    // --exclude-secrets leaves them (and the sensitive ConfigMap) out, and says so.
    let (code, stdout, stderr) = create(&sim, tmp.path(), &out, &["--exclude-secrets"]);
    assert_eq!(code, 0, "{stderr}");
    let m: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(m["scope"]["secretsIncluded"], false);
    assert!(
        m["files"].as_array().unwrap().iter().all(|f| !f["path"]
            .as_str()
            .unwrap()
            .contains("/Secret/")
            && f["path"] != "resources/core/ConfigMap/vault/tokens.json")
    );
    assert!(
        m["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().starts_with("Secret: 2 left out")),
        "{}",
        m["skipped"]
    );
    let blob = unzstd(&out);
    assert!(!contains(&blob, SECRET_B64) && !contains(&blob, CM_PLAIN));
    // A restore point is never overwritten.
    let (code, _, stderr) = create(&sim, tmp.path(), &out, &["--exclude-secrets"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("already exists"), "{stderr}");
}

#[test]
fn any_corrupted_byte_or_truncation_fails_verify_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = homelab_with(tmp.path(), SECRETS);
    let sim = Sim::start(&fixture, None);
    let (public, _) = age_key(tmp.path(), "key.txt");
    let dir = tmp.path().join("point");
    let (code, stdout, stderr) = create(&sim, tmp.path(), &dir, &["--age-recipient", &public]);
    assert_eq!(code, 0, "{stderr}");
    let m: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let verify = |p: &Path| run(tool(BIN, tmp.path()).arg("verify").arg(p));
    assert_eq!(verify(&dir).0, 0);
    // Every file of the restore point, one at a time: flip a byte, verify names it, put it back.
    let mut checked = 0;
    for f in m["files"].as_array().unwrap() {
        let rel = f["path"].as_str().unwrap();
        let path = dir.join(rel);
        let orig = std::fs::read(&path).unwrap();
        let mut bad = orig.clone();
        let i = bad.len() / 2;
        bad[i] ^= 0x20;
        std::fs::write(&path, &bad).unwrap();
        let (code, out, err) = verify(&dir);
        assert_eq!(code, 1, "{rel}: {out}{err}");
        assert!(out.contains(rel), "{rel} not named: {out}");
        std::fs::write(&path, &orig).unwrap();
        checked += 1;
    }
    assert!(checked > 50, "{checked}");
    assert_eq!(verify(&dir).0, 0);
    // A damaged manifest is named too.
    let manifest = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replacen("\"files\"", "\"filez\"", 1)).unwrap();
    let (code, _, err) = verify(&dir);
    assert_eq!(code, 1);
    assert!(err.contains("manifest.json"), "{err}");

    // An archive cut short, and one with a flipped byte.
    let archive = tmp.path().join("a.tar.zst");
    assert_eq!(
        create(&sim, tmp.path(), &archive, &["--exclude-secrets"]).0,
        0
    );
    let bytes = std::fs::read(&archive).unwrap();
    let cut = tmp.path().join("cut.tar.zst");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let (code, out, err) = verify(&cut);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("cut.tar.zst") && err.contains("truncated"),
        "{err}"
    );
    let flipped = tmp.path().join("flipped.tar.zst");
    let mut b = bytes.clone();
    let i = b.len() / 2;
    b[i] ^= 0x01;
    std::fs::write(&flipped, &b).unwrap();
    let (code, out, err) = verify(&flipped);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("flipped.tar.zst"),
        "{out}{err}"
    );
}

#[test]
fn longhorn_snapshots_and_backups_are_waited_on_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let sim_yaml =
        std::fs::read_to_string(workspace().join("testdata/sim-cluster/homelab-SIM.yaml")).unwrap();
    let sim = Sim::start(
        &workspace().join("testdata/clusters/homelab"),
        Some(&sim_yaml),
    );
    let volumes = sim.json(&["-n", "longhorn-system", "get", "volumes.longhorn.io"]);
    let n = volumes["items"].as_array().unwrap().len();
    assert!(n > 0);
    let out = tmp.path().join("p");
    let (code, stdout, stderr) = create(
        &sim,
        tmp.path(),
        &out,
        &[
            "--exclude-secrets",
            "--longhorn",
            "backup",
            "--longhorn-timeout",
            "30s",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let m: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let recorded = m["volumes"].as_array().unwrap();
    assert_eq!(recorded.len(), n);
    for v in recorded {
        assert_eq!(v["kind"], "backup");
        assert!(v["url"].as_str().unwrap().contains("backup="), "{v}");
    }
    // verify finds them on the cluster, and says when one is gone.
    let verify = || {
        run(tool(BIN, tmp.path())
            .arg("verify")
            .arg(&out)
            .arg("--check-cluster")
            .arg("--kubeconfig")
            .arg(sim.kubeconfig()))
    };
    let (code, stdout, stderr) = verify();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{n} Longhorn objects found")),
        "{stdout}"
    );
    let first = recorded[0]["object"]["name"].as_str().unwrap();
    sim.kubectl(&[
        "-n",
        "longhorn-system",
        "delete",
        "backups.longhorn.io",
        first,
    ]);
    let (code, stdout, _) = verify();
    assert_eq!(code, 1);
    assert!(stdout.contains("no longer exists"), "{stdout}");
}

#[test]
fn a_failed_backup_fails_the_restore_point_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sim_yaml = "controllers:\n  longhorn:\n    failBackups: [\"*\"]\n";
    let sim = Sim::start(
        &workspace().join("testdata/clusters/homelab"),
        Some(sim_yaml),
    );
    let points = tmp.path().join("points");
    std::fs::create_dir(&points).unwrap();
    let out = points.join("p.tar.zst");
    let (code, stdout, stderr) = create(
        &sim,
        tmp.path(),
        &out,
        &[
            "--exclude-secrets",
            "--longhorn",
            "backup",
            "--longhorn-timeout",
            "30s",
        ],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("backup of volume") && stderr.contains("failed"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(&points).unwrap().next().is_none(),
        "something was left behind"
    );
}

#[test]
fn list_and_prune_keep_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&workspace().join("testdata/clusters/homelab"), None);
    let dir = tmp.path().join("points");
    std::fs::create_dir(&dir).unwrap();
    for name in ["one", "two.tar.zst", "three"] {
        assert_eq!(
            create(&sim, tmp.path(), &dir.join(name), &["--exclude-secrets"]).0,
            0
        );
        // Names and order come from the second-resolution timestamp.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    std::fs::write(dir.join("notes.txt"), "not a restore point").unwrap();
    let list = || run(tool(BIN, tmp.path()).arg("list").arg("--dir").arg(&dir));
    let (code, stdout, _) = list();
    assert_eq!(code, 0);
    let paths: Vec<&str> = stdout
        .lines()
        .map(|l| l.rsplit('\t').next().unwrap())
        .collect();
    assert_eq!(paths.len(), 3, "{stdout}");
    assert!(
        paths[0].ends_with("three") && paths[2].ends_with("one"),
        "{stdout}"
    );
    let (code, stdout, _) = run(tool(BIN, tmp.path())
        .args(["prune", "--keep", "1", "--dir"])
        .arg(&dir));
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(dir.join("three").exists() && !dir.join("one").exists());
    assert!(!dir.join("two.tar.zst").exists() && dir.join("notes.txt").exists());
    let (code, _, stderr) = run(tool(BIN, tmp.path())
        .args(["prune", "--keep", "0", "--dir"])
        .arg(&dir));
    assert_eq!(code, 2, "{stderr}");

    // Without --dir: where `upkeep run` writes them, <stateDir>/restore-points.
    let cfg = tmp.path().join("upkeep.yaml");
    std::fs::write(
        &cfg,
        format!("stateDir: {}\n", tmp.path().join("state").display()),
    )
    .unwrap();
    let default_list = || run(tool(BIN, tmp.path()).arg("--config").arg(&cfg).arg("list"));
    let (code, stdout, stderr) = default_list();
    assert_eq!(
        (code, stdout.as_str()),
        (0, ""),
        "no restore points yet: {stderr}"
    );
    std::fs::create_dir_all(tmp.path().join("state")).unwrap();
    std::fs::rename(&dir, tmp.path().join("state/restore-points")).unwrap();
    let (code, stdout, stderr) = default_list();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.lines().count() == 1 && stdout.contains("state/restore-points/three"),
        "{stdout}"
    );
}

#[test]
fn a_scope_file_and_namespace_flags_choose_what_is_captured() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = homelab_with(tmp.path(), SECRETS);
    let sim = Sim::start(&fixture, None);
    let scope = tmp.path().join("scope.yaml");
    std::fs::write(
        &scope,
        "namespaces: [vault]\nexcludeKinds: [ServiceAccount]\nexcludeSecrets: true\n",
    )
    .unwrap();
    let out = tmp.path().join("p");
    let (code, stdout, stderr) = create(
        &sim,
        tmp.path(),
        &out,
        &["--scope", scope.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{stderr}");
    let m: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let paths: Vec<&str> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    // The namespace, its ConfigMap, and the cluster-scoped kinds a restore of it needs.
    assert!(
        paths.contains(&"resources/core/Namespace/_cluster/vault.json"),
        "{paths:?}"
    );
    assert!(paths.contains(&"resources/core/ConfigMap/vault/settings.json"));
    assert!(
        paths
            .iter()
            .any(|p| p.contains("/CustomResourceDefinition/"))
    );
    assert!(
        paths.iter().all(|p| {
            let parts: Vec<&str> = p.split('/').collect();
            parts[3] == "vault" || parts[3] == "_cluster"
        }),
        "{paths:?}"
    );
    assert!(
        !paths
            .iter()
            .any(|p| p.contains("/Namespace/_cluster/longhorn-system"))
    );
    assert!(!paths.iter().any(|p| p.contains("/ServiceAccount/")));
    assert_eq!(m["scope"]["namespaces"][0], "vault");
    let skipped = m["skipped"].to_string();
    assert!(
        skipped.contains("ServiceAccount: excluded by the scope"),
        "{skipped}"
    );
    // A scope file with a typo is bad input naming the key, and nothing is written.
    std::fs::write(&scope, "namespace: [vault]\n").unwrap();
    let out = tmp.path().join("q");
    let (code, _, stderr) = create(
        &sim,
        tmp.path(),
        &out,
        &["--scope", scope.to_str().unwrap()],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("scope.yaml") && stderr.contains("namespace"),
        "{stderr}"
    );
    assert!(!out.exists());
}

/// k3s's record of one etcd snapshot file (k3s.cattle.io/v1, k3s 1.29+),
/// with a minimal CRD for it, as k3s lists a snapshot it saved.
const ETCD_SNAPSHOT_FILE: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: etcdsnapshotfiles.k3s.cattle.io
spec:
  group: k3s.cattle.io
  scope: Cluster
  names: {plural: etcdsnapshotfiles, singular: etcdsnapshotfile, kind: ETCDSnapshotFile, listKind: ETCDSnapshotFileList}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: k3s.cattle.io/v1
kind: ETCDSnapshotFile
metadata:
  name: local-upkeep-x-k8s-1-1764300000-a1b2c3
spec:
  snapshotName: upkeep-x-k8s-1-1764300000
  nodeName: k8s-1
  location: file:///var/lib/rancher/k3s/server/db/snapshots/upkeep-x-k8s-1-1764300000
status:
  readyToUse: true
  size: \"5242880\"
";

/// SIM.yaml: the datastore Job's pod ends as configured, printing what the
/// real script prints last.
fn datastore_sim(result: &str, logs: &str) -> String {
    format!(
        "controllers:\n  workloads:\n    interval: 100ms\n    pods:\n      - match: \"upkeep-datastore-*\"\n        namespace: kube-system\n        result: {result}\n        logs: {logs:?}\n"
    )
}

#[test]
fn the_datastore_is_saved_on_a_server_with_the_token_encrypted() {
    let tmp = tempfile::tempdir().unwrap();
    // What the Job's script does on a real server: hand the token over in a Secret.
    // sim-cluster runs no commands, so the fixture holds it from the start.
    let fixture = homelab_with(
        tmp.path(),
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: upkeep-server-token\n  namespace: kube-system\ntype: Opaque\ndata:\n  token: SzEwOjpzZXJ2ZXI6dG9rZW4tcGxhaW4tdGV4dA==\n---\n{ETCD_SNAPSHOT_FILE}"
        ),
    );
    let sha = "5d41402abc4b2a76b9719d911017c592".repeat(2);
    let logs = format!(
        "Saving etcd snapshot\nUPKEEP-DATASTORE file=/var/lib/rancher/k3s/server/db/snapshots/upkeep-x-k8s-1-1764300000 size=5242880 sha256={sha}"
    );
    let sim = Sim::start(&fixture, Some(&datastore_sim("Succeeded", &logs)));
    let (public, identity) = age_key(tmp.path(), "key.txt");
    let out = tmp.path().join("p.tar.zst");
    let (code, stdout, stderr) = create(
        &sim,
        tmp.path(),
        &out,
        &[
            "--age-recipient",
            &public,
            "--datastore",
            "--datastore-timeout",
            "30s",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let m: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let d = &m["datastore"];
    assert_eq!(d["datastore"], "etcd");
    assert_eq!(d["size"], 5242880);
    assert_eq!(d["sha256"], sha.as_str());
    assert_eq!(d["tokenCaptured"], true);
    assert!(d["name"].as_str().unwrap().contains("/snapshots/upkeep-x"));
    // The Job ran on a server node, and the hand-over Secret is gone.
    let jobs = sim.json(&["-n", "kube-system", "get", "jobs"]);
    let job = &jobs["items"][0];
    let node = job["spec"]["template"]["spec"]["nodeName"]
        .as_str()
        .unwrap();
    let n = sim.json(&["get", "node", node]);
    assert!(
        n["metadata"]["labels"]
            .get("node-role.kubernetes.io/etcd")
            .is_some()
    );
    let gone = sim.kubectl_out(&["-n", "kube-system", "get", "secret", "upkeep-server-token"]);
    assert!(!gone.status.success());
    // The token is in the archive, encrypted only.
    assert!(
        m["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "datastore/server-token.age" && f["encrypted"] == true)
    );
    let blob = unzstd(&out);
    assert!(!contains(&blob, "K10::server:token-plain-text"));
    assert!(!contains(&blob, "SzEwOjpzZXJ2ZXI6dG9rZW4tcGxhaW4tdGV4dA"));
    let (code, stdout, _) = run(tool(BIN, tmp.path())
        .arg("verify")
        .arg(&out)
        .arg("--age-identity")
        .arg(&identity));
    assert_eq!(code, 0, "{stdout}");
    // k3s lists each etcd snapshot as an ETCDSnapshotFile: verify looks for it.
    let verify_on_cluster = || {
        run(tool(BIN, tmp.path())
            .arg("verify")
            .arg(&out)
            .arg("--check-cluster")
            .arg("--kubeconfig")
            .arg(sim.kubeconfig()))
    };
    let (code, stdout, stderr) = verify_on_cluster();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("datastore snapshot found"), "{stdout}");
    sim.kubectl(&[
        "delete",
        "etcdsnapshotfiles.k3s.cattle.io",
        "local-upkeep-x-k8s-1-1764300000-a1b2c3",
    ]);
    let (code, stdout, _) = verify_on_cluster();
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("no longer listed by k3s"), "{stdout}");

    // Without a recipient the token could not be kept: refused before anything runs.
    let (code, _, stderr) = create(
        &sim,
        tmp.path(),
        &tmp.path().join("q"),
        &["--exclude-secrets", "--datastore"],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--datastore") && stderr.contains("--age-recipient"),
        "{stderr}"
    );
}

#[test]
fn a_failed_datastore_job_fails_the_restore_point() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(
        &workspace().join("testdata/clusters/homelab"),
        Some(&datastore_sim("Failed", "Error: etcd datastore disabled")),
    );
    let (public, _) = age_key(tmp.path(), "key.txt");
    let points = tmp.path().join("points");
    std::fs::create_dir(&points).unwrap();
    let (code, stdout, stderr) = create(
        &sim,
        tmp.path(),
        &points.join("p"),
        &[
            "--age-recipient",
            &public,
            "--datastore",
            "--datastore-timeout",
            "30s",
        ],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("etcd datastore disabled"), "{stderr}");
    assert!(std::fs::read_dir(&points).unwrap().next().is_none());
}

#[test]
fn an_unreachable_cluster_is_one_line_and_exit_3() {
    let tmp = tempfile::tempdir().unwrap();
    let (kc, port) = unreachable_kubeconfig(tmp.path());
    let out = tmp.path().join("p");
    let (code, stdout, stderr) = run(tool(BIN, tmp.path())
        .args(["create", "--exclude-secrets", "--kubeconfig"])
        .arg(&kc)
        .arg("--out")
        .arg(&out));
    assert_eq!(code, 3, "{stderr}");
    assert!(stdout.is_empty());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn a_kubeconfig_list_in_the_environment_is_merged_as_kubectl_does() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&workspace().join("testdata/clusters/homelab"), None);
    let list = format!(
        "{}:{}",
        tmp.path().join("missing-kubeconfig").display(),
        sim.kubeconfig().display()
    );
    let out = tmp.path().join("p");
    let (code, stdout, stderr) = run(tool(BIN, tmp.path())
        .env("KUBECONFIG", &list)
        .args(["create", "--exclude-secrets", "--out"])
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    let m: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(m["files"].as_array().unwrap().len() > 50);
}
