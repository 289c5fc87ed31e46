//! `validate-flux`: is Flux itself well, and has it applied what Git says?
//!
//! `flux check` looks at the controllers only; kubectl hides a
//! HelmRelease's Stalled condition. These checks look at every source,
//! Kustomization and HelmRelease: Ready and reconciled since the last
//! change, not Stalled, each Kustomization at its source's revision, each
//! HelmRelease at the chart version its spec asks for.

use std::time::Instant;

use serde_json::Value;
use upkeep_contract::{CheckStatus, ObjectRef};
use upkeep_version::{Constraint, Version};

use crate::{Checks, Objects, condition, display, int_at, str_at};

/// What `validate-flux` lists.
pub const KINDS: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("source.toolkit.fluxcd.io", "GitRepository"),
    ("source.toolkit.fluxcd.io", "OCIRepository"),
    ("source.toolkit.fluxcd.io", "HelmRepository"),
    ("source.toolkit.fluxcd.io", "Bucket"),
    ("kustomize.toolkit.fluxcd.io", "Kustomization"),
    ("helm.toolkit.fluxcd.io", "HelmRelease"),
];

const SOURCES: &[&str] = &["GitRepository", "OCIRepository", "HelmRepository", "Bucket"];

/// Options of the Flux checks.
#[derive(Debug, Clone)]
pub struct FluxOptions {
    /// Where the controllers run.
    pub namespace: String,
    /// A suspended object passes instead of warning.
    pub allow_suspended: bool,
}

impl Default for FluxOptions {
    fn default() -> Self {
        FluxOptions {
            namespace: "flux-system".to_string(),
            allow_suspended: false,
        }
    }
}

pub fn check(objects: &Objects, opts: &FluxOptions) -> Checks {
    let mut out = Checks::default();
    controllers(objects, opts, &mut out);
    for kind in SOURCES {
        for o in objects.of_kind("source.toolkit.fluxcd.io", kind) {
            ready(o, opts, &mut out);
        }
    }
    for o in objects.of_kind("kustomize.toolkit.fluxcd.io", "Kustomization") {
        ready(o, opts, &mut out);
        revision(o, objects, &mut out);
    }
    for o in objects.of_kind("helm.toolkit.fluxcd.io", "HelmRelease") {
        ready(o, opts, &mut out);
        chart_version(o, &mut out);
    }
    for kind in &objects.not_served {
        if kind.contains("fluxcd.io") {
            out.not_run(
                "flux/ready",
                &format!("{kind} is not served: that Flux API is not installed"),
            );
        }
    }
    out
}

fn controllers(objects: &Objects, opts: &FluxOptions, out: &mut Checks) {
    let start = Instant::now();
    let deployments: Vec<&Value> = objects
        .of_kind("apps", "Deployment")
        .filter(|d| str_at(d, "/metadata/namespace") == Some(opts.namespace.as_str()))
        .filter(|d| {
            d.pointer("/metadata/labels/app.kubernetes.io~1part-of")
                .and_then(Value::as_str)
                == Some("flux")
                || str_at(d, "/metadata/name").is_some_and(|n| n.ends_with("-controller"))
        })
        .collect();
    if deployments.is_empty() {
        out.not_run(
            "flux/controllers-available",
            &format!(
                "no Flux controller Deployment in namespace {}",
                opts.namespace
            ),
        );
        return;
    }
    for d in deployments {
        let want = int_at(d, "/spec/replicas").unwrap_or(1);
        let have = int_at(d, "/status/availableReplicas").unwrap_or(0);
        let (status, detail) = if have >= want {
            (
                CheckStatus::Pass,
                format!("{}: {have}/{want} available", display(d)),
            )
        } else {
            (
                CheckStatus::Fail,
                format!(
                    "{}: {have}/{want} available; `kubectl -n {} describe deployment {}` says why",
                    display(d),
                    opts.namespace,
                    str_at(d, "/metadata/name").unwrap_or_default()
                ),
            )
        };
        out.push(
            "flux/controllers-available",
            status,
            &detail,
            vec![ObjectRef::of(d)],
            start,
        );
    }
}

fn check_name(o: &Value) -> String {
    format!(
        "flux/{}-ready",
        str_at(o, "/kind").unwrap_or("object").to_ascii_lowercase()
    )
}

/// Ready, reconciled since the last change, not Stalled, not suspended.
fn ready(o: &Value, opts: &FluxOptions, out: &mut Checks) {
    let start = Instant::now();
    let name = check_name(o);
    let who = format!("{} {}", str_at(o, "/kind").unwrap_or(""), display(o));
    let refs = vec![ObjectRef::of(o)];
    if o.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        let status = if opts.allow_suspended {
            CheckStatus::Pass
        } else {
            CheckStatus::Warn
        };
        out.push(
            &name,
            status,
            &format!("{who} is suspended: Flux does not reconcile it"),
            refs,
            start,
        );
        return;
    }
    // An OCI HelmRepository is not reconciled (Flux 2.1+): it has no Ready to look at.
    if str_at(o, "/kind") == Some("HelmRepository")
        && str_at(o, "/spec/type") == Some("oci")
        && condition(o, "Ready").is_none()
    {
        out.push(
            &name,
            CheckStatus::Pass,
            &format!("{who}: OCI repository, nothing to reconcile"),
            refs,
            start,
        );
        return;
    }
    if let Some(("True", reason, message)) = condition(o, "Stalled") {
        out.push(
            &name,
            CheckStatus::Fail,
            &format!("{who} is Stalled ({reason}): {message}"),
            refs,
            start,
        );
        return;
    }
    let (status, detail) = match condition(o, "Ready") {
        Some(("True", _, _)) => {
            let generation = int_at(o, "/metadata/generation");
            let observed = int_at(o, "/status/observedGeneration");
            match (generation, observed) {
                (Some(g), Some(seen)) if seen < g => (
                    CheckStatus::Fail,
                    format!(
                        "{who} is Ready but has not reconciled its latest change (generation {g}, observed {seen})"
                    ),
                ),
                _ => (CheckStatus::Pass, format!("{who} is Ready")),
            }
        }
        Some((status, reason, message)) => (
            CheckStatus::Fail,
            format!("{who} is not Ready ({status}, {reason}): {message}"),
        ),
        None => (
            CheckStatus::Fail,
            format!("{who} has no Ready condition: it has never been reconciled"),
        ),
    };
    out.push(&name, status, &detail, refs, start);
}

/// A Kustomization's lastAppliedRevision is its source's artifact revision.
fn revision(k: &Value, objects: &Objects, out: &mut Checks) {
    let start = Instant::now();
    let name = "flux/kustomization-revision";
    let source_kind = str_at(k, "/spec/sourceRef/kind").unwrap_or("GitRepository");
    let source_name = str_at(k, "/spec/sourceRef/name").unwrap_or_default();
    let source_ns = str_at(k, "/spec/sourceRef/namespace")
        .or_else(|| str_at(k, "/metadata/namespace"))
        .unwrap_or_default();
    let source = objects
        .of_kind("source.toolkit.fluxcd.io", source_kind)
        .find(|s| {
            str_at(s, "/metadata/name") == Some(source_name)
                && str_at(s, "/metadata/namespace") == Some(source_ns)
        });
    let who = format!("Kustomization {}", display(k));
    let Some(source) = source else {
        out.push(
            name,
            CheckStatus::Fail,
            &format!("{who}: its source {source_kind} {source_ns}/{source_name} does not exist"),
            vec![ObjectRef::of(k)],
            start,
        );
        return;
    };
    let refs = vec![ObjectRef::of(k), ObjectRef::of(source)];
    let applied = str_at(k, "/status/lastAppliedRevision");
    let artifact = str_at(source, "/status/artifact/revision");
    let suspended = k.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
    let (status, detail) = match (applied, artifact) {
        (Some(a), Some(s)) if a == s => (CheckStatus::Pass, format!("{who} applied {a}")),
        // Suspended (by the operator, or by upkeep's maintenance freeze for the
        // objects a step does not touch), it is meant to stay where it is.
        (Some(a), Some(s)) if suspended => (
            CheckStatus::Warn,
            format!("{who} is suspended at {a}; its source has {s}: it catches up when resumed"),
        ),
        (Some(a), Some(s)) => (
            CheckStatus::Fail,
            format!("{who} applied {a} but its source has {s}: it is behind Git"),
        ),
        (None, Some(s)) => (
            CheckStatus::Fail,
            format!("{who} has applied nothing yet; its source has {s}"),
        ),
        (_, None) => (
            CheckStatus::Warn,
            format!(
                "{who}: its source {source_kind} {source_ns}/{source_name} has no artifact yet"
            ),
        ),
    };
    out.push(name, status, &detail, refs, start);
}

/// The installed chart version (status.history[0]) is what the spec asks for.
fn chart_version(hr: &Value, out: &mut Checks) {
    let start = Instant::now();
    let name = "flux/helmrelease-version";
    let who = format!("HelmRelease {}", display(hr));
    let Some(wanted) = str_at(hr, "/spec/chart/spec/version") else {
        return; // chartRef or no version: the source decides, nothing to compare.
    };
    let installed = str_at(hr, "/status/history/0/chartVersion")
        .or_else(|| str_at(hr, "/status/lastAppliedRevision"));
    let refs = vec![ObjectRef::of(hr)];
    let Some(installed) = installed else {
        out.push(
            name,
            CheckStatus::Fail,
            &format!("{who}: nothing installed yet (wants {wanted})"),
            refs,
            start,
        );
        return;
    };
    let verdict = match (Constraint::parse(wanted), Version::parse(installed)) {
        (Ok(c), Ok(v)) => Some(c.matches_with(&v, true)),
        _ => None,
    };
    let (status, detail) = match verdict {
        Some(true) => (
            CheckStatus::Pass,
            format!("{who}: {installed} installed, as {wanted} asks"),
        ),
        Some(false) => (
            CheckStatus::Fail,
            format!("{who}: {installed} installed, but the spec asks for {wanted}"),
        ),
        None => (
            CheckStatus::Warn,
            format!("{who}: cannot compare installed {installed:?} with {wanted:?}"),
        ),
    };
    out.push(name, status, &detail, refs, start);
}

/// The annotation `flux reconcile` sets, and the status field that echoes it.
const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

/// `--reconcile`: asks every selected Kustomization and HelmRelease to
/// reconcile now (as `flux reconcile` does) and waits, within `within`,
/// until each has handled the request, so the checks that follow see the
/// state after a fresh reconcile rather than one from minutes ago. Each
/// object is a check: handled in time, or not.
pub async fn reconcile(
    cluster: &upkeep_kube::Cluster,
    sel: &crate::Selection,
    within: std::time::Duration,
    out: &mut Checks,
) -> Result<(), crate::ValidateError> {
    use upkeep_kube::{ClusterRead, ResourceRef, Until};
    let token = jiff::Timestamp::now().to_string();
    let kinds = [
        ("kustomize.toolkit.fluxcd.io", "Kustomization"),
        ("helm.toolkit.fluxcd.io", "HelmRelease"),
    ];
    let objects = Objects::read(cluster, &kinds, sel).await?;
    let mut asked = Vec::new();
    for (group, kind) in kinds {
        let Ok(res) = cluster.resource(&ResourceRef::preferred(group, kind)).await else {
            continue;
        };
        for o in objects.of_kind(group, kind) {
            if o.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let ns = str_at(o, "/metadata/namespace").map(str::to_string);
            let name = str_at(o, "/metadata/name").unwrap_or_default().to_string();
            let patch = serde_json::json!({"metadata": {"annotations": {REQUESTED_AT: token}}});
            cluster
                .patch_merge(&res, ns.as_deref(), &name, &patch)
                .await?;
            asked.push((res.clone(), ns, name, ObjectRef::of(o)));
        }
    }
    let deadline = Instant::now() + within;
    for (res, ns, name, r) in asked {
        let start = Instant::now();
        // Past the shared deadline each object still gets one short look.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(std::time::Duration::from_secs(1));
        let wanted = token.clone();
        let until = Until::custom(
            "status.lastHandledReconcileAt echoes the request",
            move |o| {
                o.data
                    .pointer("/status/lastHandledReconcileAt")
                    .and_then(Value::as_str)
                    == Some(wanted.as_str())
            },
        );
        let who = format!(
            "{} {}",
            r.kind,
            match &ns {
                Some(n) => format!("{n}/{name}"),
                None => name.clone(),
            }
        );
        match cluster.wait_for(&res, ns.as_deref(), &name, &until, left).await {
            Ok(_) => out.push("flux/reconcile", CheckStatus::Pass, &format!("{who} reconciled on request"), vec![r], start),
            Err(e) if e.is_environment() && !matches!(e, upkeep_kube::KubeError::WaitTimeout { .. }) => {
                return Err(e.into());
            }
            Err(e) => out.push(
                "flux/reconcile",
                CheckStatus::Fail,
                &match e {
                    upkeep_kube::KubeError::WaitTimeout { .. } => format!(
                        "{who} did not handle the reconcile request within {}s: is its controller running?",
                        within.as_secs()
                    ),
                    e => format!("{who}: {e}"),
                },
                vec![r],
                start,
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(items: Vec<Value>) -> Vec<(String, CheckStatus, String)> {
        check(&Objects::from_values(items), &FluxOptions::default())
            .checks
            .into_iter()
            .map(|c| (c.name, c.status, c.detail.to_string()))
            .collect()
    }

    fn hr(version: &str, installed: &str, conditions: Value) -> Value {
        json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "podinfo", "namespace": "apps", "generation": 2},
            "spec": {"chart": {"spec": {"chart": "podinfo", "version": version}}},
            "status": {"observedGeneration": 2, "conditions": conditions,
                "history": [{"chartVersion": installed}]}})
    }

    #[test]
    fn a_healthy_release_passes_and_a_stalled_one_fails() {
        let ok = hr("6.x", "6.7.0", json!([{"type": "Ready", "status": "True"}]));
        let got = run(vec![ok]);
        assert!(got.iter().all(|c| c.1 == CheckStatus::Pass), "{got:?}");
        let stalled = hr(
            "6.x",
            "6.7.0",
            json!([{"type": "Ready", "status": "False", "reason": "InstallFailed", "message": "timed out"},
                   {"type": "Stalled", "status": "True", "reason": "RetriesExceeded", "message": "gave up"}]),
        );
        let got = run(vec![stalled]);
        let ready = got
            .iter()
            .find(|c| c.0 == "flux/helmrelease-ready")
            .unwrap();
        assert_eq!(ready.1, CheckStatus::Fail);
        assert!(
            ready.2.contains("Stalled (RetriesExceeded): gave up"),
            "{}",
            ready.2
        );
    }

    #[test]
    fn wrong_version_unreconciled_change_and_suspension() {
        let got = run(vec![hr(
            "7.x",
            "6.7.0",
            json!([{"type": "Ready", "status": "True"}]),
        )]);
        let v = got
            .iter()
            .find(|c| c.0 == "flux/helmrelease-version")
            .unwrap();
        assert_eq!(v.1, CheckStatus::Fail);
        let mut behind = hr("6.x", "6.7.0", json!([{"type": "Ready", "status": "True"}]));
        behind["metadata"]["generation"] = json!(3);
        let got = run(vec![behind]);
        assert!(
            got.iter()
                .any(|c| c.1 == CheckStatus::Fail && c.2.contains("generation 3, observed 2"))
        );
        let mut suspended = hr("6.x", "6.7.0", json!([]));
        suspended["spec"]["suspend"] = json!(true);
        assert_eq!(run(vec![suspended.clone()])[0].1, CheckStatus::Warn);
        let allowed = check(
            &Objects::from_values(vec![suspended]),
            &FluxOptions {
                allow_suspended: true,
                ..FluxOptions::default()
            },
        );
        assert_eq!(allowed.checks[0].status, CheckStatus::Pass);
    }

    #[test]
    fn a_kustomization_behind_its_source_fails() {
        let git = json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "flux-system", "namespace": "flux-system"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "artifact": {"revision": "main@sha1:new"}}});
        let ks = |applied: &str| {
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": "flux-system"},
            "spec": {"sourceRef": {"kind": "GitRepository", "name": "flux-system"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "lastAppliedRevision": applied}})
        };
        let got = run(vec![git.clone(), ks("main@sha1:old")]);
        let r = got
            .iter()
            .find(|c| c.0 == "flux/kustomization-revision")
            .unwrap();
        assert_eq!(r.1, CheckStatus::Fail);
        assert!(
            r.2.contains("applied main@sha1:old but its source has main@sha1:new"),
            "{}",
            r.2
        );
        let got = run(vec![git.clone(), ks("main@sha1:new")]);
        assert!(got.iter().all(|c| c.1 == CheckStatus::Pass), "{got:?}");
        // Suspended (the maintenance freeze suspends what a step does not
        // touch), being behind is expected: a warning, not a regression.
        let mut frozen = ks("main@sha1:old");
        frozen["spec"]["suspend"] = json!(true);
        let got = run(vec![git, frozen]);
        let r = got
            .iter()
            .find(|c| c.0 == "flux/kustomization-revision")
            .unwrap();
        assert_eq!(r.1, CheckStatus::Warn, "{}", r.2);
        assert!(r.2.contains("catches up when resumed"), "{}", r.2);
    }

    #[test]
    fn controllers_must_be_available() {
        let d = |avail: i64| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "helm-controller", "namespace": "flux-system"},
            "spec": {"replicas": 1}, "status": {"availableReplicas": avail}})
        };
        assert_eq!(run(vec![d(1)])[0].1, CheckStatus::Pass);
        assert_eq!(run(vec![d(0)])[0].1, CheckStatus::Fail);
        let none = check(&Objects::from_values(vec![]), &FluxOptions::default());
        assert_eq!(none.not_run[0].name, "flux/controllers-available");
    }
}
