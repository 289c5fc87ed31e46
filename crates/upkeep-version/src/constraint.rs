//! Version constraints with the grammar and meaning of Masterminds/semver v3,
//! which is what Helm (`helm install --version`) and Flux (HelmRelease
//! `spec.chart.spec.version`, OCIRepository `ref.semver`) evaluate.
//!
//! This differs from Cargo's `semver::VersionReq` in ways that matter to our
//! users: a bare `1.2.3` is an exact pin (Cargo reads `^1.2.3`), constraints
//! are separated by spaces or commas, `||` joins alternatives, `1.1 - 1.2` is
//! an inclusive range, and `x`/`*` are wildcards in any position.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::version::{Version, check_build, cmp_pre, parse_number, parse_pre, split_parts};
use crate::{ConstraintError, VersionError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `=`, or no operator: exact unless the version has wildcards.
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Tilde,
    Caret,
}

/// One comparison, e.g. `>=1.2` (minor given, patch a wildcard).
#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    /// The version with wildcards filled by zeros, as Masterminds does.
    con: Version,
    /// Some part was a wildcard or missing.
    dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

/// A parsed constraint such as `>=1.0.0 <2.0.0 || 3.x`.
#[derive(Debug, Clone)]
pub struct Constraint {
    original: String,
    /// Alternatives (`||`), each a conjunction of comparators.
    groups: Vec<Vec<Comparator>>,
}

fn is_wild(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

impl Comparator {
    fn parse(whole: &str, token: &str) -> Result<Self, ConstraintError> {
        let ops: [(&str, Op); 12] = [
            ("!=", Op::Ne),
            (">=", Op::Ge),
            ("=>", Op::Ge),
            ("<=", Op::Le),
            ("=<", Op::Le),
            ("~>", Op::Tilde),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Eq),
            ("~", Op::Tilde),
            ("^", Op::Caret),
            ("", Op::Eq),
        ];
        let (op, rest) = ops
            .iter()
            .find_map(|(p, op)| token.strip_prefix(p).map(|r| (*op, r.trim_start())))
            .unwrap_or((Op::Eq, token));
        if rest.is_empty() {
            return Err(ConstraintError::new(
                whole,
                format!("operator {token:?} has no version after it"),
            ));
        }
        let parts = split_parts(rest);
        if parts.numbers.len() > 3 {
            return Err(ConstraintError::new(
                whole,
                format!("{rest:?} has more than three numeric parts"),
            ));
        }
        let mut nums = [0u64; 3];
        let mut wild_at: Option<usize> = None;
        let names = ["major", "minor", "patch"];
        for i in 0..3 {
            match parts.numbers.get(i) {
                None => {
                    wild_at.get_or_insert(i);
                }
                Some(p) if is_wild(p) => {
                    wild_at.get_or_insert(i);
                }
                Some(p) => {
                    let n = parse_number(rest, p, names[i])
                        .map_err(|e| ConstraintError::from_version(whole, e))?;
                    // Masterminds drops the parts after a wildcard (`1.x.3` is `1.x`).
                    if wild_at.is_none() {
                        nums[i] = n;
                    }
                }
            }
        }
        let pre = match parts.pre {
            Some(p) => parse_pre(rest, p).map_err(|e| ConstraintError::from_version(whole, e))?,
            None => Vec::new(),
        };
        if let Some(b) = parts.build {
            check_build(rest, b).map_err(|e| ConstraintError::from_version(whole, e))?;
        }
        // Masterminds marks only the first wildcard position: `*` makes the
        // whole version dirty but leaves minor/patch "clean" at zero.
        let (dirty, minor_dirty, patch_dirty) = match wild_at {
            None => (false, false, false),
            Some(0) => (true, false, false),
            Some(1) => (true, true, false),
            Some(_) => (true, false, true),
        };
        Ok(Comparator {
            op,
            con: Version::from_parts(nums[0], nums[1], nums[2], pre),
            dirty,
            minor_dirty,
            patch_dirty,
        })
    }

    fn check(&self, v: &Version, include_pre: bool) -> bool {
        // A pre-release only satisfies a comparator that itself names a
        // pre-release (Masterminds' rule, issue 21 there), unless asked.
        if v.is_prerelease() && !self.con.is_prerelease() && !include_pre {
            return false;
        }
        let c = &self.con;
        let cmp = v.cmp_precedence(c);
        match self.op {
            Op::Eq => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    cmp == Ordering::Equal
                }
            }
            Op::Ne => {
                if self.dirty {
                    if c.major() != v.major() {
                        return true;
                    }
                    if self.minor_dirty {
                        return false;
                    }
                    if c.minor() != v.minor() {
                        return true;
                    }
                    if self.patch_dirty {
                        return (v.is_prerelease() || c.is_prerelease())
                            && cmp_pre(v.pre(), c.pre()) != Ordering::Equal;
                    }
                    if c.patch() != v.patch() {
                        return true;
                    }
                }
                cmp != Ordering::Equal
            }
            Op::Gt => {
                if !self.dirty {
                    return cmp == Ordering::Greater;
                }
                if v.major() != c.major() {
                    return v.major() > c.major();
                }
                if self.minor_dirty {
                    // `>1` does not include 1.5.0.
                    return false;
                }
                if self.patch_dirty {
                    return v.minor() > c.minor();
                }
                cmp == Ordering::Greater
            }
            Op::Ge => cmp != Ordering::Less,
            Op::Lt => cmp == Ordering::Less,
            Op::Le => {
                if !self.dirty {
                    return cmp != Ordering::Greater;
                }
                if v.major() > c.major() {
                    return false;
                }
                !(v.major() == c.major() && v.minor() > c.minor() && !self.minor_dirty)
            }
            Op::Tilde => self.tilde(v),
            Op::Caret => self.caret(v),
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.con;
        if v.cmp_precedence(c) == Ordering::Less {
            return false;
        }
        // `~0.0.0` (and `*`) accept everything at or above zero.
        if c.major() == 0
            && c.minor() == 0
            && c.patch() == 0
            && !self.minor_dirty
            && !self.patch_dirty
        {
            return true;
        }
        if v.major() != c.major() {
            return false;
        }
        v.minor() == c.minor() || self.minor_dirty
    }

    fn caret(&self, v: &Version) -> bool {
        let c = &self.con;
        if v.cmp_precedence(c) == Ordering::Less {
            return false;
        }
        if c.major() > 0 || self.minor_dirty {
            return v.major() == c.major();
        }
        if v.major() > 0 {
            return false;
        }
        if c.minor() > 0 || self.patch_dirty {
            return v.minor() == c.minor();
        }
        if v.minor() > 0 {
            return false;
        }
        v.patch() == c.patch()
    }
}

/// Splits one `||` alternative into comparator tokens: separators are commas
/// and whitespace, an operator may be followed by spaces (`>= 1.2`), and
/// `A - B` is an inclusive hyphen range.
fn tokens(whole: &str, group: &str) -> Result<Vec<String>, ConstraintError> {
    let raw: Vec<&str> = group
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .collect();
    let is_op_only = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| matches!(c, '<' | '>' | '=' | '!' | '~' | '^'))
    };
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let t = raw[i];
        if t == "-" {
            return Err(ConstraintError::new(
                whole,
                "a hyphen range needs a version on both sides, like `1.1 - 1.2`".to_string(),
            ));
        }
        if is_op_only(t) {
            let next = raw.get(i + 1).ok_or_else(|| {
                ConstraintError::new(whole, format!("operator {t:?} has no version after it"))
            })?;
            out.push(format!("{t}{next}"));
            i += 2;
            continue;
        }
        if raw.get(i + 1) == Some(&"-") {
            let hi = raw.get(i + 2).ok_or_else(|| {
                ConstraintError::new(whole, format!("hyphen range after {t:?} has no upper end"))
            })?;
            if is_op_only(hi) || hi.starts_with(['<', '>', '=', '!', '~', '^']) {
                return Err(ConstraintError::new(
                    whole,
                    format!("hyphen range ends take no operator: {t} - {hi}"),
                ));
            }
            out.push(format!(">={t}"));
            out.push(format!("<={hi}"));
            i += 3;
            continue;
        }
        out.push(t.to_string());
        i += 1;
    }
    Ok(out)
}

impl Constraint {
    /// Parses a constraint. The empty string means "any version", as it does
    /// for a HelmRelease with no `version`.
    pub fn parse(input: &str) -> Result<Self, ConstraintError> {
        // Masterminds' own limits; they also bound the work done on hostile input.
        const MAX_LEN: usize = 512;
        const MAX_GROUPS: usize = 32;
        let trimmed = input.trim();
        if trimmed.len() > MAX_LEN {
            return Err(ConstraintError::new(
                &input[..input.floor_char_boundary(40)],
                format!("longer than {MAX_LEN} bytes"),
            ));
        }
        if trimmed.split("||").count() > MAX_GROUPS {
            return Err(ConstraintError::new(
                input,
                format!("more than {MAX_GROUPS} alternatives"),
            ));
        }
        let mut groups = Vec::new();
        for group in trimmed.split("||") {
            let toks = tokens(input, group)?;
            if toks.is_empty() {
                if trimmed.is_empty() {
                    groups.push(vec![Comparator::parse(input, "*")?]);
                    continue;
                }
                return Err(ConstraintError::new(
                    input,
                    "empty alternative around `||`".to_string(),
                ));
            }
            let comps = toks
                .iter()
                .map(|t| Comparator::parse(input, t))
                .collect::<Result<Vec<_>, _>>()?;
            groups.push(comps);
        }
        Ok(Constraint {
            original: trimmed.to_string(),
            groups,
        })
    }

    /// Does `v` satisfy the constraint? Pre-releases only match a comparator
    /// that names a pre-release, as in Helm and Flux.
    pub fn matches(&self, v: &Version) -> bool {
        self.matches_with(v, false)
    }

    /// Like [`Constraint::matches`], optionally admitting any pre-release.
    pub fn matches_with(&self, v: &Version, include_prerelease: bool) -> bool {
        self.groups.iter().any(|g| {
            // As in Masterminds v3.3: a pre-release named anywhere in an AND
            // group opens the whole group to pre-releases, so that
            // `>=1.0.0-0 <2.0.0` admits 1.5.0-rc.1.
            let pre = include_prerelease || g.iter().any(|c| c.con.is_prerelease());
            g.iter().all(|c| c.check(v, pre))
        })
    }

    /// The pinned version when the constraint is a single exact version
    /// (`4.12.0`, `=4.12.0`, `v4.12.0`); `None` for any range.
    pub fn exact(&self) -> Option<&Version> {
        match self.groups.as_slice() {
            [g] => match g.as_slice() {
                [c] if c.op == Op::Eq && !c.dirty => Some(&c.con),
                _ => None,
            },
            _ => None,
        }
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.original
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl FromStr for Constraint {
    type Err = ConstraintError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Constraint::parse(s)
    }
}

impl PartialEq for Constraint {
    fn eq(&self, other: &Self) -> bool {
        self.original == other.original
    }
}

impl Eq for Constraint {}

impl ConstraintError {
    fn from_version(whole: &str, e: VersionError) -> Self {
        ConstraintError::new(whole, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(c: &str, v: &str) -> bool {
        Constraint::parse(c)
            .unwrap_or_else(|e| panic!("{c}: {e}"))
            .matches(&Version::parse(v).unwrap())
    }

    /// Cases from Masterminds/semver's own constraint tests and Helm's docs.
    #[test]
    fn masterminds_semantics() {
        let cases: &[(&str, &str, bool)] = &[
            // bare version is an exact pin, unlike Cargo
            ("1.2.3", "1.2.3", true),
            ("1.2.3", "1.2.4", false),
            ("=1.2.3", "1.2.3", true),
            ("v1.2.3", "1.2.3", true),
            ("4.12.0", "4.12.0+abc123", true),
            // wildcards
            ("1.x", "1.9.0", true),
            ("1.x", "2.0.0", false),
            ("1.2.x", "1.2.9", true),
            ("1.2.x", "1.3.0", false),
            ("1.2.*", "1.2.1", true),
            ("*", "99.0.0", true),
            ("*", "1.0.0-rc.1", false),
            ("", "3.1.4", true),
            ("1", "1.5.0", true),
            ("1.2", "1.2.7", true),
            ("1.2", "1.3.0", false),
            // tilde
            ("~1.2.3", "1.2.9", true),
            ("~1.2.3", "1.3.0", false),
            ("~1.2.3", "1.2.2", false),
            ("~1", "1.9.0", true),
            ("~1", "2.0.0", false),
            ("~1.x", "1.4.0", true),
            ("~>1.2", "1.2.5", true),
            // caret
            ("^1.2", "1.9.9", true),
            ("^1.2", "2.0.0", false),
            ("^1.2.3", "1.2.2", false),
            ("^0.2.3", "0.2.9", true),
            ("^0.2.3", "0.3.0", false),
            ("^0.0.3", "0.0.3", true),
            ("^0.0.3", "0.0.4", false),
            ("^0.x", "0.9.0", true),
            ("^0.x", "1.0.0", false),
            // ranges: space and comma forms
            (">=1.0.0 <2.0.0", "1.9.9", true),
            (">=1.0.0 <2.0.0", "2.0.0", false),
            (">=1.0.0, <2.0.0", "1.5.0", true),
            (">=1.0.0,<2.0.0", "2.1.0", false),
            (">= 1.0.0, < 2.0.0", "1.0.0", true),
            // greater-than with wildcards
            (">1", "1.5.0", false),
            (">1", "2.0.0", true),
            (">1.2", "1.2.9", false),
            (">1.2", "1.3.0", true),
            (">1.2.3", "1.2.4", true),
            // less-or-equal with wildcards includes the whole line
            ("<=1.2", "1.2.9", true),
            ("<=1.2", "1.3.0", false),
            ("<=1", "1.9.0", true),
            ("<1.2", "1.1.9", true),
            ("<1.2", "1.2.0", false),
            // hyphen ranges are inclusive
            ("1.1 - 1.2", "1.2.5", true),
            ("1.1 - 1.2", "1.3.0", false),
            ("1.1 - 1.2", "1.0.9", false),
            ("1.2.3 - 1.4.5", "1.4.5", true),
            ("1.2.3 - 1.4.5", "1.4.6", false),
            // alternatives
            ("1.1.x || 1.2.x", "1.2.3", true),
            ("1.1.x || 1.2.x", "1.3.0", false),
            ("<1.0.0 || >=2.0.0", "2.5.0", true),
            ("<1.0.0 || >=2.0.0", "1.5.0", false),
            // not equal
            ("!=1.2.3", "1.2.4", true),
            ("!=1.2.3", "1.2.3", false),
            ("!=1.x", "2.0.0", true),
            ("!=1.x", "1.3.0", false),
            // pre-releases only when the constraint names one
            (">=1.0.0", "1.1.0-rc.1", false),
            (">=1.0.0-0", "1.1.0-rc.1", true),
            (">=1.0.0-0 <2.0.0", "1.5.0-rc.1", true),
            ("~1.2.3-rc.1 <1.2.5", "1.2.4-rc.1", true),
            (">=1.0.0-0 <2.0.0 || 3.x", "3.1.0-rc.1", false),
            ("1.x.3", "1.5.0", true),
            ("~1.2.3-beta.1", "1.2.3-beta.2", true),
            ("1.2.3-rc.1", "1.2.3-rc.1", true),
        ];
        let mut failures = Vec::new();
        for (c, v, want) in cases {
            if ok(c, v) != *want {
                failures.push(format!("{c:?} vs {v}: expected {want}"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn include_prerelease_admits_them() {
        let c = Constraint::parse(">=1.0.0 <2.0.0").unwrap();
        let v = Version::parse("1.5.0-rc.1").unwrap();
        assert!(!c.matches(&v));
        assert!(c.matches_with(&v, true));
    }

    #[test]
    fn exact_pins_are_recognised() {
        assert_eq!(
            Constraint::parse("4.12.0")
                .unwrap()
                .exact()
                .map(|v| v.canonical()),
            Some("4.12.0".to_string())
        );
        assert!(Constraint::parse("v4.12.0").unwrap().exact().is_some());
        assert!(Constraint::parse("=4.12.0").unwrap().exact().is_some());
        for range in [
            "4.12",
            "4.x",
            "^4.12.0",
            ">=4.12.0",
            "4.12.0 || 4.13.0",
            "*",
        ] {
            assert!(
                Constraint::parse(range).unwrap().exact().is_none(),
                "{range}"
            );
        }
    }

    #[test]
    fn keeps_text_as_written() {
        // Renovate rewrites these ranges; we must never change them.
        for c in [
            ">=1.0.0 <2.0.0",
            "1.1 - 1.2",
            ">=1.0.0, <2.0.0",
            "1.1.x || 1.2.x",
        ] {
            assert_eq!(Constraint::parse(c).unwrap().to_string(), c);
        }
    }

    #[test]
    fn hostile_lengths_are_refused() {
        assert!(Constraint::parse(&"1".repeat(600)).is_err());
        assert!(Constraint::parse(&vec!["1.0.0"; 40].join(" || ")).is_err());
    }

    #[test]
    fn rejects_malformed_with_reason() {
        for bad in [
            ">=",
            "1.2.3 -",
            "- 1.2",
            "a.b.c",
            ">=1.0.0 ||",
            "1.2.3.4",
            "1.2 - >=1.4",
            ">=1.0.0-",
        ] {
            let e = Constraint::parse(bad).unwrap_err();
            assert!(
                e.to_string().starts_with("invalid constraint"),
                "{bad}: {e}"
            );
        }
    }
}
