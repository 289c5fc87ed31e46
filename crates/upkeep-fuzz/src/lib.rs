//! The parsers upkeep fuzzes, one function per target of `fuzz/` (cargo-fuzz),
//! each feeding arbitrary bytes to a reader of untrusted input and checking
//! the properties it promises beyond "no panic": what parses prints back to
//! something that parses the same, and text from release notes is safe for a
//! terminal. `tests/corpus.rs` runs every corpus and regression input through
//! them in the normal test run, on the stable toolchain.

use upkeep_version::{Constraint, K3sVersion, MinorVersion, Version};

/// One fuzz target: arbitrary bytes in, a panic when a property breaks.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, as their directories under `fuzz/corpus/` are named.
pub const TARGETS: &[(&str, Target)] = &[
    ("document", document),
    ("gitops_manifest", gitops_manifest),
    ("helm_index", helm_index),
    ("constraint", constraint),
    ("version", version),
    ("release_notes", release_notes),
    ("chart_archive", chart_archive),
];

/// The document reader (`read_documents`): JSON lines or one JSON document
/// of any kind; whatever the bytes, an answer and never a panic.
pub fn document(data: &[u8]) {
    let _ = upkeep_contract::read_documents(data, "fuzz");
}

/// The GitOps scanner on one manifest file.
pub fn gitops_manifest(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = upkeep_gitops::read_manifest(text);
    }
}

/// A Helm repository's `index.yaml`.
pub fn helm_index(data: &[u8]) {
    let _ = upkeep_helm::parse_index(data, upkeep_helm::Charts::All);
}

/// Version constraints (Masterminds/semver, as Helm and Flux write them).
pub fn constraint(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Constraint::parse(text) {
        let shown = c.to_string();
        assert!(
            Constraint::parse(&shown).is_ok(),
            "{text:?} parsed, but not as printed: {shown:?}"
        );
    }
}

/// Versions: semver, k3s (`v1.31.4+k3s1`) and minor lines.
pub fn version(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(v) = Version::parse(text) {
        let again = Version::parse(&v.to_string()).expect("a version prints as one");
        assert_eq!(again.cmp(&v), std::cmp::Ordering::Equal, "{text:?}");
    }
    if let Ok(k) = K3sVersion::parse(text) {
        let again = K3sVersion::parse(&k.to_string()).expect("a k3s version prints as one");
        assert_eq!(again.cmp(&k), std::cmp::Ordering::Equal, "{text:?}");
    }
    let _ = MinorVersion::parse(text);
}

/// The release-note reader: every extractor, on any text; what it keeps
/// for people carries no control characters (escape sequences included).
pub fn release_notes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let clean = |s: &str| {
        assert!(
            !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t'),
            "control character kept: {s:?}"
        );
    };
    let _ = upkeep_notes::security_ids(&text);
    if let Some(b) = upkeep_notes::breaking(&text) {
        b.reasons.iter().for_each(|r| clean(r.as_str()));
    }
    if let Some(e) = upkeep_notes::excerpt(&text) {
        clean(e.as_str());
    }
    if let Some(w) = upkeep_notes::withdrawn(&text) {
        clean(w.as_str());
    }
    let _ = upkeep_notes::security(&text);
    let from = upkeep_notes::embedded_components(&text);
    let to = upkeep_notes::changelog_components(&text);
    let _ = upkeep_notes::bundled_changes(&from, &to);
    let _ = upkeep_notes::kubernetes_support(&text);
    let _ = upkeep_notes::removed_apis(&text);
    let _ = upkeep_notes::minimum_kubernetes(&text);
}

/// A chart archive (`.tgz`) as impact analysis reads it.
pub fn chart_archive(data: &[u8]) {
    let _ = upkeep_helm::read_chart(data);
}
