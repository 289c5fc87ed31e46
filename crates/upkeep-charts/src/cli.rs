//! The flags and the run of `detect-charts`, shared with `upkeep scan`.

use std::path::PathBuf;

use crate::{ClusterError, ClusterState};
use clap::Args;
use upkeep_cli::{
    CliError, ClusterArgs, ConfigArgs, Format, LogArgs, Outcome, Output, UpstreamArgs,
};
use upkeep_contract::{ComponentUpdates, DocError, SafeText, Timestamp};
use upkeep_http::UpstreamClient;
use upkeep_kube::{Cluster, ConnectOptions, FileSource, KubeError};
use upkeep_version::Version;

/// The flags of `detect-charts`.
#[derive(Debug, Clone, Args)]
pub struct ChartsArgs {
    /// The GitOps checkout to read (default: gitops.dir of upkeep.yaml).
    #[arg(long, value_name = "DIR")]
    pub gitops: Option<PathBuf>,
    /// Cluster objects from a file instead of the cluster, as `kubectl get nodes,helmreleases.helm.toolkit.fluxcd.io,helmrepositories.source.toolkit.fluxcd.io,ocirepositories.source.toolkit.fluxcd.io,helmcharts.source.toolkit.fluxcd.io,gitrepositories.source.toolkit.fluxcd.io -A -o json` prints them.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kubeconfig", "context"])]
    pub cluster_dump: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The cluster's Kubernetes version (e.g. v1.31.4+k3s1): chart versions
    /// whose kubeVersion excludes it are held back (default: the lowest
    /// kubelet version of the cluster's nodes, when the cluster is read).
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    /// Repositories fetched at the same time.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "json")]
    pub output: Format,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Reads the releases and asks their repositories: the documents, and
/// whether some could not be checked (a cluster or repository that did not
/// answer), in which case the documents' `errors` say which.
pub fn detect(args: &ChartsArgs) -> Result<(Vec<ComponentUpdates>, bool), CliError> {
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
        Some(&args.cluster),
        args.gitops.clone(),
    )?;
    let cluster_input = cluster_input(args, &settings)?;
    let tree = match settings.gitops_dir.as_deref() {
        Some(dir) => {
            let tree = upkeep_gitops::scan(dir).map_err(CliError::usage)?;
            for p in tree.problems() {
                tracing::warn!("skipped {p}");
            }
            Some(tree)
        }
        None => None,
    };
    let http = UpstreamClient::new(upkeep_upstream::client_config(&settings))
        .map_err(|e| CliError::usage(format!("HTTP client: {e}")))?;
    let repos = upkeep_helm::Repositories::new(http, settings.helm_mirrors.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::environment(format!("cannot start the async runtime: {e}")))?;
    let (state, cluster_failure) = match upkeep_cli::without_kube_errors(|| {
        runtime.block_on(cluster_input.read()).map_err(Box::new)
    }) {
        Ok(state) => (state, None),
        // The checkout still says what there is: report it, and what failed.
        Err(failed) if failed.0.is_environment() && tree.is_some() => (None, Some(*failed)),
        Err(failed) if failed.0.is_environment() => return Err(CliError::environment(failed.0)),
        Err(failed) => return Err(CliError::usage(failed.0)),
    };
    let options = crate::Options {
        kubernetes: kubernetes.or_else(|| state.as_ref().and_then(|s| s.kubernetes.clone())),
        concurrency: usize::from(args.concurrency),
        checked_at: Timestamp::now(),
        ..crate::Options::default()
    };
    let inputs = crate::Inputs {
        gitops: tree.as_ref(),
        cluster: state.as_ref(),
    };
    let mut docs = runtime.block_on(crate::detect(inputs, &repos, &options));
    if let Some((e, target)) = &cluster_failure {
        tracing::error!("{e}");
        for doc in &mut docs {
            doc.errors.push(DocError {
                source: "cluster".to_string(),
                message: SafeText::new(&e.to_string()),
                target: Some(target.clone()),
            });
        }
    }
    if cluster_failure.is_some() {
        return Ok((docs, true));
    }
    let failed = docs.iter().filter(|d| !d.errors.is_empty()).count();
    if failed > 0 {
        tracing::warn!(
            "{failed} of {} releases could not be checked against their repository",
            docs.len()
        );
    }
    Ok((docs, failed > 0))
}

/// `detect-charts`: one ComponentUpdates document per release on stdout.
pub fn run(args: ChartsArgs) -> Result<Outcome, CliError> {
    upkeep_cli::init_logging(&args.log);
    let (docs, degraded) = detect(&args)?;
    let mut out = Output::new();
    for doc in &docs {
        match args.output {
            Format::Yaml => out.yaml(doc)?,
            _ => out.json_line(doc)?,
        }
    }
    out.flush()?;
    Ok(if degraded {
        Outcome::Degraded
    } else {
        Outcome::Done
    })
}

/// Where the cluster's objects come from (see the module docs).
enum ClusterInput {
    None,
    Dump(PathBuf),
    Live(Box<upkeep_kube::LoadedConfig>),
}

impl ClusterInput {
    /// The cluster's releases, or the failure and what was being read.
    async fn read(&self) -> Result<Option<ClusterState>, (ClusterError, String)> {
        let read_error = |target: String| {
            move |e: KubeError| {
                (
                    ClusterError::Read {
                        what: target.clone(),
                        source: e,
                    },
                    target.clone(),
                )
            }
        };
        match self {
            ClusterInput::None => Ok(None),
            ClusterInput::Dump(path) => {
                let target = path.display().to_string();
                let src = FileSource::load([path]).map_err(read_error(target.clone()))?;
                let state = crate::cluster::read(&src).await.map_err(|e| (e, target))?;
                Ok(Some(state))
            }
            ClusterInput::Live(loaded) => {
                let target = loaded.server();
                let cluster = Cluster::from_loaded((**loaded).clone())
                    .await
                    .map_err(read_error(target.clone()))?;
                let state = crate::cluster::read_live(&cluster)
                    .await
                    .map_err(|e| (e, target))?;
                Ok(Some(state))
            }
        }
    }
}

fn cluster_input(
    args: &ChartsArgs,
    settings: &upkeep_config::Settings,
) -> Result<ClusterInput, CliError> {
    if let Some(path) = &args.cluster_dump {
        return Ok(ClusterInput::Dump(path.clone()));
    }
    let upkeep_cli::ClusterChoice {
        kubeconfig,
        context,
        explicit,
    } = upkeep_cli::cluster_choice(&args.cluster, settings);
    if !explicit && settings.gitops_dir.is_some() {
        return Ok(ClusterInput::None);
    }
    let opts = ConnectOptions {
        kubeconfig,
        context,
        ..ConnectOptions::default()
    };
    match upkeep_kube::load_config(&opts) {
        Ok(loaded) => Ok(ClusterInput::Live(Box::new(loaded))),
        Err(KubeError::NoConfig { detail }) if !explicit => Err(CliError::usage(format!(
            "nothing to read: give --gitops DIR or --cluster-dump FILE, or a cluster with --kubeconfig/--context ({detail})"
        ))),
        Err(e) if e.exit_code() == 3 => Err(CliError::environment(e)),
        Err(e) => Err(CliError::usage(e)),
    }
}
