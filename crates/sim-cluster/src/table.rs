//! `meta.k8s.io/v1` Table output, which `kubectl get` asks for: Name and Age for every kind,
//! a few well-known columns for common built-ins, and a CRD's `additionalPrinterColumns`.

use serde_json::{Value, json};

use crate::resources::ResourceInfo;
use crate::store::ListPage;

/// Human duration as `kubectl` prints ages (k8s.io/apimachinery/pkg/util/duration).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".to_string();
    }
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 730 {
        format!("{d}d")
    } else {
        let y = d / 365;
        if y < 8 && d % 365 != 0 {
            format!("{y}y{}d", d % 365)
        } else {
            format!("{y}y")
        }
    }
}

fn age(ts: Option<&str>) -> String {
    let Some(ts) = ts else {
        return "<unknown>".to_string();
    };
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        Err(_) => "<unknown>".to_string(),
    }
}

/// A small JSONPath subset: `.a.b`, `[n]`, `[*]` and `[?(@.k=="v")]`, as CRD columns use.
fn json_path(obj: &Value, path: &str) -> Vec<Value> {
    let mut cur = vec![obj.clone()];
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim();
    rest = rest.strip_prefix('$').unwrap_or(rest);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let field = &r[..end];
            cur = cur.iter().filter_map(|v| v.get(field).cloned()).collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else {
                return vec![];
            };
            let inner = &r[..end];
            rest = &r[end + 1..];
            let items: Vec<Value> = cur
                .iter()
                .filter_map(Value::as_array)
                .flat_map(|a| a.iter().cloned())
                .collect();
            if inner == "*" {
                cur = items;
            } else if let Ok(i) = inner.parse::<usize>() {
                cur = cur
                    .iter()
                    .filter_map(|v| v.as_array().and_then(|a| a.get(i)).cloned())
                    .collect();
            } else if let Some(filter) =
                inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
            {
                let Some((key, want)) = filter.split_once("==") else {
                    return vec![];
                };
                let want = want.trim().trim_matches(['"', '\'']);
                cur = items
                    .into_iter()
                    .filter(|i| {
                        json_path(i, &format!(".{}", key.trim()))
                            .first()
                            .and_then(Value::as_str)
                            == Some(want)
                    })
                    .collect();
            } else {
                return vec![];
            }
        } else {
            return vec![];
        }
    }
    cur
}

fn cell_text(v: &Value) -> Value {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => v.clone(),
        Value::Null => json!("<none>"),
        other => json!(other.to_string()),
    }
}

struct Column {
    name: String,
    kind: String,
    format: String,
    priority: i64,
    description: String,
    cell: Box<dyn Fn(&Value) -> Value>,
}

fn col(name: &str, kind: &str, cell: impl Fn(&Value) -> Value + 'static) -> Column {
    Column {
        name: name.to_string(),
        kind: kind.to_string(),
        format: if name == "Name" {
            "name".to_string()
        } else {
            String::new()
        },
        priority: 0,
        description: String::new(),
        cell: Box::new(cell),
    }
}

fn ptr_str(o: &Value, p: &str) -> Value {
    o.pointer(p).map(cell_text).unwrap_or(json!("<none>"))
}

fn age_col() -> Column {
    col("Age", "string", |o| {
        json!(age(o
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)))
    })
}

fn columns(info: &ResourceInfo) -> Vec<Column> {
    let mut cols = vec![col("Name", "string", |o| ptr_str(o, "/metadata/name"))];
    if info.custom {
        if info.printer_columns.is_empty() {
            cols.push(age_col());
        }
        for pc in &info.printer_columns {
            let path = pc
                .get("jsonPath")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let kind = pc
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("string")
                .to_string();
            let is_date = kind == "date";
            let mut c = col(
                pc.get("name").and_then(Value::as_str).unwrap_or(""),
                if is_date { "string" } else { &kind },
                move |o| {
                    let found = json_path(o, &path);
                    match found.first() {
                        None => json!(""),
                        Some(v) if is_date => json!(age(v.as_str())),
                        Some(v) => cell_text(v),
                    }
                },
            );
            c.priority = pc.get("priority").and_then(Value::as_i64).unwrap_or(0);
            c.description = pc
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            cols.push(c);
        }
        return cols;
    }
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "namespaces") => cols.push(col("Status", "string", |o| ptr_str(o, "/status/phase"))),
        ("", "configmaps") | ("", "secrets") => cols.push(col("Data", "integer", |o| {
            json!(
                o.get("data")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len())
                    + o.get("binaryData")
                        .and_then(Value::as_object)
                        .map_or(0, |m| m.len())
            )
        })),
        ("", "pods") => cols.push(col("Status", "string", |o| ptr_str(o, "/status/phase"))),
        ("", "nodes") => {
            cols.push(col("Status", "string", |o| {
                let ready = json_path(o, ".status.conditions[?(@.type==\"Ready\")].status");
                json!(if ready.first().and_then(Value::as_str) == Some("True") {
                    "Ready"
                } else {
                    "NotReady"
                })
            }));
            cols.push(col("Version", "string", |o| {
                ptr_str(o, "/status/nodeInfo/kubeletVersion")
            }));
        }
        ("apps", "deployments") | ("apps", "statefulsets") | ("apps", "replicasets") => {
            cols.push(col("Ready", "string", |o| {
                let ready = o
                    .pointer("/status/readyReplicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let want = o
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                json!(format!("{ready}/{want}"))
            }));
        }
        ("", "services") => {
            cols.push(col("Type", "string", |o| ptr_str(o, "/spec/type")));
            cols.push(col("Cluster-IP", "string", |o| {
                ptr_str(o, "/spec/clusterIP")
            }));
        }
        ("", "persistentvolumeclaims") => {
            cols.push(col("Status", "string", |o| ptr_str(o, "/status/phase")));
            cols.push(col("Volume", "string", |o| ptr_str(o, "/spec/volumeName")));
        }
        _ => {}
    }
    cols.push(age_col());
    cols
}

fn row(cols: &[Column], obj: Value, include: &str) -> Value {
    let cells: Vec<Value> = cols.iter().map(|c| (c.cell)(&obj)).collect();
    let object = match include {
        "None" => Value::Null,
        "Object" => obj,
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        }),
    };
    json!({"cells": cells, "object": object})
}

fn table_of(info: &ResourceInfo, objects: Vec<Value>, meta: Value, include: &str) -> Value {
    let cols = columns(info);
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.kind, "format": c.format,
                   "description": c.description, "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|o| row(&cols, o, include))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

/// A Table of the given objects with no list metadata (watch events carry these).
pub(crate) fn table_rows(info: &ResourceInfo, objects: Vec<Value>, include: &str) -> Value {
    table_of(info, objects, json!({}), include)
}

fn include_param(q: &impl QueryLike) -> String {
    q.param("includeObject").unwrap_or("Metadata").to_string()
}

/// Query access without depending on the router's type.
pub(crate) trait QueryLike {
    fn param(&self, key: &str) -> Option<&str>;
}

pub(crate) fn table(info: &ResourceInfo, page: &ListPage, q: &impl QueryLike) -> Value {
    let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(n) = page.remaining {
        meta["remainingItemCount"] = json!(n);
    }
    table_of(info, page.items.clone(), meta, &include_param(q))
}

pub(crate) fn table_one(info: &ResourceInfo, obj: Value, q: &impl QueryLike) -> Value {
    let meta = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))});
    table_of(info, vec![obj], meta, &include_param(q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600), "60m");
        assert_eq!(human_duration(5 * 3600 + 60), "5h1m");
        assert_eq!(human_duration(3 * 86400), "3d");
        assert_eq!(human_duration(400 * 86400), "400d");
    }

    #[test]
    fn json_path_filters_conditions() {
        let o = json!({"status": {"conditions": [
            {"type": "Reconciling", "status": "False"},
            {"type": "Ready", "status": "True", "message": "ok"}]}});
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![json!("True")]
        );
        assert_eq!(
            json_path(&o, ".status.conditions[0].type"),
            vec![json!("Reconciling")]
        );
        assert!(json_path(&o, ".spec.missing").is_empty());
    }
}
