//! Flux: the installed version (gotk-components header, FluxInstance, a
//! `flux2/manifests/install?ref=` reference, or the cluster's labels), the
//! path one minor at a time, and per hop the Kubernetes versions it supports
//! and every manifest still on an API version it removes.

use serde_json::Value;
use upkeep_contract::{
    ComponentKind, ComponentUpdates, Constraint, Current, Finding, Location, Requires, SafeText,
    Severity,
};
use upkeep_notes as notes;
use upkeep_upstream::{GithubRepo, Release, Upstream};
use upkeep_version::{MinorVersion, Version};

use crate::cluster;
use crate::gitops;
use crate::path::{self, Lines};
use crate::releases::{self, GithubStart, ReleaseSet};
use crate::{Detection, Inputs, Options, PlatformError, Target};

const INSTALL_REF: &str = "fluxcd/flux2/manifests/install?ref=";

/// Finds what Flux can be updated to.
pub async fn detect(
    upstream: &Upstream,
    inputs: &Inputs,
    opts: &Options,
) -> Result<Detection, PlatformError> {
    let GithubStart {
        mut doc,
        set,
        failed,
        kubernetes,
    } = releases::github_start(
        upstream,
        inputs,
        opts,
        (ComponentKind::Flux, "flux", "flux-system"),
        GithubRepo::FLUX,
        "Flux",
    )
    .await?;
    let current = current_version(inputs, &set, &mut doc);
    let Some(current) = current else {
        doc.findings.push(Finding {
            severity: Severity::Warning,
            code: "current-unknown".to_string(),
            message: SafeText::new(
                "the installed Flux version is unknown: give --current, --gitops with flux-system/gotk-components.yaml, a FluxInstance or a flux2 install reference, or a cluster (or --cluster-dump) with the labelled flux-system namespace",
            ),
            locations: Vec::new(),
        });
        return Ok(Detection {
            document: doc,
            upstream_failed: failed,
        });
    };
    doc.current = Some(Current {
        version: current.clone(),
        constraint: None,
    });

    doc.findings.extend(set.known_bad_findings(&current));
    already_removed(inputs, &set, &current, &mut doc);
    if let Some(f) = inputs.gitops.as_ref().and_then(gitops::problems_finding) {
        doc.findings.push(f);
    }

    let target = match &opts.target {
        Target::Latest => set.newest().map(|r| r.version.clone()),
        Target::Line(l) => set.latest_in(*l).map(|r| r.version.clone()),
        Target::Version(v) => set.get(v).map(|r| r.version.clone()),
        Target::Stable => None,
    };
    if let Some(target) = target {
        if target < current {
            doc.findings
                .push(path::no_downgrade(&current, &target, "--target"));
        } else {
            doc.latest_allowed = Some(target.clone());
            let steps = path::plan(&current, &target, &set, Lines::AsReleased);
            doc.findings.extend(steps.findings);
            for (from, to) in &steps.hops {
                let mut hop = path::hop(&set, from, to);
                let supported = supported_kubernetes(&set, to);
                hop.requires = requires(&supported);
                if let (Some(k), Some(r)) = (&kubernetes, &hop.requires)
                    && let Some(b) = kubernetes_blocker(k, to, &supported, r)
                {
                    hop.blockers.push(b);
                }
                let removed: Vec<String> = set
                    .between(from, to)
                    .flat_map(|r| notes::removed_apis(&r.body))
                    .collect();
                hop.blockers
                    .extend(removed_api_blockers(inputs, &removed, to.minor_line()));
                doc.path.push(hop);
            }
        }
    } else if !set.all().is_empty() {
        doc.findings.push(Finding {
            severity: Severity::Warning,
            code: "target-unresolved".to_string(),
            message: SafeText::new(&format!(
                "target {} is not a known Flux release; no upgrade path",
                opts.target
            )),
            locations: Vec::new(),
        });
    }
    doc.candidates = releases::candidates(&set, &current, doc.latest_allowed.as_ref(), &|r| {
        requires(&notes::kubernetes_support(&r.body))
    });
    Ok(Detection {
        document: doc,
        upstream_failed: failed,
    })
}

/// The Kubernetes minors `to` supports: from its own notes, else from the
/// first release of its line (patch notes may leave the table out).
fn supported_kubernetes(set: &ReleaseSet, to: &Version) -> Vec<MinorVersion> {
    let own = set
        .get(to)
        .map(|r| notes::kubernetes_support(&r.body))
        .unwrap_or_default();
    if !own.is_empty() {
        return own;
    }
    set.first_in(to.minor_line())
        .map(|r| notes::kubernetes_support(&r.body))
        .unwrap_or_default()
}

fn requires(supported: &[MinorVersion]) -> Option<Requires> {
    let (min, max) = (supported.first()?, supported.last()?);
    let text = format!(
        ">={}.{}.0-0 <{}.{}.0-0",
        min.major,
        min.minor,
        max.major,
        max.minor + 1
    );
    Constraint::parse(&text).ok().map(|c| Requires {
        kubernetes: Some(c),
    })
}

fn kubernetes_blocker(
    kubernetes: &Version,
    to: &Version,
    supported: &[MinorVersion],
    requires: &Requires,
) -> Option<Finding> {
    let constraint = requires.kubernetes.as_ref()?;
    let plain = Version::new(kubernetes.major(), kubernetes.minor(), kubernetes.patch());
    if constraint.matches(&plain) {
        return None;
    }
    Some(Finding {
        severity: Severity::Blocking,
        code: "kubernetes-unsupported".to_string(),
        message: SafeText::new(&format!(
            "Flux {to} supports Kubernetes {}; the cluster runs {kubernetes}",
            supported
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        locations: Vec::new(),
    })
}

/// `Kind namespace/name`; the location is given beside the message.
fn name_of(obj: &upkeep_gitops::Object) -> String {
    format!(
        "{} {}{}",
        obj.kind.value,
        obj.namespace().map(|n| format!("{n}/")).unwrap_or_default(),
        obj.name().unwrap_or("<unnamed>")
    )
}

/// The API version to migrate a removed one to.
fn migration(api_version: &str, kind: &str) -> String {
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let stable = match (group, kind) {
        ("helm.toolkit.fluxcd.io", _) => "v2",
        ("notification.toolkit.fluxcd.io", "Alert" | "Provider") => "v1beta3",
        (
            "source.toolkit.fluxcd.io"
            | "kustomize.toolkit.fluxcd.io"
            | "notification.toolkit.fluxcd.io"
            | "image.toolkit.fluxcd.io",
            _,
        ) => "v1",
        _ => return "a served API version".to_string(),
    };
    format!("{group}/{stable}")
}

/// Every object in the checkout (file:line) and every CRD in the cluster
/// (stored versions) still on one of `removed`.
fn removed_api_blockers(inputs: &Inputs, removed: &[String], line: MinorVersion) -> Vec<Finding> {
    let mut out = Vec::new();
    if removed.is_empty() {
        return out;
    }
    if let Some(tree) = &inputs.gitops {
        for obj in tree.objects() {
            if !removed.contains(&obj.api_version.value) {
                continue;
            }
            let target = migration(&obj.api_version.value, &obj.kind.value);
            out.push(Finding {
                severity: Severity::Blocking,
                code: "removed-api".to_string(),
                message: SafeText::new(&format!(
                    "{} uses {}, which Flux {line} removes: migrate it to {target} first (flux migrate)",
                    name_of(obj),
                    obj.api_version.value
                )),
                locations: vec![gitops::location(obj, Some(obj.api_version.line))],
            });
        }
    }
    if let Some(objects) = &inputs.cluster {
        for crd in objects.of_kind("apiextensions.k8s.io", "CustomResourceDefinition") {
            let group = cluster::str_at(crd, &["spec", "group"]).unwrap_or_default();
            let stored: Vec<&str> = cluster::at(crd, &["status", "storedVersions"])
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for version in stored {
                let api = format!("{group}/{version}");
                if removed.contains(&api) {
                    out.push(Finding {
                        severity: Severity::Blocking,
                        code: "removed-api-stored".to_string(),
                        message: SafeText::new(&format!(
                            "CRD {} still lists {version} in status.storedVersions, which Flux {line} removes: migrate the stored objects (flux migrate) and drop {version} from storedVersions first",
                            cluster::name(crd)
                        )),
                        locations: vec![cluster::cluster_location(crd, "status.storedVersions")],
                    });
                }
            }
        }
    }
    out
}

/// Objects on an API version that a Flux release up to the installed one
/// already removed: the installed Flux no longer reconciles them.
fn already_removed(
    inputs: &Inputs,
    set: &ReleaseSet,
    current: &Version,
    doc: &mut ComponentUpdates,
) {
    let Some(tree) = &inputs.gitops else {
        return;
    };
    for r in set.all().iter().filter(|r| &r.version <= current) {
        let removed = notes::removed_apis(&r.body);
        for obj in tree
            .objects()
            .iter()
            .filter(|o| removed.contains(&o.api_version.value))
        {
            doc.findings.push(Finding {
                severity: Severity::Blocking,
                code: "removed-api-in-use".to_string(),
                message: SafeText::new(&format!(
                    "{} uses {}, which Flux {} already removed: migrate it to {}",
                    name_of(obj),
                    obj.api_version.value,
                    r.version,
                    migration(&obj.api_version.value, &obj.kind.value)
                )),
                locations: vec![gitops::location(obj, Some(obj.api_version.line))],
            });
        }
    }
}

/// The installed version: `--current`, else the cluster (flux-system
/// namespace label, Flux CRD labels, controller images), else the checkout (gotk-components
/// header, FluxInstance, install reference).
fn current_version(
    inputs: &Inputs,
    set: &ReleaseSet,
    doc: &mut ComponentUpdates,
) -> Option<Version> {
    let mut found: Option<Version> = None;
    let mut running: Option<(Version, Location)> = None;
    let mut take = |v: Version, loc: Location, doc: &mut ComponentUpdates| {
        doc.observed.push(loc);
        if found.is_none() {
            found = Some(v);
        }
    };
    if let Some(v) = &inputs.current {
        take(
            v.clone(),
            Location::Flag {
                flag: "--current".to_string(),
            },
            doc,
        );
    }
    if let Some(objects) = &inputs.cluster {
        let label = "app.kubernetes.io/version";
        for ns in objects
            .of_kind("", "Namespace")
            .filter(|n| cluster::name(n) == "flux-system")
        {
            if let Some(v) = cluster::label(ns, label).and_then(|v| Version::parse(v).ok()) {
                take(
                    v,
                    cluster::cluster_location(ns, &format!("metadata.labels[{label}]")),
                    doc,
                );
            }
        }
        let crd_versions: Vec<(Version, Location)> = objects
            .of_kind("apiextensions.k8s.io", "CustomResourceDefinition")
            .filter(|c| cluster::label(c, "app.kubernetes.io/part-of") == Some("flux"))
            .filter_map(|c| {
                let v = Version::parse(cluster::label(c, label)?).ok()?;
                Some((
                    v,
                    cluster::cluster_location(c, &format!("metadata.labels[{label}]")),
                ))
            })
            .collect();
        if let Some((v, loc)) = crd_versions.iter().min_by(|a, b| a.0.cmp(&b.0)) {
            take(v.clone(), loc.clone(), doc);
        }
        match from_controller_images(objects, set) {
            ControllerImages::None => {}
            ControllerImages::Release(v, loc) => {
                running = Some((v.clone(), loc.clone()));
                take(v, loc, doc);
            }
            ControllerImages::NoRelease(finding) => doc.findings.push(finding),
        }
    }
    if let Some(tree) = &inputs.gitops {
        if let Some(h) = tree.gotk_components_version() {
            let loc = Location::Gitops {
                path: h.path.clone(),
                line: Some(h.line),
                object: None,
            };
            match Version::parse(&h.version) {
                Ok(v) => take(v, loc, doc),
                Err(e) => invalid(doc, &format!("# Flux Version: header: {e}"), loc),
            }
        }
        for obj in tree
            .of_kind("FluxInstance")
            .filter(|o| o.group() == "fluxcd.controlplane.io")
        {
            let Some(d) = upkeep_gitops::document(tree.root(), obj) else {
                continue;
            };
            let Some((line, raw)) = d.scalar(&["spec", "distribution", "version"]) else {
                continue;
            };
            let loc = gitops::location(obj, Some(line));
            match resolve_constraint(&raw, set) {
                Ok(Some(v)) => take(v, loc, doc),
                Ok(None) => invalid(
                    doc,
                    &format!(
                        "FluxInstance spec.distribution.version {raw:?} matches no Flux release"
                    ),
                    loc,
                ),
                Err(e) => invalid(
                    doc,
                    &format!("FluxInstance spec.distribution.version: {e}"),
                    loc,
                ),
            }
        }
        for obj in tree
            .of_kind("Kustomization")
            .filter(|o| o.group() == "kustomize.config.k8s.io")
        {
            let Some(d) = upkeep_gitops::document(tree.root(), obj) else {
                continue;
            };
            let Some((line, text)) = d.line_containing(INSTALL_REF) else {
                continue;
            };
            let Some(rest) = text.split(INSTALL_REF).nth(1) else {
                continue;
            };
            let raw: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '&' | '#'))
                .collect();
            let loc = gitops::location(obj, Some(line));
            match Version::parse(&raw) {
                Ok(v) => take(v, loc, doc),
                Err(e) => invalid(doc, &format!("flux2 install reference: {e}"), loc),
            }
        }
    }
    // Labels are written by whoever installed Flux; images are what runs.
    if let (Some(said), Some((runs, loc))) = (&found, running)
        && said != &runs
    {
        doc.findings.push(Finding {
            severity: Severity::Warning,
            code: "flux-version-disagrees".to_string(),
            message: SafeText::new(&format!(
                "Flux is reported as {said}, but the running controllers are those of {runs}; the path starts from {said}"
            )),
            locations: vec![loc],
        });
    }
    found
}

/// What the running Flux controllers' images say about the Flux version.
enum ControllerImages {
    /// No Flux controller image in the cluster.
    None,
    Release(Version, Location),
    /// The images match no single release: a finding says which they are.
    NoRelease(Finding),
}

/// The Flux release whose controllers are the ones running. Each flux2
/// release lists its controllers under "Components changelog" (some patch
/// releases list only those that changed, so versions carry forward from
/// older releases); the oldest release whose controllers all match the
/// images is the one installed. When several match, the oldest is the
/// safe guess: its path includes every later hop.
fn from_controller_images(objects: &cluster::ClusterObjects, set: &ReleaseSet) -> ControllerImages {
    let mut running: Vec<(&str, Version, Location)> = Vec::new();
    for d in objects.of_kind("apps", "Deployment") {
        for image in cluster::images(d) {
            let Some((org, name)) = image.repository.rsplit_once('/') else {
                continue;
            };
            let is_flux = org.ends_with("fluxcd") && name.ends_with("-controller");
            let Some(v) = image.tag.and_then(|t| Version::parse(t).ok()) else {
                continue;
            };
            if is_flux {
                running.push((name, v, cluster::cluster_location(d, &image.field)));
            }
        }
    }
    if running.is_empty() {
        return ControllerImages::None;
    }
    let mut known: std::collections::BTreeMap<String, Version> = Default::default();
    let mut matching = None;
    for r in set.all() {
        for c in notes::changelog_components(&r.body) {
            if let Ok(v) = Version::parse(&c.version) {
                known.insert(c.name, v);
            }
        }
        // Controllers no release lists (a third-party one) say nothing.
        let listed: Vec<_> = running
            .iter()
            .filter(|(name, _, _)| known.contains_key(*name))
            .collect();
        let all_match = !listed.is_empty()
            && listed
                .iter()
                .all(|(name, v, _)| known.get(*name) == Some(v));
        if all_match {
            matching = Some(r.version.clone());
            break;
        }
    }
    match matching {
        Some(v) => ControllerImages::Release(v, running[0].2.clone()),
        None => {
            let list: Vec<String> = running.iter().map(|(n, v, _)| format!("{n} {v}")).collect();
            ControllerImages::NoRelease(Finding {
                severity: Severity::Warning,
                code: "flux-controllers-unmatched".to_string(),
                message: SafeText::new(&format!(
                    "the Flux controller images ({}) match no single Flux release: controllers at mixed versions, or a release the upstream list lacks",
                    list.join(", ")
                )),
                locations: running.into_iter().map(|(_, _, l)| l).collect(),
            })
        }
    }
}

fn invalid(doc: &mut ComponentUpdates, message: &str, loc: Location) {
    doc.findings.push(Finding {
        severity: Severity::Warning,
        code: "invalid-version".to_string(),
        message: SafeText::new(message),
        locations: vec![loc],
    });
}

/// An exact version, or the newest release a constraint (`2.x`) allows.
fn resolve_constraint(raw: &str, set: &ReleaseSet) -> Result<Option<Version>, String> {
    if let Ok(v) = Version::parse(raw) {
        return Ok(Some(v));
    }
    let c = Constraint::parse(raw).map_err(|e| e.to_string())?;
    Ok(set
        .all()
        .iter()
        .rev()
        .map(|r: &Release| &r.version)
        .find(|v| c.matches(v))
        .cloned())
}
