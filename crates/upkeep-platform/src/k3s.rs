//! k3s: the nodes' versions (servers and agents), the datastore, and the
//! path to the target one Kubernetes minor at a time, each hop annotated
//! with its date, CVE ids and the bundled components it changes.

use std::collections::BTreeSet;

use serde_json::Value;
use upkeep_contract::{
    Component, ComponentKind, ComponentUpdates, Current, Finding, Location, SafeText, Severity,
    Source, SourceType, Timestamp,
};
use upkeep_notes as notes;
use upkeep_upstream::{Channel, GithubRepo, Release, Upstream, channel_latest};
use upkeep_version::Version;

use crate::cluster::{self, ClusterObjects};
use crate::gitops;
use crate::kubernetes;
use crate::path::{self, Lines};
use crate::releases::{self, ReleaseSet};
use crate::{Detection, Inputs, Options, PlatformError, Target, upstream_error};

const ROLE_CONTROL_PLANE: &str = "node-role.kubernetes.io/control-plane";
const ROLE_MASTER: &str = "node-role.kubernetes.io/master";
const ROLE_ETCD: &str = "node-role.kubernetes.io/etcd";

/// A node and the k3s version its kubelet reports.
#[derive(Debug, Clone)]
struct NodeVersion {
    name: String,
    server: bool,
    etcd: bool,
    version: Version,
    location: Location,
}

/// Finds what k3s can be updated to.
pub async fn detect(
    upstream: &Upstream,
    inputs: &Inputs,
    opts: &Options,
) -> Result<Detection, PlatformError> {
    let mut doc = ComponentUpdates::new(
        Component {
            kind: ComponentKind::K3s,
            name: "k3s".to_string(),
            namespace: None,
            source: Some(Source {
                source_type: SourceType::GithubReleases,
                url: upstream.releases_url(GithubRepo::K3S),
                chart: None,
            }),
        },
        Timestamp::now(),
    );
    let mut failed = false;
    let channels = match upstream.k3s_channels().await {
        Ok(c) => c,
        Err(e) => {
            failed = true;
            doc.errors
                .push(upstream_error(upstream.channels_url().to_string(), &e));
            Vec::new()
        }
    };
    let github = match upstream.github_releases(GithubRepo::K3S).await {
        Ok(r) => r,
        Err(e) => {
            failed = true;
            doc.errors
                .push(upstream_error(upstream.releases_url(GithubRepo::K3S), &e));
            Vec::new()
        }
    };
    let set = ReleaseSet::new(
        with_channels(github, &channels),
        opts.include_prereleases,
        &opts.known_bad,
    );

    let current = current_version(inputs, &channels, &mut doc)?;
    doc.latest = set.newest().map(|r| r.version.clone());
    let Some(current) = current else {
        doc.findings.push(Finding {
            severity: Severity::Warning,
            code: "current-unknown".to_string(),
            message: SafeText::new(
                "the installed k3s version is unknown: give --current, --gitops with a system-upgrade-controller Plan, or a cluster (or --cluster-dump) with nodes",
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
    if let Some(tree) = &inputs.gitops {
        doc.findings
            .extend(kubernetes::already_removed(tree, current.minor_line()));
    }
    if let Some(f) = inputs.gitops.as_ref().and_then(gitops::problems_finding) {
        doc.findings.push(f);
    }

    let target = resolve_target(&opts.target, &set, &channels, &mut doc);
    if let Some(target) = &target {
        if target < &current {
            doc.findings.push(path::no_downgrade(
                &current,
                target,
                &describe(&opts.target),
            ));
        } else {
            doc.latest_allowed = Some(target.clone());
            let steps = path::plan(&current, target, &set, Lines::Consecutive);
            doc.findings.extend(steps.findings);
            doc.path = steps
                .hops
                .iter()
                .map(|(from, to)| {
                    let mut hop = path::hop(&set, from, to);
                    let from_table = set.get(from).map(|r| notes::embedded_components(&r.body));
                    let to_table = set.get(to).map(|r| notes::embedded_components(&r.body));
                    if let Some(to_table) = to_table.filter(|t| !t.is_empty()) {
                        hop.bundled =
                            notes::bundled_changes(from_table.as_deref().unwrap_or(&[]), &to_table);
                    }
                    if let Some(tree) = &inputs.gitops {
                        hop.blockers.extend(kubernetes::hop_blockers(
                            tree,
                            from.minor_line(),
                            to.minor_line(),
                        ));
                    }
                    hop
                })
                .collect();
        }
    }
    if let Some(objects) = &inputs.cluster {
        let target_table = doc
            .latest_allowed
            .as_ref()
            .and_then(|t| set.get(t))
            .map(|r| notes::embedded_components(&r.body))
            .unwrap_or_default();
        doc.findings.extend(packaged_components(
            objects,
            doc.latest_allowed.as_ref(),
            &target_table,
        ));
    }
    doc.candidates = releases::candidates(&set, &current, doc.latest_allowed.as_ref(), &|_| None);
    Ok(Detection {
        document: doc,
        upstream_failed: failed,
    })
}

fn describe(target: &Target) -> String {
    match target {
        Target::Stable => "the stable channel".to_string(),
        Target::Latest => "the latest channel".to_string(),
        Target::Line(l) => format!("the {l} channel"),
        Target::Version(_) => "--target".to_string(),
    }
}

/// GitHub releases plus each channel's release when GitHub did not list it
/// (GitHub unreachable, or a release too new for the listing): channels
/// name the newest patch of every minor, which is all a path needs.
fn with_channels(mut releases: Vec<Release>, channels: &[Channel]) -> Vec<Release> {
    for c in channels {
        if !releases.iter().any(|r| r.version == c.latest) {
            releases.push(Release {
                tag: c.latest.to_string(),
                version: c.latest.clone(),
                prerelease: c.latest.is_prerelease(),
                published: None,
                body: String::new(),
                html_url: None,
            });
        }
    }
    releases
}

fn resolve_target(
    target: &Target,
    set: &ReleaseSet,
    channels: &[Channel],
    doc: &mut ComponentUpdates,
) -> Option<Version> {
    let resolved = match target {
        Target::Stable => channel_latest(channels, "stable").cloned(),
        Target::Latest => channel_latest(channels, "latest")
            .cloned()
            .or_else(|| set.newest().map(|r| r.version.clone())),
        Target::Line(line) => channel_latest(channels, &line.to_string())
            .cloned()
            .or_else(|| set.latest_in(*line).map(|r| r.version.clone())),
        Target::Version(v) => set.get(v).map(|r| r.version.clone()),
    };
    if resolved.is_none() {
        doc.findings.push(Finding {
            severity: Severity::Warning,
            code: "target-unresolved".to_string(),
            message: SafeText::new(&format!(
                "target {target} is not a known k3s release or channel; no upgrade path"
            )),
            locations: Vec::new(),
        });
    }
    resolved
}

/// The installed version: `--current`, else the oldest node, else the
/// GitOps Plans. Every source read adds what it observed and its findings.
fn current_version(
    inputs: &Inputs,
    channels: &[Channel],
    doc: &mut ComponentUpdates,
) -> Result<Option<Version>, PlatformError> {
    let mut found: Option<Version> = None;
    if let Some(v) = &inputs.current {
        doc.observed.push(Location::Flag {
            flag: "--current".to_string(),
        });
        found = Some(v.clone());
    }
    if let Some(objects) = &inputs.cluster {
        let nodes = node_versions(objects);
        report_nodes(&nodes, doc);
        if found.is_none() {
            found = nodes.iter().map(|n| n.version.clone()).min();
        }
    }
    if let Some(tree) = &inputs.gitops {
        let plans = plan_versions(tree, channels, doc);
        if found.is_none() {
            found = plans.into_iter().min();
        }
    }
    Ok(found)
}

fn node_versions(objects: &ClusterObjects) -> Vec<NodeVersion> {
    objects
        .of_kind("", "Node")
        .filter_map(|n: &Value| {
            let raw = cluster::str_at(n, &["status", "nodeInfo", "kubeletVersion"])?;
            let version = Version::parse(raw).ok()?;
            Some(NodeVersion {
                name: cluster::name(n).to_string(),
                server: cluster::has_label(n, ROLE_CONTROL_PLANE)
                    || cluster::has_label(n, ROLE_MASTER),
                etcd: cluster::has_label(n, ROLE_ETCD),
                version,
                location: cluster::cluster_location(n, "status.nodeInfo.kubeletVersion"),
            })
        })
        .collect()
}

fn report_nodes(nodes: &[NodeVersion], doc: &mut ComponentUpdates) {
    doc.observed
        .extend(nodes.iter().map(|n| n.location.clone()));
    let list = |pred: &dyn Fn(&NodeVersion) -> bool| {
        nodes
            .iter()
            .filter(|n| pred(n))
            .map(|n| format!("{} {}", n.name, n.version))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let distinct: BTreeSet<String> = nodes.iter().map(|n| n.version.to_string()).collect();
    if distinct.len() > 1 {
        doc.findings.push(Finding {
            severity: Severity::Warning,
            code: "mixed-versions".to_string(),
            message: SafeText::new(&format!(
                "nodes run different k3s versions: servers [{}], agents [{}]; finish the running upgrade (servers first) before planning the next",
                list(&|n| n.server),
                list(&|n| !n.server)
            )),
            locations: nodes.iter().map(|n| n.location.clone()).collect(),
        });
    }
    let newest_server = nodes.iter().filter(|n| n.server).map(|n| &n.version).max();
    let newer_agents: Vec<&NodeVersion> = nodes
        .iter()
        .filter(|n| !n.server && newest_server.is_some_and(|s| &n.version > s))
        .collect();
    if !newer_agents.is_empty() {
        doc.findings.push(Finding {
            severity: Severity::Blocking,
            code: "agent-newer-than-server".to_string(),
            message: SafeText::new(&format!(
                "agents newer than every server ({}): Kubernetes supports agents at most as new as the servers",
                newer_agents
                    .iter()
                    .map(|n| format!("{} {}", n.name, n.version))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            locations: newer_agents.iter().map(|n| n.location.clone()).collect(),
        });
    }
    if nodes.is_empty() {
        return;
    }
    let servers: Vec<&NodeVersion> = nodes.iter().filter(|n| n.server).collect();
    let etcd: Vec<&str> = nodes
        .iter()
        .filter(|n| n.etcd)
        .map(|n| n.name.as_str())
        .collect();
    let message = if !etcd.is_empty() {
        format!(
            "datastore: embedded etcd (etcd role on {}); back it up with `k3s etcd-snapshot save` before upgrading",
            etcd.join(", ")
        )
    } else if servers.len() > 1 {
        format!(
            "datastore: external (servers {} run without the etcd role); back up the external database before upgrading",
            servers
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        "datastore: SQLite (kine) or an external database (no node has the etcd role); back up /var/lib/rancher/k3s/server/db or the database before upgrading".to_string()
    };
    doc.findings.push(Finding {
        severity: Severity::Info,
        code: "datastore".to_string(),
        message: SafeText::new(&message),
        locations: servers.iter().map(|n| n.location.clone()).collect(),
    });
}

/// The versions the system-upgrade-controller Plans in the checkout install.
fn plan_versions(
    tree: &upkeep_gitops::Tree,
    channels: &[Channel],
    doc: &mut ComponentUpdates,
) -> Vec<Version> {
    let mut versions: Vec<(String, Version)> = Vec::new();
    for obj in tree
        .of_kind("Plan")
        .filter(|o| o.group() == "upgrade.cattle.io")
    {
        let Some(d) = upkeep_gitops::document(tree.root(), obj) else {
            continue;
        };
        let name = obj.name().unwrap_or("<unnamed>").to_string();
        if let Some((line, raw)) = d.scalar(&["spec", "version"]) {
            let loc = gitops::location(obj, Some(line));
            match Version::parse(&raw) {
                Ok(v) => {
                    doc.observed.push(loc);
                    versions.push((name, v));
                }
                Err(e) => doc.findings.push(Finding {
                    severity: Severity::Warning,
                    code: "invalid-version".to_string(),
                    message: SafeText::new(&format!("Plan {name}: spec.version: {e}")),
                    locations: vec![loc],
                }),
            }
        } else if let Some((line, url)) = d.scalar(&["spec", "channel"]) {
            let loc = gitops::location(obj, Some(line));
            let channel = url.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            match channel_latest(channels, channel) {
                Some(v) => {
                    doc.observed.push(loc);
                    doc.findings.push(Finding {
                        severity: Severity::Info,
                        code: "plan-channel".to_string(),
                        message: SafeText::new(&format!(
                            "Plan {name} follows channel {channel}, which points at {v}"
                        )),
                        locations: Vec::new(),
                    });
                    versions.push((name, v.clone()));
                }
                None => doc.findings.push(Finding {
                    severity: Severity::Warning,
                    code: "channel-unresolved".to_string(),
                    message: SafeText::new(&format!(
                        "Plan {name} follows channel {channel:?}, which the channel server does not list (or could not be reached)"
                    )),
                    locations: vec![loc],
                }),
            }
        }
    }
    let distinct: BTreeSet<String> = versions.iter().map(|(_, v)| v.to_string()).collect();
    if distinct.len() > 1 {
        doc.findings.push(Finding {
            severity: Severity::Warning,
            code: "mixed-versions".to_string(),
            message: SafeText::new(&format!(
                "system-upgrade-controller Plans install different versions: {}",
                versions
                    .iter()
                    .map(|(n, v)| format!("{n} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            locations: Vec::new(),
        });
    }
    versions.into_iter().map(|(_, v)| v).collect()
}

/// k3s's packaged components as the cluster shows them: the `HelmChart`s
/// k3s manages in kube-system (traefik, traefik-crd) and its `Addon`
/// manifests (coredns, local-storage, metrics-server). They are part of k3s,
/// not user charts: they move with k3s, to the versions the target brings.
fn packaged_components(
    objects: &ClusterObjects,
    target: Option<&Version>,
    target_table: &[notes::ComponentVersion],
) -> Vec<Finding> {
    // Object name → the row of k3s's "Embedded Component Versions" table.
    const PACKAGED: &[(&str, &str)] = &[
        ("traefik", "Traefik"),
        ("traefik-crd", "Traefik"),
        ("coredns", "CoreDNS"),
        ("local-storage", "Local-path-provisioner"),
        ("metrics-server", "Metrics-server"),
    ];
    let charts = objects
        .of_kind("helm.cattle.io", "HelmChart")
        .map(|o| (o, "spec.chart"));
    let addons = objects
        .of_kind("k3s.cattle.io", "Addon")
        .map(|o| (o, "spec.source"));
    charts
        .chain(addons)
        .filter(|(o, _)| cluster::namespace(o) == Some("kube-system"))
        .filter_map(|(o, field)| {
            let name = cluster::name(o);
            let (_, component) = PACKAGED.iter().find(|(n, _)| *n == name)?;
            let installed = cluster::str_at(o, &field.split('.').collect::<Vec<_>>())
                .map(|s| s.rsplit('/').next().unwrap_or(s).to_string());
            let brings = target_table
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(component))
                .map(|c| c.version.as_str());
            let mut message = format!(
                "{} kube-system/{name} is k3s's packaged {component}, not a user chart",
                cluster::str_at(o, &["kind"]).unwrap_or_default()
            );
            if let Some(installed) = installed {
                message.push_str(&format!(" (installed from {installed})"));
            }
            match (target, brings) {
                (Some(t), Some(b)) => {
                    message.push_str(&format!("; it moves with k3s: {t} brings {component} {b}"))
                }
                _ => message.push_str("; it moves with k3s"),
            }
            Some(Finding {
                severity: Severity::Info,
                code: "k3s-packaged-component".to_string(),
                message: SafeText::new(&message),
                locations: vec![cluster::cluster_location(o, field)],
            })
        })
        .collect()
}
