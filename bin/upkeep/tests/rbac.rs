//! Least privilege, checked against what the tools really do: sim-cluster
//! logs every API request (verb and path) while `upkeep` scans, runs a
//! chart update (restore point, validators, maintenance freeze, Lease,
//! reconcile requests), runs a broken one that rolls back, and shows its
//! status, the way the CronJob of `upkeep schedule print-cronjob` runs it.
//! Every request must be allowed by that CronJob's ClusterRole and Role; the
//! test prints each verb and resource used, and the write rules no request
//! needed.

#[path = "../../apply-update/tests/common/flux.rs"]
mod flux;
#[path = "common/run.rs"]
mod run;
#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use std::collections::BTreeSet;

use flux::*;
use run::{config, plan};
use serde_json::{Value, json};
use sim::*;

const BIN: &str = env!("CARGO_BIN_EXE_upkeep");

/// One request as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Attrs {
    verb: String,
    group: String,
    /// `pods` or `pods/eviction`.
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
}

/// A resource path's RBAC attributes; `None` for discovery (non-resource) paths.
fn attrs(verb: &str, path: &str) -> Option<Attrs> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _v, rest @ ..] => ("", rest),
        ["apis", g, _v, rest @ ..] => (*g, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let (resource, name, sub) = match rest {
        [] => return None,
        [r] => (*r, None, None),
        [r, n] => (*r, Some(n.to_string()), None),
        [r, n, s, ..] => (*r, Some(n.to_string()), Some(*s)),
    };
    Some(Attrs {
        verb: verb.to_string(),
        group: group.to_string(),
        resource: match sub {
            Some(s) => format!("{resource}/{s}"),
            None => resource.to_string(),
        },
        namespace,
        name,
    })
}

fn has(list: &Value, want: &str) -> bool {
    list.as_array()
        .is_some_and(|l| l.iter().any(|x| x == "*" || x == want))
}

/// Whether one PolicyRule allows `a` (names restrict only requests that name an object).
fn allows(rule: &Value, a: &Attrs) -> bool {
    let names_ok = match rule.get("resourceNames").and_then(Value::as_array) {
        None => true,
        Some(n) if n.is_empty() => true,
        Some(n) => a
            .name
            .as_ref()
            .is_some_and(|name| n.iter().any(|x| x == name.as_str())),
    };
    has(&rule["verbs"], &a.verb)
        && has(&rule["apiGroups"], &a.group)
        && has(&rule["resources"], &a.resource)
        && names_ok
}

#[test]
fn every_request_of_a_scheduled_run_is_allowed_by_the_cronjob_rbac() {
    let tmp = tempfile::tempdir().unwrap();
    let g = gitops(tmp.path());
    let sim = cluster(tmp.path(), &g.origin);
    eventually("6.5.0 installed", || {
        (installed(&sim)? == ("6.5.0".into(), "deployed".into())).then_some(())
    });
    let cfg = config(tmp.path());
    let upkeep = |args: &[&str]| {
        tool(BIN, tmp.path())
            .arg("--config")
            .arg(&cfg)
            .arg("--gitops")
            .arg(&g.checkout)
            .arg("--kubeconfig")
            .arg(sim.kubeconfig())
            .env("UPKEEP_OFFLINE", "1")
            .args(args)
            .output()
            .unwrap()
    };
    // What the test harness itself asked for so far is not the tools'.
    sim.kubectl_out(&["delete", "--raw", "/_admin/requests"]);

    // Runs `upkeep ARGS`, which must exit with one of `codes`; its stdout.
    let ran = |args: &[&str], codes: &[i32]| -> String {
        let out = upkeep(args);
        assert!(
            out.status.code().is_some_and(|c| codes.contains(&c)),
            "{args:?}: {:?} {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // scan reads the cluster; offline, the upstreams are a cache miss (exit 3).
    ran(&["-o", "json", "scan"], &[0, 3]);
    let run = |from: &str, to: &str, code: i32| {
        let p = plan(tmp.path(), &format!("{to}.json"), from, to);
        let args = ["-o", "json", "run", "--yes", "--poll", "200ms", "--plan"];
        ran(&[&args[..], &[p.to_str().unwrap()]].concat(), &[code]);
    };
    run("6.5.0", "6.6.0", 0);
    // A version the simulated Flux refuses: reverted, exit 1.
    run("6.6.0", "6.7.0", 1);
    ran(&["status"], &[0]);

    let log = sim.kubectl(&["get", "--raw", "/_admin/requests"]);
    let mut used = BTreeSet::new();
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(v.get("dropped").is_none(), "the request log overflowed");
        if let Some(a) = attrs(v["verb"].as_str().unwrap(), v["path"].as_str().unwrap()) {
            used.insert(a);
        }
    }
    assert!(used.len() > 20, "the runs made requests: {used:?}");

    let text = ran(&["schedule", "print-cronjob"], &[0]);
    let docs: Vec<Value> = text
        .split("\n---\n")
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    let role_of = |kind: &str| -> Vec<Value> {
        docs.iter()
            .filter(|d| d["kind"] == kind)
            .flat_map(|d| d["rules"].as_array().unwrap().clone())
            .collect()
    };
    let cluster_rules = role_of("ClusterRole");
    let ks_rules = role_of("Role");
    assert!(
        docs.iter()
            .any(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == "kube-system")
    );

    let mut denied = Vec::new();
    let mut needed = BTreeSet::new();
    for a in &used {
        let cluster = cluster_rules.iter().position(|r| allows(r, a));
        let ks = (a.namespace.as_deref() == Some("kube-system"))
            .then(|| ks_rules.iter().position(|r| allows(r, a)))
            .flatten();
        match (cluster, ks) {
            (Some(i), _) => {
                needed.insert(("ClusterRole", i));
            }
            (None, Some(i)) => {
                needed.insert(("Role", i));
            }
            (None, None) => denied.push(a.clone()),
        }
    }
    let kinds: BTreeSet<(String, String, String)> = used
        .iter()
        .map(|a| (a.verb.clone(), a.group.clone(), a.resource.clone()))
        .collect();
    eprintln!(
        "rbac: {} requests of {} kinds (verb, group, resource):",
        used.len(),
        kinds.len()
    );
    for (v, g, r) in &kinds {
        eprintln!(
            "  {v} {}{r}",
            if g.is_empty() {
                String::new()
            } else {
                format!("{g}/")
            }
        );
    }
    for (name, rules) in [("ClusterRole", &cluster_rules), ("Role", &ks_rules)] {
        for (i, r) in rules.iter().enumerate() {
            let writes = r["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| !matches!(v.as_str(), Some("get" | "list" | "watch")));
            if writes && !needed.contains(&(name, i)) {
                eprintln!("rbac: {name} rule {i} was not needed by these runs: {r}");
            }
        }
    }
    assert!(
        denied.is_empty(),
        "requests the CronJob's RBAC does not allow:\n{}",
        denied
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn request_paths_become_rbac_attributes() {
    let a = attrs("create", "/api/v1/namespaces/apps/pods/web-1/eviction").unwrap();
    assert_eq!(
        (
            a.group.as_str(),
            a.resource.as_str(),
            a.namespace.as_deref(),
            a.name.as_deref()
        ),
        ("", "pods/eviction", Some("apps"), Some("web-1"))
    );
    let a = attrs(
        "patch",
        "/apis/helm.toolkit.fluxcd.io/v2/namespaces/podinfo/helmreleases/podinfo",
    )
    .unwrap();
    assert_eq!(
        (a.group.as_str(), a.resource.as_str()),
        ("helm.toolkit.fluxcd.io", "helmreleases")
    );
    let a = attrs("get", "/api/v1/namespaces/kube-system").unwrap();
    assert_eq!(
        (a.resource.as_str(), a.name.as_deref(), a.namespace),
        ("namespaces", Some("kube-system"), None)
    );
    let a = attrs("list", "/apis/apps/v1/deployments").unwrap();
    assert_eq!((a.resource.as_str(), a.name), ("deployments", None));
    assert!(attrs("get", "/apis/apps/v1").is_none());
    assert!(attrs("get", "/api").is_none());
    let rule = json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                      "resourceNames": ["upkeep-run"], "verbs": ["update"]});
    let mut lease = attrs(
        "update",
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/upkeep-run",
    )
    .unwrap();
    assert!(allows(&rule, &lease));
    lease.name = Some("other".into());
    assert!(!allows(&rule, &lease));
    let create = attrs(
        "create",
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases",
    )
    .unwrap();
    assert!(
        !allows(&rule, &create),
        "resourceNames never allow a create"
    );
}
