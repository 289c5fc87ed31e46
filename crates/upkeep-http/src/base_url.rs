use std::fmt;
use std::str::FromStr;

use url::Url;

use crate::error::{HttpError, shown};

/// The base URL of one upstream (GitHub API, k3s channel server, a Helm
/// repository), overridable per upstream so tests and mirrors can point at a
/// local server such as `http://127.0.0.1:9000/github/`.
///
/// Always http or https with a host; its path always ends in `/`, so that
/// [`BaseUrl::join`] appends to the prefix instead of replacing its last
/// segment, which is what plain `Url::join` would do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BaseUrl(Url);

impl BaseUrl {
    /// Parse and validate a base URL.
    pub fn parse(text: &str) -> Result<Self, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl {
            url: crate::redact(text),
            reason: reason.to_owned(),
        };
        let mut url = Url::parse(text.trim()).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("only http and https are supported"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        // Credentials belong in a token file, never in a URL that ends up in
        // config files, documents and logs.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "credentials in the URL are not allowed; use a token file or environment variable",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a base URL cannot have a query or fragment"));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(BaseUrl(url))
    }

    /// Append a relative path (with an optional query) to the base, keeping
    /// the base's path prefix. A leading `/` is ignored for the same reason.
    /// Fails if the result would leave the base (another host, or `..`
    /// climbing above the prefix).
    pub fn join(&self, path: &str) -> Result<Url, HttpError> {
        let relative = path.trim_start_matches('/');
        let joined = self.0.join(relative).map_err(|e| HttpError::InvalidUrl {
            url: format!("{}{}", shown(&self.0), crate::redact(relative)),
            reason: e.to_string(),
        })?;
        let same_origin = joined.scheme() == self.0.scheme()
            && joined.host_str() == self.0.host_str()
            && joined.port_or_known_default() == self.0.port_or_known_default();
        if !same_origin || !joined.path().starts_with(self.0.path()) {
            return Err(HttpError::InvalidUrl {
                url: shown(&joined),
                reason: format!("leaves the base URL {}", shown(&self.0)),
            });
        }
        Ok(joined)
    }

    /// The base URL itself.
    pub fn as_url(&self) -> &Url {
        &self.0
    }
}

impl FromStr for BaseUrl {
    type Err = HttpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BaseUrl::parse(s)
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_keeps_the_path_prefix() {
        let base = BaseUrl::parse("http://127.0.0.1:9000/github").unwrap();
        assert_eq!(base.to_string(), "http://127.0.0.1:9000/github/");
        assert_eq!(
            base.join("/repos/k3s-io/k3s/releases?per_page=100")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9000/github/repos/k3s-io/k3s/releases?per_page=100"
        );
        let root = BaseUrl::parse("https://api.github.com").unwrap();
        assert_eq!(
            root.join("repos/fluxcd/flux2/releases").unwrap().as_str(),
            "https://api.github.com/repos/fluxcd/flux2/releases"
        );
    }

    #[test]
    fn join_refuses_to_leave_the_base() {
        let base = BaseUrl::parse("http://127.0.0.1:9000/github/").unwrap();
        assert!(base.join("../other").is_err());
        // Leading slashes are dropped, so a scheme-relative path stays inside.
        assert_eq!(
            base.join("//evil.example/x").unwrap().as_str(),
            "http://127.0.0.1:9000/github/evil.example/x"
        );
        assert!(base.join("https://evil.example/").is_err());
    }

    #[test]
    fn parse_rejects_what_cannot_be_a_base() {
        for bad in [
            "ftp://example.com/",
            "not a url",
            "https://user:pw@example.com/",
            "https://example.com/?q=1",
            "file:///etc/passwd",
        ] {
            let err = BaseUrl::parse(bad).unwrap_err();
            assert!(matches!(err, HttpError::InvalidUrl { .. }), "{bad}: {err}");
            assert!(!err.to_string().contains("pw@"), "{err}");
        }
    }
}
