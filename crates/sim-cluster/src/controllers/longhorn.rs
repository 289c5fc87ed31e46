//! Longhorn (`longhorn.io`): volume state and robustness from the pods using them, snapshots
//! becoming `readyToUse`, backups going `InProgress` → `Completed` (or `Error` when
//! configured), and the `current-longhorn-version` Setting following the installed Longhorn
//! HelmRelease.
//!
//! And Longhorn's CSI side: claims on a `driver.longhorn.io` StorageClass are provisioned (a
//! PV and a Longhorn Volume, the claim Bound), also from a VolumeSnapshot whose pre-provisioned
//! VolumeSnapshotContent names a Longhorn snapshot (`snap://VOLUME/SNAPSHOT`) or backup
//! (`bak://VOLUME/BACKUP`); a released PV is deleted with its volume (and the volume's
//! in-cluster snapshots) when its reclaim policy is `Delete`, else marked `Released`.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{
    Delay, Reconciler, any_glob, list, name_of, ns_of, opts, put_status, resource, str_at,
};
use crate::config::LonghornConfig;
use crate::store::{Store, now};

const MANAGER: &str = "longhorn-manager";
const GROUP: &str = "longhorn.io";

pub(super) struct Longhorn {
    fail_backups: Vec<String>,
    degraded: Vec<String>,
    delay: Delay,
}

impl Longhorn {
    pub(super) fn new(cfg: &LonghornConfig) -> Self {
        Longhorn {
            fail_backups: cfg.fail_backups.clone(),
            degraded: cfg.degraded_volumes.clone(),
            delay: Delay::new(cfg.delay.0),
        }
    }
}

impl Reconciler for Longhorn {
    fn pass(&mut self, store: &Store) {
        self.snapshots(store);
        self.backups(store);
        csi::contents(store);
        csi::volume_snapshots(store);
        csi::provision(store);
        csi::reclaim(store);
        self.volumes(store);
        current_version(store);
    }
}

/// Longhorn volume name → node of a running pod using it (through PVC and PV).
fn attachments(store: &Store) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let (Some(pods), Some(pvcs), Some(pvs)) = (
        resource(store, "", "pods"),
        resource(store, "", "persistentvolumeclaims"),
        resource(store, "", "persistentvolumes"),
    ) else {
        return out;
    };
    let pv_handle: HashMap<String, String> = list(store, &pvs)
        .iter()
        .filter(|pv| str_at(pv, "/spec/csi/driver") == Some("driver.longhorn.io"))
        .filter_map(|pv| {
            Some((
                name_of(pv).to_string(),
                str_at(pv, "/spec/csi/volumeHandle")?.to_string(),
            ))
        })
        .collect();
    let claim_pv: HashMap<(String, String), String> = list(store, &pvcs)
        .iter()
        .filter_map(|c| {
            Some((
                (ns_of(c)?.to_string(), name_of(c).to_string()),
                str_at(c, "/spec/volumeName")?.to_string(),
            ))
        })
        .collect();
    for pod in list(store, &pods) {
        if str_at(&pod, "/status/phase") != Some("Running") {
            continue;
        }
        let Some(node) = str_at(&pod, "/spec/nodeName") else {
            continue;
        };
        let ns = ns_of(&pod).unwrap_or("").to_string();
        let vols = pod
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for v in vols {
            let Some(claim) = v
                .pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str)
            else {
                continue;
            };
            if let Some(handle) = claim_pv
                .get(&(ns.clone(), claim.to_string()))
                .and_then(|pv| pv_handle.get(pv))
            {
                out.insert(handle.clone(), node.to_string());
            }
        }
    }
    out
}

impl Longhorn {
    fn volumes(&mut self, store: &Store) {
        let Some(info) = resource(store, GROUP, "volumes") else {
            return;
        };
        let attached = attachments(store);
        for v in list(store, &info) {
            let name = name_of(&v);
            let node = str_at(&v, "/spec/nodeID")
                .filter(|n| !n.is_empty())
                .or(attached.get(name).map(String::as_str));
            let mut status = v.get("status").cloned().unwrap_or_else(|| json!({}));
            match node {
                Some(node) => {
                    status["state"] = json!("attached");
                    status["currentNodeID"] = json!(node);
                    let robust = if any_glob(&self.degraded, name) {
                        "degraded"
                    } else {
                        "healthy"
                    };
                    status["robustness"] = json!(robust);
                }
                None => {
                    status["state"] = json!("detached");
                    status["currentNodeID"] = json!("");
                    status["robustness"] = json!("unknown");
                }
            }
            put_status(store, &info, &v, status, MANAGER);
        }
    }

    fn snapshots(&mut self, store: &Store) {
        let (Some(info), Some(vols)) = (
            resource(store, GROUP, "snapshots"),
            resource(store, GROUP, "volumes"),
        ) else {
            return;
        };
        for s in list(store, &info) {
            if s.pointer("/status/readyToUse").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let volume = str_at(&s, "/spec/volume").unwrap_or("");
            let mut status = s.get("status").cloned().unwrap_or_else(|| json!({}));
            match store.get(&vols, ns_of(&s), volume) {
                Ok(vol) => {
                    if !self.delay.ready(&format!(
                        "snap/{}/{}",
                        ns_of(&s).unwrap_or(""),
                        name_of(&s)
                    )) {
                        continue;
                    }
                    let size = str_at(&vol, "/spec/size").unwrap_or("0").to_string();
                    status["readyToUse"] = json!(true);
                    status["creationTime"] = json!(now());
                    status["size"] = json!(size);
                    status["restoreSize"] = json!(size);
                    status["userCreated"] = json!(true);
                    status["markRemoved"] = json!(false);
                    status["error"] = json!("");
                    status["ownerID"] = json!(str_at(&vol, "/status/currentNodeID").unwrap_or(""));
                }
                Err(_) => {
                    status["readyToUse"] = json!(false);
                    status["error"] = json!(format!("volume {volume} not found"));
                }
            }
            put_status(store, &info, &s, status, MANAGER);
        }
    }

    fn backups(&mut self, store: &Store) {
        let Some(info) = resource(store, GROUP, "backups") else {
            return;
        };
        let snaps = resource(store, GROUP, "snapshots");
        let target = backup_target(store);
        for b in list(store, &info) {
            let state = str_at(&b, "/status/state").unwrap_or("");
            if matches!(state, "Completed" | "Error") {
                continue;
            }
            let name = name_of(&b).to_string();
            let snapshot = str_at(&b, "/spec/snapshotName").unwrap_or("").to_string();
            let volume = b
                .pointer("/metadata/labels/longhorn.io~1backup-volume")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    let snaps = snaps.as_ref()?;
                    let s = store.get(snaps, ns_of(&b), &snapshot).ok()?;
                    str_at(&s, "/spec/volume").map(str::to_string)
                });
            let mut status = b.get("status").cloned().unwrap_or_else(|| json!({}));
            status["snapshotName"] = json!(snapshot);
            let Some(volume) = volume else {
                status["state"] = json!("Error");
                status["error"] = json!(format!("snapshot {snapshot} not found"));
                put_status(store, &info, &b, status, MANAGER);
                continue;
            };
            status["volumeName"] = json!(volume);
            if state.is_empty() {
                status["state"] = json!("InProgress");
                status["progress"] = json!(0);
                status["snapshotCreatedAt"] = json!(now());
                put_status(store, &info, &b, status, MANAGER);
                continue;
            }
            if !self.delay.ready(&format!("backup/{name}")) {
                continue;
            }
            if any_glob(&self.fail_backups, &name) {
                status["state"] = json!("Error");
                status["error"] =
                    json!("failed to upload the backup: configured to fail in SIM.yaml");
            } else {
                status["state"] = json!("Completed");
                status["progress"] = json!(100);
                status["backupCreatedAt"] = json!(now());
                status["lastSyncedAt"] = json!(now());
                status["url"] = json!(format!("{target}?backup={name}&volume={volume}"));
                status["error"] = json!("");
            }
            put_status(store, &info, &b, status, MANAGER);
        }
    }
}

/// Where backups go: the `default` BackupTarget (Longhorn 1.8+), else the `backup-target`
/// Setting (older releases).
fn backup_target(store: &Store) -> String {
    let target = resource(store, GROUP, "backuptargets").and_then(|i| {
        list(store, &i)
            .into_iter()
            .find(|t| name_of(t) == "default")
            .and_then(|t| str_at(&t, "/spec/backupTargetURL").map(str::to_string))
    });
    if let Some(t) = target.filter(|t| !t.is_empty()) {
        return t;
    }
    resource(store, GROUP, "settings")
        .and_then(|i| {
            list(store, &i)
                .into_iter()
                .find(|s| name_of(s) == "backup-target")
        })
        .and_then(|s| str_at(&s, "/value").map(str::to_string))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "s3://backups@us-east-1/".to_string())
}

/// Keeps `current-longhorn-version` equal to the deployed Longhorn chart's appVersion.
fn current_version(store: &Store) {
    let (Some(hr_info), Some(settings)) = (
        resource(store, "helm.toolkit.fluxcd.io", "helmreleases"),
        resource(store, GROUP, "settings"),
    ) else {
        return;
    };
    let deployed = list(store, &hr_info).into_iter().find_map(|hr| {
        if str_at(&hr, "/spec/chart/spec/chart") != Some("longhorn") {
            return None;
        }
        let current = hr
            .pointer("/status/history")
            .and_then(Value::as_array)?
            .iter()
            .find(|h| h["status"] == "deployed")?
            .clone();
        let app = current["appVersion"].as_str()?.to_string();
        let ns = str_at(&hr, "/spec/targetNamespace")
            .or(ns_of(&hr))
            .unwrap_or("longhorn-system")
            .to_string();
        Some((ns, app))
    });
    let Some((ns, app)) = deployed else {
        return;
    };
    let value = if app.starts_with('v') {
        app
    } else {
        format!("v{app}")
    };
    match store.get(&settings, Some(&ns), "current-longhorn-version") {
        Ok(s) if str_at(&s, "/value") == Some(value.as_str()) => {}
        Ok(mut s) => {
            s["value"] = json!(value);
            if let Err(e) = store.update(
                &settings,
                Some(&ns),
                "current-longhorn-version",
                s,
                false,
                &opts(MANAGER),
            ) {
                tracing::debug!("{MANAGER}: current-longhorn-version: {}", e.message);
            }
        }
        Err(_) => {
            let s = json!({
                "apiVersion": settings.api_version(),
                "kind": "Setting",
                "metadata": {"name": "current-longhorn-version", "namespace": ns},
                "value": value,
            });
            if let Err(e) = store.create(&settings, Some(&ns), s, &opts(MANAGER)) {
                tracing::debug!("{MANAGER}: current-longhorn-version: {}", e.message);
            }
        }
    }
}

/// The CSI side of Longhorn: provisioning claims (also from a VolumeSnapshot), the snapshot
/// controller's binding of pre-provisioned VolumeSnapshotContents, and reclaiming released PVs.
mod csi {
    use serde_json::{Value, json};

    use super::super::{list, merge, name_of, ns_of, opts, put_status, resource, str_at};
    use super::{GROUP, MANAGER};
    use crate::store::{DeleteOptions, Store, now};

    pub(super) const DRIVER: &str = "driver.longhorn.io";
    const PROVISIONER: &str = "driver.longhorn.io_csi-provisioner";
    const SNAPSHOTTER: &str = "snapshot-controller";
    const SNAPSHOT_GROUP: &str = "snapshot.storage.k8s.io";

    /// A CSI snapshot handle Longhorn understands: `snap://VOLUME/SNAPSHOT` (an in-cluster
    /// snapshot) or `bak://VOLUME/BACKUP` (a backup on the backup target).
    #[derive(Debug, PartialEq, Eq)]
    pub(super) enum Handle<'a> {
        Snapshot { volume: &'a str, name: &'a str },
        Backup { volume: &'a str, name: &'a str },
    }

    pub(super) fn parse_handle(h: &str) -> Option<Handle<'_>> {
        let (scheme, rest) = h.split_once("://")?;
        let (volume, name) = rest.split_once('/')?;
        if volume.is_empty() || name.is_empty() || name.contains('/') {
            return None;
        }
        match scheme {
            "snap" => Some(Handle::Snapshot { volume, name }),
            "bak" => Some(Handle::Backup { volume, name }),
            _ => None,
        }
    }

    /// Bytes of a Kubernetes quantity (`1Gi`, `500M`, `1073741824`); None when unreadable.
    pub(super) fn quantity_bytes(q: &str) -> Option<u64> {
        let q = q.trim();
        let split = q
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(q.len());
        let (num, unit) = q.split_at(split);
        let n: f64 = num.parse().ok()?;
        let mult: f64 = match unit {
            "" => 1.0,
            "Ki" => 1024.0,
            "Mi" => 1024f64.powi(2),
            "Gi" => 1024f64.powi(3),
            "Ti" => 1024f64.powi(4),
            "k" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "T" => 1e12,
            _ => return None,
        };
        Some((n * mult).round() as u64)
    }

    /// The namespace Longhorn's own objects live in.
    fn longhorn_ns(store: &Store) -> String {
        resource(store, GROUP, "settings")
            .and_then(|i| list(store, &i).into_iter().next())
            .and_then(|s| ns_of(&s).map(str::to_string))
            .unwrap_or_else(|| "longhorn-system".to_string())
    }

    /// What a Longhorn snapshot or backup handle points at, when it is there to restore
    /// from: (restore size in bytes, the backup URL for a backup), or why not.
    fn source_of(store: &Store, handle: &Handle) -> Result<(u64, Option<String>), String> {
        match handle {
            Handle::Snapshot { volume, name } => {
                let info = resource(store, GROUP, "snapshots")
                    .ok_or("Longhorn snapshots are not served")?;
                let snap = list(store, &info)
                    .into_iter()
                    .find(|s| name_of(s) == *name && str_at(s, "/spec/volume") == Some(volume))
                    .ok_or_else(|| {
                        format!("Longhorn snapshot {name} of volume {volume} not found")
                    })?;
                if snap.pointer("/status/readyToUse").and_then(Value::as_bool) != Some(true) {
                    return Err(format!("Longhorn snapshot {name} is not ready to use"));
                }
                let size = str_at(&snap, "/status/restoreSize")
                    .and_then(quantity_bytes)
                    .unwrap_or(0);
                Ok((size, None))
            }
            Handle::Backup { volume, name } => {
                let info =
                    resource(store, GROUP, "backups").ok_or("Longhorn backups are not served")?;
                let b = list(store, &info)
                    .into_iter()
                    .find(|b| {
                        name_of(b) == *name
                            && (str_at(b, "/status/volumeName") == Some(volume)
                                || b.pointer("/metadata/labels/longhorn.io~1backup-volume")
                                    .and_then(Value::as_str)
                                    == Some(volume))
                    })
                    .ok_or_else(|| {
                        format!("Longhorn backup {name} of volume {volume} not found")
                    })?;
                if str_at(&b, "/status/state") != Some("Completed") {
                    return Err(format!(
                        "Longhorn backup {name} is {}, not Completed",
                        str_at(&b, "/status/state").unwrap_or("new")
                    ));
                }
                let size = resource(store, GROUP, "volumes")
                    .and_then(|v| list(store, &v).into_iter().find(|v| name_of(v) == *volume))
                    .and_then(|v| str_at(&v, "/spec/size").and_then(quantity_bytes))
                    .unwrap_or(0);
                Ok((size, str_at(&b, "/status/url").map(str::to_string)))
            }
        }
    }

    fn unix_nanos() -> i64 {
        jiff::Timestamp::now().as_nanosecond() as i64
    }

    /// Pre-provisioned VolumeSnapshotContents of Longhorn: ready when what the handle names
    /// exists and is ready, an error status saying what is missing when not.
    pub(super) fn contents(store: &Store) {
        let Some(info) = resource(store, SNAPSHOT_GROUP, "volumesnapshotcontents") else {
            return;
        };
        for c in list(store, &info) {
            if str_at(&c, "/spec/driver") != Some(DRIVER)
                || c.pointer("/status/readyToUse").and_then(Value::as_bool) == Some(true)
            {
                continue;
            }
            let Some(handle_text) = str_at(&c, "/spec/source/snapshotHandle") else {
                continue;
            };
            let mut status = c.get("status").cloned().unwrap_or_else(|| json!({}));
            let outcome = match parse_handle(handle_text) {
                Some(h) => source_of(store, &h),
                None => Err(format!(
                    "invalid snapshot handle {handle_text:?}: want snap://VOLUME/SNAPSHOT or bak://VOLUME/BACKUP"
                )),
            };
            match outcome {
                Ok((size, _)) => {
                    status["readyToUse"] = json!(true);
                    status["snapshotHandle"] = json!(handle_text);
                    status["restoreSize"] = json!(size);
                    status["creationTime"] = json!(unix_nanos());
                    if let Some(m) = status.as_object_mut() {
                        m.remove("error");
                    }
                }
                Err(message) => {
                    if status.pointer("/error/message").and_then(Value::as_str)
                        == Some(message.as_str())
                    {
                        continue;
                    }
                    status["readyToUse"] = json!(false);
                    status["error"] = json!({"message": message, "time": now()});
                }
            }
            put_status(store, &info, &c, status, SNAPSHOTTER);
        }
    }

    /// VolumeSnapshots bound to a pre-provisioned content that names them back.
    pub(super) fn volume_snapshots(store: &Store) {
        let (Some(info), Some(contents)) = (
            resource(store, SNAPSHOT_GROUP, "volumesnapshots"),
            resource(store, SNAPSHOT_GROUP, "volumesnapshotcontents"),
        ) else {
            return;
        };
        for vs in list(store, &info) {
            let Some(content) = str_at(&vs, "/spec/source/volumeSnapshotContentName") else {
                continue;
            };
            let mut status = vs.get("status").cloned().unwrap_or_else(|| json!({}));
            let ns = ns_of(&vs).unwrap_or("");
            match store.get(&contents, None, content) {
                Ok(c)
                    if str_at(&c, "/spec/volumeSnapshotRef/name") == Some(name_of(&vs))
                        && str_at(&c, "/spec/volumeSnapshotRef/namespace") == Some(ns) =>
                {
                    let ready =
                        c.pointer("/status/readyToUse").and_then(Value::as_bool) == Some(true);
                    status["boundVolumeSnapshotContentName"] = json!(content);
                    status["readyToUse"] = json!(ready);
                    if ready {
                        let size = c
                            .pointer("/status/restoreSize")
                            .and_then(Value::as_u64)
                            .unwrap_or(0);
                        status["restoreSize"] = json!(size.to_string());
                        if status.get("creationTime").is_none() {
                            status["creationTime"] = json!(now());
                        }
                        if let Some(m) = status.as_object_mut() {
                            m.remove("error");
                        }
                    } else if let Some(e) = c.pointer("/status/error") {
                        status["error"] = e.clone();
                    }
                }
                Ok(_) => {
                    status["readyToUse"] = json!(false);
                    status["error"] = json!({"message": format!(
                        "VolumeSnapshotContent {content} does not name this VolumeSnapshot in spec.volumeSnapshotRef"
                    ), "time": status.pointer("/error/time").cloned().unwrap_or_else(|| json!(now()))});
                }
                Err(_) => {
                    status["readyToUse"] = json!(false);
                    status["error"] = json!({"message": format!("VolumeSnapshotContent {content} not found"),
                        "time": status.pointer("/error/time").cloned().unwrap_or_else(|| json!(now()))});
                }
            }
            put_status(store, &info, &vs, status, SNAPSHOTTER);
        }
    }

    /// The StorageClass a claim uses (its own, or the default one).
    fn class_of(store: &Store, pvc: &Value) -> Option<Value> {
        let info = resource(store, "storage.k8s.io", "storageclasses")?;
        let classes = list(store, &info);
        match str_at(pvc, "/spec/storageClassName") {
            Some(name) => classes.into_iter().find(|c| name_of(c) == name),
            None => classes.into_iter().find(|c| {
                c.pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
                    .and_then(Value::as_str)
                    == Some("true")
            }),
        }
    }

    /// An Event on a claim, once per reason and message.
    fn event(store: &Store, pvc: &Value, kind: &str, reason: &str, message: &str) {
        let Some(info) = resource(store, "", "events") else {
            return;
        };
        let ns = ns_of(pvc).unwrap_or("default");
        let digest = super::super::sha256_hex(format!("{reason}/{message}").as_bytes());
        let name = format!("{}.{}", name_of(pvc), &digest[..16]);
        if store.get(&info, Some(ns), &name).is_ok() {
            return;
        }
        let t = now();
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns,
                "name": name_of(pvc), "uid": str_at(pvc, "/metadata/uid").unwrap_or("")},
            "reason": reason, "message": message, "type": kind,
            "source": {"component": PROVISIONER}, "reportingComponent": PROVISIONER,
            "firstTimestamp": t, "lastTimestamp": t, "count": 1,
        });
        if let Err(e) = store.create(&info, Some(ns), ev, &opts(PROVISIONER)) {
            tracing::debug!(
                "{PROVISIONER}: event on {ns}/{}: {}",
                name_of(pvc),
                e.message
            );
        }
    }

    /// Whether a pod that has not finished names the claim (WaitForFirstConsumer).
    fn has_consumer(store: &Store, pvc: &Value) -> bool {
        let Some(pods) = resource(store, "", "pods") else {
            return false;
        };
        list(store, &pods).iter().any(|p| {
            ns_of(p) == ns_of(pvc)
                && !matches!(str_at(p, "/status/phase"), Some("Succeeded" | "Failed"))
                && p.pointer("/spec/volumes")
                    .and_then(Value::as_array)
                    .is_some_and(|vs| {
                        vs.iter().any(|v| {
                            v.pointer("/persistentVolumeClaim/claimName")
                                .and_then(Value::as_str)
                                == Some(name_of(pvc))
                        })
                    })
        })
    }

    /// What a claim's data source asks Longhorn to restore: Ok(None) for an empty volume,
    /// Ok(Some((handle, backup URL))) for a ready VolumeSnapshot, Err(why it must wait).
    fn data_source(store: &Store, pvc: &Value) -> Result<Option<(String, Option<String>)>, String> {
        let Some(ds) = pvc.pointer("/spec/dataSource").filter(|d| d.is_object()) else {
            return Ok(None);
        };
        let kind = str_at(ds, "/kind").unwrap_or("");
        let group = str_at(ds, "/apiGroup").unwrap_or("");
        let name = str_at(ds, "/name").unwrap_or("");
        if kind != "VolumeSnapshot" || group != SNAPSHOT_GROUP {
            return Err(format!(
                "data source {kind}.{group} {name} is not supported by this simulator (only VolumeSnapshot)"
            ));
        }
        let vs_info = resource(store, SNAPSHOT_GROUP, "volumesnapshots")
            .ok_or("VolumeSnapshots are not served (the CSI snapshot CRDs are missing)")?;
        let contents = resource(store, SNAPSHOT_GROUP, "volumesnapshotcontents")
            .ok_or("VolumeSnapshotContents are not served")?;
        let ns = ns_of(pvc).unwrap_or("");
        let vs = store
            .get(&vs_info, Some(ns), name)
            .map_err(|_| format!("VolumeSnapshot {ns}/{name} not found"))?;
        if vs.pointer("/status/readyToUse").and_then(Value::as_bool) != Some(true) {
            let why = str_at(&vs, "/status/error/message").unwrap_or("not ready yet");
            return Err(format!(
                "VolumeSnapshot {ns}/{name} is not ready to use: {why}"
            ));
        }
        let content = str_at(&vs, "/status/boundVolumeSnapshotContentName").unwrap_or("");
        let c = store
            .get(&contents, None, content)
            .map_err(|_| format!("VolumeSnapshotContent {content} not found"))?;
        if str_at(&c, "/spec/driver") != Some(DRIVER) {
            return Err(format!("VolumeSnapshotContent {content} is not Longhorn's"));
        }
        let handle = str_at(&c, "/spec/source/snapshotHandle")
            .unwrap_or("")
            .to_string();
        let parsed =
            parse_handle(&handle).ok_or_else(|| format!("invalid snapshot handle {handle:?}"))?;
        let (_, url) = source_of(store, &parsed)?;
        Ok(Some((handle, url)))
    }

    /// Pending claims on a Longhorn StorageClass get a PV and a Longhorn Volume, and are bound.
    pub(super) fn provision(store: &Store) {
        let (Some(pvcs), Some(pvs), Some(vols)) = (
            resource(store, "", "persistentvolumeclaims"),
            resource(store, "", "persistentvolumes"),
            resource(store, GROUP, "volumes"),
        ) else {
            return;
        };
        for pvc in list(store, &pvcs) {
            if str_at(&pvc, "/spec/volumeName").is_some_and(|v| !v.is_empty())
                || pvc.pointer("/metadata/deletionTimestamp").is_some()
            {
                continue;
            }
            let Some(class) = class_of(store, &pvc) else {
                continue;
            };
            if str_at(&class, "/provisioner") != Some(DRIVER) {
                continue;
            }
            if str_at(&class, "/volumeBindingMode") == Some("WaitForFirstConsumer")
                && !has_consumer(store, &pvc)
            {
                continue;
            }
            let source = match data_source(store, &pvc) {
                Ok(s) => s,
                Err(why) => {
                    event(
                        store,
                        &pvc,
                        "Warning",
                        "ProvisioningFailed",
                        &format!(
                            "waiting for the data source before a volume can be provisioned: {why}"
                        ),
                    );
                    continue;
                }
            };
            let ns = ns_of(&pvc).unwrap_or("default").to_string();
            let claim = name_of(&pvc).to_string();
            let uid = str_at(&pvc, "/metadata/uid").unwrap_or("").to_string();
            let volume = format!("pvc-{uid}");
            let request = str_at(&pvc, "/spec/resources/requests/storage")
                .unwrap_or("1Gi")
                .to_string();
            let bytes = quantity_bytes(&request).unwrap_or(1 << 30);
            let replicas = str_at(&class, "/parameters/numberOfReplicas")
                .and_then(|r| r.parse::<u64>().ok())
                .unwrap_or(3);
            let lh_ns = longhorn_ns(store);
            let mut spec = json!({"size": bytes.to_string(), "numberOfReplicas": replicas,
                "frontend": "blockdev", "dataEngine": "v1", "accessMode": "rwo",
                "staleReplicaTimeout": 30});
            if let Some((handle, url)) = &source {
                match url {
                    Some(url) => spec["fromBackup"] = json!(url),
                    None => spec["dataSource"] = json!(handle),
                }
            }
            let vol = json!({"apiVersion": vols.api_version(), "kind": "Volume",
                "metadata": {"name": volume, "namespace": lh_ns, "labels": {"longhornvolume": volume}},
                "spec": spec});
            if store.get(&vols, Some(&lh_ns), &volume).is_err() {
                match store.create(&vols, Some(&lh_ns), vol, &opts(MANAGER)) {
                    Ok(created) => {
                        let status = json!({"state": "detached", "robustness": "unknown",
                            "currentNodeID": "", "restoreRequired": false,
                            "kubernetesStatus": {"namespace": ns, "pvcName": claim,
                                "pvName": volume, "pvStatus": "Bound", "workloadsStatus": []}});
                        put_status(store, &vols, &created, status, MANAGER);
                    }
                    Err(e) => {
                        tracing::debug!("{MANAGER}: volume for {ns}/{claim}: {}", e.message);
                        continue;
                    }
                }
            }
            let pv = json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": volume, "annotations": {"pv.kubernetes.io/provisioned-by": DRIVER}},
            "spec": {
                "accessModes": pvc.pointer("/spec/accessModes").cloned().unwrap_or_else(|| json!(["ReadWriteOnce"])),
                "capacity": {"storage": request},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": claim,
                    "namespace": ns, "uid": uid},
                "csi": {"driver": DRIVER, "fsType": "ext4", "volumeHandle": volume,
                    "volumeAttributes": {"numberOfReplicas": replicas.to_string(), "staleReplicaTimeout": "30"}},
                "persistentVolumeReclaimPolicy": str_at(&class, "/reclaimPolicy").unwrap_or("Delete"),
                "storageClassName": name_of(&class),
                "volumeMode": str_at(&pvc, "/spec/volumeMode").unwrap_or("Filesystem"),
            }});
            if store.get(&pvs, None, &volume).is_err() {
                match store.create(&pvs, None, pv, &opts(PROVISIONER)) {
                    Ok(created) => put_status(
                        store,
                        &pvs,
                        &created,
                        json!({"phase": "Bound"}),
                        PROVISIONER,
                    ),
                    Err(e) => {
                        tracing::debug!("{PROVISIONER}: PV for {ns}/{claim}: {}", e.message);
                        continue;
                    }
                }
            }
            merge(
                store,
                &pvcs,
                &pvc,
                json!({"metadata": {"annotations": {
                    "pv.kubernetes.io/bind-completed": "yes",
                    "volume.kubernetes.io/storage-provisioner": DRIVER}},
                "spec": {"volumeName": volume}}),
                PROVISIONER,
            );
            if let Ok(now_pvc) = store.get(&pvcs, Some(&ns), &claim) {
                let status = json!({"phase": "Bound",
                    "accessModes": now_pvc.pointer("/spec/accessModes").cloned().unwrap_or_else(|| json!(["ReadWriteOnce"])),
                    "capacity": {"storage": request}});
                put_status(store, &pvcs, &now_pvc, status, PROVISIONER);
            }
            let from = source
                .as_ref()
                .map(|(h, _)| format!(" from {h}"))
                .unwrap_or_default();
            event(
                store,
                &pvc,
                "Normal",
                "ProvisioningSucceeded",
                &format!("Successfully provisioned volume {volume}{from}"),
            );
        }
    }

    /// Longhorn PVs whose claim is gone: deleted with their volume (and its in-cluster
    /// snapshots, which die with it) under `Delete`, marked Released under `Retain`.
    pub(super) fn reclaim(store: &Store) {
        let (Some(pvcs), Some(pvs)) = (
            resource(store, "", "persistentvolumeclaims"),
            resource(store, "", "persistentvolumes"),
        ) else {
            return;
        };
        let vols = resource(store, GROUP, "volumes");
        let snaps = resource(store, GROUP, "snapshots");
        for pv in list(store, &pvs) {
            if str_at(&pv, "/spec/csi/driver") != Some(DRIVER)
                || pv.pointer("/metadata/deletionTimestamp").is_some()
            {
                continue;
            }
            let (Some(ns), Some(claim)) = (
                str_at(&pv, "/spec/claimRef/namespace"),
                str_at(&pv, "/spec/claimRef/name"),
            ) else {
                continue;
            };
            let live = store.get(&pvcs, Some(ns), claim).ok();
            let bound = live.as_ref().is_some_and(|c| {
                match (
                    str_at(&pv, "/spec/claimRef/uid"),
                    str_at(c, "/metadata/uid"),
                ) {
                    (Some(want), Some(have)) if !want.is_empty() => want == have,
                    _ => true,
                }
            });
            if bound {
                continue;
            }
            if str_at(&pv, "/spec/persistentVolumeReclaimPolicy") != Some("Delete") {
                if str_at(&pv, "/status/phase") != Some("Released") {
                    put_status(store, &pvs, &pv, json!({"phase": "Released"}), PROVISIONER);
                }
                continue;
            }
            let volume = str_at(&pv, "/spec/csi/volumeHandle")
                .unwrap_or("")
                .to_string();
            if let Err(e) = store.delete(&pvs, None, name_of(&pv), &DeleteOptions::default()) {
                tracing::debug!("{PROVISIONER}: delete PV {}: {}", name_of(&pv), e.message);
                continue;
            }
            if let Some(snaps) = &snaps {
                for s in list(store, snaps) {
                    if str_at(&s, "/spec/volume") == Some(volume.as_str()) {
                        let _ =
                            store.delete(snaps, ns_of(&s), name_of(&s), &DeleteOptions::default());
                    }
                }
            }
            if let Some(vols) = &vols {
                for v in list(store, vols) {
                    if name_of(&v) == volume {
                        let _ = store.delete(vols, ns_of(&v), &volume, &DeleteOptions::default());
                    }
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn handles_and_quantities() {
            assert_eq!(
                parse_handle("snap://pvc-1/s1"),
                Some(Handle::Snapshot {
                    volume: "pvc-1",
                    name: "s1"
                })
            );
            assert_eq!(
                parse_handle("bak://pvc-1/b1"),
                Some(Handle::Backup {
                    volume: "pvc-1",
                    name: "b1"
                })
            );
            for bad in [
                "bs://v/b",
                "snap://v",
                "snap:///s",
                "snap://v/",
                "snap://v/a/b",
                "v/s",
            ] {
                assert_eq!(parse_handle(bad), None, "{bad}");
            }
            assert_eq!(quantity_bytes("1Gi"), Some(1 << 30));
            assert_eq!(quantity_bytes("32Mi"), Some(32 << 20));
            assert_eq!(quantity_bytes("2G"), Some(2_000_000_000));
            assert_eq!(quantity_bytes("1073741824"), Some(1 << 30));
            assert_eq!(quantity_bytes("1Zi"), None);
        }
    }
}
