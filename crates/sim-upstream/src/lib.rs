//! sim-upstream: a local HTTP server that replays recorded upstream release data — the GitHub
//! releases API, the k3s channel server and static Helm repositories — from a fixture
//! directory, with ETag/304, GitHub-style rate limiting, a request log and fault injection.
//!
//! The machines this project is built and tested on cannot reach GitHub or update.k3s.io;
//! every detector test runs against this server instead. Start it in-process with
//! [`SimUpstream::start`] or as the `sim-upstream` binary. The fixture layout and what the
//! recorded data holds are documented in `testdata/upstream/README.md`.
//!
//! # Behaviour every response shares
//! - A strong `ETag` (the quoted sha256 of the body). A 200 whose ETag matches `If-None-Match`
//!   (weak comparison, `*` allowed) becomes `304 Not Modified` with an empty body.
//! - `X-RateLimit-Limit`, `-Remaining`, `-Reset` (epoch seconds, hourly window), `-Used`,
//!   `-Resource: core`. Only `/repos/...` requests spend the budget (every one, including 304s,
//!   except a 304 to a request with an `Authorization` header, as on GitHub). When it is spent,
//!   `/repos/...` answers 403 with GitHub's "API rate limit exceeded" JSON until the reset.
//! - One [`RequestRecord`] in the request log (memory, and `--request-log FILE` as JSON lines).
//!
//! # SIM.yaml (`--config`) and `POST /_admin/faults`
//! ```yaml
//! rateLimit: 60          # GitHub-path requests per hour (the --rate-limit flag wins)
//! seed: 42               # seed of the RNG deciding `rate` (deterministic tests)
//! faults:                # evaluated in order; latency adds up, the first other hit wins
//! - path: /repos/*/releases   # glob: `*` any run of characters (also `/`), `?` one
//!   kind: error               # error | latency | too-many-requests | drop | truncate |
//!   status: 503               #   wrong-content-type | stall | garbage
//!   rate: 0.5                 # probability per matching request (default 1)
//!   times: 3                  # only the next 3 hits ("fail the next N"; default unlimited)
//! - prefix: /v1-release/      # or match by prefix
//!   method: GET               # optional
//!   kind: latency
//!   delayMs: 250              # latency: added delay; stall: pause after half the body
//! - prefix: /helm/
//!   kind: too-many-requests
//!   retryAfter: 30            # seconds in Retry-After (default 60)
//! ```
//! `wrong-content-type` takes `contentType` (default `text/html; charset=utf-8`); `truncate`
//! sends the full `Content-Length` but half the body, then closes; `drop` closes without an
//! answer (logged with `status: null`); `stall` sends the headers and half the body, waits
//! `delayMs` (default 60000), then the rest; `garbage` answers 200 with `sizeBytes` (default
//! 10 MiB, at most 256 MiB) of seeded pseudo-random bytes in place of the body. The admin endpoint takes the same document as JSON
//! (`{"seed": 1, "faults": [...]}`), replaces the faults and reseeds; invalid input gets 400.
//!
//! # Admin endpoints (never logged, limited or faulted)
//! `GET /_admin/requests` (the log as a JSON array), `DELETE /_admin/requests` (clears the
//! in-memory log, not the file), `GET /_admin/faults` (current rules, with `times` left),
//! `POST /_admin/faults`, `DELETE /_admin/faults`.

mod faults;
mod fixture;
mod routes;
mod server;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use faults::{FaultConfig, FaultKind, FaultRule};
pub use server::{SimOptions, SimUpstream};

/// GitHub's limit for unauthenticated clients, used when neither the CLI nor SIM.yaml set one.
pub const DEFAULT_RATE_LIMIT: u64 = 60;

/// The committed fixture, `testdata/upstream/` of this workspace, for other crates' tests.
pub fn workspace_fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/upstream")
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A fixture file is missing, unreadable or malformed (bad input: exit 2).
    #[error("bad fixture {}: {message}", path.display())]
    Fixture { path: PathBuf, message: String },
    /// SIM.yaml is unreadable or malformed (bad input: exit 2).
    #[error("bad config {}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    /// The listen address could not be bound (environment: exit 3).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The request log could not be opened (environment: exit 3).
    #[error("cannot open request log {}: {source}", path.display())]
    RequestLog {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SimError {
    /// True when the error is the user's input (fixture or config) rather than the environment.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, SimError::Fixture { .. } | SimError::Config { .. })
    }
}

/// SIM.yaml: the rate limit and the faults to inject.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimConfig {
    /// Requests per hour on the GitHub paths; the `--rate-limit` flag overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u64>,
    /// Seed of the fault RNG.
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub faults: Vec<FaultRule>,
}

impl SimConfig {
    /// Reads and validates a SIM.yaml file (YAML or JSON).
    pub fn load(path: &std::path::Path) -> Result<SimConfig, SimError> {
        let err = |message: String| SimError::Config {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let config: SimConfig = if text.trim().is_empty() {
            SimConfig::default()
        } else {
            serde_saphyr::from_str(&text).map_err(|e| err(one_line(&e.to_string())))?
        };
        config.fault_config().validate().map_err(err)?;
        Ok(config)
    }

    pub fn fault_config(&self) -> FaultConfig {
        FaultConfig {
            seed: self.seed,
            faults: self.faults.clone(),
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One served request, as written to `--request-log` and returned by `GET /_admin/requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// 1, 2, 3... in the order requests arrived.
    pub seq: u64,
    /// RFC 3339 UTC time the request arrived.
    pub time: String,
    pub method: String,
    /// The path as sent (still percent-encoded), without the query.
    pub path: String,
    pub query: Option<String>,
    /// True when the request carried an `Authorization` header (its value is never recorded).
    pub authorized: bool,
    /// None when the connection was dropped without an answer.
    pub status: Option<u16>,
    /// True when the answer was 304 Not Modified.
    pub not_modified: bool,
    /// The injected fault, if any (`error`, `drop`, `stall`, ...).
    pub fault: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_sim_yaml_example_is_valid() {
        let src = include_str!("lib.rs");
        let start = src.find("//! ```yaml\n").unwrap() + "//! ```yaml\n".len();
        let end = start + src[start..].find("//! ```\n").unwrap();
        let yaml: String = src[start..end]
            .lines()
            .map(|l| {
                l.strip_prefix("//! ")
                    .unwrap_or(l.trim_start_matches("//!"))
            })
            .collect::<Vec<_>>()
            .join("\n");
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sim.yaml");
        std::fs::write(&p, yaml).unwrap();
        let c = SimConfig::load(&p).unwrap();
        assert_eq!(c.faults.len(), 3);
        assert_eq!(c.faults[2].kind, FaultKind::TooManyRequests);
    }

    #[test]
    fn sim_config_yaml_and_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sim.yaml");
        std::fs::write(
            &p,
            "rateLimit: 5\nseed: 9\nfaults:\n- path: /repos/*\n  kind: error\n  status: 502\n  times: 2\n",
        )
        .unwrap();
        let c = SimConfig::load(&p).unwrap();
        assert_eq!(c.rate_limit, Some(5));
        assert_eq!(c.faults[0].status, Some(502));
        std::fs::write(&p, "faults:\n- kind: error\n").unwrap();
        let e = SimConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("sim.yaml") && e.contains("faults[0]"), "{e}");
        std::fs::write(&p, "bogus: 1\n").unwrap();
        let e = SimConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("sim.yaml") && !e.contains('\n'), "{e}");
    }
}
