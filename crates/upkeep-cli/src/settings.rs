use std::path::PathBuf;

use clap::Args;
use upkeep_config::{Overrides, ProcessEnv, Settings};

use crate::CliError;

/// `--config`, taken by every binary.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// upkeep.yaml to read (default: $UPKEEP_CONFIG, then ~/.config/upkeep/upkeep.yaml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Upstream flags, taken by every tool that talks to an upstream.
#[derive(Debug, Clone, Default, Args)]
pub struct UpstreamArgs {
    /// Base URL of the GitHub API (tests and mirrors).
    #[arg(long, value_name = "URL")]
    pub github_api: Option<String>,
    /// Base URL of the k3s channel server.
    #[arg(long, value_name = "URL")]
    pub channels_url: Option<String>,
    /// Use only the on-disk cache; fail clearly where it has no entry.
    #[arg(long)]
    pub offline: bool,
    /// Where upstream responses are cached.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// File holding a GitHub token (default: $GITHUB_TOKEN). Never pass a token itself.
    #[arg(long, value_name = "FILE")]
    pub github_token_file: Option<PathBuf>,
}

/// Cluster access as kubectl does it.
#[derive(Debug, Clone, Default, Args)]
pub struct ClusterArgs {
    /// kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context to use.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

/// Reads upkeep.yaml and resolves every setting with flag > environment >
/// file > default. A bad file or value is a usage error (exit 2).
pub fn load_settings(
    config: &ConfigArgs,
    upstream: Option<&UpstreamArgs>,
    cluster: Option<&ClusterArgs>,
    gitops_dir: Option<PathBuf>,
) -> Result<Settings, CliError> {
    let env = ProcessEnv;
    let (path, file) =
        upkeep_config::load(config.config.as_deref(), &env).map_err(CliError::usage)?;
    let mut o = Overrides {
        gitops_dir,
        ..Default::default()
    };
    if let Some(u) = upstream {
        o.github_api = u.github_api.clone();
        o.channels_url = u.channels_url.clone();
        o.offline = u.offline;
        o.cache_dir = u.cache_dir.clone();
        o.github_token_file = u.github_token_file.clone();
    }
    if let Some(c) = cluster {
        o.kubeconfig = c.kubeconfig.clone();
        o.context = c.context.clone();
    }
    upkeep_config::resolve(path, &file, &o, &env).map_err(CliError::usage)
}

/// Which cluster a tool talks to: the kubeconfig to hand to upkeep-kube,
/// the context, and whether the user named a cluster at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterChoice {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// `--kubeconfig`, `--context` or upkeep.yaml's `cluster.*` said so
    /// (`KUBECONFIG` and `~/.kube/config` alone do not).
    pub explicit: bool,
}

/// `settings.kubeconfig` folds `KUBECONFIG` in as one path, but a
/// `KUBECONFIG` list is upkeep-kube's to merge, as kubectl does: so only
/// the flag and upkeep.yaml name a single file here, and an environment
/// `KUBECONFIG` is left to upkeep-kube.
pub fn cluster_choice(args: &ClusterArgs, settings: &Settings) -> ClusterChoice {
    let env_kubeconfig = std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty());
    let kubeconfig = args
        .kubeconfig
        .clone()
        .or_else(|| settings.kubeconfig.clone().filter(|_| !env_kubeconfig));
    let explicit = kubeconfig.is_some() || settings.context.is_some();
    ClusterChoice {
        kubeconfig,
        context: settings.context.clone(),
        explicit,
    }
}
