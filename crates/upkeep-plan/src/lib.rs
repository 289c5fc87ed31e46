//! Turns an `UpdateReport` and a policy into an ordered `UpdatePlan`.
//!
//! The order comes from the constraints, not from a fixed list: k3s and
//! Longhorn move one hop (one minor) per step, each hop after the one
//! before; a step whose release needs a newer Kubernetes waits for the k3s
//! hop that brings it; a Flux hop with objects still on an API version it
//! removes is not planned, and says why. Among steps that are ready, Flux
//! goes first, then Longhorn, then k3s, then charts, so that add-ons reach a
//! version that supports both the old and the new Kubernetes before the
//! cluster moves.

use std::collections::BTreeSet;

use upkeep_contract::{
    ApiVersion, Candidate, Component, ComponentKind, ComponentUpdates, Constraint, Finding,
    PlanStep, Reversibility, SafeText, Severity, Timestamp, Unreachable, UpdatePlan, UpdateReport,
    UpdateType, Version, kind,
};

/// What the operator allows a run to do.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Largest update type allowed per component kind; absent means any.
    pub max_update: Vec<(ComponentKind, UpdateType)>,
    /// Only updates that fix a security issue.
    pub security_only: bool,
    /// Releases younger than this are left for a later run.
    pub min_release_age_days: Option<u32>,
    /// Components (by name) held at their current version.
    pub ignore: BTreeSet<String>,
    /// Components (by name) kept inside a constraint.
    pub pins: Vec<(String, Constraint)>,
}

impl Policy {
    fn max_for(&self, k: ComponentKind) -> Option<UpdateType> {
        self.max_update
            .iter()
            .find(|(kk, _)| *kk == k)
            .map(|(_, u)| *u)
    }
}

/// One step before ordering.
struct Draft {
    component: Component,
    from: Version,
    to: Version,
    update: UpdateType,
    reason: String,
    reversibility: Reversibility,
    /// The Kubernetes constraint the target needs.
    needs_kubernetes: Option<Constraint>,
    /// For k3s hops: the Kubernetes version the cluster runs after it.
    brings_kubernetes: Option<Version>,
    /// Index (into drafts) of the step that must come first.
    after: Option<usize>,
    /// The HelmReleases (`namespace/name`) Flux applies before this chart's
    /// (through HelmRelease or Kustomization dependsOn).
    depends: Vec<String>,
}

fn priority(k: ComponentKind) -> u8 {
    match k {
        ComponentKind::Flux => 0,
        ComponentKind::Longhorn => 1,
        ComponentKind::K3s => 2,
        ComponentKind::Chart => 3,
    }
}

fn is_longhorn_chart(c: &Component) -> bool {
    c.source
        .as_ref()
        .and_then(|s| s.chart.as_deref())
        .map_or(c.name == "longhorn", |chart| chart == "longhorn")
}

fn finding(code: &str, message: String) -> Finding {
    Finding {
        severity: Severity::Blocking,
        code: code.to_string(),
        message: SafeText::new(&message),
        locations: Vec::new(),
    }
}

fn age_ok(published: Option<Timestamp>, now: Timestamp, min_days: Option<u32>) -> bool {
    match (min_days, published) {
        (None, _) => true,
        // Unknown age cannot be shown to be old enough.
        (Some(_), None) => false,
        (Some(d), Some(p)) => {
            now.0.as_second().saturating_sub(p.0.as_second()) >= i64::from(d) * 86_400
        }
    }
}

/// Why a candidate is not allowed by the policy, if it is not.
fn policy_refusal(
    c: &ComponentUpdates,
    cand: &Candidate,
    policy: &Policy,
    now: Timestamp,
) -> Option<String> {
    let name = &c.component.name;
    if let Some(max) = policy.max_for(c.component.kind)
        && cand.update > max
    {
        return Some(format!("{} update; policy allows up to {max}", cand.update));
    }
    if policy.security_only && cand.security.is_none() {
        return Some("not a security update; policy is security-only".to_string());
    }
    if !age_ok(cand.published, now, policy.min_release_age_days) {
        return Some(format!(
            "released less than {} days ago (or date unknown)",
            policy.min_release_age_days.unwrap_or(0)
        ));
    }
    if let Some((_, pin)) = policy.pins.iter().find(|(n, _)| n == name)
        && !pin.matches(&cand.version)
    {
        return Some(format!("outside the pin {pin}"));
    }
    None
}

/// Builds the plan. `now` decides release ages.
pub fn plan(report: &UpdateReport, policy: &Policy, now: Timestamp) -> UpdatePlan {
    let mut drafts: Vec<Draft> = Vec::new();
    let mut unreachable: Vec<Unreachable> = Vec::new();
    let mut k3s_now: Option<Version> = None;
    let has_longhorn = report
        .components
        .iter()
        .any(|c| c.component.kind == ComponentKind::Longhorn);

    for c in &report.components {
        if policy.ignore.contains(&c.component.name) {
            continue;
        }
        let Some(current) = c.current.as_ref().map(|cur| cur.version.clone()) else {
            continue;
        };
        match c.component.kind {
            ComponentKind::K3s | ComponentKind::Longhorn | ComponentKind::Flux => {
                if c.component.kind == ComponentKind::K3s {
                    k3s_now = Some(current.without_build());
                }
                let mut prev: Option<usize> = None;
                for hop in &c.path {
                    let blocked: Vec<Finding> = hop.blockers.clone();
                    let cand = c.candidates.iter().find(|x| x.version == hop.to);
                    let refusal = cand
                        .and_then(|x| policy_refusal(c, x, policy, now))
                        .or_else(|| {
                            policy
                                .max_for(c.component.kind)
                                .filter(|max| hop.update > *max)
                                .map(|max| {
                                    format!("{} update; policy allows up to {max}", hop.update)
                                })
                        });
                    if !blocked.is_empty() || refusal.is_some() {
                        let mut why = blocked;
                        if let Some(r) = refusal {
                            why.push(finding("policy", r));
                        }
                        unreachable.push(Unreachable {
                            component: c.component.clone(),
                            version: hop.to.clone(),
                            why,
                        });
                        // Later hops cannot skip this one.
                        break;
                    }
                    let one_way = match c.component.kind {
                        // k3s and Longhorn refuse downgrades; a Flux minor
                        // moves CRD storage versions.
                        ComponentKind::K3s | ComponentKind::Longhorn => true,
                        _ => hop.update != UpdateType::Patch,
                    };
                    let idx = drafts.len();
                    drafts.push(Draft {
                        component: c.component.clone(),
                        from: hop.from.clone(),
                        to: hop.to.clone(),
                        update: hop.update,
                        reason: format!(
                            "{} hop {} -> {} ({} update{})",
                            c.component.kind,
                            hop.from,
                            hop.to,
                            hop.update,
                            if hop.security.is_some() {
                                ", security fixes"
                            } else {
                                ""
                            }
                        ),
                        reversibility: if one_way {
                            Reversibility::RestorePointOnly
                        } else {
                            Reversibility::Revert
                        },
                        needs_kubernetes: hop.requires.as_ref().and_then(|r| r.kubernetes.clone()),
                        brings_kubernetes: (c.component.kind == ComponentKind::K3s)
                            .then(|| hop.to.without_build()),
                        after: prev,
                        depends: Vec::new(),
                    });
                    prev = Some(idx);
                }
            }
            // The Longhorn HelmRelease is Longhorn itself: detect-longhorn
            // plans it one minor per step, and a chart step would jump.
            ComponentKind::Chart if has_longhorn && is_longhorn_chart(&c.component) => {
                if let Some(newest) = c.candidates.iter().find(|x| !x.prerelease) {
                    unreachable.push(Unreachable {
                        component: c.component.clone(),
                        version: newest.version.clone(),
                        why: vec![Finding {
                            severity: Severity::Info,
                            code: "planned-as-longhorn".to_string(),
                            message: SafeText::new(
                                "the Longhorn chart moves with the Longhorn component, one minor per step",
                            ),
                            locations: Vec::new(),
                        }],
                    });
                }
            }
            ComponentKind::Chart => {
                let mut refusals = Vec::new();
                let chosen = c.candidates.iter().filter(|x| !x.prerelease).find(|x| {
                    if x.version <= current {
                        return false;
                    }
                    if !x.allowed
                        && c.current
                            .as_ref()
                            .and_then(|cur| cur.constraint.as_ref())
                            .is_some_and(|k| k.exact().is_none())
                    {
                        // A range the operator wrote: leave moves outside it to them.
                        refusals.push(finding(
                            "outside-range",
                            format!("{} is outside the HelmRelease's range", x.version),
                        ));
                        return false;
                    }
                    match policy_refusal(c, x, policy, now) {
                        Some(r) => {
                            refusals.push(finding("policy", format!("{}: {r}", x.version)));
                            false
                        }
                        None => true,
                    }
                });
                // The newest candidate, when it is not what we chose, is
                // listed with why it was left out.
                if let Some(newest) = c.candidates.iter().find(|x| !x.prerelease)
                    && !refusals.is_empty()
                    && chosen.is_none_or(|ch| ch.version < newest.version)
                {
                    unreachable.push(Unreachable {
                        component: c.component.clone(),
                        version: newest.version.clone(),
                        why: refusals,
                    });
                }
                if let Some(x) = chosen {
                    drafts.push(Draft {
                        component: c.component.clone(),
                        from: current.clone(),
                        to: x.version.clone(),
                        update: x.update,
                        reason: format!(
                            "chart {} -> {} ({} update{})",
                            current,
                            x.version,
                            x.update,
                            if x.security.is_some() {
                                ", security fixes"
                            } else {
                                ""
                            }
                        ),
                        reversibility: Reversibility::Revert,
                        needs_kubernetes: x.requires.as_ref().and_then(|r| r.kubernetes.clone()),
                        brings_kubernetes: None,
                        after: None,
                        depends: c.depends_on.clone(),
                    });
                }
            }
        }
    }

    // Tie Kubernetes requirements to the k3s hop that satisfies them.
    let k3s_hops: Vec<usize> = (0..drafts.len())
        .filter(|&i| drafts[i].brings_kubernetes.is_some())
        .collect();
    let mut kept: Vec<bool> = vec![true; drafts.len()];
    let mut extra_after: Vec<Option<usize>> = vec![None; drafts.len()];
    for i in 0..drafts.len() {
        let Some(need) = drafts[i].needs_kubernetes.clone() else {
            continue;
        };
        // Kubernetes constraints are written with `-0` to admit k3s builds.
        let ok_now = k3s_now.as_ref().is_none_or(|k| need.matches_with(k, true));
        if ok_now {
            continue;
        }
        match k3s_hops.iter().find(|&&h| {
            drafts[h]
                .brings_kubernetes
                .as_ref()
                .is_some_and(|k| need.matches_with(k, true))
        }) {
            Some(&h) => extra_after[i] = Some(h),
            None => {
                kept[i] = false;
                unreachable.push(Unreachable {
                    component: drafts[i].component.clone(),
                    version: drafts[i].to.clone(),
                    why: vec![finding(
                        "kubernetes-version",
                        format!(
                            "needs Kubernetes {need}; no planned k3s hop brings it (cluster runs {})",
                            k3s_now.as_ref().map(|k| k.to_string()).unwrap_or_else(|| "unknown".into())
                        ),
                    )],
                });
            }
        }
    }
    // A chart that Flux applies after another planned chart (its
    // HelmRelease, or the Kustomization that applies it, dependsOn the
    // other's) goes after it: the dependency updated and Ready first.
    let chart_key = |d: &Draft| {
        (d.component.kind == ComponentKind::Chart).then(|| {
            format!(
                "{}/{}",
                d.component.namespace.as_deref().unwrap_or(""),
                d.component.name
            )
        })
    };
    let deps: Vec<Vec<usize>> = drafts
        .iter()
        .map(|d| {
            d.depends
                .iter()
                .filter_map(|want| {
                    (0..drafts.len()).find(|&j| chart_key(&drafts[j]).as_deref() == Some(want))
                })
                .collect()
        })
        .collect();
    let before = |i: usize| -> Vec<usize> {
        [drafts[i].after, extra_after[i]]
            .into_iter()
            .flatten()
            .chain(deps[i].iter().copied())
            .collect()
    };
    // A step after a dropped step is dropped too.
    loop {
        let mut changed = false;
        for i in 0..drafts.len() {
            if kept[i] && before(i).iter().any(|&d| !kept[d]) {
                kept[i] = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    // Stable topological order: among ready steps, lowest priority first,
    // then the order the report listed them.
    let mut order: Vec<usize> = Vec::new();
    let mut placed = vec![false; drafts.len()];
    loop {
        let next = (0..drafts.len())
            .filter(|&i| kept[i] && !placed[i])
            .filter(|&i| before(i).iter().all(|&d| placed[d]))
            .min_by_key(|&i| (priority(drafts[i].component.kind), i));
        match next {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => break,
        }
    }
    // What could not be placed waits on itself (a dependsOn cycle): said, not dropped silently.
    for i in (0..drafts.len()).filter(|&i| kept[i] && !placed[i]) {
        unreachable.push(Unreachable {
            component: drafts[i].component.clone(),
            version: drafts[i].to.clone(),
            why: vec![finding(
                "dependency-cycle",
                "its dependsOn (its HelmRelease's, or its Kustomization's) leads back to itself; fix spec.dependsOn".to_string(),
            )],
        });
    }
    let position = |d: usize| order.iter().position(|&o| o == d).map(|p| p + 1);
    let mut steps: Vec<PlanStep> = order
        .iter()
        .enumerate()
        .map(|(pos, &i)| {
            let d = &drafts[i];
            let depends_on: Vec<usize> = before(i).iter().filter_map(|&x| position(x)).collect();
            let mut reason = d.reason.clone();
            for &j in &deps[i] {
                reason.push_str(&format!(
                    "; after {} because Flux applies it first (dependsOn)",
                    drafts[j].component
                ));
            }
            if let Some(h) = extra_after[i] {
                reason.push_str(&format!(
                    "; after the k3s hop to {} because it needs Kubernetes {}",
                    drafts[h].to,
                    d.needs_kubernetes
                        .as_ref()
                        .map(|c| c.to_string())
                        .unwrap_or_default()
                ));
            }
            PlanStep {
                index: pos + 1,
                component: d.component.clone(),
                from: d.from.clone(),
                to: d.to.clone(),
                update: d.update,
                reason: SafeText::new(&reason),
                reversibility: d.reversibility,
                depends_on,
                blocks: Vec::new(),
                touches: Vec::new(),
            }
        })
        .collect();
    for i in 0..steps.len() {
        let me = steps[i].index;
        let blocks: Vec<usize> = steps
            .iter()
            .filter(|s| s.depends_on.contains(&me))
            .map(|s| s.index)
            .collect();
        steps[i].blocks = blocks;
    }
    UpdatePlan {
        api_version: ApiVersion,
        kind: kind::UpdatePlan,
        created_at: now,
        steps,
        unreachable,
    }
}
