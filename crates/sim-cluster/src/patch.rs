//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a strategic merge
//! patch that knows the list merge keys of the built-in kinds kubectl patches most.

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error(
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
    )]
    UnsupportedMediaType,
    #[error("invalid patch document: {0}")]
    Malformed(String),
    #[error("the server rejected our request due to an error in our request: {0}")]
    Failed(String),
}

/// The patch types the API accepts, named by their Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Result<Self, PatchError> {
        let base = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchKind::Apply),
            _ => Err(PatchError::UnsupportedMediaType),
        }
    }
}

/// RFC 7386: objects merge recursively, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = Value::Object(Map::new());
        }
        if let Value::Object(t) = target {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
    } else {
        *target = patch.clone();
    }
}

/// RFC 6902 operations applied atomically: on any failure the target is unchanged.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::Malformed(e.to_string()))?;
    let mut work = target.clone();
    json_patch::patch(&mut work, &ops).map_err(|e| PatchError::Failed(e.to_string()))?;
    *target = work;
    Ok(())
}

/// The key that identifies elements of a list field in a strategic merge, for the fields of
/// the built-in kinds that have one; other lists are replaced whole, as for custom resources.
pub(crate) fn merge_key(field: &str, elements: &[&Value]) -> Option<&'static str> {
    let all_have = |k: &str| elements.iter().all(|e| e.get(k).is_some());
    match field {
        "volumeMounts" | "volumeDevices" => Some("mountPath").filter(|k| all_have(k)),
        "conditions" => Some("type").filter(|k| all_have(k)),
        "ownerReferences" => Some("uid").filter(|k| all_have(k)),
        "ports" => ["containerPort", "port"].into_iter().find(|k| all_have(k)),
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "hostAliases"
        | "envFrom" => Some("name").filter(|k| all_have(k)),
        _ => None,
    }
}

/// Primitive lists whose strategy is "merge" (set union) rather than replace.
fn merges_primitives(field: &str) -> bool {
    field == "finalizers"
}

/// Strategic merge patch: merge semantics plus keyed list merges and the `$patch`,
/// `$retainKeys`, `$setElementOrder/` and `$deleteFromPrimitiveList/` directives kubectl sends.
pub fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = p.clone();
        replaced.remove("$patch");
        *target = Value::Object(replaced);
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        return Ok(());
    };
    if let Some(Value::Array(keep)) = p.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(del)) = (t.get_mut(field), v) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (t.get_mut(k), v) {
            (Some(Value::Array(orig)), Value::Array(items)) => {
                merge_list(k, orig, items)?;
            }
            (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                strategic_merge(existing, v)?;
            }
            _ => {
                let mut fresh = Value::Null;
                strategic_merge(&mut fresh, v)?;
                strip_directives(&mut fresh);
                t.insert(k.clone(), fresh);
            }
        }
    }
    Ok(())
}

fn merge_list(field: &str, orig: &mut Vec<Value>, items: &[Value]) -> Result<(), PatchError> {
    if items.iter().all(|i| !i.is_object()) && orig.iter().all(|i| !i.is_object()) {
        if merges_primitives(field) {
            for i in items {
                if !orig.contains(i) {
                    orig.push(i.clone());
                }
            }
        } else {
            *orig = items.to_vec();
        }
        return Ok(());
    }
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *orig = items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .collect();
        return Ok(());
    }
    let all: Vec<&Value> = orig
        .iter()
        .chain(items.iter().filter(|i| i.get("$patch").is_none()))
        .collect();
    let Some(key) = merge_key(field, &all) else {
        let mut fresh = items.to_vec();
        fresh.iter_mut().for_each(strip_directives);
        *orig = fresh;
        return Ok(());
    };
    for item in items {
        let id = item.get(key).cloned().unwrap_or(Value::Null);
        let pos = orig.iter().position(|o| o.get(key) == Some(&id));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(p) = pos {
                orig.remove(p);
            }
            continue;
        }
        match pos {
            Some(p) => strategic_merge(&mut orig[p], item)?,
            None => {
                let mut fresh = item.clone();
                strip_directives(&mut fresh);
                orig.push(fresh);
            }
        }
    }
    Ok(())
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn json_patch_ops_and_atomic_failure() {
        let mut t = json!({"spec": {"replicas": 1, "tags": ["a"]}});
        json_patch(
            &mut t,
            &json!([
                {"op": "replace", "path": "/spec/replicas", "value": 3},
                {"op": "add", "path": "/spec/tags/-", "value": "b"},
                {"op": "test", "path": "/spec/replicas", "value": 3}
            ]),
        )
        .unwrap();
        assert_eq!(t, json!({"spec": {"replicas": 3, "tags": ["a", "b"]}}));
        let before = t.clone();
        let err = json_patch(
            &mut t,
            &json!([
                {"op": "replace", "path": "/spec/replicas", "value": 9},
                {"op": "remove", "path": "/spec/missing"}
            ]),
        );
        assert!(err.is_err());
        assert_eq!(t, before);
        assert!(json_patch(&mut t, &json!({"op": "add"})).is_err());
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut t = json!({"spec": {"containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "side", "image": "side:1"}
        ]}});
        strategic_merge(
            &mut t,
            &json!({"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
            "containers": [
                {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]},
                {"name": "side", "$patch": "delete"}
            ]}}),
        )
        .unwrap();
        assert_eq!(
            t,
            json!({"spec": {"containers": [
                {"name": "app", "image": "app:2",
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
            ]}})
        );
    }

    #[test]
    fn strategic_replaces_unkeyed_lists_and_unions_finalizers() {
        let mut t = json!({"args": ["a", "b"], "metadata": {"finalizers": ["x"]}});
        strategic_merge(
            &mut t,
            &json!({"args": ["c"], "metadata": {"finalizers": ["y"],
                     "$deleteFromPrimitiveList/finalizers": ["x"]}}),
        )
        .unwrap();
        assert_eq!(t, json!({"args": ["c"], "metadata": {"finalizers": ["y"]}}));
    }

    #[test]
    fn patch_kind_from_content_type() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8").unwrap(),
            PatchKind::Merge
        );
        assert!(PatchKind::from_content_type("text/plain").is_err());
    }
}
