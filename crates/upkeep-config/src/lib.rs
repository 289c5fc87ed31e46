//! `upkeep.yaml`: one configuration file for every upkeep tool.
//!
//! The file is found at `--config`, else `$UPKEEP_CONFIG`, else
//! `$XDG_CONFIG_HOME/upkeep/upkeep.yaml` (`~/.config/...`) when it exists.
//! Each setting is resolved with the precedence flag > environment > file >
//! default ([`resolve`]), and every error names the key and where it came
//! from, so a typo is one line, not a silent default.

mod file;
mod metrics;
mod notify;
mod units;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use file::{
    CacheSection, ClusterSection, ConfigFile, GitopsSection, HttpSection, K3sMethodName,
    K3sSection, LonghornSnapshot, PolicyComponent, PolicySection, PolicyUpdate, RunSection,
    RunValidator, SnapshotSection, SshNodeSection, SshSection, UpstreamSection, UpstreamsSection,
    WindowSection,
};
pub use metrics::{MetricsSection, PushgatewaySection};
pub use notify::{
    ChannelKind, ChannelSection, ContactSection, NotifyEvent, NotifySection, SmtpTls,
    TemplateSection,
};
pub use units::{parse_duration, parse_size};

/// Default upstream locations; each can be overridden for tests and mirrors.
pub const DEFAULT_GITHUB_API: &str = "https://api.github.com";
pub const DEFAULT_CHANNELS_URL: &str = "https://update.k3s.io/v1-release/channels";

/// A configuration problem, displayed as one line naming where and what.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ConfigError {
    /// `path/to/upkeep.yaml: key `http.timeout``, `environment UPKEEP_OFFLINE`...
    pub origin: String,
    pub message: String,
}

impl ConfigError {
    fn new(origin: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: origin.into(),
            message: message.into(),
        }
    }
}

/// Values given on the command line; `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub github_api: Option<String>,
    pub channels_url: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub offline: bool,
    pub github_token_file: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub gitops_dir: Option<PathBuf>,
}

/// Where the GitHub token comes from. The token itself is never held here:
/// the HTTP layer reads it when it needs it, so it never lands in a struct
/// that might be logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    None,
    Env(String),
    File(PathBuf),
}

/// Every setting, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file that was read, if any.
    pub config_path: Option<PathBuf>,
    pub github_api: String,
    pub github_token: TokenSource,
    pub channels_url: String,
    /// Original Helm repository URL → the URL to fetch it from instead.
    pub helm_mirrors: Vec<(String, String)>,
    pub cache_dir: PathBuf,
    pub state_dir: PathBuf,
    pub offline: bool,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub max_body_bytes: u64,
    /// `http.caFiles`, read: PEM bundles of extra root CAs.
    pub extra_ca_pem: Vec<Vec<u8>>,
    /// `http.insecureSkipTlsVerify`.
    pub insecure_skip_tls_verify: bool,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub gitops_dir: Option<PathBuf>,
    /// `releases.knownBad`: releases never to offer.
    pub known_bad: Vec<KnownBad>,
    /// What a run may update (`policy`).
    pub policy: PolicySection,
    /// Maintenance windows (`windows`), each with the key it was written under.
    pub windows: Vec<(String, WindowSection)>,
    /// Restore points (`snapshot`).
    pub snapshot: SnapshotSection,
    /// `run`, with `stepTimeout` checked.
    pub run: RunSection,
    pub step_timeout: Duration,
    /// `k3s`: how k3s itself is upgraded (durations checked where used).
    pub k3s: K3sSection,
    /// `notify`: checked (templates, durations, secrets) by upkeep-notify where used.
    pub notify: NotifySection,
    /// `metrics`: checked (URL, job, textfile name) by upkeep-metrics where used.
    pub metrics: MetricsSection,
}

impl Settings {
    /// Where restore points go and are listed from: `snapshot.dir`, else
    /// `<stateDir>/restore-points` (what `upkeep run` writes and
    /// `snapshot list|prune` read).
    pub fn restore_point_dir(&self) -> PathBuf {
        self.snapshot
            .dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("restore-points"))
    }

    /// How an error names a key of the file that was read, e.g.
    /// ``upkeep.yaml: key `policy.pins.podinfo` ``.
    pub fn key(&self, k: &str) -> String {
        let fname = self
            .config_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "upkeep.yaml".to_string());
        format!("{fname}: key `{k}`")
    }
}

/// One release the operator never wants offered, as upkeep.yaml names it.
/// The version stays a string here; the detector that knows the
/// component's version scheme parses it and names [`KnownBad::origin`]
/// when it cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownBad {
    /// `k3s`, `flux` or `longhorn`.
    pub component: String,
    pub version: String,
    /// Where it was written, e.g. `upkeep.yaml: key releases.knownBad.k3s[0]`.
    pub origin: String,
}

/// The components `releases.knownBad` may name.
const KNOWN_BAD_COMPONENTS: &[&str] = &["k3s", "flux", "longhorn"];

/// Reads the environment; tests pass their own.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

fn home(env: &dyn Env) -> Option<PathBuf> {
    env.var("HOME").map(PathBuf::from)
}

fn xdg(env: &dyn Env, var: &str, fallback: &str) -> Option<PathBuf> {
    env.var(var)
        .map(PathBuf::from)
        .or_else(|| home(env).map(|h| h.join(fallback)))
        .map(|d| d.join("upkeep"))
}

/// Finds and reads the configuration file. An explicitly named file
/// (`--config`, `UPKEEP_CONFIG`) must exist; the XDG default may not.
pub fn load(
    flag: Option<&Path>,
    env: &dyn Env,
) -> Result<(Option<PathBuf>, ConfigFile), ConfigError> {
    let explicit = flag.map(|p| (p.to_path_buf(), "--config")).or_else(|| {
        env.var("UPKEEP_CONFIG")
            .map(|p| (PathBuf::from(p), "UPKEEP_CONFIG"))
    });
    let (path, required) = match explicit {
        Some((p, _)) => (p, true),
        None => match xdg(env, "XDG_CONFIG_HOME", ".config") {
            Some(dir) => (dir.join("upkeep.yaml"), false),
            None => return Ok((None, ConfigFile::default())),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((Some(path.clone()), file::parse(&text, &path)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            Ok((None, ConfigFile::default()))
        }
        Err(e) => Err(ConfigError::new(
            path.display().to_string(),
            format!("cannot read: {e}"),
        )),
    }
}

fn env_bool(env: &dyn Env, name: &str) -> Result<Option<bool>, ConfigError> {
    match env.var(name).as_deref() {
        None => Ok(None),
        Some("1" | "true" | "yes" | "on") => Ok(Some(true)),
        Some("0" | "false" | "no" | "off") => Ok(Some(false)),
        Some(other) => Err(ConfigError::new(
            format!("environment {name}"),
            format!("expected true or false, found {other:?}"),
        )),
    }
}

fn check_url(origin: &str, url: &str) -> Result<String, ConfigError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > "https://".len()
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(url.trim_end_matches('/').to_string())
    } else {
        Err(ConfigError::new(
            origin,
            format!("{url:?} is not an http(s) URL"),
        ))
    }
}

/// Resolves every setting: flag > environment > file > default.
pub fn resolve(
    config_path: Option<PathBuf>,
    file: &ConfigFile,
    flags: &Overrides,
    env: &dyn Env,
) -> Result<Settings, ConfigError> {
    let fname = config_path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "upkeep.yaml".to_string());
    let key = |k: &str| format!("{fname}: key `{k}`");
    let up = file.upstreams.clone().unwrap_or_default();
    let github = up.github.clone().unwrap_or_default();
    let channels = up.k3s_channels.clone().unwrap_or_default();

    let github_api = match (&flags.github_api, env.var("UPKEEP_GITHUB_API"), &github.url) {
        (Some(f), _, _) => check_url("--github-api", f)?,
        (None, Some(e), _) => check_url("environment UPKEEP_GITHUB_API", &e)?,
        (None, None, Some(u)) => check_url(&key("upstreams.github.url"), u)?,
        _ => DEFAULT_GITHUB_API.to_string(),
    };
    let channels_url = match (
        &flags.channels_url,
        env.var("UPKEEP_CHANNELS_URL"),
        &channels.url,
    ) {
        (Some(f), _, _) => check_url("--channels-url", f)?,
        (None, Some(e), _) => check_url("environment UPKEEP_CHANNELS_URL", &e)?,
        (None, None, Some(u)) => check_url(&key("upstreams.k3sChannels.url"), u)?,
        _ => DEFAULT_CHANNELS_URL.to_string(),
    };
    // The token's *source* follows the same precedence: a flag, then the
    // environment (a token file, then the conventional GITHUB_TOKEN), then
    // the file's tokenFile or tokenEnv.
    let github_token = if let Some(f) = &flags.github_token_file {
        TokenSource::File(f.clone())
    } else if let Some(f) = env.var("UPKEEP_GITHUB_TOKEN_FILE") {
        TokenSource::File(PathBuf::from(f))
    } else if env.var("GITHUB_TOKEN").is_some() {
        TokenSource::Env("GITHUB_TOKEN".to_string())
    } else if let Some(f) = &github.token_file {
        TokenSource::File(f.clone())
    } else if let Some(name) = &github.token_env {
        TokenSource::Env(name.clone())
    } else {
        TokenSource::None
    };
    let mut helm_mirrors = Vec::new();
    for (from, to) in up.helm_mirrors.iter().flatten() {
        let origin = key(&format!("upstreams.helmMirrors.{from}"));
        helm_mirrors.push((
            from.trim_end_matches('/').to_string(),
            check_url(&origin, to)?,
        ));
    }

    let cache = file.cache.clone().unwrap_or_default();
    // Without HOME (a bare CronJob or systemd unit) the cache still needs a
    // home; a per-user directory under the temp dir is safe to lose.
    let cache_dir = flags
        .cache_dir
        .clone()
        .or_else(|| env.var("UPKEEP_CACHE_DIR").map(PathBuf::from))
        .or(cache.dir.clone())
        .or_else(|| xdg(env, "XDG_CACHE_HOME", ".cache"))
        .unwrap_or_else(|| std::env::temp_dir().join("upkeep-cache"));
    let state_dir = env
        .var("UPKEEP_STATE_DIR")
        .map(PathBuf::from)
        .or(file.state_dir.clone())
        .or_else(|| xdg(env, "XDG_STATE_HOME", ".local/state"))
        .unwrap_or_else(|| cache_dir.join("state"));
    let offline = flags
        .offline
        .then_some(true)
        .or(env_bool(env, "UPKEEP_OFFLINE")?)
        .or(cache.offline)
        .unwrap_or(false);

    let http = file.http.clone().unwrap_or_default();
    let duration = |env_name: &str, file_key: &str, file_val: &Option<String>, default: u64| {
        if let Some(v) = env.var(env_name) {
            return parse_duration(&v)
                .map_err(|m| ConfigError::new(format!("environment {env_name}"), m));
        }
        match file_val {
            Some(v) => parse_duration(v).map_err(|m| ConfigError::new(key(file_key), m)),
            None => Ok(Duration::from_secs(default)),
        }
    };
    let connect_timeout = duration(
        "UPKEEP_CONNECT_TIMEOUT",
        "http.connectTimeout",
        &http.connect_timeout,
        10,
    )?;
    let timeout = duration("UPKEEP_HTTP_TIMEOUT", "http.timeout", &http.timeout, 30)?;
    let max_body_bytes = match &http.max_body_size {
        Some(v) => parse_size(v).map_err(|m| ConfigError::new(key("http.maxBodySize"), m))?,
        None => 64 * 1024 * 1024,
    };
    let mut extra_ca_pem = Vec::new();
    for (i, f) in http.ca_files.iter().flatten().enumerate() {
        let pem = std::fs::read(f).map_err(|e| {
            ConfigError::new(
                key(&format!("http.caFiles[{i}]")),
                format!("{}: {e}", f.display()),
            )
        })?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(ConfigError::new(
                key(&format!("http.caFiles[{i}]")),
                format!("{}: no PEM certificate in it", f.display()),
            ));
        }
        extra_ca_pem.push(pem);
    }
    let retries = http.retries.unwrap_or(3);
    if retries > 10 {
        return Err(ConfigError::new(
            key("http.retries"),
            format!("{retries} is more than the 10 retries allowed"),
        ));
    }

    let mut known_bad = Vec::new();
    let releases = file.releases.clone().unwrap_or_default();
    for (component, versions) in releases.known_bad.iter().flatten() {
        if !KNOWN_BAD_COMPONENTS.contains(&component.as_str()) {
            return Err(ConfigError::new(
                key(&format!("releases.knownBad.{component}")),
                format!(
                    "unknown component; expected one of {}",
                    KNOWN_BAD_COMPONENTS.join(", ")
                ),
            ));
        }
        for (i, version) in versions.iter().enumerate() {
            known_bad.push(KnownBad {
                component: component.clone(),
                version: version.clone(),
                origin: key(&format!("releases.knownBad.{component}[{i}]")),
            });
        }
    }

    let run = file.run.clone().unwrap_or_default();
    let step_timeout = match &run.step_timeout {
        Some(t) => parse_duration(t).map_err(|e| ConfigError::new(key("run.stepTimeout"), e))?,
        None => Duration::from_secs(15 * 60),
    };
    let windows = file
        .windows
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, w)| (key(&format!("windows[{i}]")), w.clone()))
        .collect();

    let cluster = file.cluster.clone().unwrap_or_default();
    let gitops = file.gitops.clone().unwrap_or_default();
    Ok(Settings {
        config_path,
        github_api,
        github_token,
        channels_url,
        helm_mirrors,
        cache_dir,
        state_dir,
        offline,
        connect_timeout,
        timeout,
        retries,
        max_body_bytes,
        extra_ca_pem,
        insecure_skip_tls_verify: http.insecure_skip_tls_verify.unwrap_or(false),
        kubeconfig: flags
            .kubeconfig
            .clone()
            .or_else(|| env.var("KUBECONFIG").map(PathBuf::from))
            .or(cluster.kubeconfig),
        context: flags.context.clone().or(cluster.context),
        gitops_dir: flags
            .gitops_dir
            .clone()
            .or_else(|| env.var("UPKEEP_GITOPS_DIR").map(PathBuf::from))
            .or(gitops.dir),
        known_bad,
        policy: file.policy.clone().unwrap_or_default(),
        windows,
        snapshot: file.snapshot.clone().unwrap_or_default(),
        run,
        step_timeout,
        k3s: file.k3s.clone().unwrap_or_default(),
        notify: file.notify.clone().unwrap_or_default(),
        metrics: file.metrics.clone().unwrap_or_default(),
    })
}

/// The JSON Schema of `upkeep.yaml`, committed as `schemas/upkeep-config.json`.
pub fn schema() -> serde_json::Value {
    schemars::schema_for!(ConfigFile).to_value()
}
