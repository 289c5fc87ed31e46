//! The `metrics` section: where `upkeep metrics` and every run's end put
//! the Prometheus metrics. Only the shape lives here; upkeep-metrics checks
//! the values (a URL that is not http(s), a textfile not named `*.prom`)
//! when the section is loaded, and names the key.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsSection {
    /// A file in node_exporter's textfile collector directory (`*.prom`),
    /// rewritten atomically after every run and by `upkeep metrics`.
    pub textfile: Option<PathBuf>,
    /// A Prometheus Pushgateway the metrics are pushed to (HTTP PUT, the
    /// job's group replaced each time).
    pub pushgateway: Option<PushgatewaySection>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushgatewaySection {
    /// Base URL, e.g. `http://pushgateway.monitoring:9091`; no credentials in it.
    pub url: String,
    /// The `job` grouping label (default `upkeep`).
    pub job: Option<String>,
    /// The whole push's deadline, connection included (default `10s`).
    pub timeout: Option<String>,
}
