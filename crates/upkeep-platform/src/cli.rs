//! The flags and the run of `detect-k3s`, `detect-flux` and
//! `detect-longhorn`, which differ only in the detector they call; each
//! binary is `upkeep_cli::main_with(name, |args| cli::run(Platform::X, args))`.
//!
//! Where the cluster's objects come from:
//! - `--cluster-dump FILE`: that file, never a live cluster (it cannot be
//!   combined with `--kubeconfig`/`--context`);
//! - `--kubeconfig`/`--context` (or `cluster.kubeconfig`/`cluster.context`
//!   in upkeep.yaml): that cluster, always, also next to `--current` or
//!   `--gitops`, which then win for the version;
//! - otherwise the cluster kubectl would use (`KUBECONFIG`,
//!   `~/.kube/config`, the pod's service account), but only when neither
//!   `--current` nor a GitOps checkout says where to look, so an ad-hoc
//!   `--current` run never reaches whatever cluster the shell points at;
//! - none of these: a one-line usage error, exit 2.
//!
//! A cluster that cannot be reached is exit 3: with `--current` or
//! `--gitops` the document is still written, the failure in `errors`;
//! without them there is nothing to report and the failure is one line. A
//! kubeconfig that cannot be read or parsed, or a missing context, is exit 2.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use upkeep_cli::{CliError, ClusterArgs, ConfigArgs, LogArgs, Outcome, Output, UpstreamArgs};
use upkeep_contract::{ComponentUpdates, DocError, SafeText};
use upkeep_kube::ConnectOptions;
use upkeep_upstream::Upstream;
use upkeep_version::Version;

use crate::{
    ClusterSource, Detection, DumpFile, Inputs, KubeCluster, Options, PlatformError, Target,
};

/// Which detector to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    K3s,
    Flux,
    Longhorn,
}

impl Platform {
    fn default_target(self) -> Target {
        match self {
            Platform::K3s => Target::Stable,
            Platform::Flux | Platform::Longhorn => Target::Latest,
        }
    }
}

/// `-o` of the detectors: documents are for machines first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DocFormat {
    Json,
    Yaml,
}

/// The flags every platform detector takes.
#[derive(Debug, Clone, Args)]
pub struct DetectArgs {
    /// The installed version, for ad-hoc use (wins over the checkout and the dump).
    #[arg(long, value_name = "VERSION")]
    pub current: Option<String>,
    /// GitOps checkout to read the installed version and manifests from
    /// (default: $UPKEEP_GITOPS_DIR, then gitops.dir of upkeep.yaml).
    #[arg(long, value_name = "DIR")]
    pub gitops: Option<PathBuf>,
    /// Cluster objects from a file instead of the cluster, as `kubectl get nodes,namespaces,crds,helmreleases.helm.toolkit.fluxcd.io,volumes.longhorn.io,settings.longhorn.io,nodes.longhorn.io,deployments,daemonsets -A -o json` prints them.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kubeconfig", "context"])]
    pub cluster_dump: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Where to go: latest, stable (k3s only), v1.NN, or a version
    /// (default: stable for k3s, latest otherwise).
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,
    /// Consider pre-releases too.
    #[arg(long)]
    pub include_prereleases: bool,
    /// A release never to offer, e.g. one with a regression you hit
    /// (repeatable; adds to `releases.knownBad` of upkeep.yaml).
    #[arg(long, value_name = "VERSION")]
    pub known_bad: Vec<String>,
    /// The cluster's Kubernetes version (Flux, Longhorn), when no dump says it.
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "json")]
    pub output: DocFormat,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
}

fn version_flag(flag: &str, value: Option<&str>) -> Result<Option<Version>, CliError> {
    value
        .map(|v| Version::parse(v).map_err(|e| CliError::usage(format!("{flag}: {e}"))))
        .transpose()
}

/// `--known-bad` and this component's `releases.knownBad`, parsed; a
/// version that does not parse names the flag or the key.
fn known_bad(
    platform: Platform,
    flags: &[String],
    settings: &upkeep_config::Settings,
) -> Result<Vec<Version>, CliError> {
    let component = match platform {
        Platform::K3s => "k3s",
        Platform::Flux => "flux",
        Platform::Longhorn => "longhorn",
    };
    let from_flags = flags.iter().map(|v| (v.as_str(), "--known-bad"));
    let from_file = settings
        .known_bad
        .iter()
        .filter(|k| k.component == component)
        .map(|k| (k.version.as_str(), k.origin.as_str()));
    from_flags
        .chain(from_file)
        .map(|(v, origin)| Version::parse(v).map_err(|e| CliError::usage(format!("{origin}: {e}"))))
        .collect()
}

/// Runs one detector: reads the inputs, asks upstream, writes one document.
/// Exit 0 when done, 3 when an upstream or the cluster failed (the document
/// still written, with the failure in `errors`, whenever there is enough to
/// write it), 2 for bad flags or input.
pub fn run(platform: Platform, args: DetectArgs) -> Result<Outcome, CliError> {
    upkeep_cli::init_logging(&args.log);
    let (document, degraded) = detect(platform, &args)?;
    let mut out = Output::new();
    match args.output {
        DocFormat::Json => out.json_line(&document)?,
        DocFormat::Yaml => out.yaml(&document)?,
    }
    out.flush()?;
    Ok(if degraded {
        Outcome::Degraded
    } else {
        Outcome::Done
    })
}

/// The detector's document, and whether an upstream or the cluster failed
/// (the document's `errors` say which).
pub fn detect(platform: Platform, args: &DetectArgs) -> Result<(ComponentUpdates, bool), CliError> {
    let settings = upkeep_cli::load_settings(
        &args.config,
        Some(&args.upstream),
        Some(&args.cluster),
        args.gitops.clone(),
    )?;
    let current = version_flag("--current", args.current.as_deref())?;
    let kubernetes_version =
        version_flag("--kubernetes-version", args.kubernetes_version.as_deref())?;
    if platform == Platform::K3s && kubernetes_version.is_some() {
        return Err(CliError::usage(
            "--kubernetes-version: detect-k3s reads the Kubernetes version from k3s itself",
        ));
    }
    let target = match &args.target {
        Some(t) => t
            .parse::<Target>()
            .map_err(|e| CliError::usage(format!("--target: {e}")))?,
        None => platform.default_target(),
    };
    let cluster = cluster_input(args, &settings, current.is_some())?;
    let mut inputs = Inputs {
        current,
        ..Default::default()
    };
    let upstream = Upstream::from_settings(&settings).map_err(|e| {
        if e.is_environment() {
            CliError::environment(e)
        } else {
            CliError::usage(e)
        }
    })?;
    let opts = Options {
        target,
        include_prereleases: args.include_prereleases,
        kubernetes_version,
        known_bad: known_bad(platform, &args.known_bad, &settings)?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::environment(format!("cannot start the async runtime: {e}")))?;
    let gitops_dir = settings.gitops_dir.clone();
    let (detection, cluster_failure) = upkeep_cli::without_kube_errors(|| {
        runtime.block_on(async {
            if let Some(dir) = gitops_dir.as_deref() {
                inputs.gitops = Inputs::load(None, Some(dir), None)
                    .await
                    .map_err(cli_error)?
                    .gitops;
            }
            let mut cluster_failure = None;
            match &cluster {
                ClusterInput::None => {}
                ClusterInput::Dump(dump) => {
                    inputs.cluster = Some(dump.load().await.map_err(cli_error)?)
                }
                ClusterInput::Live(live) => match live.load().await {
                    Ok(objects) => inputs.cluster = Some(objects),
                    // The version comes from elsewhere: report what can be, say what failed.
                    Err(e)
                        if e.is_environment()
                            && (inputs.current.is_some() || inputs.gitops.is_some()) =>
                    {
                        cluster_failure = Some((e, live.server()));
                    }
                    Err(e) => return Err(cli_error(e)),
                },
            }
            let detection = match platform {
                Platform::K3s => crate::k3s::detect(&upstream, &inputs, &opts).await,
                Platform::Flux => crate::flux::detect(&upstream, &inputs, &opts).await,
                Platform::Longhorn => crate::longhorn::detect(&upstream, &inputs, &opts).await,
            };
            match (detection, cluster_failure) {
                (Ok(d), failure) => Ok((d, failure)),
                // What the cluster would have said may be what was missing.
                (Err(e), Some((cluster, _))) => Err(CliError::environment(format!(
                    "{e} (and the cluster could not be read: {cluster})"
                ))),
                (Err(e), None) => Err(CliError::usage(e)),
            }
        })
    })?;
    let mut detection: Detection = detection;
    let cluster_failed = cluster_failure.is_some();
    if let Some((e, server)) = cluster_failure {
        detection.document.errors.push(DocError {
            source: "cluster".to_string(),
            message: SafeText::new(&e.to_string()),
            target: Some(server),
        });
    }
    for e in &detection.document.errors {
        tracing::error!(
            source = e.source.as_str(),
            target = e.target.as_deref().unwrap_or(""),
            "{}",
            e.message
        );
    }
    Ok((
        detection.document,
        detection.upstream_failed || cluster_failed,
    ))
}

/// Where the cluster's objects come from (see the module docs).
enum ClusterInput {
    None,
    Dump(DumpFile),
    Live(Box<KubeCluster>),
}

fn cluster_input(
    args: &DetectArgs,
    settings: &upkeep_config::Settings,
    have_current: bool,
) -> Result<ClusterInput, CliError> {
    if let Some(path) = &args.cluster_dump {
        return Ok(ClusterInput::Dump(DumpFile::new(path)));
    }
    let upkeep_cli::ClusterChoice {
        kubeconfig,
        context,
        explicit,
    } = upkeep_cli::cluster_choice(&args.cluster, settings);
    let implicit_wanted = !have_current && settings.gitops_dir.is_none();
    if !explicit && !implicit_wanted {
        return Ok(ClusterInput::None);
    }
    let opts = ConnectOptions {
        kubeconfig,
        context,
        ..ConnectOptions::default()
    };
    match KubeCluster::configure(&opts) {
        Ok(live) => Ok(ClusterInput::Live(Box::new(live))),
        Err(PlatformError::NoCluster { message }) if !explicit => Err(CliError::usage(format!(
            "nothing to read the installed version from: give --current, --gitops DIR or --cluster-dump FILE, or a cluster with --kubeconfig/--context ({message})"
        ))),
        Err(e) => Err(cli_error(e)),
    }
}

fn cli_error(e: PlatformError) -> CliError {
    if e.is_environment() {
        CliError::environment(e)
    } else {
        CliError::usage(e)
    }
}
