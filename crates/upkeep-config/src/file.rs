//! The file's shape. Unknown keys are refused: a misspelt key silently
//! falling back to a default is the worst kind of configuration bug.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::ConfigError;

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "upkeep.yaml")]
pub struct ConfigFile {
    /// Optional; when present it must be `upkeep.dev/v1alpha1`.
    pub api_version: Option<String>,
    /// Optional; when present it must be `Config`.
    pub kind: Option<String>,
    pub upstreams: Option<UpstreamsSection>,
    pub http: Option<HttpSection>,
    pub cache: Option<CacheSection>,
    /// Where run state, history and locks live (default: XDG state dir).
    pub state_dir: Option<PathBuf>,
    pub cluster: Option<ClusterSection>,
    pub gitops: Option<GitopsSection>,
    pub releases: Option<ReleasesSection>,
    /// What `upkeep plan` and `upkeep run` may update.
    pub policy: Option<PolicySection>,
    /// When `upkeep run` may touch the cluster; none means any time.
    pub windows: Option<Vec<WindowSection>>,
    /// The restore point `upkeep run` takes before each step.
    pub snapshot: Option<SnapshotSection>,
    /// How `upkeep run` proves each step.
    pub run: Option<RunSection>,
    /// How k3s itself is upgraded.
    pub k3s: Option<K3sSection>,
    /// Who is told about runs, windows and updates, and how.
    pub notify: Option<crate::notify::NotifySection>,
    /// Where the Prometheus metrics go: node_exporter's textfile collector, a Pushgateway.
    pub metrics: Option<crate::metrics::MetricsSection>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K3sSection {
    /// `plan` (default): edit the system-upgrade-controller Plans in the
    /// GitOps checkout. `ssh`: download the release binary, check its
    /// sha256, and roll it over SSH one node at a time, servers first.
    pub method: Option<K3sMethodName>,
    /// Used by `method: ssh`.
    pub ssh: Option<SshSection>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum K3sMethodName {
    Plan,
    Ssh,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SshSection {
    /// Login user (default `root`).
    pub user: Option<String>,
    /// Default 22.
    pub port: Option<u16>,
    /// Private key file; without one, the SSH agent and ~/.ssh/config decide.
    pub identity_file: Option<PathBuf>,
    /// known_hosts to check node host keys against (default: the user's).
    /// Unknown host keys are always refused.
    pub known_hosts_file: Option<PathBuf>,
    /// Run the node commands through `sudo -n` (default: true unless the user is root).
    pub sudo: Option<bool>,
    /// Where the k3s binary is on the nodes (default `/usr/local/bin/k3s`).
    pub binary_path: Option<String>,
    /// Restarts k3s on a server node (default `systemctl restart k3s`).
    pub server_restart: Option<String>,
    /// Restarts k3s on an agent node (default `systemctl restart k3s-agent`).
    pub agent_restart: Option<String>,
    /// How long each SSH connection may take to open (default `10s`).
    pub connect_timeout: Option<String>,
    /// How long a drain may take before the node is given up (default `5m`).
    pub drain_timeout: Option<String>,
    /// How long a node may take to come back Ready at the new version after
    /// the restart (default `10m`).
    pub node_timeout: Option<String>,
    /// Per node (by Kubernetes node name): where to reach it and anything
    /// that differs from the defaults above. Nodes not listed are reached at
    /// their InternalIP.
    pub nodes: Option<BTreeMap<String, SshNodeSection>>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SshNodeSection {
    /// Address or name to connect to (default: the node's InternalIP).
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub binary_path: Option<String>,
    /// The restart command for this node.
    pub restart: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamsSection {
    pub github: Option<UpstreamSection>,
    pub k3s_channels: Option<UpstreamSection>,
    /// Helm repository URL → URL to fetch it from instead (mirrors, tests).
    pub helm_mirrors: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamSection {
    pub url: Option<String>,
    /// Name of the environment variable holding the token.
    pub token_env: Option<String>,
    /// File holding the token (never the token itself in this file).
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSection {
    /// e.g. `10s`.
    pub connect_timeout: Option<String>,
    /// Whole request, e.g. `30s`.
    pub timeout: Option<String>,
    pub retries: Option<u32>,
    /// e.g. `64MiB`.
    pub max_body_size: Option<String>,
    /// PEM files of extra root CAs trusted for upstreams and mirrors (a mirror behind your
    /// own CA), on top of the system's.
    pub ca_files: Option<Vec<PathBuf>>,
    /// Turns TLS certificate verification off for upstreams and mirrors. Anyone on the
    /// path can then feed upkeep forged releases: use `caFiles` instead. Every run warns.
    pub insecure_skip_tls_verify: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheSection {
    pub dir: Option<PathBuf>,
    pub offline: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSection {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitopsSection {
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleasesSection {
    /// Releases never to offer, by component (`k3s`, `flux`, `longhorn`):
    /// e.g. `k3s: [v1.31.5+k3s1]` for a release with a regression you hit.
    pub known_bad: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySection {
    /// The largest update allowed per component kind, e.g. `{k3s: minor, chart: major}`.
    pub max_update: Option<BTreeMap<PolicyComponent, PolicyUpdate>>,
    /// Only updates that fix a security issue.
    pub security_only: Option<bool>,
    /// Releases younger than this many days wait for a later run.
    pub min_release_age_days: Option<u32>,
    /// Components held at their current version, by name.
    pub ignore: Option<Vec<String>>,
    /// Components kept inside a version constraint, by name: `{podinfo: "6.x"}`.
    pub pins: Option<BTreeMap<String, String>>,
}

/// A component kind as the policy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyComponent {
    K3s,
    Flux,
    Longhorn,
    Chart,
}

/// An update type as the policy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyUpdate {
    Patch,
    Minor,
    Major,
}

/// A maintenance window.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowSection {
    /// `mon`..`sun`, or `daily`, `weekdays`, `weekends`.
    pub days: Vec<String>,
    /// `HH:MM`, local to `timeZone`.
    pub start: String,
    /// `HH:MM`; at or before `start` means the next day.
    pub end: String,
    /// An IANA time zone such as `Europe/Berlin`.
    pub time_zone: String,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotSection {
    /// Where restore points are written (default: `<stateDir>/restore-points`).
    pub dir: Option<PathBuf>,
    /// age recipients (`age1...`) the Secrets of a restore point are encrypted to.
    pub age_recipients: Option<Vec<String>>,
    /// Leave Secrets out of restore points instead (then a restore cannot bring them back).
    pub exclude_secrets: Option<bool>,
    /// Longhorn volumes in a restore point: `none`, `snapshot` or `backup`.
    pub longhorn: Option<LonghornSnapshot>,
    /// Restore points kept; older ones are pruned after a run.
    pub keep: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LonghornSnapshot {
    None,
    Snapshot,
    Backup,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunSection {
    /// Validators run before and after each step (default: `[flux, apps]`).
    pub validators: Option<Vec<RunValidator>>,
    /// The deadline of each wait for Flux and the cluster (default `15m`).
    pub step_timeout: Option<String>,
    /// Push each commit to the checkout's `origin` (default true).
    pub push: Option<bool>,
    /// validate-apps' HTTP checks for every step (a file as `validate-apps --http-checks` reads).
    pub http_checks: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunValidator {
    Flux,
    Apps,
    Storage,
    Net,
}

pub(crate) fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
    let name = path.display().to_string();
    let value: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| {
        ConfigError::new(
            name.clone(),
            format!("invalid YAML: {}", one_line(&e.to_string())),
        )
    })?;
    if value.is_null() {
        return Ok(ConfigFile::default());
    }
    let cfg: ConfigFile = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let msg = one_line(&e.into_inner().to_string());
        if path == "." {
            ConfigError::new(name.clone(), msg)
        } else {
            ConfigError::new(format!("{name}: key `{path}`"), msg)
        }
    })?;
    if let Some(v) = &cfg.api_version
        && v != "upkeep.dev/v1alpha1"
    {
        return Err(ConfigError::new(
            format!("{name}: key `apiVersion`"),
            format!("unknown apiVersion {v:?}; this build reads upkeep.dev/v1alpha1"),
        ));
    }
    if let Some(k) = &cfg.kind
        && k != "Config"
    {
        return Err(ConfigError::new(
            format!("{name}: key `kind`"),
            format!("expected Config, found {k:?}"),
        ));
    }
    Ok(cfg)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
