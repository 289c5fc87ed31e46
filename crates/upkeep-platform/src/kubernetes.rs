//! Kubernetes API versions that a Kubernetes minor stops serving, from the
//! Kubernetes deprecated API migration guide
//! (kubernetes.io/docs/reference/using-api/deprecation-guide/), and the
//! manifests in a GitOps checkout that still use them.

use upkeep_contract::{Finding, SafeText, Severity};
use upkeep_version::MinorVersion;

use crate::gitops;

/// One API version (for some or all kinds) removed in a minor.
struct Removal {
    /// The `1.NN` whose API server no longer serves it.
    minor: u64,
    api_version: &'static str,
    /// The kinds concerned; empty for every kind of the group version.
    kinds: &'static [&'static str],
    replacement: &'static str,
}

const fn r(
    minor: u64,
    api_version: &'static str,
    kinds: &'static [&'static str],
    replacement: &'static str,
) -> Removal {
    Removal {
        minor,
        api_version,
        kinds,
        replacement,
    }
}

const REMOVALS: &[Removal] = &[
    r(
        22,
        "admissionregistration.k8s.io/v1beta1",
        &[],
        "admissionregistration.k8s.io/v1",
    ),
    r(
        22,
        "apiextensions.k8s.io/v1beta1",
        &[],
        "apiextensions.k8s.io/v1",
    ),
    r(
        22,
        "apiregistration.k8s.io/v1beta1",
        &[],
        "apiregistration.k8s.io/v1",
    ),
    r(
        22,
        "authentication.k8s.io/v1beta1",
        &[],
        "authentication.k8s.io/v1",
    ),
    r(
        22,
        "authorization.k8s.io/v1beta1",
        &[],
        "authorization.k8s.io/v1",
    ),
    r(
        22,
        "certificates.k8s.io/v1beta1",
        &[],
        "certificates.k8s.io/v1",
    ),
    r(
        22,
        "coordination.k8s.io/v1beta1",
        &[],
        "coordination.k8s.io/v1",
    ),
    r(
        22,
        "extensions/v1beta1",
        &["Ingress"],
        "networking.k8s.io/v1",
    ),
    r(
        22,
        "networking.k8s.io/v1beta1",
        &["Ingress", "IngressClass"],
        "networking.k8s.io/v1",
    ),
    r(
        22,
        "rbac.authorization.k8s.io/v1beta1",
        &[],
        "rbac.authorization.k8s.io/v1",
    ),
    r(22, "scheduling.k8s.io/v1beta1", &[], "scheduling.k8s.io/v1"),
    r(
        22,
        "storage.k8s.io/v1beta1",
        &["CSIDriver", "CSINode", "StorageClass", "VolumeAttachment"],
        "storage.k8s.io/v1",
    ),
    r(25, "batch/v1beta1", &["CronJob"], "batch/v1"),
    r(25, "discovery.k8s.io/v1beta1", &[], "discovery.k8s.io/v1"),
    r(25, "events.k8s.io/v1beta1", &[], "events.k8s.io/v1"),
    r(25, "autoscaling/v2beta1", &[], "autoscaling/v2"),
    r(25, "policy/v1beta1", &["PodDisruptionBudget"], "policy/v1"),
    r(
        25,
        "policy/v1beta1",
        &["PodSecurityPolicy"],
        "Pod Security Admission (PodSecurityPolicy is gone)",
    ),
    r(25, "node.k8s.io/v1beta1", &[], "node.k8s.io/v1"),
    r(
        26,
        "flowcontrol.apiserver.k8s.io/v1beta1",
        &[],
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    r(26, "autoscaling/v2beta2", &[], "autoscaling/v2"),
    r(
        27,
        "storage.k8s.io/v1beta1",
        &["CSIStorageCapacity"],
        "storage.k8s.io/v1",
    ),
    r(
        29,
        "flowcontrol.apiserver.k8s.io/v1beta2",
        &[],
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    r(
        32,
        "flowcontrol.apiserver.k8s.io/v1beta3",
        &[],
        "flowcontrol.apiserver.k8s.io/v1",
    ),
];

/// The Kubernetes minor in `(from, to]` that stops serving `api_version`
/// for `kind`, with what to migrate to: `(minor, replacement)`.
pub fn removed_between(
    api_version: &str,
    kind: &str,
    from: MinorVersion,
    to: MinorVersion,
) -> Option<(u64, &'static str)> {
    if from.major != 1 || to.major != 1 {
        return None;
    }
    REMOVALS
        .iter()
        .filter(|r| r.minor > from.minor && r.minor <= to.minor)
        .find(|r| applies(r, api_version, kind))
        .map(|r| (r.minor, r.replacement))
}

fn applies(r: &Removal, api_version: &str, kind: &str) -> bool {
    r.api_version == api_version && (r.kinds.is_empty() || r.kinds.contains(&kind))
}

/// Manifests on an API version a Kubernetes minor in `(from, to]` removes:
/// blockers of the hop that crosses it.
pub(crate) fn hop_blockers(
    tree: &upkeep_gitops::Tree,
    from: MinorVersion,
    to: MinorVersion,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if from.major != 1 || to.major != 1 {
        return out;
    }
    for removal in REMOVALS
        .iter()
        .filter(|r| r.minor > from.minor && r.minor <= to.minor)
    {
        for obj in tree
            .objects()
            .iter()
            .filter(|o| applies(removal, &o.api_version.value, &o.kind.value))
        {
            out.push(Finding {
                severity: Severity::Blocking,
                code: "removed-kubernetes-api".to_string(),
                message: SafeText::new(&format!(
                    "{} {} uses {}, which Kubernetes v1.{} no longer serves: migrate it to {} first",
                    obj.kind.value,
                    qualified(obj),
                    removal.api_version,
                    removal.minor,
                    removal.replacement
                )),
                locations: vec![gitops::location(obj, Some(obj.api_version.line))],
            });
        }
    }
    out
}

/// Manifests on an API version the running minor (or an older one) already
/// removed: applying them fails today.
pub(crate) fn already_removed(tree: &upkeep_gitops::Tree, current: MinorVersion) -> Vec<Finding> {
    let mut out = Vec::new();
    if current.major != 1 {
        return out;
    }
    for removal in REMOVALS.iter().filter(|r| r.minor <= current.minor) {
        for obj in tree
            .objects()
            .iter()
            .filter(|o| applies(removal, &o.api_version.value, &o.kind.value))
        {
            out.push(Finding {
                severity: Severity::Blocking,
                code: "removed-kubernetes-api-in-use".to_string(),
                message: SafeText::new(&format!(
                    "{} {} uses {}, which Kubernetes v1.{} already stopped serving: migrate it to {}",
                    obj.kind.value,
                    qualified(obj),
                    removal.api_version,
                    removal.minor,
                    removal.replacement
                )),
                locations: vec![gitops::location(obj, Some(obj.api_version.line))],
            });
        }
    }
    out
}

fn qualified(obj: &upkeep_gitops::Object) -> String {
    format!(
        "{}{}",
        obj.namespace().map(|n| format!("{n}/")).unwrap_or_default(),
        obj.name().unwrap_or("<unnamed>")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, upkeep_gitops::Tree) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let t = upkeep_gitops::scan(dir.path()).unwrap();
        (dir, t)
    }

    fn m(s: &str) -> MinorVersion {
        MinorVersion::parse(s).unwrap()
    }

    #[test]
    fn removals_in_the_hop_block_it() {
        let (_d, t) = tree(&[
            (
                "flow.yaml",
                "apiVersion: flowcontrol.apiserver.k8s.io/v1beta3\nkind: FlowSchema\nmetadata:\n  name: homelab\n",
            ),
            (
                "pdb.yaml",
                "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: ok\n  namespace: default\n",
            ),
        ]);
        let b = hop_blockers(&t, m("1.31"), m("1.32"));
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].code, "removed-kubernetes-api");
        assert!(
            b[0].message
                .as_str()
                .contains("Kubernetes v1.32 no longer serves")
        );
        assert!(hop_blockers(&t, m("1.32"), m("1.33")).is_empty());
        assert!(hop_blockers(&t, m("1.30"), m("1.31")).is_empty());
    }

    #[test]
    fn kinds_matter_and_old_removals_are_reported_as_in_use() {
        let (_d, t) = tree(&[
            (
                "pdb.yaml",
                "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: old\n  namespace: default\n",
            ),
            (
                "csc.yaml",
                "apiVersion: storage.k8s.io/v1beta1\nkind: CSIStorageCapacity\nmetadata:\n  name: c\n  namespace: default\n",
            ),
        ]);
        let f = already_removed(&t, m("1.29"));
        let codes: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(f.len(), 2, "{codes:?}");
        assert!(f[0].message.as_str().contains("policy/v1"));
        // At 1.26 the CSIStorageCapacity (removed in 1.27) is still served.
        assert_eq!(already_removed(&t, m("1.26")).len(), 1);
        assert_eq!(hop_blockers(&t, m("1.26"), m("1.27")).len(), 1);
    }
}
