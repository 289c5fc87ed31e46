//! Waiting for the cluster to take a change: Flux fetches the commit and
//! applies it, then each HelmRelease installs the chart version or each
//! system-upgrade-controller Plan brings its nodes to it. Polls, says on
//! stderr what it waits for whenever that changes, and stops at the first
//! sign of failure rather than at the deadline.

use std::time::{Duration, Instant};

use serde_json::Value;
use upkeep_contract::Version;
use upkeep_kube::{Cluster, ClusterRead, KubeError, ListOptions, ResourceRef, condition_of};

use crate::target::{Watch, same};

/// Why waiting ended without the version in place.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The cluster refused the version (a failed upgrade, a broken build).
    #[error("{0}")]
    Refused(String),
    #[error("not done within {after:?}: {last}")]
    Timeout { after: Duration, last: String },
    #[error(transparent)]
    Cluster(#[from] KubeError),
}

const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

pub(crate) fn str_at<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

pub(crate) async fn list(
    cluster: &Cluster,
    group: &str,
    kind: &str,
) -> Result<Vec<Value>, KubeError> {
    let res = cluster
        .resource(&ResourceRef::preferred(group, kind))
        .await?;
    upkeep_kube::list_values(cluster, &res, &ListOptions::all_namespaces()).await
}

fn name(v: &Value) -> String {
    format!(
        "{}/{}",
        str_at(v, "/metadata/namespace").unwrap_or(""),
        str_at(v, "/metadata/name").unwrap_or("")
    )
}

/// Asks every GitRepository and Kustomization to reconcile now, as
/// `flux reconcile kustomization --with-source` does, instead of waiting
/// for their interval.
pub async fn request_reconcile(cluster: &Cluster) -> Result<(), KubeError> {
    let at = jiff::Timestamp::now().to_string();
    for (group, kind) in [
        ("source.toolkit.fluxcd.io", "GitRepository"),
        ("kustomize.toolkit.fluxcd.io", "Kustomization"),
    ] {
        let res = cluster
            .resource(&ResourceRef::preferred(group, kind))
            .await?;
        for obj in list(cluster, group, kind).await? {
            let patch = serde_json::json!({"metadata": {"annotations": {REQUESTED_AT: at}}});
            cluster
                .patch_merge(
                    &res,
                    str_at(&obj, "/metadata/namespace"),
                    str_at(&obj, "/metadata/name").unwrap_or(""),
                    &patch,
                )
                .await?;
        }
    }
    Ok(())
}

/// Polls `probe` until it says done, fails, or `within` passes; logs each
/// new state once.
pub(crate) async fn poll<F, Fut>(
    what: &str,
    within: Duration,
    every: Duration,
    mut probe: F,
) -> Result<(), WaitError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<State, WaitError>>,
{
    let start = Instant::now();
    let mut said = String::new();
    loop {
        match probe().await? {
            State::Done => {
                tracing::info!("{what}: done after {:.0?}", start.elapsed());
                return Ok(());
            }
            State::Failed(why) => return Err(WaitError::Refused(why)),
            State::Waiting(now) => {
                if now != said {
                    tracing::info!("{what}: {now}");
                    said = now;
                }
            }
        }
        if start.elapsed() >= within {
            return Err(WaitError::Timeout {
                after: within,
                last: format!("{what}: {said}"),
            });
        }
        tokio::time::sleep(every).await;
    }
}

pub(crate) enum State {
    Done,
    Waiting(String),
    Failed(String),
}

/// Waits until a GitRepository has fetched `commit` and every Kustomization
/// built from it has applied it.
/// `includes(revision)`: whether a Flux revision (`main@sha1:<id>`)
/// contains the commit: the commit itself, or (someone pushed after us) a
/// later commit whose history has it.
pub async fn flux_applied(
    cluster: &Cluster,
    commit: &str,
    includes: &(dyn Fn(&str) -> bool + Sync),
    within: Duration,
    every: Duration,
) -> Result<(), WaitError> {
    let short = crate::short_commit(commit);
    poll(
        &format!("Flux applying commit {short}"),
        within,
        every,
        || async {
            let repos = list(cluster, "source.toolkit.fluxcd.io", "GitRepository").await?;
            let fetched: Vec<String> = repos
                .iter()
                .filter(|r| str_at(r, "/status/artifact/revision").is_some_and(includes))
                .map(name)
                .collect();
            if fetched.is_empty() {
                return Ok(State::Waiting(format!(
                    "no GitRepository has fetched {short} yet"
                )));
            }
            let mut pending = Vec::new();
            for ks in list(cluster, "kustomize.toolkit.fluxcd.io", "Kustomization").await? {
                let src_ns = str_at(&ks, "/spec/sourceRef/namespace")
                    .or(str_at(&ks, "/metadata/namespace"))
                    .unwrap_or("");
                let src = format!(
                    "{src_ns}/{}",
                    str_at(&ks, "/spec/sourceRef/name").unwrap_or("")
                );
                if !fetched.contains(&src)
                    || ks.pointer("/spec/suspend") == Some(&Value::Bool(true))
                {
                    continue;
                }
                if str_at(&ks, "/status/lastAppliedRevision").is_some_and(includes) {
                    continue;
                }
                if let Some(c) = condition_of(&ks, "Ready").filter(|c| c.status == "False")
                    && str_at(&ks, "/status/lastAttemptedRevision").is_some_and(includes)
                {
                    return Ok(State::Failed(format!(
                        "Kustomization {} could not apply commit {short} ({}): {}",
                        name(&ks),
                        c.reason,
                        c.message
                    )));
                }
                pending.push(name(&ks));
            }
            Ok(if pending.is_empty() {
                State::Done
            } else {
                State::Waiting(format!(
                    "Kustomization {} has not applied it yet",
                    pending.join(", ")
                ))
            })
        },
    )
    .await
}

/// Waits until `watch` shows `to` in place.
pub async fn at_version(
    cluster: &Cluster,
    watch: &Watch,
    to: &Version,
    within: Duration,
    every: Duration,
) -> Result<(), WaitError> {
    match watch {
        Watch::HelmRelease { namespace, name } => {
            let what = format!("HelmRelease {namespace}/{name} installing {to}");
            poll(&what, within, every, || {
                helm_release(cluster, namespace, name, to)
            })
            .await
        }
        Watch::Plan { namespace, name } => {
            let what = format!("Plan {namespace}/{name} upgrading nodes to {to}");
            poll(&what, within, every, || plan(cluster, namespace, name, to)).await
        }
        Watch::FluxControllers(controllers) => {
            crate::flux::wait_controllers(cluster, controllers, within, every).await
        }
        Watch::FluxInstance { namespace, name } => {
            crate::flux::wait_instance(cluster, namespace, name, to, within, every).await
        }
    }
}

async fn helm_release(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    to: &Version,
) -> Result<State, WaitError> {
    let res = cluster
        .resource(&ResourceRef::preferred(
            "helm.toolkit.fluxcd.io",
            "HelmRelease",
        ))
        .await?;
    let hr = match cluster.get(&res, Some(namespace), name).await? {
        Some(o) => upkeep_kube::object_value(&o, &res)?,
        None => {
            return Ok(State::Waiting(
                "the HelmRelease does not exist yet".to_string(),
            ));
        }
    };
    let is_to = |s: Option<&str>| {
        s.and_then(|v| Version::parse(v).ok())
            .is_some_and(|v| same(&v, to))
    };
    let head = hr.pointer("/status/history/0");
    let installed = head
        .and_then(|h| h.get("chartVersion"))
        .and_then(Value::as_str);
    let deployed = head.and_then(|h| h.get("status")).and_then(Value::as_str) == Some("deployed");
    let generation = hr.pointer("/metadata/generation").and_then(Value::as_i64);
    let observed = hr
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    let current = observed.is_some() && observed >= generation;
    let ready = condition_of(&hr, "Ready");
    let ready_is = |s: &str| ready.as_ref().is_some_and(|c| c.status == s);
    if is_to(installed) && deployed && current && ready_is("True") {
        return Ok(State::Done);
    }
    if let Some(c) = condition_of(&hr, "Stalled").filter(|c| c.status == "True") {
        return Ok(State::Failed(format!(
            "HelmRelease {namespace}/{name} is stalled ({}): {}",
            c.reason, c.message
        )));
    }
    // Flux tried this version and it did not go in: whatever remediation
    // did after, the update failed.
    if current
        && is_to(str_at(&hr, "/status/lastAttemptedRevision"))
        && let Some(c) = ready
            .as_ref()
            .filter(|c| c.status == "False" && c.reason != "Progressing")
    {
        return Ok(State::Failed(format!(
            "HelmRelease {namespace}/{name} did not install {to} ({}): {}",
            c.reason, c.message
        )));
    }
    Ok(State::Waiting(format!(
        "installed {}, Ready {}",
        installed.unwrap_or("nothing"),
        ready
            .map(|c| format!("{} ({})", c.status, c.reason))
            .unwrap_or_else(|| "unknown".to_string())
    )))
}

async fn plan(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    to: &Version,
) -> Result<State, WaitError> {
    let res = cluster
        .resource(&ResourceRef::preferred("upgrade.cattle.io", "Plan"))
        .await?;
    let plan = match cluster.get(&res, Some(namespace), name).await? {
        Some(o) => upkeep_kube::object_value(&o, &res)?,
        None => {
            return Ok(State::Waiting("the Plan does not exist yet".to_string()));
        }
    };
    if !str_at(&plan, "/spec/version")
        .and_then(|v| Version::parse(v).ok())
        .is_some_and(|v| same(&v, to))
    {
        return Ok(State::Waiting(
            "the Plan does not ask for it yet".to_string(),
        ));
    }
    let nodes = list(cluster, "", "Node").await?;
    let selected: Vec<&Value> = nodes.iter().filter(|n| selects(&plan, n)).collect();
    let behind: Vec<String> = selected
        .iter()
        .filter(|n| {
            !str_at(n, "/status/nodeInfo/kubeletVersion")
                .and_then(|v| Version::parse(v).ok())
                .is_some_and(|v| same(&v, to))
        })
        .map(|n| str_at(n, "/metadata/name").unwrap_or("").to_string())
        .collect();
    Ok(if behind.is_empty() {
        State::Done
    } else {
        State::Waiting(format!(
            "{} of {} node(s) not yet at {to}: {}",
            behind.len(),
            selected.len(),
            behind.join(", ")
        ))
    })
}

/// Whether the Plan's `nodeSelector` (matchLabels and the In, NotIn,
/// Exists, DoesNotExist expressions SUC plans use) selects the node.
fn selects(plan: &Value, node: &Value) -> bool {
    let labels = node.pointer("/metadata/labels");
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    if let Some(m) = plan
        .pointer("/spec/nodeSelector/matchLabels")
        .and_then(Value::as_object)
        && m.iter().any(|(k, v)| label(k) != v.as_str())
    {
        return false;
    }
    let exprs = plan
        .pointer("/spec/nodeSelector/matchExpressions")
        .and_then(Value::as_array);
    exprs.into_iter().flatten().all(|e| {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match e.get("operator").and_then(Value::as_str) {
            Some("In") => label(key).is_some_and(|l| values.contains(&l)),
            Some("NotIn") => label(key).is_none_or(|l| !values.contains(&l)),
            Some("Exists") => label(key).is_some(),
            Some("DoesNotExist") => label(key).is_none(),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plans_select_nodes_as_suc_does() {
        let server = json!({"metadata": {"name": "s1", "labels": {"node-role.kubernetes.io/control-plane": "true"}}});
        let agent = json!({"metadata": {"name": "a1", "labels": {}}});
        let server_plan = json!({"spec": {"nodeSelector": {"matchExpressions": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "In", "values": ["true"]}]}}});
        let agent_plan = json!({"spec": {"nodeSelector": {"matchExpressions": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"}]}}});
        assert!(selects(&server_plan, &server));
        assert!(!selects(&server_plan, &agent));
        assert!(selects(&agent_plan, &agent));
        assert!(!selects(&agent_plan, &server));
        let by_label = json!({"spec": {"nodeSelector": {"matchLabels": {"k3s-upgrade": "true"}}}});
        assert!(!selects(&by_label, &agent));
    }
}
