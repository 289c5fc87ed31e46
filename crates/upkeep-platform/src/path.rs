//! The hop-by-hop path: latest patch of the current minor first, then one
//! minor at a time to the target; never a downgrade, never a skipped minor.

use upkeep_contract::{Finding, Hop, SafeText, Severity};
use upkeep_version::{UpdateType, Version};

use crate::releases::{ReleaseSet, breaking_of, security_of};

/// How minor lines follow each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lines {
    /// Every minor must be visited (Kubernetes, Longhorn): a line without a
    /// release stops the path.
    Consecutive,
    /// The lines that were released, in order (Flux went from v0.41 to v2.0).
    AsReleased,
}

/// The steps from `current` to `target`, and why the path stops short.
#[derive(Debug, Default)]
pub(crate) struct Steps {
    pub hops: Vec<(Version, Version)>,
    pub findings: Vec<Finding>,
}

pub(crate) fn plan(current: &Version, target: &Version, set: &ReleaseSet, lines: Lines) -> Steps {
    let mut steps = Steps::default();
    if target <= current {
        return steps;
    }
    let target_line = target.minor_line();
    let mut at = current.clone();
    let mut line = current.minor_line();
    if line == target_line {
        steps.hops.push((at, target.clone()));
        return steps;
    }
    if let Some(r) = set.latest_in(line)
        && r.version > at
    {
        steps.hops.push((at.clone(), r.version.clone()));
        at = r.version.clone();
    }
    while line < target_line {
        let next = match lines {
            Lines::Consecutive => Some(line.next()),
            Lines::AsReleased => set.next_line_after(line),
        };
        let to = next.and_then(|n| {
            if n == target_line {
                Some(target.clone())
            } else if n > target_line {
                None
            } else {
                set.latest_in(n).map(|r| r.version.clone())
            }
        });
        let Some(to) = to else {
            let missing = next.map_or_else(|| "the next minor".to_string(), |n| n.to_string());
            steps.findings.push(Finding {
                severity: Severity::Warning,
                code: "missing-minor".to_string(),
                message: SafeText::new(&format!(
                    "no release of {missing} is known upstream; minors cannot be skipped, so the path stops at {at}"
                )),
                locations: Vec::new(),
            });
            break;
        };
        steps.hops.push((at.clone(), to.clone()));
        at = to;
        line = at.minor_line();
    }
    steps
}

/// A hop with what the releases it crosses say: its date, the security
/// fixes and breaking changes of every release in `(from, to]`.
pub(crate) fn hop(set: &ReleaseSet, from: &Version, to: &Version) -> Hop {
    Hop {
        from: from.clone(),
        to: to.clone(),
        update: UpdateType::between(from, to).unwrap_or(UpdateType::Patch),
        published: set.get(to).and_then(|r| r.published),
        security: security_of(set.between(from, to)),
        breaking: breaking_of(set.between(from, to)),
        requires: None,
        bundled: Vec::new(),
        blockers: Vec::new(),
    }
}

/// The finding for a target below what is installed: no downgrade.
pub(crate) fn no_downgrade(current: &Version, target: &Version, what: &str) -> Finding {
    Finding {
        severity: Severity::Warning,
        code: "target-below-current".to_string(),
        message: SafeText::new(&format!(
            "{what} points at {target}, below the installed {current}; not downgrading"
        )),
        locations: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::releases::release;

    fn set(tags: &[&str]) -> ReleaseSet {
        ReleaseSet::new(tags.iter().map(|t| release(t, "")).collect(), false, &[])
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn show(steps: &Steps) -> Vec<String> {
        steps
            .hops
            .iter()
            .map(|(a, b)| format!("{a}->{b}"))
            .collect()
    }

    #[test]
    fn latest_patch_first_then_one_minor_at_a_time() {
        let s = set(&[
            "v1.29.3+k3s1",
            "v1.29.11+k3s1",
            "v1.30.0+k3s1",
            "v1.30.8+k3s1",
            "v1.31.1+k3s1",
            "v1.31.10+k3s1",
            "v1.32.0+k3s1",
        ]);
        let steps = plan(
            &v("v1.29.3+k3s1"),
            &v("v1.31.10+k3s1"),
            &s,
            Lines::Consecutive,
        );
        assert_eq!(
            show(&steps),
            [
                "v1.29.3+k3s1->v1.29.11+k3s1",
                "v1.29.11+k3s1->v1.30.8+k3s1",
                "v1.30.8+k3s1->v1.31.10+k3s1"
            ]
        );
        assert!(steps.findings.is_empty());
    }

    #[test]
    fn a_missing_minor_stops_the_path() {
        let s = set(&["1.9.0", "1.9.2", "1.11.0", "1.12.0"]);
        let steps = plan(&v("1.9.0"), &v("1.12.0"), &s, Lines::Consecutive);
        assert_eq!(show(&steps), ["1.9.0->1.9.2"]);
        assert_eq!(steps.findings[0].code, "missing-minor");
        assert!(steps.findings[0].message.as_str().contains("v1.10"));
    }

    #[test]
    fn released_lines_may_jump_a_major() {
        let s = set(&["v0.41.2", "v2.0.0", "v2.0.1", "v2.1.0"]);
        let steps = plan(&v("v0.41.2"), &v("v2.1.0"), &s, Lines::AsReleased);
        assert_eq!(show(&steps), ["v0.41.2->v2.0.1", "v2.0.1->v2.1.0"]);
    }

    #[test]
    fn never_downgrades() {
        let s = set(&["1.9.0", "1.10.0"]);
        assert!(
            plan(&v("1.10.0"), &v("1.9.0"), &s, Lines::Consecutive)
                .hops
                .is_empty()
        );
        assert!(
            plan(&v("1.10.0"), &v("1.10.0"), &s, Lines::Consecutive)
                .hops
                .is_empty()
        );
        let f = no_downgrade(&v("1.10.0"), &v("1.9.0"), "channel stable");
        assert_eq!(f.code, "target-below-current");
    }

    #[test]
    fn same_line_target_is_one_patch_hop() {
        let s = set(&["1.9.0", "1.9.1", "1.9.2"]);
        let steps = plan(&v("1.9.0"), &v("1.9.1"), &s, Lines::Consecutive);
        assert_eq!(show(&steps), ["1.9.0->1.9.1"]);
    }
}
