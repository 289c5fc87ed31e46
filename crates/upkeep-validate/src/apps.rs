//! `validate-apps`: the workloads are at their desired ready replicas, no
//! pod is stuck waiting to start or has restarted since the baseline, no
//! Job has failed.

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

/// Runs the checks. `since` is when the baseline report was made: a
/// container that restarted after it fails `apps/pod-no-new-restarts`.
pub fn check(objects: &Objects, since: Option<jiff::Timestamp>) -> Checks {
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
    match since {
        Some(since) => {
            for p in objects.of_kind("", "Pod") {
                restarts_since(p, since, &mut out);
            }
        }
        None => out.not_run(
            RESTARTS,
            "needs --baseline: without an earlier report, old restarts cannot be told from new ones",
        ),
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

const RESTARTS: &str = "apps/pod-no-new-restarts";

/// A restart count alone says nothing about when: the time the previous
/// instance of a container ended is when it last restarted.
fn restarts_since(p: &Value, since: jiff::Timestamp, out: &mut Checks) {
    let start = Instant::now();
    let who = format!("Pod {}", display(p));
    let mut restarted = Vec::new();
    for c in ["/status/initContainerStatuses", "/status/containerStatuses"]
        .iter()
        .filter_map(|ptr| p.pointer(ptr).and_then(Value::as_array))
        .flatten()
    {
        let count = int_at(c, "/restartCount").unwrap_or(0);
        let last = str_at(c, "/lastState/terminated/finishedAt")
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        let Some(last) = last.filter(|t| count > 0 && *t > since) else {
            continue;
        };
        let why = match (
            str_at(c, "/lastState/terminated/reason"),
            int_at(c, "/lastState/terminated/exitCode"),
        ) {
            (Some(r), Some(code)) => format!(", last exit {r} (code {code})"),
            (Some(r), None) => format!(", last exit {r}"),
            (None, Some(code)) => format!(", last exit code {code}"),
            (None, None) => String::new(),
        };
        restarted.push(format!(
            "container {} restarted at {last} ({count} restarts in all{why})",
            str_at(c, "/name").unwrap_or("?"),
        ));
    }
    let (status, detail) = if restarted.is_empty() {
        (
            CheckStatus::Pass,
            format!("{who}: no restart since the baseline at {since}"),
        )
    } else {
        (
            CheckStatus::Fail,
            format!(
                "{who}: {} since the baseline at {since}",
                restarted.join("; ")
            ),
        )
    };
    out.push(RESTARTS, status, &detail, vec![ObjectRef::of(p)], start);
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
        let got: Vec<(String, CheckStatus, String)> = check(&objects, None)
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

    #[test]
    fn only_restarts_after_the_baseline_fail() {
        let pod = |name: &str, count: i64, finished: &str| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "apps"},
                "status": {"containerStatuses": [{"name": "app", "restartCount": count,
                    "state": {"running": {"startedAt": finished}},
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": finished}}}]}})
        };
        let objects = Objects::from_values(vec![
            pod("old", 4, "2026-11-27T08:00:00Z"),
            pod("new", 5, "2026-11-28T10:05:00Z"),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "never", "namespace": "apps"},
                "status": {"containerStatuses": [{"name": "app", "restartCount": 0, "state": {"running": {}}}]}}),
        ]);
        let since: jiff::Timestamp = "2026-11-28T10:00:00Z".parse().unwrap();
        let out = check(&objects, Some(since));
        let restarts: Vec<(&str, CheckStatus, String)> = out
            .checks
            .iter()
            .filter(|c| c.name == RESTARTS)
            .map(|c| (c.objects[0].name.as_str(), c.status, c.detail.to_string()))
            .collect();
        assert_eq!(restarts.len(), 3, "{restarts:?}");
        assert_eq!(restarts[0].1, CheckStatus::Pass, "{restarts:?}");
        assert_eq!(restarts[1].1, CheckStatus::Fail);
        assert!(
            restarts[1].2.contains("restarted at 2026-11-28T10:05:00Z")
                && restarts[1].2.contains("OOMKilled (code 137)"),
            "{}",
            restarts[1].2
        );
        assert_eq!(restarts[2].1, CheckStatus::Pass);
        // Without a baseline the check says why it did not run.
        let none = check(&objects, None);
        assert!(none.checks.iter().all(|c| c.name != RESTARTS));
        assert!(none.not_run.iter().any(|c| c.name == RESTARTS));
    }
}
