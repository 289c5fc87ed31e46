//! A component's releases, filtered and ordered, and what their notes say.

use upkeep_contract::{Breaking, Candidate, Finding, Requires, SafeText, Security, Severity};
use upkeep_notes as notes;
use upkeep_upstream::Release;
use upkeep_version::{MinorVersion, UpdateType, Version};

/// The start every GitHub-released component (Flux, Longhorn) shares: its
/// document, its releases (an unreachable upstream recorded in `errors`,
/// not returned), and the cluster's Kubernetes version.
pub(crate) struct GithubStart {
    pub doc: upkeep_contract::ComponentUpdates,
    pub set: ReleaseSet,
    pub failed: bool,
    pub kubernetes: Option<Version>,
}

pub(crate) async fn github_start(
    upstream: &upkeep_upstream::Upstream,
    inputs: &crate::Inputs,
    opts: &crate::Options,
    component: (upkeep_contract::ComponentKind, &str, &str),
    repo: upkeep_upstream::GithubRepo,
    display: &str,
) -> Result<GithubStart, crate::PlatformError> {
    use upkeep_contract::{Component, ComponentUpdates, Source, SourceType, Timestamp};
    if opts.target == crate::Target::Stable {
        return Err(crate::PlatformError::Input {
            what: "--target".to_string(),
            message: format!("{display} has no stable channel; use latest, vX.Y or a version"),
        });
    }
    let (kind, name, namespace) = component;
    let mut doc = ComponentUpdates::new(
        Component {
            kind,
            name: name.to_string(),
            namespace: Some(namespace.to_string()),
            source: Some(Source {
                source_type: SourceType::GithubReleases,
                url: upstream.releases_url(repo),
                chart: None,
            }),
        },
        Timestamp::now(),
    );
    let mut failed = false;
    let github = match upstream.github_releases(repo).await {
        Ok(r) => r,
        Err(e) => {
            failed = true;
            doc.errors
                .push(crate::upstream_error(upstream.releases_url(repo), &e));
            Vec::new()
        }
    };
    let set = ReleaseSet::new(github, opts.include_prereleases, &opts.known_bad);
    doc.latest = set.newest().map(|r| r.version.clone());
    let kubernetes = opts.kubernetes_version.clone().or_else(|| {
        inputs
            .cluster
            .as_ref()
            .and_then(crate::cluster::kubernetes_version)
    });
    Ok(GithubStart {
        doc,
        set,
        failed,
        kubernetes,
    })
}

/// Releases oldest first; pre-releases only when asked for; known-bad
/// releases never, but remembered with the reason so the document can say
/// why a newer version is not offered.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReleaseSet {
    releases: Vec<Release>,
    excluded: Vec<(Version, SafeText)>,
}

impl ReleaseSet {
    /// `known_bad` are the versions the operator listed (`--known-bad`,
    /// `releases.knownBad` in upkeep.yaml); releases whose notes say they
    /// were withdrawn are known-bad too. Known-bad releases stay out even
    /// with `--include-prereleases`: asking for previews is not asking for
    /// a release its own authors pulled.
    pub fn new(releases: Vec<Release>, include_prereleases: bool, known_bad: &[Version]) -> Self {
        let mut excluded = Vec::new();
        let mut releases: Vec<Release> = releases
            .into_iter()
            .filter(|r| include_prereleases || !(r.prerelease || r.version.is_prerelease()))
            .filter(|r| {
                let reason = if known_bad.contains(&r.version) {
                    Some(SafeText::new("listed as known-bad in the configuration"))
                } else {
                    notes::withdrawn(&r.body)
                };
                match reason {
                    Some(why) => {
                        excluded.push((r.version.clone(), why));
                        false
                    }
                    None => true,
                }
            })
            .collect();
        releases.sort_by(|a, b| a.version.cmp(&b.version));
        // Two tags for one version (v1.2.3 and 1.2.3): keep the first.
        releases.dedup_by(|a, b| a.version == b.version);
        excluded.sort_by(|a, b| a.0.cmp(&b.0));
        excluded.dedup_by(|a, b| a.0 == b.0);
        ReleaseSet { releases, excluded }
    }

    /// One info finding per known-bad release newer than `current`: the
    /// operator sees that it exists and why it is skipped.
    pub fn known_bad_findings(&self, current: &Version) -> Vec<Finding> {
        self.excluded
            .iter()
            .filter(|(v, _)| v > current)
            .map(|(v, why)| Finding {
                severity: Severity::Info,
                code: "known-bad-release".to_string(),
                message: SafeText::new(&format!("{v} is not offered: {why}")),
                locations: Vec::new(),
            })
            .collect()
    }

    pub fn all(&self) -> &[Release] {
        &self.releases
    }

    pub fn newest(&self) -> Option<&Release> {
        self.releases.last()
    }

    pub fn get(&self, v: &Version) -> Option<&Release> {
        self.releases.iter().find(|r| &r.version == v)
    }

    pub fn latest_in(&self, line: MinorVersion) -> Option<&Release> {
        self.releases
            .iter()
            .rev()
            .find(|r| r.version.minor_line() == line)
    }

    /// The lowest minor line above `line` that has a release.
    pub fn next_line_after(&self, line: MinorVersion) -> Option<MinorVersion> {
        self.releases
            .iter()
            .map(|r| r.version.minor_line())
            .find(|l| *l > line)
    }

    /// Releases in `(from, to]`, oldest first.
    pub fn between<'a>(
        &'a self,
        from: &'a Version,
        to: &'a Version,
    ) -> impl Iterator<Item = &'a Release> {
        self.releases
            .iter()
            .filter(move |r| &r.version > from && &r.version <= to)
    }

    /// The first release (oldest) of a minor line: the one that carries the
    /// line's upgrade notes (`.0`).
    pub fn first_in(&self, line: MinorVersion) -> Option<&Release> {
        self.releases
            .iter()
            .find(|r| r.version.minor_line() == line)
    }
}

/// Security over several releases: every id, and the first summary.
pub(crate) fn security_of<'a>(releases: impl Iterator<Item = &'a Release>) -> Option<Security> {
    let mut out: Option<Security> = None;
    for r in releases {
        let Some(s) = notes::security(&r.body) else {
            continue;
        };
        let acc = out.get_or_insert_with(Security::default);
        for id in s.ids {
            if !acc.ids.contains(&id) {
                acc.ids.push(id);
            }
        }
        if acc.summary.is_none() {
            acc.summary = s
                .summary
                .map(|t| SafeText::new(&format!("{}: {t}", r.version)));
        }
    }
    out
}

/// Breaking reasons over several releases, each prefixed with its release.
pub(crate) fn breaking_of<'a>(releases: impl Iterator<Item = &'a Release>) -> Option<Breaking> {
    let reasons: Vec<SafeText> = releases
        .filter_map(|r| notes::breaking(&r.body).map(|b| (r, b)))
        .flat_map(|(r, b)| {
            b.reasons
                .into_iter()
                .map(move |t| SafeText::new(&format!("{}: {t}", r.version)))
        })
        .take(notes::MAX_REASONS)
        .collect();
    (!reasons.is_empty()).then_some(Breaking { reasons })
}

/// Candidates newer than `current`, newest first. `allowed` marks those at
/// or below `allowed_up_to` (the target of the path).
pub(crate) fn candidates(
    set: &ReleaseSet,
    current: &Version,
    allowed_up_to: Option<&Version>,
    requires: &dyn Fn(&Release) -> Option<Requires>,
) -> Vec<Candidate> {
    set.all()
        .iter()
        .rev()
        .filter_map(|r| {
            let update = UpdateType::between(current, &r.version)?;
            Some(Candidate {
                version: r.version.clone(),
                published: r.published,
                prerelease: r.prerelease || r.version.is_prerelease(),
                update,
                allowed: allowed_up_to.is_some_and(|t| &r.version <= t),
                app_version: None,
                security: notes::security(&r.body),
                breaking: notes::breaking(&r.body),
                requires: requires(r),
                notes_url: r.html_url.clone(),
                notes: notes::excerpt(&r.body),
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) fn release(tag: &str, body: &str) -> Release {
    Release {
        tag: tag.to_string(),
        version: Version::parse(tag).unwrap(),
        prerelease: Version::parse(tag).unwrap().is_prerelease(),
        published: None,
        body: body.to_string(),
        html_url: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withdrawn_releases_leave_the_set_with_their_reason() {
        let set = ReleaseSet::new(
            vec![
                release("v1.2.0", ""),
                release(
                    "v1.2.1",
                    "**This release has been withdrawn**: it corrupts volumes.",
                ),
                release("v1.2.2", "Fixes the corruption."),
                release("v1.2.3", ""),
            ],
            false,
            &[Version::parse("v1.2.3").unwrap()],
        );
        let tags: Vec<&str> = set.all().iter().map(|r| r.tag.as_str()).collect();
        assert_eq!(tags, ["v1.2.0", "v1.2.2"]);
        let f = set.known_bad_findings(&Version::parse("v1.2.0").unwrap());
        assert_eq!(f.len(), 2);
        assert!(
            f[0].message.as_str().contains("withdrawn"),
            "{}",
            f[0].message
        );
        assert!(
            f[1].message.as_str().contains("known-bad"),
            "{}",
            f[1].message
        );
        assert_eq!(
            set.known_bad_findings(&Version::parse("v1.2.2").unwrap())
                .len(),
            1
        );
    }
}
