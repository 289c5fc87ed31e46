//! From a HelmRelease in the checkout to the chart source it installs from,
//! as Flux resolves it: `spec.chart.spec.sourceRef` (HelmRepository, HTTP or
//! OCI; GitRepository; Bucket) or `spec.chartRef` (OCIRepository,
//! HelmChart), namespaces defaulting to the HelmRelease's own.
//!
//! The same rules serve both inputs: a checkout ([`Tree`], references
//! resolved within the referrer's cluster) and a cluster
//! ([`crate::ClusterState`], whose objects have no file: their locations are
//! `Location::Cluster`).

use upkeep_contract::{Finding, Location, ObjectRef, SafeText, Severity, SourceType};
use upkeep_gitops::{Field, Object, SourceRef, Spec, Tree};

const SOURCE_GROUP: &str = "source.toolkit.fluxcd.io";

/// Where a release's versions come from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Upstream {
    /// `index.yaml` of `repo`, entries of `chart`.
    Index { repo: String, chart: String },
    /// Tags of an OCI repository (`oci://host/path/chart`).
    OciTags { url: String },
    /// Not checkable (Git, Bucket, a digest pin...), with the reason.
    None,
}

pub(crate) struct Release<'t> {
    pub hr: &'t Object,
    pub name: String,
    pub namespace: String,
    pub source_type: Option<SourceType>,
    /// The URL shown in the document (as written, not mirrored).
    pub source_url: Option<String>,
    pub chart: Option<String>,
    pub upstream: Upstream,
    /// The version constraint as written (`None`: not given by a version
    /// field, e.g. an OCIRepository pinned by digest).
    pub constraint: Option<&'t Field>,
    /// File and line of the field that sets the version.
    pub observed: Location,
    pub findings: Vec<Finding>,
}

fn finding(severity: Severity, code: &str, message: String, at: Option<Location>) -> Finding {
    Finding {
        severity,
        code: code.to_string(),
        message: SafeText::new(&message),
        locations: at.into_iter().collect(),
    }
}

fn object_ref(o: &Object) -> ObjectRef {
    ObjectRef {
        api_version: o.api_version.value.clone(),
        kind: o.kind.value.clone(),
        namespace: o.namespace().map(str::to_string),
        name: o.name().unwrap_or_default().to_string(),
    }
}

/// Where the sources a release refers to are looked up.
pub(crate) trait Objects {
    /// The object of `kind` named `namespace/name` that `from` can see.
    fn find(
        &self,
        from: &Object,
        group: Option<&str>,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<&Object>;
}

impl Objects for Tree {
    fn find(
        &self,
        from: &Object,
        group: Option<&str>,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<&Object> {
        self.resolve(from, group, kind, namespace, name)
    }
}

/// Read from the cluster rather than a file (see [`crate::cluster`]).
pub(crate) fn in_cluster(o: &Object) -> bool {
    o.path.is_empty()
}

/// `kind namespace/name at path:line`, or `... in the cluster`.
fn describe(o: &Object) -> String {
    if in_cluster(o) {
        format!(
            "{} {}{} in the cluster",
            o.kind.value,
            o.namespace().map(|n| format!("{n}/")).unwrap_or_default(),
            o.name().unwrap_or("<unnamed>")
        )
    } else {
        o.describe()
    }
}

fn at(o: &Object, line: u32) -> Location {
    if in_cluster(o) {
        return crate::cluster::location(o, None);
    }
    Location::Gitops {
        path: o.path.clone(),
        line: Some(line),
        object: Some(object_ref(o)),
    }
}

/// Every HelmRelease of the tree, with its source resolved.
pub(crate) fn releases(tree: &Tree) -> Vec<Release<'_>> {
    let mut out: Vec<Release<'_>> = tree
        .of_kind("HelmRelease")
        .filter(|o| o.group() == "helm.toolkit.fluxcd.io")
        .map(|hr| resolve(tree, hr))
        .collect();
    out.sort_by(|a, b| (&a.hr.path, a.hr.line).cmp(&(&b.hr.path, b.hr.line)));
    out
}

pub(crate) fn resolve<'t>(tree: &'t dyn Objects, hr: &'t Object) -> Release<'t> {
    let mut findings = Vec::new();
    let namespace = match hr.namespace() {
        Some(ns) => ns.to_string(),
        None => {
            findings.push(finding(
                Severity::Info,
                "namespace-unknown",
                format!(
                    "{} sets no namespace and none is inherited from a kustomization; assuming `default`",
                    describe(hr)
                ),
                Some(at(hr, hr.line)),
            ));
            "default".to_string()
        }
    };
    let mut r = Release {
        hr,
        name: hr.name().unwrap_or_default().to_string(),
        namespace,
        source_type: None,
        source_url: None,
        chart: None,
        upstream: Upstream::None,
        constraint: None,
        observed: at(hr, hr.line),
        findings,
    };
    let Spec::HelmRelease(spec) = &hr.spec else {
        r.add(
            Severity::Warning,
            "no-chart",
            "the HelmRelease has no spec".into(),
            hr.line,
        );
        return r;
    };
    match (&spec.chart, &spec.chart_ref) {
        (Some(chart), _) => {
            r.chart = chart.chart.as_ref().map(|c| c.value.clone());
            r.constraint = chart.version.as_ref();
            if let Some(v) = &chart.version {
                r.observed = at(hr, v.line);
            }
            match &chart.source_ref {
                Some(sref) => resolve_chart_source(tree, &mut r, hr, sref),
                None => r.add(
                    Severity::Warning,
                    "unresolved-source",
                    "spec.chart.spec has no sourceRef".into(),
                    hr.line,
                ),
            }
        }
        (None, Some(cref)) => resolve_chart_ref(tree, &mut r, hr, cref),
        (None, None) => r.add(
            Severity::Warning,
            "no-chart",
            "the HelmRelease has neither spec.chart nor spec.chartRef".into(),
            hr.line,
        ),
    }
    if r.chart.as_ref().is_some_and(|c| c.contains("${")) {
        r.add(
            Severity::Warning,
            "substitution",
            "the chart name uses a Flux substitution; only the cluster can resolve it".into(),
            hr.line,
        );
        r.upstream = Upstream::None;
    }
    r
}

impl Release<'_> {
    fn add(&mut self, severity: Severity, code: &str, message: String, line: u32) {
        let loc = at(self.hr, line);
        self.findings
            .push(finding(severity, code, message, Some(loc)));
    }
}

/// The object a reference points at, searched within the referrer's
/// cluster; `None` with a finding when it is not in the checkout.
fn lookup<'t>(
    tree: &'t dyn Objects,
    r: &mut Release<'t>,
    from: &'t Object,
    sref: &SourceRef,
    default_kind: &str,
) -> Option<&'t Object> {
    let kind = sref
        .kind
        .as_ref()
        .map_or(default_kind, |k| k.value.as_str());
    let Some(name) = sref.name.as_ref() else {
        r.add(
            Severity::Warning,
            "unresolved-source",
            format!("{kind} reference without a name"),
            sref.line,
        );
        return None;
    };
    let namespace = sref
        .namespace
        .as_ref()
        .map(|n| n.value.clone())
        .or_else(|| from.namespace().map(str::to_string))
        .unwrap_or_else(|| r.namespace.clone());
    if name.has_substitution() || namespace.contains("${") {
        r.add(
            Severity::Warning,
            "substitution",
            format!(
                "the {kind} reference {namespace}/{} uses a Flux substitution; only the cluster can resolve it",
                name.value
            ),
            sref.line,
        );
        return None;
    }
    let found = tree.find(
        from,
        Some(SOURCE_GROUP),
        kind,
        Some(&namespace),
        &name.value,
    );
    if found.is_none() {
        r.add(
            Severity::Warning,
            "unresolved-source",
            format!(
                "{kind} {namespace}/{} is not in the {}",
                name.value,
                if in_cluster(from) {
                    "cluster"
                } else {
                    "checkout"
                }
            ),
            sref.line,
        );
    }
    found
}

fn resolve_chart_source<'t>(
    tree: &'t dyn Objects,
    r: &mut Release<'t>,
    from: &'t Object,
    sref: &SourceRef,
) {
    let Some(source) = lookup(tree, r, from, sref, "HelmRepository") else {
        return;
    };
    let chart = r.chart.clone().unwrap_or_default();
    match &source.spec {
        Spec::HelmRepository(repo) => {
            let Some(url) = repo.url.as_ref() else {
                r.add(
                    Severity::Warning,
                    "unresolved-source",
                    format!("{} has no spec.url", describe(source)),
                    source.line,
                );
                return;
            };
            let is_oci = repo.repo_type.as_ref().is_some_and(|t| t.value == "oci")
                || url.value.starts_with("oci://");
            r.source_url = Some(url.value.clone());
            if url.has_substitution() {
                r.source_type = Some(if is_oci {
                    SourceType::HelmOci
                } else {
                    SourceType::HelmHttp
                });
                r.add(
                    Severity::Warning,
                    "substitution",
                    format!(
                        "the URL of {} uses a Flux substitution; only the cluster can resolve it",
                        describe(source)
                    ),
                    url.line,
                );
                return;
            }
            if is_oci {
                r.source_type = Some(SourceType::HelmOci);
                r.upstream = Upstream::OciTags {
                    url: format!("{}/{chart}", url.value.trim_end_matches('/')),
                };
            } else {
                r.source_type = Some(SourceType::HelmHttp);
                r.upstream = Upstream::Index {
                    repo: url.value.clone(),
                    chart,
                };
            }
        }
        Spec::GitRepository(git) => {
            r.source_type = Some(SourceType::Git);
            r.source_url = git.url.as_ref().map(|u| u.value.clone());
            r.add(
                Severity::Info,
                "not-checkable",
                format!(
                    "the chart comes from {}: a chart in a Git repository has no published versions to compare; its version moves with the Git reference",
                    describe(source)
                ),
                sref.line,
            );
        }
        Spec::Bucket(b) => {
            r.source_type = Some(SourceType::Bucket);
            r.source_url = b.endpoint.as_ref().map(|e| match &b.bucket_name {
                Some(n) => format!("{}/{}", e.value.trim_end_matches('/'), n.value),
                None => e.value.clone(),
            });
            r.add(
                Severity::Info,
                "not-checkable",
                format!(
                    "the chart comes from {}: a chart in a bucket has no published versions to compare",
                    describe(source)
                ),
                sref.line,
            );
        }
        _ => r.add(
            Severity::Warning,
            "unresolved-source",
            format!("{} is not a chart source this tool reads", describe(source)),
            sref.line,
        ),
    }
}

fn resolve_chart_ref<'t>(
    tree: &'t dyn Objects,
    r: &mut Release<'t>,
    from: &'t Object,
    cref: &SourceRef,
) {
    let Some(source) = lookup(tree, r, from, cref, "OCIRepository") else {
        return;
    };
    match &source.spec {
        Spec::OciRepository(oci) => {
            r.source_type = Some(SourceType::OciRepository);
            let Some(url) = oci.url.as_ref() else {
                r.add(
                    Severity::Warning,
                    "unresolved-source",
                    format!("{} has no spec.url", describe(source)),
                    source.line,
                );
                return;
            };
            r.source_url = Some(url.value.clone());
            r.chart = url.value.rsplit('/').next().map(str::to_string);
            let reference = oci.reference.as_ref();
            let semver = reference.and_then(|x| x.semver.as_ref());
            let tag = reference.and_then(|x| x.tag.as_ref());
            let digest = reference.and_then(|x| x.digest.as_ref());
            if let Some(d) = digest {
                r.observed = at(source, d.line);
                r.findings.push(finding(
                    Severity::Info,
                    "not-checkable",
                    format!(
                        "{} is pinned by digest {}; versions are not compared",
                        describe(source),
                        d.value
                    ),
                    Some(at(source, d.line)),
                ));
                return;
            }
            match semver.or(tag) {
                Some(f) => {
                    r.constraint = Some(f);
                    r.observed = at(source, f.line);
                }
                None => {
                    r.findings.push(finding(
                        Severity::Info,
                        "not-checkable",
                        format!(
                            "{} follows the `latest` tag; there is no version to compare",
                            describe(source)
                        ),
                        Some(at(source, source.line)),
                    ));
                    return;
                }
            }
            if url.has_substitution() {
                r.add(
                    Severity::Warning,
                    "substitution",
                    format!("the URL of {} uses a Flux substitution", describe(source)),
                    url.line,
                );
                return;
            }
            r.upstream = Upstream::OciTags {
                url: url.value.clone(),
            };
        }
        Spec::HelmChart(hc) => {
            r.chart = hc.chart.as_ref().map(|c| c.value.clone());
            r.constraint = hc.version.as_ref();
            r.observed = at(source, hc.version.as_ref().map_or(source.line, |v| v.line));
            match &hc.source_ref {
                Some(sref) => resolve_chart_source(tree, r, source, sref),
                None => r.add(
                    Severity::Warning,
                    "unresolved-source",
                    format!("{} has no sourceRef", describe(source)),
                    source.line,
                ),
            }
        }
        _ => r.add(
            Severity::Warning,
            "unresolved-source",
            format!("{} is not a chartRef this tool reads", describe(source)),
            cref.line,
        ),
    }
}
