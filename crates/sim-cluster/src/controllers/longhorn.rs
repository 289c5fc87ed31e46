//! Longhorn (`longhorn.io`): volume state and robustness from the pods using them, snapshots
//! becoming `readyToUse`, backups going `InProgress` → `Completed` (or `Error` when
//! configured), and the `current-longhorn-version` Setting following the installed Longhorn
//! HelmRelease.

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
        self.volumes(store);
        self.snapshots(store);
        self.backups(store);
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
