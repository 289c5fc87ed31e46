//! `validate-storage`, part two: real bytes through a real volume. A PVC
//! on the storage class, a Job that writes random data and prints its
//! sha256, a second Job (on another node when there is one) that reads it
//! back and prints the sum it sees; the sums must agree. Everything it
//! creates is deleted afterwards, also when a step fails or the run is
//! interrupted, and the clean-up itself is checked.

use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use serde_json::{Value, json};
use upkeep_contract::{CheckStatus, ObjectRef};
use upkeep_kube::{ApplyOptions, Cluster, ClusterRead, ListOptions, Resource, ResourceRef, Until};

use crate::{Checks, ValidateError};

const CHECK: &str = "storage/data-roundtrip";
const CLEANUP: &str = "storage/data-test-cleanup";
const FIELD_MANAGER: &str = "upkeep-validate";
/// The label on everything the test creates, to find it again.
pub const TEST_LABEL: &str = "upkeep.dev/storage-test";

#[derive(Debug, Clone)]
pub struct DataTestOptions {
    pub namespace: String,
    pub storage_class: String,
    pub image: String,
    /// MiB of random data written.
    pub mebibytes: u32,
    pub within: Duration,
}

impl Default for DataTestOptions {
    fn default() -> Self {
        DataTestOptions {
            namespace: "default".to_string(),
            storage_class: "longhorn".to_string(),
            image: "docker.io/library/busybox:1.37".to_string(),
            mebibytes: 8,
            within: Duration::from_secs(300),
        }
    }
}

struct Kinds {
    pvc: Resource,
    job: Resource,
    pod: Resource,
}

/// Runs the data test and its clean-up, adding both checks to `out`.
pub async fn run(
    cluster: &Cluster,
    opts: &DataTestOptions,
    out: &mut Checks,
) -> Result<(), ValidateError> {
    let kinds = Kinds {
        pvc: cluster
            .resource(&ResourceRef::preferred("", "PersistentVolumeClaim"))
            .await?,
        job: cluster
            .resource(&ResourceRef::preferred("batch", "Job"))
            .await?,
        pod: cluster.resource(&ResourceRef::preferred("", "Pod")).await?,
    };
    let id = format!(
        "upkeep-storage-{}",
        jiff::Timestamp::now().strftime("%Y%m%d%H%M%S")
    );
    let start = Instant::now();
    let outcome = tokio::select! {
        r = roundtrip(cluster, &kinds, &id, opts) => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
    };
    let refs = vec![object_ref(&kinds.pvc, &opts.namespace, &id)];
    match outcome {
        Ok(detail) => out.push(CHECK, CheckStatus::Pass, &detail, refs, start),
        Err(detail) => out.push(CHECK, CheckStatus::Fail, &detail, refs, start),
    }
    let start = Instant::now();
    let left = cleanup(cluster, &kinds, &id, &opts.namespace).await;
    match left {
        Ok(()) => out.push(
            CLEANUP,
            CheckStatus::Pass,
            &format!("everything {id} created is gone"),
            Vec::new(),
            start,
        ),
        Err(detail) => out.push(CLEANUP, CheckStatus::Fail, &detail, Vec::new(), start),
    }
    Ok(())
}

fn object_ref(res: &Resource, ns: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: res.api.api_version.clone(),
        kind: res.api.kind.clone(),
        namespace: Some(ns.to_string()),
        name: name.to_string(),
    }
}

/// Write, read back, compare. `Err` carries what a person can act on.
async fn roundtrip(
    cluster: &Cluster,
    k: &Kinds,
    id: &str,
    opts: &DataTestOptions,
) -> Result<String, String> {
    let apply = ApplyOptions::new(FIELD_MANAGER);
    let ns = opts.namespace.as_str();
    let pvc = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": id, "namespace": ns, "labels": {TEST_LABEL: id}},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": opts.storage_class,
            "resources": {"requests": {"storage": format!("{}Mi", opts.mebibytes * 2 + 16)}}}
    });
    cluster
        .create(&k.pvc, &pvc, &apply)
        .await
        .map_err(|e| format!("creating the test PVC: {e}"))?;
    let write = format!(
        "set -e; dd if=/dev/urandom of=/data/probe bs=1048576 count={} 2>/dev/null; sync; sha256sum /data/probe",
        opts.mebibytes
    );
    let writer = format!("{id}-write");
    let written = job_sum(cluster, k, &writer, ns, id, &write, None, opts).await?;
    let writer_node = job_node(cluster, k, &writer, ns).await;
    let reader = format!("{id}-read");
    let read = job_sum(
        cluster,
        k,
        &reader,
        ns,
        id,
        "set -e; sha256sum /data/probe",
        writer_node.as_deref(),
        opts,
    )
    .await?;
    if read != written {
        return Err(format!(
            "the data read back differs: written sha256 {written}, read {read} (PVC {ns}/{id}, storage class {})",
            opts.storage_class
        ));
    }
    Ok(format!(
        "{} MiB written and read back{} through storage class {}: sha256 {written}",
        opts.mebibytes,
        match &writer_node {
            Some(n) => format!(" (written on {n}, read elsewhere when another node could take it)"),
            None => String::new(),
        },
        opts.storage_class
    ))
}

#[allow(clippy::too_many_arguments)]
async fn job_sum(
    cluster: &Cluster,
    k: &Kinds,
    name: &str,
    ns: &str,
    id: &str,
    script: &str,
    avoid_node: Option<&str>,
    opts: &DataTestOptions,
) -> Result<String, String> {
    let mut spec = json!({
        "restartPolicy": "Never",
        "containers": [{"name": "probe", "image": opts.image, "command": ["sh", "-c", script],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": id}}]
    });
    if let Some(node) = avoid_node {
        spec["affinity"] = json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100, "preference": {"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [node]}]}}]}});
    }
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": ns, "labels": {TEST_LABEL: id}},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {TEST_LABEL: id}}, "spec": spec}}
    });
    cluster
        .create(&k.job, &job, &ApplyOptions::new(FIELD_MANAGER))
        .await
        .map_err(|e| format!("creating Job {name}: {e}"))?;
    let done = cluster
        .wait_for(
            &k.job,
            Some(ns),
            name,
            &Until::custom("Complete or Failed", |o| {
                upkeep_kube::condition(o, "Complete").is_some_and(|c| c.status == "True")
                    || upkeep_kube::condition(o, "Failed").is_some_and(|c| c.status == "True")
            }),
            opts.within,
        )
        .await
        .map_err(|e| format!("Job {ns}/{name}: {e}"))?;
    let logs = cluster.job_logs(ns, name).await.unwrap_or_default();
    let failed = upkeep_kube::condition(&done, "Failed").is_some_and(|c| c.status == "True");
    let sum = parse_sum(&logs);
    match (failed, sum) {
        (false, Some(s)) => Ok(s),
        _ => {
            let tail: Vec<&str> = logs
                .lines()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Err(format!(
                "Job {ns}/{name} {}: {}",
                if failed {
                    "failed"
                } else {
                    "printed no sha256"
                },
                if tail.is_empty() {
                    "no log".to_string()
                } else {
                    tail.join(" | ")
                }
            ))
        }
    }
}

/// `sha256sum`'s line for the probe file.
fn parse_sum(logs: &str) -> Option<String> {
    logs.lines().rev().find_map(|l| {
        let mut parts = l.split_whitespace();
        let (sum, file) = (parts.next()?, parts.next()?);
        (file == "/data/probe" && sum.len() == 64 && sum.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| sum.to_ascii_lowercase())
    })
}

async fn job_node(cluster: &Cluster, k: &Kinds, job: &str, ns: &str) -> Option<String> {
    let opts = ListOptions::in_namespace(ns).labels(&format!("job-name={job}"));
    let pods: Vec<_> = cluster.list(&k.pod, &opts).try_collect().await.ok()?;
    pods.iter().find_map(|p| {
        let v = serde_json::to_value(p).ok()?;
        v.pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .map(str::to_string)
    })
}

/// Deletes the Jobs, their pods and the PVC, then checks they are gone.
async fn cleanup(cluster: &Cluster, k: &Kinds, id: &str, ns: &str) -> Result<(), String> {
    let selector = ListOptions::in_namespace(ns).labels(&format!("{TEST_LABEL}={id}"));
    let mut problems = Vec::new();
    for res in [&k.job, &k.pod, &k.pvc] {
        let listed: Vec<_> = match cluster.list(res, &selector).try_collect().await {
            Ok(l) => l,
            Err(e) => {
                problems.push(format!("listing {}: {e}", res.api.kind));
                continue;
            }
        };
        for o in listed {
            let Some(name) = o.metadata.name.as_deref() else {
                continue;
            };
            if let Err(e) = cluster.delete(res, Some(ns), name).await {
                problems.push(e.to_string());
            }
        }
    }
    // Deletion can take a moment (finalizers, pods terminating).
    let mut left = Vec::new();
    for _ in 0..50 {
        left.clear();
        for res in [&k.job, &k.pod, &k.pvc] {
            let listed: Vec<_> = cluster
                .list(res, &selector)
                .try_collect()
                .await
                .unwrap_or_default();
            left.extend(
                listed
                    .iter()
                    .filter_map(|o| o.metadata.name.clone())
                    .map(|n| format!("{} {ns}/{n}", res.api.kind)),
            );
        }
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    problems.extend(left);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("left behind: {}", problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sum_line_is_read_strictly() {
        let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(
            parse_sum(&format!("noise\n{sha}  /data/probe\n")).as_deref(),
            Some(sha)
        );
        assert!(parse_sum(&format!("{sha}  /etc/passwd")).is_none());
        assert!(parse_sum("abc  /data/probe").is_none());
        assert!(parse_sum("").is_none());
    }
}
