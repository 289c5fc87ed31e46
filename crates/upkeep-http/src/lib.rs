//! The one HTTP client through which every upkeep tool reaches its upstreams
//! (the GitHub releases API, the k3s channel server, Helm repositories, OCI
//! registries).
//!
//! It exists so that every tool behaves the same at the network edge:
//! - connect and total timeouts, and bounded retries with exponential backoff
//!   and jitter on connection errors, timeouts, 5xx and 429, honouring
//!   `Retry-After` and GitHub's `X-RateLimit-Remaining`/`X-RateLimit-Reset`,
//!   but never waiting longer than configured;
//! - a response size limit enforced while reading;
//! - an on-disk cache revalidated with `If-None-Match`/`If-Modified-Since`,
//!   so an unchanged upstream answers 304 and the body comes from disk, and an
//!   `offline` mode that answers from the cache only;
//! - tokens read from the environment or a file, sent only to the host they
//!   belong to, and masked by [`redact`] in every error and log line;
//! - TLS verification always on, with extra root CAs for self-signed homelab
//!   registries.
//!
//! Errors say whether the environment is at fault ([`HttpError::is_environment`],
//! exit code 3) or the request or response is invalid (exit code 2).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use upkeep_http::{AuthScheme, BaseUrl, ClientConfig, Request, Token, UpstreamClient};
//!
//! let github = BaseUrl::parse("https://api.github.com/")?;
//! let token = Token::from_env("GITHUB_TOKEN", AuthScheme::GitHub, &github)?;
//! let client = UpstreamClient::new(ClientConfig {
//!     cache_dir: Some("/home/me/.cache/upkeep".into()),
//!     ..ClientConfig::default()
//! })?;
//! let mut request = Request::new(github.join("repos/k3s-io/k3s/releases?per_page=100")?)
//!     .accept("application/vnd.github+json");
//! if let Some(token) = &token {
//!     request = request.token(token);
//! }
//! let releases: serde_json::Value = client.get(&request).await?.json()?;
//! # let _ = releases;
//! # Ok(())
//! # }
//! ```

mod base_url;
mod cache;
mod client;
mod config;
mod error;

mod response;
mod retry;
mod token;

pub use base_url::BaseUrl;
pub use client::{Request, UpstreamClient};
pub use config::ClientConfig;
pub use error::HttpError;
pub use response::Response;
pub use token::{AuthScheme, Token, TokenError};
pub use upkeep_redact::redact;
