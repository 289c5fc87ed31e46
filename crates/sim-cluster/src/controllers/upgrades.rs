//! The k3s system-upgrade-controller (`upgrade.cattle.io/v1` Plan): each Plan upgrades the
//! nodes its `nodeSelector` matches, `concurrency` at a time (default 1): cordon (when
//! `cordon` or `drain` is set), set `kubeletVersion`, uncordon, and label the node
//! `plan.upgrade.cattle.io/<plan>=<latestHash>`. A Plan whose `prepare` step is
//! `prepare <other-plan>` (the k3s agent plan) waits until that plan is complete, which is
//! how servers go before agents. `latestHash` is a SHA-256 prefix, not SUC's exact hash.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};

use super::{
    Delay, Reconciler, any_glob, conditions_of, list, name_of, ns_of, opts, put_status, resource,
    set_condition, sha256_hex, str_at,
};
use crate::config::UpgradesConfig;
use crate::patch::PatchKind;
use crate::resources::ResourceInfo;
use crate::selectors::LabelSelector;
use crate::store::{Store, now};

const MANAGER: &str = "system-upgrade-controller";
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Cordoned,
    Upgraded,
    Failed,
}

pub(super) struct Upgrades {
    fail_nodes: Vec<String>,
    channels: BTreeMap<String, String>,
    delay: Delay,
    /// (plan key, node) → how far its upgrade got, and since when.
    progress: BTreeMap<(String, String), (Phase, Instant, bool)>,
}

impl Upgrades {
    pub(super) fn new(cfg: &UpgradesConfig) -> Self {
        Upgrades {
            fail_nodes: cfg.fail_nodes.clone(),
            channels: cfg.channels.clone(),
            delay: Delay::new(cfg.delay.0),
            progress: BTreeMap::new(),
        }
    }
}

/// A structured LabelSelector (`matchLabels`, `matchExpressions`) in its string form.
fn plan_label(plan: &str) -> String {
    format!("plan.upgrade.cattle.io/{plan}")
}

fn node_label<'a>(node: &'a Value, key: &str) -> Option<&'a str> {
    node.pointer("/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

/// The plan named in a `prepare: {args: [prepare, <plan>]}` step.
fn prepare_dependency(plan: &Value) -> Option<String> {
    let args: Vec<&str> = plan
        .pointer("/spec/prepare/args")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let i = args.iter().position(|a| *a == "prepare")?;
    args.get(i + 1).map(|s| s.to_string())
}

fn patch_node(store: &Store, nodes: &ResourceInfo, name: &str, patch: Value, status: bool) {
    if let Err(e) = store.patch(
        nodes,
        None,
        name,
        PatchKind::Merge,
        &patch,
        status,
        &opts(MANAGER),
    ) {
        tracing::debug!("{MANAGER}: node {name}: {}", e.message);
    }
}

fn taints_without(node: &Value) -> Vec<Value> {
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter(|t| t["key"] != UNSCHEDULABLE_TAINT)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

impl Reconciler for Upgrades {
    fn pass(&mut self, store: &Store) {
        let (Some(plans_info), Some(nodes_info)) = (
            resource(store, "upgrade.cattle.io", "plans"),
            resource(store, "", "nodes"),
        ) else {
            return;
        };
        let plans = list(store, &plans_info);
        for plan in &plans {
            self.plan(store, &plans_info, &nodes_info, plan, &plans);
        }
    }
}

impl Upgrades {
    fn plan(
        &mut self,
        store: &Store,
        plans_info: &ResourceInfo,
        nodes_info: &ResourceInfo,
        plan: &Value,
        all: &[Value],
    ) {
        let name = name_of(plan).to_string();
        let pkey = format!("{}/{name}", ns_of(plan).unwrap_or(""));
        let mut status = plan.get("status").cloned().unwrap_or_else(|| json!({}));
        let mut conds = conditions_of(plan);
        let version = str_at(plan, "/spec/version")
            .map(str::to_string)
            .or_else(|| str_at(plan, "/spec/channel").and_then(|c| self.channels.get(c).cloned()));
        let Some(version) = version else {
            let msg = match str_at(plan, "/spec/channel") {
                Some(c) => format!("channel {c} has no version configured in SIM.yaml"),
                None => "plan has neither version nor channel".to_string(),
            };
            set_condition(&mut conds, "LatestResolved", false, "Error", &msg, None);
            status["conditions"] = json!(conds);
            put_status(store, plans_info, plan, status, MANAGER);
            return;
        };
        let spec = plan.get("spec").cloned().unwrap_or(json!({}));
        let hash: String = sha256_hex(format!("{version}\n{spec}").as_bytes())
            .chars()
            .take(56)
            .collect();
        set_condition(&mut conds, "LatestResolved", true, "Version", "", None);
        status["latestVersion"] = json!(version);
        status["latestHash"] = json!(hash);
        let sel = match LabelSelector::from_object(plan.pointer("/spec/nodeSelector")) {
            Ok(s) => s,
            Err(e) => {
                set_condition(&mut conds, "LatestResolved", false, "Error", &e, None);
                status["conditions"] = json!(conds);
                put_status(store, plans_info, plan, status, MANAGER);
                return;
            }
        };
        let label = plan_label(&name);
        let nodes: Vec<Value> = list(store, nodes_info)
            .into_iter()
            .filter(|n| sel.matches(n))
            .collect();
        let pending: Vec<&Value> = nodes
            .iter()
            .filter(|n| node_label(n, &label) != Some(hash.as_str()))
            .collect();
        let blocked_by = prepare_dependency(plan).filter(|dep| {
            !all.iter()
                .any(|p| name_of(p) == dep && ns_of(p) == ns_of(plan) && plan_complete(p))
        });
        if pending.is_empty() {
            set_condition(&mut conds, "Complete", true, "Complete", "", None);
        } else {
            set_condition(&mut conds, "Complete", false, "Applying", "", None);
        }
        if blocked_by.is_none() {
            let concurrency = plan
                .pointer("/spec/concurrency")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1) as usize;
            let cordon = plan.pointer("/spec/cordon").and_then(Value::as_bool) == Some(true)
                || plan.pointer("/spec/drain").is_some();
            for node in &pending {
                let nname = name_of(node).to_string();
                let k = (pkey.clone(), nname.clone());
                let active = self.progress.keys().filter(|(p, _)| *p == pkey).count();
                match self.progress.get(&k).copied() {
                    None if active < concurrency => {
                        if cordon {
                            let mut taints = taints_without(node);
                            taints.push(json!({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule", "timeAdded": now()}));
                            patch_node(
                                store,
                                nodes_info,
                                &nname,
                                json!({"spec": {"unschedulable": true, "taints": taints}}),
                                false,
                            );
                        }
                        self.progress
                            .insert(k, (Phase::Cordoned, Instant::now(), cordon));
                    }
                    None => {}
                    Some((Phase::Cordoned, _, cordoned)) => {
                        if !self.delay.ready(&format!("upgrade/{pkey}/{nname}")) {
                            continue;
                        }
                        if any_glob(&self.fail_nodes, &nname) {
                            self.progress
                                .insert(k, (Phase::Failed, Instant::now(), cordoned));
                            continue;
                        }
                        patch_node(
                            store,
                            nodes_info,
                            &nname,
                            json!({"status": {"nodeInfo": {"kubeletVersion": version, "kubeProxyVersion": version}}}),
                            true,
                        );
                        self.progress
                            .insert(k, (Phase::Upgraded, Instant::now(), cordoned));
                    }
                    // Upgraded to a version the Plan no longer asks for (its spec
                    // changed mid-roll): upgrade again before labelling the node
                    // with the new hash, or the Plan would say Complete with the
                    // node on the old version.
                    Some((Phase::Upgraded, _, cordoned))
                        if str_at(node, "/status/nodeInfo/kubeletVersion")
                            != Some(version.as_str()) =>
                    {
                        self.progress
                            .insert(k, (Phase::Cordoned, Instant::now(), cordoned));
                    }
                    Some((Phase::Upgraded, _, cordoned)) => {
                        let mut patch =
                            json!({"metadata": {"labels": {label.clone(): hash.clone()}}});
                        if cordoned {
                            patch["spec"] =
                                json!({"unschedulable": null, "taints": taints_without(node)});
                        }
                        patch_node(store, nodes_info, &nname, patch, false);
                        self.progress.remove(&k);
                    }
                    Some((Phase::Failed, _, _)) => {}
                }
            }
        }
        // Nodes that left the selector or finished are no longer tracked.
        let pending_names: Vec<&str> = pending.iter().map(|n| name_of(n)).collect();
        self.progress
            .retain(|(p, n), _| *p != pkey || pending_names.contains(&n.as_str()));
        let applying: Vec<&str> = self
            .progress
            .keys()
            .filter(|(p, _)| *p == pkey)
            .map(|(_, n)| n.as_str())
            .collect();
        status["applying"] = json!(applying);
        status["conditions"] = json!(conds);
        put_status(store, plans_info, plan, status, MANAGER);
    }
}

/// A plan is complete when its status says so (all matching nodes carry its hash).
fn plan_complete(plan: &Value) -> bool {
    conditions_of(plan)
        .iter()
        .any(|c| c["type"] == "Complete" && c["status"] == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WriteOptions;

    /// A store with the Plan CRD, one node at v1.31.4+k3s1 and a Plan for it.
    fn world() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../../testdata/clusters/homelab/crds/system-upgrade/plans.upgrade.cattle.io.yaml",
        );
        std::fs::copy(&crds, dir.path().join("crd.yaml")).unwrap();
        std::fs::write(
            dir.path().join("objects.yaml"),
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: agent\n  labels: {role: agent}\n\
             status:\n  nodeInfo: {kubeletVersion: v1.31.4+k3s1}\n---\n\
             apiVersion: v1\nkind: Namespace\nmetadata: {name: system-upgrade}\n---\n\
             apiVersion: upgrade.cattle.io/v1\nkind: Plan\nmetadata: {name: agent, namespace: system-upgrade}\n\
             spec:\n  concurrency: 1\n  version: v1.31.5+k3s1\n  nodeSelector: {matchLabels: {role: agent}}\n\
             \x20 upgrade: {image: rancher/k3s-upgrade}\n",
        )
        .unwrap();
        (crate::fixture::load_dir(dir.path()).unwrap(), dir)
    }

    fn kubelet(store: &Store) -> String {
        let info = resource(store, "", "nodes").unwrap();
        let n = store.get(&info, None, "agent").unwrap();
        str_at(&n, "/status/nodeInfo/kubeletVersion")
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_plan_changed_in_the_middle_of_a_roll_ends_with_the_node_at_the_new_version() {
        let (store, _dir) = world();
        let cfg: UpgradesConfig = serde_json::from_value(json!({"delay": "0s"})).unwrap();
        let mut up = Upgrades::new(&cfg);
        // Cordoned, then upgraded to v1.31.5.
        up.pass(&store);
        up.pass(&store);
        assert_eq!(kubelet(&store), "v1.31.5+k3s1");
        // The run edits the Plan before the controller labelled the node.
        let plans = resource(&store, "upgrade.cattle.io", "plans").unwrap();
        let mut plan = store.get(&plans, Some("system-upgrade"), "agent").unwrap();
        plan["spec"]["version"] = json!("v1.31.10+k3s1");
        store
            .update(
                &plans,
                Some("system-upgrade"),
                "agent",
                plan,
                false,
                &WriteOptions::default(),
            )
            .unwrap();
        for _ in 0..6 {
            up.pass(&store);
        }
        assert_eq!(kubelet(&store), "v1.31.10+k3s1");
        let plan = store.get(&plans, Some("system-upgrade"), "agent").unwrap();
        assert!(plan_complete(&plan), "{plan}");
    }
}
