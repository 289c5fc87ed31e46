//! sim-cluster: a local Kubernetes API server good enough for the real `kubectl` and kube-rs.
//!
//! Objects live as JSON in a [`Store`] with a global resourceVersion; the HTTP layer serves
//! discovery (legacy and aggregated `apidiscovery.k8s.io/v2`), CRUD, patch (merge, JSON,
//! strategic, server-side apply with managedFields and conflicts), watch (with bookmarks and
//! `sendInitialEvents`), Table output, the `status` and `scale` subresources, and a minimal
//! `/openapi/v3` (enough for kubectl's `fieldValidation` check) for the built-in kinds of a
//! k3s homelab and for every CustomResourceDefinition created.
//!
//! Not simulated: RBAC/admission (everything is allowed), value validation of schemas (types,
//! enums, CEL; unknown fields *are* pruned or refused), CRD conversion webhooks (versions are
//! served as stored, only `apiVersion` changes), protobuf bodies other than the v1
//! ConfigMap/Secret/Namespace/ServiceAccount that `kubectl create <kind>` sends, OpenAPI v2
//! and schemas in OpenAPI v3, `pods/log`, `exec`, `proxy`, and any controller behaviour.
//!
//! Extension points for what comes next:
//! - simulated controllers subscribe to [`Store::subscribe`] (every committed change, with
//!   the old object) and write back through the same [`Store`] methods the API uses, so
//!   their writes get resourceVersions, generation rules and watch events like any client's;
//! - fault injection is a middleware layer in `server::router`, between auth and the API.

mod api;
mod error;
mod fixture;
mod openapi;
mod patch;
mod protobuf;
mod resources;
mod schema;
mod selectors;
mod server;
mod ssa;
mod state;
mod store;
mod table;

pub use error::ApiError;
pub use fixture::{FixtureError, load_dir};
pub use patch::PatchKind;
pub use resources::{GroupResource, Registry, ResourceInfo};
pub use selectors::{FieldSelector, LabelSelector, SelectorError};
pub use server::{ServeConfig, ServeError, SimCluster};
pub use state::{StateError, write_state};
pub use store::{
    ChangeEvent, DeleteOptions, EventType, ListPage, ListQuery, ObjectKey, Store, WriteOptions,
};
