//! sim-cluster: a local Kubernetes API server good enough for the real `kubectl` and kube-rs.
//!
//! Objects live as JSON in a [`Store`] with a global resourceVersion; the HTTP layer serves
//! discovery (legacy and aggregated `apidiscovery.k8s.io/v2`), CRUD, patch (merge, JSON,
//! strategic, server-side apply with managedFields and conflicts), watch (with bookmarks and
//! `sendInitialEvents`), Table output, the `status` and `scale` subresources, `pods/eviction`
//! (refused with 429 where a PodDisruptionBudget allows no disruption), and a minimal
//! `/openapi/v3` (enough for kubectl's `fieldValidation` check) for the built-in kinds of a
//! k3s homelab and for every CustomResourceDefinition created.
//!
//! A `SIM.yaml` ([`SimConfig`], passed in [`ServeConfig::sim`]) switches on simulated
//! controllers — Flux (local git sources, Kustomizations, HelmReleases from a chart
//! catalogue with rollback remediation), Longhorn (volumes, snapshots, backups, version
//! setting), the k3s system-upgrade-controller, and Jobs/Pods with configured logs — and
//! injects faults (errors, latency, 429, dropped connections), also changeable at run time
//! through `/_admin/faults`. Controllers write through the same [`Store`] methods the API
//! uses, so their writes get resourceVersions, generation rules and watch events like any
//! client's.
//!
//! Fixture objects keep the `managedFields` they are written with (the record of who wrote
//! them at which API version), as loading a cluster's history should.
//!
//! Not simulated: RBAC/admission (everything is allowed), value validation of schemas (types,
//! enums, CEL; unknown fields *are* pruned or refused), CRD conversion webhooks (versions are
//! served as stored, only `apiVersion` changes), protobuf bodies other than the v1
//! ConfigMap/Secret/Namespace/ServiceAccount that `kubectl create <kind>` sends, OpenAPI v2
//! and schemas in OpenAPI v3, `exec`, `proxy`, and controllers other than those above
//! (no Deployment/ReplicaSet/StatefulSet controllers, no scheduler beyond "first node").

mod api;
mod config;
mod controllers;
mod error;
mod faults;
mod fixture;
mod openapi;
mod patch;
mod protobuf;
mod requests;
mod resources;
mod schema;
mod selectors;
mod server;
mod ssa;
mod state;
mod store;
mod table;

pub use config::{
    ChartConfig, ChartVersionConfig, ConfigError, Controllers, FluxConfig, LonghornConfig,
    PodBehaviour, PodResult, SimConfig, SimDuration, UpgradesConfig, WorkloadsConfig,
};
pub use error::ApiError;
pub use faults::{FaultAction, FaultRule, FaultRules, Verb};
pub use fixture::{FixtureError, load_dir};
pub use patch::PatchKind;
pub use resources::{GroupResource, Registry, ResourceInfo};
pub use selectors::{FieldSelector, LabelSelector, SelectorError};
pub use server::{ServeConfig, ServeError, SimCluster};
pub use state::{StateError, write_state};
pub use store::{
    ChangeEvent, DeleteOptions, EventType, ListPage, ListQuery, ObjectKey, Store, WriteOptions,
};
