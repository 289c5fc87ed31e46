//! From a constraint and what a repository publishes to the current
//! version, the latest overall, the latest allowed and the candidates.
//!
//! The rules:
//! - the current version is the pin of an exact constraint, or for a range
//!   the version Flux installs: the newest published one the range matches;
//! - deprecated versions are never offered (nor counted as latest);
//! - pre-releases are offered only when the constraint names one, or when
//!   the current version is a pre-release of the same `x.y.z` (npm's rule);
//! - a version whose `kubeVersion` excludes the cluster's Kubernetes is held
//!   back: not a candidate and not the latest allowed, reported in a finding
//!   naming the Kubernetes minor that would admit it (it still counts as the
//!   latest overall, which is what upstream published);
//! - versions equal but for build metadata (Flux's `+<digest>`) are one
//!   version;
//! - an appVersion major change inside a chart patch or minor is breaking.

use std::collections::BTreeMap;

use upkeep_contract::{
    Breaking, Candidate, ComponentUpdates, Current, EXCERPT_MAX_CHARS, Finding, Requires, SafeText,
    Security, Severity, Timestamp,
};
use upkeep_gitops::Field;
use upkeep_version::{Constraint, UpdateType, Version};

/// One published version, from an index entry or an OCI tag.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    pub version: Version,
    pub app_version: Option<String>,
    pub created: Option<Timestamp>,
    pub deprecated: bool,
    pub kube_version: Option<String>,
    pub changes: Option<String>,
    pub security: bool,
}

impl Published {
    pub fn from_index(v: &upkeep_helm::ChartVersion) -> Option<Published> {
        Some(Published {
            version: v.parsed.clone()?,
            app_version: v.app_version.clone(),
            created: v.created.as_deref().and_then(|c| Timestamp::parse(c).ok()),
            deprecated: v.deprecated,
            kube_version: v.kube_version.clone(),
            changes: v.changes.clone(),
            security: v.contains_security_updates,
        })
    }

    pub fn from_tag(tag: &str) -> Option<Published> {
        Some(Published {
            version: upkeep_helm::tag_version(tag)?,
            app_version: None,
            created: None,
            deprecated: false,
            kube_version: None,
            changes: None,
            security: false,
        })
    }
}

fn finding(severity: Severity, code: &str, message: String) -> Finding {
    Finding {
        severity,
        code: code.to_string(),
        message: SafeText::new(&message),
        locations: Vec::new(),
    }
}

/// What the constraint asks for, for comparing with what is installed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Desired {
    /// The constraint, when it parsed.
    pub constraint: Option<Constraint>,
    /// The version Flux installs for it: the pin, or the newest published
    /// version the range matches.
    pub version: Option<Version>,
}

/// Fills `current`, `latest`, `latestAllowed`, `candidates` and findings of
/// `doc` from `constraint` (as written) and `published`. `installed` (read
/// from the cluster) is the current version when known, so candidates are
/// what the cluster can move to; otherwise the current version is the one
/// the constraint selects.
pub(crate) fn analyze(
    doc: &mut ComponentUpdates,
    constraint_field: Option<&Field>,
    published: &[Published],
    kubernetes: Option<&Version>,
    installed: Option<&Version>,
) -> Desired {
    // Whatever else fails, what runs is known.
    if let Some(v) = installed {
        doc.current = Some(Current {
            version: v.clone(),
            constraint: None,
        });
    }
    // No `version` in a HelmRelease means the newest version (`*`).
    let text = constraint_field.map_or("*", |f| f.value.as_str());
    if text.contains("${") {
        doc.findings.push(finding(
            Severity::Warning,
            "substitution",
            format!(
                "the version {text:?} uses a Flux substitution; only the cluster can resolve it"
            ),
        ));
        return Desired::default();
    }
    let constraint = match Constraint::parse(text) {
        Ok(c) => c,
        Err(e) => {
            doc.findings
                .push(finding(Severity::Warning, "invalid-version", e.to_string()));
            return Desired::default();
        }
    };
    // Highest first; among equal precedence (build metadata only), keep the first listed.
    let mut sorted: Vec<&Published> = published.iter().collect();
    sorted.sort_by(|a, b| b.version.cmp(&a.version));
    sorted.dedup_by(|a, b| a.version == b.version);

    let desired = match constraint.exact() {
        Some(pin) => Some(pin.clone()),
        None => sorted
            .iter()
            .find(|p| constraint.matches(&p.version))
            .map(|p| p.version.clone()),
    };
    let current = installed.cloned().or_else(|| desired.clone());
    let result = Desired {
        constraint: Some(constraint.clone()),
        version: desired.clone(),
    };
    if let Some(v) = &current {
        doc.current = Some(Current {
            version: v.clone(),
            constraint: Some(constraint.clone()),
        });
    }
    if desired.is_none() && !sorted.is_empty() {
        doc.findings.push(finding(
            Severity::Warning,
            "no-matching-version",
            format!("no published version matches {text:?}"),
        ));
    }
    if sorted.is_empty() {
        return result;
    }
    let kube_ok = |p: &Published| -> Result<(), Constraint> {
        let (Some(k), Some(req)) = (kubernetes, p.kube_version.as_deref()) else {
            return Ok(());
        };
        match Constraint::parse(req) {
            Ok(c) if !c.matches_with(&k.without_build(), true) => Err(c),
            _ => Ok(()),
        }
    };
    let pre_ok = |v: &Version| {
        !v.is_prerelease()
            || constraint.matches(v)
            || current.as_ref().is_some_and(|c| {
                c.is_prerelease()
                    && (c.major(), c.minor(), c.patch()) == (v.major(), v.minor(), v.patch())
            })
    };
    let current_entry = current
        .as_ref()
        .and_then(|c| sorted.iter().find(|p| &p.version == c).copied());
    if let (Some(c), None) = (&current, current_entry) {
        doc.findings.push(finding(
            Severity::Warning,
            "version-not-published",
            format!("{c} is not published by the repository"),
        ));
    }
    if let Some(entry) = current_entry {
        if entry.deprecated {
            doc.findings.push(finding(
                Severity::Warning,
                "deprecated-version",
                format!("{} is marked deprecated by the repository", entry.version),
            ));
        }
        if let Err(req) = kube_ok(entry) {
            doc.findings.push(finding(
                Severity::Warning,
                "kubernetes-incompatible",
                format!(
                    "{} needs Kubernetes {req}; the cluster runs {}",
                    entry.version,
                    kubernetes.map(Version::to_string).unwrap_or_default()
                ),
            ));
        }
    }

    doc.latest = sorted
        .iter()
        .find(|p| !p.deprecated && pre_ok(&p.version))
        .map(|p| p.version.clone());
    doc.latest_allowed = sorted
        .iter()
        .find(|p| !p.deprecated && constraint.matches(&p.version) && kube_ok(p).is_ok())
        .map(|p| p.version.clone());

    let Some(current) = current.clone() else {
        return result;
    };
    let mut held_back: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut deprecated = Vec::new();
    for p in sorted
        .iter()
        .filter(|p| p.version > current && pre_ok(&p.version))
    {
        if p.deprecated {
            deprecated.push(p.version.to_string());
            continue;
        }
        if let Err(req) = kube_ok(p) {
            held_back
                .entry(req.to_string())
                .or_default()
                .push(p.version.to_string());
            continue;
        }
        let Some(update) = UpdateType::between(&current, &p.version) else {
            continue;
        };
        doc.candidates
            .push(candidate(p, &current, current_entry, update, &constraint));
    }
    if !deprecated.is_empty() {
        doc.findings.push(finding(
            Severity::Info,
            "deprecated-skipped",
            format!(
                "not offered because the repository marks them deprecated: {}",
                deprecated.join(", ")
            ),
        ));
    }
    for (req, versions) in held_back {
        let k = kubernetes.map(Version::to_string).unwrap_or_default();
        let hop = kubernetes
            .and_then(|k| unblocking_minor(k, &req))
            .map(|m| format!("upgrade k3s to {m} first"))
            .unwrap_or_else(|| "no newer Kubernetes minor admits them".to_string());
        doc.findings.push(finding(
            Severity::Warning,
            "held-back-kubernetes",
            format!(
                "{} {} Kubernetes {req} and the cluster runs {k}: held back; {hop}",
                versions.join(", "),
                if versions.len() == 1 { "needs" } else { "need" }
            ),
        ));
    }
    result
}

/// The first Kubernetes minor above `k` that `req` admits, as `v1.N`.
fn unblocking_minor(k: &Version, req: &str) -> Option<String> {
    let c = Constraint::parse(req).ok()?;
    (k.minor() + 1..=k.minor() + 20)
        .find(|m| c.matches_with(&Version::new(k.major(), *m, 0), true))
        .map(|m| format!("v{}.{m}", k.major()))
}

fn candidate(
    p: &Published,
    current: &Version,
    current_entry: Option<&Published>,
    update: UpdateType,
    constraint: &Constraint,
) -> Candidate {
    let mut reasons = Vec::new();
    if update != UpdateType::Major
        && let (Some(from), Some(to)) = (
            current_entry.and_then(|e| e.app_version.as_deref()),
            p.app_version.as_deref(),
        )
        && let (Ok(a), Ok(b)) = (Version::parse(from), Version::parse(to))
        && a.major() != b.major()
    {
        reasons.push(SafeText::new(&format!(
            "appVersion {from} → {to} is a major change inside a chart {update} update ({current} → {})",
            p.version
        )));
    }
    let ids = p.changes.as_deref().map(security_ids).unwrap_or_default();
    let security_kind = p.changes.as_deref().is_some_and(|c| {
        c.lines()
            .any(|l| l.trim_start_matches(['-', ' ']).trim() == "kind: security")
    });
    let security = (p.security || !ids.is_empty() || security_kind).then(|| Security {
        summary: ids.is_empty().then(|| {
            SafeText::new(if p.security {
                "artifacthub.io/containsSecurityUpdates"
            } else {
                "security fix listed in artifacthub.io/changes"
            })
        }),
        ids,
    });
    Candidate {
        version: p.version.clone(),
        published: p.created,
        prerelease: p.version.is_prerelease(),
        update,
        allowed: constraint.matches(&p.version),
        app_version: p.app_version.clone(),
        security,
        breaking: (!reasons.is_empty()).then_some(Breaking { reasons }),
        requires: p
            .kube_version
            .as_deref()
            .and_then(|k| Constraint::parse(k).ok())
            .map(|k| Requires {
                kubernetes: Some(k),
            }),
        notes_url: None,
        notes: p
            .changes
            .as_deref()
            .map(|c| SafeText::excerpt(c, EXCERPT_MAX_CHARS)),
    }
}

/// CVE and GHSA identifiers in `text`, in order, without duplicates.
fn security_ids(text: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let words = text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'));
    for w in words {
        let upper = w.to_ascii_uppercase();
        let ok = if let Some(rest) = upper.strip_prefix("CVE-") {
            let mut parts = rest.split('-');
            matches!((parts.next(), parts.next(), parts.next()),
                (Some(y), Some(n), None) if y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit())
                    && n.len() >= 4 && n.bytes().all(|b| b.is_ascii_digit()))
        } else if let Some(rest) = upper.strip_prefix("GHSA-") {
            let parts: Vec<&str> = rest.split('-').collect();
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| p.len() == 4 && p.bytes().all(|b| b.is_ascii_alphanumeric()))
        } else {
            false
        };
        if ok {
            let id = if upper.starts_with("GHSA-") {
                format!("GHSA-{}", &w[5..].to_ascii_lowercase())
            } else {
                upper
            };
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_contract::{Component, ComponentKind};

    fn pubs(spec: &[(&str, bool, Option<&str>)]) -> Vec<Published> {
        spec.iter()
            .map(|(v, dep, kube)| Published {
                version: Version::parse(v).unwrap(),
                app_version: None,
                created: None,
                deprecated: *dep,
                kube_version: kube.map(str::to_string),
                changes: None,
                security: false,
            })
            .collect()
    }

    fn doc() -> ComponentUpdates {
        ComponentUpdates::new(
            Component {
                kind: ComponentKind::Chart,
                name: "x".into(),
                namespace: None,
                source: None,
            },
            Timestamp::now(),
        )
    }

    fn run(constraint: &str, p: &[Published], kube: Option<&str>) -> ComponentUpdates {
        let mut d = doc();
        let f = Field {
            value: constraint.into(),
            line: 1,
        };
        let k = kube.map(|k| Version::parse(k).unwrap());
        analyze(&mut d, Some(&f), p, k.as_ref(), None);
        d
    }

    fn versions(d: &ComponentUpdates) -> Vec<String> {
        d.candidates.iter().map(|c| c.version.to_string()).collect()
    }

    #[test]
    fn exact_pin_with_deprecated_and_kube_held_back() {
        let p = pubs(&[
            ("1.0.0", false, None),
            ("1.1.0", false, Some(">=1.19.0-0")),
            ("1.2.0", true, None),
            ("2.0.0", false, Some(">=1.30.0-0")),
        ]);
        let d = run("1.0.0", &p, Some("v1.29.4+k3s1"));
        assert_eq!(d.current.as_ref().unwrap().version.to_string(), "1.0.0");
        assert_eq!(versions(&d), vec!["1.1.0"]);
        assert_eq!(d.latest.as_ref().unwrap().to_string(), "2.0.0");
        assert_eq!(d.latest_allowed.as_ref().unwrap().to_string(), "1.0.0");
        let held = d
            .findings
            .iter()
            .find(|f| f.code == "held-back-kubernetes")
            .unwrap();
        assert!(held.message.as_str().contains("2.0.0"));
        assert!(
            held.message.as_str().contains("upgrade k3s to v1.30"),
            "{}",
            held.message
        );
        assert!(d.findings.iter().any(|f| f.code == "deprecated-skipped"));
    }

    #[test]
    fn range_resolves_to_what_flux_installs() {
        let p = pubs(&[
            ("1.0.0", false, None),
            ("1.2.3", false, None),
            ("2.0.0-rc.1", false, None),
            ("2.1.0", false, None),
        ]);
        let d = run(">=1.0.0, <2.0.0", &p, None);
        assert_eq!(d.current.as_ref().unwrap().version.to_string(), "1.2.3");
        assert_eq!(d.latest_allowed.as_ref().unwrap().to_string(), "1.2.3");
        assert_eq!(versions(&d), vec!["2.1.0"]);
        assert_eq!(d.candidates[0].update, UpdateType::Major);
        assert!(!d.candidates[0].allowed);
    }

    #[test]
    fn prerelease_pin_is_offered_same_core_prereleases_and_zero_x_is_major() {
        let p = pubs(&[
            ("2.0.0-rc.1", false, None),
            ("2.0.0-rc.2", false, None),
            ("2.0.0", false, None),
            ("2.1.0-rc.1", false, None),
        ]);
        let d = run("2.0.0-rc.1", &p, None);
        assert_eq!(versions(&d), vec!["2.0.0", "2.0.0-rc.2"]);
        assert_eq!(d.latest.as_ref().unwrap().to_string(), "2.0.0");
        let z = run(
            "0.13.12",
            &pubs(&[("0.13.12", false, None), ("0.14.5", false, None)]),
            None,
        );
        assert_eq!(z.candidates[0].update, UpdateType::Major);
    }

    #[test]
    fn digests_are_not_updates() {
        let p = pubs(&[("1.2.3+abcdef", false, None), ("1.2.3", false, None)]);
        let d = run("1.2.3", &p, None);
        assert!(d.candidates.is_empty());
        assert!(!d.findings.iter().any(|f| f.code == "version-not-published"));
    }

    #[test]
    fn app_major_inside_chart_minor_is_breaking_and_security_is_read() {
        let mut p = pubs(&[("4.11.0", false, None), ("4.12.0", false, None)]);
        p[0].app_version = Some("1.11.2".into());
        p[1].app_version = Some("2.0.0".into());
        p[1].changes = Some(
            "- kind: security\n  description: fix CVE-2025-1974 and GHSA-mgvx-rpfc-9mpv\n".into(),
        );
        let d = run("4.11.0", &p, None);
        let c = &d.candidates[0];
        assert_eq!(c.update, UpdateType::Minor);
        assert!(
            c.breaking.as_ref().unwrap().reasons[0]
                .as_str()
                .contains("appVersion 1.11.2 → 2.0.0")
        );
        assert_eq!(
            c.security.as_ref().unwrap().ids,
            vec!["CVE-2025-1974", "GHSA-mgvx-rpfc-9mpv"]
        );
    }

    #[test]
    fn substitutions_and_garbage_are_findings() {
        let p = pubs(&[("1.0.0", false, None)]);
        let d = run("${CHART_VERSION}", &p, None);
        assert!(d.current.is_none() && d.findings[0].code == "substitution");
        let d = run("not a version!", &p, None);
        assert_eq!(d.findings[0].code, "invalid-version");
        let d = run("~3.0", &p, None);
        assert_eq!(d.findings[0].code, "no-matching-version");
    }
}
