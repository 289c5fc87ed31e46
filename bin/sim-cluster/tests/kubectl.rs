//! Conformance as judged by the real kubectl: every test starts the real binary and drives
//! `/usr/bin/kubectl` against it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{KUBECTL, Server, V132, fixture, names, realdata, stderr};
use serde_json::Value;

#[test]
fn api_resources_lists_builtins_and_fixture_crds() {
    // Default server version (1.31: kubectl 1.31) and 1.32 (kubectl 1.32).
    for extra in [&[][..], &["--server-version", V132][..]] {
        let s = Server::start(&fixture("basic"), extra);
        let out = s.ok(&["api-resources"]);
        let rows: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let has = |cells: &[&str]| rows.iter().any(|r| r.as_slice() == cells);
        assert!(
            has(&["deployments", "deploy", "apps/v1", "true", "Deployment"]),
            "{out}"
        );
        assert!(
            has(&["namespaces", "ns", "v1", "false", "Namespace"]),
            "{out}"
        );
        assert!(
            has(&[
                "customresourcedefinitions",
                "crd,crds",
                "apiextensions.k8s.io/v1",
                "false",
                "CustomResourceDefinition"
            ]),
            "{out}"
        );
        assert!(
            has(&[
                "volumesnapshots",
                "vs",
                "snapshot.storage.k8s.io/v1",
                "true",
                "VolumeSnapshot"
            ]),
            "{out}"
        );
        assert!(
            has(&["widgets", "wdg", "sim.upkeep.dev/v1", "true", "Widget"]),
            "{out}"
        );
        let version = s.json(&["version"]);
        let want = extra.get(1).copied().unwrap_or("v1.31.4+k3s1");
        assert_eq!(version["serverVersion"]["gitVersion"], want);
    }
}

#[test]
fn fixture_crd_loads_before_its_custom_resources_and_serves_all_versions() {
    let s = Server::start(&fixture("basic"), &["--server-version", V132]);
    let w = s.json(&["get", "widgets.v1.sim.upkeep.dev", "-n", "apps", "blue"]);
    assert_eq!(w["spec"]["size"], 3);
    // A fixture keeps the status it was written with.
    assert_eq!(w["status"]["conditions"][0]["reason"], "Pending");
    let beta = s.json(&[
        "get",
        "widgets.v1beta1.sim.upkeep.dev",
        "-n",
        "apps",
        "blue",
    ]);
    assert_eq!(beta["apiVersion"], "sim.upkeep.dev/v1beta1");
    let crd = s.json(&["get", "crd", "widgets.sim.upkeep.dev"]);
    let established = crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Established" && c["status"] == "True");
    assert!(established, "{crd}");
    // Human output uses the CRD's printer columns (a server-side Table).
    let table = s.ok(&["get", "wdg", "-n", "apps"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE", "READY", "AGE"], "{table}");
    assert!(table.lines().nth(1).unwrap().starts_with("blue"), "{table}");
}

#[test]
fn apply_real_flux_and_longhorn_crds_then_custom_resources() {
    let Some(real) = realdata() else { return };
    let s = Server::start(&fixture("basic"), &["--server-version", V132]);
    let flux = real.join("flux/crds");
    let longhorn = real.join("longhorn/crds-v1.12.1");
    // Client-side apply of the Flux CRDs, server-side apply of the Longhorn ones.
    let out = s.ok(&["apply", "-R", "-f", flux.to_str().unwrap()]);
    assert!(
        out.contains("helmreleases.helm.toolkit.fluxcd.io created"),
        "{out}"
    );
    let out = s.ok(&["apply", "--server-side", "-f", longhorn.to_str().unwrap()]);
    assert!(
        out.contains("volumes.longhorn.io serverside-applied"),
        "{out}"
    );
    // Re-applying is a no-op for both modes.
    let again = s.ok(&["apply", "-R", "-f", flux.to_str().unwrap()]);
    assert!(again.lines().all(|l| l.ends_with("unchanged")), "{again}");
    s.ok(&["apply", "--server-side", "-f", longhorn.to_str().unwrap()]);
    // Switching the Flux CRDs from client-side to server-side apply: kubectl applies, then
    // rewrites managedFields to hand client-side ownership to its apply manager.
    s.ok(&["apply", "--server-side", "-R", "-f", flux.to_str().unwrap()]);
    let crd = s.json(&[
        "get",
        "crd",
        "helmreleases.helm.toolkit.fluxcd.io",
        "--show-managed-fields",
    ]);
    let managers: Vec<(&str, &str)> = crd["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap(),
                m["operation"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(managers.contains(&("kubectl", "Apply")), "{managers:?}");
    assert!(
        !managers
            .iter()
            .any(|(m, _)| *m == "kubectl-client-side-apply"),
        "{managers:?}"
    );

    let out = s.ok(&["api-resources", "--api-group=helm.toolkit.fluxcd.io"]);
    assert!(out.contains("helmreleases") && out.contains("hr"), "{out}");
    let out = s.ok(&["api-resources", "--api-group=longhorn.io"]);
    assert!(out.contains("volumes") && out.contains("lhv"), "{out}");

    // Custom resources of those kinds: the flux2 CLI's own test objects (templated there).
    let text = std::fs::read_to_string(
        real.join("flux/live-objects/flux2-testdata/cmd/flux/testdata/trace/helmrelease.yaml"),
    )
    .unwrap()
    .replace("{{ .fluxns }}", "flux-system")
    .replace("{{ .ns }}", "podinfo");
    let path = s.write("flux-objects.yaml", &text);
    let out = s.ok(&["apply", "-f", path.to_str().unwrap()]);
    assert!(
        out.contains("helmrelease.helm.toolkit.fluxcd.io/podinfo created"),
        "{out}"
    );
    assert!(
        out.contains("gitrepository.source.toolkit.fluxcd.io/flux-system created"),
        "{out}"
    );
    let hr = s.json(&["get", "hr", "-n", "podinfo", "podinfo"]);
    assert_eq!(hr["spec"]["chart"]["spec"]["chart"], "podinfo");
    assert!(
        hr.get("status").is_none(),
        "status is not writable through the main resource"
    );
    assert_eq!(hr["metadata"]["generation"], 1);
    // The manifest carries a status, so kubectl sends it again; the server ignores it
    // (status subresource) and the spec, hence the generation, stays put.
    s.ok(&["apply", "-f", path.to_str().unwrap()]);
    let hr = s.json(&["get", "hr", "-n", "podinfo", "podinfo"]);
    assert_eq!(hr["metadata"]["generation"], 1);
    assert!(hr.get("status").is_none());

    // Fields the CRD's schema does not declare: refused under kubectl's default strict field
    // validation, pruned when validation is off (the real server's two behaviours).
    let typo = text.replace("  interval: 5m\n", "  interval: 5m\n  intervall: 5m\n");
    assert_ne!(typo, text, "the flux test object changed shape");
    let typo_path = s.write("typo.yaml", &typo);
    let out = s.kubectl(&["apply", "-f", typo_path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("strict decoding error: unknown field \"spec.intervall\""),
        "{}",
        stderr(&out)
    );
    s.ok(&[
        "apply",
        "--validate=false",
        "-f",
        typo_path.to_str().unwrap(),
    ]);
    let hr = s.json(&["get", "hr", "-n", "podinfo", "podinfo"]);
    assert!(hr["spec"].get("intervall").is_none(), "{hr}");

    let lh = s.write(
        "longhorn-objects.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: longhorn-system}\n---\n\
         apiVersion: longhorn.io/v1beta2\nkind: Volume\nmetadata: {name: pvc-data, namespace: longhorn-system}\n\
         spec: {size: \"10737418240\", numberOfReplicas: 3, frontend: blockdev}\n---\n\
         apiVersion: longhorn.io/v1beta2\nkind: Setting\nmetadata: {name: backup-target, namespace: longhorn-system}\n\
         value: \"s3://backups@us-east-1/\"\n",
    );
    s.ok(&["apply", "--server-side", "-f", lh.to_str().unwrap()]);
    let vol = s.json(&[
        "get",
        "volumes.longhorn.io",
        "-n",
        "longhorn-system",
        "pvc-data",
    ]);
    assert_eq!(vol["spec"]["numberOfReplicas"], 3);
    let setting = s.json(&[
        "get",
        "settings.longhorn.io",
        "-n",
        "longhorn-system",
        "backup-target",
    ]);
    assert_eq!(setting["value"], "s3://backups@us-east-1/");
}

#[test]
fn get_json_with_label_selectors_and_chunked_lists() {
    let s = Server::start(&fixture("basic"), &["--server-version", V132]);
    let list = s.json(&["get", "configmaps", "-A", "-l", "app=web"]);
    assert_eq!(names(&list), ["web-canary", "web-settings"]);
    let list = s.json(&["get", "cm", "-n", "apps", "-l", "env in (prod),app!=web"]);
    assert_eq!(names(&list), ["api-settings"]);
    let list = s.json(&["get", "cm", "-n", "apps", "-l", "app,!tier"]);
    assert_eq!(names(&list), ["api-settings", "web-canary"]);
    let list = s.json(&["get", "cm", "-n", "apps", "-l", "env notin (prod)"]);
    assert_eq!(names(&list), ["web-canary"]);
    let list = s.json(&[
        "get",
        "cm",
        "-n",
        "apps",
        "--field-selector",
        "metadata.name=web-canary",
    ]);
    assert_eq!(names(&list), ["web-canary"]);
    let list = s.json(&["get", "widgets", "-A", "-l", "app=web"]);
    assert_eq!(names(&list), ["blue"]);

    // Pagination: kubectl follows `continue` tokens page by page.
    for i in 0..5 {
        let cm = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: page-{i}, namespace: apps}}\n"
        );
        s.kubectl_stdin(&["apply", "-f", "-"], Some(&cm));
    }
    let out = s.kubectl(&[
        "get",
        "cm",
        "-n",
        "apps",
        "--chunk-size=2",
        "-o",
        "name",
        "-v=6",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(got.len(), 8, "{got:?}");
    let log = stderr(&out);
    let pages = log
        .lines()
        .filter(|l| l.contains("GET") && l.contains("limit=2"))
        .count();
    assert_eq!(pages, 4, "{log}");
    assert!(log.contains("continue="), "{log}");
}

#[test]
fn patch_merge_and_json_bump_generation_on_spec_only() {
    let s = Server::start(&fixture("basic"), &["--server-version", V132]);
    let before = s.json(&["get", "deploy", "-n", "apps", "web"]);
    assert_eq!(before["metadata"]["generation"], 1);
    s.ok(&[
        "patch",
        "deploy",
        "-n",
        "apps",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":4}}"#,
    ]);
    s.ok(&["patch", "deploy", "-n", "apps", "web", "--type", "json", "-p",
        r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28.0"}]"#]);
    let d = s.json(&["get", "deploy", "-n", "apps", "web"]);
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.28.0"
    );
    assert_eq!(d["metadata"]["generation"], 3);
    // Metadata-only and status-only changes keep the generation.
    s.ok(&["label", "deploy", "-n", "apps", "web", "reviewed=yes"]);
    s.ok(&[
        "patch",
        "deploy",
        "-n",
        "apps",
        "web",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"readyReplicas":4}}"#,
    ]);
    let d = s.json(&["get", "deploy", "-n", "apps", "web"]);
    assert_eq!(d["metadata"]["generation"], 3);
    assert_eq!(d["metadata"]["labels"]["reviewed"], "yes");
    assert_eq!(d["status"]["readyReplicas"], 4);
    // Strategic merge (kubectl's default for built-ins) merges containers by name.
    s.ok(&["patch", "deploy", "-n", "apps", "web", "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"}]}}}}"#]);
    let d = s.json(&["get", "deploy", "-n", "apps", "web"]);
    let containers: Vec<&str> = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(containers, ["web", "sidecar"]);
    // A failing JSON patch test op changes nothing and reports 422.
    let out = s.kubectl(&["patch", "deploy", "-n", "apps", "web", "--type", "json", "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":99},{"op":"replace","path":"/spec/replicas","value":1}]"#]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("The request is invalid")
            && stderr(&out).contains("value did not match"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        s.json(&["get", "deploy", "-n", "apps", "web"])["spec"]["replicas"],
        4
    );
    // The scale subresource, as `kubectl scale` uses it.
    s.ok(&["scale", "deploy", "-n", "apps", "web", "--replicas=6"]);
    assert_eq!(
        s.json(&["get", "deploy", "-n", "apps", "web"])["spec"]["replicas"],
        6
    );
    s.ok(&["scale", "deploy", "-n", "apps", "web", "--replicas=4"]);
    // dryRun=All stores nothing.
    s.ok(&[
        "patch",
        "deploy",
        "-n",
        "apps",
        "web",
        "--dry-run=server",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":9}}"#,
    ]);
    assert_eq!(
        s.json(&["get", "deploy", "-n", "apps", "web"])["spec"]["replicas"],
        4
    );
}

#[test]
fn wait_for_condition_set_by_a_status_patch_from_another_process() {
    let s = Server::start(&fixture("basic"), &["--server-version", V132]);
    let mut waiter = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args([
            "wait",
            "--for=condition=Ready",
            "widgets/blue",
            "-n",
            "apps",
            "--timeout=30s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "kubectl wait returned before the condition was set"
    );
    s.ok(&["patch", "widgets", "blue", "-n", "apps", "--subresource", "status", "--type", "merge", "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Done","message":"ok","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#]);
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));
}

#[test]
fn get_watch_streams_changes() {
    let s = Server::start(&fixture("basic"), &["--server-version", V132]);
    let mut watcher = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args([
            "get",
            "cm",
            "-n",
            "apps",
            "-w",
            "--output-watch-events",
            "--no-headers",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(first.starts_with("ADDED"), "{first}");
    s.ok(&[
        "patch",
        "cm",
        "-n",
        "apps",
        "web-settings",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"x":"1"}}"#,
    ]);
    s.ok(&["delete", "cm", "-n", "apps", "api-settings"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < deadline && !seen.iter().any(|l: &String| l.starts_with("DELETED")) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    let has = |event: &str, name: &str| {
        seen.iter().any(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.first() == Some(&event) && cells.get(1) == Some(&name)
        })
    };
    assert!(has("MODIFIED", "web-settings"), "{seen:?}");
    assert!(has("DELETED", "api-settings"), "{seen:?}");
}

#[test]
fn delete_objects_finalizers_and_namespace_cascade() {
    let s = Server::start(&fixture("basic"), &["--server-version", V132]);
    s.ok(&[
        "delete",
        "cm",
        "-n",
        "apps",
        "web-canary",
        "--dry-run=server",
    ]);
    s.ok(&["get", "cm", "-n", "apps", "web-canary"]);
    let out = s.ok(&["delete", "cm", "-n", "apps", "web-canary"]);
    assert!(out.contains("\"web-canary\" deleted"), "{out}");
    let gone = s.kubectl(&["get", "cm", "-n", "apps", "web-canary"]);
    assert!(stderr(&gone).contains("NotFound"), "{}", stderr(&gone));

    // A finalizer holds the object (deletionTimestamp set) until it is removed.
    s.kubectl_stdin(&["apply", "-f", "-"], Some(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, namespace: apps, finalizers: [sim.upkeep.dev/hold]}\n",
    ));
    s.ok(&["delete", "cm", "-n", "apps", "held", "--wait=false"]);
    let held = s.json(&["get", "cm", "-n", "apps", "held"]);
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");

    // Deleting the namespace deletes what is in it; it goes once the finalizer is released.
    s.ok(&["delete", "ns", "apps", "--wait=false"]);
    let ns = s.json(&["get", "ns", "apps"]);
    assert_eq!(ns["status"]["phase"], "Terminating");
    for (kind, name) in [
        ("cm", "web-settings"),
        ("deploy", "web"),
        ("widgets", "blue"),
    ] {
        let out = s.kubectl(&["get", kind, "-n", "apps", name]);
        assert!(
            stderr(&out).contains("NotFound"),
            "{kind}/{name}: {}",
            stderr(&out)
        );
    }
    let refused = s.kubectl_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late, namespace: apps}\n"),
    );
    assert!(
        stderr(&refused).contains("being terminated"),
        "{}",
        stderr(&refused)
    );
    s.ok(&[
        "patch",
        "cm",
        "-n",
        "apps",
        "held",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    let out = s.kubectl(&["get", "ns", "apps"]);
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));

    // A namespace with objects, deleted and waited for, as users do it.
    s.kubectl_stdin(&["apply", "-f", "-"], Some(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: team}\nstringData: {k: v}\n",
    ));
    assert_eq!(
        s.json(&["get", "secret", "-n", "team", "s"])["data"]["k"],
        "dg=="
    );
    let out = s.ok(&["delete", "namespace", "team"]);
    assert!(out.contains("namespace \"team\" deleted"), "{out}");
    assert!(stderr(&s.kubectl(&["get", "secret", "-n", "team", "s"])).contains("NotFound"));

    // Deleting a CRD stops serving its kind.
    s.ok(&["delete", "crd", "widgets.sim.upkeep.dev"]);
    let out = s.ok(&["api-resources"]);
    assert!(!out.contains("sim.upkeep.dev"), "{out}");
}

#[test]
fn stale_update_is_answered_409_conflict() {
    let s = Server::start(&fixture("basic"), &["--server-version", V132]);
    let old = s.ok(&["get", "cm", "-n", "apps", "web-settings", "-o", "json"]);
    let path = s.write("old.json", &old);
    s.ok(&["label", "cm", "-n", "apps", "web-settings", "touched=yes"]);
    let out = s.kubectl(&["replace", "-f", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("Conflict") && err.contains("the object has been modified"),
        "{err}"
    );
    // The current version replaces fine.
    let cur = s.ok(&["get", "cm", "-n", "apps", "web-settings", "-o", "json"]);
    let path = s.write("cur.json", &cur);
    s.ok(&["replace", "-f", path.to_str().unwrap()]);
    // Creating what exists is AlreadyExists.
    let out = s.kubectl(&["create", "-f", path.to_str().unwrap()]);
    assert!(stderr(&out).contains("AlreadyExists"), "{}", stderr(&out));
}

#[test]
fn server_side_apply_conflicts_between_managers() {
    let s = Server::start(&fixture("basic"), &["--server-version", V132]);
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owned, namespace: apps}\ndata: {k: one}\n";
    let out = s.kubectl_stdin(
        &["apply", "--server-side", "--field-manager=alpha", "-f", "-"],
        Some(cm),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let other = cm.replace("one", "two");
    let out = s.kubectl_stdin(
        &["apply", "--server-side", "--field-manager=beta", "-f", "-"],
        Some(&other),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("conflict with \"alpha\""),
        "{}",
        stderr(&out)
    );
    let out = s.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=beta",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(&other),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let got = s.json(&["get", "cm", "-n", "apps", "owned", "--show-managed-fields"]);
    assert_eq!(got["data"]["k"], "two");
    let managers: Vec<&str> = got["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["beta"]);
}

#[test]
fn bad_fixtures_exit_2_naming_file_and_document() {
    for (dir, file, index, what) in [
        ("bad-yaml", "broken.yaml", 1, "invalid YAML"),
        ("unknown-kind", "things.yaml", 1, "unknown kind Gizmo"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let kc = tmp.path().join("kc");
        let out = Command::new(env!("CARGO_BIN_EXE_sim-cluster"))
            .args(["serve", "--fixture"])
            .arg(fixture(dir))
            .arg("--kubeconfig-out")
            .arg(&kc)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{dir}");
        assert!(out.stdout.is_empty(), "no ready line for a bad fixture");
        assert!(!kc.exists(), "nothing served, no kubeconfig");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("{file}: document {index}: {what}")),
            "{err}"
        );
    }
}

#[test]
fn bind_failure_exits_3_and_bad_flags_exit_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sim-cluster"))
        .args(["serve", "--fixture"])
        .arg(fixture("basic"))
        .arg("--kubeconfig-out")
        .arg(tmp.path().join("kc"))
        .args(["--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("cannot listen on"),
        "{}",
        stderr(&out)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sim-cluster"))
        .args(["serve", "--listen", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sigterm_stops_cleanly_and_dumps_state() {
    let state = tempfile::tempdir().unwrap();
    let s = Server::start(
        &fixture("basic"),
        &["--state-out", state.path().to_str().unwrap()],
    );
    s.kubectl_stdin(&["apply", "-f", "-"], Some(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late-addition, namespace: apps}\ndata: {a: b}\n",
    ));
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
    let dumped = state.path().join("apps/configmaps/late-addition.json");
    let obj: Value = serde_json::from_str(&std::fs::read_to_string(&dumped).unwrap()).unwrap();
    assert_eq!(obj["data"]["a"], "b");
    assert!(
        state
            .path()
            .join("apps/widgets.sim.upkeep.dev/blue.json")
            .is_file()
    );
    assert!(state.path().join("_cluster/namespaces/apps.json").is_file());
}

#[test]
fn sigint_stops_cleanly_too() {
    let mut s = Server::start(&fixture("basic"), &[]);
    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = s.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn tls_requires_the_bearer_token() {
    let s = Server::start(&fixture("basic"), &["--tls", "--server-version", V132]);
    let kc: Value = serde_json::from_str(&std::fs::read_to_string(&s.kubeconfig).unwrap()).unwrap();
    assert!(
        kc["clusters"][0]["cluster"]["server"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    assert!(kc["clusters"][0]["cluster"]["certificate-authority-data"].is_string());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&s.kubeconfig)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "kubeconfig holds a token: not group/world readable"
        );
    }
    let list = s.json(&["get", "cm", "-n", "apps"]);
    assert_eq!(names(&list), ["api-settings", "web-canary", "web-settings"]);
    s.ok(&[
        "patch",
        "cm",
        "-n",
        "apps",
        "web-settings",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"tls":"yes"}}"#,
    ]);

    let mut wrong = kc.clone();
    wrong["users"][0]["user"]["token"] = Value::from("not-the-token");
    let bad = s.write("bad-kubeconfig", &wrong.to_string());
    let out = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(&bad)
        .args(["get", "cm", "-n", "apps"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));
}

fn raw_get(address: &str, path: &str, accept: &str) -> (String, Value) {
    let mut conn = std::net::TcpStream::connect(address).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    conn.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    (
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap(),
    )
}

/// kubectl 1.32 asks for aggregated discovery (apidiscovery.k8s.io/v2) first and gets it;
/// clients asking for plain JSON get the legacy APIGroupList.
#[test]
fn aggregated_and_legacy_discovery() {
    let s = Server::start(&fixture("basic"), &[]);
    let aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let (head, v) = raw_get(&s.address, "/apis", aggregated);
    assert!(
        head.contains(
            "content-type: application/json;g=apidiscovery.k8s.io;v=v2;as=apigroupdiscoverylist\r\n"
        ),
        "{head}"
    );
    assert_eq!(v["kind"], "APIGroupDiscoveryList");
    let apps = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .unwrap();
    let deploy = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .unwrap();
    assert_eq!(deploy["scope"], "Namespaced");
    let subs: Vec<&str> = deploy["subresources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["subresource"].as_str().unwrap())
        .collect();
    assert_eq!(subs, ["status", "scale"]);
    let (_, core) = raw_get(&s.address, "/api", aggregated);
    assert_eq!(core["items"][0]["metadata"]["name"], "");

    let (head, v) = raw_get(&s.address, "/apis", "application/json, */*");
    assert!(
        head.contains("content-type: application/json\r\n"),
        "{head}"
    );
    assert_eq!(v["kind"], "APIGroupList");
    let widgets = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "sim.upkeep.dev")
        .unwrap();
    assert_eq!(widgets["preferredVersion"]["version"], "v1");
    let versions: Vec<&str> = widgets["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["v1", "v1beta1"]);

    // kubectl discovers through the aggregated document: two requests, then the real call.
    let out = s.kubectl(&[
        "get",
        "widgets",
        "-A",
        "-v=6",
        "--cache-dir",
        s.dir.path().join("cache").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        !log.contains("/apis/sim.upkeep.dev/v1?"),
        "legacy per-group discovery was used: {log}"
    );
}

/// kubectl's typed `create <kind>` subcommands send protobuf bodies; the common ones decode.
#[test]
fn typed_create_subcommands_work() {
    let s = Server::start(&fixture("basic"), &["--server-version", V132]);
    s.ok(&["create", "namespace", "demo"]);
    s.ok(&[
        "-n",
        "demo",
        "create",
        "configmap",
        "c",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    s.ok(&[
        "-n",
        "demo",
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=pw=hunter2",
    ]);
    s.ok(&["-n", "demo", "create", "serviceaccount", "bot"]);
    let ns = s.json(&["get", "ns", "demo"]);
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["spec"]["finalizers"][0], "kubernetes");
    let cm = s.json(&["-n", "demo", "get", "cm", "c"]);
    assert_eq!(cm["data"], serde_json::json!({"a": "1", "b": "2"}));
    assert!(
        cm["metadata"].get("generation").is_none(),
        "ConfigMaps carry no generation"
    );
    let secret = s.json(&["-n", "demo", "get", "secret", "s"]);
    assert_eq!(secret["data"]["pw"], "aHVudGVyMg==");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(
        s.json(&["-n", "demo", "get", "sa", "bot"])["metadata"]["name"],
        "bot"
    );
    // Which encoding `create deployment` uses depends on the kubectl minor the dispatcher
    // picks (1.32+ sends protobuf, older clients JSON), so read it from kubectl's own log.
    let out = s.kubectl(&[
        "-v=7",
        "-n",
        "demo",
        "create",
        "deployment",
        "d",
        "--image=nginx",
    ]);
    let log = stderr(&out);
    let sent_protobuf = log
        .lines()
        .any(|l| l.contains("Content-Type: application/vnd.kubernetes.protobuf"));
    if sent_protobuf {
        // Kinds not decoded from protobuf are refused with a message that says what to do.
        assert!(!out.status.success(), "{log}");
        assert!(log.contains("kubectl apply -f"), "{log}");
        assert!(
            s.kubectl(&["-n", "demo", "get", "deploy", "d"])
                .status
                .code()
                != Some(0)
        );
    } else {
        assert!(log.contains("Content-Type: application/json"), "{log}");
        assert!(out.status.success(), "{log}");
        let d = s.json(&["-n", "demo", "get", "deploy", "d"]);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx"
        );
    }
}

/// Real install manifests as a fixture: Longhorn's longhorn.yaml and a homelab's Flux
/// gotk-components.yaml (CRDs interleaved with everything else, many documents per file).
#[test]
fn real_install_manifests_load_as_a_fixture() {
    let Some(real) = realdata() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (src, name) in [
        ("longhorn/deploy/longhorn-v1.12.1.yaml", "longhorn.yaml"),
        (
            "gitops/billimek__k8s-gitops/flux-system/gotk-components.yaml",
            "flux/gotk-components.yaml",
        ),
    ] {
        let to = dir.path().join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(real.join(src), &to).unwrap();
    }
    let s = Server::start(dir.path(), &["--server-version", V132]);
    let crds = s.json(&["get", "crd"]);
    let crd_names = names(&crds);
    assert!(
        crd_names.contains(&"volumes.longhorn.io".to_string()),
        "{crd_names:?}"
    );
    assert!(
        crd_names.contains(&"helmreleases.helm.toolkit.fluxcd.io".to_string()),
        "{crd_names:?}"
    );
    let deploys = s.json(&["get", "deploy", "-n", "flux-system"]);
    assert!(names(&deploys).contains(&"source-controller".to_string()));
    let ds = s.json(&["get", "ds", "-n", "longhorn-system"]);
    assert!(
        names(&ds).contains(&"longhorn-manager".to_string()),
        "{:?}",
        names(&ds)
    );
    // The multi-version Flux CRDs of that release serve every version they list.
    let out = s.ok(&[
        "api-resources",
        "--api-group=helm.toolkit.fluxcd.io",
        "-o",
        "wide",
    ]);
    assert!(out.contains("helmreleases"), "{out}");
    s.ok(&["get", "helmreleases.v2beta2.helm.toolkit.fluxcd.io", "-A"]);
}

/// `kubectl drain` works against the simulator: cordon, pods listed by
/// node, evicted through `pods/eviction`, a PodDisruptionBudget that
/// allows no disruption answered 429 (drain keeps retrying and times out),
/// DaemonSet pods left in place.
#[test]
fn drain_evicts_through_the_eviction_api_and_honours_budgets() {
    let s = Server::start(&fixture("basic"), &["--server-version", V132]);
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n2}\n",
    );
    for (name, node, app) in [("a", "n1", "web"), ("b", "n1", "db"), ("c", "n2", "web")] {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: apps, labels: {{app: {app}}}, ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: {app}-1, uid: rs-{app}, controller: true}}]}}\nspec: {{nodeName: {node}, containers: [{{name: c, image: busybox}}]}}\nstatus: {{phase: Running}}\n"
        ));
    }
    // db has one pod and must keep it.
    yaml.push_str("---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: db, namespace: apps}\nspec: {minAvailable: 1, selector: {matchLabels: {app: db}}}\n");
    s.kubectl_stdin(&["apply", "-f", "-"], Some(&yaml));
    let out = s.kubectl(&[
        "drain",
        "n1",
        "--ignore-daemonsets",
        "--timeout=3s",
        "--pod-selector=app=db",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("disruption budget"), "{err}");
    s.ok(&["get", "pod", "-n", "apps", "b"]);
    let node = s.json(&["get", "node", "n1"]);
    assert_eq!(node["spec"]["unschedulable"], true, "{node}");

    // Without the budget in the way, n1 is emptied and n2 is untouched.
    s.ok(&["delete", "pdb", "-n", "apps", "db"]);
    let out = s.ok(&["drain", "n1", "--ignore-daemonsets", "--timeout=20s"]);
    assert!(out.contains("evicted"), "{out}");
    let left = s.json(&[
        "get",
        "pods",
        "-n",
        "apps",
        "--field-selector",
        "spec.nodeName=n1",
    ]);
    assert!(names(&left).is_empty(), "{left}");
    s.ok(&["get", "pod", "-n", "apps", "c"]);
    s.ok(&["uncordon", "n1"]);
    let node = s.json(&["get", "node", "n1"]);
    assert_ne!(node["spec"]["unschedulable"], true, "{node}");
}
