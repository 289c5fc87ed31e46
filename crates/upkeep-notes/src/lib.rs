//! Release-note reading shared by the platform detectors (k3s, Flux, Longhorn).
//!
//! Release notes are Markdown written by people; this crate reads what an
//! operator needs before an upgrade out of them: security fixes (CVE and GHSA
//! ids, "security" sections), breaking changes (headings and phrases such as
//! "breaking", "action required", "removed", "deprecated", "urgent upgrade
//! notes"), the k3s "Embedded Component Versions" table, the Kubernetes
//! versions a Flux release supports, the CRD API versions it removes, the
//! minimum Kubernetes version a Longhorn release needs, and a short excerpt.
//! Every piece of text handed out is a [`SafeText`]: sanitised (no terminal
//! escapes) and bounded in length.
//!
//! Changelog lists ("Changes since ...", "Resolved Issues", "Bug",
//! "Components changelog") are not read for breaking phrases: their entries
//! are one-line PR titles where "Remove deprecated use of wait functions"
//! says nothing about the user's upgrade.

mod markdown;

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;
use upkeep_contract::{Breaking, BundledChange, EXCERPT_MAX_CHARS, SafeText, Security};
use upkeep_version::{MinorVersion, Version};

use markdown::{Section, first_paragraph, plain, sections, table_rows};

/// Longest reason or summary kept, in characters.
pub const REASON_MAX_CHARS: usize = 300;
/// Most breaking reasons kept from one release's notes.
pub const MAX_REASONS: usize = 8;

static CVE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\bCVE-\d{4}-\d{4,7}\b").expect("static regex"));
static GHSA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bGHSA(?:-[23456789cfghjmpqrvwx]{4}){3}\b").expect("static regex")
});
static SECURITY_HEADING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(security|vulnerabilit(y|ies)|cves?)\b").expect("static regex")
});
static SECURITY_PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(address(es|ing)?|fix(es|ed|ing)?|remediat\w*|patch(es|ed|ing)?|resolv(es|ed|ing))\b[^.]{0,80}\b(CVEs?|vulnerabilit(y|ies)|security (issue|fix|advisor)\w*)\b",
    )
    .expect("static regex")
});
static BREAKING_HEADING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(breaking|action required|urgent upgrade|upgrade (notice|warning)|removals?|removed|deprecat\w*)\b",
    )
    .expect("static regex")
});
static BREAKING_PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(breaking changes?|action required|urgent upgrade notes?|removed|removes|deprecated|deprecates|deprecation)\b",
    )
    .expect("static regex")
});
/// Sections that are lists of changelog entries, not prose for the operator.
static CHANGELOG_HEADING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(changes since\b.*|resolved issues.*|.*changelog|bugs?( fixes)?|improvements?|stability|features?|new features?|misc(ellaneous)?|contributors?|helpful links|embedded component versions|what's changed|full changelog.*|dependencies|documentation|chores?)$",
    )
    .expect("static regex")
});
static API_VERSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?\.[a-z]{2,}/v\d+((alpha|beta)\d+)?$")
        .expect("static regex")
});
static MIN_KUBERNETES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\bkubernetes\s+(?:version\s+)?v?(\d+\.\d+(?:\.\d+)?)\s+or\s+(?:later|newer|higher|above)\b|\bkubernetes\s*(?:>=|≥)\s*v?(\d+\.\d+(?:\.\d+)?)",
    )
    .expect("static regex")
});

/// CVE and GHSA ids named in the notes, in order of first mention, without
/// duplicates (CVE upper-case, GHSA as `GHSA-xxxx-xxxx-xxxx`).
pub fn security_ids(text: &str) -> Vec<String> {
    let mut found: Vec<(usize, String)> = CVE
        .find_iter(text)
        .map(|m| (m.start(), m.as_str().to_ascii_uppercase()))
        .chain(GHSA.find_iter(text).map(|m| {
            // By characters: case-insensitive matching lets "ſ" (two bytes)
            // stand for "s", so a byte offset could split a character.
            let rest: String = m.as_str().chars().skip(4).collect();
            (m.start(), format!("GHSA{}", rest.to_ascii_lowercase()))
        }))
        .collect();
    found.sort_by_key(|(pos, _)| *pos);
    let mut seen = BTreeSet::new();
    found
        .into_iter()
        .filter_map(|(_, id)| seen.insert(id.clone()).then_some(id))
        .collect()
}

/// What the notes say about security: the ids they name, and a one-line
/// summary (the security section's first paragraph, or the first line that
/// names an id or says it fixes CVEs). `None` when they say nothing.
pub fn security(text: &str) -> Option<Security> {
    let ids = security_ids(text);
    let secs = sections(text);
    let from_heading = secs
        .iter()
        .find(|s| SECURITY_HEADING.is_match(&s.heading))
        .map(|s| {
            let para = first_paragraph(&s.lines);
            if para.is_empty() {
                s.heading.clone()
            } else {
                format!("{}: {para}", s.heading)
            }
        });
    let from_line = || {
        secs.iter()
            .flat_map(|s| s.lines.iter())
            .find(|l| CVE.is_match(l) || GHSA.is_match(l) || SECURITY_PHRASE.is_match(l))
            .map(|l| plain(l))
    };
    let summary = from_heading.or_else(from_line);
    if ids.is_empty() && summary.is_none() {
        return None;
    }
    Some(Security {
        ids,
        summary: summary
            .filter(|s| !s.is_empty())
            .map(|s| SafeText::excerpt(&s, REASON_MAX_CHARS)),
    })
}

/// Breaking changes the notes announce: each section whose heading says so
/// (with its first paragraph), and each prose line outside changelog lists
/// that uses a breaking phrase. `None` when there is none.
pub fn breaking(text: &str) -> Option<Breaking> {
    let mut reasons: Vec<String> = Vec::new();
    // A heading with nothing under it ("## Breaking changes" directly
    // followed by "> **Breaking change**") says less than what follows it;
    // it is kept only when nothing else is found.
    let mut bare_headings: Vec<String> = Vec::new();
    for section in sections(text) {
        if BREAKING_HEADING.is_match(&section.heading) {
            let para = first_paragraph(&section.lines);
            if para.is_empty() {
                bare_headings.push(section.heading.clone());
            } else {
                reasons.push(format!("{}: {para}", section.heading));
            }
            continue;
        }
        if is_changelog(&section) {
            continue;
        }
        for line in phrase_lines(&section) {
            reasons.push(line);
        }
    }
    if reasons.is_empty() {
        reasons = bare_headings;
    }
    let mut seen = BTreeSet::new();
    let reasons: Vec<SafeText> = reasons
        .into_iter()
        .map(|r| SafeText::excerpt(&r, REASON_MAX_CHARS))
        .filter(|r| seen.insert(r.as_str().to_string()))
        .take(MAX_REASONS)
        .collect();
    (!reasons.is_empty()).then_some(Breaking { reasons })
}

fn is_changelog(section: &Section<'_>) -> bool {
    CHANGELOG_HEADING.is_match(section.heading.trim())
}

/// Prose lines with a breaking phrase; code blocks and tables are skipped.
/// A line that introduces a list ("the following APIs ... have been
/// removed:") takes the list's items along, since they are the substance.
fn phrase_lines(section: &Section<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_fence = false;
    let lines = &section.lines;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start_matches(['>', ' ']);
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || t.starts_with('|') || is_item(line) {
            continue;
        }
        let p = plain(line);
        if !BREAKING_PHRASE.is_match(&p) {
            continue;
        }
        if p.ends_with(':') {
            let items: Vec<String> = lines[i + 1..]
                .iter()
                .skip_while(|l| l.trim().is_empty())
                .take_while(|l| is_item(l))
                .map(|l| plain(l))
                .collect();
            if !items.is_empty() {
                out.push(format!("{p} {}", items.join(", ")));
                continue;
            }
        }
        out.push(p);
    }
    out
}

fn is_item(line: &str) -> bool {
    let t = line.trim_start_matches(['>', ' ']);
    t.starts_with("- ") || t.starts_with("* ") || t.starts_with("+ ")
}

/// One row of k3s's "Embedded Component Versions" table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentVersion {
    pub name: String,
    pub version: String,
}

/// The `| Component | Version |` table of k3s notes, in table order. Empty
/// when the notes carry no such table.
pub fn embedded_components(text: &str) -> Vec<ComponentVersion> {
    for section in sections(text) {
        let rows = table_rows(&section.lines);
        let Some(header) = rows.first() else {
            continue;
        };
        let is_components = header.len() >= 2
            && header[0].eq_ignore_ascii_case("component")
            && header[1].eq_ignore_ascii_case("version");
        if !is_components {
            continue;
        }
        return rows[1..]
            .iter()
            .filter(|r| r.len() >= 2 && !r[0].is_empty() && !r[1].is_empty())
            .map(|r| ComponentVersion {
                name: r[0].clone(),
                version: r[1].clone(),
            })
            .collect();
    }
    Vec::new()
}

/// The components a Flux release lists under its "Components changelog"
/// heading (`- source-controller [v1.5.0](https://...)`), in list order.
/// Flux lists every controller in a minor's first release and, in some
/// patch releases, only those that changed. Empty when there is no such list.
pub fn changelog_components(text: &str) -> Vec<ComponentVersion> {
    let mut out: Vec<ComponentVersion> = Vec::new();
    for section in sections(text) {
        if !section.heading.to_ascii_lowercase().contains("components") {
            continue;
        }
        for line in &section.lines {
            let t = line.trim();
            if !(t.starts_with("- ") || t.starts_with("* ")) {
                continue;
            }
            let p = plain(t);
            let mut words = p.split_whitespace();
            let (Some(name), Some(version)) = (words.next(), words.next()) else {
                continue;
            };
            let looks_right = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && Version::parse(version).is_ok();
            if looks_right && !out.iter().any(|c| c.name == name) {
                out.push(ComponentVersion {
                    name: name.to_string(),
                    version: version.to_string(),
                });
            }
        }
    }
    out
}

static WITHDRAWN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(do not use this (release|version)|this (release|version) (has been|was|is) (withdrawn|pulled|retracted|yanked|recalled)|(withdrawn|retracted|yanked) release)\b",
    )
    .expect("static regex")
});

/// Why upstream says not to use a release, when its notes say so near the
/// top ("This release has been withdrawn", "Do not use this release"):
/// such a release is known-bad and never offered. Only the first lines are
/// read, so a changelog entry about some other withdrawn thing is not taken
/// for the release itself.
pub fn withdrawn(text: &str) -> Option<SafeText> {
    text.lines()
        .map(plain)
        .filter(|l| !l.is_empty())
        .take(6)
        .find(|l| WITHDRAWN.is_match(l))
        .map(|l| SafeText::excerpt(&l, REASON_MAX_CHARS))
}

/// What changes between two embedded component tables: every component whose
/// version differs or that is new, in the order of the `to` table.
/// Kubernetes itself is left out (the hop says that already).
pub fn bundled_changes(from: &[ComponentVersion], to: &[ComponentVersion]) -> Vec<BundledChange> {
    to.iter()
        .filter(|c| !c.name.eq_ignore_ascii_case("kubernetes"))
        .filter_map(|c| {
            let old = from
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(&c.name))
                .map(|f| f.version.clone());
            (old.as_deref() != Some(c.version.as_str())).then(|| BundledChange {
                name: SafeText::excerpt(&c.name, 80).to_string(),
                from: old.map(|o| SafeText::excerpt(&o, 80).to_string()),
                to: SafeText::excerpt(&c.version, 80).to_string(),
            })
        })
        .collect()
}

/// The Kubernetes minor versions a release supports, from a table row whose
/// first cell is "Kubernetes" (Flux's "Kubernetes compatibility" section:
/// `| Kubernetes | 1.30, 1.31, 1.32 |`). Sorted, empty when not stated.
pub fn kubernetes_support(text: &str) -> Vec<MinorVersion> {
    let mut out: Vec<MinorVersion> = sections(text)
        .iter()
        .flat_map(|s| table_rows(&s.lines))
        .filter(|r| r.len() >= 2 && r[0].eq_ignore_ascii_case("kubernetes"))
        .flat_map(|r| {
            r[1].split([',', ' '])
                .filter_map(|v| {
                    let v = v.trim().trim_end_matches(".x");
                    MinorVersion::parse(v).ok()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The API versions (`group/version`) the notes say are removed: the list
/// items that follow a sentence saying APIs were removed, as Flux writes it
/// ("the following APIs have reached end-of-life and have been removed from
/// the CRDs:" then `` - `source.toolkit.fluxcd.io/v1beta2` ``). In order, no
/// duplicates.
pub fn removed_apis(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut listing = false;
    for line in text.lines() {
        let t = line.trim();
        let p = plain(t);
        let is_item = t.starts_with("- ") || t.starts_with("* ");
        if is_item {
            let candidate = p.trim_end_matches([',', '.', ';']).trim();
            if listing && API_VERSION.is_match(candidate) && !out.iter().any(|o| o == candidate) {
                out.push(candidate.to_string());
            }
            continue;
        }
        if p.is_empty() {
            // A blank line between the sentence and its list keeps the list open.
            continue;
        }
        let lower = p.to_ascii_lowercase();
        listing = lower.contains("removed") && lower.contains("api");
    }
    out
}

/// The lowest Kubernetes version the notes require ("ensure that your
/// cluster is running Kubernetes v1.25 or later", "Kubernetes >= 1.28").
/// When several are stated, the highest wins: all of them must hold.
pub fn minimum_kubernetes(text: &str) -> Option<Version> {
    MIN_KUBERNETES
        .captures_iter(text)
        .filter_map(|c| c.get(1).or_else(|| c.get(2)))
        .filter_map(|m| Version::parse(m.as_str()).ok())
        .max()
}

/// A short plain-text excerpt of the notes for people: their prose from the
/// top, headings, tables and code left out, sanitised and bounded to
/// [`EXCERPT_MAX_CHARS`]. `None` for empty notes.
pub fn excerpt(text: &str) -> Option<SafeText> {
    let mut parts = Vec::new();
    let mut len = 0;
    let mut in_fence = false;
    for line in text.lines() {
        let t = line.trim_start_matches(['>', ' ']);
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || t.starts_with('|') || markdown::heading(line).is_some() {
            continue;
        }
        let p = plain(line);
        if p.is_empty() {
            continue;
        }
        len += p.chars().count() + 1;
        parts.push(p);
        if len > EXCERPT_MAX_CHARS {
            break;
        }
    }
    (!parts.is_empty()).then(|| SafeText::excerpt(&parts.join(" "), EXCERPT_MAX_CHARS))
}

#[cfg(test)]
mod tests;
