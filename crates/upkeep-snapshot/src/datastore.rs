//! `--datastore`: the k3s datastore itself, saved on a server node by a
//! short-lived Job, because a restore of the objects alone cannot bring
//! back what only the datastore holds (and an etcd restore needs the
//! server token, which the Job hands over in a Secret that is read,
//! encrypted into the restore point, and deleted).
//!
//! Embedded etcd: `k3s etcd-snapshot save`. SQLite (single server): an
//! online `.backup` with the host's `sqlite3`. An external datastore is
//! refused: it is backed up with its own tools. The Job's last log line
//! says what was written: `UPKEEP-DATASTORE file=... size=N sha256=HEX`.

use std::time::Duration;

use serde_json::{Value, json};
use upkeep_contract::DatastoreBackup;
use upkeep_kube::{ApplyOptions, Cluster, ClusterRead, ListOptions, ResourceRef, Until};

use crate::SnapshotError;

/// The Secret the Job leaves the server token in.
pub(crate) const TOKEN_SECRET: &str = "upkeep-server-token";
const NAMESPACE: &str = "kube-system";
const ROLE_CONTROL_PLANE: &str = "node-role.kubernetes.io/control-plane";
const ROLE_MASTER: &str = "node-role.kubernetes.io/master";
const ROLE_ETCD: &str = "node-role.kubernetes.io/etcd";
/// Where k3s keeps its datastore on a server.
const DB_DIR: &str = "/var/lib/rancher/k3s/server/db";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Etcd,
    Sqlite,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Etcd => "etcd",
            Kind::Sqlite => "sqlite",
        }
    }
}

/// Which datastore, and the server node to save it on, from the nodes'
/// role labels (as k3s sets them).
pub(crate) fn choose(nodes: &[Value]) -> Result<(Kind, String), SnapshotError> {
    let has = |n: &Value, l: &str| {
        n.pointer("/metadata/labels")
            .and_then(|m| m.get(l))
            .is_some()
    };
    let name = |n: &Value| {
        n.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut servers: Vec<&Value> = nodes
        .iter()
        .filter(|n| has(n, ROLE_CONTROL_PLANE) || has(n, ROLE_MASTER))
        .collect();
    servers.sort_by_key(|n| name(n));
    if let Some(etcd) = servers.iter().find(|n| has(n, ROLE_ETCD)) {
        return Ok((Kind::Etcd, name(etcd)));
    }
    match servers.as_slice() {
        [] => Err(SnapshotError::input(
            "--datastore",
            "no k3s server node found (no node has the control-plane role label)",
        )),
        [one] => Ok((Kind::Sqlite, name(one))),
        _ => Err(SnapshotError::input(
            "--datastore",
            "several servers without embedded etcd: the datastore is external; back it up with its own tools",
        )),
    }
}

/// The Job's shell script: save, report, hand the token over.
fn script(kind: Kind, name: &str) -> String {
    let save = match kind {
        Kind::Etcd => format!(
            "k3s etcd-snapshot save --name {name} >&2\nf=$(ls -t {DB_DIR}/snapshots/{name}* | head -n 1)"
        ),
        Kind::Sqlite => format!(
            "command -v sqlite3 >/dev/null || {{ echo 'sqlite3 is not installed on the server; it is needed for an online backup' >&2; exit 1; }}\nf={DB_DIR}/{name}.db\nsqlite3 {DB_DIR}/state.db \".backup '$f'\"\nchmod 600 \"$f\""
        ),
    };
    format!(
        "set -eu\n{save}\n\
         k3s kubectl -n {NAMESPACE} delete secret {TOKEN_SECRET} --ignore-not-found >&2\n\
         k3s kubectl -n {NAMESPACE} create secret generic {TOKEN_SECRET} --from-file=token=/var/lib/rancher/k3s/server/token >&2\n\
         echo \"UPKEEP-DATASTORE file=$f size=$(stat -c %s \"$f\") sha256=$(sha256sum \"$f\" | cut -d' ' -f1)\"\n"
    )
}

pub(crate) fn job(kind: Kind, node: &str, job_name: &str, point: &str, image: &str) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name, "namespace": NAMESPACE,
            "labels": {"upkeep.dev/restore-point": point, "app.kubernetes.io/managed-by": "upkeep"}},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": {"upkeep.dev/restore-point": point}},
                "spec": {
                    "nodeName": node,
                    "restartPolicy": "Never",
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{
                        "name": "save",
                        "image": image,
                        "command": ["chroot", "/host", "/bin/sh", "-c", script(kind, point)],
                        "securityContext": {"privileged": true},
                        "volumeMounts": [{"name": "host", "mountPath": "/host"}]
                    }],
                    "volumes": [{"name": "host", "hostPath": {"path": "/"}}]
                }
            }
        }
    })
}

/// What the Job's report line says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Report {
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

pub(crate) fn parse_report(logs: &str) -> Option<Report> {
    let line = logs
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("UPKEEP-DATASTORE "))?;
    let mut file = None;
    let mut size = None;
    let mut sha = None;
    for field in line.split_whitespace().skip(1) {
        match field.split_once('=') {
            Some(("file", v)) if v.starts_with('/') => file = Some(v.to_string()),
            Some(("size", v)) => size = v.parse().ok(),
            Some(("sha256", v)) if v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit()) => {
                sha = Some(v.to_ascii_lowercase())
            }
            _ => {}
        }
    }
    Some(Report {
        file: file?,
        size: size?,
        sha256: sha?,
    })
}

/// Runs the Job and returns the backup record and the server token (the
/// caller encrypts it into the restore point).
pub(crate) async fn save(
    cluster: &Cluster,
    point: &str,
    image: &str,
    within: Duration,
) -> Result<(DatastoreBackup, Option<Vec<u8>>), SnapshotError> {
    let nodes_res = cluster
        .resource(&ResourceRef::preferred("", "Node"))
        .await?;
    let nodes: Vec<Value> = futures_util::TryStreamExt::try_collect::<Vec<_>>(
        cluster.list(&nodes_res, &ListOptions::all_namespaces()),
    )
    .await?
    .into_iter()
    .filter_map(|n| serde_json::to_value(n).ok())
    .collect();
    let (kind, node) = choose(&nodes)?;
    let job_res = cluster
        .resource(&ResourceRef::preferred("batch", "Job"))
        .await?;
    let job_name =
        format!("upkeep-datastore-{}", point.trim_start_matches("upkeep-")).to_lowercase();
    cluster
        .apply(
            &job_res,
            &job(kind, &node, &job_name, point, image),
            &ApplyOptions::new("upkeep-snapshot"),
        )
        .await?;
    tracing::info!(
        node = node.as_str(),
        datastore = kind.as_str(),
        "saving the datastore"
    );
    let done = cluster
        .wait_for(
            &job_res,
            Some(NAMESPACE),
            &job_name,
            &Until::custom("Complete or Failed", |o| {
                upkeep_kube::condition(o, "Complete").is_some_and(|c| c.status == "True")
                    || upkeep_kube::condition(o, "Failed").is_some_and(|c| c.status == "True")
            }),
            within,
        )
        .await
        .map_err(|e| SnapshotError::Volume(format!("datastore Job {job_name}: {e}")))?;
    let logs = cluster
        .job_logs(NAMESPACE, &job_name)
        .await
        .unwrap_or_default();
    let failed = upkeep_kube::condition(&done, "Failed").is_some_and(|c| c.status == "True");
    let report = parse_report(&logs);
    let Some(report) = report.filter(|_| !failed) else {
        let tail: Vec<&str> = logs.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(SnapshotError::Volume(format!(
            "datastore Job {job_name} on {node} failed: {}",
            if tail.is_empty() {
                "no log".to_string()
            } else {
                tail.join(" | ")
            }
        )));
    };
    let secret_res = cluster
        .resource(&ResourceRef::preferred("", "Secret"))
        .await?;
    let token = match cluster
        .get(&secret_res, Some(NAMESPACE), TOKEN_SECRET)
        .await?
    {
        Some(s) => {
            let v = serde_json::to_value(&s).unwrap_or_default();
            let _ = cluster
                .delete(&secret_res, Some(NAMESPACE), TOKEN_SECRET)
                .await;
            v.pointer("/data/token")
                .and_then(Value::as_str)
                .and_then(|b| {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .ok()
                })
        }
        None => None,
    };
    Ok((
        DatastoreBackup {
            datastore: kind.as_str().to_string(),
            name: report.file,
            size: report.size,
            sha256: report.sha256,
            token_captured: token.is_some(),
        },
        token,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: &[&str]) -> Value {
        let l: serde_json::Map<String, Value> = labels
            .iter()
            .map(|k| (k.to_string(), json!("true")))
            .collect();
        json!({"metadata": {"name": name, "labels": l}})
    }

    #[test]
    fn the_datastore_follows_the_role_labels() {
        let etcd = [
            node("s2", &[ROLE_CONTROL_PLANE, ROLE_ETCD]),
            node("s1", &[ROLE_CONTROL_PLANE, ROLE_MASTER, ROLE_ETCD]),
            node("w1", &[]),
        ];
        assert_eq!(choose(&etcd).unwrap(), (Kind::Etcd, "s1".to_string()));
        let single = [
            node("s1", &[ROLE_CONTROL_PLANE, ROLE_MASTER]),
            node("w1", &[]),
        ];
        assert_eq!(choose(&single).unwrap(), (Kind::Sqlite, "s1".to_string()));
        let external = [
            node("s1", &[ROLE_CONTROL_PLANE]),
            node("s2", &[ROLE_CONTROL_PLANE]),
        ];
        assert!(
            choose(&external)
                .unwrap_err()
                .to_string()
                .contains("external")
        );
        assert!(choose(&[node("w1", &[])]).is_err());
    }

    #[test]
    fn the_report_line_is_read_strictly() {
        let sha = "ab".repeat(32);
        let logs = format!(
            "Saving etcd snapshot...\nUPKEEP-DATASTORE file=/var/lib/rancher/k3s/server/db/snapshots/x-s1-1 size=4096 sha256={sha}\n"
        );
        assert_eq!(
            parse_report(&logs).unwrap(),
            Report {
                file: "/var/lib/rancher/k3s/server/db/snapshots/x-s1-1".into(),
                size: 4096,
                sha256: sha.clone()
            }
        );
        assert!(parse_report("UPKEEP-DATASTORE file=x size=1 sha256=zz").is_none());
        assert!(parse_report("nothing here").is_none());
    }

    #[test]
    fn the_job_runs_on_the_server_and_hands_the_token_over() {
        let j = job(
            Kind::Etcd,
            "s1",
            "upkeep-datastore-x",
            "upkeep-x",
            "busybox",
        );
        assert_eq!(j["spec"]["template"]["spec"]["nodeName"], "s1");
        let cmd = j["spec"]["template"]["spec"]["containers"][0]["command"][4]
            .as_str()
            .unwrap();
        assert!(cmd.contains("k3s etcd-snapshot save --name upkeep-x"));
        assert!(cmd.contains(TOKEN_SECRET));
        assert!(cmd.contains("UPKEEP-DATASTORE"));
        let s = script(Kind::Sqlite, "upkeep-x");
        assert!(s.contains(".backup") && s.contains("command -v sqlite3"));
    }
}
