use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{HttpError, shown};

/// Response headers worth keeping: what callers need (content type, Link
/// pagination, OCI digests) and what revalidation needs. Everything else is
/// dropped, which keeps cache metadata small and the API honest about what a
/// cached response can answer.
pub(crate) const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "etag",
    "last-modified",
    "link",
    "docker-content-digest",
];

/// A successful (2xx) response whose body was read in full, from the network
/// or from the cache.
#[derive(Clone)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) url: Url,
    pub(crate) body: Bytes,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) from_cache: bool,
}

impl Response {
    pub(crate) fn kept_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
        KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = headers.get(*name)?.to_str().ok()?;
                Some(((*name).to_owned(), value.to_owned()))
            })
            .collect()
    }

    /// HTTP status of the response (of the original response for a cache hit).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The final URL, after redirects.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Take the body.
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// True when the body came from the on-disk cache (a 304 revalidation or
    /// offline mode) rather than over the network.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// The `Content-Type` header.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// The raw `Link` header.
    pub fn link(&self) -> Option<&str> {
        self.header("link")
    }

    /// One of the kept headers (`content-type`, `etag`, `last-modified`,
    /// `link`, `docker-content-digest`), by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The `rel="next"` target of the `Link` header, resolved against the
    /// response URL (OCI registries send relative links), for paginating
    /// GitHub and OCI listings. Only http(s) URLs are returned.
    pub fn next_link(&self) -> Option<Url> {
        let target = link_with_rel(self.link()?, "next")?;
        let url = self.url.join(&target).ok()?;
        matches!(url.scheme(), "http" | "https").then_some(url)
    }

    /// Parse the body as JSON; a failure is an [`HttpError::InvalidContent`]
    /// naming the URL and the line and column.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::InvalidContent {
            url: shown(&self.url),
            detail: format!("not the expected JSON: {e}"),
        })
    }
}

impl fmt::Debug for Response {
    // The body can be megabytes; show its size instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("url", &shown(&self.url))
            .field("body_len", &self.body.len())
            .field("headers", &self.headers)
            .field("from_cache", &self.from_cache)
            .finish()
    }
}

/// Find the target of the first link whose `rel` includes `rel` in an
/// RFC 8288 `Link` header value such as
/// `<https://api.github.com/x?page=2>; rel="next", <...>; rel="last"`.
fn link_with_rel(header: &str, rel: &str) -> Option<String> {
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        let after_lt = rest.strip_prefix('<')?;
        let gt = after_lt.find('>')?;
        let target = &after_lt[..gt];
        rest = &after_lt[gt + 1..];
        // Parameters run until a comma outside quotes.
        let mut end = rest.len();
        let mut in_quotes = false;
        for (i, c) in rest.char_indices() {
            match c {
                '"' => in_quotes = !in_quotes,
                ',' if !in_quotes => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let params = &rest[..end];
        rest = &rest[end..];
        let has_rel = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case(rel))
        });
        if has_rel {
            return Some(target.to_owned());
        }
        if rest.is_empty() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(url: &str, link: Option<&str>) -> Response {
        let mut headers = BTreeMap::new();
        if let Some(link) = link {
            headers.insert("link".to_owned(), link.to_owned());
        }
        Response {
            status: 200,
            url: Url::parse(url).unwrap(),
            body: Bytes::from_static(b"{\"a\": 1}"),
            headers,
            from_cache: false,
        }
    }

    #[test]
    fn next_link_from_github_header() {
        let r = response(
            "https://api.github.com/repos/k3s-io/k3s/releases",
            Some(
                "<https://api.github.com/repositories/1/releases?page=2>; rel=\"next\", \
                 <https://api.github.com/repositories/1/releases?page=9>; rel=\"last\"",
            ),
        );
        assert_eq!(
            r.next_link().unwrap().as_str(),
            "https://api.github.com/repositories/1/releases?page=2"
        );
    }

    #[test]
    fn next_link_not_first_and_relative() {
        let r = response(
            "http://127.0.0.1:5000/v2/charts/tags/list?n=2",
            Some("<https://h/first>; rel=\"first\", </v2/charts/tags/list?n=2&last=b>; rel=next"),
        );
        assert_eq!(
            r.next_link().unwrap().as_str(),
            "http://127.0.0.1:5000/v2/charts/tags/list?n=2&last=b"
        );
        // A quoted comma in a parameter does not split the link.
        assert_eq!(
            link_with_rel("<a>; title=\"x, y\"; rel=\"prev next\"", "next").as_deref(),
            Some("a")
        );
    }

    #[test]
    fn no_next_link() {
        assert!(response("https://h/", None).next_link().is_none());
        assert!(
            response("https://h/", Some("<https://h/p1>; rel=\"prev\""))
                .next_link()
                .is_none()
        );
        assert!(
            response("https://h/", Some("garbage"))
                .next_link()
                .is_none()
        );
        assert!(
            response("https://h/", Some("<javascript:alert(1)>; rel=next"))
                .next_link()
                .is_none()
        );
    }

    #[test]
    fn json_error_names_url() {
        let r = response("https://h/index.json?token=abc", None);
        let ok: serde_json::Value = r.json().unwrap();
        assert_eq!(ok["a"], 1);
        let bad = Response {
            body: Bytes::from_static(b"{oops"),
            ..r
        };
        let err = bad.json::<serde_json::Value>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("https://h/index.json?token=***"), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");
        assert!(!err.is_environment());
    }
}
