//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Simplified from structured-merge-diff: ownership is tracked per leaf field; lists whose
//! elements carry a known merge key (containers by `name`, ...) are tracked per element, all
//! other lists are atomic. Conflicts follow the real rule: applying a value that differs from
//! the current value of a field another manager owns is a conflict unless `force` is set.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::patch::merge_key;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Seg {
    Field(String),
    /// A list element identified by its merge key, stored as the JSON of `{key: value}`.
    Key(String),
}

type Path = Vec<Seg>;
type FieldSet = BTreeSet<Path>;

/// Fields that belong to the server, never to a manager.
fn server_owned(path: &Path) -> bool {
    match path.as_slice() {
        [Seg::Field(a)] => a == "apiVersion" || a == "kind",
        [Seg::Field(m), Seg::Field(f), ..] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "managedFields"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "selfLink"
        ),
        _ => false,
    }
}

fn list_key(field: &str, items: &[Value]) -> Option<&'static str> {
    if items.is_empty() || !items.iter().all(Value::is_object) {
        return None;
    }
    let refs: Vec<&Value> = items.iter().collect();
    merge_key(field, &refs)
}

fn flatten_into(v: &Value, prefix: &mut Path, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                prefix.push(Seg::Field(k.clone()));
                match child {
                    Value::Array(items) => match list_key(k, items) {
                        Some(key) => {
                            for item in items {
                                let id =
                                    json!({key: item.get(key).cloned().unwrap_or(Value::Null)});
                                prefix.push(Seg::Key(id.to_string()));
                                flatten_into(item, prefix, out);
                                prefix.pop();
                            }
                        }
                        None => {
                            out.insert(prefix.clone());
                        }
                    },
                    _ => flatten_into(child, prefix, out),
                }
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

fn flatten(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    flatten_into(v, &mut Vec::new(), &mut out);
    out.retain(|p| !p.is_empty() && !server_owned(p));
    out
}

fn key_matches(item: &Value, id: &str) -> bool {
    match serde_json::from_str::<Value>(id) {
        Ok(Value::Object(m)) => m.iter().all(|(k, v)| item.get(k) == Some(v)),
        _ => false,
    }
}

fn lookup<'a>(v: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path {
        cur = match seg {
            Seg::Field(f) => cur.get(f)?,
            Seg::Key(id) => cur.as_array()?.iter().find(|i| key_matches(i, id))?,
        };
    }
    Some(cur)
}

fn remove_path(v: &mut Value, path: &[Seg]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parents {
        let next = match seg {
            Seg::Field(f) => cur.get_mut(f),
            Seg::Key(id) => cur
                .as_array_mut()
                .and_then(|a| a.iter_mut().find(|i| key_matches(i, id))),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        Seg::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        Seg::Key(id) => {
            if let Some(a) = cur.as_array_mut() {
                a.retain(|i| !key_matches(i, id));
            }
        }
    }
}

fn render(path: &Path) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Seg::Key(id) => {
                let pairs: Vec<String> = match serde_json::from_str::<Value>(id) {
                    Ok(Value::Object(m)) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    _ => vec![id.clone()],
                };
                s.push('[');
                s.push_str(&pairs.join(","));
                s.push(']');
            }
        }
    }
    s
}

fn encode(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for seg in path {
            let key = match seg {
                Seg::Field(f) => format!("f:{f}"),
                Seg::Key(id) => format!("k:{id}"),
            };
            let entry = cur.entry(key).or_insert_with(|| json!({}));
            let Value::Object(m) = entry else {
                break;
            };
            cur = m;
        }
    }
    Value::Object(root)
}

fn decode_into(node: &Map<String, Value>, prefix: &mut Path, out: &mut FieldSet) {
    let children: Vec<(&String, &Value)> = node.iter().filter(|(k, _)| *k != ".").collect();
    if children.is_empty() {
        if !prefix.is_empty() {
            out.insert(prefix.clone());
        }
        return;
    }
    for (k, v) in children {
        let seg = if let Some(f) = k.strip_prefix("f:") {
            Seg::Field(f.to_string())
        } else if let Some(id) = k.strip_prefix("k:") {
            Seg::Key(id.to_string())
        } else {
            continue;
        };
        prefix.push(seg);
        if let Value::Object(m) = v {
            decode_into(m, prefix, out);
        }
        prefix.pop();
    }
}

fn decode(fields: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Value::Object(m) = fields {
        decode_into(m, &mut Vec::new(), &mut out);
    }
    out
}

/// One `managedFields` entry, decoded.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: FieldSet,
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| Entry {
                    manager: e
                        .get("manager")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    operation: e
                        .get("operation")
                        .and_then(Value::as_str)
                        .unwrap_or("Update")
                        .to_string(),
                    api_version: e
                        .get("apiVersion")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    time: e
                        .get("time")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    subresource: e
                        .get("subresource")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    fields: e.get("fieldsV1").map(decode).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode(&e.fields),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if obj.is_object() && !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".to_string(), Value::Array(list));
        }
    }
}

/// Who writes, for ownership bookkeeping.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: Option<&'a str>,
    pub now: &'a str,
}

/// Records a non-apply write: the fields it changed move to `writer`; fields that no longer
/// exist leave every manager.
pub fn record_update(old: Option<&Value>, new: &mut Value, w: &Writer<'_>) {
    // A client may rewrite managedFields itself (kubectl does, to migrate client-side apply
    // ownership to server-side apply); the server honours that, as the real one does.
    let sent = new
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty());
    let kept = old.and_then(|o| {
        o.pointer("/metadata/managedFields")
            .and_then(Value::as_array)
    });
    let mut entries = match (sent, old) {
        (Some(s), _) if Some(s) != kept => read_entries(new),
        (_, Some(o)) => read_entries(o),
        (_, None) => Vec::new(),
    };
    let new_set = flatten(new);
    let changed: FieldSet = match old {
        None => new_set.clone(),
        Some(o) => new_set
            .iter()
            .filter(|p| lookup(o, p) != lookup(new, p))
            .cloned()
            .collect(),
    };
    for e in entries.iter_mut() {
        e.fields
            .retain(|p| new_set.contains(p) && !changed.contains(p));
    }
    if !changed.is_empty() {
        let subresource = w.subresource.map(str::to_string);
        match entries.iter_mut().find(|e| {
            e.manager == w.manager && e.operation == "Update" && e.subresource == subresource
        }) {
            Some(e) => {
                e.fields.extend(changed);
                e.time = w.now.to_string();
                e.api_version = w.api_version.to_string();
            }
            None => entries.push(Entry {
                manager: w.manager.to_string(),
                operation: "Update".to_string(),
                api_version: w.api_version.to_string(),
                time: w.now.to_string(),
                subresource,
                fields: changed,
            }),
        }
    }
    write_entries(new, &entries);
}

/// A server-side apply that would take fields from other managers without `force`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyConflicts(pub Vec<(String, String)>);

impl ApplyConflicts {
    /// The message and causes the real server returns with its 409.
    pub fn message(&self) -> String {
        let n = self.0.len();
        let mut s = format!(
            "Apply failed with {n} conflict{}: ",
            if n == 1 { "" } else { "s" }
        );
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(m, f)| format!("conflict with \"{m}\": {f}"))
            .collect();
        s.push_str(&parts.join("\n"));
        s
    }

    pub fn causes(&self) -> Value {
        self.0
            .iter()
            .map(|(m, f)| {
                json!({"reason": "FieldManagerConflict",
                       "message": format!("conflict with \"{m}\""), "field": f})
            })
            .collect()
    }
}

fn merge_applied(target: &mut Value, applied: &Value) {
    let (Value::Object(t), Value::Object(a)) = (&mut *target, applied) else {
        *target = applied.clone();
        return;
    };
    for (k, v) in a {
        match (t.get_mut(k), v) {
            (Some(existing @ Value::Object(_)), Value::Object(_)) => merge_applied(existing, v),
            (Some(Value::Array(orig)), Value::Array(items)) => {
                let all: Vec<&Value> = orig.iter().chain(items.iter()).collect();
                let keyed = all.iter().all(|x| x.is_object()) && !items.is_empty();
                match merge_key(k, &all).filter(|_| keyed) {
                    Some(key) => {
                        for item in items {
                            match orig.iter_mut().find(|o| o.get(key) == item.get(key)) {
                                Some(o) => merge_applied(o, item),
                                None => orig.push(item.clone()),
                            }
                        }
                    }
                    None => *orig = items.clone(),
                }
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Server-side apply of `applied` by `w.manager` onto `current` (None when creating).
pub fn apply(
    current: Option<&Value>,
    applied: &Value,
    w: &Writer<'_>,
    force: bool,
) -> Result<Value, ApplyConflicts> {
    let mut entries = current.map(read_entries).unwrap_or_default();
    let applied_set = flatten(applied);
    let base = current.cloned().unwrap_or_else(|| json!({}));
    let mut conflicts = Vec::new();
    let mut taken = FieldSet::new();
    for e in &entries {
        if e.manager == w.manager && e.operation == "Apply" {
            continue;
        }
        for p in applied_set.intersection(&e.fields) {
            if lookup(&base, p) != lookup(applied, p) {
                conflicts.push((e.manager.clone(), render(p)));
                taken.insert(p.clone());
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyConflicts(conflicts));
    }
    let mine = |e: &Entry| e.manager == w.manager && e.operation == "Apply";
    let previous: FieldSet = entries
        .iter()
        .filter(|e| mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    for e in entries.iter_mut().filter(|e| !mine(e)) {
        e.fields.retain(|p| !taken.contains(p));
    }
    let others: FieldSet = entries
        .iter()
        .filter(|e| !mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut result = base;
    // Elements first: removing their key fields first would make them unfindable.
    // A list element this manager alone created and no longer applies goes away with it.
    let element_prefixes = |set: &FieldSet| -> BTreeSet<Path> {
        set.iter()
            .flat_map(|p| {
                (1..=p.len())
                    .filter(|&i| matches!(p[i - 1], Seg::Key(_)))
                    .map(|i| p[..i].to_vec())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let kept = element_prefixes(&applied_set.union(&others).cloned().collect());
    for prefix in element_prefixes(&previous) {
        if !kept.contains(&prefix) {
            remove_path(&mut result, &prefix);
        }
    }
    for p in previous.difference(&applied_set) {
        if !others.contains(p) {
            remove_path(&mut result, p);
        }
    }
    merge_applied(&mut result, applied);
    entries.retain(|e| !mine(e));
    entries.push(Entry {
        manager: w.manager.to_string(),
        operation: "Apply".to_string(),
        api_version: w.api_version.to_string(),
        time: w.now.to_string(),
        subresource: w.subresource.map(str::to_string),
        fields: applied_set,
    });
    write_entries(&mut result, &entries);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "v1",
            subresource: None,
            now: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn apply_creates_and_records_ownership() {
        let applied = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v"}});
        let out = apply(None, &applied, &w("mgr"), false).unwrap();
        assert_eq!(out["data"]["k"], "v");
        let mf = &out["metadata"]["managedFields"][0];
        assert_eq!(mf["manager"], "mgr");
        assert_eq!(mf["operation"], "Apply");
        assert_eq!(mf["fieldsV1"]["f:data"]["f:k"], json!({}));
        assert!(mf["fieldsV1"]["f:metadata"].get("f:name").is_none());
    }

    #[test]
    fn conflicting_apply_needs_force() {
        let first = json!({"metadata": {"name": "a"}, "spec": {"replicas": 1}});
        let cur = apply(None, &first, &w("one"), false).unwrap();
        let second = json!({"metadata": {"name": "a"}, "spec": {"replicas": 2}});
        let err = apply(Some(&cur), &second, &w("two"), false).unwrap_err();
        assert_eq!(
            err.0,
            vec![("one".to_string(), ".spec.replicas".to_string())]
        );
        assert!(err.message().contains("conflict with \"one\""));
        // Same value: shared ownership, no conflict.
        assert!(apply(Some(&cur), &first, &w("two"), false).is_ok());
        let forced = apply(Some(&cur), &second, &w("two"), true).unwrap();
        assert_eq!(forced["spec"]["replicas"], 2);
        let managers: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["two"]);
    }

    #[test]
    fn dropped_fields_are_removed_unless_owned_by_others() {
        let cur = apply(
            None,
            &json!({"metadata": {"name": "a"}, "data": {"a": "1", "b": "2"}}),
            &w("one"),
            false,
        )
        .unwrap();
        let mut edited = cur.clone();
        edited["data"]["c"] = json!("3");
        record_update(Some(&cur), &mut edited, &w("editor"));
        let out = apply(
            Some(&edited),
            &json!({"metadata": {"name": "a"}, "data": {"a": "1"}}),
            &w("one"),
            false,
        )
        .unwrap();
        assert_eq!(out["data"], json!({"a": "1", "c": "3"}));
    }

    #[test]
    fn update_then_apply_conflicts_on_changed_field() {
        let cur = apply(
            None,
            &json!({"metadata": {"name": "a"}, "data": {"a": "1"}}),
            &w("kubectl"),
            false,
        )
        .unwrap();
        let mut edited = cur.clone();
        edited["data"]["a"] = json!("patched");
        record_update(Some(&cur), &mut edited, &w("kubectl-patch"));
        let err = apply(
            Some(&edited),
            &json!({"metadata": {"name": "a"}, "data": {"a": "1"}}),
            &w("kubectl"),
            false,
        )
        .unwrap_err();
        assert_eq!(err.0[0].0, "kubectl-patch");
    }

    #[test]
    fn client_rewritten_managed_fields_are_honoured() {
        let cur = apply(
            None,
            &json!({"metadata": {"name": "a"}, "data": {"a": "1"}}),
            &w("old-manager"),
            false,
        )
        .unwrap();
        let mut migrated = cur.clone();
        migrated["metadata"]["managedFields"][0]["manager"] = json!("new-manager");
        record_update(Some(&cur), &mut migrated, &w("kubectl"));
        assert_eq!(
            migrated["metadata"]["managedFields"][0]["manager"],
            "new-manager"
        );
        let err = apply(
            Some(&migrated),
            &json!({"metadata": {"name": "a"}, "data": {"a": "2"}}),
            &w("third"),
            false,
        )
        .unwrap_err();
        assert_eq!(err.0[0].0, "new-manager");
    }

    #[test]
    fn keyed_list_elements_merge_and_leave() {
        let cur = apply(
            None,
            &json!({"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}),
            &w("one"),
            false,
        )
        .unwrap();
        let out = apply(
            Some(&cur),
            &json!({"spec": {"containers": [{"name": "a", "image": "a:2"}]}}),
            &w("one"),
            false,
        )
        .unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a", "image": "a:2"}])
        );
        let fields = decode(&out["metadata"]["managedFields"][0]["fieldsV1"]);
        assert_eq!(
            fields,
            flatten(&json!({"spec": {"containers": [{"name": "a", "image": "a:2"}]}}))
        );
    }
}
