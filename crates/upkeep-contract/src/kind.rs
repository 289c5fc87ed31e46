//! The `apiVersion` and `kind` every document carries, as zero-sized types:
//! a document value cannot exist with the wrong ones, and reading refuses
//! them with a message that says what was expected.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The one API version this build reads and writes.
pub const API_VERSION: &str = "upkeep.dev/v1alpha1";

macro_rules! constant_string {
    ($(#[$doc:meta])* $ty:ident, $value:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct $ty;

        impl $ty {
            pub const VALUE: &'static str = $value;
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($value)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <Cow<'de, str>>::deserialize(d)?;
                if s == $value {
                    Ok($ty)
                } else {
                    Err(serde::de::Error::custom(format!(
                        "expected {:?}, found {:?}",
                        $value, s
                    )))
                }
            }
        }

        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(concat!(stringify!($ty), "Constant"))
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "const": $value })
            }
        }
    };
}

constant_string!(
    /// `apiVersion: upkeep.dev/v1alpha1`.
    ApiVersion,
    API_VERSION
);
constant_string!(ComponentUpdates, "ComponentUpdates");
constant_string!(UpdateReport, "UpdateReport");
constant_string!(UpdatePlan, "UpdatePlan");
constant_string!(SnapshotManifest, "SnapshotManifest");
constant_string!(RestoreResult, "RestoreResult");
constant_string!(ValidationReport, "ValidationReport");
constant_string!(ApplyResult, "ApplyResult");
constant_string!(RunRecord, "RunRecord");
constant_string!(ImpactReport, "ImpactReport");

/// Every kind this build knows, in the order the schemas are listed.
pub const KINDS: [&str; 9] = [
    ComponentUpdates::VALUE,
    UpdateReport::VALUE,
    UpdatePlan::VALUE,
    SnapshotManifest::VALUE,
    RestoreResult::VALUE,
    ValidationReport::VALUE,
    ApplyResult::VALUE,
    RunRecord::VALUE,
    ImpactReport::VALUE,
];
