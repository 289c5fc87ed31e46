//! Events, and the data their templates see.
//!
//! Run events are derived from two successive saved `RunRecord`s of the
//! same run: what changed between them is what happened. Each event has a
//! key that names it within its run (`run/ID/step/2/rolled-back`), so the
//! same event derived again (a resumed run in a new process sees the
//! record afresh) is recognised as already sent.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use upkeep_config::NotifyEvent;
use upkeep_contract::{RunRecord, RunStatus, StepRecord, StepStatus, UpdateReport};

use crate::channel::Severity;
use crate::config::NotifyConfig;

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: NotifyEvent,
    /// What makes this event itself, e.g. `run/20261128-0200/step/1/applied`.
    pub key: String,
    pub severity: Severity,
    /// What the templates see, besides `host`, `contacts` and `runbook`.
    pub context: Value,
}

impl Event {
    /// Failures and rollbacks also go to the escalation channels.
    pub fn escalates(&self) -> bool {
        self.severity == Severity::Critical
    }
}

/// A rendered event, ready for a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub event: NotifyEvent,
    pub key: String,
    pub severity: Severity,
    pub escalate: bool,
    pub title: String,
    pub body: String,
    /// The template data, sent as is by the generic webhook.
    pub data: Value,
}

fn status_str(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "running",
        RunStatus::Completed => "completed",
        RunStatus::Failed => "failed",
        RunStatus::RolledBack => "rolled-back",
        RunStatus::Aborted => "aborted",
    }
}

pub(crate) fn step_context(step: &StepRecord) -> Value {
    json!({
        "index": step.index,
        "number": step.index + 1,
        "component": step.component.to_string(),
        "kind": step.component.kind.to_string(),
        "name": step.component.name,
        "namespace": step.component.namespace,
        "from": step.from.to_string(),
        "to": step.to.to_string(),
        "status": step.status.as_str(),
        "error": step.error.as_ref().map(|e| e.as_str().to_string()),
        "restorePoint": step.restore_point,
        "commit": step.commit_after,
        "commitShort": step.commit_after.as_ref().map(|c| c.chars().take(12).collect::<String>()),
    })
}

pub(crate) fn run_context(record: &RunRecord) -> Value {
    let count = |s: StepStatus| record.steps.iter().filter(|x| x.status == s).count();
    let mut summary = Vec::new();
    for (n, what) in [
        (count(StepStatus::Completed), "completed"),
        (count(StepStatus::RolledBack), "rolled back"),
        (count(StepStatus::Failed), "failed"),
        (count(StepStatus::Skipped), "skipped"),
    ] {
        if n > 0 {
            summary.push(format!("{n} {what}"));
        }
    }
    let pending = record.steps.len()
        - count(StepStatus::Completed)
        - count(StepStatus::RolledBack)
        - count(StepStatus::Failed)
        - count(StepStatus::Skipped);
    if pending > 0 {
        summary.push(format!("{pending} not done"));
    }
    json!({
        "id": record.run_id,
        "actor": record.actor,
        "status": status_str(record.status),
        "emergency": record.emergency.as_ref().map(|e| e.reason.as_str().to_string()),
        "startedAt": record.started_at.to_string(),
        "finishedAt": record.finished_at.map(|t| t.to_string()),
        "steps": record.steps.iter().map(step_context).collect::<Vec<_>>(),
        "summary": summary.join(", "),
    })
}

fn run_event(
    kind: NotifyEvent,
    key: String,
    severity: Severity,
    record: &RunRecord,
    step: Option<&StepRecord>,
) -> Event {
    Event {
        kind,
        key,
        severity,
        context: json!({
            "event": kind.as_str(),
            "severity": severity.as_str(),
            "run": run_context(record),
            "step": step.map(step_context),
        }),
    }
}

/// The events between the record saved before (`prev`, None when this
/// process has not seen the run yet) and the one saved now.
pub fn run_events(prev: Option<&RunRecord>, now: &RunRecord) -> Vec<Event> {
    let id = &now.run_id;
    let mut out = Vec::new();
    if now.status == RunStatus::Running && prev.is_none_or(|p| p.status == RunStatus::Running) {
        out.push(run_event(
            NotifyEvent::RunStarted,
            format!("run/{id}/started"),
            Severity::Info,
            now,
            None,
        ));
    }
    for step in &now.steps {
        let before = prev
            .and_then(|p| p.steps.iter().find(|s| s.index == step.index))
            .map(|s| s.status);
        if before == Some(step.status) {
            continue;
        }
        let i = step.index;
        if matches!(
            step.status,
            StepStatus::ValidatingAfter | StepStatus::Completed
        ) {
            out.push(run_event(
                NotifyEvent::StepApplied,
                format!("run/{id}/step/{i}/applied"),
                Severity::Info,
                now,
                Some(step),
            ));
        }
        // Only a transition says that it was the validators that failed: a
        // step seen for the first time in RollingBack may have been refused
        // by Flux as well.
        if matches!(
            before,
            Some(StepStatus::ValidatingBefore | StepStatus::ValidatingAfter)
        ) && matches!(
            step.status,
            StepStatus::RollingBack | StepStatus::Failed | StepStatus::RolledBack
        ) {
            out.push(run_event(
                NotifyEvent::ValidationFailed,
                format!("run/{id}/step/{i}/validation-failed"),
                Severity::Critical,
                now,
                Some(step),
            ));
        }
        if step.status == StepStatus::RolledBack {
            out.push(run_event(
                NotifyEvent::RolledBack,
                format!("run/{id}/step/{i}/rolled-back"),
                Severity::Critical,
                now,
                Some(step),
            ));
        }
    }
    if now.status != RunStatus::Running && prev.is_none_or(|p| p.status != now.status) {
        let severity = if now.status == RunStatus::Completed {
            Severity::Info
        } else {
            Severity::Critical
        };
        // The step that stopped the run, for the message.
        let stopper = now
            .steps
            .iter()
            .find(|s| matches!(s.status, StepStatus::Failed | StepStatus::RolledBack));
        out.push(run_event(
            NotifyEvent::RunFinished,
            format!("run/{id}/finished/{}", status_str(now.status)),
            severity,
            now,
            stopper,
        ));
    }
    out
}

/// `updates-available` from an UpdateReport, security updates first; None
/// when nothing can be updated. The key is the set of updates, so the same
/// report announced twice is one message and a new release is a new one.
pub fn updates_event(report: &UpdateReport) -> Option<Event> {
    let mut items = Vec::new();
    for c in &report.components {
        let Some(latest) = &c.latest else { continue };
        let current = c.current.as_ref().map(|v| v.version.to_string());
        if current.as_deref() == Some(latest.to_string().as_str()) || c.candidates.is_empty() {
            continue;
        }
        let mut ids: Vec<String> = c
            .candidates
            .iter()
            .filter_map(|k| k.security.as_ref())
            .flat_map(|s| s.ids.iter().cloned())
            .collect();
        ids.sort();
        ids.dedup();
        let newest = c
            .candidates
            .iter()
            .find(|k| &k.version == latest)
            .or(c.candidates.first());
        let update = newest
            .and_then(|k| serde_json::to_value(k.update).ok())
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        items.push(json!({
            "component": c.component.to_string(),
            "kind": c.component.kind.to_string(),
            "current": current,
            "latest": latest.to_string(),
            "update": update,
            "security": !ids.is_empty() || c.candidates.iter().any(|k| k.security.is_some()),
            "ids": ids,
            "notesUrl": newest.and_then(|k| k.notes_url.clone()),
        }));
    }
    if items.is_empty() {
        return None;
    }
    items.sort_by(|a, b| {
        (
            !a["security"].as_bool().unwrap_or(false),
            a["component"].as_str(),
        )
            .cmp(&(
                !b["security"].as_bool().unwrap_or(false),
                b["component"].as_str(),
            ))
    });
    let security = items
        .iter()
        .filter(|i| i["security"] == json!(true))
        .count();
    let mut hash = Sha256::new();
    for i in &items {
        hash.update(format!("{}@{}\n", i["component"], i["latest"]));
    }
    let digest = hex::encode(hash.finalize());
    let severity = if security > 0 {
        Severity::Warning
    } else {
        Severity::Info
    };
    Some(Event {
        kind: NotifyEvent::UpdatesAvailable,
        key: format!("updates/{}", &digest[..16]),
        severity,
        context: json!({
            "event": NotifyEvent::UpdatesAvailable.as_str(),
            "severity": severity.as_str(),
            "updates": {
                "total": items.len(),
                "security": security,
                "items": items,
                "generatedAt": report.generated_at.to_string(),
            },
        }),
    })
}

/// `window-announced` or `window-ended` for the window from `start` to `end`.
pub fn window_event(kind: NotifyEvent, start: &jiff::Zoned, end: &jiff::Zoned) -> Event {
    let what = if kind == NotifyEvent::WindowEnded {
        "ended"
    } else {
        "announced"
    };
    Event {
        kind,
        key: format!("window/{}/{what}", start.timestamp()),
        severity: Severity::Info,
        context: json!({
            "event": kind.as_str(),
            "severity": Severity::Info.as_str(),
            "window": {
                "start": start.strftime("%a %Y-%m-%d %H:%M %Z").to_string(),
                "end": end.strftime("%a %Y-%m-%d %H:%M %Z").to_string(),
                "startUtc": start.timestamp().to_string(),
                "endUtc": end.timestamp().to_string(),
                "timeZone": start.time_zone().iana_name().unwrap_or("UTC"),
            },
        }),
    }
}

/// The message `upkeep notify test` sends.
pub fn test_event(now: jiff::Timestamp) -> Event {
    Event {
        kind: NotifyEvent::Test,
        key: format!("test/{now}"),
        severity: Severity::Info,
        context: json!({
            "event": NotifyEvent::Test.as_str(),
            "severity": Severity::Info.as_str(),
            "sentAt": now.to_string(),
        }),
    }
}

pub(crate) fn host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "this host".to_string())
}

/// The full template data of `event`: its own, plus `host`, `contacts`
/// and the emergency `runbook`.
pub(crate) fn full_context(
    config: &NotifyConfig,
    event: &Event,
    record: Option<&RunRecord>,
) -> Value {
    let mut ctx = event.context.clone();
    if let Value::Object(map) = &mut ctx {
        map.insert("host".into(), Value::String(host()));
        map.insert(
            "contacts".into(),
            serde_json::to_value(&config.contacts).unwrap_or(Value::Null),
        );
        map.insert(
            "runbook".into(),
            Value::String(crate::runbook::runbook(config, record)),
        );
        map.insert("escalation".into(), Value::Bool(event.escalates()));
    }
    ctx
}

/// Renders `event` with the configured templates. A template that worked
/// on the sample at load time but not on this event's data falls back to
/// the built-in one: the operator still hears about the rollback.
pub fn render(config: &NotifyConfig, event: &Event, record: Option<&RunRecord>) -> Message {
    let data = full_context(config, event, record);
    let (title, body) = config.templates.render(event.kind, &data);
    Message {
        event: event.kind,
        key: event.key.clone(),
        severity: event.severity,
        escalate: event.escalates(),
        title,
        body,
        data,
    }
}

/// A run record the templates are checked against at load time: every
/// field the real ones can have, filled.
pub(crate) fn sample_record() -> RunRecord {
    serde_json::from_value(json!({
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "RunRecord",
        "runId": "20261128-020000-sample",
        "startedAt": "2026-11-28T02:00:00Z",
        "finishedAt": "2026-11-28T02:20:00Z",
        "status": "rolled-back",
        "actor": "operator",
        "emergency": {"reason": "sample reason"},
        "steps": [
            {"index": 0, "component": {"kind": "longhorn", "name": "longhorn", "namespace": "longhorn-system"},
             "from": "1.9.1", "to": "1.9.2", "status": "completed", "restorePoint": "/var/backups/upkeep/rp-0",
             "commitBefore": "0123456789abcdef0123456789abcdef01234567",
             "commitAfter": "89abcdef0123456789abcdef0123456789abcdef"},
            {"index": 1, "component": {"kind": "chart", "name": "podinfo", "namespace": "apps"},
             "from": "6.7.0", "to": "6.8.0", "status": "rolled-back", "restorePoint": "/var/backups/upkeep/rp-1",
             "commitAfter": "fedcba9876543210fedcba9876543210fedcba98",
             "error": "1 check(s) fail since the update: apps/podinfo has 0 of 1 replicas ready"}
        ],
        "errors": []
    }))
    .expect("the sample run record matches the contract")
}

/// The sample data of each event type, for checking templates at load time.
pub(crate) fn sample_event(kind: NotifyEvent) -> Event {
    let record = sample_record();
    let step = &record.steps[1];
    match kind {
        NotifyEvent::RunStarted | NotifyEvent::RunFinished => run_event(
            kind,
            "sample".into(),
            Severity::Critical,
            &record,
            Some(step),
        ),
        NotifyEvent::StepApplied | NotifyEvent::ValidationFailed | NotifyEvent::RolledBack => {
            run_event(
                kind,
                "sample".into(),
                Severity::Critical,
                &record,
                Some(step),
            )
        }
        NotifyEvent::WindowAnnounced | NotifyEvent::WindowEnded => {
            let start: jiff::Zoned = "2026-11-28T02:00[Europe/Berlin]"
                .parse()
                .expect("sample start");
            let end: jiff::Zoned = "2026-11-28T05:00[Europe/Berlin]"
                .parse()
                .expect("sample end");
            window_event(kind, &start, &end)
        }
        NotifyEvent::UpdatesAvailable => Event {
            kind,
            key: "sample".into(),
            severity: Severity::Warning,
            context: json!({
                "event": kind.as_str(),
                "severity": "warning",
                "updates": {
                    "total": 2,
                    "security": 1,
                    "generatedAt": "2026-11-28T02:00:00Z",
                    "items": [
                        {"component": "networking/ingress-nginx", "kind": "chart", "current": "4.12.0", "latest": "4.12.1",
                         "update": "patch", "security": true, "ids": ["CVE-2026-1234"], "notesUrl": "https://example.org/notes"},
                        {"component": "longhorn", "kind": "longhorn", "current": "1.9.1", "latest": "1.10.0",
                         "update": "minor", "security": false, "ids": [], "notesUrl": null}
                    ]
                }
            }),
        },
        NotifyEvent::Test => test_event(jiff::Timestamp::UNIX_EPOCH),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: RunStatus, steps: &[StepStatus]) -> RunRecord {
        let mut r = sample_record();
        r.status = status;
        r.emergency = None;
        r.finished_at = None;
        r.steps.truncate(1);
        let template = r.steps[0].clone();
        r.steps = steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut st = template.clone();
                st.index = i;
                st.status = *s;
                st
            })
            .collect();
        r
    }

    fn kinds(events: &[Event]) -> Vec<(NotifyEvent, String)> {
        events.iter().map(|e| (e.kind, e.key.clone())).collect()
    }

    #[test]
    fn first_sight_of_a_running_run_is_run_started_only() {
        let r = record(
            RunStatus::Running,
            &[StepStatus::Pending, StepStatus::Pending],
        );
        let ev = run_events(None, &r);
        assert_eq!(
            kinds(&ev),
            vec![(NotifyEvent::RunStarted, format!("run/{}/started", r.run_id))]
        );
        assert!(!ev[0].escalates());
    }

    #[test]
    fn applying_to_validating_after_is_step_applied_with_the_step() {
        let a = record(
            RunStatus::Running,
            &[StepStatus::Applying, StepStatus::Pending],
        );
        let b = record(
            RunStatus::Running,
            &[StepStatus::ValidatingAfter, StepStatus::Pending],
        );
        let ev = run_events(Some(&a), &b);
        // run-started is derived again but carries the same key: the observer drops it.
        let applied: Vec<_> = ev
            .iter()
            .filter(|e| e.kind == NotifyEvent::StepApplied)
            .collect();
        assert_eq!(applied.len(), 1);
        assert_eq!(applied[0].key, format!("run/{}/step/0/applied", b.run_id));
        assert_eq!(applied[0].context["step"]["to"], "1.9.2");
        assert_eq!(applied[0].context["step"]["number"], 1);
        // Nothing about step 1, which did not change.
        assert!(ev.iter().all(|e| !e.key.contains("/step/1/")));
    }

    #[test]
    fn failed_validation_then_rollback_then_run_end() {
        let a = record(RunStatus::Running, &[StepStatus::ValidatingAfter]);
        let b = record(RunStatus::Running, &[StepStatus::RollingBack]);
        let ev = run_events(Some(&a), &b);
        let vf: Vec<_> = ev
            .iter()
            .filter(|e| e.kind == NotifyEvent::ValidationFailed)
            .collect();
        assert_eq!(vf.len(), 1);
        assert!(vf[0].escalates());
        let c = record(RunStatus::Running, &[StepStatus::RolledBack]);
        let ev = run_events(Some(&b), &c);
        assert_eq!(
            ev.iter()
                .filter(|e| e.kind == NotifyEvent::RolledBack)
                .count(),
            1,
            "{ev:?}"
        );
        assert!(ev.iter().all(|e| e.kind != NotifyEvent::ValidationFailed));
        let d = record(RunStatus::RolledBack, &[StepStatus::RolledBack]);
        let ev = run_events(Some(&c), &d);
        assert_eq!(
            kinds(&ev),
            vec![(
                NotifyEvent::RunFinished,
                format!("run/{}/finished/rolled-back", d.run_id)
            )]
        );
        assert!(ev[0].escalates());
        assert_eq!(ev[0].context["run"]["status"], "rolled-back");
        assert_eq!(
            ev[0].context["step"]["index"], 0,
            "the step that stopped the run"
        );
    }

    #[test]
    fn a_refused_apply_is_not_a_validation_failure() {
        let a = record(RunStatus::Running, &[StepStatus::Applying]);
        let b = record(RunStatus::Running, &[StepStatus::RollingBack]);
        assert!(
            run_events(Some(&a), &b)
                .iter()
                .all(|e| e.kind != NotifyEvent::ValidationFailed)
        );
    }

    #[test]
    fn failing_validators_before_the_update_fail_the_step() {
        let a = record(RunStatus::Running, &[StepStatus::ValidatingBefore]);
        let b = record(RunStatus::Running, &[StepStatus::Failed]);
        let ev = run_events(Some(&a), &b);
        assert_eq!(
            kinds(&ev)
                .iter()
                .filter(|(k, _)| *k == NotifyEvent::ValidationFailed)
                .count(),
            1
        );
        assert!(ev.iter().all(|e| e.kind != NotifyEvent::StepApplied));
    }

    #[test]
    fn a_completed_run_finishes_without_escalation_and_unchanged_records_say_nothing_new() {
        let a = record(RunStatus::Running, &[StepStatus::Completed]);
        let b = record(RunStatus::Completed, &[StepStatus::Completed]);
        let ev = run_events(Some(&a), &b);
        assert_eq!(
            kinds(&ev),
            vec![(
                NotifyEvent::RunFinished,
                format!("run/{}/finished/completed", b.run_id)
            )]
        );
        assert!(!ev[0].escalates());
        assert_eq!(ev[0].context["run"]["summary"], "1 completed");
        assert!(run_events(Some(&b), &b).is_empty());
    }

    #[test]
    fn a_resumed_run_seen_fresh_derives_the_same_keys_as_before() {
        // The first process saw every transition; a new one sees only the
        // last record. Every key it derives must be one the first derived,
        // so the sent-events file suppresses them all.
        let seq = [
            record(RunStatus::Running, &[StepStatus::Pending]),
            record(RunStatus::Running, &[StepStatus::Applying]),
            record(RunStatus::Running, &[StepStatus::ValidatingAfter]),
            record(RunStatus::Running, &[StepStatus::Completed]),
        ];
        let mut first = std::collections::BTreeSet::new();
        let mut prev = None;
        for r in &seq {
            first.extend(run_events(prev, r).into_iter().map(|e| e.key));
            prev = Some(r);
        }
        for e in run_events(None, &seq[3]) {
            assert!(first.contains(&e.key), "{} would be sent again", e.key);
        }
    }

    #[test]
    fn updates_put_security_first_and_key_by_the_set_of_updates() {
        let text = r#"{"apiVersion":"upkeep.dev/v1alpha1","kind":"UpdateReport","generatedAt":"2026-11-28T04:00:00Z",
          "summary":{"components":3,"withUpdates":2,"patch":1,"minor":1,"major":0,"security":1,"breaking":0,"blocked":0,"errors":0},
          "components":[
            {"apiVersion":"upkeep.dev/v1alpha1","kind":"ComponentUpdates","component":{"kind":"chart","name":"aaa","namespace":"apps"},
             "current":{"version":"1.0.0"},"latest":"1.1.0","candidates":[{"version":"1.1.0","update":"minor"}],"checkedAt":"2026-11-28T04:00:00Z"},
            {"apiVersion":"upkeep.dev/v1alpha1","kind":"ComponentUpdates","component":{"kind":"chart","name":"zzz","namespace":"apps"},
             "current":{"version":"2.0.0"},"latest":"2.0.1","candidates":[{"version":"2.0.1","update":"patch","security":{"ids":["CVE-2026-1"]}}],"checkedAt":"2026-11-28T04:00:00Z"},
            {"apiVersion":"upkeep.dev/v1alpha1","kind":"ComponentUpdates","component":{"kind":"chart","name":"same","namespace":"apps"},
             "current":{"version":"3.0.0"},"latest":"3.0.0","candidates":[],"checkedAt":"2026-11-28T04:00:00Z"}
          ]}"#;
        let report: UpdateReport = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => panic!("fixture: {e}"),
        };
        let ev = updates_event(&report).unwrap();
        let items = ev.context["updates"]["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["component"], "apps/zzz");
        assert_eq!(items[0]["ids"][0], "CVE-2026-1");
        assert_eq!(ev.context["updates"]["security"], 1);
        assert_eq!(ev.severity, Severity::Warning);
        let again = updates_event(&report).unwrap();
        assert_eq!(ev.key, again.key);
        let mut newer = report.clone();
        newer.components[0].latest = Some("1.2.0".parse().unwrap());
        newer.components[0].candidates[0].version = "1.2.0".parse().unwrap();
        assert_ne!(updates_event(&newer).unwrap().key, ev.key);
        let mut none = report;
        none.components.truncate(0);
        assert!(updates_event(&none).is_none());
    }
}
