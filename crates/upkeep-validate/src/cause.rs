//! What probably caused a regression: the recent Events of the objects a
//! failing check looked at, newest first, so the report says more than
//! "it broke".

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use serde_json::Value;
use upkeep_contract::{SafeText, ValidationReport};
use upkeep_kube::{Cluster, ClusterRead, ListOptions, ResourceRef};

use crate::ValidateError;

/// Events kept per regression.
const MAX_EVENTS: usize = 3;

/// Fills `cause` of every regression in `report` from the Events of its objects.
pub async fn explain(
    cluster: &Cluster,
    report: &mut ValidationReport,
) -> Result<(), ValidateError> {
    let wanted: Vec<usize> = (0..report.checks.len())
        .filter(|i| report.checks[*i].regression)
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let res = cluster
        .resource(&ResourceRef::preferred("", "Event"))
        .await?;
    // One list per namespace involved, not one per object.
    let mut by_ns: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for i in &wanted {
        for o in &report.checks[*i].objects {
            let ns = o.namespace.clone().unwrap_or_else(|| "default".to_string());
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
    }
    for i in wanted {
        let check = &mut report.checks[i];
        let mut lines: Vec<(String, String)> = Vec::new();
        for o in &check.objects {
            let ns = o.namespace.clone().unwrap_or_else(|| "default".to_string());
            for e in by_ns.get(&ns).into_iter().flatten() {
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
            continue;
        }
        lines.sort_by(|a, b| b.0.cmp(&a.0));
        let text: Vec<String> = lines.into_iter().take(MAX_EVENTS).map(|(_, l)| l).collect();
        check.cause = Some(SafeText::new(&format!(
            "recent events: {}",
            text.join(" | ")
        )));
    }
    Ok(())
}
