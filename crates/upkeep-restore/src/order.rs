//! The order objects are restored in: CRDs first (their custom resources cannot be created
//! before them), then Velero's proven order for what others depend on, then everything else,
//! with admission webhooks and aggregated APIs last so that the Services and Deployments
//! behind them exist before the server starts sending requests to them.

use serde_json::Value;

/// Group (empty for core) and kind of an object, from its `apiVersion` and `kind`.
pub fn group_kind(obj: &Value) -> (&str, &str) {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    (group, kind)
}

/// Where an object of this group and kind goes; lower first.
///
/// Velero's order (pkg/restore `defaultRestorePriorities`) with RBAC moved before service
/// accounts' users, as the issue asks: namespaces hold everything, storage classes and
/// snapshot classes precede the volumes that name them, PVs precede the claims bound to them,
/// and the RBAC, accounts, secrets and config that workloads mount precede the workloads.
pub fn priority(group: &str, kind: &str) -> u8 {
    match (group, kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 0,
        ("", "Namespace") => 1,
        ("storage.k8s.io", "StorageClass") => 2,
        ("snapshot.storage.k8s.io", "VolumeSnapshotClass") => 3,
        ("snapshot.storage.k8s.io", "VolumeSnapshotContent") => 4,
        ("snapshot.storage.k8s.io", "VolumeSnapshot") => 5,
        ("", "PersistentVolume") => 6,
        ("", "PersistentVolumeClaim") => 7,
        ("rbac.authorization.k8s.io", "ClusterRole") => 8,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => 9,
        ("rbac.authorization.k8s.io", "Role") => 10,
        ("rbac.authorization.k8s.io", "RoleBinding") => 11,
        ("", "ServiceAccount") => 12,
        ("", "Secret") => 13,
        ("", "ConfigMap") => 14,
        ("", "LimitRange") => 15,
        ("", "ResourceQuota") => 16,
        ("scheduling.k8s.io", "PriorityClass") => 17,
        // Webhook configurations and aggregated APIs point at Services whose Deployments
        // answer for them: restoring them before their backends would make the server call
        // (and, with failurePolicy Fail, refuse writes to) a backend that is not there yet.
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration")
        | ("admissionregistration.k8s.io", "MutatingWebhookConfiguration")
        | ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy")
        | ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding")
        | ("apiregistration.k8s.io", "APIService") => 250,
        _ => 100,
    }
}

/// True for a CustomResourceDefinition: the restore waits for these to be Established.
pub fn is_crd(obj: &Value) -> bool {
    group_kind(obj) == ("apiextensions.k8s.io", "CustomResourceDefinition")
}

/// The objects in restore order. The sort is stable: within one priority the snapshot's own
/// order (group, kind, namespace, name) is kept, so a run is reproducible.
pub fn order(mut objects: Vec<Value>) -> Vec<Value> {
    objects.sort_by_key(|o| {
        let (g, k) = group_kind(o);
        priority(g, k)
    });
    objects
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(api_version: &str, kind: &str, name: &str) -> Value {
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}})
    }

    fn kinds(v: &[Value]) -> Vec<String> {
        v.iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn crds_then_velero_order_then_the_rest_then_webhooks() {
        // Deliberately the reverse of the wanted order, with two "rest" objects whose
        // relative order must survive.
        let input = vec![
            obj(
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
                "cert-manager-webhook",
            ),
            obj("apps/v1", "Deployment", "web"),
            obj("v1", "Service", "cert-manager-webhook"),
            obj("scheduling.k8s.io/v1", "PriorityClass", "high"),
            obj("v1", "LimitRange", "limits"),
            obj("v1", "ConfigMap", "settings"),
            obj("v1", "Secret", "creds"),
            obj("v1", "ServiceAccount", "sa"),
            obj("rbac.authorization.k8s.io/v1", "RoleBinding", "rb"),
            obj("rbac.authorization.k8s.io/v1", "Role", "r"),
            obj("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "crb"),
            obj("rbac.authorization.k8s.io/v1", "ClusterRole", "cr"),
            obj("v1", "PersistentVolumeClaim", "data"),
            obj("v1", "PersistentVolume", "pv-data"),
            obj("snapshot.storage.k8s.io/v1", "VolumeSnapshot", "snap"),
            obj(
                "snapshot.storage.k8s.io/v1",
                "VolumeSnapshotContent",
                "snapc",
            ),
            obj(
                "snapshot.storage.k8s.io/v1",
                "VolumeSnapshotClass",
                "snapclass",
            ),
            obj("storage.k8s.io/v1", "StorageClass", "longhorn"),
            obj("helm.toolkit.fluxcd.io/v2", "HelmRelease", "podinfo"),
            obj("v1", "Namespace", "apps"),
            obj(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "helmreleases.helm.toolkit.fluxcd.io",
            ),
        ];
        let out = order(input);
        assert_eq!(
            kinds(&out),
            [
                "CustomResourceDefinition/helmreleases.helm.toolkit.fluxcd.io",
                "Namespace/apps",
                "StorageClass/longhorn",
                "VolumeSnapshotClass/snapclass",
                "VolumeSnapshotContent/snapc",
                "VolumeSnapshot/snap",
                "PersistentVolume/pv-data",
                "PersistentVolumeClaim/data",
                "ClusterRole/cr",
                "ClusterRoleBinding/crb",
                "Role/r",
                "RoleBinding/rb",
                "ServiceAccount/sa",
                "Secret/creds",
                "ConfigMap/settings",
                "LimitRange/limits",
                "PriorityClass/high",
                // The rest, in the order they came.
                "Deployment/web",
                "Service/cert-manager-webhook",
                "HelmRelease/podinfo",
                // After the Service (and Deployment) that answers for it.
                "ValidatingWebhookConfiguration/cert-manager-webhook",
            ]
        );
    }

    #[test]
    fn kinds_are_matched_with_their_group() {
        // A custom kind that shares a built-in's name is not the built-in.
        assert_eq!(priority("example.com", "Secret"), 100);
        assert_eq!(priority("", "Secret"), 13);
        assert_eq!(group_kind(&obj("v1", "ConfigMap", "x")), ("", "ConfigMap"));
        assert!(is_crd(&obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "x"
        )));
        assert!(!is_crd(&obj("v1", "CustomResourceDefinition", "x")));
    }
}
