//! The `restore` binary against the real sim-cluster binary serving the homelab fixture:
//! the rollback round trip (a modified Deployment and a deleted ConfigMap and Secret put back),
//! failures reported with exit 1, the server's dry run, and bad input refused with exit 2
//! before anything changes.

mod common;

use common::*;
use serde_json::json;

/// Adds what the homelab fixture lacks and a restore must bring back: a ConfigMap and a
/// Secret next to the podinfo Deployment.
fn seed(server: &Server) {
    server.kubectl(&[
        "create",
        "configmap",
        "podinfo-settings",
        "-n",
        "podinfo",
        "--from-literal=colour=blue",
    ]);
    server.kubectl(&[
        "create",
        "secret",
        "generic",
        "podinfo-token",
        "-n",
        "podinfo",
        "--from-literal=token=s3cr3t-value",
    ]);
}

fn image(server: &Server) -> String {
    let d = server
        .get(&["deployment", "podinfo", "-n", "podinfo"])
        .unwrap();
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn replace_mode_puts_a_modified_deployment_and_deleted_objects_back() {
    let server = Server::homelab();
    seed(&server);
    let point = server.dir.path().join("point");
    let identity = server.snapshot(&point);
    let original_image = image(&server);
    let original = server
        .get(&["deployment", "podinfo", "-n", "podinfo"])
        .unwrap();

    // Drift: a new image and more replicas, the ConfigMap and the Secret deleted.
    server.kubectl(&[
        "set",
        "image",
        "deployment/podinfo",
        "-n",
        "podinfo",
        "podinfo=ghcr.io/stefanprodan/podinfo:0.0.1-drifted",
    ]);
    server.kubectl(&[
        "scale",
        "deployment/podinfo",
        "-n",
        "podinfo",
        "--replicas=4",
    ]);
    server.kubectl(&["delete", "configmap", "podinfo-settings", "-n", "podinfo"]);
    server.kubectl(&["delete", "secret", "podinfo-token", "-n", "podinfo"]);
    assert_ne!(image(&server), original_image);

    let (code, doc, stderr) = run(server
        .restore()
        .arg(&point)
        .arg("--age-identity")
        .arg(&identity)
        .args(["--mode", "replace"]));
    assert_eq!(code, 0, "{stderr}\n{doc}");
    assert_eq!(doc["mode"], "replace");
    assert_eq!(doc["dryRun"], false);
    let (action, message) = entry(&doc, "Deployment", Some("podinfo"), "podinfo");
    assert_eq!(action, "replaced");
    assert!(
        message.contains("spec.replicas") && message.contains("spec.template"),
        "{message}"
    );
    assert_eq!(
        entry(&doc, "ConfigMap", Some("podinfo"), "podinfo-settings").0,
        "created"
    );
    assert_eq!(
        entry(&doc, "Secret", Some("podinfo"), "podinfo-token").0,
        "created"
    );
    // Everything else was already as stored.
    assert_eq!(entry(&doc, "Namespace", None, "podinfo").0, "unchanged");
    assert!(
        doc["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["action"] != "failed" && o["action"] != "skipped"),
        "{doc}"
    );

    // Back as it was.
    assert_eq!(image(&server), original_image);
    let now = server
        .get(&["deployment", "podinfo", "-n", "podinfo"])
        .unwrap();
    assert_eq!(now["spec"], original["spec"]);
    let cm = server
        .get(&["configmap", "podinfo-settings", "-n", "podinfo"])
        .unwrap();
    assert_eq!(cm["data"], json!({"colour": "blue"}));
    let secret = server
        .get(&["secret", "podinfo-token", "-n", "podinfo"])
        .unwrap();
    assert_eq!(secret["data"]["token"], "czNjcjN0LXZhbHVl"); // base64 of s3cr3t-value

    // Flux was suspended for the restore and runs again after it.
    let suspended: Vec<String> = doc["suspended"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["name"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        suspended.contains(&"Kustomization/apps".to_string()),
        "{suspended:?}"
    );
    assert!(
        suspended.contains(&"HelmRelease/podinfo".to_string()),
        "{suspended:?}"
    );
    let ks = server
        .get(&[
            "kustomization.kustomize.toolkit.fluxcd.io",
            "apps",
            "-n",
            "flux-system",
        ])
        .unwrap();
    assert!(ks["spec"].get("suspend").is_none(), "{}", ks["spec"]);

    // A second run finds nothing to do.
    let (code, doc, stderr) = run(server
        .restore()
        .arg(&point)
        .arg("--age-identity")
        .arg(&identity)
        .args(["--mode", "replace"]));
    assert_eq!(code, 0, "{stderr}");
    let changed: Vec<_> = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["action"] != "unchanged")
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
}

#[test]
fn create_mode_and_dry_run_and_secrets_left_out_with_only() {
    let server = Server::homelab();
    seed(&server);
    let point = server.dir.path().join("point");
    let identity = server.snapshot(&point);
    server.kubectl(&[
        "scale",
        "deployment/podinfo",
        "-n",
        "podinfo",
        "--replicas=4",
    ]);
    server.kubectl(&["delete", "configmap", "podinfo-settings", "-n", "podinfo"]);
    server.kubectl(&["delete", "secret", "podinfo-token", "-n", "podinfo"]);

    // Encrypted objects and no identity: refused before anything changes, naming the file.
    let (code, doc, stderr) = run(server.restore().arg(&point));
    assert_eq!(code, 2, "{stderr}");
    assert!(doc.is_null());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("resources/core/Secret/")
            && stderr.contains(".json.age")
            && stderr.contains("--age-identity"),
        "{stderr}"
    );
    assert!(
        server
            .get(&["configmap", "podinfo-settings", "-n", "podinfo"])
            .is_none()
    );

    // The server's dry run: what would happen, and nothing happens.
    let (code, doc, stderr) = run(server
        .restore()
        .arg(&point)
        .arg("--age-identity")
        .arg(&identity)
        .arg("--dry-run"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["dryRun"], true);
    assert_eq!(
        entry(&doc, "ConfigMap", Some("podinfo"), "podinfo-settings").0,
        "created"
    );
    assert!(
        server
            .get(&["configmap", "podinfo-settings", "-n", "podinfo"])
            .is_none()
    );
    let ks = server
        .get(&[
            "kustomization.kustomize.toolkit.fluxcd.io",
            "apps",
            "-n",
            "flux-system",
        ])
        .unwrap();
    assert!(
        ks["spec"].get("suspend").is_none(),
        "dry run suspended Flux: {}",
        ks["spec"]
    );
    // and its summary does not say it did.
    assert!(
        stderr.contains("Flux objects a restore would suspend and resume")
            && !stderr.contains("Flux objects suspended and resumed"),
        "{stderr}"
    );

    // --only leaving the Secrets out needs no identity; create mode leaves the scaled
    // Deployment alone and says so.
    let (code, doc, stderr) = run(server.restore().arg(&point).args([
        "--only",
        "ConfigMap,Deployment",
        "--only",
        "podinfo",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["mode"], "create");
    assert_eq!(
        entry(&doc, "ConfigMap", Some("podinfo"), "podinfo-settings").0,
        "created"
    );
    let (action, message) = entry(&doc, "Deployment", Some("podinfo"), "podinfo");
    assert_eq!(action, "skipped");
    assert!(
        message.contains("spec.replicas") && message.contains("--mode replace"),
        "{message}"
    );
    // Only ConfigMaps and Deployments of podinfo, and their Namespace.
    for o in doc["objects"].as_array().unwrap() {
        let kind = o["object"]["kind"].as_str().unwrap();
        assert!(
            ["ConfigMap", "Deployment", "Namespace"].contains(&kind),
            "{o}"
        );
        if kind != "Namespace" {
            assert_eq!(o["object"]["namespace"], "podinfo", "{o}");
        }
    }
    assert!(
        server
            .get(&["configmap", "podinfo-settings", "-n", "podinfo"])
            .is_some()
    );
    assert!(
        server
            .get(&["secret", "podinfo-token", "-n", "podinfo"])
            .is_none()
    );
    let d = server
        .get(&["deployment", "podinfo", "-n", "podinfo"])
        .unwrap();
    assert_eq!(d["spec"]["replicas"], 4);
}

#[test]
fn objects_the_server_refuses_are_failures_with_exit_one() {
    let server = Server::homelab();
    // A custom resource whose CRD is gone (and not in the restore point), a ConfigMap in a
    // namespace that does not exist, and one that can be restored.
    let point = hand_made_point(
        server.dir.path(),
        &[
            json!({"apiVersion": "gone.upkeep.dev/v1", "kind": "Orphan",
                "metadata": {"name": "left-behind", "namespace": "podinfo"}, "spec": {}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "lost", "namespace": "nowhere"}, "data": {"a": "b"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "fine", "namespace": "podinfo"}, "data": {"a": "b"}}),
        ],
    );
    let (code, doc, stderr) = run(server.restore().arg(&point).args(["--mode", "replace"]));
    assert_eq!(code, 1, "{stderr}\n{doc}");
    let (action, message) = entry(&doc, "Orphan", Some("podinfo"), "left-behind");
    assert_eq!(action, "failed");
    assert!(
        message.contains("Orphan (gone.upkeep.dev/v1) is not served"),
        "{message}"
    );
    let (action, message) = entry(&doc, "ConfigMap", Some("nowhere"), "lost");
    assert_eq!(action, "failed");
    // The server's own words.
    assert!(
        message.contains("404") && message.contains("nowhere"),
        "{message}"
    );
    assert_eq!(
        entry(&doc, "ConfigMap", Some("podinfo"), "fine").0,
        "created"
    );
    assert!(
        stderr.contains("left-behind"),
        "failures are on stderr too: {stderr}"
    );
    // Flux resumed despite the failures.
    let ks = server
        .get(&[
            "kustomization.kustomize.toolkit.fluxcd.io",
            "apps",
            "-n",
            "flux-system",
        ])
        .unwrap();
    assert!(ks["spec"].get("suspend").is_none(), "{}", ks["spec"]);
}

#[test]
fn bad_input_is_one_line_and_exit_two_and_a_dead_cluster_exit_three() {
    let server = Server::homelab();
    let point = hand_made_point(
        server.dir.path(),
        &[json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "podinfo"}, "data": {}})],
    );
    let usage = |args: &[&str], needle: &str| {
        let (code, doc, stderr) = run(server.restore().args(args));
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(doc.is_null());
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    };
    let p = point.to_str().unwrap();
    usage(
        &[p, "--only", "Deploymnet"],
        "--only Deploymnet: no kind or namespace",
    );
    usage(&["/no/such/point"], "/no/such/point");
    usage(&[p, "--mode", "merge"], "invalid value 'merge'");
    usage(&[p, "--age-identity", "/no/such/key"], "/no/such/key");
    // A damaged restore point: a stored file that no longer matches its checksum.
    let f = point.join("resources/core/ConfigMap/podinfo/c.json");
    std::fs::write(&f, b"{\"tampered\": true}").unwrap();
    usage(&[p], "c.json");

    // Nothing listening: exit 3, one line.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let kc = server.dir.path().join("dead-kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n\
             users: [{{name: u, user: {{}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let good = hand_made_point(
        &server.dir.path().join("second"),
        &[json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "podinfo"}, "data": {}})],
    );
    let out = std::process::Command::new(RESTORE)
        .env_clear()
        .env("HOME", server.dir.path())
        .arg(&good)
        .arg("--kubeconfig")
        .arg(&kc)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(out.stdout.is_empty());
    // One error line (an info line saying what was read may precede it); kube's own
    // "failed with error" log of the same failure is not repeated.
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].starts_with("restore: error: "), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}
