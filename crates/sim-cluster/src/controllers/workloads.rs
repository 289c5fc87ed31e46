//! Jobs and Pods: a Job gets pods (one at a time, up to `completions`, retried up to
//! `backoffLimit`) and the `Complete`/`Failed` conditions; a pod created by a client is
//! scheduled on a node, runs, and — when it runs to completion (`restartPolicy` Never or
//! OnFailure) — ends `Succeeded` or, when `SIM.yaml` says so, `Failed`, with the logs
//! configured for it served by `pods/log`. Pods loaded with a phase are left alone.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Value, json};

use super::{
    Delay, PodLogs, Reconciler, list, merge, name_of, ns_of, opts, put_status, resource, str_at,
};
use crate::config::{PodBehaviour, PodResult, WorkloadsConfig, glob_match};
use crate::store::{Store, now};

const KUBELET: &str = "kubelet";
const JOB_CONTROLLER: &str = "job-controller";

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
}

impl Workloads {
    pub(super) fn new(cfg: &WorkloadsConfig, logs: PodLogs) -> Self {
        Workloads {
            pods: cfg.pods.clone(),
            logs,
            delay: Delay::new(cfg.delay.0),
            tracked: HashMap::new(),
        }
    }
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
        let node = resource(store, "", "nodes").and_then(|n| {
            list(store, &n)
                .into_iter()
                .find(|n| n.pointer("/spec/unschedulable") != Some(&json!(true)))
                .map(|n| name_of(&n).to_string())
        });
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
                    status["podIP"] = json!("10.42.0.100");
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

impl Reconciler for Workloads {
    fn pass(&mut self, store: &Store) {
        jobs(store);
        self.pods(store);
    }
}
