//! What probably caused a regression: the update step the report follows
//! and the objects it changed (those nearest the failing check first), and
//! the recent Events of the objects the check looked at, newest first, so
//! the report says more than "it broke".

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use serde_json::Value;
use upkeep_contract::{AfterStep, Check, ObjectRef, SafeText, ValidationReport};
use upkeep_kube::{Cluster, ClusterRead, ListOptions, ResourceRef};

use crate::ValidateError;

/// Events kept per regression.
const MAX_EVENTS: usize = 3;
/// Objects of the step named per regression.
const MAX_STEP_OBJECTS: usize = 5;

/// Fills `cause` of every regression in `report`: from the step it follows
/// and, with a cluster, from the Events of the check's objects. A cause is
/// a help, not a verdict: Events that cannot be read are logged, not fatal.
pub async fn explain(cluster: Option<&Cluster>, report: &mut ValidationReport) {
    if !report.checks.iter().any(|c| c.regression) {
        return;
    }
    let events = match cluster {
        Some(cluster) => match events_by_namespace(cluster, &report.checks).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("cannot read the Events of the regressions: {e}");
                BTreeMap::new()
            }
        },
        None => BTreeMap::new(),
    };
    let step = report.after_step.clone();
    for check in report.checks.iter_mut().filter(|c| c.regression) {
        let parts: Vec<String> = step
            .as_ref()
            .map(|s| step_cause(s, &check.objects))
            .into_iter()
            .chain(event_cause(&events, &check.objects))
            .collect();
        if !parts.is_empty() {
            check.cause = Some(SafeText::new(&parts.join("; ")));
        }
    }
}

/// One list per namespace involved, not one per object.
async fn events_by_namespace(
    cluster: &Cluster,
    checks: &[Check],
) -> Result<BTreeMap<String, Vec<Value>>, ValidateError> {
    let res = cluster
        .resource(&ResourceRef::preferred("", "Event"))
        .await?;
    let mut by_ns: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for o in checks
        .iter()
        .filter(|c| c.regression)
        .flat_map(|c| &c.objects)
    {
        let ns = namespace_of(o);
        if by_ns.contains_key(&ns) {
            continue;
        }
        let listed: Vec<_> = cluster
            .list(&res, &ListOptions::in_namespace(&ns))
            .try_collect()
            .await?;
        let values = listed
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect();
        by_ns.insert(ns, values);
    }
    Ok(by_ns)
}

fn namespace_of(o: &ObjectRef) -> String {
    o.namespace.clone().unwrap_or_else(|| "default".to_string())
}

/// The step, and the objects it changed that are nearest to `objects`: the
/// same object first, then the same namespace, then the rest.
fn step_cause(step: &AfterStep, objects: &[ObjectRef]) -> String {
    let mut head = match step.index {
        Some(i) => format!("after step {i}, "),
        None => "after ".to_string(),
    };
    head.push_str(&format!(
        "{} {} {} -> {}",
        step.component.kind, step.component, step.from, step.to
    ));
    if let Some(c) = &step.commit {
        head.push_str(&format!(" (commit {})", c.get(..12).unwrap_or(c)));
    }
    if step.objects.is_empty() {
        return head;
    }
    let nearness = |o: &ObjectRef| {
        if objects.contains(o) {
            0
        } else if o.namespace.is_some() && objects.iter().any(|c| c.namespace == o.namespace) {
            1
        } else {
            2
        }
    };
    let mut changed: Vec<&ObjectRef> = step.objects.iter().collect();
    changed.sort_by_key(|o| nearness(o));
    let same = changed.first().map(|o| nearness(o)) == Some(0);
    let shown: Vec<String> = changed
        .iter()
        .take(MAX_STEP_OBJECTS)
        .map(|o| o.to_string())
        .collect();
    let more = changed.len().saturating_sub(MAX_STEP_OBJECTS);
    format!(
        "{head}, which changed {}{}{}",
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        },
        if same {
            " (this check looked at an object the step changed)"
        } else {
            ""
        }
    )
}

fn event_cause(events: &BTreeMap<String, Vec<Value>>, objects: &[ObjectRef]) -> Option<String> {
    let mut lines: Vec<(String, String)> = Vec::new();
    for o in objects {
        for e in events.get(&namespace_of(o)).into_iter().flatten() {
            let about = |p: &str| e.pointer(p).and_then(Value::as_str);
            if about("/involvedObject/name") != Some(o.name.as_str())
                || about("/involvedObject/kind") != Some(o.kind.as_str())
            {
                continue;
            }
            let when = about("/lastTimestamp")
                .or_else(|| about("/eventTime"))
                .or_else(|| about("/metadata/creationTimestamp"))
                .unwrap_or("")
                .to_string();
            lines.push((
                when,
                format!(
                    "{} {} {}: {}",
                    about("/type").unwrap_or("Normal"),
                    o.kind,
                    about("/reason").unwrap_or(""),
                    about("/message").unwrap_or("")
                ),
            ));
        }
    }
    if lines.is_empty() {
        return None;
    }
    lines.sort_by(|a, b| b.0.cmp(&a.0));
    let text: Vec<String> = lines.into_iter().take(MAX_EVENTS).map(|(_, l)| l).collect();
    Some(format!("recent events: {}", text.join(" | ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use upkeep_contract::{Component, ComponentKind, Version};

    fn obj(kind: &str, ns: &str, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: Some(ns.into()),
            name: name.into(),
        }
    }

    fn step(objects: Vec<ObjectRef>) -> AfterStep {
        AfterStep {
            index: Some(2),
            component: Component {
                kind: ComponentKind::Chart,
                name: "podinfo".into(),
                namespace: Some("apps".into()),
                source: None,
            },
            from: Version::parse("6.7.0").unwrap(),
            to: Version::parse("6.8.0").unwrap(),
            commit: Some("0123456789abcdef0123".into()),
            objects,
        }
    }

    #[test]
    fn the_step_names_the_nearest_changed_objects_first() {
        let s = step(vec![
            obj("ConfigMap", "other", "far"),
            obj("HelmRelease", "apps", "podinfo"),
            obj("Deployment", "apps", "podinfo"),
        ]);
        let text = step_cause(&s, &[obj("Deployment", "apps", "podinfo")]);
        assert_eq!(
            text,
            "after step 2, chart apps/podinfo 6.7.0 -> 6.8.0 (commit 0123456789ab), which changed \
             Deployment apps/podinfo, HelmRelease apps/podinfo, ConfigMap other/far \
             (this check looked at an object the step changed)"
        );
        let text = step_cause(&s, &[obj("Pod", "elsewhere", "x")]);
        assert!(text.ends_with("Deployment apps/podinfo"), "{text}");
        assert!(!text.contains("looked at"), "{text}");
    }

    #[test]
    fn events_of_the_checked_objects_newest_first() {
        let ev = |name: &str, reason: &str, at: &str| {
            json!({"involvedObject": {"kind": "Deployment", "name": name}, "type": "Warning",
                   "reason": reason, "message": "m", "lastTimestamp": at})
        };
        let mut events = BTreeMap::new();
        events.insert(
            "apps".to_string(),
            vec![
                ev("web", "Old", "2026-11-28T09:00:00Z"),
                ev("other", "NotMine", "2026-11-28T11:00:00Z"),
                ev("web", "New", "2026-11-28T10:00:00Z"),
            ],
        );
        let text = event_cause(&events, &[obj("Deployment", "apps", "web")]).unwrap();
        assert_eq!(
            text,
            "recent events: Warning Deployment New: m | Warning Deployment Old: m"
        );
        assert!(event_cause(&events, &[obj("Deployment", "apps", "none")]).is_none());
    }
}
