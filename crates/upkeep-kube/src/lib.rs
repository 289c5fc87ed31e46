//! upkeep-kube: the one way upkeep tools talk to a cluster.
//!
//! - Configuration as kubectl finds it ([`load_config`], [`ConnectOptions`]): `--kubeconfig`,
//!   else `KUBECONFIG` (merged), else `~/.kube/config`, else the pod's service account; the
//!   context from `--context` or `current-context`. A bad kubeconfig is a one-line
//!   [`KubeError`] naming the file and the problem.
//! - A read API ([`ClusterRead`]) with two implementations: a live [`Cluster`] (kube-rs,
//!   dynamic objects found by discovery, lists paginated and streamed) and a [`FileSource`]
//!   over `kubectl get -o json|yaml` output, so every tool can run without a cluster.
//! - Writes on the live cluster: server-side apply, create (POST), replace (PUT), merge patch,
//!   status patch, delete, and waits on a condition or field with a deadline ([`Until`]).
//! - Every call has a deadline and every response a size cap (watches, being streams, are
//!   bounded by time instead); every error names the operation and the object, and
//!   [`KubeError::exit_code`] maps it to the project's exit codes (2 bad input, 3 environment).
//!
//! TLS: kube is built with rustls on aws-lc-rs, the provider reqwest uses in upkeep-http,
//! so the process has one rustls crypto provider (two would panic at client construction).
//!
//! Kubernetes version: like every library on k8s-openapi, this crate enables no `v1_*`
//! feature of it (k8s-openapi refuses to build with none or with two). Each binary that
//! depends on this crate adds `k8s-openapi = { version = "0.29", default-features = false,
//! features = ["std", "v1_33"] }`; this crate's tests do the same through a dev-dependency.
//! `v1_33` is the oldest API k8s-openapi 0.29 knows; the types this crate uses
//! (`ObjectMeta`, `/version`, discovery, dynamic objects) are the same in all of them, so the
//! oldest keeps the widest range of clusters honest. All binaries must pick the same one.
//! Consequence: `cargo check -p upkeep-kube` / `cargo doc` on this crate alone (no dev
//! dependencies) stop in k8s-openapi's build script unless `K8S_OPENAPI_ENABLED_VERSION=1.33`
//! is set; `cargo test`/`clippy --all-targets` and any build that includes a binary depending on
//! this crate work as they are.

mod config;
mod error;
mod files;
mod limit;
mod live;
mod logs;
mod read;
mod resource;
mod selector;
mod wait;

pub use config::{
    ConnectOptions, DEFAULT_TIMEOUT, KubeEnv, LoadedConfig, load_config, load_config_in,
};
pub use error::{ErrorClass, KubeError};
pub use files::FileSource;
pub use limit::DEFAULT_MAX_RESPONSE_BYTES;
pub use live::{ApplyOptions, Cluster, Deleted, ServerVersion};
pub use read::{ClusterRead, DEFAULT_PAGE_SIZE, ListOptions, Source, list_values, object_value};
pub use resource::{Resource, ResourceRef};
pub use selector::{FieldSelector, LabelSelector};
pub use wait::{Condition, Until, condition, condition_of};

pub use kube::api::{ApiResource, DynamicObject};
