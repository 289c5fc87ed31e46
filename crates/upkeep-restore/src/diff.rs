//! Comparing a stored object with the live one, and building the body that replaces it.
//!
//! The server sets some fields itself (identity, bookkeeping, status); a restore point taken
//! from the same cluster still differs from the live object in them, so they are left out of
//! the comparison: only what a user or a controller's spec could have changed counts.

use serde_json::{Map, Value};

/// Metadata the API server sets and owns: the list the restore point strips.
pub use upkeep_snapshot::SERVER_SET_METADATA;

/// kubectl's copy of the last applied manifest: bookkeeping of the client, not state.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The object without server-set fields, `status`, and kubectl's last-applied annotation;
/// an `annotations` or `labels` map left empty is dropped, since a server does not keep an
/// empty map apart from none.
pub fn normalize(obj: &Value) -> Value {
    let mut out = obj.clone();
    let Some(map) = out.as_object_mut() else {
        return out;
    };
    map.remove("status");
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        for f in SERVER_SET_METADATA {
            meta.remove(*f);
        }
        if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
            ann.remove(LAST_APPLIED);
        }
        for m in ["annotations", "labels"] {
            if meta.get(m).is_some_and(is_empty_or_null) {
                meta.remove(m);
            }
        }
    }
    out
}

fn is_empty_or_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// The top-level paths (`spec.replicas`, `metadata.labels`, `data`) where the stored and the
/// live object differ once server-set fields are ignored; empty when they are the same.
pub fn differences(stored: &Value, live: &Value) -> Vec<String> {
    let (a, b) = (normalize(stored), normalize(live));
    let mut out = Vec::new();
    walk("", &a, &b, 2, &mut out);
    out
}

/// Compares down to `depth` levels of objects, naming the first path where they part.
fn walk(path: &str, a: &Value, b: &Value, depth: usize, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if depth > 0 => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let null = Value::Null;
                walk(
                    &p,
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    depth - 1,
                    out,
                );
            }
        }
        _ => out.push(if path.is_empty() {
            "(whole object)".to_string()
        } else {
            path.to_string()
        }),
    }
}

/// The body of a PUT that puts `stored` in place of `live`: the stored object with the live
/// resourceVersion (so a change made meanwhile is a conflict, not overwritten) and the values
/// the server allocated and will not let change (a Service's cluster IPs), taken from live.
pub fn replace_body(stored: &Value, live: &Value) -> Value {
    let mut body = normalize(stored);
    if let Some(rv) = live.pointer("/metadata/resourceVersion").cloned()
        && let Some(meta) = metadata_mut(&mut body)
    {
        meta.insert("resourceVersion".to_string(), rv);
    }
    let (group, kind) = crate::order::group_kind(stored);
    if (group, kind) == ("", "Service") {
        // clusterIP is immutable once allocated; a Service recreated since the snapshot has a
        // new one, and replacing it with the old one would be refused.
        for f in ["clusterIP", "clusterIPs"] {
            if let Some(v) = live.pointer(&format!("/spec/{f}")).cloned()
                && let Some(Value::Object(spec)) = body.get_mut("spec")
            {
                spec.insert(f.to_string(), v);
            }
        }
    }
    body
}

/// The body of a POST that recreates `stored`: no server-set fields (a resourceVersion in a
/// create is refused).
pub fn create_body(stored: &Value) -> Value {
    normalize(stored)
}

fn metadata_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    obj.as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "apps", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "web:1.0"}]}}}})
    }

    /// The stored object as the server shows it later: every server-set field different.
    fn live_same() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "apps", "labels": {"app": "web"},
                "uid": "0b6e-new", "resourceVersion": "9876", "generation": 7,
                "creationTimestamp": "2026-11-28T04:00:00Z", "selfLink": "/apis/apps/v1/x",
                "managedFields": [{"manager": "kubectl", "operation": "Update"}],
                "annotations": {LAST_APPLIED: "{\"big\": \"json\"}"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "web:1.0"}]}}},
            "status": {"readyReplicas": 2, "observedGeneration": 7}})
    }

    #[test]
    fn server_set_fields_are_not_differences() {
        assert_eq!(differences(&stored(), &live_same()), Vec::<String>::new());
        // And the stored side may carry them too.
        assert_eq!(differences(&live_same(), &stored()), Vec::<String>::new());
    }

    #[test]
    fn user_changes_are_differences_named_by_path() {
        let mut live = live_same();
        live["spec"]["replicas"] = json!(5);
        assert_eq!(differences(&stored(), &live), ["spec.replicas"]);
        let mut live = live_same();
        live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2.0");
        assert_eq!(differences(&stored(), &live), ["spec.template"]);
        // A label added behind our back is a difference too (a rollback removes it).
        let mut live = live_same();
        live["metadata"]["labels"]["extra"] = json!("1");
        assert_eq!(differences(&stored(), &live), ["metadata.labels"]);
        // Another annotation than last-applied counts.
        let mut live = live_same();
        live["metadata"]["annotations"]["note"] = json!("x");
        assert_eq!(differences(&stored(), &live), ["metadata.annotations"]);
        // A field missing on one side.
        let mut live = live_same();
        live["spec"].as_object_mut().unwrap().remove("replicas");
        assert_eq!(differences(&stored(), &live), ["spec.replicas"]);
    }

    #[test]
    fn replace_body_is_the_stored_object_at_the_live_version() {
        let mut live = live_same();
        live["spec"]["replicas"] = json!(5);
        let body = replace_body(&stored(), &live);
        assert_eq!(body["spec"]["replicas"], 2);
        assert_eq!(body["metadata"]["resourceVersion"], "9876");
        assert!(body["metadata"].get("uid").is_none());
        assert!(body.get("status").is_none());
        assert!(
            create_body(&live)["metadata"]
                .get("resourceVersion")
                .is_none()
        );
    }

    #[test]
    fn a_service_keeps_its_allocated_cluster_ip() {
        let stored = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "apps", "annotations": {"a": "old"}},
            "spec": {"clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"], "ports": [{"port": 80}]}});
        let live = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "apps", "resourceVersion": "5", "annotations": {"a": "new"}},
            "spec": {"clusterIP": "10.43.0.99", "clusterIPs": ["10.43.0.99"], "ports": [{"port": 80}]}});
        let body = replace_body(&stored, &live);
        assert_eq!(body["spec"]["clusterIP"], "10.43.0.99");
        assert_eq!(body["spec"]["clusterIPs"], json!(["10.43.0.99"]));
        assert_eq!(body["metadata"]["annotations"]["a"], "old");
    }
}
