//! One validator run as a library call, for the orchestrator: the same
//! checks, comparison and causes as the binaries, on a connected cluster.

use upkeep_contract::{AfterStep, ApiVersion, Timestamp, ValidationReport};
use upkeep_kube::Cluster;

use crate::cli::Validator;
use crate::datatest::DataTestOptions;
use crate::flux::FluxOptions;
use crate::{Checks, Objects, Selection, ValidateError};

/// What a validator run looks at and how.
#[derive(Debug, Clone, Default)]
pub struct ProveOptions {
    pub selection: Selection,
    pub flux: FluxOptions,
    /// validate-storage's data test; `None` skips it.
    pub data_test: Option<DataTestOptions>,
    /// validate-net's checks over the network; `None` runs only the
    /// endpoint checks.
    pub net: Option<crate::net::NetOptions>,
    /// validate-apps' HTTP checks.
    pub http: Option<crate::http::HttpChecks>,
}

/// Runs `validator` against `cluster`; with a `baseline`, marks the
/// regressions and explains them (naming `after_step`'s objects).
pub async fn prove(
    cluster: &Cluster,
    validator: Validator,
    opts: &ProveOptions,
    baseline: Option<&ValidationReport>,
    after_step: Option<AfterStep>,
) -> Result<ValidationReport, ValidateError> {
    let started_at = Timestamp::now();
    let kinds = match validator {
        Validator::Flux => crate::flux::KINDS,
        Validator::Apps => crate::apps::KINDS,
        Validator::Storage => crate::storage::KINDS,
        Validator::Net => crate::net::KINDS,
    };
    let objects = Objects::read(cluster, kinds, &opts.selection).await?;
    let mut checks: Checks = match validator {
        Validator::Flux => crate::flux::check(&objects, &opts.flux),
        Validator::Apps => crate::apps::check(&objects, baseline.map(|b| b.started_at.0)),
        Validator::Storage => crate::storage::check(&objects),
        Validator::Net => crate::net::check(&objects),
    };
    if validator == Validator::Storage
        && let Some(dt) = &opts.data_test
        && objects.served("longhorn.io", "Volume")
    {
        crate::datatest::run(cluster, dt, &mut checks).await?;
    }
    if validator == Validator::Apps
        && let Some(http) = &opts.http
    {
        http.run(&mut checks).await;
    }
    if validator == Validator::Net {
        match &opts.net {
            Some(net) => crate::net::run(Some(cluster), &objects, net, &mut checks).await?,
            None => checks.not_run(
                "net/ingress",
                "no ingress address, resolver or probes configured for this run",
            ),
        }
    }
    let mut report = ValidationReport {
        api_version: ApiVersion,
        kind: Default::default(),
        validator: validator.name().to_string(),
        started_at,
        finished_at: Timestamp::now(),
        checks: checks.checks,
        not_run: checks.not_run,
        after_step,
    };
    if let Some(b) = baseline {
        crate::compare(&mut report, b);
        crate::cause::explain(Some(cluster), &mut report).await;
    }
    Ok(report)
}
