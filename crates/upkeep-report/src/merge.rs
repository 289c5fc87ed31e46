use std::collections::HashMap;

use upkeep_contract::{
    ApiVersion, ComponentKind, ComponentUpdates, DocError, ReportSummary, Timestamp, UpdateReport,
    UpdateType, kind,
};

/// What makes `merge-report --fail-on` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    /// Any component has an update.
    Any,
    /// Any component has a security update.
    Security,
    /// Any component has a breaking update (or a blocked hop).
    Breaking,
    /// Any component carries errors (an upstream or the cluster could not
    /// be read): in a pipeline the detectors' exit codes are lost, this is
    /// how a script notices.
    Errors,
}

/// Merges documents about the same component (same kind, namespace and
/// name): the one checked last wins, and the errors of all are kept, so a
/// failure seen by one detector run is not hidden by another's success.
/// The result is sorted security first, then breaking, then by component.
pub fn merge(docs: Vec<ComponentUpdates>, generated_at: Timestamp) -> UpdateReport {
    type Key = (ComponentKind, Option<String>, String);
    let mut groups: Vec<Vec<ComponentUpdates>> = Vec::new();
    let mut index: HashMap<Key, usize> = HashMap::new();
    for doc in docs {
        let key = (
            doc.component.kind,
            doc.component.namespace.clone(),
            doc.component.name.clone(),
        );
        let i = *index.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(doc);
    }
    let mut merged: Vec<ComponentUpdates> = groups
        .into_iter()
        .filter_map(|mut group| {
            // On equal checkedAt the later document in the input wins.
            let newest = group
                .iter()
                .enumerate()
                .max_by(|(ia, a), (ib, b)| a.checked_at.cmp(&b.checked_at).then(ia.cmp(ib)))
                .map(|(i, _)| i)?;
            let mut winner = group.swap_remove(newest);
            for other in group {
                keep_errors(&mut winner.errors, other.errors);
            }
            Some(winner)
        })
        .collect();
    merged.sort_by(|a, b| {
        b.has_security()
            .cmp(&a.has_security())
            .then_with(|| b.has_breaking().cmp(&a.has_breaking()))
            .then_with(|| a.component.kind.cmp(&b.component.kind))
            .then_with(|| a.component.namespace.cmp(&b.component.namespace))
            .then_with(|| a.component.name.cmp(&b.component.name))
    });
    UpdateReport {
        api_version: ApiVersion,
        kind: kind::UpdateReport,
        generated_at,
        summary: summarise(&merged),
        components: merged,
    }
}

fn keep_errors(into: &mut Vec<DocError>, from: Vec<DocError>) {
    for e in from {
        if !into.contains(&e) {
            into.push(e);
        }
    }
}

fn summarise(components: &[ComponentUpdates]) -> ReportSummary {
    let mut s = ReportSummary {
        components: components.len(),
        ..Default::default()
    };
    for c in components {
        match c.biggest_update() {
            Some(UpdateType::Patch) => s.patch += 1,
            Some(UpdateType::Minor) => s.minor += 1,
            Some(UpdateType::Major) => s.major += 1,
            None => {}
        }
        if !c.candidates.is_empty() {
            s.with_updates += 1;
        }
        s.security += usize::from(c.has_security());
        s.breaking += usize::from(c.has_breaking());
        s.blocked += usize::from(c.has_blocking());
        s.errors += usize::from(!c.errors.is_empty());
    }
    s
}

/// Does the report match the `--fail-on` condition?
pub fn matches_fail_on(report: &UpdateReport, on: FailOn) -> bool {
    match on {
        FailOn::Any => report.summary.with_updates > 0,
        FailOn::Security => report.summary.security > 0,
        FailOn::Breaking => report.summary.breaking > 0 || report.summary.blocked > 0,
        FailOn::Errors => report.summary.errors > 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_contract::{Candidate, Component, Security, Version};

    fn doc(name: &str, at: &str, update: Option<UpdateType>, security: bool) -> ComponentUpdates {
        let mut d = ComponentUpdates::new(
            Component {
                kind: ComponentKind::Chart,
                name: name.to_string(),
                namespace: Some("apps".to_string()),
                source: None,
            },
            Timestamp::parse(at).unwrap(),
        );
        if let Some(u) = update {
            d.candidates.push(Candidate {
                version: Version::parse("2.0.0").unwrap(),
                published: None,
                prerelease: false,
                update: u,
                allowed: true,
                app_version: None,
                security: security.then(|| Security {
                    ids: vec!["CVE-2026-0001".into()],
                    summary: None,
                }),
                breaking: None,
                requires: None,
                notes_url: None,
                notes: None,
            });
        }
        d
    }

    fn err(msg: &str) -> DocError {
        DocError {
            source: "upstream".into(),
            message: upkeep_contract::SafeText::new(msg),
            target: None,
        }
    }

    #[test]
    fn newest_wins_ties_go_to_the_later_document_and_errors_accumulate() {
        let mut a = doc("x", "2026-11-28T01:00:00Z", Some(UpdateType::Patch), false);
        a.errors.push(err("first"));
        let mut b = doc("x", "2026-11-28T03:00:00Z", Some(UpdateType::Minor), false);
        b.errors.push(err("second"));
        let mut c = doc("x", "2026-11-28T02:00:00Z", None, false);
        c.errors.push(err("first"));
        let r = merge(vec![a, b, c], Timestamp::now());
        assert_eq!(r.components.len(), 1);
        let x = &r.components[0];
        assert_eq!(x.biggest_update(), Some(UpdateType::Minor));
        let msgs: Vec<&str> = x.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(msgs, ["second", "first"], "deduplicated, winner's first");

        let t = "2026-11-28T05:00:00Z";
        let r = merge(
            vec![
                doc("y", t, Some(UpdateType::Patch), false),
                doc("y", t, Some(UpdateType::Major), false),
            ],
            Timestamp::now(),
        );
        assert_eq!(r.components[0].biggest_update(), Some(UpdateType::Major));
    }

    #[test]
    fn sorted_security_first_then_by_name_and_summarised() {
        let t = "2026-11-28T05:00:00Z";
        let r = merge(
            vec![
                doc("b", t, Some(UpdateType::Patch), false),
                doc("z", t, Some(UpdateType::Major), true),
                doc("a", t, None, false),
            ],
            Timestamp::now(),
        );
        let names: Vec<&str> = r
            .components
            .iter()
            .map(|c| c.component.name.as_str())
            .collect();
        assert_eq!(names, ["z", "a", "b"]);
        let s = &r.summary;
        assert_eq!(
            (s.components, s.with_updates, s.patch, s.major, s.security),
            (3, 2, 1, 1, 1)
        );
        assert!(matches_fail_on(&r, FailOn::Security));
        assert!(matches_fail_on(&r, FailOn::Any));
        assert!(!matches_fail_on(&r, FailOn::Breaking));
    }
}
