//! `restore --volumes`: each Longhorn volume recorded in the restore point (a Longhorn
//! Snapshot or Backup taken by `snapshot create --longhorn`) comes back as the claim that used
//! it, with the recorded data, through the Kubernetes CSI snapshot API only — a
//! pre-provisioned VolumeSnapshotContent whose handle names the Longhorn snapshot
//! (`snap://VOLUME/SNAPSHOT`) or backup (`bak://VOLUME/BACKUP`), a VolumeSnapshot bound to it,
//! and the claim created with that VolumeSnapshot as its `dataSource`; Longhorn's CSI driver
//! makes the new volume from it. A short Job then mounts the claim read-only and prints a
//! digest of every file, proving the volume attaches, mounts and reads back.
//!
//! A claim that exists is never touched in `create` mode; in `replace` mode it is replaced
//! only when no running pod mounts it (a failure names the pods otherwise: the workload must
//! be scaled down first, a restore never pulls storage from under a running app).
//!
//! The contents are created with `deletionPolicy: Retain`: deleting them later never deletes
//! the recorded snapshot or backup they point at.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use serde_json::{Value, json};
use upkeep_contract::{
    ObjectRef, RestoreAction, RestoreMode, RestoredObject, RestoredVolume, SafeText, VolumeBackup,
    VolumeBackupKind,
};
use upkeep_kube::{ApplyOptions, Cluster, ClusterRead, ListOptions, Resource, ResourceRef, Until};

use crate::order::group_kind;

/// Longhorn's CSI driver.
pub const DRIVER: &str = "driver.longhorn.io";
const SNAPSHOT_GROUP: &str = "snapshot.storage.k8s.io";
/// Labels on what `--volumes` creates, to find it again.
pub const RESTORE_POINT_LABEL: &str = "upkeep.dev/restore-point";
pub const VOLUME_LABEL: &str = "upkeep.dev/restored-volume";
pub const CHECK_LABEL: &str = "upkeep.dev/volume-check";
/// Annotations the old binding left on a stored claim: a new claim must not carry them, or
/// the controllers would take it as already bound.
const BINDING_ANNOTATIONS: &[&str] = &[
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
];

/// How `--volumes` runs.
#[derive(Debug, Clone)]
pub struct VolumeOptions {
    /// What the restore point recorded (its manifest's `volumes`).
    pub recorded: Vec<VolumeBackup>,
    /// The restore point's PersistentVolumes, PersistentVolumeClaims and Longhorn Volumes,
    /// whatever `--only` selected: they map a volume to its claim.
    pub stored: Vec<Value>,
    /// The data check's image (needs sh, find, sort, xargs, sha256sum).
    pub check_image: String,
    /// How long each wait (snapshot ready, claim bound, check Job) may take.
    pub timeout: Duration,
}

/// The CSI snapshot handle Longhorn reads for a recorded snapshot or backup.
pub fn handle(kind: VolumeBackupKind, volume: &str, name: &str) -> String {
    match kind {
        VolumeBackupKind::Snapshot => format!("snap://{volume}/{name}"),
        VolumeBackupKind::Backup => format!("bak://{volume}/{name}"),
    }
}

fn str_at<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The claim (namespace, name) that used `volume`: the stored PV whose CSI handle is the
/// volume, by its claimRef; else the stored Longhorn Volume's `status.kubernetesStatus`.
pub fn claim_of(volume: &str, stored: &[Value]) -> Option<(String, String)> {
    let from_pv = stored.iter().find_map(|o| {
        (group_kind(o) == ("", "PersistentVolume")
            && str_at(o, "/spec/csi/driver") == Some(DRIVER)
            && str_at(o, "/spec/csi/volumeHandle") == Some(volume))
        .then(|| {
            Some((
                str_at(o, "/spec/claimRef/namespace")?.to_string(),
                str_at(o, "/spec/claimRef/name")?.to_string(),
            ))
        })
        .flatten()
    });
    from_pv.or_else(|| {
        stored.iter().find_map(|o| {
            (group_kind(o) == ("longhorn.io", "Volume")
                && str_at(o, "/metadata/name") == Some(volume))
            .then(|| {
                Some((
                    str_at(o, "/status/kubernetesStatus/namespace")?.to_string(),
                    str_at(o, "/status/kubernetesStatus/pvcName")?.to_string(),
                ))
            })
            .flatten()
        })
    })
}

/// One volume to bring back.
#[derive(Debug, Clone)]
pub struct VolumePlan {
    pub recorded: VolumeBackup,
    pub namespace: String,
    pub claim: String,
    /// The claim as stored in the restore point.
    pub stored_claim: Value,
    pub handle: String,
}

impl VolumePlan {
    /// The VolumeSnapshot and VolumeSnapshotContent name: the same on every run, so a second
    /// run finds what the first made.
    pub fn snapshot_name(&self) -> String {
        let mut n = format!("upkeep-{}", self.recorded.object.name.to_ascii_lowercase());
        n.truncate(253);
        n.trim_end_matches(['-', '.']).to_string()
    }

    fn claim_ref(&self) -> ObjectRef {
        ObjectRef {
            api_version: "v1".to_string(),
            kind: "PersistentVolumeClaim".to_string(),
            namespace: Some(self.namespace.clone()),
            name: self.claim.clone(),
        }
    }
}

/// What `--volumes` will do: a plan per recorded volume whose claim is selected, and a
/// failure for each recorded volume no claim can be found for. Volumes whose claim `--only`
/// left out are not mentioned.
pub fn plan(
    opts: &VolumeOptions,
    selected: &[Value],
) -> (Vec<VolumePlan>, Vec<(RestoredObject, RestoredVolume)>) {
    let mut plans = Vec::new();
    let mut failed = Vec::new();
    for rec in &opts.recorded {
        let handle = handle(rec.kind, &rec.volume, &rec.object.name);
        let Some((ns, claim)) = claim_of(&rec.volume, &opts.stored) else {
            let message = format!(
                "volume {}: the restore point has no PersistentVolume or Longhorn Volume naming the claim that used it, so there is nothing to restore it as",
                rec.volume
            );
            let object = rec.object.clone();
            failed.push((
                RestoredObject {
                    object: object.clone(),
                    action: RestoreAction::Failed,
                    message: Some(SafeText::new(&message)),
                },
                RestoredVolume {
                    volume: rec.volume.clone(),
                    claim: object.clone(),
                    source: object,
                    handle,
                    action: RestoreAction::Failed,
                    digest: None,
                    files: None,
                    message: Some(SafeText::new(&message)),
                },
            ));
            continue;
        };
        let is_claim = |o: &&Value| {
            group_kind(o) == ("", "PersistentVolumeClaim")
                && str_at(o, "/metadata/namespace") == Some(ns.as_str())
                && str_at(o, "/metadata/name") == Some(claim.as_str())
        };
        let Some(stored_claim) = selected.iter().find(is_claim).cloned() else {
            tracing::info!(
                "volume {}: its claim {ns}/{claim} is not selected, left alone",
                rec.volume
            );
            continue;
        };
        plans.push(VolumePlan {
            recorded: rec.clone(),
            namespace: ns,
            claim,
            stored_claim,
            handle,
        });
    }
    (plans, failed)
}

/// Whether the volume restore takes over this stored object from the ordinary restore: the
/// planned claims, and the PVs and Longhorn Volumes of the planned volumes (a new volume is
/// made from the snapshot; putting the old PV or Volume back would bind to, or create, an
/// empty one).
pub fn taken_over(obj: &Value, plans: &[VolumePlan]) -> bool {
    let volumes: BTreeSet<&str> = plans.iter().map(|p| p.recorded.volume.as_str()).collect();
    match group_kind(obj) {
        ("", "PersistentVolumeClaim") => plans.iter().any(|p| {
            str_at(obj, "/metadata/namespace") == Some(p.namespace.as_str())
                && str_at(obj, "/metadata/name") == Some(p.claim.as_str())
        }),
        ("", "PersistentVolume") => {
            str_at(obj, "/spec/csi/driver") == Some(DRIVER)
                && str_at(obj, "/spec/csi/volumeHandle").is_some_and(|h| volumes.contains(h))
        }
        ("longhorn.io", "Volume") => {
            str_at(obj, "/metadata/name").is_some_and(|n| volumes.contains(n))
        }
        _ => false,
    }
}

/// The claim to create: the stored one without its old binding, with the VolumeSnapshot as
/// its data source.
pub fn restored_claim(stored: &Value, snapshot: &str, labels: &[(&str, &str)]) -> Value {
    let mut meta = serde_json::Map::new();
    for key in ["name", "namespace", "labels", "annotations"] {
        if let Some(v) = stored.pointer(&format!("/metadata/{key}")) {
            meta.insert(key.to_string(), v.clone());
        }
    }
    if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        for k in BINDING_ANNOTATIONS {
            a.remove(*k);
        }
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    let l = meta.entry("labels").or_insert_with(|| json!({}));
    if let Some(l) = l.as_object_mut() {
        for (k, v) in labels {
            l.insert(k.to_string(), json!(v));
        }
    }
    let mut spec = stored.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(s) = spec.as_object_mut() {
        s.remove("volumeName");
        s.remove("dataSourceRef");
        s.insert(
            "dataSource".to_string(),
            json!({"apiGroup": SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": snapshot}),
        );
    }
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec})
}

/// Pods (by name) that mount the claim and have not finished.
pub fn pods_using(pods: &[Value], claim: &str) -> Vec<String> {
    pods.iter()
        .filter(|p| {
            !matches!(str_at(p, "/status/phase"), Some("Succeeded" | "Failed"))
                && p.pointer("/spec/volumes")
                    .and_then(Value::as_array)
                    .is_some_and(|vs| {
                        vs.iter().any(|v| {
                            v.pointer("/persistentVolumeClaim/claimName")
                                .and_then(Value::as_str)
                                == Some(claim)
                        })
                    })
        })
        .filter_map(|p| str_at(p, "/metadata/name").map(str::to_string))
        .collect()
}

/// The data check's script: every regular file's sha256, sorted by path, hashed once more.
const CHECK_SCRIPT: &str = "set -e; cd /data; echo \"files $(find . -type f | wc -l)\"; \
find . -type f -print0 | sort -z | xargs -0 -r sha256sum | sha256sum";

/// (digest, files) from the check's log.
pub fn parse_check(logs: &str) -> Option<(String, u64)> {
    let files = logs.lines().find_map(|l| {
        l.trim()
            .strip_prefix("files ")
            .and_then(|n| n.trim().parse::<u64>().ok())
    })?;
    let digest = logs.lines().rev().find_map(|l| {
        let mut parts = l.split_whitespace();
        let (sum, file) = (parts.next()?, parts.next()?);
        (file == "-" && sum.len() == 64 && sum.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| sum.to_ascii_lowercase())
    })?;
    Some((digest, files))
}

fn check_job(name: &str, ns: &str, claim: &str, image: &str, label: &str) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": ns, "labels": {CHECK_LABEL: label}},
        "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 3600,
            "template": {"metadata": {"labels": {CHECK_LABEL: label}}, "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "check", "image": image, "command": ["sh", "-c", CHECK_SCRIPT],
                    "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim, "readOnly": true}}]}}}
    })
}

/// The served kinds the volume restore uses.
struct Kinds {
    pvc: Resource,
    pv: Resource,
    pod: Resource,
    job: Resource,
    vs: Resource,
    vsc: Resource,
    vsclass: Option<Resource>,
}

/// What went wrong with one volume: the message of its failure.
type Failure = String;

/// Restores the planned volumes one after the other (each is a disk's worth of data to
/// copy; one at a time is what Longhorn and a small cluster handle well).
pub async fn restore(
    cluster: &Cluster,
    plans: &[VolumePlan],
    point: &str,
    mode: RestoreMode,
    dry_run: bool,
    opts: &VolumeOptions,
) -> Vec<(RestoredObject, RestoredVolume)> {
    let mut out = Vec::new();
    if plans.is_empty() {
        return out;
    }
    let kinds = match kinds(cluster).await {
        Ok(k) => k,
        Err(message) => {
            for p in plans {
                out.push(entry(p, RestoreAction::Failed, &message, None));
            }
            return out;
        }
    };
    for p in plans {
        let started = Instant::now();
        let r = one(cluster, &kinds, p, point, mode, dry_run, opts).await;
        tracing::info!(
            "volume {} as {}/{}: {:?} in {:.1}s",
            p.recorded.volume,
            p.namespace,
            p.claim,
            r.as_ref().map(|(a, _, _)| *a),
            started.elapsed().as_secs_f64()
        );
        out.push(match r {
            Ok((action, message, check)) => entry(p, action, &message, check),
            Err(message) => entry(p, RestoreAction::Failed, &message, None),
        });
    }
    out
}

fn entry(
    p: &VolumePlan,
    action: RestoreAction,
    message: &str,
    check: Option<(String, u64)>,
) -> (RestoredObject, RestoredVolume) {
    let message = Some(SafeText::new(message));
    let (digest, files) = match check {
        Some((d, f)) => (Some(d), Some(f)),
        None => (None, None),
    };
    (
        RestoredObject {
            object: p.claim_ref(),
            action,
            message: message.clone(),
        },
        RestoredVolume {
            volume: p.recorded.volume.clone(),
            claim: p.claim_ref(),
            source: p.recorded.object.clone(),
            handle: p.handle.clone(),
            action,
            digest,
            files,
            message,
        },
    )
}

async fn kinds(cluster: &Cluster) -> Result<Kinds, Failure> {
    let core = |k: &'static str| async move {
        cluster
            .resource(&ResourceRef::preferred("", k))
            .await
            .map_err(|e| e.to_string())
    };
    let snap = |k: &'static str| async move {
        cluster
            .resource(&ResourceRef::preferred(SNAPSHOT_GROUP, k))
            .await
            .map_err(|e| {
                if e.is_not_found() {
                    format!(
                        "the cluster does not serve {k}.{SNAPSHOT_GROUP}: Longhorn restores a volume through the CSI snapshot API; install the snapshot CRDs and snapshot-controller (Longhorn docs: Enable CSI Snapshot Support) and restore again"
                    )
                } else {
                    e.to_string()
                }
            })
    };
    Ok(Kinds {
        pvc: core("PersistentVolumeClaim").await?,
        pv: core("PersistentVolume").await?,
        pod: core("Pod").await?,
        job: cluster
            .resource(&ResourceRef::preferred("batch", "Job"))
            .await
            .map_err(|e| e.to_string())?,
        vs: snap("VolumeSnapshot").await?,
        vsc: snap("VolumeSnapshotContent").await?,
        vsclass: snap("VolumeSnapshotClass").await.ok(),
    })
}

/// Checks the recorded snapshot or backup is there to restore from.
async fn source_ready(cluster: &Cluster, rec: &VolumeBackup) -> Result<(), Failure> {
    let o = &rec.object;
    let what = match rec.kind {
        VolumeBackupKind::Snapshot => "Longhorn snapshot",
        VolumeBackupKind::Backup => "Longhorn backup",
    };
    let who = format!(
        "{what} {}/{} of volume {}",
        o.namespace.as_deref().unwrap_or(""),
        o.name,
        rec.volume
    );
    let res = cluster
        .resource(&ResourceRef::from_api_version(&o.api_version, &o.kind))
        .await
        .map_err(|e| format!("{who}: {e}"))?;
    let found = cluster
        .get(&res, o.namespace.as_deref(), &o.name)
        .await
        .map_err(|e| format!("{who}: {e}"))?;
    let Some(found) = found else {
        return Err(match rec.kind {
            VolumeBackupKind::Snapshot => format!(
                "{who} no longer exists: in-cluster snapshots are deleted with their volume (or by hand), so this restore point cannot bring that volume's data back; take restore points with --longhorn backup to survive the loss of a volume"
            ),
            VolumeBackupKind::Backup => format!(
                "{who} is not in the cluster: Longhorn lists the backups of its backup target as Backup objects; check the backup target is set and reachable (Longhorn UI > Backup) and restore again"
            ),
        });
    };
    let v = serde_json::to_value(&found).unwrap_or(Value::Null);
    match rec.kind {
        VolumeBackupKind::Snapshot => {
            if v.pointer("/status/readyToUse").and_then(Value::as_bool) != Some(true) {
                return Err(format!(
                    "{who} is not ready to use{}",
                    str_at(&v, "/status/error")
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ));
            }
        }
        VolumeBackupKind::Backup => {
            let state = str_at(&v, "/status/state").unwrap_or("unknown");
            if state != "Completed" {
                return Err(format!("{who} is {state}, not Completed"));
            }
        }
    }
    Ok(())
}

/// A class of Longhorn's for this kind of handle, when the cluster has one (optional for a
/// pre-provisioned snapshot, but it tells a reader which class the objects belong to).
async fn snapshot_class(cluster: &Cluster, k: &Kinds, kind: VolumeBackupKind) -> Option<String> {
    let res = k.vsclass.as_ref()?;
    let want = match kind {
        VolumeBackupKind::Snapshot => "snap",
        VolumeBackupKind::Backup => "bak",
    };
    let listed: Vec<_> = cluster
        .list(res, &ListOptions::all_namespaces())
        .try_collect()
        .await
        .ok()?;
    listed.into_iter().find_map(|c| {
        let v = serde_json::to_value(&c).ok()?;
        (str_at(&v, "/driver") == Some(DRIVER) && str_at(&v, "/parameters/type") == Some(want))
            .then(|| str_at(&v, "/metadata/name").map(str::to_string))
            .flatten()
    })
}

#[allow(clippy::too_many_arguments)]
async fn one(
    cluster: &Cluster,
    k: &Kinds,
    p: &VolumePlan,
    point: &str,
    mode: RestoreMode,
    dry_run: bool,
    opts: &VolumeOptions,
) -> Result<(RestoreAction, String, Option<(String, u64)>), Failure> {
    source_ready(cluster, &p.recorded).await?;
    let ns = p.namespace.as_str();
    let target = format!("PersistentVolumeClaim {ns}/{}", p.claim);
    let snap_name = p.snapshot_name();
    let live = cluster
        .get(&k.pvc, Some(ns), &p.claim)
        .await
        .map_err(|e| e.to_string())?
        .map(|o| serde_json::to_value(&o).unwrap_or(Value::Null));
    let from = format!("{} ({})", p.recorded.object, p.handle);
    let action = match &live {
        None => RestoreAction::Created,
        Some(l) if l.pointer("/metadata/deletionTimestamp").is_some() => {
            return Err(format!(
                "{target} is being deleted (finalizers pending): restore again once it is gone"
            ));
        }
        Some(l)
            if str_at(l, "/spec/dataSource/kind") == Some("VolumeSnapshot")
                && str_at(l, "/spec/dataSource/name") == Some(snap_name.as_str()) =>
        {
            RestoreAction::Unchanged
        }
        Some(_) if mode == RestoreMode::Create => {
            return Ok((
                RestoreAction::Skipped,
                format!(
                    "{target} exists: left alone; --mode replace replaces it with the data of {from} once nothing mounts it"
                ),
                None,
            ));
        }
        Some(_) => {
            let pods: Vec<Value> = cluster
                .list(&k.pod, &ListOptions::in_namespace(ns))
                .map_ok(|o| serde_json::to_value(&o).unwrap_or(Value::Null))
                .try_collect()
                .await
                .map_err(|e| e.to_string())?;
            let users = pods_using(&pods, &p.claim);
            if !users.is_empty() {
                return Err(format!(
                    "{target} is mounted by running pod{} {}: not replaced (nothing was changed); scale the workload that runs {} down to 0 replicas and restore again",
                    if users.len() == 1 { "" } else { "s" },
                    users
                        .iter()
                        .map(|u| format!("{ns}/{u}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if users.len() == 1 { "it" } else { "them" },
                ));
            }
            RestoreAction::Replaced
        }
    };
    // An in-cluster snapshot lives in its volume: deleting the claim of that very volume
    // under a Delete reclaim policy would delete the snapshot being restored from. Its PV is
    // kept (Retain) instead, and the message says so.
    let keep_pv = match (&live, action, p.recorded.kind) {
        // Every replaced claim's PV is kept until the restored data is
        // confirmed: if the new claim cannot be made, the old data is still
        // there (and an in-cluster snapshot lives in that very volume).
        (Some(l), RestoreAction::Replaced, _) => match str_at(l, "/spec/volumeName") {
            Some(pv_name) => cluster
                .get(&k.pv, None, pv_name)
                .await
                .map_err(|e| e.to_string())?
                .map(|o| serde_json::to_value(&o).unwrap_or(Value::Null))
                .filter(|pv| str_at(pv, "/spec/persistentVolumeReclaimPolicy") != Some("Retain"))
                .map(|_| pv_name.to_string()),
            None => None,
        },
        _ => None,
    };
    let kept = keep_pv
        .as_ref()
        .map(|pv| {
            format!(
                " (its PersistentVolume {pv} is set to reclaim policy Retain so the old data survives until the restored data is confirmed; delete it then)"
            )
        })
        .unwrap_or_default();
    if dry_run {
        let what = match action {
            RestoreAction::Created => format!("would create {target} from {from}"),
            RestoreAction::Replaced => {
                format!("would delete the unused {target} and recreate it from {from}{kept}")
            }
            _ => format!("{target} was already restored from {from}; would check its data"),
        };
        return Ok((action, format!("dry run: {what}"), None));
    }

    // The CSI objects: a content naming the recorded snapshot, a VolumeSnapshot bound to it.
    let class = snapshot_class(cluster, k, p.recorded.kind).await;
    let labels = json!({RESTORE_POINT_LABEL: label_value(point), VOLUME_LABEL: label_value(&p.recorded.volume)});
    let mut vsc = json!({
        "apiVersion": k.vsc.api.api_version, "kind": "VolumeSnapshotContent",
        "metadata": {"name": snap_name, "labels": labels},
        "spec": {"driver": DRIVER, "deletionPolicy": "Retain",
            "source": {"snapshotHandle": p.handle},
            "volumeSnapshotRef": {"name": snap_name, "namespace": ns}}
    });
    let mut vs = json!({
        "apiVersion": k.vs.api.api_version, "kind": "VolumeSnapshot",
        "metadata": {"name": snap_name, "namespace": ns, "labels": labels},
        "spec": {"source": {"volumeSnapshotContentName": snap_name}}
    });
    if let Some(c) = &class {
        vsc["spec"]["volumeSnapshotClassName"] = json!(c);
        vs["spec"]["volumeSnapshotClassName"] = json!(c);
    }
    create_same(cluster, &k.vsc, &vsc, "/spec/source/snapshotHandle").await?;
    create_same(
        cluster,
        &k.vs,
        &vs,
        "/spec/source/volumeSnapshotContentName",
    )
    .await?;
    let ready = cluster
        .wait_for(
            &k.vs,
            Some(ns),
            &snap_name,
            &Until::field("/status/readyToUse", Value::Bool(true)),
            opts.timeout,
        )
        .await;
    if let Err(e) = ready {
        let why = cluster
            .get(&k.vs, Some(ns), &snap_name)
            .await
            .ok()
            .flatten()
            .and_then(|o| {
                let v = serde_json::to_value(&o).ok()?;
                str_at(&v, "/status/error/message").map(str::to_string)
            });
        return Err(format!(
            "VolumeSnapshot {ns}/{snap_name} for {from} did not become ready{}: {e}",
            why.map(|w| format!(" ({w})")).unwrap_or_default()
        ));
    }

    if let Some(pv) = &keep_pv {
        cluster
            .patch_merge(
                &k.pv,
                None,
                pv,
                &json!({"spec": {"persistentVolumeReclaimPolicy": "Retain"}}),
            )
            .await
            .map_err(|e| {
                format!("keeping PersistentVolume {pv} (reclaim policy Retain) before replacing {target}: {e}")
            })?;
    }
    if action == RestoreAction::Replaced {
        cluster
            .delete(&k.pvc, Some(ns), &p.claim)
            .await
            .map_err(|e| format!("deleting the unused {target}: {e}"))?;
        wait_gone(cluster, &k.pvc, ns, &p.claim, opts.timeout)
            .await
            .map_err(|e| {
                format!("{e}; the old claim is being deleted, restore again once it is gone")
            })?;
    }
    if action != RestoreAction::Unchanged {
        let body = restored_claim(
            &p.stored_claim,
            &snap_name,
            &[(RESTORE_POINT_LABEL, &label_value(point))],
        );
        cluster
            .create(&k.pvc, &body, &ApplyOptions::new(crate::FIELD_MANAGER))
            .await
            .map_err(|e| format!("creating {target} from {from}: {e}"))?;
    }

    let check = data_check(cluster, k, p, point, opts).await?;
    let verb = match action {
        RestoreAction::Created => "created",
        RestoreAction::Replaced => "replaced",
        _ => "already restored",
    };
    Ok((
        action,
        format!(
            "{verb} from {from}{kept}; data check read {} files back, digest sha256:{}",
            check.1, check.0
        ),
        Some(check),
    ))
}

/// A label value: at most 63 characters, ending alphanumeric.
fn label_value(s: &str) -> String {
    let mut v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    while v.ends_with(['-', '_', '.']) {
        v.pop();
    }
    v
}

/// Creates the object; when it exists already (an earlier run), it must say the same at
/// `pointer`, or restoring through it would restore something else.
async fn create_same(
    cluster: &Cluster,
    res: &Resource,
    obj: &Value,
    pointer: &str,
) -> Result<(), Failure> {
    let ns = str_at(obj, "/metadata/namespace");
    let name = str_at(obj, "/metadata/name").unwrap_or("");
    let target = res.object_target(ns, name);
    match cluster
        .create(res, obj, &ApplyOptions::new(crate::FIELD_MANAGER))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_conflict() => {
            let live = cluster
                .get(res, ns, name)
                .await
                .map_err(|e| e.to_string())?
                .map(|o| serde_json::to_value(&o).unwrap_or(Value::Null));
            match live {
                Some(l) if l.pointer(pointer) == obj.pointer(pointer) => Ok(()),
                Some(l) => Err(format!(
                    "{target} exists and points elsewhere ({} at {pointer}, want {}): delete it and restore again",
                    l.pointer(pointer).cloned().unwrap_or(Value::Null),
                    obj.pointer(pointer).cloned().unwrap_or(Value::Null)
                )),
                None => Err(format!("{target}: {e}")),
            }
        }
        Err(e) => Err(format!("creating {target}: {e}")),
    }
}

async fn wait_gone(
    cluster: &Cluster,
    res: &Resource,
    ns: &str,
    name: &str,
    within: Duration,
) -> Result<(), Failure> {
    let deadline = Instant::now() + within;
    loop {
        match cluster.get(res, Some(ns), name).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await
            }
            Ok(Some(_)) => {
                return Err(format!(
                    "{} is still there after {}s",
                    res.object_target(Some(ns), name),
                    within.as_secs()
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Runs the check Job on the restored claim, waits for the claim to bind and the Job to end,
/// and deletes the Job and its pods whatever happened.
async fn data_check(
    cluster: &Cluster,
    k: &Kinds,
    p: &VolumePlan,
    point: &str,
    opts: &VolumeOptions,
) -> Result<(String, u64), Failure> {
    let ns = p.namespace.as_str();
    let stamp = jiff::Timestamp::now().strftime("%H%M%S").to_string();
    let mut base: String = p.claim.chars().take(30).collect();
    while base.ends_with(['-', '.']) {
        base.pop();
    }
    let name = format!("upkeep-volume-check-{base}-{stamp}");
    let label = label_value(&format!("{point}-{stamp}"));
    let job = check_job(&name, ns, &p.claim, &opts.check_image, &label);
    let outcome = async {
        cluster
            .create(&k.job, &job, &ApplyOptions::new(crate::FIELD_MANAGER))
            .await
            .map_err(|e| format!("creating the data check Job {ns}/{name}: {e}"))?;
        // The Job is the claim's first consumer: a WaitForFirstConsumer class binds now.
        cluster
            .wait_for(
                &k.pvc,
                Some(ns),
                &p.claim,
                &Until::field("/status/phase", json!("Bound")),
                opts.timeout,
            )
            .await
            .map_err(|e| {
                format!(
                    "PersistentVolumeClaim {ns}/{} was not provisioned from {}: {e} (kubectl describe pvc -n {ns} {} shows Longhorn's events)",
                    p.claim, p.handle, p.claim
                )
            })?;
        let done = cluster
            .wait_for(
                &k.job,
                Some(ns),
                &name,
                &Until::custom("Complete or Failed", |o| {
                    upkeep_kube::condition(o, "Complete").is_some_and(|c| c.status == "True")
                        || upkeep_kube::condition(o, "Failed").is_some_and(|c| c.status == "True")
                }),
                opts.timeout,
            )
            .await
            .map_err(|e| format!("data check Job {ns}/{name}: {e}"))?;
        let logs = cluster.job_logs(ns, &name).await.unwrap_or_default();
        let failed = upkeep_kube::condition(&done, "Failed").is_some_and(|c| c.status == "True");
        match (failed, parse_check(&logs)) {
            (false, Some(c)) => Ok(c),
            _ => {
                let tail: Vec<&str> = logs.lines().rev().take(3).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                Err(format!(
                    "the data check Job {ns}/{name} {} reading {ns}/{}: {}",
                    if failed { "failed" } else { "printed no digest" },
                    p.claim,
                    if tail.is_empty() {
                        "no log".to_string()
                    } else {
                        tail.join(" | ")
                    }
                ))
            }
        }
    }
    .await;
    let cleaned = remove_check(cluster, k, ns, &label).await;
    match (outcome, cleaned) {
        (Ok(c), Ok(())) => Ok(c),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(c)) => Err(format!("{e}; {c}")),
    }
}

/// Deletes the check Job and its pods, and checks they are gone.
async fn remove_check(cluster: &Cluster, k: &Kinds, ns: &str, label: &str) -> Result<(), Failure> {
    let selector = ListOptions::in_namespace(ns).labels(&format!("{CHECK_LABEL}={label}"));
    let mut left = Vec::new();
    for _ in 0..50 {
        left.clear();
        for res in [&k.job, &k.pod] {
            let listed: Vec<_> = match cluster.list(res, &selector).try_collect().await {
                Ok(l) => l,
                Err(e) => {
                    left.push(format!("listing {}: {e}", res.api.kind));
                    continue;
                }
            };
            for o in listed {
                let Some(name) = o.metadata.name.as_deref() else {
                    continue;
                };
                // Asked once; an object already being deleted is only waited for.
                if o.metadata.deletion_timestamp.is_none()
                    && let Err(e) = cluster.delete(res, Some(ns), name).await
                {
                    left.push(format!("{} {ns}/{name}: {e}", res.api.kind));
                    continue;
                }
                left.push(format!("{} {ns}/{name}", res.api.kind));
            }
        }
        if left.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("the data check left behind: {}", left.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_contract::ObjectRef;

    fn recorded(kind: VolumeBackupKind, volume: &str, name: &str) -> VolumeBackup {
        VolumeBackup {
            volume: volume.to_string(),
            kind,
            object: ObjectRef {
                api_version: "longhorn.io/v1beta2".to_string(),
                kind: match kind {
                    VolumeBackupKind::Snapshot => "Snapshot",
                    VolumeBackupKind::Backup => "Backup",
                }
                .to_string(),
                namespace: Some("longhorn-system".to_string()),
                name: name.to_string(),
            },
            url: None,
        }
    }

    fn pv(name: &str, handle: &str, ns: &str, claim: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"csi": {"driver": DRIVER, "volumeHandle": handle},
                "claimRef": {"namespace": ns, "name": claim}}})
    }

    fn pvc(ns: &str, name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "x"},
                "annotations": {"pv.kubernetes.io/bind-completed": "yes", "keep": "me"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "longhorn",
                "resources": {"requests": {"storage": "1Gi"}}, "volumeName": "pvc-old"}})
    }

    #[test]
    fn handles_name_the_recorded_snapshot_or_backup() {
        assert_eq!(
            handle(VolumeBackupKind::Snapshot, "pvc-1", "upkeep-x-pvc-1"),
            "snap://pvc-1/upkeep-x-pvc-1"
        );
        assert_eq!(
            handle(VolumeBackupKind::Backup, "pvc-1", "backup-9"),
            "bak://pvc-1/backup-9"
        );
    }

    #[test]
    fn a_volume_maps_to_its_claim_through_the_pv_or_the_longhorn_volume() {
        let stored = vec![
            pv("pv-a", "vol-a", "home", "data-a"),
            // Another driver's PV with the same handle is not Longhorn's.
            json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-x"},
                "spec": {"csi": {"driver": "other", "volumeHandle": "vol-b"},
                    "claimRef": {"namespace": "x", "name": "wrong"}}}),
            json!({"apiVersion": "longhorn.io/v1beta2", "kind": "Volume",
                "metadata": {"name": "vol-b", "namespace": "longhorn-system"},
                "status": {"kubernetesStatus": {"namespace": "media", "pvcName": "data-b"}}}),
        ];
        assert_eq!(
            claim_of("vol-a", &stored),
            Some(("home".into(), "data-a".into()))
        );
        assert_eq!(
            claim_of("vol-b", &stored),
            Some(("media".into(), "data-b".into()))
        );
        assert_eq!(claim_of("vol-c", &stored), None);
    }

    #[test]
    fn plans_follow_the_selection_and_unmapped_volumes_fail() {
        let opts = VolumeOptions {
            recorded: vec![
                recorded(VolumeBackupKind::Snapshot, "vol-a", "s-a"),
                recorded(VolumeBackupKind::Backup, "vol-b", "b-b"),
                recorded(VolumeBackupKind::Snapshot, "vol-c", "s-c"),
            ],
            stored: vec![
                pv("pv-a", "vol-a", "home", "data-a"),
                pv("pv-b", "vol-b", "media", "data-b"),
            ],
            check_image: "busybox".into(),
            timeout: Duration::from_secs(1),
        };
        // data-b is not selected (--only home): left alone, not a failure.
        let selected = vec![pvc("home", "data-a"), pv("pv-a", "vol-a", "home", "data-a")];
        let (plans, failed) = plan(&opts, &selected);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].claim, "data-a");
        assert_eq!(plans[0].handle, "snap://vol-a/s-a");
        assert_eq!(plans[0].snapshot_name(), "upkeep-s-a");
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].1.volume, "vol-c");
        assert_eq!(failed[0].0.action, RestoreAction::Failed);
        assert!(taken_over(&selected[0], &plans));
        assert!(taken_over(&selected[1], &plans));
        assert!(!taken_over(&pvc("home", "other"), &plans));
        assert!(taken_over(
            &json!({"apiVersion": "longhorn.io/v1beta2", "kind": "Volume", "metadata": {"name": "vol-a"}}),
            &plans
        ));
    }

    #[test]
    fn the_restored_claim_drops_its_old_binding_and_names_the_snapshot() {
        let body = restored_claim(
            &pvc("home", "data-a"),
            "upkeep-s-a",
            &[(RESTORE_POINT_LABEL, "p1")],
        );
        assert!(body.pointer("/spec/volumeName").is_none());
        assert_eq!(
            body["spec"]["dataSource"],
            json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "upkeep-s-a"})
        );
        assert_eq!(body["metadata"]["annotations"], json!({"keep": "me"}));
        assert_eq!(
            body["metadata"]["labels"],
            json!({"app": "x", RESTORE_POINT_LABEL: "p1"})
        );
        assert_eq!(body["spec"]["resources"]["requests"]["storage"], "1Gi");
    }

    #[test]
    fn running_pods_mounting_the_claim_are_found() {
        let pod = |name: &str, phase: &str, claim: &str| {
            json!({"metadata": {"name": name}, "status": {"phase": phase},
                "spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}})
        };
        let pods = vec![
            pod("app-1", "Running", "data"),
            pod("done-1", "Succeeded", "data"),
            pod("other", "Running", "else"),
            pod("starting", "Pending", "data"),
        ];
        assert_eq!(pods_using(&pods, "data"), ["app-1", "starting"]);
    }

    #[test]
    fn the_check_output_is_read_strictly() {
        let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(
            parse_check(&format!("files 3\n{sha}  -\n")),
            Some((sha.to_string(), 3))
        );
        assert_eq!(parse_check(&format!("{sha}  -\n")), None);
        assert_eq!(parse_check(&format!("files 3\n{sha}  /data/x\n")), None);
        assert_eq!(parse_check("files 3\nabc  -\n"), None);
        assert_eq!(
            label_value("upkeep-20261128T040000Z"),
            "upkeep-20261128T040000Z"
        );
        assert_eq!(label_value(&"a".repeat(70)).len(), 63);
    }
}
