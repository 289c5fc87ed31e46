use std::time::Duration;

use jiff::Timestamp;
use url::Url;

use upkeep_redact::redact;

/// Why a request to an upstream failed. Every variant names the URL, already
/// redacted, so the message can be printed or logged as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL cannot be fetched by this client (not http/https, no host, or
    /// escapes a base URL).
    #[error("invalid URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// The client could not be built from its configuration (bad CA PEM...).
    #[error("HTTP client configuration: {0}")]
    Config(String),

    /// No connection or the connection broke, after all retries.
    #[error("cannot reach {url} (after {attempts} attempt(s)): {detail}")]
    Unreachable {
        url: String,
        detail: String,
        attempts: u32,
    },

    /// The upstream did not answer within the configured time, after all retries.
    #[error("timed out fetching {url} (after {attempts} attempt(s)): {detail}")]
    Timeout {
        url: String,
        detail: String,
        attempts: u32,
    },

    /// The upstream answered with an error status that retrying cannot fix,
    /// or a 5xx that persisted through every retry.
    #[error("{url} answered HTTP {status} (after {attempts} attempt(s))")]
    Status {
        url: String,
        status: u16,
        attempts: u32,
        /// The `WWW-Authenticate` challenge of a 401, which OCI registries
        /// use to say where to get an anonymous pull token.
        www_authenticate: Option<String>,
    },

    /// The upstream rate-limited us for longer than we are willing to wait.
    #[error("rate limited by {url}{}", describe_reset(*.reset_at))]
    RateLimited {
        url: String,
        reset_at: Option<Timestamp>,
    },

    /// The body was larger than the configured limit; nothing was cached.
    #[error("response from {url} is larger than the limit of {limit} bytes")]
    BodyTooLarge { url: String, limit: u64 },

    /// A redirect without a usable `Location`, or too many redirects.
    #[error("bad redirect from {url}: {detail}")]
    BadRedirect { url: String, detail: String },

    /// The body is not what the caller expected (see [`crate::Response::json`]).
    #[error("invalid response from {url}: {detail}")]
    InvalidContent { url: String, detail: String },

    /// Offline mode and the cache has no (intact) entry for the URL.
    #[error("offline: {url} is not in the cache")]
    OfflineMiss { url: String },
}

fn describe_reset(reset_at: Option<Timestamp>) -> String {
    match reset_at {
        Some(at) => {
            let secs = at.duration_since(Timestamp::now()).as_secs().max(0);
            format!("; the limit resets at {at} (in {secs}s)")
        }
        None => String::new(),
    }
}

impl HttpError {
    /// True when the failure is in the environment (network down, upstream
    /// failing or refusing us, offline cache miss) rather than in what was
    /// asked or what came back. Binaries map true to exit code 3; false means
    /// bad input or an invalid response (exit 2).
    ///
    /// A 401/403/407 counts as environment (permission denied); other 4xx,
    /// such as a 404 for a misspelt chart, point at the caller's input.
    pub fn is_environment(&self) -> bool {
        match self {
            HttpError::Unreachable { .. }
            | HttpError::Timeout { .. }
            | HttpError::RateLimited { .. }
            | HttpError::OfflineMiss { .. } => true,
            HttpError::Status { status, .. } => {
                *status >= 500 || matches!(status, 401 | 403 | 407 | 408 | 429)
            }
            HttpError::InvalidUrl { .. }
            | HttpError::Config(_)
            | HttpError::BodyTooLarge { .. }
            | HttpError::BadRedirect { .. }
            | HttpError::InvalidContent { .. } => false,
        }
    }

    /// The HTTP status of a [`HttpError::Status`] error, so callers can treat
    /// e.g. a 404 as "no such release" instead of a failure.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The form in which URLs appear in errors and logs.
pub(crate) fn shown(url: &Url) -> String {
    redact(url.as_str())
}

/// Describe a reqwest error without its URL (we name the URL ourselves,
/// redacted) and with its causes, which carry the useful part ("connection
/// refused", "invalid peer certificate").
pub(crate) fn describe_reqwest(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    redact(&text)
}

/// Human form of a wait, for log lines.
pub(crate) fn secs(d: Duration) -> String {
    format!("{d:.1?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_classification() {
        let url = || "https://example.com/".to_owned();
        let status = |status| HttpError::Status {
            url: url(),
            status,
            attempts: 1,
            www_authenticate: None,
        };
        assert!(status(503).is_environment());
        assert!(status(401).is_environment());
        assert!(!status(404).is_environment());
        assert!(HttpError::OfflineMiss { url: url() }.is_environment());
        assert!(
            HttpError::RateLimited {
                url: url(),
                reset_at: None
            }
            .is_environment()
        );
        assert!(
            !HttpError::BodyTooLarge {
                url: url(),
                limit: 1
            }
            .is_environment()
        );
        assert!(
            !HttpError::InvalidContent {
                url: url(),
                detail: "x".into()
            }
            .is_environment()
        );
        assert_eq!(status(404).status(), Some(404));
    }

    #[test]
    fn rate_limited_message_says_when_it_resets() {
        let reset_at = Timestamp::now() + jiff::SignedDuration::from_secs(3600);
        let msg = HttpError::RateLimited {
            url: "https://api.github.com/x".into(),
            reset_at: Some(reset_at),
        }
        .to_string();
        assert!(
            msg.contains("rate limited by https://api.github.com/x"),
            "{msg}"
        );
        assert!(msg.contains(&reset_at.to_string()), "{msg}");
    }
}
