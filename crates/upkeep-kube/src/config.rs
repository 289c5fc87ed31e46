//! Finding the cluster as kubectl does: `--kubeconfig`, else the files in `KUBECONFIG`
//! (merged, first wins), else `~/.kube/config`, else the pod's service account; then the
//! context named by `--context` or `current-context`.
//!
//! kube-rs can do most of this itself, but its errors do not say which file was wrong; here
//! every file is read on its own so a failure names it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use crate::error::{KubeError, chain, headline, one_line};

/// Default time one API call may take, end to end.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Connecting is quick or it is not going to happen.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the cluster: what a tool's `--kubeconfig`, `--context`, `--namespace` and
/// `--timeout` flags say.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `--kubeconfig`: this file only; `KUBECONFIG` and `~/.kube/config` are not read.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`: instead of the kubeconfig's `current-context`.
    pub context: Option<String>,
    /// Overrides the context's namespace as the default for namespaced calls.
    pub namespace: Option<String>,
    /// How long any single API call may take.
    pub timeout: Duration,
    /// The largest response body accepted (watches excepted).
    pub max_response_bytes: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            kubeconfig: None,
            context: None,
            namespace: None,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: crate::limit::DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

impl ConnectOptions {
    pub fn kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig = Some(path.into());
        self
    }

    pub fn context(mut self, name: impl Into<String>) -> Self {
        self.context = Some(name.into());
        self
    }

    pub fn namespace(mut self, name: impl Into<String>) -> Self {
        self.namespace = Some(name.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn max_response_bytes(mut self, max: usize) -> Self {
        self.max_response_bytes = max;
        self
    }
}

/// The parts of the process environment that decide where the configuration comes from,
/// separate so tests can vary them without touching the process environment.
#[derive(Debug, Clone, Default)]
pub struct KubeEnv {
    /// `KUBECONFIG`: a list of files in the platform's path-list syntax.
    pub kubeconfig: Option<OsString>,
    /// The home directory, for `~/.kube/config`.
    pub home: Option<PathBuf>,
    /// Whether `KUBERNETES_SERVICE_HOST` is set, i.e. we run in a pod.
    pub in_cluster: bool,
}

impl KubeEnv {
    pub fn from_process() -> Self {
        KubeEnv {
            kubeconfig: std::env::var_os("KUBECONFIG"),
            home: std::env::home_dir(),
            in_cluster: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|v| !v.is_empty()),
        }
    }
}

/// A resolved configuration and where it came from, for messages.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: kube::Config,
    /// The kubeconfig file(s) read, or "in-cluster service account".
    pub sources: String,
    /// The context used, when a kubeconfig was.
    pub context: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) max_response_bytes: usize,
}

impl LoadedConfig {
    pub fn server(&self) -> String {
        self.config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string()
    }
}

/// Resolves the configuration from the process environment.
pub fn load_config(opts: &ConnectOptions) -> Result<LoadedConfig, KubeError> {
    load_config_in(opts, &KubeEnv::from_process())
}

/// Resolves the configuration as kubectl would, given `env`.
pub fn load_config_in(opts: &ConnectOptions, env: &KubeEnv) -> Result<LoadedConfig, KubeError> {
    let mut loaded = match kubeconfig_files(opts, env)? {
        Some(files) => from_files(&files, opts.context.as_deref())?,
        None if env.in_cluster => {
            let config = kube::Config::incluster()
                .map_err(|e| KubeError::InCluster { detail: chain(&e) })?;
            LoadedConfig {
                config,
                sources: "in-cluster service account".to_string(),
                context: None,
                timeout: opts.timeout,
                max_response_bytes: opts.max_response_bytes,
            }
        }
        None => {
            return Err(KubeError::NoConfig {
                detail: "no --kubeconfig, KUBECONFIG is unset, ~/.kube/config does not exist, \
                         and this is not a pod (KUBERNETES_SERVICE_HOST unset)"
                    .to_string(),
            });
        }
    };
    if let Some(ns) = &opts.namespace {
        loaded.config.default_namespace = ns.clone();
    }
    loaded.timeout = opts.timeout;
    loaded.max_response_bytes = opts.max_response_bytes;
    loaded.config.connect_timeout = Some(opts.timeout.min(MAX_CONNECT_TIMEOUT));
    loaded.config.write_timeout = Some(opts.timeout);
    // No read timeout on the connection: it would cut idle watches. Every call is bounded
    // by its own deadline instead (see `Cluster`).
    loaded.config.read_timeout = None;
    Ok(loaded)
}

/// The kubeconfig files to read, in precedence order; `None` when there are none.
fn kubeconfig_files(
    opts: &ConnectOptions,
    env: &KubeEnv,
) -> Result<Option<Vec<PathBuf>>, KubeError> {
    if let Some(path) = &opts.kubeconfig {
        return Ok(Some(vec![path.clone()]));
    }
    if let Some(list) = env.kubeconfig.as_ref().filter(|v| !v.is_empty()) {
        let named: Vec<PathBuf> = std::env::split_paths(list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        // client-go skips KUBECONFIG entries that do not exist; all of them missing is a mistake.
        let existing: Vec<PathBuf> = named.iter().filter(|p| p.exists()).cloned().collect();
        if existing.is_empty() && !named.is_empty() {
            return Err(KubeError::Kubeconfig {
                sources: join_paths(&named),
                problem: "no such file (named by KUBECONFIG)".to_string(),
            });
        }
        if !existing.is_empty() {
            return Ok(Some(existing));
        }
    }
    if let Some(home) = &env.home {
        let default = home.join(".kube").join("config");
        if default.exists() {
            return Ok(Some(vec![default]));
        }
    }
    Ok(None)
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_one(path: &Path) -> Result<Kubeconfig, KubeError> {
    let bad = |problem: String| KubeError::Kubeconfig {
        sources: path.display().to_string(),
        problem,
    };
    // Read once ourselves first: kube's error for this does not say what went wrong in one line.
    match std::fs::metadata(path) {
        Err(e) => return Err(bad(format!("cannot read: {}", one_line(&e.to_string())))),
        Ok(m) if m.is_dir() => return Err(bad("is a directory, not a file".to_string())),
        Ok(_) => {}
    }
    if let Err(e) = std::fs::File::open(path) {
        return Err(bad(format!("cannot read: {}", one_line(&e.to_string()))));
    }
    // `read_from` also makes relative certificate/key/token paths absolute, as kubectl does.
    Kubeconfig::read_from(path).map_err(|e| match e {
        KubeconfigError::Parse(p) => bad(format!("malformed YAML: {}", headline(&p.to_string()))),
        KubeconfigError::ReadConfig(io, _) => {
            bad(format!("cannot read: {}", one_line(&io.to_string())))
        }
        other => bad(chain(&other)),
    })
}

fn from_files(files: &[PathBuf], context: Option<&str>) -> Result<LoadedConfig, KubeError> {
    let sources = join_paths(files);
    let mut merged: Option<Kubeconfig> = None;
    for path in files {
        let kc = read_one(path)?;
        merged = Some(match merged {
            None => kc,
            Some(m) => m.merge(kc).map_err(|e| KubeError::Kubeconfig {
                sources: path.display().to_string(),
                problem: format!("cannot merge with the files before it: {}", chain(&e)),
            })?,
        });
    }
    let kc = merged.unwrap_or_default();
    let name = match context.or(kc.current_context.as_deref()) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => {
            return Err(KubeError::Kubeconfig {
                sources,
                problem: "no current-context set and no --context given".to_string(),
            });
        }
    };
    let Some(ctx) = kc.contexts.iter().find(|c| c.name == name) else {
        let defined: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        return Err(KubeError::MissingContext {
            sources,
            context: name,
            defined: if defined.is_empty() {
                "none".to_string()
            } else {
                defined.join(", ")
            },
        });
    };
    let bad_context = |problem: String| KubeError::BadContext {
        sources: sources.clone(),
        context: name.clone(),
        problem,
    };
    let Some(ctx_body) = &ctx.context else {
        return Err(bad_context("the context entry is empty".to_string()));
    };
    let cluster_name = &ctx_body.cluster;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| &c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref());
    let Some(cluster) = cluster else {
        return Err(bad_context(format!(
            "cluster \"{cluster_name}\" is not defined"
        )));
    };
    match cluster.server.as_deref() {
        None | Some("") => {
            return Err(bad_context(format!(
                "cluster \"{cluster_name}\" has no server"
            )));
        }
        Some(server) => {
            let uri: http::Uri = server.parse().map_err(|e: http::uri::InvalidUri| {
                bad_context(format!("server \"{server}\" is not a URL: {e}"))
            })?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(bad_context(format!(
                    "server \"{server}\" is not an http(s) URL with a host"
                )));
            }
        }
    }
    let options = KubeConfigOptions {
        context: Some(name.clone()),
        ..Default::default()
    };
    // `from_custom_kubeconfig` is async only by signature; it does no I/O beyond reading the
    // CA/cert files the kubeconfig names, so blocking on it here is fine.
    let config = futures_util::FutureExt::now_or_never(kube::Config::from_custom_kubeconfig(
        kc.clone(),
        &options,
    ))
    .ok_or_else(|| bad_context("configuration loading did not complete".to_string()))?
    .map_err(|e| bad_context(chain(&e)))?;
    Ok(LoadedConfig {
        config,
        sources,
        context: Some(name),
        timeout: DEFAULT_TIMEOUT,
        max_response_bytes: crate::limit::DEFAULT_MAX_RESPONSE_BYTES,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with_home(home: &Path) -> KubeEnv {
        KubeEnv {
            kubeconfig: None,
            home: Some(home.to_path_buf()),
            in_cluster: false,
        }
    }

    const GOOD: &str = "apiVersion: v1\nkind: Config\ncurrent-context: a\n\
        clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\n\
        contexts: [{name: a, context: {cluster: c, user: u, namespace: apps}}, {name: b, context: {cluster: c}}]\n\
        users: [{name: u, user: {token: secret}}]\n";

    #[test]
    fn precedence_is_flag_then_env_then_home() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".kube")).unwrap();
        std::fs::write(home.join(".kube/config"), GOOD.replace("6443", "1111")).unwrap();
        let env_file = dir.path().join("env.yaml");
        std::fs::write(&env_file, GOOD.replace("6443", "2222")).unwrap();
        let flag_file = dir.path().join("flag.yaml");
        std::fs::write(&flag_file, GOOD.replace("6443", "3333")).unwrap();

        let mut env = env_with_home(&home);
        let from_home = load_config_in(&ConnectOptions::default(), &env).unwrap();
        assert_eq!(from_home.server(), "https://127.0.0.1:1111");
        assert_eq!(from_home.config.default_namespace, "apps");

        let missing = dir.path().join("missing.yaml");
        env.kubeconfig = Some(std::env::join_paths([&missing, &env_file]).unwrap());
        let from_env = load_config_in(&ConnectOptions::default(), &env).unwrap();
        assert_eq!(from_env.server(), "https://127.0.0.1:2222");
        assert_eq!(from_env.sources, env_file.display().to_string());

        let opts = ConnectOptions::default()
            .kubeconfig(&flag_file)
            .context("b")
            .namespace("other");
        let from_flag = load_config_in(&opts, &env).unwrap();
        assert_eq!(from_flag.server(), "https://127.0.0.1:3333");
        assert_eq!(from_flag.context.as_deref(), Some("b"));
        assert_eq!(from_flag.config.default_namespace, "other");
    }

    #[test]
    fn kubeconfig_env_files_merge_first_wins() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        std::fs::write(&first, GOOD).unwrap();
        // The second file redefines cluster c (ignored: first wins) and adds context z.
        let second = dir.path().join("second");
        std::fs::write(
            &second,
            "apiVersion: v1\nkind: Config\ncurrent-context: z\n\
             clusters: [{name: c, cluster: {server: 'https://10.0.0.1:1'}}, {name: d, cluster: {server: 'http://127.0.0.1:9'}}]\n\
             contexts: [{name: z, context: {cluster: d}}]\n",
        )
        .unwrap();
        let env = KubeEnv {
            kubeconfig: Some(std::env::join_paths([&first, &second]).unwrap()),
            home: None,
            in_cluster: false,
        };
        let current = load_config_in(&ConnectOptions::default(), &env).unwrap();
        assert_eq!(current.context.as_deref(), Some("a"));
        assert_eq!(current.server(), "https://127.0.0.1:6443");
        assert_eq!(
            current.sources,
            format!("{}, {}", first.display(), second.display())
        );
        let z = load_config_in(&ConnectOptions::default().context("z"), &env).unwrap();
        assert_eq!(z.server(), "http://127.0.0.1:9");
        assert_eq!(z.config.default_namespace, "default");
        let err = load_config_in(&ConnectOptions::default().context("y"), &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "kubeconfig {}, {}: context \"y\" not found (defined: a, b, z)",
                first.display(),
                second.display()
            )
        );
    }

    #[test]
    fn kubeconfig_env_with_only_missing_files_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let env = KubeEnv {
            kubeconfig: Some(dir.path().join("nope").into_os_string()),
            home: None,
            in_cluster: false,
        };
        let err = load_config_in(&ConnectOptions::default(), &env).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(err.to_string().contains("KUBECONFIG"), "{err}");
    }

    #[test]
    fn nothing_configured_is_an_environment_error() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            load_config_in(&ConnectOptions::default(), &env_with_home(dir.path())).unwrap_err();
        assert!(matches!(err, KubeError::NoConfig { .. }), "{err}");
        assert!(err.is_environment());
    }

    #[test]
    fn in_cluster_without_a_service_account_is_an_environment_error() {
        let dir = tempfile::tempdir().unwrap();
        let env = KubeEnv {
            in_cluster: true,
            ..env_with_home(dir.path())
        };
        let err = load_config_in(&ConnectOptions::default(), &env).unwrap_err();
        assert!(matches!(err, KubeError::InCluster { .. }), "{err}");
        assert!(err.is_environment());
        assert!(!err.to_string().contains('\n'));
    }
}
