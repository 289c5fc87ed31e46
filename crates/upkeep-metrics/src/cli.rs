//! `upkeep metrics`, and what the other `upkeep` commands do for metrics:
//! the run observer and the report `upkeep scan` keeps.

use std::path::PathBuf;

use clap::Args;
use upkeep_cli::CliError;
use upkeep_config::Settings;
use upkeep_contract::UpdateReport;

use crate::{Exporter, MetricsError, Pushgateway, Targets};

#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// The UpdateReport (`-` for stdin; default: the one `upkeep scan` last
    /// kept in the state directory).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write them to this file (`*.prom`, in node_exporter's textfile
    /// collector directory), atomically. With --textfile or --pushgateway,
    /// the `metrics` section of upkeep.yaml is not used.
    #[arg(long, value_name = "PATH")]
    pub textfile: Option<PathBuf>,
    /// Push them to this Pushgateway (HTTP PUT to /metrics/job/JOB).
    #[arg(long, value_name = "URL")]
    pub pushgateway: Option<String>,
    /// The Pushgateway's job label (default: metrics.pushgateway.job, else `upkeep`).
    #[arg(long, value_name = "NAME", requires = "pushgateway")]
    pub job: Option<String>,
    /// Print them too when they are written or pushed.
    #[arg(long)]
    pub stdout: bool,
}

pub fn error(e: MetricsError) -> CliError {
    match e.exit_code() {
        2 => CliError::usage(e),
        _ => CliError::environment(e),
    }
}

/// The targets: the flags when any is given, else upkeep.yaml's `metrics`.
fn targets(settings: &Settings, args: &MetricsArgs) -> Result<Targets, MetricsError> {
    if args.textfile.is_none() && args.pushgateway.is_none() {
        return Targets::from_settings(settings);
    }
    if let Some(p) = &args.textfile {
        crate::check_textfile(p, "--textfile")?;
    }
    let configured = settings.metrics.pushgateway.as_ref();
    let timeout = match configured.and_then(|p| p.timeout.as_deref()) {
        Some(t) => upkeep_config::parse_duration(t).map_err(|e| {
            MetricsError::Input(format!(
                "{}: {e}",
                settings.key("metrics.pushgateway.timeout")
            ))
        })?,
        None => crate::DEFAULT_TIMEOUT,
    };
    let job = args
        .job
        .clone()
        .or_else(|| configured.and_then(|p| p.job.clone()))
        .unwrap_or_else(|| crate::DEFAULT_JOB.to_string());
    Ok(Targets {
        textfile: args.textfile.clone(),
        pushgateway: args
            .pushgateway
            .as_deref()
            .map(|url| Pushgateway::new(url, &job, timeout, "--pushgateway"))
            .transpose()?,
    })
}

/// Runs `upkeep metrics`; returns the text for stdout, if it goes there.
pub fn run(settings: &Settings, args: &MetricsArgs) -> Result<Option<String>, CliError> {
    let targets = targets(settings, args).map_err(error)?;
    let report: Option<UpdateReport> = args
        .report
        .as_deref()
        .map(|p| upkeep_cli::read_document(p, "--report"))
        .transpose()?;
    let to_stdout = targets.is_empty() || args.stdout;
    let exporter = Exporter::new(&settings.state_dir, targets);
    let text = exporter.export(report.as_ref()).map_err(error)?;
    Ok(to_stdout.then_some(text))
}

/// The exporter for a command that makes runs (upkeep.yaml names a
/// target), checked now so a bad `metrics` section stops the command
/// before it changes anything.
pub fn observer(settings: &Settings) -> Result<Option<Exporter>, CliError> {
    Exporter::from_settings(settings).map_err(error)
}

/// After `upkeep scan`: keep the report for the metrics written after
/// runs, and refresh the metrics when upkeep.yaml names a target. Neither
/// fails the scan.
pub fn after_scan(settings: &Settings, report: &UpdateReport) {
    if let Err(e) = crate::save_report(&settings.state_dir, report) {
        tracing::warn!("keeping the report for the metrics: {e}");
    }
    match Exporter::from_settings(settings) {
        Ok(Some(exporter)) => {
            if let Err(e) = exporter.export(Some(report)) {
                tracing::warn!("metrics after the scan: {e}");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!("metrics after the scan: {e}"),
    }
}
