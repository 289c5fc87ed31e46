//! `validate-storage`, part two: real bytes through a real volume. A PVC
//! on the storage class, a Job that writes random data and prints its
//! sha256, a second Job (on another node when there is one) that reads it
//! back and prints the sum it sees; the sums must agree. Everything it
//! creates is deleted afterwards, also when a step fails or the run is
//! interrupted, and the clean-up itself is checked.
//!
//! With `--with-restore`, the test volume also goes through Longhorn's restore path: a
//! Longhorn Snapshot of it, a pre-provisioned VolumeSnapshotContent naming that snapshot
//! (`snap://VOLUME/SNAPSHOT`), a VolumeSnapshot bound to it, a PVC created from the
//! VolumeSnapshot, and a reader Job on that PVC whose sum must be the one written. All of it
//! carries the test's label and is deleted afterwards, and the clean-up check covers it.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use serde_json::{Value, json};
use upkeep_contract::{CheckStatus, ObjectRef};
use upkeep_kube::{ApplyOptions, Cluster, ClusterRead, ListOptions, Resource, ResourceRef, Until};

use crate::{Checks, ValidateError};

const CHECK: &str = "storage/data-roundtrip";
const RESTORE_CHECK: &str = "storage/restore-roundtrip";
const CLEANUP: &str = "storage/data-test-cleanup";
const LONGHORN_DRIVER: &str = "driver.longhorn.io";
const SNAPSHOT_GROUP: &str = "snapshot.storage.k8s.io";
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
    /// Also snapshot the test volume, restore it into a new PVC and read the sum back.
    pub with_restore: bool,
}

impl Default for DataTestOptions {
    fn default() -> Self {
        DataTestOptions {
            namespace: "default".to_string(),
            storage_class: "longhorn".to_string(),
            image: "docker.io/library/busybox:1.37".to_string(),
            mebibytes: 8,
            within: Duration::from_secs(300),
            with_restore: false,
        }
    }
}

struct Kinds {
    pvc: Resource,
    job: Resource,
    pod: Resource,
    pv: Resource,
    /// The kinds the restore part creates; absent when not served (the restore check then
    /// says so, and the clean-up has nothing of them to look for).
    longhorn_volume: Option<Resource>,
    longhorn_snapshot: Option<Resource>,
    volume_snapshot: Option<Resource>,
    volume_snapshot_content: Option<Resource>,
}

async fn optional(
    cluster: &Cluster,
    group: &str,
    kind: &str,
) -> Result<Option<Resource>, ValidateError> {
    match cluster.resource(&ResourceRef::preferred(group, kind)).await {
        Ok(r) => Ok(Some(r)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
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
        pv: cluster
            .resource(&ResourceRef::preferred("", "PersistentVolume"))
            .await?,
        longhorn_volume: optional(cluster, "longhorn.io", "Volume").await?,
        longhorn_snapshot: optional(cluster, "longhorn.io", "Snapshot").await?,
        volume_snapshot: optional(cluster, SNAPSHOT_GROUP, "VolumeSnapshot").await?,
        volume_snapshot_content: optional(cluster, SNAPSHOT_GROUP, "VolumeSnapshotContent").await?,
    };
    let id = format!(
        "upkeep-storage-{}",
        jiff::Timestamp::now().strftime("%Y%m%d%H%M%S")
    );
    let start = Instant::now();
    // Each outcome is kept as soon as it is known, so an interruption or the deadline in the
    // restore part still reports the data check that finished.
    let data: RefCell<Option<Result<String, String>>> = RefCell::new(None);
    let restored: RefCell<Option<(Result<String, String>, Instant)>> = RefCell::new(None);
    let work = async {
        let r = roundtrip(cluster, &kinds, &id, opts).await;
        let sum = r.as_ref().ok().map(|(_, sum)| sum.clone());
        *data.borrow_mut() = Some(r.map(|(detail, _)| detail));
        if let (true, Some(sum)) = (opts.with_restore, sum) {
            let start = Instant::now();
            let r = restore_roundtrip(cluster, &kinds, &id, opts, &sum).await;
            *restored.borrow_mut() = Some((r, start));
        }
    };
    // Every wait has its own deadline; this bounds the whole, leaving the caller's deadline
    // time for the clean-up.
    let budget = opts.within * if opts.with_restore { 6 } else { 2 };
    let stopped = tokio::select! {
        r = tokio::time::timeout(budget, work) => r.err().map(|_| format!(
            "did not finish within {}s", budget.as_secs()
        )),
        _ = tokio::signal::ctrl_c() => Some("interrupted".to_string()),
    };
    let refs = vec![object_ref(&kinds.pvc, &opts.namespace, &id)];
    let data = data
        .into_inner()
        .unwrap_or_else(|| Err(stopped.clone().unwrap_or_default()));
    let data_passed = data.is_ok();
    match data {
        Ok(detail) => out.push(CHECK, CheckStatus::Pass, &detail, refs, start),
        Err(detail) => out.push(CHECK, CheckStatus::Fail, &detail, refs, start),
    }
    if opts.with_restore {
        let refs = vec![object_ref(
            &kinds.pvc,
            &opts.namespace,
            &format!("{id}-restored"),
        )];
        match (restored.into_inner(), data_passed) {
            (Some((Ok(detail), start)), _) => {
                out.push(RESTORE_CHECK, CheckStatus::Pass, &detail, refs, start)
            }
            (Some((Err(detail), start)), _) => {
                out.push(RESTORE_CHECK, CheckStatus::Fail, &detail, refs, start)
            }
            (None, true) => out.push(
                RESTORE_CHECK,
                CheckStatus::Fail,
                &format!(
                    "the restore round trip {}",
                    stopped.as_deref().unwrap_or("did not run")
                ),
                refs,
                start,
            ),
            (None, false) => out.not_run(
                RESTORE_CHECK,
                "the data round trip failed, so there was no verified data to snapshot and restore",
            ),
        }
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

/// Write, read back, compare: (what passed, the sum). `Err` carries what a person can act on.
async fn roundtrip(
    cluster: &Cluster,
    k: &Kinds,
    id: &str,
    opts: &DataTestOptions,
) -> Result<(String, String), String> {
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
    let written = job_sum(cluster, k, &writer, ns, id, id, &write, None, opts).await?;
    let writer_node = job_node(cluster, k, &writer, ns).await;
    let reader = format!("{id}-read");
    let read = job_sum(
        cluster,
        k,
        &reader,
        ns,
        id,
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
    Ok((
        format!(
            "{} MiB written and read back{} through storage class {}: sha256 {written}",
            opts.mebibytes,
            match &writer_node {
                Some(n) =>
                    format!(" (written on {n}, read elsewhere when another node could take it)"),
                None => String::new(),
            },
            opts.storage_class
        ),
        written,
    ))
}

/// Snapshot the test volume, restore the snapshot into a new PVC through the CSI snapshot
/// API, read the sum back from it. `Err` carries what a person can act on.
async fn restore_roundtrip(
    cluster: &Cluster,
    k: &Kinds,
    id: &str,
    opts: &DataTestOptions,
    written: &str,
) -> Result<String, String> {
    let ns = opts.namespace.as_str();
    let (Some(lh_snap), Some(vs_res), Some(vsc_res)) = (
        &k.longhorn_snapshot,
        &k.volume_snapshot,
        &k.volume_snapshot_content,
    ) else {
        return Err(format!(
            "the cluster does not serve {}: restoring a Longhorn snapshot into a PVC needs Longhorn's Snapshot kind and the CSI snapshot CRDs (VolumeSnapshot, VolumeSnapshotContent) with the snapshot-controller (Longhorn docs: Enable CSI Snapshot Support)",
            [
                (k.longhorn_snapshot.is_none(), "snapshots.longhorn.io"),
                (
                    k.volume_snapshot.is_none(),
                    "volumesnapshots.snapshot.storage.k8s.io"
                ),
                (
                    k.volume_snapshot_content.is_none(),
                    "volumesnapshotcontents.snapshot.storage.k8s.io"
                ),
            ]
            .iter()
            .filter(|(missing, _)| *missing)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(", ")
        ));
    };
    let value = |o: upkeep_kube::DynamicObject| serde_json::to_value(&o).unwrap_or(Value::Null);
    let pvc = cluster
        .get(&k.pvc, Some(ns), id)
        .await
        .map_err(|e| format!("reading the test PVC: {e}"))?
        .map(value)
        .ok_or_else(|| format!("the test PVC {ns}/{id} is gone"))?;
    let pv_name = str_of(&pvc, "/spec/volumeName")
        .ok_or_else(|| format!("the test PVC {ns}/{id} is not bound to a volume"))?;
    let pv = cluster
        .get(&k.pv, None, &pv_name)
        .await
        .map_err(|e| format!("reading PersistentVolume {pv_name}: {e}"))?
        .map(value)
        .ok_or_else(|| format!("PersistentVolume {pv_name} of the test PVC is gone"))?;
    if str_of(&pv, "/spec/csi/driver").as_deref() != Some(LONGHORN_DRIVER) {
        return Err(format!(
            "PersistentVolume {pv_name} of storage class {} is not a Longhorn volume ({LONGHORN_DRIVER}): only Longhorn volumes are snapshotted and restored",
            opts.storage_class
        ));
    }
    let volume = str_of(&pv, "/spec/csi/volumeHandle")
        .ok_or_else(|| format!("PersistentVolume {pv_name} has no CSI volume handle"))?;
    // The snapshot lives next to its Longhorn Volume.
    let lh_ns = match &k.longhorn_volume {
        Some(res) => {
            let listed: Vec<_> = cluster
                .list(
                    res,
                    &ListOptions::all_namespaces().fields(&format!("metadata.name={volume}")),
                )
                .try_collect()
                .await
                .map_err(|e| format!("finding Longhorn volume {volume}: {e}"))?;
            listed
                .into_iter()
                .find_map(|v| v.metadata.namespace)
                .unwrap_or_else(|| "longhorn-system".to_string())
        }
        None => "longhorn-system".to_string(),
    };
    let apply = ApplyOptions::new(FIELD_MANAGER);
    let labels = json!({TEST_LABEL: id});
    let snapshot = json!({
        "apiVersion": lh_snap.api.api_version, "kind": "Snapshot",
        "metadata": {"name": id, "namespace": lh_ns, "labels": labels},
        "spec": {"volume": volume, "createSnapshot": true, "labels": {TEST_LABEL: id}}
    });
    cluster
        .create(lh_snap, &snapshot, &apply)
        .await
        .map_err(|e| format!("creating Longhorn snapshot {lh_ns}/{id} of volume {volume}: {e}"))?;
    cluster
        .wait_for(
            lh_snap,
            Some(&lh_ns),
            id,
            &Until::field("/status/readyToUse", Value::Bool(true)),
            opts.within,
        )
        .await
        .map_err(|e| {
            format!(
                "the Longhorn snapshot {lh_ns}/{id} of volume {volume} did not become ready: {e}"
            )
        })?;
    let handle = format!("snap://{volume}/{id}");
    // Retain: the clean-up deletes the Longhorn snapshot itself and checks it is gone.
    let content = json!({
        "apiVersion": vsc_res.api.api_version, "kind": "VolumeSnapshotContent",
        "metadata": {"name": id, "labels": labels},
        "spec": {"driver": LONGHORN_DRIVER, "deletionPolicy": "Retain",
            "source": {"snapshotHandle": handle},
            "volumeSnapshotRef": {"name": id, "namespace": ns}}
    });
    cluster
        .create(vsc_res, &content, &apply)
        .await
        .map_err(|e| format!("creating VolumeSnapshotContent {id}: {e}"))?;
    let vs = json!({
        "apiVersion": vs_res.api.api_version, "kind": "VolumeSnapshot",
        "metadata": {"name": id, "namespace": ns, "labels": labels},
        "spec": {"source": {"volumeSnapshotContentName": id}}
    });
    cluster
        .create(vs_res, &vs, &apply)
        .await
        .map_err(|e| format!("creating VolumeSnapshot {ns}/{id}: {e}"))?;
    cluster
        .wait_for(
            vs_res,
            Some(ns),
            id,
            &Until::field("/status/readyToUse", Value::Bool(true)),
            opts.within,
        )
        .await
        .map_err(|e| format!("VolumeSnapshot {ns}/{id} ({handle}) did not become ready: {e}"))?;
    let restored = format!("{id}-restored");
    let claim = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": restored, "namespace": ns, "labels": labels},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": opts.storage_class,
            "resources": {"requests": {"storage": format!("{}Mi", opts.mebibytes * 2 + 16)}},
            "dataSource": {"apiGroup": SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": id}}
    });
    cluster
        .create(&k.pvc, &claim, &apply)
        .await
        .map_err(|e| format!("creating PVC {ns}/{restored} from VolumeSnapshot {ns}/{id}: {e}"))?;
    let reader = format!("{id}-restored-read");
    let read = job_sum(
        cluster,
        k,
        &reader,
        ns,
        id,
        &restored,
        "set -e; sha256sum /data/probe",
        None,
        opts,
    )
    .await
    .map_err(|e| format!("reading the restored PVC {ns}/{restored}: {e}"))?;
    if read != written {
        return Err(format!(
            "the restored PVC {ns}/{restored} reads back sha256 {read}, but {written} was written before the snapshot (Longhorn snapshot {lh_ns}/{id}, {handle})"
        ));
    }
    Ok(format!(
        "Longhorn snapshot {lh_ns}/{id} of volume {volume} restored into PVC {ns}/{restored} through VolumeSnapshot {ns}/{id} ({handle}): sha256 {written} read back"
    ))
}

fn str_of(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[allow(clippy::too_many_arguments)]
async fn job_sum(
    cluster: &Cluster,
    k: &Kinds,
    name: &str,
    ns: &str,
    id: &str,
    claim: &str,
    script: &str,
    avoid_node: Option<&str>,
    opts: &DataTestOptions,
) -> Result<String, String> {
    let mut spec = json!({
        "restartPolicy": "Never",
        "containers": [{"name": "probe", "image": opts.image, "command": ["sh", "-c", script],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
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
    // The Job is the claim's first consumer: a WaitForFirstConsumer class binds it now, and
    // a claim that is never provisioned is said as such rather than as a stuck Job.
    cluster
        .wait_for(
            &k.pvc,
            Some(ns),
            claim,
            &Until::field("/status/phase", json!("Bound")),
            opts.within,
        )
        .await
        .map_err(|e| {
            format!("PVC {ns}/{claim} was not provisioned (kubectl describe pvc -n {ns} {claim} shows why): {e}")
        })?;
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

/// Deletes what the test created — the Jobs, their pods and the PVCs, then the
/// VolumeSnapshots, VolumeSnapshotContents and Longhorn snapshots of the restore part — and
/// checks it is gone, with the PVs provisioned for the PVCs (deleted by the provisioner under
/// a `Delete` reclaim policy).
async fn cleanup(cluster: &Cluster, k: &Kinds, id: &str, ns: &str) -> Result<(), String> {
    let label = format!("{TEST_LABEL}={id}");
    let here = ListOptions::in_namespace(ns).labels(&label);
    let anywhere = ListOptions::all_namespaces().labels(&label);
    // Claims before the snapshots they were made from; the Longhorn snapshot last.
    let mut kinds: Vec<(&Resource, &ListOptions)> =
        vec![(&k.job, &here), (&k.pod, &here), (&k.pvc, &here)];
    if let Some(r) = &k.volume_snapshot {
        kinds.push((r, &here));
    }
    if let Some(r) = &k.volume_snapshot_content {
        kinds.push((r, &anywhere));
    }
    if let Some(r) = &k.longhorn_snapshot {
        kinds.push((r, &anywhere));
    }
    let mut problems = Vec::new();
    let mut volumes = Vec::new();
    for (res, selector) in &kinds {
        let listed: Vec<_> = match cluster.list(res, selector).try_collect().await {
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
            if res.api.kind == "PersistentVolumeClaim"
                && let Some(pv) = o.data.pointer("/spec/volumeName").and_then(Value::as_str)
                && !pv.is_empty()
            {
                volumes.push(pv.to_string());
            }
            if let Err(e) = cluster
                .delete(res, o.metadata.namespace.as_deref(), name)
                .await
            {
                problems.push(e.to_string());
            }
        }
    }
    // Deletion can take a moment (finalizers, pods terminating, the provisioner's reclaim).
    let mut left = Vec::new();
    for _ in 0..100 {
        left.clear();
        for (res, selector) in &kinds {
            let listed: Vec<_> = cluster
                .list(res, selector)
                .try_collect()
                .await
                .unwrap_or_default();
            left.extend(listed.iter().filter_map(|o| {
                let name = o.metadata.name.clone()?;
                Some(match &o.metadata.namespace {
                    Some(n) => format!("{} {n}/{name}", res.api.kind),
                    None => format!("{} {name}", res.api.kind),
                })
            }));
        }
        for pv in &volumes {
            if let Ok(Some(o)) = cluster.get(&k.pv, None, pv).await
                && o.data
                    .pointer("/spec/persistentVolumeReclaimPolicy")
                    .and_then(Value::as_str)
                    == Some("Delete")
            {
                left.push(format!("PersistentVolume {pv}"));
            }
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
