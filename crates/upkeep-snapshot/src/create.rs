//! `snapshot create`: every listable object of every served kind, streamed
//! to the restore point one page at a time; the GitOps and Flux revisions;
//! Longhorn snapshots or backups of the volumes in scope.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::TryStreamExt;
use serde_json::{Value, json};
use upkeep_contract::{
    ApiVersion, GitState, ObjectRef, RecordedRevision, SnapshotManifest, SnapshotScope, Timestamp,
    VolumeBackup, VolumeBackupKind,
};
use upkeep_kube::{ApplyOptions, Cluster, ClusterRead, ListOptions, Resource, ResourceRef, Until};

use crate::SnapshotError;
use crate::crypt::Recipients;
use crate::layout::object_path;
use crate::scope::names_kind;
use crate::strip::{is_sensitive, owned_by_controller, skipped_kind, strip};
use crate::write::Sink;

/// What `--longhorn` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LonghornMode {
    #[default]
    None,
    /// An in-cluster Snapshot per volume: fast, lost with the volume.
    Snapshot,
    /// A Backup per volume to the configured backup target.
    Backup,
}

/// Everything `snapshot create` is told.
#[derive(Clone, Default)]
pub struct CreateOptions {
    pub out: PathBuf,
    /// Only these namespaces (and the cluster-scoped objects they need:
    /// their Namespace objects, CRDs, the PVs bound to their claims).
    /// Empty means the whole cluster.
    pub namespaces: Vec<String>,
    pub recipients: Recipients,
    /// Leave Secrets (and sensitive ConfigMaps) out instead of encrypting them.
    pub exclude_secrets: bool,
    /// ConfigMaps (`namespace/name`) to encrypt like Secrets.
    pub sensitive_configmaps: Vec<String>,
    pub include_status: bool,
    pub gitops: Option<PathBuf>,
    pub longhorn: LonghornMode,
    /// How long to wait for each Longhorn snapshot or backup.
    pub longhorn_timeout: Duration,
    pub tool_version: String,
    /// Page size of each list call.
    pub page_size: u32,
    /// Kinds left out (`Kind` or `Kind.group`), from the scope file.
    pub exclude_kinds: Vec<String>,
    /// Save the k3s datastore too (etcd snapshot or SQLite backup) on a
    /// server node, with the server token.
    pub datastore: bool,
    /// The image of the Job that does it: any image with `chroot` and a
    /// shell; the work runs in the host's root.
    pub datastore_image: String,
    pub datastore_timeout: Duration,
}

const FIELD_MANAGER: &str = "upkeep-snapshot";
/// Where the server token goes in a restore point (always encrypted).
pub(crate) const TOKEN_PATH: &str = "datastore/server-token.age";

/// Writes a restore point and returns its manifest. On any failure the
/// partial restore point is removed and the error returned.
pub async fn create(
    cluster: &Cluster,
    opts: &CreateOptions,
) -> Result<SnapshotManifest, SnapshotError> {
    if opts.recipients.is_empty() && !opts.exclude_secrets {
        return Err(SnapshotError::input(
            "--age-recipient",
            "none given: Secrets are never stored unencrypted; give --age-recipient KEY (age1...) or --exclude-secrets",
        ));
    }
    if opts.datastore && opts.recipients.is_empty() {
        return Err(SnapshotError::input(
            "--datastore",
            "needs --age-recipient: a datastore restore needs the server token, which is stored encrypted",
        ));
    }
    let created_at = Timestamp::now();
    let name = restore_point_name(&created_at);
    // Read what does not write anything first: a bad --gitops fails before the cluster is touched.
    let git = match &opts.gitops {
        Some(dir) => Some(git_state(dir)?),
        None => None,
    };
    let cluster_version = cluster.server_version().await?.git_version;
    let mut sink = Sink::create(&opts.out, created_at.0.as_second().max(0) as u64)?;
    let mut files = Vec::new();
    let mut skipped: BTreeMap<String, String> = BTreeMap::new();
    let mut revisions = Vec::new();
    let mut volumes_in_scope: Vec<Value> = Vec::new();
    let mut owned: BTreeMap<String, usize> = BTreeMap::new();
    let mut left_out_secrets = 0usize;

    let mut resources = cluster.resources().await?;
    resources.sort_by(|a, b| {
        (a.api.group.as_str(), a.api.kind.as_str())
            .cmp(&(b.api.group.as_str(), b.api.kind.as_str()))
    });
    for res in &resources {
        let label = kind_label(res);
        if let Some(why) = skipped_kind(&res.api.group, &res.api.kind) {
            skipped.insert(label, why.to_string());
            continue;
        }
        if names_kind(&opts.exclude_kinds, &res.api.group, &res.api.kind) {
            skipped.insert(label, "excluded by the scope".to_string());
            continue;
        }
        if !res.namespaced && !opts.namespaces.is_empty() && !cluster_scoped_needed(res) {
            skipped.insert(
                label,
                "cluster-scoped, outside the namespaces asked for".to_string(),
            );
            continue;
        }
        let scopes: Vec<ListOptions> = if res.namespaced && !opts.namespaces.is_empty() {
            opts.namespaces
                .iter()
                .map(|ns| ListOptions::in_namespace(ns).page_size(opts.page_size.max(1)))
                .collect()
        } else {
            vec![ListOptions::all_namespaces().page_size(opts.page_size.max(1))]
        };
        for list_opts in &scopes {
            let mut stream = cluster.list(res, list_opts);
            while let Some(obj) = stream.try_next().await? {
                let mut value = upkeep_kube::object_value(&obj, res)?;
                if !in_scope(res, &value, &opts.namespaces) {
                    continue;
                }
                record_revision(&value, &mut revisions);
                if res.api.group == "longhorn.io" && res.api.kind == "Volume" {
                    volumes_in_scope.push(value.clone());
                }
                if owned_by_controller(&value) {
                    *owned.entry(label.clone()).or_default() += 1;
                    continue;
                }
                let sensitive = is_sensitive(&value, &opts.sensitive_configmaps);
                if sensitive && opts.exclude_secrets {
                    left_out_secrets += 1;
                    continue;
                }
                strip(&mut value, opts.include_status);
                let Some(path) = object_path(&value, sensitive) else {
                    return Err(SnapshotError::input(
                        res.collection_target(None),
                        format!("an object without a usable name: {}", short(&value)),
                    ));
                };
                let text = serde_json::to_vec(&value)
                    .map_err(|e| SnapshotError::input(&path, e.to_string()))?;
                let bytes = if sensitive {
                    opts.recipients.encrypt(&text)?
                } else {
                    text
                };
                files.push(sink.add(&path, &bytes, sensitive)?);
            }
        }
    }
    for (kind, n) in owned {
        skipped
            .entry(kind)
            .or_insert_with(|| format!("{n} owned by a controller, which recreates them"));
    }
    if left_out_secrets > 0 {
        skipped.insert(
            "Secret".to_string(),
            format!("{left_out_secrets} left out by --exclude-secrets"),
        );
    }

    let volumes = match opts.longhorn {
        LonghornMode::None => Vec::new(),
        mode => {
            protect_volumes(
                cluster,
                &volumes_in_scope,
                mode,
                &name,
                opts.longhorn_timeout,
            )
            .await?
        }
    };

    let mut errors = Vec::new();
    let datastore = if opts.datastore {
        let (backup, token) = crate::datastore::save(
            cluster,
            &name,
            &opts.datastore_image,
            opts.datastore_timeout,
        )
        .await?;
        match token {
            Some(t) => files.push(sink.add(TOKEN_PATH, &opts.recipients.encrypt(&t)?, true)?),
            None => errors.push(upkeep_contract::DocError {
                source: "datastore".to_string(),
                message: upkeep_contract::SafeText::new(
                    "the server token was not captured: a datastore restore will need it from the server (/var/lib/rancher/k3s/server/token)",
                ),
                target: None,
            }),
        }
        Some(backup)
    } else {
        None
    };

    let git = if git.is_some() || !revisions.is_empty() {
        let mut g = git.unwrap_or_default();
        g.revisions = revisions;
        Some(g)
    } else {
        None
    };
    let manifest = SnapshotManifest {
        api_version: ApiVersion,
        kind: Default::default(),
        name,
        created_at,
        tool_version: opts.tool_version.clone(),
        cluster_version: Some(cluster_version),
        scope: SnapshotScope {
            namespaces: opts.namespaces.clone(),
            secrets_included: !opts.exclude_secrets,
            status_included: opts.include_status,
        },
        recipients: opts.recipients.as_strings().to_vec(),
        files,
        skipped: skipped
            .into_iter()
            .map(|(k, why)| format!("{k}: {why}"))
            .collect(),
        git,
        volumes,
        datastore,
        errors,
    };
    sink.finish(&manifest)?;
    Ok(manifest)
}

/// `upkeep-20261128T040000Z`: sorts by time, safe in any file system.
pub(crate) fn restore_point_name(at: &Timestamp) -> String {
    format!("upkeep-{}", at.0.strftime("%Y%m%dT%H%M%SZ"))
}

fn kind_label(res: &Resource) -> String {
    if res.api.group.is_empty() {
        res.api.kind.clone()
    } else {
        format!("{}.{}", res.api.kind, res.api.group)
    }
}

/// With a namespace scope, the cluster-scoped kinds a namespace's restore
/// cannot do without.
fn cluster_scoped_needed(res: &Resource) -> bool {
    matches!(
        (res.api.group.as_str(), res.api.kind.as_str()),
        ("", "Namespace")
            | ("", "PersistentVolume")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
    )
}

fn in_scope(res: &Resource, obj: &Value, namespaces: &[String]) -> bool {
    if namespaces.is_empty() || res.namespaced {
        return true;
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    match (res.api.group.as_str(), res.api.kind.as_str()) {
        ("", "Namespace") => namespaces.iter().any(|n| n == name),
        ("", "PersistentVolume") => obj
            .pointer("/spec/claimRef/namespace")
            .and_then(Value::as_str)
            .is_some_and(|ns| namespaces.iter().any(|n| n == ns)),
        _ => true,
    }
}

/// The revisions a rollback returns to: each Flux source's artifact, each
/// Kustomization's last applied revision, each HelmRelease's installed chart.
fn record_revision(obj: &Value, out: &mut Vec<RecordedRevision>) {
    let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let group = api.split_once('/').map_or("", |(g, _)| g);
    let revision = match (group, kind) {
        (
            "source.toolkit.fluxcd.io",
            "GitRepository" | "OCIRepository" | "HelmRepository" | "Bucket",
        ) => obj.pointer("/status/artifact/revision"),
        ("kustomize.toolkit.fluxcd.io", "Kustomization") => {
            obj.pointer("/status/lastAppliedRevision")
        }
        ("helm.toolkit.fluxcd.io", "HelmRelease") => obj
            .pointer("/status/history/0/chartVersion")
            .or_else(|| obj.pointer("/status/lastAppliedRevision")),
        _ => None,
    };
    if let Some(rev) = revision.and_then(Value::as_str).filter(|r| !r.is_empty()) {
        out.push(RecordedRevision {
            object: ObjectRef::of(obj),
            revision: rev.to_string(),
        });
    }
}

fn short(v: &Value) -> String {
    let mut s = v.to_string();
    s.truncate(120);
    s
}

fn git_state(dir: &std::path::Path) -> Result<GitState, SnapshotError> {
    let repo =
        upkeep_git::Repo::open(dir).map_err(|e| SnapshotError::input("--gitops", e.to_string()))?;
    let st = repo
        .state()
        .map_err(|e| SnapshotError::input("--gitops", e.to_string()))?;
    Ok(GitState {
        head: Some(st.head),
        branch: st.branch,
        remote: st.remote,
        dirty: !st.dirty.is_empty(),
        revisions: Vec::new(),
    })
}

/// A Longhorn Snapshot (and, for `backup`, a Backup of it) per volume,
/// each waited on until ready; any that fails or times out fails the
/// restore point, because one that silently lacks a volume is a trap.
async fn protect_volumes(
    cluster: &Cluster,
    volumes: &[Value],
    mode: LonghornMode,
    point: &str,
    within: Duration,
) -> Result<Vec<VolumeBackup>, SnapshotError> {
    let mut out = Vec::new();
    if volumes.is_empty() {
        return Ok(out);
    }
    let snap_res = cluster
        .resource(&ResourceRef::preferred("longhorn.io", "Snapshot"))
        .await?;
    let backup_res = match mode {
        LonghornMode::Backup => Some(
            cluster
                .resource(&ResourceRef::preferred("longhorn.io", "Backup"))
                .await?,
        ),
        _ => None,
    };
    let apply = ApplyOptions::new(FIELD_MANAGER);
    for vol in volumes {
        let vref = ObjectRef::of(vol);
        let ns = vref.namespace.clone();
        // Longhorn names snapshots per volume; ours say which restore point made them.
        let snap_name = format!("{point}-{}", vref.name).to_lowercase();
        let snapshot = json!({
            "apiVersion": snap_res.api.api_version,
            "kind": "Snapshot",
            "metadata": {"name": snap_name, "namespace": ns,
                "labels": {"upkeep.dev/restore-point": point, "longhornvolume": vref.name}},
            "spec": {"volume": vref.name, "createSnapshot": true,
                "labels": {"upkeep.dev/restore-point": point}}
        });
        cluster.apply(&snap_res, &snapshot, &apply).await?;
        tracing::info!(
            volume = vref.name.as_str(),
            "waiting for the Longhorn snapshot"
        );
        let ready = cluster
            .wait_for(
                &snap_res,
                ns.as_deref(),
                &snap_name,
                &Until::field("/status/readyToUse", Value::Bool(true)),
                within,
            )
            .await
            .map_err(|e| {
                SnapshotError::Volume(format!("Longhorn snapshot of volume {}: {e}", vref.name))
            })?;
        let snap_ref = ObjectRef {
            api_version: snap_res.api.api_version.clone(),
            kind: "Snapshot".to_string(),
            namespace: ns.clone(),
            name: snap_name.clone(),
        };
        let _ = ready;
        let Some(backup_res) = &backup_res else {
            out.push(VolumeBackup {
                volume: vref.name.clone(),
                kind: VolumeBackupKind::Snapshot,
                object: snap_ref,
                url: None,
            });
            continue;
        };
        let backup = json!({
            "apiVersion": backup_res.api.api_version,
            "kind": "Backup",
            "metadata": {"name": snap_name, "namespace": ns,
                "labels": {"upkeep.dev/restore-point": point, "longhorn.io/backup-volume": vref.name}},
            "spec": {"snapshotName": snap_name, "labels": {"upkeep.dev/restore-point": point}}
        });
        cluster.apply(backup_res, &backup, &apply).await?;
        tracing::info!(
            volume = vref.name.as_str(),
            "waiting for the Longhorn backup"
        );
        let done = cluster
            .wait_for(
                backup_res,
                ns.as_deref(),
                &snap_name,
                &Until::custom("state Completed or Error", |o| {
                    matches!(
                        o.data.pointer("/status/state").and_then(Value::as_str),
                        Some("Completed" | "Error")
                    )
                }),
                within,
            )
            .await
            .map_err(|e| {
                SnapshotError::Volume(format!("Longhorn backup of volume {}: {e}", vref.name))
            })?;
        let state = done.data.pointer("/status/state").and_then(Value::as_str);
        if state != Some("Completed") {
            let why = done
                .data
                .pointer("/status/error")
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            return Err(SnapshotError::Volume(format!(
                "Longhorn backup of volume {} failed: {why}",
                vref.name
            )));
        }
        out.push(VolumeBackup {
            volume: vref.name.clone(),
            kind: VolumeBackupKind::Backup,
            object: ObjectRef {
                api_version: backup_res.api.api_version.clone(),
                kind: "Backup".to_string(),
                namespace: ns.clone(),
                name: snap_name,
            },
            url: done
                .data
                .pointer("/status/url")
                .and_then(Value::as_str)
                .map(str::to_string),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time() {
        let a = restore_point_name(&Timestamp::parse("2026-11-28T04:00:00Z").unwrap());
        let b = restore_point_name(&Timestamp::parse("2026-11-28T14:00:00Z").unwrap());
        assert_eq!(a, "upkeep-20261128T040000Z");
        assert!(a < b);
    }

    #[test]
    fn flux_revisions_are_recorded() {
        let mut out = Vec::new();
        record_revision(
            &json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                "metadata": {"name": "flux-system", "namespace": "flux-system"},
                "status": {"artifact": {"revision": "main@sha1:abc"}}}),
            &mut out,
        );
        record_revision(
            &json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                "metadata": {"name": "longhorn", "namespace": "longhorn-system"},
                "status": {"history": [{"chartVersion": "1.9.0"}]}}),
            &mut out,
        );
        record_revision(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
            &mut out,
        );
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|r| (r.object.kind.as_str(), r.revision.as_str()))
            .collect();
        assert_eq!(
            got,
            [("GitRepository", "main@sha1:abc"), ("HelmRelease", "1.9.0")]
        );
    }
}
