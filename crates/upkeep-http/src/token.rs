use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::header::HeaderValue;
use url::Url;

use crate::base_url::BaseUrl;
use upkeep_redact::register_secret;

/// How a token is presented in the `Authorization` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: Bearer <token>` (OCI registries, most APIs).
    Bearer,
    /// `Authorization: token <token>`, GitHub's classic form.
    GitHub,
}

/// A credential for one upstream.
///
/// It is bound to the host and port of the upstream's base URL and is only
/// ever sent, as an `Authorization` header, to that origin: never to another
/// host, including a redirect target. Its value is registered for
/// [`crate::redact`] as soon as it is created, and `Debug`/`Display` print
/// `***`. It never comes from argv: only from an environment variable or a
/// file.
#[derive(Clone)]
pub struct Token {
    secret: Arc<str>,
    scheme: AuthScheme,
    host: String,
    port: Option<u16>,
}

/// Why a token could not be loaded. Names the variable or file, never the value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("environment variable {var} is not valid UTF-8")]
    EnvNotUnicode { var: String },
    #[error("cannot read token file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("token from {origin} is empty")]
    Empty { origin: String },
    #[error("token from {origin} contains whitespace or control characters")]
    Malformed { origin: String },
    #[error("token scope {url} has no host")]
    NoHost { url: String },
}

impl Token {
    /// A token with a known value, e.g. an anonymous pull token that an OCI
    /// registry handed out. `origin` says where it came from, for errors.
    pub fn new(
        secret: &str,
        scheme: AuthScheme,
        scope: &BaseUrl,
        origin: &str,
    ) -> Result<Token, TokenError> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(TokenError::Empty {
                origin: origin.to_owned(),
            });
        }
        // Anything that could split or extend the header line is refused, so a
        // token can never inject a header.
        if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TokenError::Malformed {
                origin: origin.to_owned(),
            });
        }
        let url = scope.as_url();
        let host = url
            .host_str()
            .ok_or_else(|| TokenError::NoHost {
                url: url.to_string(),
            })?
            .to_ascii_lowercase();
        let secret: Arc<str> = Arc::from(secret);
        register_secret(&secret);
        Ok(Token {
            secret,
            scheme,
            host,
            port: url.port_or_known_default(),
        })
    }

    /// The token in environment variable `var`, or `None` when it is unset or
    /// empty (an empty `GITHUB_TOKEN=` means "no token" in most CI setups).
    pub fn from_env(
        var: &str,
        scheme: AuthScheme,
        scope: &BaseUrl,
    ) -> Result<Option<Token>, TokenError> {
        match std::env::var(var) {
            Ok(value) if value.trim().is_empty() => Ok(None),
            Ok(value) => Token::new(&value, scheme, scope, &format!("${var}")).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(TokenError::EnvNotUnicode {
                var: var.to_owned(),
            }),
        }
    }

    /// The token in a file (surrounding whitespace trimmed). Warns when the
    /// file is readable by every user; it is not refused, because Kubernetes
    /// mounts Secrets 0644 by default and upkeep runs as a CronJob too.
    pub fn from_file(
        path: &Path,
        scheme: AuthScheme,
        scope: &BaseUrl,
    ) -> Result<Token, TokenError> {
        let read_err = |source| TokenError::Read {
            path: path.to_owned(),
            source,
        };
        let bytes = std::fs::read(path).map_err(read_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o004 != 0
            {
                tracing::warn!(
                    path = %path.display(),
                    "token file is readable by every user; restrict it with chmod 600"
                );
            }
        }
        let origin = path.display().to_string();
        let text = String::from_utf8(bytes).map_err(|_| TokenError::Malformed {
            origin: origin.clone(),
        })?;
        Token::new(&text, scheme, scope, &origin)
    }

    /// Whether this token may be sent to `url`: same host and port as the
    /// scope it was created for.
    pub(crate) fn applies_to(&self, url: &Url) -> bool {
        url.host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
            && url.port_or_known_default() == self.port
    }

    /// The `Authorization` header value, marked sensitive so that reqwest and
    /// hyper never print it in their own debug output.
    pub(crate) fn header_value(&self) -> Option<HeaderValue> {
        let prefix = match self.scheme {
            AuthScheme::Bearer => "Bearer",
            AuthScheme::GitHub => "token",
        };
        let mut value = HeaderValue::from_str(&format!("{prefix} {}", self.secret)).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("secret", &"***")
            .finish()
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> BaseUrl {
        BaseUrl::parse("https://api.github.com/").unwrap()
    }

    #[test]
    fn debug_and_display_hide_the_value() {
        let token =
            Token::new("ghp_tokenUnitDebug42", AuthScheme::GitHub, &scope(), "test").unwrap();
        assert_eq!(token.to_string(), "***");
        let debug = format!("{token:?}");
        assert!(!debug.contains("ghp_tokenUnitDebug42"), "{debug}");
        assert!(debug.contains("api.github.com"), "{debug}");
        assert_eq!(
            crate::redact("header was token ghp_tokenUnitDebug42"),
            "header was token ***"
        );
    }

    #[test]
    fn file_is_trimmed_and_permissions_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gh-token");
        std::fs::write(&path, "  ghp_fromFileUnit77 \n").unwrap();
        let token = Token::from_file(&path, AuthScheme::Bearer, &scope()).unwrap();
        assert_eq!(
            token.header_value().unwrap().to_str().unwrap(),
            "Bearer ghp_fromFileUnit77"
        );
    }

    #[test]
    fn bad_token_files_are_errors_that_name_the_file_not_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n\n").unwrap();
        let err = Token::from_file(&empty, AuthScheme::Bearer, &scope()).unwrap_err();
        assert!(matches!(err, TokenError::Empty { .. }));
        assert!(err.to_string().contains("empty"), "{err}");

        let two_lines = dir.path().join("two");
        std::fs::write(&two_lines, "abcSECRETdef\nX-Injected: 1\n").unwrap();
        let err = Token::from_file(&two_lines, AuthScheme::Bearer, &scope()).unwrap_err();
        assert!(matches!(err, TokenError::Malformed { .. }));
        assert!(!err.to_string().contains("abcSECRETdef"), "{err}");

        let missing = dir.path().join("missing");
        let err = Token::from_file(&missing, AuthScheme::Bearer, &scope()).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    /// Log lines emitted while `f` runs on this thread.
    fn logs_of<T>(f: impl FnOnce() -> T) -> (T, String) {
        #[derive(Clone, Default)]
        struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let out = tracing::subscriber::with_default(subscriber, f);
        let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        (out, logs)
    }

    #[test]
    fn world_readable_token_file_warns_without_the_value() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "worldReadableUnit31\n").unwrap();

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (token, logs) = logs_of(|| Token::from_file(&path, AuthScheme::Bearer, &scope()));
        token.unwrap();
        assert!(logs.contains("WARN"), "{logs}");
        assert!(logs.contains("readable by every user"), "{logs}");
        assert!(logs.contains(&path.display().to_string()), "{logs}");
        assert!(!logs.contains("worldReadableUnit31"), "{logs}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (token, logs) = logs_of(|| Token::from_file(&path, AuthScheme::Bearer, &scope()));
        token.unwrap();
        assert!(logs.is_empty(), "{logs}");
    }

    #[test]
    fn scope_is_host_and_port() {
        let token = Token::new("scopeUnitToken", AuthScheme::Bearer, &scope(), "test").unwrap();
        assert!(token.applies_to(&Url::parse("https://API.github.com/repos").unwrap()));
        assert!(!token.applies_to(&Url::parse("https://github.com/").unwrap()));
        assert!(!token.applies_to(&Url::parse("https://api.github.com:8443/").unwrap()));
        // Plain http is port 80, so a downgrade never carries the token.
        assert!(!token.applies_to(&Url::parse("http://api.github.com/").unwrap()));
    }
}
