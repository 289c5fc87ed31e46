//! Versions and constraints travel in documents as the strings users wrote,
//! and are validated when a document is read.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Constraint, K3sVersion, MinorVersion, Version};

macro_rules! string_serde {
    ($ty:ty, $name:literal, $desc:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "description": $desc })
            }
        }
    };
}

string_serde!(
    Version,
    "Version",
    "A version as Helm, Flux or k3s write it: optional v, MAJOR[.MINOR[.PATCH]][-PRE][+BUILD]."
);
string_serde!(
    K3sVersion,
    "K3sVersion",
    "A k3s release, like v1.31.4+k3s1."
);
string_serde!(MinorVersion, "MinorVersion", "A minor line, like v1.31.");
string_serde!(
    Constraint,
    "Constraint",
    "A Masterminds/semver constraint as Helm and Flux read it, e.g. >=1.0.0 <2.0.0."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_written() {
        let v: Version = serde_json::from_str("\"v1.2\"").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"v1.2\"");
        let c: Constraint = serde_json::from_str("\">=1.0.0, <2.0.0\"").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\">=1.0.0, <2.0.0\"");
    }

    #[test]
    fn invalid_strings_are_errors_not_panics() {
        let e = serde_json::from_str::<Version>("\"banana\"").unwrap_err();
        assert!(e.to_string().contains("invalid version"), "{e}");
        let e = serde_json::from_str::<Constraint>("\">=\"").unwrap_err();
        assert!(e.to_string().contains("invalid constraint"), "{e}");
        assert!(serde_json::from_str::<Version>("12").is_err());
    }
}
