//! Planning the sample report: order, dependencies, refusals.

use std::path::PathBuf;

use upkeep_contract::{
    ComponentKind, ComponentUpdates, Constraint, Reversibility, Timestamp, UpdatePlan, UpdateType,
    read_kind,
};
use upkeep_plan::{Policy, plan};

fn sample() -> Vec<ComponentUpdates> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/reports/sample-updates.jsonl");
    read_kind(&std::fs::read(&p).unwrap(), "sample").unwrap()
}

fn now() -> Timestamp {
    Timestamp::parse("2026-11-28T04:00:00Z").unwrap()
}

fn run(docs: Vec<ComponentUpdates>, policy: &Policy) -> UpdatePlan {
    plan(&upkeep_report::merge(docs, now()), policy, now())
}

fn steps(p: &UpdatePlan) -> Vec<String> {
    p.steps
        .iter()
        .map(|s| format!("{} {}->{}", s.component.name, s.from, s.to))
        .collect()
}

#[test]
fn sample_plan_orders_platform_then_charts() {
    let p = run(sample(), &Policy::default());
    assert_eq!(
        steps(&p),
        [
            "flux v2.5.1->v2.6.4",
            "k3s v1.30.6+k3s1->v1.30.8+k3s1",
            "k3s v1.30.8+k3s1->v1.31.4+k3s1",
            "ingress-nginx 4.12.0->4.13.1",
            "home-assistant 0.13.2->0.13.4",
            "cert-manager v1.16.2->v1.16.3",
        ]
    );
    // k3s hops are chained and one-way; chart steps can be reverted.
    assert_eq!(p.steps[2].depends_on, vec![2]);
    assert_eq!(p.steps[1].blocks, vec![3]);
    assert_eq!(p.steps[1].reversibility, Reversibility::RestorePointOnly);
    assert_eq!(p.steps[3].reversibility, Reversibility::Revert);
    // The blocked Flux hop is listed with the objects to migrate first.
    let flux = p
        .unreachable
        .iter()
        .find(|u| u.component.name == "flux")
        .unwrap();
    assert_eq!(flux.version.to_string(), "v2.7.0");
    assert_eq!(flux.why[0].code, "removed-api");
    assert!(
        flux.why[0].locations[0]
            .to_string()
            .contains("helm-release.yaml:2")
    );
    // Moves outside a range the operator wrote are left to them, with why.
    let ha = p
        .unreachable
        .iter()
        .find(|u| u.component.name == "home-assistant")
        .unwrap();
    assert_eq!(ha.why[0].code, "outside-range");
}

#[test]
fn chart_needing_newer_kubernetes_waits_for_the_k3s_hop() {
    let mut docs = sample();
    let nginx = docs
        .iter_mut()
        .find(|d| d.component.name == "ingress-nginx")
        .unwrap();
    nginx.candidates[0].requires.as_mut().unwrap().kubernetes =
        Some(Constraint::parse(">=1.31.0-0").unwrap());
    let p = run(docs, &Policy::default());
    let pos = |name: &str, to: &str| {
        p.steps
            .iter()
            .find(|s| s.component.name == name && s.to.to_string() == to)
            .unwrap()
            .index
    };
    let hop = pos("k3s", "v1.31.4+k3s1");
    let chart = pos("ingress-nginx", "4.13.1");
    assert!(chart > hop, "{:?}", steps(&p));
    let step = &p.steps[chart - 1];
    assert!(step.depends_on.contains(&hop));
    assert!(
        step.reason
            .as_str()
            .contains("after the k3s hop to v1.31.4+k3s1"),
        "{}",
        step.reason
    );

    // A requirement no planned hop meets makes the chart unreachable.
    let mut docs = sample();
    let nginx = docs
        .iter_mut()
        .find(|d| d.component.name == "ingress-nginx")
        .unwrap();
    nginx.candidates[0].requires.as_mut().unwrap().kubernetes =
        Some(Constraint::parse(">=1.35.0-0").unwrap());
    let p = run(docs, &Policy::default());
    assert!(!steps(&p).iter().any(|s| s.starts_with("ingress-nginx")));
    let u = p
        .unreachable
        .iter()
        .find(|u| u.component.name == "ingress-nginx")
        .unwrap();
    assert_eq!(u.why[0].code, "kubernetes-version");
    assert!(
        u.why[0].message.as_str().contains("cluster runs v1.30.6"),
        "{}",
        u.why[0].message
    );
}

#[test]
fn policy_limits_are_honoured() {
    // Patch only for charts and k3s: the minor k3s hop and everything after it wait.
    let policy = Policy {
        max_update: vec![
            (ComponentKind::K3s, UpdateType::Patch),
            (ComponentKind::Chart, UpdateType::Patch),
        ],
        ignore: ["flux".to_string()].into_iter().collect(),
        ..Default::default()
    };
    let p = run(sample(), &policy);
    assert_eq!(
        steps(&p),
        [
            "k3s v1.30.6+k3s1->v1.30.8+k3s1",
            "home-assistant 0.13.2->0.13.4",
            "cert-manager v1.16.2->v1.16.3",
        ]
    );
    assert!(
        p.unreachable
            .iter()
            .any(|u| u.component.name == "k3s" && u.why[0].code == "policy")
    );

    // Security only: just the fixes that carry CVEs.
    let p = run(
        sample(),
        &Policy {
            security_only: true,
            ..Default::default()
        },
    );
    assert!(
        steps(&p).contains(&"ingress-nginx 4.12.0->4.13.1".to_string()),
        "{:?}",
        steps(&p)
    );
    assert!(!steps(&p).iter().any(|s| s.starts_with("cert-manager")));

    // Minimum release age: ingress-nginx 4.13.1 (2026-10-02) is too young at 90 days.
    let p = run(
        sample(),
        &Policy {
            min_release_age_days: Some(90),
            ..Default::default()
        },
    );
    assert!(
        !steps(&p).iter().any(|s| s.starts_with("ingress-nginx")),
        "{:?}",
        steps(&p)
    );

    // A pin keeps a chart inside it.
    let p = run(
        sample(),
        &Policy {
            pins: vec![(
                "cert-manager".into(),
                Constraint::parse("<=v1.16.2").unwrap(),
            )],
            ..Default::default()
        },
    );
    assert!(!steps(&p).iter().any(|s| s.starts_with("cert-manager")));
}

/// The Longhorn HelmRelease shows up twice in a report (as Longhorn and as
/// a chart); the plan moves it once, one minor per step, as Longhorn.
#[test]
fn the_longhorn_chart_is_planned_as_longhorn_not_as_a_chart() {
    let mut docs = sample();
    assert!(
        docs.iter()
            .any(|d| d.component.kind == ComponentKind::Longhorn),
        "the sample has Longhorn"
    );
    let mut chart = docs
        .iter()
        .find(|d| d.component.kind == ComponentKind::Chart)
        .unwrap()
        .clone();
    chart.component.name = "longhorn".into();
    chart.component.namespace = Some("longhorn-system".into());
    if let Some(s) = chart.component.source.as_mut() {
        s.chart = Some("longhorn".into());
    }
    docs.push(chart);
    let p = run(docs, &Policy::default());
    assert!(
        p.steps
            .iter()
            .all(|s| !(s.component.kind == ComponentKind::Chart && s.component.name == "longhorn")),
        "{:?}",
        steps(&p)
    );
    let u = p
        .unreachable
        .iter()
        .find(|u| u.component.name == "longhorn" && u.component.kind == ComponentKind::Chart)
        .expect("the chart is listed as not planned");
    assert_eq!(u.why[0].code, "planned-as-longhorn");
}

/// A HelmRelease that dependsOn another goes after it in the plan, as Flux
/// installs them; a dependsOn cycle is reported, not dropped in silence.
#[test]
fn charts_follow_their_helmreleases_depends_on() {
    let chart = |name: &str, deps: &[&str]| {
        let mut d = sample()
            .into_iter()
            .find(|d| d.component.kind == ComponentKind::Chart && !d.candidates.is_empty())
            .unwrap();
        d.component.name = name.into();
        d.component.namespace = Some("apps".into());
        d.depends_on = deps.iter().map(|s| s.to_string()).collect();
        d
    };
    let p = run(
        vec![chart("web", &["apps/db"]), chart("db", &[])],
        &Policy::default(),
    );
    let names: Vec<&str> = p.steps.iter().map(|s| s.component.name.as_str()).collect();
    assert_eq!(names, ["db", "web"]);
    assert_eq!(p.steps[1].depends_on, [1]);
    assert_eq!(p.steps[0].blocks, [2]);
    assert!(
        p.steps[1]
            .reason
            .as_str()
            .contains("after apps/db because Flux applies it first (dependsOn)"),
        "{}",
        p.steps[1].reason
    );
    let p = run(
        vec![chart("a", &["apps/b"]), chart("b", &["apps/a"])],
        &Policy::default(),
    );
    assert!(p.steps.is_empty());
    assert_eq!(p.unreachable.len(), 2);
    assert!(
        p.unreachable
            .iter()
            .all(|u| u.why[0].code == "dependency-cycle")
    );
}
