//! `validate-apps`: the workloads are at their desired ready replicas, no
//! pod is stuck waiting to start, no Job has failed.

use std::time::Instant;

use serde_json::Value;
use upkeep_contract::{CheckStatus, ObjectRef};

use crate::{Checks, Objects, condition, display, int_at, str_at};

/// What `validate-apps` lists.
pub const KINDS: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("", "Pod"),
    ("batch", "Job"),
];

/// Waiting reasons that mean a container will not start by itself.
const STUCK: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
];

pub fn check(objects: &Objects) -> Checks {
    let mut out = Checks::default();
    for (kind, want, have) in [
        ("Deployment", "/spec/replicas", "/status/readyReplicas"),
        ("StatefulSet", "/spec/replicas", "/status/readyReplicas"),
        (
            "DaemonSet",
            "/status/desiredNumberScheduled",
            "/status/numberReady",
        ),
    ] {
        for w in objects.of_kind("apps", kind) {
            let start = Instant::now();
            let want = int_at(w, want).unwrap_or(1);
            let have = int_at(w, have).unwrap_or(0);
            let who = format!("{kind} {}", display(w));
            let (status, detail) = if have >= want {
                (CheckStatus::Pass, format!("{who}: {have}/{want} ready"))
            } else {
                (CheckStatus::Fail, format!("{who}: {have}/{want} ready"))
            };
            out.push(
                &format!("apps/{}-ready", kind.to_ascii_lowercase()),
                status,
                &detail,
                vec![ObjectRef::of(w)],
                start,
            );
        }
    }
    for p in objects.of_kind("", "Pod") {
        pod(p, &mut out);
    }
    for j in objects.of_kind("batch", "Job") {
        let start = Instant::now();
        let who = format!("Job {}", display(j));
        let (status, detail) = match condition(j, "Failed") {
            Some(("True", reason, message)) => (
                CheckStatus::Fail,
                format!("{who} failed ({reason}): {message}"),
            ),
            _ => (CheckStatus::Pass, format!("{who} has not failed")),
        };
        out.push(
            "apps/job-not-failed",
            status,
            &detail,
            vec![ObjectRef::of(j)],
            start,
        );
    }
    out
}

fn pod(p: &Value, out: &mut Checks) {
    let start = Instant::now();
    let who = format!("Pod {}", display(p));
    let statuses = ["/status/initContainerStatuses", "/status/containerStatuses"]
        .iter()
        .filter_map(|ptr| p.pointer(ptr).and_then(Value::as_array))
        .flatten();
    let mut stuck = Vec::new();
    let mut restarts = 0;
    for c in statuses {
        restarts += int_at(c, "/restartCount").unwrap_or(0);
        if let Some(reason) = str_at(c, "/state/waiting/reason").filter(|r| STUCK.contains(r)) {
            let message = str_at(c, "/state/waiting/message").unwrap_or("");
            stuck.push(format!(
                "container {} is {reason}{}",
                str_at(c, "/name").unwrap_or("?"),
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            ));
        }
    }
    let (status, detail) = if stuck.is_empty() {
        (
            CheckStatus::Pass,
            format!("{who}: no container stuck ({restarts} restarts)"),
        )
    } else {
        (CheckStatus::Fail, format!("{who}: {}", stuck.join("; ")))
    };
    out.push(
        "apps/pod-not-stuck",
        status,
        &detail,
        vec![ObjectRef::of(p)],
        start,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_workloads_stuck_pods_and_failed_jobs_fail() {
        let objects = Objects::from_values(vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "apps"},
                "spec": {"replicas": 3}, "status": {"readyReplicas": 2}}),
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "apps"},
                "status": {"desiredNumberScheduled": 3, "numberReady": 3}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "apps"},
                "status": {"containerStatuses": [{"name": "web", "restartCount": 7,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}}}]}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ok", "namespace": "apps"},
                "status": {"containerStatuses": [{"name": "x", "state": {"running": {}}}]}}),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "apps"},
                "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}}),
        ]);
        let got: Vec<(String, CheckStatus, String)> = check(&objects)
            .checks
            .into_iter()
            .map(|c| (c.name, c.status, c.detail.to_string()))
            .collect();
        let status = |name: &str, needle: &str| {
            got.iter()
                .find(|c| c.0 == name && c.2.contains(needle))
                .map(|c| c.1)
                .unwrap_or_else(|| panic!("{name} {needle} in {got:?}"))
        };
        assert_eq!(status("apps/deployment-ready", "2/3"), CheckStatus::Fail);
        assert_eq!(status("apps/daemonset-ready", "3/3"), CheckStatus::Pass);
        assert_eq!(
            status("apps/pod-not-stuck", "CrashLoopBackOff: back-off"),
            CheckStatus::Fail
        );
        assert_eq!(status("apps/pod-not-stuck", "apps/ok"), CheckStatus::Pass);
        assert_eq!(
            status("apps/job-not-failed", "BackoffLimitExceeded"),
            CheckStatus::Fail
        );
    }
}
