//! `--scope FILE`: what a restore point holds, written down once.
//!
//! ```yaml
//! namespaces: [apps, media]        # default: the whole cluster
//! excludeKinds: [Pod, Widget.bulk.upkeep.dev]
//! sensitiveConfigMaps: [apps/tokens]
//! excludeSecrets: false
//! includeStatus: false
//! ```
//! Flags add to it: `--namespace` and `--sensitive-configmap` extend the
//! lists, `--exclude-secrets` and `--include-status` switch on.

use std::path::Path;

use serde::Deserialize;

use crate::SnapshotError;

/// Largest scope file read.
const MAX_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scope {
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// `Kind` or `Kind.group`, as `snapshot` names kinds in its skip list.
    #[serde(default)]
    pub exclude_kinds: Vec<String>,
    #[serde(default)]
    pub sensitive_config_maps: Vec<String>,
    #[serde(default)]
    pub exclude_secrets: bool,
    #[serde(default)]
    pub include_status: bool,
}

impl Scope {
    pub fn load(path: &Path) -> Result<Scope, SnapshotError> {
        let name = path.display().to_string();
        let meta = std::fs::metadata(path)
            .map_err(|e| SnapshotError::input(&name, format!("cannot read: {e}")))?;
        if meta.len() > MAX_BYTES {
            return Err(SnapshotError::input(&name, "larger than 1 MiB"));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| SnapshotError::input(&name, format!("cannot read: {e}")))?;
        Scope::parse(&text).map_err(|m| SnapshotError::input(name, m))
    }

    fn parse(text: &str) -> Result<Scope, String> {
        let value: serde_json::Value = serde_saphyr::from_str(text)
            .map_err(|e| format!("invalid YAML: {}", one_line(&e.to_string())))?;
        if value.is_null() {
            return Ok(Scope::default());
        }
        let scope: Scope = serde_path_to_error::deserialize(value).map_err(|e| {
            let at = e.path().to_string();
            let msg = one_line(&e.into_inner().to_string());
            if at == "." {
                msg
            } else {
                format!("key `{at}`: {msg}")
            }
        })?;
        for (i, cm) in scope.sensitive_config_maps.iter().enumerate() {
            if cm.split('/').filter(|p| !p.is_empty()).count() != 2 {
                return Err(format!(
                    "key `sensitiveConfigMaps[{i}]`: {cm:?} is not NAMESPACE/NAME"
                ));
            }
        }
        Ok(scope)
    }

    /// Whether a kind (`Kind` and its group) is excluded.
    pub fn excludes(&self, group: &str, kind: &str) -> bool {
        names_kind(&self.exclude_kinds, group, kind)
    }
}

/// Whether `list` names a kind as `Kind` or `Kind.group` (any case).
pub(crate) fn names_kind(list: &[String], group: &str, kind: &str) -> bool {
    list.iter().any(|k| {
        k.eq_ignore_ascii_case(kind)
            || (!group.is_empty() && k.eq_ignore_ascii_case(&format!("{kind}.{group}")))
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_form() {
        let s = Scope::parse(
            "namespaces: [apps, media]\nexcludeKinds: [Pod, Widget.bulk.upkeep.dev]\nsensitiveConfigMaps: [apps/tokens]\nincludeStatus: true\n",
        )
        .unwrap();
        assert_eq!(s.namespaces, ["apps", "media"]);
        assert!(s.include_status && !s.exclude_secrets);
        assert!(s.excludes("", "Pod"));
        assert!(s.excludes("bulk.upkeep.dev", "Widget"));
        assert!(!s.excludes("other.example", "Widget"));
        assert!(!s.excludes("apps", "Deployment"));
        assert_eq!(Scope::parse("").unwrap(), Scope::default());
    }

    #[test]
    fn mistakes_name_the_key() {
        let e = Scope::parse("namespace: [apps]\n").unwrap_err();
        assert!(e.contains("unknown field `namespace`"), "{e}");
        let e = Scope::parse("namespaces: apps\n").unwrap_err();
        assert!(e.starts_with("key `namespaces`"), "{e}");
        let e = Scope::parse("sensitiveConfigMaps: [tokens]\n").unwrap_err();
        assert_eq!(
            e,
            "key `sensitiveConfigMaps[0]`: \"tokens\" is not NAMESPACE/NAME"
        );
        assert!(
            Scope::parse("a: [\n")
                .unwrap_err()
                .starts_with("invalid YAML")
        );
    }
}
