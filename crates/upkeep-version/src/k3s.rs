use std::fmt;
use std::str::FromStr;

use crate::{MinorVersion, Version, VersionError};

/// A k3s release: `v1.31.4+k3s1`, a Kubernetes version plus k3s's own
/// release counter. Parsing refuses other build metadata, so a chart version
/// cannot be mistaken for a k3s release.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct K3sVersion(Version);

impl K3sVersion {
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let v = Version::parse(input)?;
        if !v.build().is_empty() && v.distro_revision().is_none() {
            return Err(VersionError::new(
                input,
                format!("k3s versions end in +k3sN, not +{}", v.build()),
            ));
        }
        Ok(K3sVersion(v))
    }

    /// The Kubernetes version this release ships (`v1.31.4`).
    pub fn kubernetes(&self) -> Version {
        self.0.without_build()
    }

    /// The minor line, the unit of one upgrade hop.
    pub fn minor_line(&self) -> MinorVersion {
        self.0.minor_line()
    }

    /// k3s's release counter (`+k3s2` → 2; 0 when absent).
    pub fn revision(&self) -> u64 {
        self.0.distro_revision().unwrap_or(0)
    }

    pub fn as_version(&self) -> &Version {
        &self.0
    }

    pub fn is_prerelease(&self) -> bool {
        self.0.is_prerelease()
    }
}

impl fmt::Display for K3sVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for K3sVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        K3sVersion::parse(s)
    }
}

impl From<K3sVersion> for Version {
    fn from(k: K3sVersion) -> Version {
        k.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_k3s_releases() {
        let a = K3sVersion::parse("v1.31.4+k3s1").unwrap();
        let b = K3sVersion::parse("v1.31.4+k3s2").unwrap();
        let c = K3sVersion::parse("v1.32.0+k3s1").unwrap();
        assert!(a < b && b < c);
        assert_eq!(a.kubernetes().as_str(), "v1.31.4");
        assert_eq!(b.revision(), 2);
        assert_eq!(c.minor_line().to_string(), "v1.32");
        assert_eq!(a.to_string(), "v1.31.4+k3s1");
        assert!(
            K3sVersion::parse("v1.31.4-rc1+k3s1")
                .unwrap()
                .is_prerelease()
        );
    }

    #[test]
    fn refuses_foreign_build_metadata() {
        let e = K3sVersion::parse("1.2.3+abcdef").unwrap_err();
        assert!(e.to_string().contains("+k3sN"), "{e}");
    }
}
