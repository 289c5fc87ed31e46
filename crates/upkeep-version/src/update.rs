use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Version;

/// How big a step from one version to another is, read the way SemVer's
/// compatibility rule reads it: below 1.0.0 the leftmost non-zero part is the
/// breaking one, so `0.13 → 0.14` is a major update (Renovate calls it minor).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum UpdateType {
    Patch,
    Minor,
    Major,
}

impl UpdateType {
    /// The update type of going from `from` to `to`, or `None` when `to` is
    /// not newer. A step that only changes the pre-release or the k3s release
    /// counter is a patch.
    pub fn between(from: &Version, to: &Version) -> Option<UpdateType> {
        if to.cmp(from) != Ordering::Greater {
            return None;
        }
        let (a, b) = (from, to);
        Some(if a.major() != b.major() {
            UpdateType::Major
        } else if a.major() == 0 {
            // Below 1.0.0 the leftmost non-zero part is the breaking one.
            let breaking = a.minor() != b.minor() || (a.minor() == 0 && a.patch() != b.patch());
            if breaking {
                UpdateType::Major
            } else {
                UpdateType::Patch
            }
        } else if a.minor() != b.minor() {
            UpdateType::Minor
        } else {
            UpdateType::Patch
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UpdateType::Patch => "patch",
            UpdateType::Minor => "minor",
            UpdateType::Major => "major",
        }
    }
}

impl fmt::Display for UpdateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(a: &str, b: &str) -> Option<UpdateType> {
        UpdateType::between(&Version::parse(a).unwrap(), &Version::parse(b).unwrap())
    }

    #[test]
    fn classifies_like_semver_compatibility() {
        assert_eq!(t("1.2.3", "1.2.4"), Some(UpdateType::Patch));
        assert_eq!(t("1.2.3", "1.3.0"), Some(UpdateType::Minor));
        assert_eq!(t("1.2.3", "2.0.0"), Some(UpdateType::Major));
        assert_eq!(t("0.13.0", "0.14.0"), Some(UpdateType::Major));
        assert_eq!(t("0.13.0", "0.13.2"), Some(UpdateType::Patch));
        assert_eq!(t("0.0.3", "0.0.4"), Some(UpdateType::Major));
        assert_eq!(t("v1.31.4+k3s1", "v1.31.4+k3s2"), Some(UpdateType::Patch));
        assert_eq!(t("1.0.0-rc.1", "1.0.0"), Some(UpdateType::Patch));
        assert_eq!(t("1.2.3", "1.2.3"), None);
        assert_eq!(t("1.2.3", "1.2.2"), None);
        assert_eq!(t("4.12.0+abc", "4.12.0+def"), None);
    }
}
