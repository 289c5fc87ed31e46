//! The checks made from inside the cluster, with short-lived objects:
//!
//! - a Job whose pod asks the cluster DNS (busybox `nslookup`) for
//!   `kubernetes.default` and each `--dns-name`;
//! - a DaemonSet serving a tiny page on every node (the goldpinger idea),
//!   then one Job per node that fetches the page from the pods on every
//!   other node and prints `ok IP` or `fail IP`.
//!
//! Everything carries the label [`TEST_LABEL`] and is deleted afterwards,
//! also when a step fails, the deadline passes or the run is interrupted;
//! `net/probe-cleanup` checks that nothing is left.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use serde_json::{Value, json};
use upkeep_contract::CheckStatus;
use upkeep_kube::{ApplyOptions, Cluster, ClusterRead, ListOptions, Resource, ResourceRef, Until};

use super::dns::{Lookup, parse_nslookup};
use super::{dns_ref, node_ref};
use crate::{Checks, ValidateError};

pub(super) const DNS_CLUSTER: &str = "net/dns-cluster";
pub(super) const CONNECTIVITY: &str = "net/node-connectivity";
const CLEANUP: &str = "net/probe-cleanup";
const FIELD_MANAGER: &str = "upkeep-validate";
/// The label on everything the probes create, to find it again.
pub const TEST_LABEL: &str = "upkeep.dev/net-test";
const ROLE_LABEL: &str = "upkeep.dev/net-role";
/// The port the DaemonSet's pods serve their page on.
const PORT: u16 = 8080;
/// Marks where the output of one name's nslookup starts and ends.
const MARK: &str = "@@upkeep";

#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub namespace: String,
    pub image: String,
    /// Names the DNS pod looks up; the first is the API server's Service.
    pub names: Vec<String>,
    /// The probes' work must end by then; the clean-up gets `cleanup` after it.
    pub until: Instant,
    pub cleanup: Duration,
}

struct Kinds {
    ds: Resource,
    job: Resource,
    pod: Resource,
}

/// Runs both probes and the clean-up, adding their checks to `out`.
pub async fn run(
    cluster: &Cluster,
    opts: &ProbeOptions,
    out: &mut Checks,
) -> Result<(), ValidateError> {
    let kinds = Kinds {
        ds: cluster
            .resource(&ResourceRef::preferred("apps", "DaemonSet"))
            .await?,
        job: cluster
            .resource(&ResourceRef::preferred("batch", "Job"))
            .await?,
        pod: cluster.resource(&ResourceRef::preferred("", "Pod")).await?,
    };
    let id = format!(
        "upkeep-net-{}-{:04x}",
        jiff::Timestamp::now().strftime("%Y%m%d%H%M%S"),
        rand::random::<u16>()
    );
    let start = Instant::now();
    let work_until = opts.until.checked_sub(opts.cleanup).unwrap_or(start);
    let stopped = {
        let work = async {
            dns(cluster, &kinds, &id, opts, work_until, out).await;
            connectivity(cluster, &kinds, &id, opts, work_until, out).await;
        };
        tokio::select! {
            _ = tokio::time::timeout_at(work_until.into(), work) => None,
            _ = tokio::signal::ctrl_c() => Some("interrupted"),
        }
    };
    // A phase cut short by the deadline or Ctrl-C still gets its verdict.
    let why = stopped.unwrap_or("did not finish before --timeout");
    for name in [DNS_CLUSTER, CONNECTIVITY] {
        if !out.checks.iter().any(|c| c.name == name) {
            out.push(
                name,
                CheckStatus::Fail,
                &format!("the in-cluster probe {why} (objects {id})"),
                Vec::new(),
                start,
            );
        }
    }
    let start = Instant::now();
    match cleanup(cluster, &kinds, &id, &opts.namespace, opts.cleanup).await {
        Ok(()) => out.push(
            CLEANUP,
            CheckStatus::Pass,
            &format!(
                "everything {id} created in namespace {} is gone",
                opts.namespace
            ),
            Vec::new(),
            start,
        ),
        Err(detail) => out.push(CLEANUP, CheckStatus::Fail, &detail, Vec::new(), start),
    }
    Ok(())
}

/// Small, unprivileged, quick to stop: what a restricted namespace admits.
fn container(image: &str, script: &str, args: &[String]) -> Value {
    let mut command = vec![
        "sh".to_string(),
        "-c".to_string(),
        script.to_string(),
        "sh".to_string(),
    ];
    command.extend(args.iter().cloned());
    json!({
        "name": "probe", "image": image, "command": command,
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
        "securityContext": {"runAsNonRoot": true, "runAsUser": 65534, "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    })
}

fn labels(id: &str, role: &str) -> Value {
    json!({TEST_LABEL: id, ROLE_LABEL: role})
}

/// A Job of one pod that runs `script` with `args` (pinned to `node` when given).
fn job(name: &str, ns: &str, id: &str, role: &str, c: Value, node: Option<&str>) -> Value {
    let mut spec = json!({
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1,
        "tolerations": [{"operator": "Exists"}],
        "containers": [c],
    });
    if let Some(n) = node {
        // Straight onto the node: the probe is about that node, not where the scheduler likes.
        spec["nodeName"] = json!(n);
    }
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": ns, "labels": labels(id, role)},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": labels(id, role)}, "spec": spec}}
    })
}

/// Creates the Job, waits for it to end, returns its log; `Err` says why there is none.
async fn run_job(
    cluster: &Cluster,
    k: &Kinds,
    obj: &Value,
    until: Instant,
) -> Result<(bool, String), String> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    cluster
        .create(&k.job, obj, &ApplyOptions::new(FIELD_MANAGER))
        .await
        .map_err(|e| format!("creating Job {ns}/{name}: {e}"))?;
    wait_job(cluster, k, ns, name, until).await
}

async fn wait_job(
    cluster: &Cluster,
    k: &Kinds,
    ns: &str,
    name: &str,
    until: Instant,
) -> Result<(bool, String), String> {
    let done = cluster
        .wait_for(
            &k.job,
            Some(ns),
            name,
            &Until::custom("Complete or Failed", |o| {
                upkeep_kube::condition(o, "Complete").is_some_and(|c| c.status == "True")
                    || upkeep_kube::condition(o, "Failed").is_some_and(|c| c.status == "True")
            }),
            until.saturating_duration_since(Instant::now()),
        )
        .await
        .map_err(|e| format!("Job {ns}/{name}: {e}"))?;
    let failed = upkeep_kube::condition(&done, "Failed").is_some_and(|c| c.status == "True");
    let logs = cluster
        .job_logs(ns, name)
        .await
        .map_err(|e| format!("reading the log of Job {ns}/{name}: {e}"))?;
    Ok((failed, logs))
}

const DNS_SCRIPT: &str =
    r#"for n in "$@"; do echo "@@upkeep $n"; nslookup "$n" 2>&1; echo "@@upkeep-end $n"; done"#;

async fn dns(
    cluster: &Cluster,
    k: &Kinds,
    id: &str,
    opts: &ProbeOptions,
    until: Instant,
    out: &mut Checks,
) {
    let start = Instant::now();
    let name = format!("{id}-dns");
    let obj = job(
        &name,
        &opts.namespace,
        id,
        "dns",
        container(&opts.image, DNS_SCRIPT, &opts.names),
        None,
    );
    let logs = match run_job(cluster, k, &obj, until).await {
        Ok((_, logs)) => logs,
        Err(e) => {
            out.push(DNS_CLUSTER, CheckStatus::Fail, &e, Vec::new(), start);
            return;
        }
    };
    let sections = split_sections(&logs);
    for n in &opts.names {
        let (status, detail) = match sections.get(n.as_str()) {
            None => (
                CheckStatus::Fail,
                format!(
                    "{n}: the DNS probe pod printed nothing about it (Job {}/{name}; log: {})",
                    opts.namespace,
                    tail(&logs)
                ),
            ),
            Some(text) => match parse_nslookup(text) {
                Lookup::Resolved(ips) => (
                    CheckStatus::Pass,
                    format!(
                        "{n} resolves to {} from a pod, through the cluster DNS",
                        ips.join(", ")
                    ),
                ),
                Lookup::Failed(why) => (
                    CheckStatus::Fail,
                    format!("{n} does not resolve from a pod: {why}"),
                ),
            },
        };
        out.push(DNS_CLUSTER, status, &detail, vec![dns_ref(n)], start);
    }
}

/// The log cut into one text per name, between the script's markers.
fn split_sections(logs: &str) -> BTreeMap<&str, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(&str, String)> = None;
    for line in logs.lines() {
        if let Some(name) = line.strip_prefix(&format!("{MARK} ")) {
            current = Some((name.trim(), String::new()));
        } else if line.starts_with(&format!("{MARK}-end ")) {
            if let Some((n, text)) = current.take() {
                out.insert(n, text);
            }
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    // A section cut off by the end of the log (the pod was killed) still says what it saw.
    if let Some((n, text)) = current {
        out.insert(n, text);
    }
    out
}

fn tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().rev().take(3).collect();
    if lines.is_empty() {
        "empty".to_string()
    } else {
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}

const SERVE_SCRIPT: &str = "mkdir -p /tmp/www && echo upkeep-net-probe > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www";
const FETCH_SCRIPT: &str = r#"for ip in "$@"; do case "$ip" in *:*) u="[$ip]";; *) u="$ip";; esac; if wget -q -T 3 -O /dev/null "http://$u:8080/"; then echo "ok $ip"; else echo "fail $ip"; fi; done"#;

async fn connectivity(
    cluster: &Cluster,
    k: &Kinds,
    id: &str,
    opts: &ProbeOptions,
    until: Instant,
    out: &mut Checks,
) {
    let start = Instant::now();
    let fail = |out: &mut Checks, detail: String| {
        out.push(CONNECTIVITY, CheckStatus::Fail, &detail, Vec::new(), start)
    };
    let ns = opts.namespace.as_str();
    let name = format!("{id}-serve");
    let mut c = container(&opts.image, SERVE_SCRIPT, &[]);
    c["ports"] = json!([{"containerPort": PORT, "name": "http"}]);
    c["readinessProbe"] = json!({"tcpSocket": {"port": PORT}, "periodSeconds": 2});
    let ds = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": ns, "labels": labels(id, "serve")},
        "spec": {
            "selector": {"matchLabels": labels(id, "serve")},
            "template": {"metadata": {"labels": labels(id, "serve")}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "tolerations": [{"operator": "Exists"}],
                "containers": [c]}}}
    });
    if let Err(e) = cluster
        .create(&k.ds, &ds, &ApplyOptions::new(FIELD_MANAGER))
        .await
    {
        return fail(out, format!("creating DaemonSet {ns}/{name}: {e}"));
    }
    let ready = Until::custom("every scheduled pod ready", |o| {
        let d = o
            .data
            .pointer("/status/desiredNumberScheduled")
            .and_then(Value::as_i64);
        let r = o
            .data
            .pointer("/status/numberReady")
            .and_then(Value::as_i64);
        matches!((d, r), (Some(d), Some(r)) if d > 0 && r >= d)
    });
    if let Err(e) = cluster
        .wait_for(
            &k.ds,
            Some(ns),
            &name,
            &ready,
            until.saturating_duration_since(Instant::now()),
        )
        .await
    {
        return fail(out, format!("DaemonSet {ns}/{name}: {e}"));
    }
    let selector = format!("{TEST_LABEL}={id},{ROLE_LABEL}=serve");
    let pods: Vec<_> = match cluster
        .list(&k.pod, &ListOptions::in_namespace(ns).labels(&selector))
        .try_collect()
        .await
    {
        Ok(p) => p,
        Err(e) => return fail(out, format!("listing the probe pods: {e}")),
    };
    // node -> pod IP, one per node.
    let mut nodes: BTreeMap<String, String> = BTreeMap::new();
    for p in &pods {
        let v = serde_json::to_value(p).unwrap_or_default();
        if let (Some(node), Some(ip)) = (
            v.pointer("/spec/nodeName").and_then(Value::as_str),
            v.pointer("/status/podIP").and_then(Value::as_str),
        ) {
            nodes.insert(node.to_string(), ip.to_string());
        }
    }
    if nodes.len() < 2 {
        let detail = match nodes.keys().next() {
            Some(n) => format!("a single node ({n}): no other node to reach"),
            None => "no probe pod got an IP".to_string(),
        };
        let status = if nodes.is_empty() {
            CheckStatus::Fail
        } else {
            CheckStatus::Pass
        };
        let refs = nodes.keys().map(|n| node_ref(n)).collect();
        return out.push(CONNECTIVITY, status, &detail, refs, start);
    }
    // One fetching Job per node, all created first so they run side by side.
    let mut jobs = Vec::new();
    for (i, (node, _)) in nodes.iter().enumerate() {
        let peers: Vec<String> = nodes
            .iter()
            .filter(|(n, _)| *n != node)
            .map(|(_, ip)| ip.clone())
            .collect();
        let jname = format!("{id}-from-{}", name_part(node, i));
        let obj = job(
            &jname,
            ns,
            id,
            "fetch",
            container(&opts.image, FETCH_SCRIPT, &peers),
            Some(node),
        );
        let created = cluster
            .create(&k.job, &obj, &ApplyOptions::new(FIELD_MANAGER))
            .await
            .map(|_| ())
            .map_err(|e| format!("creating Job {ns}/{jname}: {e}"));
        jobs.push((node.clone(), jname, peers, created));
    }
    let by_ip: BTreeMap<&str, &str> = nodes
        .iter()
        .map(|(n, ip)| (ip.as_str(), n.as_str()))
        .collect();
    for (node, jname, peers, created) in jobs {
        let start = Instant::now();
        let result = match created {
            Ok(()) => wait_job(cluster, k, ns, &jname, until).await,
            Err(e) => Err(e),
        };
        let refs = vec![node_ref(&node)];
        let (failed, logs) = match result {
            Ok(r) => r,
            Err(e) => {
                out.push(CONNECTIVITY, CheckStatus::Fail, &e, refs, start);
                continue;
            }
        };
        let seen = parse_fetch(&logs);
        let mut unreachable = Vec::new();
        for ip in &peers {
            let to = by_ip.get(ip.as_str()).copied().unwrap_or("?");
            match seen.get(ip.as_str()) {
                Some(true) => {}
                Some(false) => unreachable.push(format!("{node} -> {to} ({ip})")),
                None => unreachable.push(format!("{node} -> {to} ({ip}): no result")),
            }
        }
        if unreachable.is_empty() && !failed {
            out.push(
                CONNECTIVITY,
                CheckStatus::Pass,
                &format!(
                    "a pod on {node} reaches the pods on {} other node(s)",
                    peers.len()
                ),
                refs,
                start,
            );
        } else {
            let mut detail = format!("cannot reach: {}", unreachable.join(", "));
            if unreachable.is_empty() {
                detail = format!("Job {ns}/{jname} failed: {}", tail(&logs));
            }
            out.push(CONNECTIVITY, CheckStatus::Fail, &detail, refs, start);
        }
    }
}

/// A node name as part of an object name (lowercase, `-`, short enough for a label value).
fn name_part(node: &str, index: usize) -> String {
    let s: String = node
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-');
    if s.is_empty() || s.len() > 24 {
        format!("node{index}")
    } else {
        s.to_string()
    }
}

/// `ok IP` / `fail IP` lines: IP -> reached.
fn parse_fetch(logs: &str) -> BTreeMap<&str, bool> {
    let mut out = BTreeMap::new();
    for line in logs.lines() {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            // A failure is not overwritten by a success line for the same IP.
            (Some("ok"), Some(ip), None) => {
                out.entry(ip).or_insert(true);
            }
            (Some("fail"), Some(ip), None) => {
                out.insert(ip, false);
            }
            _ => {}
        }
    }
    out
}

/// Deletes everything labelled with `id` and waits, at most `within`, until it is gone.
async fn cleanup(
    cluster: &Cluster,
    k: &Kinds,
    id: &str,
    ns: &str,
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let selector = ListOptions::in_namespace(ns).labels(&format!("{TEST_LABEL}={id}"));
    let mut problems = Vec::new();
    loop {
        let mut left = Vec::new();
        problems.clear();
        // Owners first, so no controller makes new pods while the old ones go.
        for res in [&k.ds, &k.job, &k.pod] {
            let listed: Vec<_> = match cluster.list(res, &selector).try_collect().await {
                Ok(l) => l,
                Err(e) => {
                    problems.push(format!("listing {}: {e}", res.api.kind));
                    continue;
                }
            };
            for o in listed {
                let Some(name) = o.metadata.name.as_deref() else {
                    continue;
                };
                left.push(format!("{} {ns}/{name}", res.api.kind));
                if o.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                if let Err(e) = cluster.delete(res, Some(ns), name).await {
                    problems.push(e.to_string());
                }
            }
        }
        if left.is_empty() && problems.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            problems.extend(left);
            return Err(format!(
                "left behind after {within:?}: {}; delete with: kubectl -n {ns} delete daemonsets,jobs,pods -l {TEST_LABEL}={id}",
                problems.join("; ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dns_log_is_cut_per_name() {
        let logs = "@@upkeep a.lan\nServer:\t\t10.43.0.10\nAddress:\t10.43.0.10:53\n\nName:\ta.lan\nAddress: 10.0.0.1\n\n@@upkeep-end a.lan\n@@upkeep b.lan\n** server can't find b.lan: NXDOMAIN\n@@upkeep-end b.lan\n@@upkeep c.lan\nServer: x\n";
        let s = split_sections(logs);
        assert_eq!(s.len(), 3);
        assert_eq!(
            parse_nslookup(&s["a.lan"]),
            Lookup::Resolved(vec!["10.0.0.1".into()])
        );
        assert!(matches!(parse_nslookup(&s["b.lan"]), Lookup::Failed(m) if m.contains("NXDOMAIN")));
        assert!(matches!(parse_nslookup(&s["c.lan"]), Lookup::Failed(_)));
    }

    #[test]
    fn fetch_lines_are_read_strictly() {
        let got = parse_fetch(
            "ok 10.42.1.5\nfail 10.42.2.5\nok 10.42.2.5\nwget: bad address\nok\nok a b\n",
        );
        assert_eq!(got.len(), 2);
        assert!(got["10.42.1.5"]);
        assert!(!got["10.42.2.5"]);
    }

    #[test]
    fn node_names_become_name_parts() {
        assert_eq!(name_part("k3s-s1", 0), "k3s-s1");
        assert_eq!(name_part("Node_1.lan", 1), "node-1-lan");
        assert_eq!(name_part(&"x".repeat(40), 2), "node2");
    }
}
