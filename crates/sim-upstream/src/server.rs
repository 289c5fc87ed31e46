//! The HTTP server: connection handling, ETag/304, rate limiting, faults, request log and the
//! admin endpoints. Plain hyper rather than a framework, because several faults (dropped
//! connections, truncated and stalled bodies) need control below the request/response level.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::faults::{Decision, FaultConfig, FaultKind, FaultState};
use crate::fixture::Fixture;
use crate::routes::{self, Reply};
use crate::{DEFAULT_RATE_LIMIT, RequestRecord, SimConfig, SimError};

type Body = BoxBody<Bytes, std::io::Error>;

const RATE_WINDOW_SECS: i64 = 3600;
const MAX_ADMIN_BODY: usize = 1024 * 1024;
/// How long shutdown waits for in-flight responses (a stalled one may never finish).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How to start a server.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub fixture: PathBuf,
    pub listen: SocketAddr,
    /// Overrides SIM.yaml's `rateLimit`; [`DEFAULT_RATE_LIMIT`] when both are absent.
    pub rate_limit: Option<u64>,
    pub request_log: Option<PathBuf>,
    pub config: Option<PathBuf>,
}

impl SimOptions {
    /// Options for a test: the given fixture on 127.0.0.1, any free port.
    pub fn new(fixture: impl Into<PathBuf>) -> SimOptions {
        SimOptions {
            fixture: fixture.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            rate_limit: None,
            request_log: None,
            config: None,
        }
    }
}

struct RateLimit {
    limit: u64,
    remaining: u64,
    reset: i64,
}

impl RateLimit {
    fn refresh(&mut self, now: i64) {
        if now >= self.reset {
            self.remaining = self.limit;
            self.reset = now + RATE_WINDOW_SECS;
        }
    }

    fn headers(&self) -> Vec<(header::HeaderName, HeaderValue)> {
        let h = |name: &'static str, v: u64| {
            (header::HeaderName::from_static(name), HeaderValue::from(v))
        };
        vec![
            h("x-ratelimit-limit", self.limit),
            h("x-ratelimit-remaining", self.remaining),
            h("x-ratelimit-reset", u64::try_from(self.reset).unwrap_or(0)),
            h("x-ratelimit-used", self.limit - self.remaining),
            (
                header::HeaderName::from_static("x-ratelimit-resource"),
                HeaderValue::from_static("core"),
            ),
        ]
    }
}

impl State {
    /// The rate-limit headers as they stand, without spending anything.
    fn rate_headers(&self) -> Vec<(header::HeaderName, HeaderValue)> {
        let mut rl = lock(&self.rate);
        rl.refresh(jiff::Timestamp::now().as_second());
        rl.headers()
    }
}

struct State {
    fixture: Fixture,
    bound: SocketAddr,
    faults: Mutex<FaultState>,
    rate: Mutex<RateLimit>,
    log: Mutex<Vec<RequestRecord>>,
    log_file: Option<Mutex<std::fs::File>>,
}

/// A poisoned lock only means another request panicked; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Returned by the service to make hyper close the connection without answering.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sim-upstream: connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

/// A running server. Dropping it stops the server too, without waiting.
pub struct SimUpstream {
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimUpstream {
    /// Loads the fixture and config, binds, and starts serving on the current tokio runtime.
    /// Nothing is served unless everything loaded.
    pub async fn start(opts: SimOptions) -> Result<SimUpstream, SimError> {
        let fixture = Fixture::load(&opts.fixture)?;
        let config = match &opts.config {
            Some(p) => SimConfig::load(p)?,
            None => SimConfig::default(),
        };
        let limit = opts
            .rate_limit
            .or(config.rate_limit)
            .unwrap_or(DEFAULT_RATE_LIMIT);
        let log_file = match &opts.request_log {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| SimError::RequestLog {
                        path: p.clone(),
                        source,
                    })?,
            )),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: opts.listen,
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| SimError::Bind {
            addr: opts.listen,
            source,
        })?;
        let state = Arc::new(State {
            fixture,
            bound,
            faults: Mutex::new(FaultState::new(config.fault_config())),
            rate: Mutex::new(RateLimit {
                limit,
                remaining: limit,
                reset: jiff::Timestamp::now().as_second() + RATE_WINDOW_SECS,
            }),
            log: Mutex::new(Vec::new()),
            log_file,
        });
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, state.clone(), rx));
        Ok(SimUpstream {
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.state.bound
    }

    /// `http://ADDRESS`, the base URL of the GitHub API and of everything else.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.state.bound)
    }

    /// The one-line JSON the binary prints when ready.
    pub fn ready_info(&self) -> serde_json::Value {
        let base = self.base_url();
        json!({
            "address": self.state.bound.to_string(),
            "github": base,
            "channels": format!("{base}/v1-release/channels"),
            "helm": format!("{base}/helm/"),
        })
    }

    /// Every request served so far (admin requests excluded).
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.state.log).clone()
    }

    /// Replaces the injected faults (as `POST /_admin/faults` does).
    pub fn set_faults(&self, config: FaultConfig) -> Result<(), String> {
        config.validate()?;
        *lock(&self.state.faults) = FaultState::new(config);
        Ok(())
    }

    /// Stops accepting, lets in-flight responses finish for a short grace period, then stops.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimUpstream {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    mut stop: oneshot::Receiver<()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let state = state.clone();
                let svc = hyper::service::service_fn(move |req| handle(state.clone(), peer, req));
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                let conn = graceful.watch(conn);
                conns.spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection from {peer} ended: {e}");
                    }
                });
            }
            _ = &mut stop => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("in-flight responses still running after the grace period; aborting");
    }
    conns.shutdown().await;
}

fn full(body: Bytes) -> Body {
    Full::new(body)
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(body)))
}

/// If-None-Match uses the weak comparison (RFC 9110 13.1.2), so `W/"x"` matches `"x"`.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

fn would_be_not_modified(reply: &Reply, if_none_match: Option<&str>) -> bool {
    reply.status == StatusCode::OK
        && if_none_match.is_some_and(|inm| etag_matches(inm, &etag_of(&reply.body)))
}

/// The base URL for links in responses: the Host the client used, if it looks like one.
fn base_url(req: &Request<Incoming>, bound: SocketAddr) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
        });
    match host {
        Some(h) => format!("http://{h}"),
        None => format!("http://{bound}"),
    }
}

/// What the request log needs to know about a request.
struct Seen {
    method: Method,
    path: String,
    query: Option<String>,
    authorized: bool,
}

impl State {
    fn record(
        &self,
        seen: &Seen,
        status: Option<u16>,
        not_modified: bool,
        fault: Option<FaultKind>,
    ) {
        let mut log = lock(&self.log);
        let rec = RequestRecord {
            seq: log.len() as u64 + 1,
            time: jiff::Timestamp::now()
                .round(jiff::Unit::Millisecond)
                .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string()),
            method: seen.method.to_string(),
            path: seen.path.clone(),
            query: seen.query.clone(),
            authorized: seen.authorized,
            status,
            not_modified,
            fault: fault.map(|f| f.as_str().to_owned()),
        };
        if let Some(file) = &self.log_file
            && let Ok(mut line) = serde_json::to_vec(&rec)
        {
            line.push(b'\n');
            if let Err(e) = lock(file).write_all(&line) {
                tracing::warn!("cannot write the request log: {e}");
            }
        }
        log.push(rec);
    }
}

async fn handle(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_admin/") {
        return Ok(admin(&state, req).await);
    }
    let method = req.method().clone();
    let query = req.uri().query().map(str::to_owned);
    let base = base_url(&req, state.bound);
    let authorized = req.headers().contains_key(header::AUTHORIZATION);
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let seen = Seen {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        authorized,
    };

    let decision: Decision = lock(&state.faults).decide(method.as_str(), &path);
    if decision.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(decision.delay_ms)).await;
    }
    let fault = decision.fault;
    let fault_kind = fault.as_ref().map(|f| f.kind);

    let github = routes::is_github_path(&path);
    let (reply, rate_headers) = match &fault {
        Some(f) if f.kind == FaultKind::Drop => {
            state.record(&seen, None, false, fault_kind);
            return Err(DropConnection);
        }
        Some(f) if f.kind == FaultKind::Error => {
            let status = StatusCode::from_u16(f.status.unwrap_or(500))
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let reply = Reply::json(
                status,
                &json!({"message": format!("sim-upstream: injected error {}", status.as_u16())}),
            );
            (reply, state.rate_headers())
        }
        Some(f) if f.kind == FaultKind::TooManyRequests => {
            let mut reply = Reply::json(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"message": "sim-upstream: injected 429 Too Many Requests"}),
            );
            let secs = f.retry_after.unwrap_or(60).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                reply.headers.push((header::RETRY_AFTER, v));
            }
            (reply, state.rate_headers())
        }
        _ => {
            if method != Method::GET && method != Method::HEAD {
                let mut reply = Reply::json(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &json!({"message": format!("sim-upstream serves GET and HEAD only, not {method}")}),
                );
                reply
                    .headers
                    .push((header::ALLOW, HeaderValue::from_static("GET, HEAD")));
                (reply, state.rate_headers())
            } else {
                let mut rl = lock(&state.rate);
                rl.refresh(jiff::Timestamp::now().as_second());
                if github && rl.remaining == 0 {
                    let ip = peer.ip();
                    let reply = Reply::json(
                        StatusCode::FORBIDDEN,
                        &json!({
                            "message": format!("API rate limit exceeded for {ip}. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)"),
                            "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"
                        }),
                    );
                    (reply, rl.headers())
                } else {
                    let reply = routes::route(&state.fixture, &path, query.as_deref(), &base);
                    // GitHub does not count a 304 answered to an authorized request.
                    let free =
                        authorized && would_be_not_modified(&reply, if_none_match.as_deref());
                    if github && !free {
                        rl.remaining -= 1;
                    }
                    (reply, rl.headers())
                }
            }
        }
    };

    // Garbage stands in for the body: no validator for it, never a 304.
    let garbage = fault_kind == Some(FaultKind::Garbage);
    let etag = etag_of(&reply.body);
    let not_modified = !garbage && would_be_not_modified(&reply, if_none_match.as_deref());

    let mut builder = Response::builder();
    for (k, v) in rate_headers.into_iter().chain(reply.headers) {
        builder = builder.header(k, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag)
        && !garbage
    {
        builder = builder.header(header::ETAG, v);
    }
    let response = if not_modified {
        builder
            .status(StatusCode::NOT_MODIFIED)
            .body(full(Bytes::new()))
    } else {
        let content_type = match &fault {
            Some(f) if f.kind == FaultKind::WrongContentType => Some(
                f.content_type
                    .clone()
                    .unwrap_or_else(|| "text/html; charset=utf-8".to_owned()),
            ),
            _ => reply.content_type,
        };
        if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        let (status, body) = match &fault {
            Some(f) if f.kind == FaultKind::Garbage => (
                StatusCode::OK,
                Bytes::from(crate::faults::garbage(
                    lock(&state.faults).config().seed,
                    f.size_bytes.unwrap_or(crate::faults::GARBAGE_DEFAULT_BYTES),
                )),
            ),
            _ => (reply.status, reply.body),
        };
        builder = builder.status(status);
        match &fault {
            Some(f) if f.kind == FaultKind::Truncate => {
                let half = body.slice(..body.len() / 2);
                let frames = stream::unfold(0u8, move |step| {
                    let half = half.clone();
                    async move {
                        match step {
                            0 => Some((Ok(Frame::data(half)), 1)),
                            1 => {
                                // Pausing first lets hyper flush the headers and the half
                                // body; an immediate error would discard them unsent.
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                Some((
                                    Err(std::io::Error::other(
                                        "sim-upstream: body truncated by fault injection",
                                    )),
                                    2,
                                ))
                            }
                            _ => None,
                        }
                    }
                });
                builder
                    .header(header::CONTENT_LENGTH, body.len())
                    .body(BodyExt::boxed(StreamBody::new(frames)))
            }
            Some(f) if f.kind == FaultKind::Stall => {
                let delay = Duration::from_millis(f.delay_ms.unwrap_or(60_000));
                let mid = body.len() / 2;
                let (first, rest) = (body.slice(..mid), body.slice(mid..));
                let frames = stream::unfold(0u8, move |step| {
                    let (first, rest) = (first.clone(), rest.clone());
                    async move {
                        match step {
                            0 => Some((Ok::<_, std::io::Error>(Frame::data(first)), 1)),
                            1 => {
                                tokio::time::sleep(delay).await;
                                Some((Ok(Frame::data(rest)), 2))
                            }
                            _ => None,
                        }
                    }
                });
                builder
                    .header(header::CONTENT_LENGTH, body.len())
                    .body(BodyExt::boxed(StreamBody::new(frames)))
            }
            _ => builder.body(full(body)),
        }
    };
    let status = if not_modified {
        StatusCode::NOT_MODIFIED
    } else {
        reply.status
    };
    state.record(&seen, Some(status.as_u16()), not_modified, fault_kind);
    Ok(response.unwrap_or_else(|e| {
        tracing::error!("building a response failed: {e}");
        let mut r = Response::new(full(Bytes::from_static(b"sim-upstream: internal error\n")));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    }))
}

fn admin_json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut r = Response::new(full(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// `/_admin/requests` (GET, DELETE) and `/_admin/faults` (GET, POST, DELETE). Admin requests
/// are neither logged, rate limited nor faulted.
async fn admin(state: &State, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    match (method.clone(), path.as_str()) {
        (Method::GET, "/_admin/requests") => {
            let log = lock(&state.log).clone();
            admin_json(StatusCode::OK, &json!(log))
        }
        (Method::DELETE, "/_admin/requests") => {
            lock(&state.log).clear();
            admin_json(StatusCode::OK, &json!({"cleared": true}))
        }
        (Method::GET, "/_admin/faults") => {
            let cfg = lock(&state.faults).config().clone();
            admin_json(StatusCode::OK, &json!(cfg))
        }
        (Method::DELETE, "/_admin/faults") => {
            *lock(&state.faults) = FaultState::new(FaultConfig::default());
            admin_json(StatusCode::OK, &json!({"cleared": true}))
        }
        (Method::POST, "/_admin/faults") => {
            let bytes = match Limited::new(req.into_body(), MAX_ADMIN_BODY)
                .collect()
                .await
            {
                Ok(c) => c.to_bytes(),
                Err(e) => {
                    return admin_json(
                        StatusCode::BAD_REQUEST,
                        &json!({"message": format!("cannot read body: {e}")}),
                    );
                }
            };
            let cfg: FaultConfig = match serde_json::from_slice(&bytes) {
                Ok(c) => c,
                Err(e) => {
                    return admin_json(
                        StatusCode::BAD_REQUEST,
                        &json!({"message": format!("invalid fault config: {e}")}),
                    );
                }
            };
            if let Err(e) = cfg.validate() {
                return admin_json(StatusCode::BAD_REQUEST, &json!({"message": e}));
            }
            *lock(&state.faults) = FaultState::new(cfg.clone());
            admin_json(StatusCode::OK, &json!(cfg))
        }
        _ => admin_json(
            StatusCode::NOT_FOUND,
            &json!({"message": format!("no admin endpoint {method} {path}")}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn etag_comparison() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("W/\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", \"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn in_process_handle_serves_logs_and_shuts_down() {
        let sim = SimUpstream::start(SimOptions::new(crate::workspace_fixture()))
            .await
            .unwrap();
        let addr = sim.address();
        let resp = get(addr, "/repos/k3s-io/k3s/releases/latest").await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.contains("\"tag_name\":\"v1.37.1+k3s1\""));
        let resp = get(addr, "/v1-release/channels/stable").await;
        assert!(resp.starts_with("HTTP/1.1 302"), "{resp}");
        let log = sim.requests();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].status, Some(200));
        assert_eq!(log[1].path, "/v1-release/channels/stable");
        assert_eq!(sim.ready_info()["address"], addr.to_string());
        sim.shutdown().await;
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "still listening after shutdown"
        );
    }
}
