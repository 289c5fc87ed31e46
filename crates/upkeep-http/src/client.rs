use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CACHE_CONTROL, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, LOCATION,
    WWW_AUTHENTICATE,
};
use url::Url;

use crate::cache::{Cache, Entry};
use crate::config::ClientConfig;
use crate::error::{HttpError, describe_reqwest, secs, shown};
use crate::response::Response;
use crate::retry::{RateLimit, backoff, retry_after, until};
use crate::token::Token;
use upkeep_redact::redact;

/// Redirects followed within one attempt; more is a loop or a misconfigured
/// upstream.
const MAX_REDIRECTS: usize = 10;

/// Added to a rate-limit reset before retrying: the reset has one-second
/// resolution and our clock may run a little ahead of the upstream's.
const RESET_MARGIN: Duration = Duration::from_millis(500);

/// One GET to an upstream: the URL, an optional `Accept`, an optional token.
#[derive(Clone)]
pub struct Request {
    url: Url,
    accept: Option<String>,
    token: Option<Token>,
    use_cache: bool,
}

impl Request {
    /// A GET of `url`, cached when the client has a cache.
    pub fn new(url: Url) -> Request {
        Request {
            url,
            accept: None,
            token: None,
            use_cache: true,
        }
    }

    /// Send this `Accept` header. It is part of the cache key, since one URL
    /// can answer with different representations (OCI manifests).
    pub fn accept(mut self, accept: &str) -> Request {
        self.accept = Some(accept.to_owned());
        self
    }

    /// Authenticate with `token` on every hop to the token's own host (and
    /// only there).
    pub fn token(mut self, token: &Token) -> Request {
        self.token = Some(token.clone());
        self
    }

    /// Neither read nor write the cache for this request, e.g. for a token
    /// endpoint whose body is a secret that must not touch the disk.
    pub fn no_cache(mut self) -> Request {
        self.use_cache = false;
        self
    }

    /// The requested URL.
    pub fn url(&self) -> &Url {
        &self.url
    }
}

impl std::fmt::Debug for Request {
    // The URL may carry a signature or token in its query.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("url", &shown(&self.url))
            .field("accept", &self.accept)
            .field("token", &self.token)
            .field("use_cache", &self.use_cache)
            .finish()
    }
}

/// The HTTP client for every upstream. Cheap to clone: clones share one
/// connection pool, the cache, and what is known about rate limits.
#[derive(Clone)]
pub struct UpstreamClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    cache: Option<Cache>,
    /// Hosts (host:port) whose quota a response said is used up, and when it
    /// comes back, so the next request waits instead of burning a 403.
    exhausted: Mutex<HashMap<String, Timestamp>>,
}

/// What one attempt (a GET and its redirects) produced.
enum Outcome {
    /// A 2xx body; `storable` is false for `Cache-Control: no-store`.
    Fresh {
        response: Response,
        storable: bool,
    },
    NotModified,
}

/// Why one attempt failed, with what is needed to decide on a retry.
enum Failure {
    Transport {
        url: Url,
        timeout: bool,
        detail: String,
    },
    /// Boxed: it is much larger than the other variants.
    Status(Box<Refusal>),
    /// Not worth retrying.
    Fatal(HttpError),
}

/// A non-2xx, non-3xx answer and what it says about retrying.
struct Refusal {
    url: Url,
    status: StatusCode,
    retry_after: Option<Duration>,
    rate_limit: RateLimit,
    www_authenticate: Option<String>,
}

impl UpstreamClient {
    /// Build a client. Fails on an unusable configuration: an extra root CA
    /// that is not PEM, or offline mode without a cache directory.
    pub fn new(config: ClientConfig) -> Result<UpstreamClient, HttpError> {
        if config.offline && config.cache_dir.is_none() {
            return Err(HttpError::Config(
                "offline mode needs a cache directory to answer from".to_owned(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .user_agent(config.user_agent.clone())
            // Redirects are followed by hand, so that the token is only ever
            // attached for its own host and the cache sees the final URL.
            .redirect(reqwest::redirect::Policy::none());
        for (index, pem) in config.extra_root_certs_pem.iter().enumerate() {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                HttpError::Config(format!(
                    "extra root CA #{} is not valid PEM: {}",
                    index + 1,
                    describe_reqwest(e)
                ))
            })?;
            if certs.is_empty() {
                return Err(HttpError::Config(format!(
                    "extra root CA #{} holds no certificate",
                    index + 1
                )));
            }
            builder = builder.tls_certs_merge(certs);
        }
        if config.danger_accept_invalid_certs {
            tracing::warn!(
                "TLS CERTIFICATE VERIFICATION IS DISABLED: any server can impersonate the \
                 upstreams and feed upkeep forged release data; use extra root CAs instead"
            );
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| HttpError::Config(describe_reqwest(e)))?;
        let cache = config.cache_dir.as_deref().map(Cache::new);
        Ok(UpstreamClient {
            inner: Arc::new(Inner {
                http,
                config,
                cache,
                exhausted: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// GET a URL: from the cache when offline or when the upstream says it is
    /// unchanged (304), otherwise over the network, with retries, rate-limit
    /// waits and the size limit. Only 2xx responses are returned; any other
    /// status is an [`HttpError`].
    pub async fn get(&self, req: &Request) -> Result<Response, HttpError> {
        let url = &req.url;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(HttpError::InvalidUrl {
                url: shown(url),
                reason: "only http and https URLs with a host can be fetched".to_owned(),
            });
        }
        if has_credentials(url) {
            return Err(HttpError::InvalidUrl {
                url: shown(url),
                reason: "credentials in the URL are not allowed; use a token".to_owned(),
            });
        }
        let config = &self.inner.config;
        let cached = match (&self.inner.cache, req.use_cache) {
            (Some(cache), true) => self.load_cached(cache, req).await,
            _ => None,
        };
        if config.offline {
            return match cached {
                Some(entry) => {
                    tracing::debug!(url = %shown(url), "offline: answered from the cache");
                    Ok(entry.response())
                }
                None => Err(HttpError::OfflineMiss { url: shown(url) }),
            };
        }

        let max_attempts = config.max_retries.saturating_add(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.wait_for_quota(url).await?;
            let failure = match self.attempt(req, cached.as_ref()).await {
                Ok(Outcome::Fresh { response, storable }) => {
                    if let (Some(cache), true, true) = (&self.inner.cache, req.use_cache, storable)
                    {
                        self.store(cache, req, &response).await;
                    }
                    return Ok(response);
                }
                Ok(Outcome::NotModified) => match &cached {
                    Some(entry) => {
                        tracing::debug!(url = %shown(url), "not modified: answered from the cache");
                        return Ok(entry.response());
                    }
                    None => {
                        return Err(HttpError::InvalidContent {
                            url: shown(url),
                            detail: "304 Not Modified to a request that was not conditional"
                                .to_owned(),
                        });
                    }
                },
                Err(failure) => failure,
            };
            let retries_left = attempt < max_attempts;
            let (wait, reason) = self.decide(failure, attempt, retries_left)?;
            tracing::warn!(
                url = %shown(url),
                attempt,
                max_attempts,
                "{reason}; retrying in {}",
                secs(wait)
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Turn a failed attempt into either a wait before the next attempt (with
    /// the reason, for the log) or the final error.
    fn decide(
        &self,
        failure: Failure,
        attempt: u32,
        retries_left: bool,
    ) -> Result<(Duration, String), HttpError> {
        let config = &self.inner.config;
        let backoff = || backoff(config.backoff_base, config.backoff_cap, attempt);
        match failure {
            Failure::Fatal(err) => Err(err),
            Failure::Transport {
                url,
                timeout,
                detail,
            } => {
                let err = if timeout {
                    HttpError::Timeout {
                        url: shown(&url),
                        detail,
                        attempts: attempt,
                    }
                } else {
                    HttpError::Unreachable {
                        url: shown(&url),
                        detail,
                        attempts: attempt,
                    }
                };
                if !retries_left {
                    return Err(err);
                }
                Ok((backoff(), err.to_string()))
            }
            Failure::Status(refusal) => {
                let Refusal {
                    url,
                    status,
                    retry_after,
                    rate_limit,
                    www_authenticate,
                } = *refusal;
                let exhausted_until = rate_limit.exhausted_until();
                // GitHub signals its primary limit with 403 + remaining 0 and its
                // secondary limit with 403 + Retry-After; any other 403 is a
                // real "forbidden".
                let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
                    || (status == StatusCode::FORBIDDEN
                        && (exhausted_until.is_some() || retry_after.is_some()));
                if rate_limited {
                    let now = Timestamp::now();
                    let (wait, reset_at) = if let Some(reset) = exhausted_until {
                        (until(reset, now) + RESET_MARGIN, Some(reset))
                    } else if let Some(after) = retry_after {
                        let at = jiff::SignedDuration::try_from(after)
                            .ok()
                            .and_then(|d| now.checked_add(d).ok());
                        (after, at)
                    } else {
                        (backoff(), None)
                    };
                    let err = HttpError::RateLimited {
                        url: shown(&url),
                        reset_at,
                    };
                    if !retries_left || wait > config.max_wait {
                        return Err(err);
                    }
                    return Ok((wait, err.to_string()));
                }
                let err = HttpError::Status {
                    url: shown(&url),
                    status: status.as_u16(),
                    attempts: attempt,
                    www_authenticate: www_authenticate.map(|w| redact(&w)),
                };
                if !status.is_server_error() || !retries_left {
                    return Err(err);
                }
                match retry_after {
                    // The server said when it will be back, and it is too far
                    // away: waiting less would only burn the remaining retries.
                    Some(after) if after > config.max_wait => Err(err),
                    Some(after) => Ok((after, err.to_string())),
                    None => Ok((backoff(), err.to_string())),
                }
            }
        }
    }

    /// One attempt: the GET and any redirects it leads to.
    async fn attempt(&self, req: &Request, cached: Option<&Entry>) -> Result<Outcome, Failure> {
        let mut url = req.url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut builder = self.inner.http.get(url.clone());
            if let Some(accept) = &req.accept {
                builder = builder.header(ACCEPT, accept);
            }
            let mut authorized = false;
            if let Some(token) = &req.token
                && token.applies_to(&url)
                && let Some(value) = token.header_value()
            {
                builder = builder.header(AUTHORIZATION, value);
                authorized = true;
            }
            // Whether a token went along, never the token.
            tracing::debug!(url = %shown(&url), authorized, "GET");
            if let Some(entry) = cached {
                if let Some(etag) = &entry.etag {
                    builder = builder.header(IF_NONE_MATCH, etag);
                }
                if let Some(last_modified) = &entry.last_modified {
                    builder = builder.header(IF_MODIFIED_SINCE, last_modified);
                }
            }
            let response = builder.send().await.map_err(|e| transport(&url, e))?;
            let status = response.status();
            let headers = response.headers();
            self.note_rate_limit(&url, headers);

            if status == StatusCode::NOT_MODIFIED {
                return Ok(Outcome::NotModified);
            }
            if status.is_redirection() {
                url = redirect_target(&url, headers)?;
                continue;
            }
            if !status.is_success() {
                return Err(Failure::Status(Box::new(Refusal {
                    retry_after: retry_after(headers, Timestamp::now()),
                    rate_limit: RateLimit::from_headers(headers),
                    www_authenticate: headers
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    url,
                    status,
                })));
            }
            let kept = Response::kept_headers(headers);
            let storable = !no_store(headers);
            let body = read_body(response, &url, self.inner.config.max_body_bytes).await?;
            return Ok(Outcome::Fresh {
                response: Response {
                    status: status.as_u16(),
                    url,
                    body,
                    headers: kept,
                    from_cache: false,
                },
                storable,
            });
        }
        Err(Failure::Fatal(HttpError::BadRedirect {
            url: shown(&req.url),
            detail: format!("more than {MAX_REDIRECTS} redirects"),
        }))
    }

    /// Before a request to a host whose quota is known to be used up, wait
    /// for the reset if that is within `max_wait`, else fail without sending.
    async fn wait_for_quota(&self, url: &Url) -> Result<(), HttpError> {
        let key = origin_key(url);
        let reset = self.exhausted().get(&key).copied();
        let Some(reset) = reset else {
            return Ok(());
        };
        let now = Timestamp::now();
        if reset > now {
            let wait = until(reset, now) + RESET_MARGIN;
            if wait > self.inner.config.max_wait {
                return Err(HttpError::RateLimited {
                    url: shown(url),
                    reset_at: Some(reset),
                });
            }
            tracing::warn!(
                url = %shown(url),
                "rate limit of {} used up; waiting {} for it to reset",
                url.host_str().unwrap_or_default(),
                secs(wait)
            );
            tokio::time::sleep(wait).await;
        }
        let mut exhausted = self.exhausted();
        if exhausted.get(&key) == Some(&reset) {
            exhausted.remove(&key);
        }
        Ok(())
    }

    fn note_rate_limit(&self, url: &Url, headers: &HeaderMap) {
        let limit = RateLimit::from_headers(headers);
        let key = origin_key(url);
        if let Some(reset) = limit.exhausted_until() {
            self.exhausted().insert(key, reset);
        } else if limit.remaining.is_some_and(|n| n > 0) {
            self.exhausted().remove(&key);
        }
    }

    fn exhausted(&self) -> std::sync::MutexGuard<'_, HashMap<String, Timestamp>> {
        // The map holds plain values; a panic elsewhere cannot leave it invalid.
        self.inner
            .exhausted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    async fn load_cached(&self, cache: &Cache, req: &Request) -> Option<Entry> {
        let cache = cache.clone();
        let url = req.url.clone();
        let accept = req.accept.clone();
        let max_body = self.inner.config.max_body_bytes;
        tokio::task::spawn_blocking(move || cache.load(&url, accept.as_deref(), max_body))
            .await
            .ok()
            .flatten()
    }

    async fn store(&self, cache: &Cache, req: &Request, response: &Response) {
        let cache = cache.clone();
        let url = req.url.clone();
        let accept = req.accept.clone();
        let response = response.clone();
        let stored =
            tokio::task::spawn_blocking(move || cache.store(&url, accept.as_deref(), &response))
                .await;
        let problem = match stored {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        // The response is good; only the next run loses the cached copy.
        tracing::warn!(url = %shown(&req.url), "could not write the cache: {}", redact(&problem));
    }
}

fn no_store(headers: &HeaderMap) -> bool {
    headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-store"))
}

fn has_credentials(url: &Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

fn origin_key(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default().to_ascii_lowercase(),
        url.port_or_known_default().unwrap_or(0)
    )
}

fn transport(url: &Url, err: reqwest::Error) -> Failure {
    if err.is_builder() {
        return Failure::Fatal(HttpError::InvalidUrl {
            url: shown(url),
            reason: describe_reqwest(err),
        });
    }
    Failure::Transport {
        url: url.clone(),
        timeout: err.is_timeout(),
        detail: describe_reqwest(err),
    }
}

fn redirect_target(from: &Url, headers: &HeaderMap) -> Result<Url, Failure> {
    let bad = |detail: &str| {
        Failure::Fatal(HttpError::BadRedirect {
            url: shown(from),
            detail: detail.to_owned(),
        })
    };
    let location = headers
        .get(LOCATION)
        .ok_or_else(|| bad("redirect without a Location header"))?;
    let target = location
        .to_str()
        .ok()
        .and_then(|l| from.join(l).ok())
        .ok_or_else(|| bad("Location is not a valid URL"))?;
    if !matches!(target.scheme(), "http" | "https") {
        return Err(bad("Location is not an http(s) URL"));
    }
    // reqwest would turn userinfo into a Basic auth header: credentials chosen
    // by the upstream, sent wherever it points.
    if has_credentials(&target) {
        return Err(bad("Location carries credentials"));
    }
    tracing::debug!(from = %shown(from), to = %shown(&target), "following redirect");
    Ok(target)
}

/// Read the body, failing as soon as it exceeds `limit`: a declared
/// Content-Length over the limit fails before reading, and an undeclared or
/// lying length stops at the first chunk past it, so memory stays bounded.
async fn read_body(
    mut response: reqwest::Response,
    url: &Url,
    limit: u64,
) -> Result<Bytes, Failure> {
    let too_large = || {
        Failure::Fatal(HttpError::BodyTooLarge {
            url: shown(url),
            limit,
        })
    };
    let declared = response.content_length();
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let capacity = usize::try_from(declared.unwrap_or(0).min(limit)).unwrap_or(0);
    let mut body = BytesMut::with_capacity(capacity);
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(url, e))? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
