//! Maintenance mode: while a run works, nothing else changes the cluster
//! under it. A ValidatingAdmissionPolicy (and its Binding) refuses spec
//! changes to workloads and Flux objects, except from Flux's own
//! controllers, the cluster's, upkeep's identity and a break-glass group;
//! the Flux Kustomizations and HelmReleases the run does not touch are
//! suspended, and only those are resumed after; a ConfigMap
//! `kube-system/upkeep-maintenance` announces the window and records what
//! was suspended, so `off` — even from another process after a crash —
//! puts back exactly what `on` changed.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use upkeep_contract::{ComponentKind, PlanStep};
use upkeep_kube::{ApplyOptions, Cluster, ClusterRead, ListOptions, Resource, ResourceRef};

use crate::{FIELD_MANAGER, RunError};

pub const CONFIGMAP: &str = "upkeep-maintenance";
pub const NAMESPACE: &str = "kube-system";
pub const POLICY: &str = "upkeep-maintenance-freeze";
/// Members of this group may change specs during maintenance.
pub const BREAK_GLASS_GROUP: &str = "upkeep:break-glass";

const SUSPENDABLE: &[(&str, &str)] = &[
    ("kustomize.toolkit.fluxcd.io", "Kustomization"),
    ("helm.toolkit.fluxcd.io", "HelmRelease"),
];

/// What `on` recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub reason: String,
    pub started: String,
    pub expected_end: String,
    /// `Kind namespace/name` of every object `on` suspended.
    pub suspended: Vec<String>,
    /// Those of them that said `suspend: false` (the others did not say):
    /// `off` writes back exactly what was there.
    pub were_false: Vec<String>,
}

async fn resource(
    cluster: &Cluster,
    group: &str,
    kind: &str,
) -> Result<Option<Resource>, RunError> {
    match cluster.resource(&ResourceRef::preferred(group, kind)).await {
        Ok(r) => Ok(Some(r)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn list(cluster: &Cluster, res: &Resource) -> Result<Vec<Value>, RunError> {
    Ok(upkeep_kube::list_values(cluster, res, &ListOptions::all_namespaces()).await?)
}

fn s<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

fn key(kind: &str, v: &Value) -> String {
    format!(
        "{kind} {}/{}",
        s(v, "/metadata/namespace").unwrap_or(""),
        s(v, "/metadata/name").unwrap_or("")
    )
}

/// The current state, when maintenance is on.
pub async fn status(cluster: &Cluster) -> Result<Option<State>, RunError> {
    let cm = resource(cluster, "", "ConfigMap")
        .await?
        .ok_or_else(|| RunError::Input("the cluster serves no ConfigMaps".to_string()))?;
    let Some(obj) = cluster.get(&cm, Some(NAMESPACE), CONFIGMAP).await? else {
        return Ok(None);
    };
    let v = upkeep_kube::object_value(&obj, &cm)?;
    let d = |k: &str| s(&v, &format!("/data/{k}")).unwrap_or("").to_string();
    // This is the only record of what to resume: unreadable is an error,
    // never "nothing was suspended".
    let list = |k: &str| -> Result<Vec<String>, RunError> {
        let text = d(k);
        if text.is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_str(&text).map_err(|e| {
            RunError::Input(format!(
                "ConfigMap {NAMESPACE}/{CONFIGMAP} data.{k} is not a JSON list of objects ({e}); fix or delete it by hand"
            ))
        })
    };
    let suspended = list("suspended")?;
    let were_false = list("suspendWasFalse")?;
    Ok(Some(State {
        reason: d("reason"),
        started: d("started"),
        expected_end: d("expectedEnd"),
        suspended,
        were_false,
    }))
}

/// The Flux objects that must keep reconciling for `steps` to go in: the
/// HelmReleases (or Plans) the steps change and, through Flux's
/// `kustomize.toolkit.fluxcd.io/*` labels, every Kustomization that
/// applies them, up to the root.
pub async fn needed(cluster: &Cluster, steps: &[PlanStep]) -> Result<BTreeSet<String>, RunError> {
    let mut anchors: Vec<Value> = Vec::new();
    if let Some(hr) = resource(cluster, "helm.toolkit.fluxcd.io", "HelmRelease").await? {
        for v in list(cluster, &hr).await? {
            let hit = steps
                .iter()
                .any(|st| upkeep_apply::is_helm_release_of(&st.component, &v));
            if hit {
                anchors.push(v);
            }
        }
    }
    if steps
        .iter()
        .any(|st| st.component.kind == ComponentKind::K3s)
        && let Some(plan) = resource(cluster, "upgrade.cattle.io", "Plan").await?
    {
        anchors.extend(list(cluster, &plan).await?);
    }
    let mut keep: BTreeSet<String> = anchors
        .iter()
        .filter(|a| a.get("kind").and_then(Value::as_str) == Some("HelmRelease"))
        .map(|a| key("HelmRelease", a))
        .collect();
    // Climb the Kustomizations that applied each anchor.
    let mut queue: Vec<(String, String)> = anchors
        .iter()
        .filter_map(|a| {
            Some((
                s(a, "/metadata/labels/kustomize.toolkit.fluxcd.io~1namespace")?.to_string(),
                s(a, "/metadata/labels/kustomize.toolkit.fluxcd.io~1name")?.to_string(),
            ))
        })
        .collect();
    let ks_res = resource(cluster, "kustomize.toolkit.fluxcd.io", "Kustomization").await?;
    let all_ks = match &ks_res {
        Some(r) => list(cluster, r).await?,
        None => Vec::new(),
    };
    while let Some((ns, name)) = queue.pop() {
        let k = format!("Kustomization {ns}/{name}");
        if !keep.insert(k) {
            continue;
        }
        if let Some(ks) = all_ks.iter().find(|v| {
            s(v, "/metadata/namespace") == Some(ns.as_str())
                && s(v, "/metadata/name") == Some(name.as_str())
        }) && let (Some(pns), Some(pname)) = (
            s(
                ks,
                "/metadata/labels/kustomize.toolkit.fluxcd.io~1namespace",
            ),
            s(ks, "/metadata/labels/kustomize.toolkit.fluxcd.io~1name"),
        ) {
            queue.push((pns.to_string(), pname.to_string()));
        }
    }
    Ok(keep)
}

fn policy(exempt_user: Option<&str>, reason: &str) -> Value {
    let mut allow = vec![
        "!has(object.spec) || !has(oldObject.spec) || object.spec == oldObject.spec".to_string(),
        "request.userInfo.username.startsWith('system:serviceaccount:flux-system:')".to_string(),
        "request.userInfo.username.startsWith('system:serviceaccount:kube-system:')".to_string(),
        // The control plane's own controllers (not the admin users k3s names system:admin).
        "request.userInfo.username in ['system:kube-controller-manager', 'system:kube-scheduler']"
            .to_string(),
        format!("'{BREAK_GLASS_GROUP}' in request.userInfo.groups"),
    ];
    if let Some(u) = exempt_user {
        allow.push(format!(
            "request.userInfo.username == '{}'",
            u.replace('\'', "")
        ));
    }
    let rule = |groups: &[&str], resources: &[&str]| json!({"apiGroups": groups, "apiVersions": ["*"], "operations": ["UPDATE"], "resources": resources});
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY, "labels": {"app.kubernetes.io/managed-by": "upkeep"}},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [
                rule(&["apps"], &["deployments", "statefulsets", "daemonsets"]),
                rule(&["helm.toolkit.fluxcd.io"], &["helmreleases"]),
                rule(&["kustomize.toolkit.fluxcd.io"], &["kustomizations"]),
            ]},
            "validations": [{
                "expression": allow.join(" || "),
                "message": format!(
                    "upkeep maintenance is on ({}): spec changes to workloads and Flux objects are refused until it ends; members of {BREAK_GLASS_GROUP} may override",
                    reason.replace('"', "'")
                ),
            }],
        }
    })
}

/// Who upkeep is to the API server, when it says (SelfSubjectReview).
async fn whoami(cluster: &Cluster) -> Option<String> {
    let res = resource(cluster, "authentication.k8s.io", "SelfSubjectReview")
        .await
        .ok()??;
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {"name": "upkeep"}});
    let created = cluster
        .create(&res, &body, &ApplyOptions::new(FIELD_MANAGER))
        .await
        .ok()?;
    let v = upkeep_kube::object_value(&created, &res).ok()?;
    s(&v, "/status/userInfo/username").map(str::to_string)
}

/// Turns maintenance on. `keep` are the Flux objects the run needs
/// (see [`needed`]); every other Kustomization and HelmRelease that is not
/// suspended already is suspended. On again with the same reason is a
/// no-op, so a resumed run does not suspend twice.
pub async fn on(
    cluster: &Cluster,
    reason: &str,
    expected_end: jiff::Timestamp,
    keep: &BTreeSet<String>,
) -> Result<State, RunError> {
    if let Some(st) = status(cluster).await? {
        if st.reason == reason {
            return Ok(st);
        }
        return Err(RunError::Busy(format!(
            "maintenance is already on ({}, since {}); `upkeep maintenance off` ends it",
            st.reason, st.started
        )));
    }
    // What to suspend, recorded before anything is suspended: `off` after a
    // crash resumes at most what was going to be suspended, all of which
    // was running before.
    let mut targets: Vec<(Resource, Value, String)> = Vec::new();
    for (group, kind) in SUSPENDABLE {
        let Some(res) = resource(cluster, group, kind).await? else {
            continue;
        };
        for v in list(cluster, &res).await? {
            let k = key(kind, &v);
            if v.pointer("/spec/suspend") == Some(&Value::Bool(true)) || keep.contains(&k) {
                continue;
            }
            targets.push((res.clone(), v, k));
        }
    }
    let state = State {
        reason: reason.to_string(),
        started: jiff::Timestamp::now().to_string(),
        expected_end: expected_end.to_string(),
        suspended: targets.iter().map(|t| t.2.clone()).collect(),
        were_false: targets
            .iter()
            .filter(|t| t.1.pointer("/spec/suspend") == Some(&Value::Bool(false)))
            .map(|t| t.2.clone())
            .collect(),
    };
    let cm = resource(cluster, "", "ConfigMap")
        .await?
        .ok_or_else(|| RunError::Input("the cluster serves no ConfigMaps".to_string()))?;
    let body = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/managed-by": "upkeep"}},
        "data": {
            "reason": state.reason, "started": state.started, "expectedEnd": state.expected_end,
            "suspended": serde_json::to_string(&state.suspended).unwrap_or_default(),
            "suspendWasFalse": serde_json::to_string(&state.were_false).unwrap_or_default(),
        }
    });
    cluster
        .create(&cm, &body, &ApplyOptions::new(FIELD_MANAGER))
        .await?;
    for (res, v, k) in &targets {
        tracing::info!("maintenance: suspending {k}");
        cluster
            .patch_merge(
                res,
                s(v, "/metadata/namespace"),
                s(v, "/metadata/name").unwrap_or(""),
                &json!({"spec": {"suspend": true}}),
            )
            .await?;
    }
    let vap = resource(
        cluster,
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
    )
    .await?;
    let binding = resource(
        cluster,
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    )
    .await?;
    match (vap, binding) {
        (Some(vap), Some(binding)) => {
            let me = whoami(cluster).await;
            if me.is_none() {
                tracing::warn!(
                    "maintenance: the cluster did not say who upkeep is (SelfSubjectReview); upkeep's own direct-mode patches need the upkeep:break-glass group"
                );
            }
            cluster
                .apply(
                    &vap,
                    &policy(me.as_deref(), reason),
                    &ApplyOptions::new(FIELD_MANAGER).force(),
                )
                .await?;
            let b = json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": POLICY, "labels": {"app.kubernetes.io/managed-by": "upkeep"}},
                "spec": {"policyName": POLICY, "validationActions": ["Deny"]},
            });
            cluster
                .apply(&binding, &b, &ApplyOptions::new(FIELD_MANAGER).force())
                .await?;
        }
        _ => tracing::warn!(
            "maintenance: the cluster serves no ValidatingAdmissionPolicy (Kubernetes 1.30+): spec changes are not frozen, only Flux is suspended"
        ),
    }
    Ok(state)
}

/// Turns maintenance off: the Binding and the policy go, what `on`
/// suspended is resumed (and nothing else), the ConfigMap goes last, so an
/// `off` that is stopped can be run again.
pub async fn off(cluster: &Cluster) -> Result<Option<State>, RunError> {
    let Some(state) = status(cluster).await? else {
        // The policy may outlive a ConfigMap deleted by hand.
        delete_policy(cluster).await?;
        return Ok(None);
    };
    delete_policy(cluster).await?;
    for k in &state.suspended {
        let Some((kind, rest)) = k.split_once(' ') else {
            continue;
        };
        let Some((ns, name)) = rest.split_once('/') else {
            continue;
        };
        let Some((group, _)) = SUSPENDABLE.iter().find(|(_, kd)| *kd == kind) else {
            continue;
        };
        let Some(res) = resource(cluster, group, kind).await? else {
            continue;
        };
        if cluster.get(&res, Some(ns), name).await?.is_none() {
            continue;
        }
        tracing::info!("maintenance: resuming {k}");
        // Back to what it said: `false`, or nothing at all (null removes the field).
        let prior = if state.were_false.contains(k) {
            Value::Bool(false)
        } else {
            Value::Null
        };
        cluster
            .patch_merge(&res, Some(ns), name, &json!({"spec": {"suspend": prior}}))
            .await?;
    }
    if let Some(cm) = resource(cluster, "", "ConfigMap").await? {
        cluster.delete(&cm, Some(NAMESPACE), CONFIGMAP).await?;
    }
    Ok(Some(state))
}

async fn delete_policy(cluster: &Cluster) -> Result<(), RunError> {
    for kind in [
        "ValidatingAdmissionPolicyBinding",
        "ValidatingAdmissionPolicy",
    ] {
        if let Some(res) = resource(cluster, "admissionregistration.k8s.io", kind).await? {
            cluster.delete(&res, None, POLICY).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_lets_flux_the_cluster_upkeep_and_break_glass_through() {
        let p = policy(Some("kubernetes-admin"), "run-1");
        let expr = p["spec"]["validations"][0]["expression"].as_str().unwrap();
        for needle in [
            "object.spec == oldObject.spec",
            "system:serviceaccount:flux-system:",
            "'upkeep:break-glass' in request.userInfo.groups",
            "request.userInfo.username == 'kubernetes-admin'",
        ] {
            assert!(expr.contains(needle), "{needle} in {expr}");
        }
        let rules = p["spec"]["matchConstraints"]["resourceRules"]
            .as_array()
            .unwrap();
        assert_eq!(rules.len(), 3);
        assert!(rules.iter().all(|r| r["operations"] == json!(["UPDATE"])));
    }
}
