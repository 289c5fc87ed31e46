use std::path::PathBuf;
use std::time::Duration;

/// How an [`crate::UpstreamClient`] behaves. Build it with struct update
/// syntax over [`ClientConfig::default()`]; the config layer of the binaries
/// fills it from flags, environment and `upkeep.yaml`.
#[derive(Clone)]
pub struct ClientConfig {
    /// Longest time to establish a TCP + TLS connection.
    pub connect_timeout: Duration,
    /// Longest time for one HTTP exchange, from connecting until the last
    /// byte of the body. Each retry gets this budget again.
    pub timeout: Duration,
    /// Retries after the first attempt, for connection errors, timeouts, 5xx
    /// and 429. Zero disables retrying.
    pub max_retries: u32,
    /// First backoff delay; doubles on each retry, with jitter.
    pub backoff_base: Duration,
    /// Upper bound of one backoff delay.
    pub backoff_cap: Duration,
    /// Longest we wait because an upstream asked us to (`Retry-After`, a
    /// GitHub rate-limit reset). Longer requests fail at once instead, with
    /// an error that says when to try again.
    pub max_wait: Duration,
    /// Largest body accepted; a larger one is an error and is not cached.
    pub max_body_bytes: u64,
    /// Directory of the on-disk cache (normally the XDG cache dir of
    /// upkeep); the client keeps its files in an `http/` folder inside it.
    /// `None` disables caching.
    pub cache_dir: Option<PathBuf>,
    /// Serve from the cache only and never touch the network.
    pub offline: bool,
    /// `User-Agent` header; GitHub rejects requests without one.
    pub user_agent: String,
    /// Extra trusted root CAs, each a PEM file's contents (may hold several
    /// certificates), for self-signed homelab registries and tests. They are
    /// added to the system roots, not a replacement for them.
    pub extra_root_certs_pem: Vec<Vec<u8>>,
    /// Accept any TLS certificate. Off by default; only for an explicit
    /// `--insecure-skip-tls-verify`. Building a client with it on logs a warning.
    pub danger_accept_invalid_certs: bool,
}

impl std::fmt::Debug for ClientConfig {
    // Written by hand only to show the CA PEMs as a count, not as bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_cap", &self.backoff_cap)
            .field("max_wait", &self.max_wait)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("cache_dir", &self.cache_dir)
            .field("offline", &self.offline)
            .field("user_agent", &self.user_agent)
            .field("extra_root_certs_pem", &self.extra_root_certs_pem.len())
            .field(
                "danger_accept_invalid_certs",
                &self.danger_accept_invalid_certs,
            )
            .finish()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_retries: 3,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(10),
            max_wait: Duration::from_secs(60),
            max_body_bytes: 10 * 1024 * 1024,
            cache_dir: None,
            offline: false,
            user_agent: concat!("upkeep/", env!("CARGO_PKG_VERSION")).to_owned(),
            extra_root_certs_pem: Vec::new(),
            danger_accept_invalid_certs: false,
        }
    }
}
