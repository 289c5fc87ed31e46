//! Jobs and Pods: a Job gets pods (one at a time, up to `completions`, retried up to
//! `backoffLimit`) and the `Complete`/`Failed` conditions; a pod created by a client is
//! scheduled on a node, runs, and — when it runs to completion (`restartPolicy` Never or
//! OnFailure) — ends `Succeeded` or, when `SIM.yaml` says so, `Failed`, with the logs
//! configured for it served by `pods/log`. Pods loaded with a phase are left alone.
//! A DaemonSet created by a client gets one pod per schedulable node (each with its own pod
//! IP, so probes between nodes can be told apart) and its status counts; DaemonSets loaded
//! with a status are left alone.
//! A Deployment is rolled out: one created or changed by a client (no status, or a
//! `metadata.generation` past the one it was loaded with) at once gets
//! `status.observedGeneration` with `updatedReplicas: 0` (the old pods still serving), then,
//! after the controller's `delay`, `replicas`, `updatedReplicas`, `readyReplicas` and
//! `availableReplicas` equal to `spec.replicas` (default 1) and the `Available` and
//! `Progressing` (`NewReplicaSetAvailable`) conditions, as kube-controller-manager reports a
//! finished rollout. No ReplicaSets or pods are made for it. Deployments loaded with a status
//! keep it until a client changes their spec.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde_json::{Value, json};

use super::{
    Delay, PodLogs, Reconciler, list, merge, name_of, ns_of, opts, put_status, resource, str_at,
};
use crate::config::{PodBehaviour, PodResult, WorkloadsConfig, glob_match};
use crate::store::{Store, now};

const KUBELET: &str = "kubelet";
const JOB_CONTROLLER: &str = "job-controller";
const DAEMONSET_CONTROLLER: &str = "daemon-set-controller";
const DEPLOYMENT_CONTROLLER: &str = "deployment-controller";

#[derive(Clone, Copy, PartialEq)]
enum Stage {
    Pending,
    Running,
}

pub(super) struct Workloads {
    pods: Vec<PodBehaviour>,
    logs: PodLogs,
    delay: Delay,
    /// Pods this controller is running, by namespace/name.
    tracked: HashMap<String, (Stage, Instant)>,
    /// UIDs of the DaemonSets this controller runs (created without a status).
    daemonsets: HashSet<String>,
    /// Hands out pod IPs: the last octet, per node.
    next_ip: HashMap<String, u8>,
    /// Deployments loaded with a status, by UID: the generation they were loaded with.
    /// One whose spec a client changes (a new generation) is rolled out from then on.
    loaded_deployments: HashMap<String, i64>,
    /// UIDs of the Deployments this controller rolls out.
    deployments: HashSet<String>,
}

impl Workloads {
    pub(super) fn new(cfg: &WorkloadsConfig, logs: PodLogs) -> Self {
        Workloads {
            pods: cfg.pods.clone(),
            logs,
            delay: Delay::new(cfg.delay.0),
            tracked: HashMap::new(),
            daemonsets: HashSet::new(),
            next_ip: HashMap::new(),
            loaded_deployments: HashMap::new(),
            deployments: HashSet::new(),
        }
    }

    /// A pod IP in the node's own /24 (`10.42.<node index>.<n>`), as flannel hands out.
    fn pod_ip(&mut self, nodes: &[String], node: Option<&str>) -> String {
        let index = node
            .and_then(|n| nodes.iter().position(|x| x == n))
            .unwrap_or(0);
        let key = node.unwrap_or("").to_string();
        let n = self.next_ip.entry(key).or_insert(99);
        *n = if *n >= 254 { 100 } else { *n + 1 };
        format!("10.42.{index}.{n}")
    }
}

/// Names of the nodes pods can be scheduled on, sorted.
fn schedulable_nodes(store: &Store) -> Vec<String> {
    let Some(info) = resource(store, "", "nodes") else {
        return Vec::new();
    };
    let mut names: Vec<String> = list(store, &info)
        .into_iter()
        .filter(|n| n.pointer("/spec/unschedulable") != Some(&json!(true)))
        .map(|n| name_of(&n).to_string())
        .collect();
    names.sort();
    names
}

fn owned_by<'a>(pods: &'a [Value], uid: &str) -> Vec<&'a Value> {
    pods.iter()
        .filter(|p| {
            p.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|o| o.iter().any(|r| r["uid"] == uid))
                && p.pointer("/metadata/deletionTimestamp").is_none()
        })
        .collect()
}

fn job_name(pod: &Value) -> Option<&str> {
    let labels = pod.pointer("/metadata/labels")?;
    labels
        .get("batch.kubernetes.io/job-name")
        .or_else(|| labels.get("job-name"))
        .and_then(Value::as_str)
}

fn runs_to_completion(pod: &Value) -> bool {
    job_name(pod).is_some()
        || matches!(
            str_at(pod, "/spec/restartPolicy"),
            Some("Never" | "OnFailure")
        )
}

fn container_names(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| Some(c.get("name")?.as_str()?.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn container_images(pod: &Value) -> HashMap<String, String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| {
                    Some((
                        c.get("name")?.as_str()?.to_string(),
                        c.get("image")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn container_statuses(pod: &Value, state: Value, ready: bool) -> Vec<Value> {
    let images = container_images(pod);
    container_names(pod)
        .into_iter()
        .map(|n| {
            json!({
                "name": n,
                "image": images.get(&n).cloned().unwrap_or_default(),
                "imageID": "",
                "ready": ready,
                "restartCount": 0,
                "started": ready,
                "state": state,
            })
        })
        .collect()
}

fn pod_conditions(ready: bool, time: &str) -> Value {
    let s = if ready { "True" } else { "False" };
    json!([
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": time},
        {"type": "Initialized", "status": "True", "lastTransitionTime": time},
        {"type": "ContainersReady", "status": s, "lastTransitionTime": time},
        {"type": "Ready", "status": s, "lastTransitionTime": time},
    ])
}

impl Workloads {
    fn behaviour(&self, pod: &Value) -> Option<&PodBehaviour> {
        let ns = ns_of(pod).unwrap_or("");
        let name = name_of(pod);
        self.pods.iter().find(|b| {
            b.namespace.as_deref().is_none_or(|n| n == ns)
                && (glob_match(&b.pattern, name)
                    || job_name(pod).is_some_and(|j| glob_match(&b.pattern, j)))
        })
    }

    fn pods(&mut self, store: &Store) {
        let Some(info) = resource(store, "", "pods") else {
            return;
        };
        let nodes = schedulable_nodes(store);
        let node = nodes.first().cloned();
        let mut seen = Vec::new();
        for pod in list(store, &info) {
            let key = format!("{}/{}", ns_of(&pod).unwrap_or(""), name_of(&pod));
            seen.push(key.clone());
            if pod.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            let stage = self.tracked.get(&key).copied();
            let t = now();
            match stage {
                None => {
                    if pod.pointer("/status/phase").is_some() {
                        continue;
                    }
                    if str_at(&pod, "/spec/nodeName").is_none()
                        && let Some(n) = &node
                    {
                        merge(
                            store,
                            &info,
                            &pod,
                            json!({"spec": {"nodeName": n}}),
                            KUBELET,
                        );
                    }
                    let status = json!({
                        "phase": "Pending",
                        "conditions": pod_conditions(false, &t),
                        "containerStatuses": container_statuses(&pod, json!({"waiting": {"reason": "ContainerCreating"}}), false),
                        "qosClass": "BestEffort",
                    });
                    let pod = resource(store, "", "pods")
                        .and_then(|i| store.get(&i, ns_of(&pod), name_of(&pod)).ok())
                        .unwrap_or(pod);
                    put_status(store, &info, &pod, status, KUBELET);
                    self.tracked.insert(key, (Stage::Pending, Instant::now()));
                }
                Some((Stage::Pending, _)) => {
                    if !self.delay.ready(&format!("start/{key}")) {
                        continue;
                    }
                    if let Some(b) = self.behaviour(&pod) {
                        self.logs
                            .set(ns_of(&pod).unwrap_or(""), name_of(&pod), b.logs.clone());
                    }
                    let mut status = pod.get("status").cloned().unwrap_or_else(|| json!({}));
                    status["phase"] = json!("Running");
                    status["startTime"] = json!(t);
                    status["conditions"] = pod_conditions(true, &t);
                    status["containerStatuses"] = json!(container_statuses(
                        &pod,
                        json!({"running": {"startedAt": t}}),
                        true
                    ));
                    status["podIP"] = json!(self.pod_ip(&nodes, str_at(&pod, "/spec/nodeName")));
                    put_status(store, &info, &pod, status, KUBELET);
                    if runs_to_completion(&pod) {
                        self.tracked.insert(key, (Stage::Running, Instant::now()));
                    } else {
                        self.tracked.remove(&key);
                    }
                }
                Some((Stage::Running, _)) => {
                    if !self.delay.ready(&format!("finish/{key}")) {
                        continue;
                    }
                    let failed = self
                        .behaviour(&pod)
                        .is_some_and(|b| b.result == PodResult::Failed);
                    let (phase, code, reason) = if failed {
                        ("Failed", 1, "Error")
                    } else {
                        ("Succeeded", 0, "Completed")
                    };
                    let started = str_at(&pod, "/status/startTime").unwrap_or(&t).to_string();
                    let mut status = pod.get("status").cloned().unwrap_or_else(|| json!({}));
                    status["phase"] = json!(phase);
                    status["conditions"] = pod_conditions(false, &t);
                    status["containerStatuses"] = json!(container_statuses(
                        &pod,
                        json!({"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": t}}),
                        false
                    ));
                    put_status(store, &info, &pod, status, KUBELET);
                    self.tracked.remove(&key);
                }
            }
        }
        self.tracked.retain(|k, _| seen.contains(k));
    }
}

fn job_finished(job: &Value) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                matches!(c["type"].as_str(), Some("Complete" | "Failed")) && c["status"] == "True"
            })
        })
}

fn jobs(store: &Store) {
    let (Some(info), Some(pods_info)) = (
        resource(store, "batch", "jobs"),
        resource(store, "", "pods"),
    ) else {
        return;
    };
    let pods = list(store, &pods_info);
    for job in list(store, &info) {
        if job_finished(&job) || job.pointer("/spec/suspend") == Some(&json!(true)) {
            continue;
        }
        let uid = str_at(&job, "/metadata/uid").unwrap_or("").to_string();
        let ns = ns_of(&job).unwrap_or("default").to_string();
        let name = name_of(&job).to_string();
        let mine: Vec<&Value> = pods
            .iter()
            .filter(|p| {
                p.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|o| o.iter().any(|r| r["uid"] == uid.as_str()))
            })
            .collect();
        let count = |phase: &str| {
            mine.iter()
                .filter(|p| str_at(p, "/status/phase") == Some(phase))
                .count()
        };
        let succeeded = count("Succeeded");
        let failed = count("Failed");
        let active = mine.len() - succeeded - failed;
        let ready = count("Running");
        let completions = job
            .pointer("/spec/completions")
            .and_then(Value::as_u64)
            .unwrap_or(1) as usize;
        let backoff = job
            .pointer("/spec/backoffLimit")
            .and_then(Value::as_u64)
            .unwrap_or(6) as usize;
        let t = now();
        let mut status = job.get("status").cloned().unwrap_or_else(|| json!({}));
        if status.get("startTime").is_none() {
            status["startTime"] = json!(t);
        }
        status["active"] = json!(active);
        status["ready"] = json!(ready);
        status["succeeded"] = json!(succeeded);
        status["failed"] = json!(failed);
        status["terminating"] = json!(0);
        status["uncountedTerminatedPods"] = json!({});
        if succeeded >= completions {
            status["completionTime"] = json!(t);
            status["conditions"] = json!([
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": t, "lastTransitionTime": t},
                {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": t, "lastTransitionTime": t},
            ]);
        } else if failed > backoff {
            status["conditions"] = json!([
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastProbeTime": t, "lastTransitionTime": t},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastProbeTime": t, "lastTransitionTime": t},
            ]);
        } else if active == 0 {
            let mut template = job
                .pointer("/spec/template")
                .cloned()
                .unwrap_or_else(|| json!({}));
            let labels = &mut template["metadata"]["labels"];
            if !labels.is_object() {
                *labels = json!({});
            }
            for (k, v) in [
                ("batch.kubernetes.io/controller-uid", uid.as_str()),
                ("batch.kubernetes.io/job-name", name.as_str()),
                ("controller-uid", uid.as_str()),
                ("job-name", name.as_str()),
            ] {
                labels[k] = json!(v);
            }
            let mut meta = template["metadata"].clone();
            meta["generateName"] = json!(format!("{name}-"));
            meta["namespace"] = json!(ns);
            meta["ownerReferences"] = json!([{
                "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid,
                "controller": true, "blockOwnerDeletion": true,
            }]);
            let pod = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta,
                "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
            });
            if let Err(e) = store.create(&pods_info, Some(&ns), pod, &opts(JOB_CONTROLLER)) {
                tracing::debug!("{JOB_CONTROLLER}: pod for {ns}/{name}: {}", e.message);
            }
            status["active"] = json!(1);
        }
        put_status(store, &info, &job, status, JOB_CONTROLLER);
    }
}

impl Workloads {
    fn daemonsets(&mut self, store: &Store) {
        let (Some(info), Some(pods_info)) = (
            resource(store, "apps", "daemonsets"),
            resource(store, "", "pods"),
        ) else {
            return;
        };
        let nodes = schedulable_nodes(store);
        let pods = list(store, &pods_info);
        let mut seen = HashSet::new();
        for ds in list(store, &info) {
            let uid = str_at(&ds, "/metadata/uid").unwrap_or("").to_string();
            seen.insert(uid.clone());
            if !self.daemonsets.contains(&uid) {
                // Loaded with a status: a picture of a running cluster, not ours to run.
                if ds
                    .get("status")
                    .is_some_and(|s| s.get("desiredNumberScheduled").is_some())
                {
                    continue;
                }
                self.daemonsets.insert(uid.clone());
            }
            if ds.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            let ns = ns_of(&ds).unwrap_or("default").to_string();
            let name = name_of(&ds).to_string();
            let mine = owned_by(&pods, &uid);
            for node in &nodes {
                if mine
                    .iter()
                    .any(|p| str_at(p, "/spec/nodeName") == Some(node.as_str()))
                {
                    continue;
                }
                let template = ds
                    .pointer("/spec/template")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                let mut meta = template
                    .get("metadata")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                if !meta.is_object() {
                    meta = json!({});
                }
                meta["generateName"] = json!(format!("{name}-"));
                meta["namespace"] = json!(ns);
                meta["ownerReferences"] = json!([{
                    "apiVersion": "apps/v1", "kind": "DaemonSet", "name": name, "uid": uid,
                    "controller": true, "blockOwnerDeletion": true,
                }]);
                let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
                spec["nodeName"] = json!(node);
                let pod =
                    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec});
                if let Err(e) =
                    store.create(&pods_info, Some(&ns), pod, &opts(DAEMONSET_CONTROLLER))
                {
                    tracing::debug!(
                        "{DAEMONSET_CONTROLLER}: pod for {ns}/{name} on {node}: {}",
                        e.message
                    );
                }
            }
            let scheduled = mine
                .iter()
                .filter(|p| {
                    str_at(p, "/spec/nodeName").is_some_and(|n| nodes.iter().any(|x| x == n))
                })
                .count();
            let ready = mine
                .iter()
                .filter(|p| {
                    str_at(p, "/status/phase") == Some("Running")
                        && p.pointer("/status/conditions")
                            .and_then(Value::as_array)
                            .is_some_and(|cs| {
                                cs.iter()
                                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
                            })
                })
                .count();
            let status = json!({
                "observedGeneration": ds.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
                "desiredNumberScheduled": nodes.len(),
                "currentNumberScheduled": scheduled,
                "updatedNumberScheduled": scheduled,
                "numberMisscheduled": mine.len() - scheduled,
                "numberReady": ready,
                "numberAvailable": ready,
                "numberUnavailable": nodes.len().saturating_sub(ready),
            });
            put_status(store, &info, &ds, status, DAEMONSET_CONTROLLER);
        }
        self.daemonsets.retain(|u| seen.contains(u));
    }
}

impl Workloads {
    fn deployments(&mut self, store: &Store) {
        let Some(info) = resource(store, "apps", "deployments") else {
            return;
        };
        let mut seen = HashSet::new();
        for d in list(store, &info) {
            let uid = str_at(&d, "/metadata/uid").unwrap_or("").to_string();
            seen.insert(uid.clone());
            let generation = d
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let has_status = d
                .get("status")
                .and_then(Value::as_object)
                .is_some_and(|s| !s.is_empty());
            if !self.deployments.contains(&uid) {
                match self.loaded_deployments.get(&uid) {
                    Some(&loaded) if loaded == generation => continue,
                    Some(_) => {}
                    None if has_status => {
                        // A picture of a running cluster, not ours to run until a client
                        // changes it.
                        self.loaded_deployments.insert(uid.clone(), generation);
                        continue;
                    }
                    None => {}
                }
                self.loaded_deployments.remove(&uid);
                self.deployments.insert(uid.clone());
            }
            if d.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            let replicas = d
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let old = d.get("status").cloned().unwrap_or_else(|| json!({}));
            let count = |k: &str| old.get(k).and_then(Value::as_i64).unwrap_or(0);
            let t = now();
            let done = old.get("observedGeneration").and_then(Value::as_i64) == Some(generation)
                && count("replicas") == replicas
                && count("updatedReplicas") == replicas
                && count("availableReplicas") == replicas;
            if done {
                continue;
            }
            let name = name_of(&d);
            let condition = |kind: &str, ok: bool, reason: &str, message: String| {
                json!({"type": kind, "status": if ok { "True" } else { "False" },
                    "reason": reason, "message": message,
                    "lastUpdateTime": t, "lastTransitionTime": t})
            };
            let status = if self.delay.ready(&format!("rollout/{uid}/{generation}")) {
                json!({
                    "observedGeneration": generation,
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                    "conditions": [
                        condition("Available", true, "MinimumReplicasAvailable",
                            "Deployment has minimum availability.".to_string()),
                        condition("Progressing", true, "NewReplicaSetAvailable",
                            format!("ReplicaSet \"{name}\" has successfully progressed.")),
                    ],
                })
            } else {
                // The new ReplicaSet is coming up; the old pods still serve.
                let available = count("availableReplicas");
                json!({
                    "observedGeneration": generation,
                    "replicas": replicas,
                    "updatedReplicas": 0,
                    "readyReplicas": available,
                    "availableReplicas": available,
                    "unavailableReplicas": (replicas - available).max(0),
                    "conditions": [
                        condition("Available", available >= replicas, "MinimumReplicasAvailable",
                            "Deployment has minimum availability.".to_string()),
                        condition("Progressing", true, "ReplicaSetUpdated",
                            format!("ReplicaSet \"{name}\" is progressing.")),
                    ],
                })
            };
            // Kept as it was while only the times would change: a quiet cluster stays quiet.
            let same = |a: &Value, b: &Value| {
                let strip = |v: &Value| {
                    let mut v = v.clone();
                    if let Some(cs) = v.get_mut("conditions").and_then(Value::as_array_mut) {
                        for c in cs {
                            if let Some(m) = c.as_object_mut() {
                                m.remove("lastUpdateTime");
                                m.remove("lastTransitionTime");
                            }
                        }
                    }
                    v
                };
                strip(a) == strip(b)
            };
            if !same(&old, &status) {
                put_status(store, &info, &d, status, DEPLOYMENT_CONTROLLER);
            }
        }
        self.loaded_deployments.retain(|u, _| seen.contains(u));
        self.deployments.retain(|u| seen.contains(u));
    }
}

impl Reconciler for Workloads {
    fn pass(&mut self, store: &Store) {
        jobs(store);
        self.deployments(store);
        self.daemonsets(store);
        self.pods(store);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DeleteOptions, WriteOptions};

    fn config() -> WorkloadsConfig {
        serde_json::from_value(json!({})).unwrap()
    }

    fn node(store: &Store, name: &str, unschedulable: bool) {
        let info = resource(store, "", "nodes").unwrap();
        let n = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"unschedulable": unschedulable}});
        store
            .create(&info, None, n, &WriteOptions::default())
            .unwrap();
    }

    fn pods_of(store: &Store, uid: &str) -> Vec<Value> {
        let info = resource(store, "", "pods").unwrap();
        list(store, &info)
            .into_iter()
            .filter(|p| owned_by(std::slice::from_ref(p), uid).len() == 1)
            .collect()
    }

    #[test]
    fn a_daemonset_gets_one_running_pod_per_schedulable_node_with_its_own_ip() {
        let store = Store::new();
        node(&store, "n1", false);
        node(&store, "n2", false);
        node(&store, "cordoned", true);
        let ds_info = resource(&store, "apps", "daemonsets").unwrap();
        let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "probe", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "probe"}},
                "template": {"metadata": {"labels": {"app": "probe"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        let created = store
            .create(&ds_info, Some("default"), ds, &WriteOptions::default())
            .unwrap();
        let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
        let mut w = Workloads::new(&config(), PodLogs::default());
        for _ in 0..4 {
            w.pass(&store);
        }
        let pods = pods_of(&store, &uid);
        let mut on: Vec<&str> = pods
            .iter()
            .map(|p| str_at(p, "/spec/nodeName").unwrap())
            .collect();
        on.sort();
        assert_eq!(on, ["n1", "n2"]);
        assert!(pods.iter().all(|p| p["status"]["phase"] == "Running"));
        assert!(
            pods.iter()
                .all(|p| p["metadata"]["labels"]["app"] == "probe")
        );
        let ips: HashSet<&str> = pods
            .iter()
            .map(|p| str_at(p, "/status/podIP").unwrap())
            .collect();
        assert_eq!(ips.len(), 2, "{ips:?}");
        let ds = store.get(&ds_info, Some("default"), "probe").unwrap();
        assert_eq!(ds["status"]["desiredNumberScheduled"], 2);
        assert_eq!(ds["status"]["numberReady"], 2);
    }

    fn deployment(name: &str, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "manager", "image": image}]}}}})
    }

    #[test]
    fn a_deployment_changed_by_a_client_is_rolled_out_after_the_delay() {
        let store = Store::new();
        let info = resource(&store, "apps", "deployments").unwrap();
        let mut loaded = deployment("loaded", "ghcr.io/fluxcd/helm-controller:v1.6.2");
        loaded["status"] = json!({"observedGeneration": 1, "replicas": 3, "availableReplicas": 1});
        store.load(&info, loaded).unwrap();
        store
            .create(
                &info,
                Some("flux-system"),
                deployment("ours", "ghcr.io/fluxcd/source-controller:v1.9.3"),
                &WriteOptions::default(),
            )
            .unwrap();
        let cfg: WorkloadsConfig = serde_json::from_value(json!({"delay": "300ms"})).unwrap();
        let mut w = Workloads::new(&cfg, PodLogs::default());
        let get = |name: &str| store.get(&info, Some("flux-system"), name).unwrap();
        let counts = |d: &Value| {
            let n = |k: &str| d["status"][k].as_i64().unwrap_or(-1);
            (
                n("observedGeneration"),
                n("updatedReplicas"),
                n("availableReplicas"),
            )
        };

        w.pass(&store);
        // Seen at once, not yet rolled out.
        assert_eq!(counts(&get("ours")), (1, 0, 0));
        std::thread::sleep(std::time::Duration::from_millis(350));
        w.pass(&store);
        let done = get("ours");
        assert_eq!(counts(&done), (1, 2, 2));
        assert_eq!(done["status"]["readyReplicas"], 2);
        let rv = done["metadata"]["resourceVersion"].clone();
        w.pass(&store);
        assert_eq!(
            get("ours")["metadata"]["resourceVersion"],
            rv,
            "a quiet pass wrote"
        );

        // A new image: a new generation, the old pods serve until the new ones are up.
        let mut changed = get("ours");
        changed["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!("ghcr.io/fluxcd/source-controller:v1.9.4");
        store
            .update(
                &info,
                Some("flux-system"),
                "ours",
                changed,
                false,
                &WriteOptions::default(),
            )
            .unwrap();
        w.pass(&store);
        assert_eq!(counts(&get("ours")), (2, 0, 2));
        std::thread::sleep(std::time::Duration::from_millis(350));
        w.pass(&store);
        assert_eq!(counts(&get("ours")), (2, 2, 2));

        // The loaded one keeps its picture until a client changes its spec.
        assert_eq!(counts(&get("loaded")), (1, -1, 1));
        let mut changed = get("loaded");
        changed["spec"]["replicas"] = json!(1);
        store
            .update(
                &info,
                Some("flux-system"),
                "loaded",
                changed,
                false,
                &WriteOptions::default(),
            )
            .unwrap();
        w.pass(&store);
        std::thread::sleep(std::time::Duration::from_millis(350));
        w.pass(&store);
        assert_eq!(counts(&get("loaded")), (2, 1, 1));
    }

    #[test]
    fn a_loaded_daemonset_is_left_alone_and_a_deleted_one_gets_no_new_pods() {
        let store = Store::new();
        node(&store, "n1", false);
        let ds_info = resource(&store, "apps", "daemonsets").unwrap();
        let loaded = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "loaded", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}},
            "status": {"desiredNumberScheduled": 3, "numberReady": 3}});
        let loaded = store.load(&ds_info, loaded).unwrap();
        let mut w = Workloads::new(&config(), PodLogs::default());
        w.pass(&store);
        assert!(pods_of(&store, loaded["metadata"]["uid"].as_str().unwrap()).is_empty());

        let ours = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "ours", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}});
        let ours = store
            .create(&ds_info, Some("default"), ours, &WriteOptions::default())
            .unwrap();
        let uid = ours["metadata"]["uid"].as_str().unwrap().to_string();
        w.pass(&store);
        assert_eq!(pods_of(&store, &uid).len(), 1);
        store
            .delete(&ds_info, Some("default"), "ours", &DeleteOptions::default())
            .unwrap();
        w.pass(&store);
        w.pass(&store);
        assert!(
            pods_of(&store, &uid).is_empty(),
            "pods outlived their DaemonSet"
        );
    }
}
