//! Naming resources: what a tool asks for ([`ResourceRef`]) and what discovery answers
//! ([`Resource`]).

use kube::api::ApiResource;
use kube::core::GroupVersionKind;

/// A resource as a tool names it: a group, optionally a version (else the preferred one),
/// and a kind (`HelmRelease`) or plural (`helmreleases`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    pub group: String,
    pub version: Option<String>,
    pub name: String,
}

impl ResourceRef {
    /// A resource at a given version.
    pub fn new(group: &str, version: &str, kind_or_plural: &str) -> Self {
        ResourceRef {
            group: group.to_string(),
            version: Some(version.to_string()),
            name: kind_or_plural.to_string(),
        }
    }

    /// A resource at whichever version the server prefers.
    pub fn preferred(group: &str, kind_or_plural: &str) -> Self {
        ResourceRef {
            group: group.to_string(),
            version: None,
            name: kind_or_plural.to_string(),
        }
    }

    /// From an object's `apiVersion` (`apps/v1`, `v1`) and `kind`.
    pub fn from_api_version(api_version: &str, kind: &str) -> Self {
        let (group, version) = split_api_version(api_version);
        ResourceRef::new(group, version, kind)
    }

    pub(crate) fn matches(&self, api: &ApiResource) -> bool {
        api.group == self.group
            && self.version.as_ref().is_none_or(|v| *v == api.version)
            && (api.kind == self.name
                || api.plural == self.name
                || api.kind.eq_ignore_ascii_case(&self.name))
    }
}

impl std::fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gv = match (&self.version, self.group.is_empty()) {
            (Some(v), true) => v.clone(),
            (Some(v), false) => format!("{}/{v}", self.group),
            (None, true) => "core".to_string(),
            (None, false) => self.group.clone(),
        };
        write!(f, "{} ({gv})", self.name)
    }
}

pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// A served resource: its names, scope and verbs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Group, version, apiVersion, kind and plural.
    pub api: ApiResource,
    pub namespaced: bool,
    /// The verbs the server allows (`get`, `list`, `watch`, `patch`, ...).
    pub verbs: Vec<String>,
    /// Subresources such as `status` and `scale`.
    pub subresources: Vec<String>,
}

impl Resource {
    /// A resource known only by group/version/kind: the plural is derived as kube-rs does.
    pub fn from_gvk(group: &str, version: &str, kind: &str, namespaced: bool) -> Self {
        Resource {
            api: ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind)),
            namespaced,
            verbs: vec!["get".to_string(), "list".to_string()],
            subresources: Vec::new(),
        }
    }

    pub fn kind(&self) -> &str {
        &self.api.kind
    }

    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    pub fn is_listable(&self) -> bool {
        self.supports("list")
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|s| s == name)
    }

    /// `Widget apps/blue`, or `Namespace apps` for cluster-scoped kinds.
    pub fn object_target(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{} {ns}/{name}", self.api.kind),
            None => format!("{} {name}", self.api.kind),
        }
    }

    /// `widgets.sim.upkeep.dev/v1 in namespace apps`, or `... in all namespaces`.
    pub fn collection_target(&self, namespace: Option<&str>) -> String {
        let gvr = if self.api.group.is_empty() {
            format!("{}/{}", self.api.plural, self.api.version)
        } else {
            format!(
                "{}.{}/{}",
                self.api.plural, self.api.group, self.api.version
            )
        };
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{gvr} in namespace {ns}"),
            (true, None) => format!("{gvr} in all namespaces"),
            (false, _) => gvr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_match_kind_or_plural_and_version() {
        let r = Resource::from_gvk("helm.toolkit.fluxcd.io", "v2", "HelmRelease", true);
        assert_eq!(r.api.plural, "helmreleases");
        assert!(ResourceRef::preferred("helm.toolkit.fluxcd.io", "helmreleases").matches(&r.api));
        assert!(ResourceRef::new("helm.toolkit.fluxcd.io", "v2", "HelmRelease").matches(&r.api));
        assert!(
            !ResourceRef::new("helm.toolkit.fluxcd.io", "v2beta1", "HelmRelease").matches(&r.api)
        );
        assert!(!ResourceRef::preferred("", "HelmRelease").matches(&r.api));
        let core = ResourceRef::from_api_version("v1", "ConfigMap");
        assert_eq!(
            (core.group.as_str(), core.version.as_deref()),
            ("", Some("v1"))
        );
        assert_eq!(
            r.object_target(Some("flux-system"), "podinfo"),
            "HelmRelease flux-system/podinfo"
        );
        assert_eq!(
            r.collection_target(None),
            "helmreleases.helm.toolkit.fluxcd.io/v2 in all namespaces"
        );
    }
}
