//! What a restore point keeps of an object, and which objects it leaves out.

use serde_json::{Map, Value};

/// A ConfigMap with this label set to `"true"` is encrypted like a Secret.
pub const SENSITIVE_LABEL: &str = "upkeep.dev/sensitive";

/// Metadata the server sets: restoring it would be refused (uid,
/// resourceVersion) or meaningless (timestamps, managed fields). `restore`
/// leaves the same fields out when it compares.
pub const SERVER_SET_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "managedFields",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Removes server-set metadata and, unless `keep_status`, the status.
pub fn strip(obj: &mut Value, keep_status: bool) {
    let Value::Object(map) = obj else {
        return;
    };
    if !keep_status {
        map.remove("status");
    }
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        for f in SERVER_SET_METADATA {
            meta.remove(*f);
        }
        drop_empty(meta, "annotations");
        drop_empty(meta, "labels");
    }
}

fn drop_empty(meta: &mut Map<String, Value>, key: &str) {
    if meta
        .get(key)
        .is_some_and(|v| v.is_null() || v.as_object().is_some_and(Map::is_empty))
    {
        meta.remove(key);
    }
}

/// Secrets always; ConfigMaps labelled [`SENSITIVE_LABEL`]`=true` or named
/// in `extra` (`namespace/name`).
pub fn is_sensitive(obj: &Value, extra: &[String]) -> bool {
    let kind = obj.get("kind").and_then(Value::as_str);
    let core = obj.get("apiVersion").and_then(Value::as_str) == Some("v1");
    match (core, kind) {
        (true, Some("Secret")) => true,
        (true, Some("ConfigMap")) => {
            let labelled = obj
                .pointer("/metadata/labels")
                .and_then(|l| l.get(SENSITIVE_LABEL))
                .and_then(Value::as_str)
                == Some("true");
            let ns = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            labelled || extra.iter().any(|e| *e == format!("{ns}/{name}"))
        }
        _ => false,
    }
}

/// Why a kind is not captured, when it is not: runtime records that a
/// restore must not bring back.
pub(crate) fn skipped_kind(group: &str, kind: &str) -> Option<&'static str> {
    match (group, kind) {
        ("" | "events.k8s.io", "Event") => Some("runtime records"),
        ("coordination.k8s.io", "Lease") => Some("leader election and heartbeats"),
        ("", "Endpoints") | ("discovery.k8s.io", "EndpointSlice") => {
            Some("derived from Services by the control plane")
        }
        ("", "ComponentStatus") => Some("not stored"),
        ("metrics.k8s.io", _) => Some("live metrics, not stored"),
        ("authorization.k8s.io" | "authentication.k8s.io", _) => Some("requests, not stored"),
        _ => None,
    }
}

/// Objects a controller owns (a Deployment's ReplicaSets and their Pods, a
/// Longhorn Volume's engines): their owner recreates them, and restoring
/// them too would only race it.
pub(crate) fn owned_by_controller(obj: &Value) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_set_fields_and_status_go() {
        let mut o = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "apps", "uid": "u", "resourceVersion": "7",
                "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z",
                "managedFields": [{"manager": "kubectl"}], "labels": {"app": "web"},
                "annotations": {}},
            "spec": {"replicas": 2},
            "status": {"readyReplicas": 2}
        });
        let mut with_status = o.clone();
        strip(&mut o, false);
        assert_eq!(
            o,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "apps", "labels": {"app": "web"}},
                "spec": {"replicas": 2}})
        );
        strip(&mut with_status, true);
        assert_eq!(with_status["status"]["readyReplicas"], 2);
        assert!(with_status["metadata"].get("uid").is_none());
    }

    #[test]
    fn secrets_and_marked_configmaps_are_sensitive() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
        let cm = |labels: Value| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "apps", "labels": labels}})
        };
        assert!(is_sensitive(&secret, &[]));
        assert!(is_sensitive(&cm(json!({SENSITIVE_LABEL: "true"})), &[]));
        assert!(!is_sensitive(&cm(json!({SENSITIVE_LABEL: "false"})), &[]));
        assert!(!is_sensitive(&cm(json!({})), &[]));
        assert!(is_sensitive(&cm(json!({})), &["apps/c".to_string()]));
        // A CRD's kind named Secret in another group is not a Secret.
        let other =
            json!({"apiVersion": "x.example/v1", "kind": "Secret", "metadata": {"name": "s"}});
        assert!(!is_sensitive(&other, &[]));
    }

    #[test]
    fn runtime_kinds_and_owned_objects_are_left_out() {
        assert!(skipped_kind("", "Event").is_some());
        assert!(skipped_kind("events.k8s.io", "Event").is_some());
        assert!(skipped_kind("coordination.k8s.io", "Lease").is_some());
        assert!(skipped_kind("", "ConfigMap").is_none());
        assert!(skipped_kind("apps", "Deployment").is_none());
        let owned = json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "controller": true}]}});
        let referenced = json!({"metadata": {"ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "c"}]}});
        assert!(owned_by_controller(&owned));
        assert!(!owned_by_controller(&referenced));
        assert!(!owned_by_controller(&json!({"metadata": {}})));
    }
}
