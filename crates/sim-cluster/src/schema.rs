//! Structural-schema pruning for custom resources: fields a CRD's `openAPIV3Schema` does not
//! declare are dropped on write, or refused under `fieldValidation=Strict`, as the real
//! server does. Value validation (types, enums, CEL) is not simulated.

use serde_json::Value;

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn walk(schema: &Value, value: &mut Value, path: &str, unknown: &mut Vec<String>) {
    if preserves(schema) && schema.get("properties").is_none() {
        return;
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let embedded = schema
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let child_path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let child_schema = props.and_then(|p| p.get(&k)).or(match additional {
                    Some(s @ Value::Object(_)) => Some(s),
                    _ => None,
                });
                match child_schema {
                    Some(cs) => {
                        if let Some(child) = map.get_mut(&k) {
                            walk(cs, child, &child_path, unknown);
                        }
                    }
                    None if additional == Some(&Value::Bool(true)) || preserves(schema) => {}
                    None => {
                        map.remove(&k);
                        unknown.push(child_path);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Removes undeclared fields from `obj` (outside `apiVersion`, `kind`, `metadata`) and
/// returns their paths, e.g. `spec.foo`.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    let Value::Object(map) = obj else {
        return unknown;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.and_then(|p| p.get(&k)) {
            Some(cs) => {
                if let Some(child) = map.get_mut(&k) {
                    walk(cs, child, &k, &mut unknown);
                }
            }
            None if preserves(schema) => {}
            None => {
                map.remove(&k);
                unknown.push(k);
            }
        }
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prunes_undeclared_fields_and_keeps_preserved_ones() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "interval": {"type": "string"},
                "values": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "list": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
            }},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }});
        let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"interval": "5m", "intervall": "typo", "values": {"any": {"thing": 1}},
                     "labels": {"a": "b"}, "list": [{"name": "n", "extra": 1}]},
            "status": {"whatever": true}, "bogus": 1});
        let unknown = prune(&schema, &mut obj);
        assert_eq!(unknown, ["spec.intervall", "spec.list[0].extra", "bogus"]);
        assert_eq!(obj["spec"]["values"]["any"]["thing"], 1);
        assert_eq!(obj["spec"]["labels"]["a"], "b");
        assert!(obj["spec"].get("intervall").is_none());
        assert_eq!(obj["metadata"]["name"], "a");
    }
}
