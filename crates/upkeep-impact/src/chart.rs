//! What changes inside a chart between two versions that can break the
//! release: values keys the HelmRelease sets that the new chart no longer
//! has (renamed or removed), and CRD versions the new chart's CRDs stop
//! serving while the cluster or the checkout still uses them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use upkeep_contract::{Finding, Location, SafeText, Severity};
use upkeep_helm::ChartFiles;

use crate::{Index, Update, group, kind, name, ns, oref, s, shown};

/// Every key path of a mapping, intermediate ones included (`a`, `a.b`).
fn paths(v: &Value, prefix: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            prefix.push(k.clone());
            out.insert(prefix.clone());
            paths(child, prefix, out);
            prefix.pop();
        }
    }
}

/// The key paths a user's values set, down to their leaves (a non-empty
/// mapping is not a leaf; a list is).
fn leaves(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                prefix.push(k.clone());
                leaves(child, prefix, out);
                prefix.pop();
            }
        }
        _ if !prefix.is_empty() => out.push(prefix.clone()),
        _ => {}
    }
}

fn dotted(p: &[String]) -> String {
    p.join(".")
}

/// Keys of `user` whose defaults exist at `from` and are gone at `to`. A
/// key the old chart did not have either (a free-form map's entry, a
/// subchart's value) is judged by the nearest key the old chart had.
pub(crate) fn removed_values(from: &Value, to: &Value, user: &Value) -> Vec<(String, Vec<String>)> {
    let (mut old, mut new) = (BTreeSet::new(), BTreeSet::new());
    paths(from, &mut Vec::new(), &mut old);
    paths(to, &mut Vec::new(), &mut new);
    let mut set = Vec::new();
    leaves(user, &mut Vec::new(), &mut set);
    let mut gone: BTreeMap<Vec<String>, ()> = BTreeMap::new();
    for p in set {
        let known = (1..=p.len())
            .rev()
            .map(|n| &p[..n])
            .find(|q| old.contains(*q));
        if let Some(q) = known
            && !new.contains(q)
        {
            gone.insert(q.to_vec(), ());
        }
    }
    gone.into_keys()
        .map(|q| {
            // A key that appeared in the new chart with the same last segment
            // is the likely new name.
            let last = q.last().cloned().unwrap_or_default();
            let maybe: Vec<String> = new
                .iter()
                .filter(|n| !old.contains(*n) && n.last() == Some(&last))
                .map(|n| dotted(n))
                .take(3)
                .collect();
            (dotted(&q), maybe)
        })
        .collect()
}

/// The versions a CRD serves.
fn served(crd: &Value) -> BTreeSet<String> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("served").and_then(Value::as_bool) != Some(false))
        .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// (CRD name, group, kind, version) for each version the `from` chart's
/// CRDs serve and the `to` chart's same CRD does not.
pub(crate) fn dropped_crd_versions(
    from: &ChartFiles,
    to: &ChartFiles,
) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for old in &from.crds {
        let crd_name = name(old);
        let Some(new) = to.crds.iter().find(|c| name(c) == crd_name) else {
            // Helm never deletes CRDs: one the new chart leaves out stays as it is.
            continue;
        };
        let kept = served(new);
        for v in served(old).difference(&kept) {
            out.push((
                crd_name.to_string(),
                s(old, "/spec/group").unwrap_or("").to_string(),
                s(old, "/spec/names/kind").unwrap_or("").to_string(),
                v.clone(),
            ));
        }
    }
    out
}

/// The findings of one chart update, from its two archives.
pub(crate) fn findings(
    u: &Update,
    pair: &(ChartFiles, ChartFiles),
    ix: &Index,
    tree: Option<&upkeep_gitops::Tree>,
) -> Vec<Finding> {
    let (from, to) = pair;
    let mut out = Vec::new();
    let hr_ns = u.component.namespace.as_deref().unwrap_or("default");
    let hr = ix
        .of("helm.toolkit.fluxcd.io", "HelmRelease")
        .find(|h| name(h) == u.component.name && ns(h).unwrap_or("default") == hr_ns);
    if let Some(hr) = hr
        && let Some(values) = hr.pointer("/spec/values")
    {
        for (key, maybe) in removed_values(&from.values, &to.values, values) {
            let hint = match maybe.as_slice() {
                [] => String::new(),
                m => format!(" (perhaps now {})", m.join(" or ")),
            };
            out.push(Finding {
                severity: Severity::Blocking,
                code: "removed-values-key".to_string(),
                message: SafeText::new(&format!(
                    "HelmRelease {hr_ns}/{} sets values key {key}, which the chart has at {} and no longer has at {}{hint}: \
                     the setting would be ignored silently",
                    u.component.name, u.from, u.to
                )),
                locations: vec![Location::Cluster {
                    object: oref(hr),
                    field: Some(format!("spec.values.{key}")),
                }],
            });
        }
    }
    for (crd, g, k, v) in dropped_crd_versions(from, to) {
        let api = format!("{g}/{v}");
        let mut locations = Vec::new();
        let stored = ix
            .of("apiextensions.k8s.io", "CustomResourceDefinition")
            .find(|c| name(c) == crd)
            .and_then(|c| c.pointer("/status/storedVersions"))
            .and_then(Value::as_array)
            .is_some_and(|sv| sv.iter().any(|x| x.as_str() == Some(&v)));
        let mut in_cluster = Vec::new();
        for o in ix.all.iter().filter(|o| kind(o) == k && group(o) == g) {
            let written = o.get("apiVersion").and_then(Value::as_str) == Some(&api)
                || o.pointer("/metadata/managedFields")
                    .and_then(Value::as_array)
                    .is_some_and(|mf| mf.iter().any(|m| s(m, "/apiVersion") == Some(&api)));
            if written {
                in_cluster.push(shown(&oref(o)));
                locations.push(Location::Cluster {
                    object: oref(o),
                    field: None,
                });
            }
        }
        let mut in_git = 0;
        if let Some(tree) = tree {
            for o in tree.objects() {
                if o.api_version.value == api && o.kind.value == k {
                    in_git += 1;
                    locations.push(Location::Gitops {
                        path: o.path.clone(),
                        line: Some(o.api_version.line),
                        object: None,
                    });
                }
            }
        }
        let severity = if stored || !in_cluster.is_empty() || in_git > 0 {
            Severity::Blocking
        } else {
            Severity::Warning
        };
        let mut what = Vec::new();
        if stored {
            what.push(format!(
                "the cluster still stores objects at {v} (status.storedVersions)"
            ));
        }
        if !in_cluster.is_empty() {
            what.push(format!(
                "{} in the cluster written as {api}",
                in_cluster.join(", ")
            ));
        }
        if in_git > 0 {
            what.push(format!("{in_git} manifest(s) in Git written as {api}"));
        }
        if what.is_empty() {
            what.push("nothing found using it".to_string());
        }
        out.push(Finding {
            severity,
            code: "removed-crd-version".to_string(),
            message: SafeText::new(&format!(
                "CustomResourceDefinition {crd} no longer serves {v} at {} ({k}): {}",
                u.to,
                what.join("; ")
            )),
            locations,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_key_the_release_sets_that_the_new_chart_dropped() {
        let from = json!({"controller": {"admissionWebhooks": {"enabled": true, "port": 8443},
                          "podAnnotations": {}}, "replicas": 1});
        let to = json!({"controller": {"webhooks": {"enabled": true, "port": 8443},
                        "podAnnotations": {}}, "replicas": 1});
        let user = json!({"controller": {"admissionWebhooks": {"port": 9443},
                          "podAnnotations": {"a": "b"}}, "replicas": 2, "extra": {"x": 1}});
        let r = removed_values(&from, &to, &user);
        assert_eq!(
            r,
            vec![(
                "controller.admissionWebhooks.port".to_string(),
                vec!["controller.webhooks.port".to_string()]
            )]
        );
    }

    #[test]
    fn a_free_form_map_or_an_unknown_key_is_not_a_removal() {
        let d = json!({"podAnnotations": {}, "env": []});
        let user = json!({"podAnnotations": {"k": "v"}, "env": [{"name": "A"}], "sub": {"y": 1}});
        assert!(removed_values(&d, &d, &user).is_empty());
        // The map itself gone: its entries go with it, reported once.
        let to = json!({"env": []});
        assert_eq!(
            removed_values(&d, &to, &user),
            vec![("podAnnotations".into(), vec![])]
        );
    }

    fn crd(versions: &[(&str, bool)]) -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "widgets.example.com"},
               "spec": {"group": "example.com", "names": {"kind": "Widget"},
                        "versions": versions.iter().map(|(n, s)| json!({"name": n, "served": s})).collect::<Vec<_>>()}})
    }

    #[test]
    fn crd_versions_no_longer_served() {
        let from = ChartFiles {
            values: json!({}),
            crds: vec![crd(&[("v1alpha1", true), ("v1", true)])],
        };
        let to = ChartFiles {
            values: json!({}),
            crds: vec![crd(&[("v1alpha1", false), ("v1", true)])],
        };
        assert_eq!(
            dropped_crd_versions(&from, &to),
            vec![(
                "widgets.example.com".into(),
                "example.com".into(),
                "Widget".into(),
                "v1alpha1".into()
            )]
        );
        assert!(dropped_crd_versions(&to, &to).is_empty());
        // A CRD the new chart no longer ships is left as it is by Helm.
        let gone = ChartFiles {
            values: json!({}),
            crds: vec![],
        };
        assert!(dropped_crd_versions(&from, &gone).is_empty());
    }
}
