//! A minimal OpenAPI v3 surface. kubectl consults `/openapi/v3` before writes to learn whether
//! the server validates fields itself (`fieldValidation`); without it kubectl falls back to
//! client-side validation, which needs the protobuf OpenAPI v2 document. Each group-version
//! document lists, per kind, the paths and verbs with their `x-kubernetes-group-version-kind`
//! and the query parameters the simulator accepts. Schemas are not served.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::resources::{Registry, ResourceInfo};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn path_item(info: &ResourceInfo, item: bool) -> Value {
    let gvk = json!({"group": info.group, "version": info.version, "kind": info.kind});
    let op = |action: &str, params: &[&str]| {
        json!({
            "operationId": format!("{action}{}", info.kind),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params.iter().map(|p| param(p)).collect::<Vec<_>>(),
            "responses": {"200": {"description": "OK"}},
        })
    };
    let writes = ["dryRun", "fieldManager", "fieldValidation"];
    let lists = [
        "labelSelector",
        "fieldSelector",
        "limit",
        "continue",
        "resourceVersion",
        "timeoutSeconds",
        "watch",
        "allowWatchBookmarks",
    ];
    if item {
        json!({
            "get": op("get", &[]),
            "put": op("put", &writes),
            "patch": op("patch", &["dryRun", "fieldManager", "fieldValidation", "force"]),
            "delete": op("delete", &["dryRun"]),
        })
    } else {
        json!({
            "get": op("list", &lists),
            "post": op("post", &writes),
            "delete": op("deletecollection", &["dryRun", "labelSelector", "fieldSelector"]),
        })
    }
}

/// The group-version document, or None when the group-version is not served.
pub fn gv_document(
    reg: &Registry,
    group: &str,
    version: &str,
    server_version: &str,
) -> Option<Value> {
    let mut paths = Map::new();
    for r in reg.in_group_version(group, version) {
        let base = format!("/{}", gv_path(group, version));
        let collection = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        paths.insert(collection.clone(), path_item(r, false));
        paths.insert(format!("{collection}/{{name}}"), path_item(r, true));
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": server_version},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

/// The `/openapi/v3` index; each entry's hash changes when what the group-version serves does.
pub fn root(reg: &Registry, server_version: &str) -> Value {
    let mut paths = Map::new();
    for (group, versions) in reg.groups() {
        for v in versions {
            if let Some(doc) = gv_document(reg, &group, &v, server_version) {
                let mut h = DefaultHasher::new();
                doc.to_string().hash(&mut h);
                let p = gv_path(&group, &v);
                paths.insert(
                    p.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={:016X}", h.finish())}),
                );
            }
        }
    }
    json!({"paths": paths})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_declare_field_validation_on_patch() {
        let reg = Registry::builtin();
        let doc = gv_document(&reg, "apps", "v1", "v1.31.4").unwrap();
        let item = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        assert_eq!(
            item["patch"]["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        let names: Vec<&str> = item["patch"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"fieldValidation"));
        let r = root(&reg, "v1.31.4");
        assert!(
            r["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
        assert!(gv_document(&reg, "nope.io", "v1", "x").is_none());
    }
}
