//! `validate-storage`, part one: Longhorn's own health, read from its
//! objects. Longhorn's docs want a healthy system before an upgrade and
//! after one: the manager and engine images deployed, nodes and disks
//! ready and schedulable, every volume healthy, and a detached volume
//! (robustness `unknown`, which is normal) judged by its replicas.
//!
//! Part two, the data test that writes and reads back real bytes, is
//! [`crate::datatest`].

use std::time::Instant;

use serde_json::Value;
use upkeep_contract::{CheckStatus, ObjectRef};

use crate::{Checks, Objects, condition, display, int_at, str_at};

const LH: &str = "longhorn.io";

/// What `validate-storage` lists.
pub const KINDS: &[(&str, &str)] = &[
    ("apps", "DaemonSet"),
    ("apps", "Deployment"),
    (LH, "EngineImage"),
    (LH, "Node"),
    (LH, "Volume"),
    (LH, "Replica"),
];

pub fn check(objects: &Objects) -> Checks {
    let mut out = Checks::default();
    if !objects.served(LH, "Volume") {
        out.not_run(
            "storage/longhorn",
            "Longhorn is not installed (longhorn.io Volumes are not served)",
        );
        return out;
    }
    components(objects, &mut out);
    for n in objects.of_kind(LH, "Node") {
        node(n, &mut out);
    }
    for v in objects.of_kind(LH, "Volume") {
        volume(v, objects, &mut out);
    }
    out
}

fn components(objects: &Objects, out: &mut Checks) {
    let mut found = false;
    for d in objects
        .of_kind("apps", "DaemonSet")
        .chain(objects.of_kind("apps", "Deployment"))
    {
        let image_is_longhorn = d
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    str_at(c, "/image").is_some_and(|i| i.contains("longhornio/longhorn-manager"))
                })
            });
        if !image_is_longhorn {
            continue;
        }
        found = true;
        let start = Instant::now();
        let (want, have) = if str_at(d, "/kind") == Some("DaemonSet") {
            (
                int_at(d, "/status/desiredNumberScheduled").unwrap_or(1),
                int_at(d, "/status/numberReady").unwrap_or(0),
            )
        } else {
            (
                int_at(d, "/spec/replicas").unwrap_or(1),
                int_at(d, "/status/readyReplicas").unwrap_or(0),
            )
        };
        let who = format!("{} {}", str_at(d, "/kind").unwrap_or(""), display(d));
        let status = if have >= want {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        };
        out.push(
            "storage/manager-ready",
            status,
            &format!("{who}: {have}/{want} ready"),
            vec![ObjectRef::of(d)],
            start,
        );
    }
    if !found {
        out.not_run(
            "storage/manager-ready",
            "no workload runs the longhorn-manager image",
        );
    }
    for e in objects.of_kind(LH, "EngineImage") {
        let start = Instant::now();
        let state = str_at(e, "/status/state").unwrap_or("unknown");
        let who = format!(
            "EngineImage {} ({})",
            display(e),
            str_at(e, "/spec/image").unwrap_or("?")
        );
        let status = if state == "deployed" {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        };
        out.push(
            "storage/engine-image-deployed",
            status,
            &format!("{who} is {state}"),
            vec![ObjectRef::of(e)],
            start,
        );
    }
}

fn node(n: &Value, out: &mut Checks) {
    let start = Instant::now();
    let who = format!(
        "Longhorn node {}",
        str_at(n, "/metadata/name").unwrap_or("?")
    );
    let mut problems = Vec::new();
    for c in ["Ready", "Schedulable"] {
        match condition(n, c) {
            Some(("True", _, _)) => {}
            Some((_, reason, message)) => problems.push(format!("not {c} ({reason}): {message}")),
            None => problems.push(format!("no {c} condition")),
        }
    }
    if n.pointer("/spec/allowScheduling").and_then(Value::as_bool) == Some(false) {
        problems.push("scheduling disabled".to_string());
    }
    if let Some(disks) = n.pointer("/status/diskStatus").and_then(Value::as_object) {
        for (name, d) in disks {
            for c in ["Ready", "Schedulable"] {
                if let Some((s, reason, message)) = condition_in(d, c)
                    && s != "True"
                {
                    problems.push(format!("disk {name} not {c} ({reason}): {message}"));
                }
            }
        }
    }
    let (status, detail) = if problems.is_empty() {
        (CheckStatus::Pass, format!("{who}: ready and schedulable"))
    } else {
        (CheckStatus::Fail, format!("{who}: {}", problems.join("; ")))
    };
    out.push(
        "storage/node-ready",
        status,
        &detail,
        vec![ObjectRef::of(n)],
        start,
    );
}

/// A condition in an object's own `conditions` (disk status carries them there).
fn condition_in<'a>(v: &'a Value, type_: &str) -> Option<(&'a str, &'a str, &'a str)> {
    let wrapped = v.get("conditions")?;
    wrapped
        .as_array()?
        .iter()
        .find(|c| str_at(c, "/type") == Some(type_))
        .map(|c| {
            (
                str_at(c, "/status").unwrap_or(""),
                str_at(c, "/reason").unwrap_or(""),
                str_at(c, "/message").unwrap_or(""),
            )
        })
}

fn volume(v: &Value, objects: &Objects, out: &mut Checks) {
    let start = Instant::now();
    let name = str_at(v, "/metadata/name").unwrap_or("?");
    let pvc = match (
        str_at(v, "/status/kubernetesStatus/namespace"),
        str_at(v, "/status/kubernetesStatus/pvcName"),
    ) {
        (Some(ns), Some(p)) if !p.is_empty() => format!(" (PVC {ns}/{p})"),
        _ => String::new(),
    };
    let who = format!("volume {name}{pvc}");
    let robustness = str_at(v, "/status/robustness").unwrap_or("unknown");
    let state = str_at(v, "/status/state").unwrap_or("unknown");
    let wanted = int_at(v, "/spec/numberOfReplicas").unwrap_or(0);
    let replicas: Vec<&Value> = objects
        .of_kind(LH, "Replica")
        .filter(|r| str_at(r, "/spec/volumeName") == Some(name))
        .collect();
    let failed = replicas
        .iter()
        .filter(|r| str_at(r, "/spec/failedAt").is_some_and(|f| !f.is_empty()))
        .count();
    let (status, detail) = match (robustness, state) {
        ("healthy", _) => (CheckStatus::Pass, format!("{who} is healthy ({state})")),
        ("degraded", _) => (
            CheckStatus::Fail,
            format!(
                "{who} is degraded: fewer healthy replicas than its {wanted}; it is rebuilding or a node is missing"
            ),
        ),
        ("faulted", _) => (
            CheckStatus::Fail,
            format!("{who} is faulted: no healthy replica; its data is unavailable"),
        ),
        (_, "detached") if replicas.is_empty() => (
            CheckStatus::Warn,
            format!("{who} is detached and has no replica objects to judge it by"),
        ),
        (_, "detached") if failed > 0 => (
            CheckStatus::Fail,
            format!(
                "{who} is detached with {failed} of {} replicas failed",
                replicas.len()
            ),
        ),
        (_, "detached") => (
            CheckStatus::Pass,
            format!(
                "{who} is detached; its {} replicas are sound",
                replicas.len()
            ),
        ),
        (r, s) => (
            CheckStatus::Warn,
            format!("{who} is {s} with robustness {r}"),
        ),
    };
    out.push(
        "storage/volume-healthy",
        status,
        &detail,
        vec![ObjectRef::of(v)],
        start,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vol(name: &str, state: &str, robustness: &str) -> Value {
        json!({"apiVersion": "longhorn.io/v1beta2", "kind": "Volume",
            "metadata": {"name": name, "namespace": "longhorn-system"},
            "spec": {"numberOfReplicas": 3},
            "status": {"state": state, "robustness": robustness}})
    }

    fn replica(volume: &str, failed_at: &str) -> Value {
        json!({"apiVersion": "longhorn.io/v1beta2", "kind": "Replica",
            "metadata": {"name": format!("{volume}-r"), "namespace": "longhorn-system"},
            "spec": {"volumeName": volume, "failedAt": failed_at}})
    }

    #[test]
    fn volumes_by_robustness_and_detached_ones_by_their_replicas() {
        let objects = Objects::from_values(vec![
            vol("ok", "attached", "healthy"),
            vol("deg", "attached", "degraded"),
            vol("dead", "attached", "faulted"),
            vol("idle", "detached", "unknown"),
            replica("idle", ""),
            vol("idle-bad", "detached", "unknown"),
            replica("idle-bad", "2026-11-27T10:00:00Z"),
        ]);
        let got: Vec<(String, CheckStatus)> = check(&objects)
            .checks
            .into_iter()
            .filter(|c| c.name == "storage/volume-healthy")
            .map(|c| (c.objects[0].name.clone(), c.status))
            .collect();
        assert_eq!(
            got,
            [
                ("ok".to_string(), CheckStatus::Pass),
                ("deg".to_string(), CheckStatus::Fail),
                ("dead".to_string(), CheckStatus::Fail),
                ("idle".to_string(), CheckStatus::Pass),
                ("idle-bad".to_string(), CheckStatus::Fail),
            ]
        );
    }

    #[test]
    fn nodes_and_disks_must_be_ready_and_schedulable() {
        let node = json!({"apiVersion": "longhorn.io/v1beta2", "kind": "Node",
            "metadata": {"name": "k8s-3", "namespace": "longhorn-system"},
            "spec": {"allowScheduling": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Schedulable", "status": "True"}],
                "diskStatus": {"ssd-2": {"conditions": [{"type": "Ready", "status": "True"},
                    {"type": "Schedulable", "status": "False", "reason": "DiskPressure", "message": "disk is 92% full"}]}}}});
        let c = check(&Objects::from_values(vec![
            vol("ok", "attached", "healthy"),
            node,
        ]));
        let n = c
            .checks
            .iter()
            .find(|c| c.name == "storage/node-ready")
            .unwrap();
        assert_eq!(n.status, CheckStatus::Fail);
        assert!(
            n.detail
                .as_str()
                .contains("disk ssd-2 not Schedulable (DiskPressure): disk is 92% full")
        );
        let mut absent = Objects::default();
        absent.not_served.push("Volume.longhorn.io".into());
        let none = check(&absent);
        assert!(none.checks.is_empty() && none.not_run.len() == 1);
    }
}
