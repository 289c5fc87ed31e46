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
/// Least time one attempt at a release asset may take: a k3s binary is
/// about 70 MB, slow on a home uplink.
const ASSET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_matched_by_file_name() {
        let data = b"hello";
        let sum = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let file = format!("{}  k3s-arm64\n{sum}  k3s\n", "0".repeat(64));
        verify_sha256(file.as_bytes(), "k3s", data).unwrap();
        // `*` marks binary mode in sha256sum's output.
        verify_sha256(format!("{sum} *k3s\n").as_bytes(), "k3s", data).unwrap();
        let e = verify_sha256(file.as_bytes(), "k3s-arm64", data).unwrap_err();
        assert!(matches!(e, ChecksumError::Mismatch { .. }), "{e}");
        let e = verify_sha256(file.as_bytes(), "k3s-armhf", data).unwrap_err();
        assert!(matches!(e, ChecksumError::Unlisted { .. }), "{e}");
        assert!(verify_sha256(b"\xff\xfe", "k3s", data).is_err());
    }

    #[test]
    fn tags_are_encoded_as_one_segment() {
        assert_eq!(encode_segment("v1.31.4+k3s1"), "v1.31.4%2Bk3s1");
        assert_eq!(encode_segment("a/b"), "a%2Fb");
    }
}

#[derive(Deserialize)]
struct RawAssets {
    #[serde(default)]
    assets: Vec<RawAsset>,
}

#[derive(Deserialize)]
struct RawAsset {
    name: String,
    browser_download_url: String,
    #[serde(default)]
    size: Option<u64>,
}

/// Checks `data`, downloaded as `name`, against a release's checksum file
/// (`sha256sum`'s format: `HEX  NAME` or `HEX *NAME` per line, as k3s and
/// Flux publish them). A file that does not list `name` is a mismatch too:
/// an unverified download is never used.
pub fn verify_sha256(sums: &[u8], name: &str, data: &[u8]) -> Result<(), ChecksumError> {
    let text = std::str::from_utf8(sums).map_err(|_| ChecksumError::Unlisted {
        name: name.to_string(),
    })?;
    let listed = text.lines().find_map(|line| {
        let (hex, file) = line.trim_end().split_once(char::is_whitespace)?;
        let file = file.trim_start().trim_start_matches('*');
        (file == name && hex.len() == 64).then(|| hex.to_ascii_lowercase())
    });
    let Some(want) = listed else {
        return Err(ChecksumError::Unlisted {
            name: name.to_string(),
        });
    };
    use sha2::Digest;
    let got = hex::encode(sha2::Sha256::digest(data));
    if got == want {
        Ok(())
    } else {
        Err(ChecksumError::Mismatch {
            name: name.to_string(),
            want,
            got,
        })
    }
}

/// A download that does not match its release's checksum file.
#[derive(Debug, thiserror::Error)]
pub enum ChecksumError {
    #[error("the release's checksum file does not list {name}")]
    Unlisted { name: String },
    #[error("{name}: sha256 is {got}, the release says {want}")]
    Mismatch {
        name: String,
        want: String,
        got: String,
    },
}

/// One path segment, percent-encoded where a tag needs it (`+` in k3s tags
/// would otherwise read as a space to some servers).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
    config: ClientConfig,
    github: BaseUrl,
    channels: Url,
    token: Option<Token>,
}

impl std::fmt::Debug for Upstream {
    // By hand: the token must never be printed, not even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("github", &self.github.as_url().as_str())
            .field("channels", &self.channels.as_str())
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The shared HTTP client's configuration from resolved settings: cache
/// directory, offline mode, timeouts, retries and the size limit.
pub fn client_config(settings: &Settings) -> ClientConfig {
    ClientConfig {
        connect_timeout: settings.connect_timeout,
        timeout: settings.timeout,
        max_retries: settings.retries,
        max_body_bytes: settings.max_body_bytes,
        cache_dir: Some(settings.cache_dir.clone()),
        offline: settings.offline,
        extra_root_certs_pem: settings.extra_ca_pem.clone(),
        danger_accept_invalid_certs: settings.insecure_skip_tls_verify,
        ..ClientConfig::default()
    }
}

impl Upstream {
    /// Builds the client from resolved settings: base URLs, cache directory,
    /// offline mode, timeouts, retries, size limit and the token's source.
    pub fn from_settings(settings: &Settings) -> Result<Upstream, UpstreamError> {
        let config = client_config(settings);
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
            client: UpstreamClient::new(config.clone())?,
            config,
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

    /// Asset `name` of release `tag` of `repo` (a k3s binary, its checksum
    /// file, Flux's `install.yaml`), at most `max_bytes` long.
    ///
    /// Assets are far larger than API answers, so they get their own client:
    /// a size limit of their own, at least ten minutes per attempt, and no
    /// cache (a binary is read once and verified by its caller). The token
    /// goes only to the API host; the download link must be HTTPS or on the
    /// API's own origin (a mirror or a test server).
    pub async fn release_asset(
        &self,
        repo: GithubRepo,
        tag: &str,
        name: &str,
        max_bytes: u64,
    ) -> Result<bytes::Bytes, UpstreamError> {
        let url = self.github.join(&format!(
            "repos/{}/{}/releases/tags/{}",
            repo.owner,
            repo.name,
            encode_segment(tag)
        ))?;
        let response = self.client.get(&self.request(url.clone())).await?;
        let release: RawAssets = response.json()?;
        let shown = upkeep_http::redact(url.as_str());
        let Some(asset) = release.assets.iter().find(|a| a.name == name) else {
            return Err(UpstreamError::Invalid {
                url: shown,
                detail: format!(
                    "release {tag} has no asset {name:?} (it has {})",
                    if release.assets.is_empty() {
                        "none".to_string()
                    } else {
                        release
                            .assets
                            .iter()
                            .map(|a| a.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            });
        };
        if asset.size.is_some_and(|s| s > max_bytes) {
            return Err(UpstreamError::Invalid {
                url: shown,
                detail: format!(
                    "asset {name} of {tag} is {} bytes, more than the {max_bytes} allowed",
                    asset.size.unwrap_or_default()
                ),
            });
        }
        let link = Url::parse(&asset.browser_download_url).map_err(|e| UpstreamError::Invalid {
            url: shown.clone(),
            detail: format!("asset {name}: browser_download_url: {e}"),
        })?;
        let api = self.github.as_url();
        if link.scheme() != "https" && link.origin() != api.origin() {
            return Err(UpstreamError::Invalid {
                url: shown,
                detail: format!(
                    "asset {name}: download link {} is not HTTPS",
                    upkeep_http::redact(link.as_str())
                ),
            });
        }
        let client = UpstreamClient::new(ClientConfig {
            max_body_bytes: max_bytes,
            timeout: self.config.timeout.max(ASSET_TIMEOUT),
            cache_dir: None,
            ..self.config.clone()
        })?;
        let body = client
            .get(
                &Request::new(link)
                    .accept("application/octet-stream")
                    .no_cache(),
            )
            .await?
            .into_body();
        tracing::debug!(repo = %repo, tag, name, bytes = body.len(), "downloaded release asset");
        Ok(body)
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
