//! Longhorn: the installed version (the `current-longhorn-version` setting,
//! the Longhorn HelmRelease in the cluster or the checkout), the path one
//! minor at a time (Longhorn refuses skipped minors and downgrades), the
//! minimum Kubernetes version of each hop, and the health Longhorn requires
//! before an upgrade: no faulted or degraded volume, every node and disk
//! schedulable.

use serde_json::Value;
use upkeep_contract::{
    ComponentKind, ComponentUpdates, Constraint, Current, Finding, Location, Requires, SafeText,
    Severity,
};
use upkeep_gitops::Spec;
use upkeep_notes as notes;
use upkeep_upstream::{GithubRepo, Upstream};
use upkeep_version::Version;

use crate::cluster::{self, ClusterObjects};
use crate::gitops;
use crate::path::{self, Lines};
use crate::releases::{self, GithubStart, ReleaseSet};
use crate::{Detection, Inputs, Options, PlatformError, Target};

const CHART: &str = "longhorn";
/// The repository of longhorn-manager's image, registry and mirror aside.
const MANAGER_IMAGE: &str = "longhornio/longhorn-manager";

/// Finds what Longhorn can be updated to.
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
        (ComponentKind::Longhorn, "longhorn", "longhorn-system"),
        GithubRepo::LONGHORN,
        "Longhorn",
    )
    .await?;
    if let Some(objects) = &inputs.cluster {
        doc.findings.extend(health(objects));
    }

    let Some(current) = current_version(inputs, &set, &mut doc) else {
        doc.findings.push(Finding {
            severity: Severity::Warning,
            code: "current-unknown".to_string(),
            message: SafeText::new(
                "the installed Longhorn version is unknown: give --current, --gitops with the Longhorn HelmRelease, or a cluster (or --cluster-dump) with settings.longhorn.io or the Longhorn HelmRelease",
            ),
            locations: Vec::new(),
        });
        return Ok(Detection {
            document: doc,
            upstream_failed: failed,
        });
    };

    let target = match &opts.target {
        Target::Latest => set.newest().map(|r| r.version.clone()),
        Target::Line(l) => set.latest_in(*l).map(|r| r.version.clone()),
        Target::Version(v) => set.get(v).map(|r| r.version.clone()),
        Target::Stable => None,
    };
    match target {
        Some(target) if target < current.version => {
            doc.findings
                .push(path::no_downgrade(&current.version, &target, "--target"));
        }
        Some(target) => {
            doc.latest_allowed = Some(target.clone());
            let steps = path::plan(&current.version, &target, &set, Lines::Consecutive);
            doc.findings.extend(steps.findings);
            for (from, to) in &steps.hops {
                let mut hop = path::hop(&set, from, to);
                let minimum = set.get(to).and_then(|r| notes::minimum_kubernetes(&r.body));
                hop.requires = minimum.as_ref().and_then(requires);
                if let (Some(k), Some(min)) = (&kubernetes, &minimum) {
                    let plain = Version::new(k.major(), k.minor(), k.patch());
                    if &plain < min {
                        hop.blockers.push(Finding {
                            severity: Severity::Blocking,
                            code: "kubernetes-too-old".to_string(),
                            message: SafeText::new(&format!(
                                "Longhorn {to} needs Kubernetes {min} or later; the cluster runs {k}"
                            )),
                            locations: Vec::new(),
                        });
                    }
                }
                doc.path.push(hop);
            }
        }
        None if !set.all().is_empty() => doc.findings.push(Finding {
            severity: Severity::Warning,
            code: "target-unresolved".to_string(),
            message: SafeText::new(&format!(
                "target {} is not a known Longhorn release; no upgrade path",
                opts.target
            )),
            locations: Vec::new(),
        }),
        None => {}
    }
    doc.candidates =
        releases::candidates(&set, &current.version, doc.latest_allowed.as_ref(), &|r| {
            notes::minimum_kubernetes(&r.body)
                .as_ref()
                .and_then(requires)
        });
    doc.findings
        .extend(set.known_bad_findings(&current.version));
    doc.current = Some(current);
    Ok(Detection {
        document: doc,
        upstream_failed: failed,
    })
}

fn requires(min: &Version) -> Option<Requires> {
    let text = format!(">={}-0", min.canonical());
    Constraint::parse(&text).ok().map(|c| Requires {
        kubernetes: Some(c),
    })
}

/// The installed version: `--current`, else the cluster's
/// `current-longhorn-version` setting, Longhorn HelmRelease or
/// longhorn-manager image, else the HelmRelease in the checkout (a range there resolves to the newest
/// release it allows, as Flux would install).
fn current_version(
    inputs: &Inputs,
    set: &ReleaseSet,
    doc: &mut ComponentUpdates,
) -> Option<Current> {
    let mut found: Option<Current> = None;
    let mut take = |c: Current, loc: Location, doc: &mut ComponentUpdates| {
        doc.observed.push(loc);
        if found.is_none() {
            found = Some(c);
        }
    };
    let exact = |version: Version| Current {
        version,
        constraint: None,
    };
    if let Some(v) = &inputs.current {
        take(
            exact(v.clone()),
            Location::Flag {
                flag: "--current".to_string(),
            },
            doc,
        );
    }
    if let Some(objects) = &inputs.cluster {
        for s in objects
            .of_kind("longhorn.io", "Setting")
            .filter(|s| cluster::name(s) == "current-longhorn-version")
        {
            let value = cluster::str_at(s, &["value"]);
            if let Some(v) = value.and_then(|v| Version::parse(v).ok()) {
                take(exact(v), cluster::cluster_location(s, "value"), doc);
            }
        }
        for hr in objects
            .of_kind("helm.toolkit.fluxcd.io", "HelmRelease")
            .filter(|h| cluster::str_at(h, &["spec", "chart", "spec", "chart"]) == Some(CHART))
        {
            let history = cluster::at(hr, &["status", "history"])
                .and_then(Value::as_array)
                .and_then(|h| h.first())
                .and_then(|h| cluster::str_at(h, &["chartVersion"]));
            let (raw, field) = match history {
                Some(v) => (Some(v), "status.history[0].chartVersion"),
                None => (
                    cluster::str_at(hr, &["spec", "chart", "spec", "version"]),
                    "spec.chart.spec.version",
                ),
            };
            if let Some(raw) = raw
                && let Ok(Some(c)) = resolve(raw, set)
            {
                take(c, cluster::cluster_location(hr, field), doc);
            }
        }
    }
    if let Some(objects) = &inputs.cluster {
        // What runs: longhorn-manager's image, whoever installed it.
        let workloads = objects
            .of_kind("apps", "DaemonSet")
            .chain(objects.of_kind("apps", "Deployment"));
        for w in workloads {
            for image in cluster::images(w) {
                if !image.repository.ends_with(MANAGER_IMAGE) {
                    continue;
                }
                if let Some(v) = image.tag.and_then(|t| Version::parse(t).ok()) {
                    take(exact(v), cluster::cluster_location(w, &image.field), doc);
                }
            }
        }
    }
    if let Some(tree) = &inputs.gitops {
        for obj in tree.of_kind("HelmRelease") {
            let Spec::HelmRelease(spec) = &obj.spec else {
                continue;
            };
            let Some(chart) = &spec.chart else {
                continue;
            };
            if chart.chart.as_ref().map(|c| c.value.as_str()) != Some(CHART) {
                continue;
            }
            let Some(version) = &chart.version else {
                continue;
            };
            let loc = gitops::location(obj, Some(version.line));
            match resolve(&version.value, set) {
                Ok(Some(c)) => take(c, loc, doc),
                Ok(None) => doc.findings.push(Finding {
                    severity: Severity::Warning,
                    code: "invalid-version".to_string(),
                    message: SafeText::new(&format!(
                        "Longhorn HelmRelease version {:?} matches no Longhorn release",
                        version.value
                    )),
                    locations: vec![loc],
                }),
                Err(e) => doc.findings.push(Finding {
                    severity: Severity::Warning,
                    code: "invalid-version".to_string(),
                    message: SafeText::new(&format!("Longhorn HelmRelease version: {e}")),
                    locations: vec![loc],
                }),
            }
        }
    }
    found
}

/// An exact version, or the newest release a range allows (kept as the
/// constraint).
fn resolve(raw: &str, set: &ReleaseSet) -> Result<Option<Current>, String> {
    if let Ok(v) = Version::parse(raw) {
        return Ok(Some(Current {
            version: v,
            constraint: None,
        }));
    }
    let c = Constraint::parse(raw).map_err(|e| e.to_string())?;
    let newest = set
        .all()
        .iter()
        .rev()
        .map(|r| &r.version)
        .find(|v| c.matches(v))
        .cloned();
    Ok(newest.map(|version| Current {
        version,
        constraint: Some(c),
    }))
}

/// What Longhorn's upgrade guide requires first: every volume healthy, every
/// node and disk schedulable.
fn health(objects: &ClusterObjects) -> Vec<Finding> {
    let mut out = Vec::new();
    let blocking = |code: &str, message: String, loc: Location| Finding {
        severity: Severity::Blocking,
        code: code.to_string(),
        message: SafeText::new(&message),
        locations: vec![loc],
    };
    for v in objects.of_kind("longhorn.io", "Volume") {
        let robustness = cluster::str_at(v, &["status", "robustness"]).unwrap_or("unknown");
        let state = cluster::str_at(v, &["status", "state"]).unwrap_or("unknown");
        if matches!(robustness, "faulted" | "degraded") {
            out.push(blocking(
                &format!("volume-{robustness}"),
                format!(
                    "Longhorn volume {} is {robustness} ({state}); repair it (or restore it from a backup) before upgrading",
                    cluster::name(v)
                ),
                cluster::cluster_location(v, "status.robustness"),
            ));
        }
    }
    for n in objects.of_kind("longhorn.io", "Node") {
        let name = cluster::name(n);
        let conditions = cluster::at(n, &["status", "conditions"]);
        let allowed = cluster::at(n, &["spec", "allowScheduling"]).and_then(Value::as_bool);
        if allowed == Some(false) {
            out.push(blocking(
                "node-unschedulable",
                format!(
                    "Longhorn node {name} has scheduling disabled (spec.allowScheduling: false)"
                ),
                cluster::cluster_location(n, "spec.allowScheduling"),
            ));
        } else if let Some(status) = cluster::condition(conditions, "Schedulable")
            && status != "True"
        {
            out.push(blocking(
                "node-unschedulable",
                format!(
                    "Longhorn node {name} is not schedulable (condition Schedulable is {status})"
                ),
                cluster::cluster_location(n, "status.conditions[Schedulable]"),
            ));
        }
        if let Some(status) = cluster::condition(conditions, "Ready")
            && status != "True"
        {
            out.push(blocking(
                "node-not-ready",
                format!("Longhorn node {name} is not ready (condition Ready is {status})"),
                cluster::cluster_location(n, "status.conditions[Ready]"),
            ));
        }
        let disks = cluster::at(n, &["spec", "disks"]).and_then(Value::as_object);
        for (disk, spec) in disks.into_iter().flatten() {
            let disk_status = cluster::at(n, &["status", "diskStatus", disk]);
            let cond = disk_status.and_then(|s| s.get("conditions"));
            let reason = if spec.get("allowScheduling").and_then(Value::as_bool) == Some(false) {
                Some("scheduling disabled (allowScheduling: false)".to_string())
            } else {
                cluster::condition(cond, "Schedulable")
                    .filter(|s| *s != "True")
                    .map(|s| format!("condition Schedulable is {s}"))
            };
            if let Some(reason) = reason {
                out.push(blocking(
                    "disk-unschedulable",
                    format!("disk {disk} of Longhorn node {name} is not schedulable: {reason}"),
                    cluster::cluster_location(n, &format!("spec.disks[{disk}]")),
                ));
            }
        }
    }
    out
}
