//! Typed access to the upstreams of the platform detectors: GitHub releases
//! (`/repos/OWNER/REPO/releases`, every page followed through `Link`, drafts
//! dropped, pre-releases flagged) and the k3s channel server
//! (`/v1-release/channels`: channel name → latest release).
//!
//! Everything goes through [`upkeep_http::UpstreamClient`], so retries, rate
//! limits, the size limit, the ETag cache and `--offline` behave as in every
//! other tool; base URLs and the GitHub token's source come from
//! [`upkeep_config::Settings`]. The token is read here and handed to the
//! client; it never appears in a value this crate returns.

use serde::Deserialize;
use upkeep_config::{Settings, TokenSource};
use upkeep_contract::Timestamp;
use upkeep_http::{
    AuthScheme, BaseUrl, ClientConfig, HttpError, Request, Token, TokenError, UpstreamClient,
};
use upkeep_version::Version;
use url::Url;

/// Releases per page asked of GitHub (its maximum).
const PER_PAGE: u32 = 100;
/// Pages followed before giving up: 5,000 releases is far beyond any
/// repository we read, so more means a pagination loop.
const MAX_PAGES: usize = 50;

/// Why an upstream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("GitHub token: {0}")]
    Token(#[from] TokenError),
    #[error("invalid response from {url}: {detail}")]
    Invalid { url: String, detail: String },
}

impl UpstreamError {
    /// True when the environment is at fault (upstream unreachable, rate
    /// limited, offline cache miss, token file not readable): exit code 3.
    /// False for bad input (a token file that does not exist, an empty or
    /// malformed token) or an invalid response: exit code 2.
    pub fn is_environment(&self) -> bool {
        match self {
            UpstreamError::Http(e) => e.is_environment(),
            UpstreamError::Token(TokenError::Read { source, .. }) => {
                source.kind() != std::io::ErrorKind::NotFound
            }
            UpstreamError::Token(_) => false,
            UpstreamError::Invalid { .. } => false,
        }
    }
}

/// A GitHub repository, `owner/name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GithubRepo {
    pub owner: &'static str,
    pub name: &'static str,
}

impl GithubRepo {
    pub const K3S: GithubRepo = GithubRepo {
        owner: "k3s-io",
        name: "k3s",
    };
    pub const FLUX: GithubRepo = GithubRepo {
        owner: "fluxcd",
        name: "flux2",
    };
    pub const LONGHORN: GithubRepo = GithubRepo {
        owner: "longhorn",
        name: "longhorn",
    };
}

impl std::fmt::Display for GithubRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// One published GitHub release whose tag is a version.
#[derive(Debug, Clone)]
pub struct Release {
    pub tag: String,
    pub version: Version,
    pub prerelease: bool,
    /// `published_at`, else `created_at`.
    pub published: Option<Timestamp>,
    /// The release notes as written (Markdown, unsanitised: read them
    /// through `upkeep-notes`, which sanitises what it hands out).
    pub body: String,
    /// The release's page on github.com.
    pub html_url: Option<String>,
}

/// One channel of the k3s channel server.
#[derive(Debug, Clone)]
pub struct Channel {
    pub name: String,
    pub latest: Version,
}

/// The latest release of channel `name`, if the server has that channel.
pub fn channel_latest<'a>(channels: &'a [Channel], name: &str) -> Option<&'a Version> {
    channels.iter().find(|c| c.name == name).map(|c| &c.latest)
}

#[derive(Deserialize)]
struct RawRelease {
    tag_name: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    prerelease: bool,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    published_at: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
}

#[derive(Deserialize)]
struct RawChannels {
    data: Vec<RawChannel>,
}

#[derive(Deserialize)]
struct RawChannel {
    name: String,
    #[serde(default)]
    latest: Option<String>,
}

/// The GitHub API and the k3s channel server, reached through one client.
#[derive(Clone)]
pub struct Upstream {
    client: UpstreamClient,
    github: BaseUrl,
    channels: Url,
    token: Option<Token>,
}

impl Upstream {
    /// Builds the client from resolved settings: base URLs, cache directory,
    /// offline mode, timeouts, retries, size limit and the token's source.
    pub fn from_settings(settings: &Settings) -> Result<Upstream, UpstreamError> {
        let config = ClientConfig {
            connect_timeout: settings.connect_timeout,
            timeout: settings.timeout,
            max_retries: settings.retries,
            max_body_bytes: settings.max_body_bytes,
            cache_dir: Some(settings.cache_dir.clone()),
            offline: settings.offline,
            ..ClientConfig::default()
        };
        let github = BaseUrl::parse(&settings.github_api)?;
        let token = match &settings.github_token {
            TokenSource::None => None,
            TokenSource::Env(var) => Token::from_env(var, AuthScheme::GitHub, &github)?,
            TokenSource::File(path) => Some(Token::from_file(path, AuthScheme::GitHub, &github)?),
        };
        Upstream::new(config, github, &settings.channels_url, token)
    }

    /// A client over explicit parts (tests, other tools).
    pub fn new(
        config: ClientConfig,
        github: BaseUrl,
        channels_url: &str,
        token: Option<Token>,
    ) -> Result<Upstream, UpstreamError> {
        let channels = BaseUrl::parse(channels_url)?;
        // The channel collection is the URL itself, not a prefix of it.
        let mut channels = channels.as_url().clone();
        let path = channels.path().trim_end_matches('/').to_string();
        channels.set_path(&path);
        Ok(Upstream {
            client: UpstreamClient::new(config)?,
            github,
            channels,
            token,
        })
    }

    /// The GitHub API base URL in use.
    pub fn github_api(&self) -> &BaseUrl {
        &self.github
    }

    /// The channel collection URL in use.
    pub fn channels_url(&self) -> &Url {
        &self.channels
    }

    /// Where release `tag` of `repo` lives in the API (for documents).
    pub fn releases_url(&self, repo: GithubRepo) -> String {
        format!("{}repos/{}/{}/releases", self.github, repo.owner, repo.name)
    }

    fn request(&self, url: Url) -> Request {
        let req = Request::new(url).accept("application/vnd.github+json");
        match &self.token {
            Some(t) => req.token(t),
            None => req,
        }
    }

    /// Every published release of `repo` whose tag is a version, newest
    /// first as GitHub lists them. Drafts are dropped; tags that are not
    /// versions are skipped (logged at debug level).
    pub async fn github_releases(&self, repo: GithubRepo) -> Result<Vec<Release>, UpstreamError> {
        let first = self.github.join(&format!(
            "repos/{}/{}/releases?per_page={PER_PAGE}",
            repo.owner, repo.name
        ))?;
        let mut next = Some(first);
        let mut out = Vec::new();
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(UpstreamError::Invalid {
                    url: upkeep_http::redact(url.as_str()),
                    detail: format!("more than {MAX_PAGES} pages of releases"),
                });
            }
            let response = self.client.get(&self.request(url.clone())).await?;
            let raw: Vec<RawRelease> = response.json()?;
            for r in raw {
                if r.draft {
                    continue;
                }
                let Ok(version) = Version::parse(&r.tag_name) else {
                    tracing::debug!(repo = %repo, tag = %r.tag_name, "tag is not a version; skipped");
                    continue;
                };
                let published = r
                    .published_at
                    .as_deref()
                    .or(r.created_at.as_deref())
                    .and_then(|t| Timestamp::parse(t).ok());
                out.push(Release {
                    tag: r.tag_name,
                    version,
                    prerelease: r.prerelease,
                    published,
                    body: r.body.unwrap_or_default(),
                    html_url: r.html_url,
                });
            }
            next = match response.next_link() {
                // Only follow pages of the same API: a Link to elsewhere is
                // not GitHub's pagination and would take the token along.
                Some(n) if n.as_str().starts_with(self.github.as_url().as_str()) => Some(n),
                Some(n) => {
                    return Err(UpstreamError::Invalid {
                        url: upkeep_http::redact(url.as_str()),
                        detail: format!(
                            "next page {} is outside {}",
                            upkeep_http::redact(n.as_str()),
                            self.github
                        ),
                    });
                }
                None => None,
            };
        }
        tracing::debug!(repo = %repo, releases = out.len(), pages, "read GitHub releases");
        Ok(out)
    }

    /// The k3s channels (`stable`, `latest`, `v1.31`...) with the release each
    /// points at. Channels whose `latest` is missing or not a version are
    /// skipped (logged).
    pub async fn k3s_channels(&self) -> Result<Vec<Channel>, UpstreamError> {
        let response = self
            .client
            .get(&Request::new(self.channels.clone()))
            .await?;
        let raw: RawChannels = response.json()?;
        Ok(raw
            .data
            .into_iter()
            .filter_map(|c| {
                let parsed = c.latest.as_deref().map(Version::parse);
                match parsed {
                    Some(Ok(latest)) => Some(Channel {
                        name: c.name,
                        latest,
                    }),
                    _ => {
                        tracing::warn!(channel = %c.name, "channel has no valid latest version; skipped");
                        None
                    }
                }
            })
            .collect())
    }
}
