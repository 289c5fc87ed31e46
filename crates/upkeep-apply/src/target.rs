//! Where a component's version is written in the GitOps checkout: the one
//! line an update edits.

use upkeep_contract::{Component, ComponentKind, ObjectRef, Version};
use upkeep_gitops::{Object, Spec, Tree};

use crate::ApplyError;

/// A version string in one file of the checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Relative to the checkout's root.
    pub path: String,
    pub line: u32,
    /// The YAML key on that line (`version`, `tag`).
    pub key: &'static str,
    /// The value as written (`6.5.0`, `v1.31.4+k3s1`).
    pub written: String,
    /// The object that holds it.
    pub object: ObjectRef,
    /// What the cluster shows once the new version is in: a HelmRelease's
    /// installed chart, or a Plan's nodes.
    pub watch: Watch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// A HelmRelease: `status.history[0]` at the version, Ready.
    HelmRelease { namespace: String, name: String },
    /// A system-upgrade-controller Plan: the nodes it selects at the version.
    Plan { namespace: String, name: String },
    /// Flux's own controllers as gotk-components.yaml names them: each
    /// Deployment on its image and rolled out.
    FluxControllers(Vec<crate::flux::Controller>),
    /// A flux-operator FluxInstance: Ready at a revision of the version.
    FluxInstance { namespace: String, name: String },
}

impl Target {
    /// The value to write for `to`, in the style of what is written (a
    /// leading `v` kept or left out as the operator wrote it).
    pub fn new_value(&self, to: &Version) -> String {
        styled(&self.written, to)
    }

    /// Whether the value written is `version` (with or without a `v`).
    pub fn is_at(&self, version: &Version) -> bool {
        Version::parse(&self.written).is_ok_and(|w| same(&w, version))
    }

    /// gotk-components.yaml: regenerated whole, not edited on its line.
    pub fn is_regenerated(&self) -> bool {
        matches!(self.watch, Watch::FluxControllers(_))
    }
}

/// `to` written in the style of `written`: with a leading `v` when it has one.
pub(crate) fn styled(written: &str, to: &Version) -> String {
    let bare = to.to_string();
    let bare = bare.strip_prefix('v').unwrap_or(&bare);
    if written.starts_with('v') {
        format!("v{bare}")
    } else {
        bare.to_string()
    }
}

/// Versions equal but for a leading `v`, which charts and k3s differ on.
pub(crate) fn same(a: &Version, b: &Version) -> bool {
    let strip = |v: &Version| v.to_string().trim_start_matches('v').to_string();
    strip(a) == strip(b)
}

fn object_ref(obj: &Object) -> ObjectRef {
    ObjectRef {
        api_version: obj.api_version.value.clone(),
        kind: obj.kind.value.clone(),
        namespace: obj.namespace().map(str::to_string),
        name: obj.name().unwrap_or_default().to_string(),
    }
}

/// Every place `component`'s version is written in `tree`.
pub fn locate(tree: &Tree, component: &Component) -> Result<Vec<Target>, ApplyError> {
    let not_found = |what: String| ApplyError::NotInCheckout {
        component: component.to_string(),
        what,
    };
    match component.kind {
        ComponentKind::Chart | ComponentKind::Longhorn => {
            let releases: Vec<&Object> = tree
                .of_kind("HelmRelease")
                .filter(|o| o.group() == "helm.toolkit.fluxcd.io")
                .filter(|o| match component.kind {
                    // Longhorn is the HelmRelease that installs the longhorn chart.
                    ComponentKind::Longhorn => chart_name(o).as_deref() == Some("longhorn"),
                    _ => {
                        o.name() == Some(component.name.as_str())
                            && component
                                .namespace
                                .as_deref()
                                .is_none_or(|ns| o.namespace() == Some(ns))
                    }
                })
                .collect();
            match releases.as_slice() {
                [] => Err(not_found("no HelmRelease for it".to_string())),
                [hr] => Ok(vec![helm_release_target(tree, hr, component)?]),
                many => Err(ApplyError::Ambiguous {
                    component: component.to_string(),
                    found: many.iter().map(|o| o.describe()).collect(),
                }),
            }
        }
        ComponentKind::K3s => {
            let mut out = Vec::new();
            for plan in tree
                .of_kind("Plan")
                .filter(|o| o.group() == "upgrade.cattle.io")
            {
                let Some(doc) = upkeep_gitops::document(tree.root(), plan) else {
                    continue;
                };
                let name = plan.name().unwrap_or_default().to_string();
                match doc.scalar(&["spec", "version"]) {
                    Some((line, written)) => out.push(Target {
                        path: plan.path.clone(),
                        line,
                        key: "version",
                        written,
                        object: object_ref(plan),
                        watch: Watch::Plan {
                            namespace: plan.namespace().unwrap_or("system-upgrade").to_string(),
                            name,
                        },
                    }),
                    None if doc.scalar(&["spec", "channel"]).is_some() => {
                        return Err(ApplyError::Unpinned {
                            object: plan.describe(),
                            why: "it follows a channel, so the channel decides the version; \
                                  replace spec.channel with spec.version to let upkeep pin it"
                                .to_string(),
                        });
                    }
                    None => {}
                }
            }
            if out.is_empty() {
                return Err(not_found(
                    "no system-upgrade-controller Plan with spec.version".to_string(),
                ));
            }
            Ok(out)
        }
        ComponentKind::Flux => crate::flux::locate(tree, component),
    }
}

fn chart_name(hr: &Object) -> Option<String> {
    match &hr.spec {
        Spec::HelmRelease(s) => s
            .chart
            .as_ref()
            .and_then(|c| c.chart.as_ref())
            .map(|f| f.value.clone()),
        _ => None,
    }
}

/// The HelmRelease's `spec.chart.spec.version`, or for a `chartRef` to an
/// OCIRepository, that repository's `ref.tag`.
fn helm_release_target(
    tree: &Tree,
    hr: &Object,
    component: &Component,
) -> Result<Target, ApplyError> {
    let Spec::HelmRelease(spec) = &hr.spec else {
        return Err(ApplyError::NotInCheckout {
            component: component.to_string(),
            what: format!("{} has no spec", hr.describe()),
        });
    };
    let watch = Watch::HelmRelease {
        namespace: hr.namespace().unwrap_or("default").to_string(),
        name: hr.name().unwrap_or_default().to_string(),
    };
    let field = |f: &upkeep_gitops::Field, owner: &Object, key: &'static str| {
        if f.has_substitution() {
            return Err(ApplyError::Unpinned {
                object: owner.describe(),
                why: format!(
                    "its {key} is {:?}, a substitution Flux fills in; change the variable by hand",
                    f.value
                ),
            });
        }
        Ok(Target {
            path: owner.path.clone(),
            line: f.line,
            key,
            written: f.value.clone(),
            object: object_ref(owner),
            watch: watch.clone(),
        })
    };
    if let Some(v) = spec.chart.as_ref().and_then(|c| c.version.as_ref()) {
        return field(v, hr, "version");
    }
    if let Some(r) = &spec.chart_ref {
        let name = r.name.as_ref().map(|f| f.value.as_str());
        let ns = r
            .namespace
            .as_ref()
            .map(|f| f.value.as_str())
            .or(hr.namespace());
        let repo = tree
            .of_kind("OCIRepository")
            .find(|o| o.name() == name && o.namespace() == ns);
        if let Some(repo) = repo {
            if let Spec::OciRepository(s) = &repo.spec
                && let Some(tag) = s.reference.as_ref().and_then(|r| r.tag.as_ref())
            {
                return field(tag, repo, "tag");
            }
            return Err(ApplyError::Unpinned {
                object: repo.describe(),
                why: "it has no ref.tag (a semver range or a digest picks the version)".to_string(),
            });
        }
    }
    Err(ApplyError::Unpinned {
        object: hr.describe(),
        why: "it writes no chart version (spec.chart.spec.version), so the latest is installed"
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, Tree) {
        let dir = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let t = upkeep_gitops::scan(dir.path()).unwrap();
        (dir, t)
    }

    fn chart(name: &str, ns: Option<&str>) -> Component {
        Component {
            kind: ComponentKind::Chart,
            name: name.into(),
            namespace: ns.map(str::to_string),
            source: None,
        }
    }

    const HR: &str = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: podinfo\n  namespace: apps\nspec:\n  chart:\n    spec:\n      chart: podinfo\n      # pinned by upkeep\n      version: \"6.5.0\"\n";

    #[test]
    fn a_chart_is_its_helmrelease_version_line() {
        let (_d, t) = tree(&[("apps/podinfo.yaml", HR)]);
        let got = locate(&t, &chart("podinfo", Some("apps"))).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].path.as_str(), got[0].line, got[0].key),
            ("apps/podinfo.yaml", 11, "version")
        );
        assert_eq!(got[0].written, "6.5.0");
        assert_eq!(got[0].new_value(&Version::parse("6.6.0").unwrap()), "6.6.0");
        let err = locate(&t, &chart("podinfo", Some("other"))).unwrap_err();
        assert!(err.to_string().contains("no HelmRelease"), "{err}");
    }

    #[test]
    fn an_oci_chart_ref_is_its_repository_tag_and_a_range_is_refused() {
        let hr = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: app\n  namespace: apps\nspec:\n  chartRef:\n    kind: OCIRepository\n    name: app\n";
        let oci = "apiVersion: source.toolkit.fluxcd.io/v1beta2\nkind: OCIRepository\nmetadata:\n  name: app\n  namespace: apps\nspec:\n  url: oci://ghcr.io/x/app\n  ref:\n    tag: 1.2.3\n";
        let (_d, t) = tree(&[("hr.yaml", hr), ("oci.yaml", oci)]);
        let got = locate(&t, &chart("app", Some("apps"))).unwrap();
        assert_eq!((got[0].path.as_str(), got[0].key), ("oci.yaml", "tag"));
        assert_eq!(got[0].object.kind, "OCIRepository");
        assert!(matches!(&got[0].watch, Watch::HelmRelease { name, .. } if name == "app"));

        let subst = HR.replace("\"6.5.0\"", "${PODINFO_VERSION}");
        let (_d, t) = tree(&[("apps/podinfo.yaml", &subst)]);
        let err = locate(&t, &chart("podinfo", None)).unwrap_err();
        assert!(err.to_string().contains("substitution"), "{err}");
    }

    #[test]
    fn k3s_is_every_plan_version_and_a_channel_is_refused() {
        let plan = |name: &str, spec: &str| {
            format!(
                "apiVersion: upgrade.cattle.io/v1\nkind: Plan\nmetadata:\n  name: {name}\n  namespace: system-upgrade\nspec:\n  {spec}\n"
            )
        };
        let both = format!(
            "{}---\n{}",
            plan("server-plan", "version: v1.31.4+k3s1"),
            plan("agent-plan", "version: v1.31.4+k3s1")
        );
        let (_d, t) = tree(&[("plans.yaml", &both)]);
        let k3s = Component {
            kind: ComponentKind::K3s,
            name: "k3s".into(),
            namespace: None,
            source: None,
        };
        let got = locate(&t, &k3s).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].line, got[1].line), (7, 15));
        assert_eq!(
            got[0].new_value(&Version::parse("v1.32.5+k3s1").unwrap()),
            "v1.32.5+k3s1"
        );
        let (_d, t) = tree(&[(
            "plans.yaml",
            &plan(
                "server-plan",
                "channel: https://update.k3s.io/v1-release/channels/stable",
            ),
        )]);
        let err = locate(&t, &k3s).unwrap_err();
        assert!(err.to_string().contains("follows a channel"), "{err}");
    }
}
