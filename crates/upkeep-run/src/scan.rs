//! `upkeep scan`: the four detectors at once, in this process, with the
//! same flags and settings as the binaries (so the report is the one the
//! shell pipeline `{ detect-k3s; detect-flux; detect-longhorn;
//! detect-charts; } | merge-report` prints), merged into one UpdateReport.

use clap::Parser;
use upkeep_charts::cli::ChartsArgs;
use upkeep_cli::{CliError, ClusterArgs, ConfigArgs, ErrorKind};
use upkeep_config::Settings;
use upkeep_contract::{ComponentUpdates, Timestamp, UpdateReport};
use upkeep_platform::cli::{DetectArgs, Platform};

#[derive(Parser)]
struct Platforms {
    #[command(flatten)]
    args: DetectArgs,
}

#[derive(Parser)]
struct Charts {
    #[command(flatten)]
    args: ChartsArgs,
}

/// The flags each detector gets: the same config, cluster and checkout.
fn argv(config: &ConfigArgs, cluster: &ClusterArgs, settings: &Settings) -> Vec<String> {
    let mut v = vec!["upkeep-scan".to_string()];
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            v.push(name.to_string());
            v.push(value);
        }
    };
    flag(
        "--config",
        config.config.as_ref().map(|p| p.display().to_string()),
    );
    flag(
        "--kubeconfig",
        cluster.kubeconfig.as_ref().map(|p| p.display().to_string()),
    );
    flag("--context", cluster.context.clone());
    flag(
        "--gitops",
        settings
            .gitops_dir
            .as_ref()
            .map(|p| p.display().to_string()),
    );
    v
}

/// Runs the detectors concurrently. A detector that cannot reach its
/// upstream or the cluster still lets the others report (the report is
/// then `degraded`); bad input stops the scan.
pub fn scan(
    config: &ConfigArgs,
    cluster: &ClusterArgs,
    settings: &Settings,
) -> Result<(UpdateReport, bool), CliError> {
    let base = argv(config, cluster, settings);
    let platform = |p: Platform| -> Result<(Vec<ComponentUpdates>, bool), CliError> {
        let args = Platforms::try_parse_from(&base)
            .map_err(|e| CliError::usage(e.to_string().lines().next().unwrap_or("").to_string()))?
            .args;
        upkeep_platform::cli::detect(p, &args).map(|(d, degraded)| (vec![d], degraded))
    };
    let charts = || -> Result<(Vec<ComponentUpdates>, bool), CliError> {
        let args = Charts::try_parse_from(&base)
            .map_err(|e| CliError::usage(e.to_string().lines().next().unwrap_or("").to_string()))?
            .args;
        upkeep_charts::cli::detect(&args)
    };
    let results = std::thread::scope(|s| {
        let k3s = s.spawn(|| platform(Platform::K3s));
        let flux = s.spawn(|| platform(Platform::Flux));
        let longhorn = s.spawn(|| platform(Platform::Longhorn));
        let charts = s.spawn(charts);
        [
            ("detect-k3s", k3s.join()),
            ("detect-flux", flux.join()),
            ("detect-longhorn", longhorn.join()),
            ("detect-charts", charts.join()),
        ]
    });
    let mut docs = Vec::new();
    let mut degraded = false;
    for (name, r) in results {
        match r {
            Ok(Ok((d, deg))) => {
                docs.extend(d);
                degraded |= deg;
            }
            Ok(Err(e)) if e.kind() == ErrorKind::Environment => {
                tracing::error!("{name}: {e}");
                degraded = true;
            }
            Ok(Err(e)) => return Err(CliError::usage(format!("{name}: {e}"))),
            Err(_) => {
                return Err(CliError::environment(format!(
                    "{name} stopped unexpectedly"
                )));
            }
        }
    }
    Ok((upkeep_report::merge(docs, Timestamp::now()), degraded))
}
