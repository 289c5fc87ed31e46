//! `detect-charts`: one ComponentUpdates document per Flux HelmRelease of a
//! GitOps checkout, with the chart versions it can move to.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use upkeep_cli::{CliError, ConfigArgs, Format, LogArgs, Outcome, Output, UpstreamArgs};
use upkeep_contract::Timestamp;
use upkeep_http::{ClientConfig, UpstreamClient};
use upkeep_version::Version;

/// Find every Flux HelmRelease in a GitOps checkout and the chart versions
/// it can move to; one ComponentUpdates document per release on stdout.
///
/// Example: detect-charts --gitops ~/src/home-ops --kubernetes-version v1.31.4 | merge-report -o text
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// The GitOps checkout to read (default: gitops.dir of upkeep.yaml).
    #[arg(long, value_name = "DIR")]
    gitops: Option<PathBuf>,
    /// The cluster's Kubernetes version (e.g. v1.31.4+k3s1): chart versions
    /// whose kubeVersion excludes it are held back.
    #[arg(long, value_name = "VERSION")]
    kubernetes_version: Option<String>,
    /// Repositories fetched at the same time.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "json")]
    output: Format,
    #[command(flatten)]
    upstream: UpstreamArgs,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    config: ConfigArgs,
}

fn run(args: Args) -> Result<Outcome, CliError> {
    upkeep_cli::init_logging(&args.log);
    if matches!(args.output, Format::Text | Format::Markdown) {
        return Err(CliError::usage(
            "-o: detect-charts writes json or yaml documents; pipe them to merge-report -o text",
        ));
    }
    let kubernetes = args
        .kubernetes_version
        .as_deref()
        .map(|v| {
            Version::parse(v).map_err(|e| CliError::usage(format!("--kubernetes-version: {e}")))
        })
        .transpose()?;
    let settings = upkeep_cli::load_settings(
        &args.config,
        Some(&args.upstream),
        None,
        args.gitops.clone(),
    )?;
    let Some(gitops) = settings.gitops_dir.clone() else {
        return Err(CliError::usage(
            "no GitOps checkout: pass --gitops DIR or set gitops.dir in upkeep.yaml",
        ));
    };
    let tree = upkeep_gitops::scan(&gitops).map_err(CliError::usage)?;
    for p in tree.problems() {
        tracing::warn!("skipped {p}");
    }
    let http = UpstreamClient::new(ClientConfig {
        connect_timeout: settings.connect_timeout,
        timeout: settings.timeout,
        max_retries: settings.retries,
        max_body_bytes: settings.max_body_bytes,
        cache_dir: Some(settings.cache_dir.clone()),
        offline: settings.offline,
        ..ClientConfig::default()
    })
    .map_err(|e| CliError::usage(format!("HTTP client: {e}")))?;
    let repos = upkeep_helm::Repositories::new(http, settings.helm_mirrors.clone());
    let options = upkeep_charts::Options {
        kubernetes,
        concurrency: usize::from(args.concurrency),
        checked_at: Timestamp::now(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::environment(format!("cannot start the async runtime: {e}")))?;
    let docs = runtime.block_on(upkeep_charts::detect(&tree, &repos, &options));
    let mut out = Output::new();
    for doc in &docs {
        match args.output {
            Format::Yaml => out.yaml(doc)?,
            _ => out.json_line(doc)?,
        }
    }
    out.flush()?;
    let failed = docs.iter().filter(|d| !d.errors.is_empty()).count();
    if failed > 0 {
        tracing::warn!(
            "{failed} of {} releases could not be checked against their repository",
            docs.len()
        );
        return Ok(Outcome::Degraded);
    }
    Ok(Outcome::Done)
}

fn main() -> ExitCode {
    upkeep_cli::main_with("detect-charts", run)
}
