//! A version as Helm, Flux and k3s write them.
//!
//! Masterminds/semver (what Helm and Flux use) is looser than SemVer 2.0: a `v`
//! prefix is allowed and `1.2` means `1.2.0`. We parse the same way, keep the
//! text as written (so a document round-trips it unchanged), and order by
//! SemVer precedence. Build metadata is ignored when ordering, as SemVer says,
//! with one exception that the domain needs: k3s and RKE2 put their own
//! release counter there (`v1.31.4+k3s2` is newer than `+k3s1`).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::VersionError;

/// One pre-release identifier (`rc`, `1`, `alpha` in `1.0.0-rc.1.alpha`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Ident {
    Num(u64),
    Alpha(String),
}

impl Ord for Ident {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Ident::Num(a), Ident::Num(b)) => a.cmp(b),
            // SemVer: numeric identifiers have lower precedence than alphanumeric.
            (Ident::Num(_), Ident::Alpha(_)) => Ordering::Less,
            (Ident::Alpha(_), Ident::Num(_)) => Ordering::Greater,
            (Ident::Alpha(a), Ident::Alpha(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Ident {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A parsed version that remembers how it was written.
#[derive(Debug, Clone)]
pub struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<Ident>,
    build: String,
    original: String,
}

/// The parts of a version string before validation of each part.
pub(crate) struct RawParts<'a> {
    pub numbers: Vec<&'a str>,
    pub pre: Option<&'a str>,
    pub build: Option<&'a str>,
}

/// Splits `v1.2.3-rc.1+meta` into its parts without judging the numbers,
/// so that constraints can reuse it with `x` and `*` wildcards.
pub(crate) fn split_parts(s: &str) -> RawParts<'_> {
    let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
    let (rest, build) = match s.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    // The pre-release starts at the first '-' after the numeric part; numbers
    // never contain '-', so the first '-' is the separator.
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    RawParts {
        numbers: core.split('.').collect(),
        pre,
        build,
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

pub(crate) fn parse_pre(input: &str, pre: &str) -> Result<Vec<Ident>, VersionError> {
    pre.split('.')
        .map(|id| {
            if id.is_empty() || !id.chars().all(is_ident_char) {
                return Err(VersionError::new(
                    input,
                    format!("pre-release identifier {id:?} must be [0-9A-Za-z-]+"),
                ));
            }
            if id.chars().all(|c| c.is_ascii_digit()) {
                id.parse::<u64>().map(Ident::Num).map_err(|_| {
                    VersionError::new(input, format!("pre-release number {id} is too large"))
                })
            } else {
                Ok(Ident::Alpha(id.to_string()))
            }
        })
        .collect()
}

pub(crate) fn check_build(input: &str, build: &str) -> Result<(), VersionError> {
    if build
        .split('.')
        .all(|id| !id.is_empty() && id.chars().all(is_ident_char))
    {
        Ok(())
    } else {
        Err(VersionError::new(
            input,
            format!("build metadata {build:?} must be dot-separated [0-9A-Za-z-]+"),
        ))
    }
}

pub(crate) fn parse_number(input: &str, part: &str, what: &str) -> Result<u64, VersionError> {
    if part.is_empty() || !part.chars().all(|c| c.is_ascii_digit()) {
        return Err(VersionError::new(
            input,
            format!("{what} {part:?} is not a number"),
        ));
    }
    part.parse::<u64>()
        .map_err(|_| VersionError::new(input, format!("{what} {part} is too large")))
}

impl Version {
    /// Parses a version the way Masterminds/semver's `NewVersion` does:
    /// optional `v`, one to three numeric parts, optional pre-release and build.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(VersionError::new(input, "empty version".to_string()));
        }
        let parts = split_parts(s);
        if parts.numbers.len() > 3 {
            return Err(VersionError::new(
                input,
                "more than three numeric parts".to_string(),
            ));
        }
        let names = ["major", "minor", "patch"];
        let mut nums = [0u64; 3];
        for (i, p) in parts.numbers.iter().enumerate() {
            nums[i] = parse_number(input, p, names[i])?;
        }
        let pre = match parts.pre {
            Some(p) => parse_pre(input, p)?,
            None => Vec::new(),
        };
        let build = match parts.build {
            Some(b) => {
                check_build(input, b)?;
                b.to_string()
            }
            None => String::new(),
        };
        Ok(Version {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
            pre,
            build,
            original: s.to_string(),
        })
    }

    /// A version from its numbers, written `MAJOR.MINOR.PATCH`.
    pub fn new(major: u64, minor: u64, patch: u64) -> Self {
        Version {
            major,
            minor,
            patch,
            pre: Vec::new(),
            build: String::new(),
            original: format!("{major}.{minor}.{patch}"),
        }
    }

    pub(crate) fn from_parts(major: u64, minor: u64, patch: u64, pre: Vec<Ident>) -> Self {
        let mut original = format!("{major}.{minor}.{patch}");
        if !pre.is_empty() {
            original.push('-');
            original.push_str(&pre_to_string(&pre));
        }
        Version {
            major,
            minor,
            patch,
            pre,
            build: String::new(),
            original,
        }
    }

    pub fn major(&self) -> u64 {
        self.major
    }
    pub fn minor(&self) -> u64 {
        self.minor
    }
    pub fn patch(&self) -> u64 {
        self.patch
    }

    /// True for `1.2.3-rc.1` and the like.
    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    pub(crate) fn pre(&self) -> &[Ident] {
        &self.pre
    }

    /// Build metadata as written (`k3s1`, a Flux digest), empty when absent.
    pub fn build(&self) -> &str {
        &self.build
    }

    /// The text as it was written, `v` prefix and all.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// `MAJOR.MINOR.PATCH[-PRE]` without prefix or build metadata.
    pub fn canonical(&self) -> String {
        let mut s = format!("{}.{}.{}", self.major, self.minor, self.patch);
        if !self.pre.is_empty() {
            s.push('-');
            s.push_str(&pre_to_string(&self.pre));
        }
        s
    }

    /// The same version without build metadata (Flux's `+<digest>` dropped).
    pub fn without_build(&self) -> Version {
        let mut v = Version::from_parts(self.major, self.minor, self.patch, self.pre.clone());
        if self.original.starts_with(['v', 'V']) {
            v.original = format!("v{}", v.original);
        }
        v
    }

    /// The minor line this version belongs to (`1.31` for `v1.31.4+k3s1`).
    pub fn minor_line(&self) -> MinorVersion {
        MinorVersion {
            major: self.major,
            minor: self.minor,
        }
    }

    /// The distribution's release counter in build metadata: `k3s2` → 2,
    /// `rke2r1` → 1. Other build metadata (Flux digests) carries no order.
    pub fn distro_revision(&self) -> Option<u64> {
        ["k3s", "rke2r"].iter().find_map(|prefix| {
            self.build
                .strip_prefix(prefix)
                .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
                .and_then(|n| n.parse().ok())
        })
    }

    /// Order by SemVer precedence only, ignoring all build metadata.
    pub fn cmp_precedence(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| cmp_pre(&self.pre, &other.pre))
    }
}

fn pre_to_string(pre: &[Ident]) -> String {
    pre.iter()
        .map(|i| match i {
            Ident::Num(n) => n.to_string(),
            Ident::Alpha(a) => a.clone(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

pub(crate) fn cmp_pre(a: &[Ident], b: &[Ident]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ordering::Equal,
        // A release is newer than any of its pre-releases.
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.cmp(b),
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        // A missing k3s counter counts as 0 so that the order stays total
        // (v1.31.4 < v1.31.4+k3s1 < v1.31.4+k3s2); other build metadata
        // (Flux digests) is ignored.
        self.cmp_precedence(other).then_with(|| {
            self.distro_revision()
                .unwrap_or(0)
                .cmp(&other.distro_revision().unwrap_or(0))
        })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must agree with Eq: everything cmp looks at, nothing else.
        (self.major, self.minor, self.patch).hash(state);
        self.pre.hash(state);
        self.distro_revision().unwrap_or(0).hash(state);
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

/// A minor line such as `v1.31`: the unit of a Kubernetes or Longhorn hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MinorVersion {
    pub major: u64,
    pub minor: u64,
}

impl MinorVersion {
    /// Parses `v1.31`, `1.31` (a patch part is refused: that is a version).
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let s = input.trim();
        let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
        let (maj, min) = s.split_once('.').ok_or_else(|| {
            VersionError::new(input, "expected MAJOR.MINOR, like v1.31".to_string())
        })?;
        Ok(MinorVersion {
            major: parse_number(input, maj, "major")?,
            minor: parse_number(input, min, "minor")?,
        })
    }

    /// The next minor line (`1.31` → `1.32`). Saturates at the largest
    /// minor rather than overflowing on absurd input.
    pub fn next(self) -> MinorVersion {
        MinorVersion {
            major: self.major,
            minor: self.minor.saturating_add(1),
        }
    }
}

impl FromStr for MinorVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MinorVersion::parse(s)
    }
}

impl fmt::Display for MinorVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn parses_loose_forms_like_masterminds() {
        assert_eq!(v("v1.2.3").canonical(), "1.2.3");
        assert_eq!(v("1.2").canonical(), "1.2.0");
        assert_eq!(v("1").canonical(), "1.0.0");
        assert_eq!(v("1.2.3-rc.1+build.5").canonical(), "1.2.3-rc.1");
        assert_eq!(v("1.2.3-rc.1+build.5").build(), "build.5");
        assert_eq!(v(" v1.31.4+k3s1 ").as_str(), "v1.31.4+k3s1");
    }

    #[test]
    fn rejects_garbage_with_reason() {
        for bad in [
            "",
            "abc",
            "1.2.3.4",
            "1..2",
            "1.2.x",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-rc..1",
            "99999999999999999999.0.0",
        ] {
            let e = Version::parse(bad).unwrap_err();
            assert!(e.to_string().contains("invalid version"), "{bad}: {e}");
        }
    }

    #[test]
    fn orders_by_semver_precedence() {
        let mut vs: Vec<Version> = [
            "1.0.0",
            "1.0.0-rc.1",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-beta.11",
            "1.0.0-beta.2",
            "0.9.9",
            "1.10.0",
            "1.9.0",
        ]
        .iter()
        .map(|s| v(s))
        .collect();
        vs.sort();
        let got: Vec<_> = vs.iter().map(|v| v.as_str()).collect();
        assert_eq!(
            got,
            [
                "0.9.9",
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-beta.2",
                "1.0.0-beta.11",
                "1.0.0-rc.1",
                "1.0.0",
                "1.9.0",
                "1.10.0"
            ]
        );
    }

    #[test]
    fn k3s_revisions_order_numerically() {
        assert!(v("v1.31.4+k3s2") > v("v1.31.4+k3s1"));
        assert!(v("v1.31.4+k3s10") > v("v1.31.4+k3s9"));
        assert!(v("v1.31.5+k3s1") > v("v1.31.4+k3s10"));
        assert!(v("v1.30.2+rke2r2") > v("v1.30.2+rke2r1"));
    }

    #[test]
    fn order_is_total_over_mixed_builds() {
        let inputs = [
            "v1.31.4+k3s2",
            "v1.31.4",
            "v1.31.4+k3s1",
            "1.31.4+abcdef",
            "v1.31.4+k3s10",
            "v1.31.3+k3s9",
            "v1.31.5",
        ];
        let mut vs: Vec<Version> = inputs.iter().cycle().take(200).map(|s| v(s)).collect();
        vs.sort();
        assert!(vs.windows(2).all(|w| w[0] <= w[1]));
        assert!(v("v1.31.4") < v("v1.31.4+k3s1"));
        assert_eq!(v("v1.31.4"), v("1.31.4+abcdef"));
        use std::collections::HashSet;
        let set: HashSet<Version> = vs.into_iter().collect();
        assert_eq!(set.len(), 6, "{set:?}");
    }

    #[test]
    fn flux_digest_suffix_is_ignored() {
        assert_eq!(v("1.2.3+abcdef01"), v("1.2.3"));
        assert_eq!(v("1.2.3+1"), v("1.2.3+2"));
        assert_eq!(v("v1.2.3"), v("1.2.3"));
    }

    #[test]
    fn without_build_keeps_prefix() {
        assert_eq!(v("v1.31.4+k3s1").without_build().as_str(), "v1.31.4");
        assert_eq!(v("4.12.0+0d3f").without_build().as_str(), "4.12.0");
    }

    #[test]
    fn minor_lines() {
        assert_eq!(v("v1.31.4+k3s1").minor_line().to_string(), "v1.31");
        assert_eq!(
            MinorVersion::parse("1.31").unwrap().next().to_string(),
            "v1.32"
        );
        assert!(MinorVersion::parse("v1.31.2").is_err());
        assert!(MinorVersion::parse("v1").is_err());
    }
}
