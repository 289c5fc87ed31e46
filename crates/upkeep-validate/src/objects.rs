//! The objects a validator reads, listed once.

use serde_json::Value;
use upkeep_kube::{ClusterRead, ListOptions};

use crate::ValidateError;

/// Which objects to look at: namespaces (empty: all) and a label selector.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub namespaces: Vec<String>,
    pub labels: Option<String>,
}

/// Objects by kind, as one flat list.
#[derive(Debug, Default)]
pub struct Objects {
    items: Vec<Value>,
    /// Kinds asked for that the source does not serve (`Kind.group`).
    pub not_served: Vec<String>,
}

impl Objects {
    pub fn from_values(items: Vec<Value>) -> Objects {
        Objects {
            items,
            not_served: Vec::new(),
        }
    }

    /// Lists `kinds` (group, kind) from `src` within `sel`.
    pub async fn read<R: ClusterRead>(
        src: &R,
        kinds: &[(&str, &str)],
        sel: &Selection,
    ) -> Result<Objects, ValidateError> {
        let served = src.resources().await?;
        let mut out = Objects::default();
        for (group, kind) in kinds {
            let Some(res) = served
                .iter()
                .find(|r| r.api.group == *group && r.api.kind == *kind && r.is_listable())
            else {
                out.not_served.push(if group.is_empty() {
                    kind.to_string()
                } else {
                    format!("{kind}.{group}")
                });
                continue;
            };
            let scopes: Vec<ListOptions> = if res.namespaced && !sel.namespaces.is_empty() {
                sel.namespaces
                    .iter()
                    .map(|n| ListOptions::in_namespace(n))
                    .collect()
            } else {
                vec![ListOptions::all_namespaces()]
            };
            for mut opts in scopes {
                if let Some(l) = &sel.labels {
                    opts = opts.labels(l);
                }
                out.items
                    .extend(upkeep_kube::list_values(src, res, &opts).await?);
            }
        }
        Ok(out)
    }

    pub fn of_kind<'a>(&'a self, group: &'a str, kind: &'a str) -> impl Iterator<Item = &'a Value> {
        self.items.iter().filter(move |o| {
            let api = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let g = api.split_once('/').map_or("", |(g, _)| g);
            g == group && o.get("kind").and_then(Value::as_str) == Some(kind)
        })
    }

    pub fn served(&self, group: &str, kind: &str) -> bool {
        let label = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        !self.not_served.contains(&label)
    }
}
