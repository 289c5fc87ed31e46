//! Fetching what a repository publishes: `index.yaml` over HTTP(S), tag
//! lists from OCI registries. Everything goes through the shared
//! [`UpstreamClient`], so retries, size limits, the ETag cache and offline
//! mode behave as in every other tool.

use std::collections::BTreeSet;

use serde::Deserialize;
use upkeep_http::{AuthScheme, BaseUrl, HttpError, Request, Token, UpstreamClient};
use upkeep_version::Version;
use url::Url;

use crate::chart::{ChartFiles, read_chart};
use crate::index::{Charts, Index, IndexError, parse_index};

/// Pages of a tag list followed at most; a registry that keeps sending
/// `Link: next` beyond this is looping.
const MAX_TAG_PAGES: usize = 1000;

/// Why a repository could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{url}: {source}")]
    Index { url: String, source: IndexError },
    #[error("invalid repository URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("OCI registry {url}: {reason}")]
    Registry { url: String, reason: String },
    /// The index does not list that version, or its archive is not what it says.
    #[error("{url}: {reason}")]
    Chart { url: String, reason: String },
}

impl HelmError {
    /// True when the environment is at fault (network, permissions, an
    /// offline cache miss), as [`HttpError::is_environment`].
    pub fn is_environment(&self) -> bool {
        match self {
            HelmError::Http(e) => e.is_environment(),
            HelmError::Registry { .. } => true,
            HelmError::Index { .. } | HelmError::Url { .. } | HelmError::Chart { .. } => false,
        }
    }
}

/// Reads Helm repositories, with URL rewrites for mirrors (and tests).
#[derive(Clone)]
pub struct Repositories {
    http: UpstreamClient,
    mirrors: Vec<(String, String)>,
}

impl Repositories {
    /// `mirrors` maps a repository URL (or a prefix of one, at a `/`) to the
    /// URL to fetch it from instead; the longest match wins.
    pub fn new(http: UpstreamClient, mirrors: Vec<(String, String)>) -> Self {
        Repositories { http, mirrors }
    }

    /// `url` after the mirror rewrite.
    pub fn mirrored(&self, url: &str) -> String {
        let url = url.trim_end_matches('/');
        self.mirrors
            .iter()
            .filter(|(from, _)| {
                let from = from.trim_end_matches('/');
                url == from || url.strip_prefix(from).is_some_and(|r| r.starts_with('/'))
            })
            .max_by_key(|(from, _)| from.trim_end_matches('/').len())
            .map(|(from, to)| {
                format!(
                    "{}{}",
                    to.trim_end_matches('/'),
                    &url[from.trim_end_matches('/').len()..]
                )
            })
            .unwrap_or_else(|| url.to_string())
    }

    /// The URL of a repository's index, as fetched.
    pub fn index_url(&self, repo_url: &str) -> Result<Url, HelmError> {
        let base = self.mirrored(repo_url);
        let text = format!("{base}/index.yaml");
        Url::parse(&text).map_err(|e| HelmError::Url {
            url: repo_url.to_string(),
            reason: e.to_string(),
        })
    }

    /// Fetches `index.yaml` of the repository at `repo_url` and reads the
    /// entries of `charts`. Parsing runs off the async threads: a big index
    /// is tens of milliseconds of CPU.
    pub async fn index(
        &self,
        repo_url: &str,
        charts: &BTreeSet<String>,
    ) -> Result<Index, HelmError> {
        let url = self.index_url(repo_url)?;
        let response = self.http.get(&Request::new(url.clone())).await?;
        let body = response.into_body();
        let charts = charts.clone();
        let parsed = tokio::task::spawn_blocking(move || parse_index(&body, Charts::Only(&charts)))
            .await
            .map_err(|e| HelmError::Index {
                url: url.to_string(),
                source: IndexError::new(format!("parser stopped: {e}")),
            })?;
        parsed.map_err(|source| HelmError::Index {
            url: url.to_string(),
            source,
        })
    }

    /// The values and CRDs of `chart` at `version` from the repository at
    /// `repo_url`: the archive the index lists for it (relative URLs against
    /// the index, mirrors applied), checked against the index's sha256
    /// digest when it gives one.
    pub async fn chart(
        &self,
        repo_url: &str,
        chart: &str,
        version: &str,
    ) -> Result<ChartFiles, HelmError> {
        let index_url = self.index_url(repo_url)?;
        let wanted = BTreeSet::from([chart.to_string()]);
        let index = self.index(repo_url, &wanted).await?;
        let missing = |reason: String| HelmError::Chart {
            url: index_url.to_string(),
            reason,
        };
        let entry = index
            .entries
            .get(chart)
            .and_then(|vs| {
                vs.iter()
                    .find(|v| v.version == version || v.version.strip_prefix('v') == Some(version))
            })
            .ok_or_else(|| missing(format!("no {chart} {version} in the index")))?;
        let first = entry
            .urls
            .first()
            .ok_or_else(|| missing(format!("{chart} {version} lists no archive URL")))?;
        let url = match Url::parse(first) {
            Ok(abs) => Url::parse(&self.mirrored(abs.as_str())).unwrap_or(abs),
            Err(_) => index_url
                .join(first)
                .map_err(|e| missing(format!("{chart} {version}: archive URL {first:?}: {e}")))?,
        };
        let body = self.http.get(&Request::new(url.clone())).await?.into_body();
        let bad = |reason: String| HelmError::Chart {
            url: url.to_string(),
            reason,
        };
        if let Some(digest) = &entry.digest {
            use sha2::Digest;
            let got = hex::encode(sha2::Sha256::digest(&body));
            if !got.eq_ignore_ascii_case(digest) {
                return Err(bad(format!(
                    "sha256 {got} is not the index's digest {digest}"
                )));
            }
        }
        tokio::task::spawn_blocking(move || read_chart(&body))
            .await
            .map_err(|e| bad(format!("reader stopped: {e}")))?
            .map_err(|e| bad(e.to_string()))
    }

    /// Every tag of the repository at `oci_url` (`oci://host/path/chart`),
    /// following `Link` pagination, and answering the registry's
    /// bearer-token challenge with an anonymous token when it sends one.
    pub async fn oci_tags(&self, oci_url: &str) -> Result<Vec<String>, HelmError> {
        let (base, name) = self.oci_location(oci_url)?;
        let bad_url = |reason: String| HelmError::Url {
            url: oci_url.to_string(),
            reason,
        };
        let base_url = BaseUrl::parse(base.as_str()).map_err(HelmError::Http)?;
        let mut next = Some(
            base.join(&format!("v2/{name}/tags/list"))
                .map_err(|e| bad_url(e.to_string()))?,
        );
        let mut token: Option<Token> = None;
        let mut tags = Vec::new();
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_TAG_PAGES {
                return Err(HelmError::Registry {
                    url: base.to_string(),
                    reason: format!("more than {MAX_TAG_PAGES} pages of tags"),
                });
            }
            let mut req = Request::new(url.clone()).accept("application/json");
            if let Some(t) = &token {
                req = req.token(t);
            }
            let response = match self.http.get(&req).await {
                Ok(r) => r,
                Err(HttpError::Status {
                    status: 401,
                    www_authenticate: Some(challenge),
                    ..
                }) if token.is_none() => {
                    token = Some(self.anonymous_token(&challenge, &base_url).await?);
                    next = Some(url);
                    pages -= 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let page: TagList = response.json()?;
            tags.extend(page.tags.into_iter().flatten());
            next = response.next_link();
        }
        Ok(tags)
    }

    /// The registry's base URL and the repository name for an `oci://` URL,
    /// after the mirror rewrite (a mirror may point at `http://` for a
    /// local registry).
    fn oci_location(&self, oci_url: &str) -> Result<(Url, String), HelmError> {
        let bad = |reason: &str| HelmError::Url {
            url: oci_url.to_string(),
            reason: reason.to_string(),
        };
        let target = self.mirrored(oci_url);
        let rest = target
            .strip_prefix("oci://")
            .map(|r| format!("https://{r}"))
            .unwrap_or(target);
        let url = Url::parse(&rest).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad("expected oci://HOST/NAME"));
        }
        let name = url.path().trim_matches('/').to_string();
        if name.is_empty() {
            return Err(bad("no repository name after the host"));
        }
        let mut base = url.clone();
        base.set_path("/");
        base.set_query(None);
        Ok((base, name))
    }

    /// `WWW-Authenticate: Bearer realm="...",service="...",scope="..."` →
    /// GET realm?service=&scope= → `{"token": ...}`. The token is never
    /// cached on disk.
    async fn anonymous_token(
        &self,
        challenge: &str,
        registry: &BaseUrl,
    ) -> Result<Token, HelmError> {
        let fail = |reason: String| HelmError::Registry {
            url: registry.as_url().to_string(),
            reason,
        };
        let params = parse_challenge(challenge).ok_or_else(|| {
            fail(format!(
                "unsupported authentication challenge {challenge:?}"
            ))
        })?;
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| fail("authentication challenge without a realm".into()))?;
        let mut url = Url::parse(realm).map_err(|e| fail(format!("token realm {realm:?}: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &params {
                if k == "service" || k == "scope" {
                    q.append_pair(k, v);
                }
            }
        }
        let response = self.http.get(&Request::new(url).no_cache()).await?;
        let body: TokenResponse = response.json()?;
        let secret = body
            .token
            .or(body.access_token)
            .ok_or_else(|| fail("token response without a token".into()))?;
        Token::new(
            &secret,
            AuthScheme::Bearer,
            registry,
            "registry token endpoint",
        )
        .map_err(|e| fail(e.to_string()))
    }
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// The parameters of a `Bearer` challenge, in order.
fn parse_challenge(header: &str) -> Option<Vec<(String, String)>> {
    let (scheme, rest) = header.trim().split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut out = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.push((key, value));
        s = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(out)
}

/// The chart version an OCI tag stands for: OCI tags cannot hold `+`, so
/// Helm writes build metadata with `_` (`1.2.3_build` is `1.2.3+build`).
pub fn tag_version(tag: &str) -> Option<Version> {
    Version::parse(&tag.replace('_', "+")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let p = parse_challenge(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull""#,
        )
        .unwrap();
        assert_eq!(p[0], ("realm".into(), "https://ghcr.io/token".into()));
        assert_eq!(p[2], ("scope".into(), "repository:a/b:pull".into()));
        assert!(parse_challenge("Basic realm=\"x\"").is_none());
    }

    #[test]
    fn tags_with_underscores() {
        assert_eq!(tag_version("1.2.3_abc").unwrap().build(), "abc");
        assert!(tag_version("latest").is_none());
    }

    #[test]
    fn mirrors_rewrite_by_longest_prefix() {
        let http = UpstreamClient::new(upkeep_http::ClientConfig::default()).unwrap();
        let r = Repositories::new(
            http,
            vec![
                (
                    "https://charts.example".into(),
                    "http://127.0.0.1:1/a".into(),
                ),
                (
                    "https://charts.example/sub".into(),
                    "http://127.0.0.1:1/b/".into(),
                ),
            ],
        );
        assert_eq!(
            r.mirrored("https://charts.example/"),
            "http://127.0.0.1:1/a"
        );
        assert_eq!(
            r.mirrored("https://charts.example/sub/x"),
            "http://127.0.0.1:1/b/x"
        );
        assert_eq!(
            r.mirrored("https://charts.examplex"),
            "https://charts.examplex"
        );
        let (base, name) = r.oci_location("oci://ghcr.io/org/charts/podinfo").unwrap();
        assert_eq!(base.as_str(), "https://ghcr.io/");
        assert_eq!(name, "org/charts/podinfo");
        assert!(r.oci_location("oci://ghcr.io").is_err());
    }
}
