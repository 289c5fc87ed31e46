//! The flags and the run of `validate-flux` and `validate-apps`, which
//! differ only in the kinds they list and the checks they run.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use upkeep_cli::{CliError, ClusterArgs, ConfigArgs, LogArgs, Outcome, Output};
use upkeep_contract::{
    AfterStep, ApiVersion, ApplyResult, CheckStatus, Timestamp, ValidationReport,
};
use upkeep_kube::{Cluster, ConnectOptions, FileSource};

use crate::flux::FluxOptions;
use crate::{Checks, Objects, Selection, ValidateError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    Flux,
    Apps,
    Storage,
    Net,
}

impl Validator {
    pub fn name(self) -> &'static str {
        match self {
            Validator::Flux => "flux",
            Validator::Apps => "apps",
            Validator::Storage => "storage",
            Validator::Net => "net",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Text,
}

/// The flags every validator takes.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Only these namespaces (repeatable; default: all).
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Only objects with these labels (a label selector, as kubectl -l takes).
    #[arg(long = "selector", short = 'l', value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// An earlier ValidationReport: only checks that passed then and fail now
    /// are regressions, and only regressions make the exit code 1.
    #[arg(long, value_name = "REPORT")]
    pub baseline: Option<PathBuf>,
    /// The ApplyResult of the update step this run follows: the report
    /// records it, and a regression names the objects the step changed.
    #[arg(long, value_name = "APPLY_RESULT")]
    pub after_step: Option<PathBuf>,
    /// Objects from a `kubectl get ... -A -o json` file instead of the cluster.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kubeconfig", "context"])]
    pub cluster_dump: Option<PathBuf>,
    /// The whole run's deadline.
    #[arg(long, value_name = "DURATION", default_value = "2m")]
    pub timeout: String,
    /// validate-flux: a suspended object passes instead of warning.
    #[arg(long)]
    pub allow_suspended: bool,
    /// validate-flux: first ask every Kustomization and HelmRelease to reconcile
    /// (as `flux reconcile` does) and wait, within --timeout, until each has.
    #[arg(long)]
    pub reconcile: bool,
    /// validate-flux: the namespace Flux's controllers run in.
    #[arg(long, value_name = "NS", default_value = "flux-system")]
    pub flux_namespace: String,
    /// validate-apps: HTTP checks from this file (`checks:` of name, url, expectStatus,
    /// bodyContains, timeout; optional `caFile`).
    #[arg(long, value_name = "FILE")]
    pub http_checks: Option<PathBuf>,
    /// validate-storage: skip the data test (a PVC and two Jobs that write and
    /// read back random data, all deleted afterwards).
    #[arg(long)]
    pub no_data_test: bool,
    /// validate-storage: also take a Longhorn snapshot of the data test's volume, restore it
    /// into a new PVC through the CSI snapshot API and check the sum again (all of it
    /// deleted afterwards).
    #[arg(long, conflicts_with = "no_data_test")]
    pub with_restore: bool,
    /// validate-storage: the storage class the data test's PVC uses.
    #[arg(long, value_name = "NAME", default_value = "longhorn")]
    pub storage_class: String,
    /// validate-storage, validate-net: where the test's objects live while it runs.
    #[arg(long, value_name = "NS", default_value = "default")]
    pub test_namespace: String,
    /// validate-storage, validate-net: the test pods' image (needs sh, dd, sha256sum;
    /// validate-net: nslookup, httpd, wget).
    #[arg(
        long,
        value_name = "IMAGE",
        default_value = "docker.io/library/busybox:1.37"
    )]
    pub test_image: String,
    /// Output: the report as one JSON line, or a line per check for people.
    #[arg(short, long, value_enum, default_value = "json")]
    pub output: Format,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Runs one validator: exit 0 when nothing (new) fails, 1 when something
/// does, 2 for bad input, 3 when the cluster cannot be read.
pub fn run(validator: Validator, args: ValidateArgs) -> Result<Outcome, CliError> {
    run_with(validator, args, None)
}

/// `validate-net`: the shared flags and its own ([`crate::net::NetArgs`]).
pub fn run_net(args: ValidateArgs, net: crate::net::NetArgs) -> Result<Outcome, CliError> {
    run_with(Validator::Net, args, Some(net))
}

fn run_with(
    validator: Validator,
    args: ValidateArgs,
    net: Option<crate::net::NetArgs>,
) -> Result<Outcome, CliError> {
    upkeep_cli::init_logging(&args.log);
    let settings = upkeep_cli::load_settings(&args.config, None, Some(&args.cluster), None)?;
    let deadline = upkeep_config::parse_duration(&args.timeout)
        .map_err(|e| CliError::usage(format!("--timeout: {e}")))?;
    let baseline = args.baseline.as_deref().map(read_baseline).transpose()?;
    let net = net
        .map(|n| n.options(&args.test_namespace, &args.test_image, deadline))
        .transpose()
        .map_err(CliError::usage)?;
    let after_step = args.after_step.as_deref().map(read_step).transpose()?;
    let http_checks = match (&args.http_checks, validator) {
        (Some(p), Validator::Apps) => {
            Some(crate::http::HttpChecks::load(p).map_err(validate_error)?)
        }
        (Some(_), _) => {
            return Err(CliError::usage(
                "--http-checks: only validate-apps runs HTTP checks",
            ));
        }
        (None, _) => None,
    };
    let selection = Selection {
        namespaces: args.namespaces.clone(),
        labels: args.selector.clone(),
    };
    let kinds = match validator {
        Validator::Flux => crate::flux::KINDS,
        Validator::Apps => crate::apps::KINDS,
        Validator::Storage => crate::storage::KINDS,
        Validator::Net => crate::net::KINDS,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::environment(format!("cannot start the async runtime: {e}")))?;
    let started_at = Timestamp::now();
    let data_test = (validator == Validator::Storage && !args.no_data_test).then(|| {
        crate::datatest::DataTestOptions {
            namespace: args.test_namespace.clone(),
            storage_class: args.storage_class.clone(),
            image: args.test_image.clone(),
            within: deadline,
            with_restore: args.with_restore,
            ..Default::default()
        }
    });
    let report = upkeep_cli::without_kube_errors(|| {
        runtime.block_on(async {
            let work = async {
                // Checks made before the objects are read (the reconcile requests).
                let mut early = Checks::default();
                let (objects, cluster) = match &args.cluster_dump {
                    Some(path) => {
                        let src = FileSource::load([path]).map_err(ValidateError::from)?;
                        (Objects::read(&src, kinds, &selection).await?, None)
                    }
                    None => {
                        let choice = upkeep_cli::cluster_choice(&args.cluster, &settings);
                        let opts = ConnectOptions {
                            kubeconfig: choice.kubeconfig,
                            context: choice.context,
                            ..ConnectOptions::default()
                        };
                        let cluster = Cluster::connect(&opts).await?;
                        if validator == Validator::Flux && args.reconcile {
                            crate::flux::reconcile(&cluster, &selection, deadline, &mut early)
                                .await?;
                        }
                        (
                            Objects::read(&cluster, kinds, &selection).await?,
                            Some(cluster),
                        )
                    }
                };
                let mut checks: Checks = match validator {
                    Validator::Flux => crate::flux::check(
                        &objects,
                        &FluxOptions {
                            namespace: args.flux_namespace.clone(),
                            allow_suspended: args.allow_suspended,
                        },
                    ),
                    Validator::Apps => {
                        crate::apps::check(&objects, baseline.as_ref().map(|b| b.started_at.0))
                    }
                    Validator::Storage => crate::storage::check(&objects),
                    Validator::Net => crate::net::check(&objects),
                };
                early.checks.append(&mut checks.checks);
                early.not_run.append(&mut checks.not_run);
                let mut checks = early;
                match (&data_test, &cluster) {
                    (Some(opts), Some(cluster)) if objects.served("longhorn.io", "Volume") => {
                        crate::datatest::run(cluster, opts, &mut checks).await?
                    }
                    (Some(_), None) => checks.not_run(
                        "storage/data-roundtrip",
                        "the data test needs a live cluster, not --cluster-dump",
                    ),
                    _ => {}
                }
                if let Some(http) = &http_checks {
                    http.run(&mut checks).await;
                }
                if let Some(net) = &net {
                    // Within --timeout: the probes keep a part of it for their clean-up.
                    crate::net::run(cluster.as_ref(), &objects, net, &mut checks).await?;
                }
                let mut report = ValidationReport {
                    api_version: ApiVersion,
                    kind: Default::default(),
                    validator: validator.name().to_string(),
                    started_at,
                    finished_at: Timestamp::now(),
                    checks: checks.checks,
                    not_run: checks.not_run,
                    after_step: after_step.clone(),
                };
                if let Some(b) = &baseline {
                    crate::compare(&mut report, b);
                    crate::cause::explain(cluster.as_ref(), &mut report).await;
                }
                Ok::<ValidationReport, ValidateError>(report)
            };
            // The data test has its own deadline per Job; reading gets --timeout.
            let total = deadline
                * if data_test.is_some() && args.with_restore {
                    8
                } else if data_test.is_some() || args.reconcile {
                    3
                } else {
                    1
                };
            match tokio::time::timeout(total, work).await {
                Ok(r) => r.map_err(validate_error),
                Err(_) => Err(CliError::environment(format!(
                    "the checks did not finish within --timeout {}",
                    args.timeout
                ))),
            }
        })
    })?;
    let failing = crate::regressions(&report, baseline.is_some());
    let mut out = Output::new();
    match args.output {
        Format::Json => out.json_line(&report)?,
        Format::Text => out.text(&text(&report, baseline.is_some()))?,
    }
    out.flush()?;
    Ok(if failing > 0 {
        Outcome::Negative
    } else {
        Outcome::Done
    })
}

fn text(report: &ValidationReport, compared: bool) -> String {
    let mut s = String::new();
    for c in &report.checks {
        let label = match c.status {
            CheckStatus::Pass => "PASS",
            CheckStatus::Warn => "WARN",
            CheckStatus::Skip => "SKIP",
            CheckStatus::Fail if c.regression => "FAIL (new)",
            CheckStatus::Fail => "FAIL",
        };
        s.push_str(&format!("{label:<10} {:<28} {}\n", c.name, c.detail));
    }
    for c in &report.not_run {
        s.push_str(&format!("{:<10} {:<28} {}\n", "NOT RUN", c.name, c.detail));
    }
    let count = |st: CheckStatus| report.checks.iter().filter(|c| c.status == st).count();
    s.push_str(&format!(
        "{}: {} checks, {} pass, {} warn, {} fail{}\n",
        report.validator,
        report.checks.len(),
        count(CheckStatus::Pass),
        count(CheckStatus::Warn),
        count(CheckStatus::Fail),
        if compared {
            format!(
                ", {} new since the baseline",
                crate::regressions(report, true)
            )
        } else {
            String::new()
        }
    ));
    s
}

fn read_baseline(path: &std::path::Path) -> Result<ValidationReport, CliError> {
    upkeep_cli::read_document(path, "--baseline")
}

fn read_step(path: &std::path::Path) -> Result<AfterStep, CliError> {
    upkeep_cli::read_document::<ApplyResult>(path, "--after-step")
        .map(|r| AfterStep::from_apply(&r))
}

fn validate_error(e: ValidateError) -> CliError {
    if e.is_input() {
        CliError::usage(e)
    } else {
        CliError::environment(e)
    }
}
