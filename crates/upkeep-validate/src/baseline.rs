//! Before and after: a check that failed before the update and still fails
//! is reported, not blamed on the update; only new failures are
//! regressions.

use std::collections::HashSet;

use upkeep_contract::{Check, CheckStatus, ObjectRef, ValidationReport};

fn key(c: &Check) -> (String, Vec<ObjectRef>) {
    (c.name.clone(), c.objects.clone())
}

/// Marks every failing check of `report` that did not fail in `baseline`
/// as a regression (a check the baseline did not have counts as new).
pub fn compare(report: &mut ValidationReport, baseline: &ValidationReport) {
    let failed_before: HashSet<(String, Vec<ObjectRef>)> = baseline
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(key)
        .collect();
    for c in &mut report.checks {
        c.regression = c.status == CheckStatus::Fail && !failed_before.contains(&key(c));
    }
}

/// The failing checks that count: regressions when compared with a
/// baseline, every failure otherwise.
pub fn regressions(report: &ValidationReport, compared: bool) -> usize {
    report
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail && (!compared || c.regression))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_contract::{ApiVersion, SafeText, Timestamp};

    fn check(name: &str, obj: &str, status: CheckStatus) -> Check {
        Check {
            name: name.to_string(),
            status,
            duration_ms: 1,
            detail: SafeText::new("d"),
            objects: vec![ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("apps".into()),
                name: obj.into(),
            }],
            regression: false,
            cause: None,
        }
    }

    fn report(checks: Vec<Check>) -> ValidationReport {
        ValidationReport {
            api_version: ApiVersion,
            kind: Default::default(),
            validator: "apps".into(),
            started_at: Timestamp::now(),
            finished_at: Timestamp::now(),
            checks,
            not_run: Vec::new(),
            after_step: None,
        }
    }

    #[test]
    fn only_new_failures_are_regressions() {
        let before = report(vec![
            check("apps/deployment-ready", "old-broken", CheckStatus::Fail),
            check("apps/deployment-ready", "web", CheckStatus::Pass),
        ]);
        let mut after = report(vec![
            check("apps/deployment-ready", "old-broken", CheckStatus::Fail),
            check("apps/deployment-ready", "web", CheckStatus::Fail),
            check("apps/deployment-ready", "new", CheckStatus::Fail),
            check("apps/deployment-ready", "fine", CheckStatus::Pass),
        ]);
        assert_eq!(regressions(&after, false), 3);
        compare(&mut after, &before);
        let marked: Vec<(&str, bool)> = after
            .checks
            .iter()
            .map(|c| (c.objects[0].name.as_str(), c.regression))
            .collect();
        assert_eq!(
            marked,
            [
                ("old-broken", false),
                ("web", true),
                ("new", true),
                ("fine", false)
            ]
        );
        assert_eq!(regressions(&after, true), 2);
    }
}
