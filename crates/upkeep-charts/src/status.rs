//! What a HelmRelease's `status` says: the chart version installed and
//! whether helm-controller is failing or stuck on it.

use serde_json::Value;
use upkeep_contract::{Finding, Location, SafeText, Severity, Timestamp};

use crate::cluster::str_at;

/// The installed chart version as written in the status, and the field it
/// was read from.
pub(crate) fn installed(raw: &Value) -> Option<(String, &'static str)> {
    // v2: history is newest first; [0] is what helm-controller last released.
    if let Some(v) = raw
        .pointer("/status/history/0/chartVersion")
        .and_then(Value::as_str)
    {
        return Some((v.to_string(), "status.history[0].chartVersion"));
    }
    // v2beta1/v2beta2: the revision last applied successfully, else the one attempted.
    for (key, field) in [
        ("lastAppliedRevision", "status.lastAppliedRevision"),
        ("lastAttemptedRevision", "status.lastAttemptedRevision"),
    ] {
        if let Some(v) = str_at(raw, &["status", key]).filter(|v| !v.is_empty()) {
            return Some((v.to_string(), field));
        }
    }
    None
}

/// The version part of a revision: an OCI chart's revision may carry its
/// digest (`6.5.0@sha256:...`).
pub(crate) fn revision_version(revision: &str) -> &str {
    revision.split('@').next().unwrap_or(revision)
}

fn condition<'a>(raw: &'a Value, kind: &str) -> Option<&'a Value> {
    raw.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| str_at(c, &["type"]) == Some(kind))
}

fn status_of(c: &Value) -> Option<&str> {
    str_at(c, &["status"])
}

/// `reason: message` of a condition, for findings.
fn explain(c: &Value) -> String {
    let reason = str_at(c, &["reason"]).unwrap_or("no reason given");
    match str_at(c, &["message"]).filter(|m| !m.is_empty()) {
        Some(m) => format!("{reason}: {m}"),
        None => reason.to_string(),
    }
}

fn finding(severity: Severity, code: &str, message: String, at: &Location) -> Finding {
    Finding {
        severity,
        code: code.to_string(),
        message: SafeText::new(&message),
        locations: vec![at.clone()],
    }
}

/// Findings about the release's state: `release-stuck` (Stalled, or
/// reconciling for longer than `stuck_after`), `release-failed` (Ready
/// False, a failed last release, a remediation), `release-suspended`.
pub(crate) fn health(
    raw: &Value,
    now: Timestamp,
    stuck_after: std::time::Duration,
    at: &Location,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if raw.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        out.push(finding(
            Severity::Warning,
            "release-suspended",
            "the HelmRelease is suspended: Flux applies no change to it, updates included"
                .to_string(),
            at,
        ));
    }
    let stalled = condition(raw, "Stalled").filter(|c| status_of(c) == Some("True"));
    if let Some(c) = stalled {
        // helm-controller stops retrying: only a change (or a manual reset) moves it.
        out.push(finding(
            Severity::Blocking,
            "release-stuck",
            format!(
                "Stalled: helm-controller gave up retrying ({}); fix the release before updating it",
                explain(c)
            ),
            at,
        ));
    } else if let Some(c) = condition(raw, "Reconciling").filter(|c| status_of(c) == Some("True")) {
        let since = str_at(c, &["lastTransitionTime"]).and_then(|t| Timestamp::parse(t).ok());
        if let Some(since) = since {
            let elapsed = now.0.duration_since(since.0);
            let limit =
                jiff::SignedDuration::try_from(stuck_after).unwrap_or(jiff::SignedDuration::MAX);
            if elapsed > limit {
                out.push(finding(
                    Severity::Warning,
                    "release-stuck",
                    format!(
                        "reconciling since {since} ({} minutes, more than {}): {}",
                        elapsed.as_secs() / 60,
                        humanize(stuck_after),
                        explain(c)
                    ),
                    at,
                ));
            }
        }
    }
    let mut failed = Vec::new();
    if let Some(c) = condition(raw, "Ready").filter(|c| status_of(c) == Some("False")) {
        failed.push(format!("Ready is False ({})", explain(c)));
    }
    let remediation_failed = match condition(raw, "Remediated") {
        Some(c) if status_of(c) == Some("False") => {
            failed.push(format!("remediation failed ({})", explain(c)));
            true
        }
        Some(c) if status_of(c) == Some("True") => {
            failed.push(format!(
                "the last install or upgrade failed and was remediated ({})",
                explain(c)
            ));
            false
        }
        _ => false,
    };
    if let Some(s) = raw
        .pointer("/status/history/0/status")
        .and_then(Value::as_str)
        .filter(|s| *s == "failed")
    {
        failed.push(format!("the last Helm release is {s}"));
    }
    if !failed.is_empty() {
        out.push(finding(
            // A failed rollback leaves the release in an unknown state: nothing should touch it.
            if remediation_failed {
                Severity::Blocking
            } else {
                Severity::Warning
            },
            "release-failed",
            failed.join("; "),
            at,
        ));
    }
    out
}

fn humanize(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{} minutes", s / 60)
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;
    use upkeep_contract::ObjectRef;

    fn loc() -> Location {
        Location::Cluster {
            object: ObjectRef {
                api_version: "helm.toolkit.fluxcd.io/v2".into(),
                kind: "HelmRelease".into(),
                namespace: Some("a".into()),
                name: "b".into(),
            },
            field: None,
        }
    }

    fn codes(f: &[Finding]) -> Vec<(&str, Severity)> {
        f.iter().map(|f| (f.code.as_str(), f.severity)).collect()
    }

    #[test]
    fn installed_comes_from_history_then_the_old_revisions() {
        let v2 = json!({"status": {"history": [{"chartVersion": "1.2.3"}, {"chartVersion": "1.2.0"}],
                                   "lastAttemptedRevision": "1.2.4"}});
        assert_eq!(
            installed(&v2),
            Some(("1.2.3".to_string(), "status.history[0].chartVersion"))
        );
        let old =
            json!({"status": {"lastAppliedRevision": "0.9.0", "lastAttemptedRevision": "1.0.0"}});
        assert_eq!(
            installed(&old),
            Some(("0.9.0".to_string(), "status.lastAppliedRevision"))
        );
        let attempted =
            json!({"status": {"lastAppliedRevision": "", "lastAttemptedRevision": "1.0.0"}});
        assert_eq!(
            installed(&attempted).unwrap().1,
            "status.lastAttemptedRevision"
        );
        assert_eq!(installed(&json!({"status": {}})), None);
        assert_eq!(revision_version("6.5.0@sha256:abc"), "6.5.0");
    }

    #[test]
    fn conditions_give_failed_and_stuck() {
        let now = Timestamp::parse("2026-01-01T12:00:00Z").unwrap();
        let hour = Duration::from_secs(600);
        let healthy = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "UpgradeSucceeded"},
            {"type": "Reconciling", "status": "True", "lastTransitionTime": "2026-01-01T11:58:00Z"}]}});
        assert!(health(&healthy, now, hour, &loc()).is_empty());

        let long = json!({"status": {"conditions": [
            {"type": "Reconciling", "status": "True", "reason": "Progressing",
             "lastTransitionTime": "2026-01-01T10:00:00Z"}]}});
        let f = health(&long, now, hour, &loc());
        assert_eq!(codes(&f), [("release-stuck", Severity::Warning)]);
        assert!(
            f[0].message.as_str().contains("120 minutes"),
            "{}",
            f[0].message
        );

        let stalled = json!({"spec": {"suspend": true}, "status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "UpgradeFailed", "message": "timed out"},
            {"type": "Stalled", "status": "True", "reason": "RetriesExceeded"},
            {"type": "Remediated", "status": "False", "reason": "RollbackFailed"}]}});
        let f = health(&stalled, now, hour, &loc());
        assert_eq!(
            codes(&f),
            [
                ("release-suspended", Severity::Warning),
                ("release-stuck", Severity::Blocking),
                ("release-failed", Severity::Blocking)
            ]
        );
        assert!(f[2].message.as_str().contains("UpgradeFailed: timed out"));
        assert!(f[2].message.as_str().contains("RollbackFailed"));

        let remediated = json!({"status": {"history": [{"chartVersion": "1.0.0", "status": "failed"}],
            "conditions": [{"type": "Remediated", "status": "True", "reason": "RollbackSucceeded"}]}});
        let f = health(&remediated, now, hour, &loc());
        assert_eq!(codes(&f), [("release-failed", Severity::Warning)]);
        assert!(
            f[0].message
                .as_str()
                .contains("last Helm release is failed")
        );
    }
}
