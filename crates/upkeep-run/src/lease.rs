//! The cluster-wide lock: a `coordination.k8s.io/v1` Lease that a run holds
//! and renews, so that a second `upkeep run` — from another machine, or a
//! CronJob — is refused while one is going. A run that dies stops renewing
//! and the Lease expires after its TTL; the same run, resumed, takes its own
//! Lease back at once.

use std::time::Duration;

use serde_json::{Value, json};
use upkeep_kube::{Cluster, ClusterRead, KubeError, Resource, ResourceRef};

use crate::RunError;

pub const LEASE_NAME: &str = "upkeep-run";
pub const LEASE_NAMESPACE: &str = "kube-system";

pub struct Lease {
    res: Resource,
    holder: String,
    ttl: Duration,
}

fn micro_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

impl Lease {
    /// Takes the Lease for `holder`, or fails naming who holds it and until when.
    pub async fn acquire(
        cluster: &Cluster,
        holder: &str,
        ttl: Duration,
    ) -> Result<Lease, RunError> {
        Lease::acquire_from(cluster, holder, None, ttl).await
    }

    /// [`Lease::acquire`], also taking the Lease over from `dead`: a holder
    /// known to have died (a run on this machine killed before it saved any
    /// state, so that nothing could resume it and give the Lease back).
    pub async fn acquire_from(
        cluster: &Cluster,
        holder: &str,
        dead: Option<&str>,
        ttl: Duration,
    ) -> Result<Lease, RunError> {
        let res = cluster
            .resource(&ResourceRef::preferred("coordination.k8s.io", "Lease"))
            .await?;
        let lease = Lease {
            res,
            holder: holder.to_string(),
            ttl,
        };
        let now = jiff::Timestamp::now();
        let existing = cluster
            .get(&lease.res, Some(LEASE_NAMESPACE), LEASE_NAME)
            .await?
            .map(|o| upkeep_kube::object_value(&o, &lease.res))
            .transpose()?;
        let body = lease.body(now, None);
        match existing {
            None => match cluster
                .create(
                    &lease.res,
                    &body,
                    &upkeep_kube::ApplyOptions::new(crate::FIELD_MANAGER),
                )
                .await
            {
                Ok(_) => Ok(lease),
                Err(e) if e.is_conflict() => Err(RunError::Busy(
                    "another upkeep run took the Lease at the same moment".to_string(),
                )),
                Err(e) => Err(e.into()),
            },
            Some(current) => {
                let other = current
                    .pointer("/spec/holderIdentity")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if other != holder && Some(other) != dead && !expired(&current, now) {
                    return Err(RunError::Busy(format!(
                        "{other} holds the Lease {LEASE_NAMESPACE}/{LEASE_NAME} (renewed {}, for {} s); wait for it to finish",
                        current
                            .pointer("/spec/renewTime")
                            .and_then(Value::as_str)
                            .unwrap_or("?"),
                        current
                            .pointer("/spec/leaseDurationSeconds")
                            .and_then(Value::as_i64)
                            .unwrap_or(0),
                    )));
                }
                let rv = current
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                lease.replace(cluster, now, rv).await?;
                Ok(lease)
            }
        }
    }

    fn body(&self, now: jiff::Timestamp, resource_version: Option<String>) -> Value {
        let mut metadata = json!({"name": LEASE_NAME, "namespace": LEASE_NAMESPACE,
            "labels": {"app.kubernetes.io/managed-by": "upkeep"}});
        if let Some(rv) = resource_version {
            metadata["resourceVersion"] = json!(rv);
        }
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": self.ttl.as_secs(),
                "acquireTime": micro_time(now),
                "renewTime": micro_time(now),
            }
        })
    }

    /// Replaces the Lease with ours; the resourceVersion makes a race with
    /// another taker a conflict instead of a silent overwrite.
    async fn replace(
        &self,
        cluster: &Cluster,
        now: jiff::Timestamp,
        rv: Option<String>,
    ) -> Result<(), RunError> {
        match cluster
            .replace(
                &self.res,
                &self.body(now, rv),
                &upkeep_kube::ApplyOptions::new(crate::FIELD_MANAGER),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() => Err(RunError::Busy(
                "another upkeep run took the Lease at the same moment".to_string(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Renews the Lease (a long wait must not let it expire). Fails with
    /// [`RunError::Busy`] when the Lease is no longer ours (it expired, say
    /// while the machine slept, and another run took it): the run must stop.
    pub async fn renew(&self, cluster: &Cluster) -> Result<(), RunError> {
        let current = cluster
            .get(&self.res, Some(LEASE_NAMESPACE), LEASE_NAME)
            .await?
            .map(|o| upkeep_kube::object_value(&o, &self.res))
            .transpose()?;
        let holder = current
            .as_ref()
            .and_then(|c| c.pointer("/spec/holderIdentity"))
            .and_then(Value::as_str);
        if holder != Some(self.holder.as_str()) {
            return Err(RunError::Busy(format!(
                "lost the Lease {LEASE_NAMESPACE}/{LEASE_NAME} (now held by {}); stopping: `upkeep resume` goes on once it is free",
                holder.unwrap_or("nobody")
            )));
        }
        // The resourceVersion makes a change by another taker in between a conflict.
        let rv = current
            .as_ref()
            .and_then(|c| c.pointer("/metadata/resourceVersion"))
            .cloned()
            .unwrap_or(Value::Null);
        let patch = json!({"metadata": {"resourceVersion": rv},
                           "spec": {"renewTime": micro_time(jiff::Timestamp::now())}});
        match cluster
            .patch_merge(&self.res, Some(LEASE_NAMESPACE), LEASE_NAME, &patch)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() => Err(RunError::Busy(format!(
                "the Lease {LEASE_NAMESPACE}/{LEASE_NAME} changed while it was renewed; stopping"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the Lease up, if it is still ours.
    pub async fn release(self, cluster: &Cluster) -> Result<(), KubeError> {
        let current = cluster
            .get(&self.res, Some(LEASE_NAMESPACE), LEASE_NAME)
            .await?
            .map(|o| upkeep_kube::object_value(&o, &self.res))
            .transpose()?;
        if current
            .as_ref()
            .and_then(|c| c.pointer("/spec/holderIdentity"))
            .and_then(Value::as_str)
            == Some(self.holder.as_str())
        {
            cluster
                .delete(&self.res, Some(LEASE_NAMESPACE), LEASE_NAME)
                .await?;
        }
        Ok(())
    }
}

fn expired(lease: &Value, now: jiff::Timestamp) -> bool {
    let renewed = lease
        .pointer("/spec/renewTime")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let ttl = lease
        .pointer("/spec/leaseDurationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    match renewed {
        Some(r) => r.as_second() + ttl < now.as_second(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_after_its_ttl() {
        let now: jiff::Timestamp = "2026-11-28T10:00:00Z".parse().unwrap();
        let lease = |renewed: &str| json!({"spec": {"holderIdentity": "x", "renewTime": renewed, "leaseDurationSeconds": 60}});
        assert!(!expired(&lease("2026-11-28T09:59:30.000000Z"), now));
        assert!(expired(&lease("2026-11-28T09:58:30.000000Z"), now));
        assert!(expired(&json!({"spec": {}}), now));
    }
}
