//! Helm chart repositories for upkeep.
//!
//! [`parse_index`] reads a repository's `index.yaml` straight into the
//! fields upkeep uses ([`ChartVersion`]), keeping only the charts asked for
//! and skipping the rest as it streams past; versions stay the strings
//! written (`1.10` is not the float 1.1) and are also parsed. [`Repositories`]
//! fetches indexes and OCI tag lists through the shared HTTP client, with
//! mirror rewrites, `Link` pagination and the registries' bearer-token
//! challenge, and [`read_chart`] reads a chart archive's values and CRDs.

mod chart;
mod index;
mod repo;

pub use chart::{ChartError, ChartFiles, read_chart};
pub use index::{ChartVersion, Charts, Index, IndexError, parse_index};
pub use repo::{HelmError, Repositories, tag_version};
