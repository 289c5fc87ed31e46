//! Fault injection: rules matched by path glob and Kubernetes verb that add latency, answer
//! with an error status, throttle with 429 and `Retry-After`, or drop the connection, each with
//! a probability drawn from a seeded generator (so a test sees the same sequence every run)
//! and an optional budget of `times` ("fail the next N requests").
//!
//! Rules come from `SIM.yaml` (`faults:`) and from the admin endpoint `/_admin/faults`
//! (GET lists rules and how often each fired; PUT replaces, POST appends, DELETE clears).
//! The admin endpoint sits behind the same bearer token as the API (under `--tls`), lives
//! outside `/api` and `/apis` so no kubectl resource path reaches it, and is never itself
//! subject to faults, so a test can always clear them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::config::{SimDuration, from_value, glob_match};
use crate::error::ApiError;

/// Where admin requests go; never a Kubernetes path.
pub(crate) const ADMIN_PREFIX: &str = "/_admin/";
const ADMIN_BODY_LIMIT: usize = 1024 * 1024;

/// The `faults:` section of `SIM.yaml`, and the body of the admin endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultRules {
    /// Seed of the generator that decides whether a rule with `rate < 1` fires.
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultRule {
    /// A label shown by `GET /_admin/faults`.
    #[serde(default)]
    pub name: Option<String>,
    /// Glob on the request path; `*` matches any characters, `/` included.
    #[serde(default = "any_path")]
    pub path: String,
    /// Kubernetes verbs the rule applies to; empty means all.
    #[serde(default)]
    pub verbs: Vec<Verb>,
    pub action: FaultAction,
    /// Probability that a matching request is hit.
    #[serde(default = "always")]
    pub rate: f64,
    /// Fire at most this many times, then stop matching.
    #[serde(default)]
    pub times: Option<u64>,
    /// `error`: the HTTP status (400-599, default 500).
    #[serde(default)]
    pub status: Option<u16>,
    /// `latency`: the delay added before the request is served.
    #[serde(default)]
    pub latency: Option<SimDuration>,
    /// `throttle`: the `Retry-After` seconds (default 1).
    #[serde(default)]
    pub retry_after: Option<u64>,
}

fn any_path() -> String {
    "*".to_string()
}

fn always() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    Deletecollection,
}

impl Verb {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::Deletecollection => "deletecollection",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultAction {
    Error,
    Latency,
    Throttle,
    Drop,
}

impl FaultAction {
    fn as_str(self) -> &'static str {
        match self {
            FaultAction::Error => "error",
            FaultAction::Latency => "latency",
            FaultAction::Throttle => "throttle",
            FaultAction::Drop => "drop",
        }
    }
}

impl FaultRules {
    /// Checks what serde cannot; `at` is the key the rules sit under, for messages.
    pub(crate) fn validate(&self, at: &str) -> Result<(), String> {
        for (i, r) in self.rules.iter().enumerate() {
            let at = format!("{at}.rules[{i}]");
            if !(0.0..=1.0).contains(&r.rate) || r.rate.is_nan() {
                return Err(format!("{at}.rate: {} is not between 0 and 1", r.rate));
            }
            if r.path.is_empty() {
                return Err(format!("{at}.path: must not be empty"));
            }
            let misplaced = |key: &str| {
                Err(format!(
                    "{at}.{key}: not used by action {:?}",
                    r.action.as_str()
                ))
            };
            match r.action {
                FaultAction::Error => {
                    if let Some(s) = r.status
                        && !(400..=599).contains(&s)
                    {
                        return Err(format!("{at}.status: {s} is not an error status (400-599)"));
                    }
                }
                FaultAction::Latency => {
                    if r.latency.is_none() {
                        return Err(format!("{at}.latency: required by action \"latency\""));
                    }
                }
                FaultAction::Throttle | FaultAction::Drop => {}
            }
            if r.status.is_some() && r.action != FaultAction::Error {
                return misplaced("status");
            }
            if r.latency.is_some() && r.action != FaultAction::Latency {
                return misplaced("latency");
            }
            if r.retry_after.is_some() && r.action != FaultAction::Throttle {
                return misplaced("retryAfter");
            }
        }
        Ok(())
    }
}

/// What the fault layer does to one request.
#[derive(Debug, Default, PartialEq)]
enum Outcome {
    #[default]
    Pass,
    Error(u16),
    Throttle(u64),
    Drop,
}

struct ActiveRule {
    rule: FaultRule,
    fired: u64,
}

struct FaultState {
    rng: u64,
    rules: Vec<ActiveRule>,
}

/// The live fault set shared by the middleware and the admin endpoint.
pub(crate) struct Faults {
    state: Mutex<FaultState>,
}

/// splitmix64: tiny, seedable, and identical on every platform and crate version.
fn next_random(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl Faults {
    pub(crate) fn new(rules: &FaultRules) -> Self {
        let f = Faults {
            state: Mutex::new(FaultState {
                rng: 0,
                rules: Vec::new(),
            }),
        };
        f.replace(rules);
        f
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn replace(&self, rules: &FaultRules) {
        let mut s = self.lock();
        s.rng = rules.seed.unwrap_or(0);
        s.rules = rules
            .rules
            .iter()
            .map(|r| ActiveRule {
                rule: r.clone(),
                fired: 0,
            })
            .collect();
    }

    fn append(&self, rules: &FaultRules) {
        let mut s = self.lock();
        if let Some(seed) = rules.seed {
            s.rng = seed;
        }
        s.rules.extend(rules.rules.iter().map(|r| ActiveRule {
            rule: r.clone(),
            fired: 0,
        }));
    }

    fn listing(&self) -> Value {
        let s = self.lock();
        let rules: Vec<Value> = s
            .rules
            .iter()
            .map(|a| {
                let r = &a.rule;
                let mut v = json!({
                    "path": r.path,
                    "verbs": r.verbs.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
                    "action": r.action.as_str(),
                    "rate": r.rate,
                    "fired": a.fired,
                });
                if let Some(n) = &r.name {
                    v["name"] = json!(n);
                }
                if let Some(t) = r.times {
                    v["times"] = json!(t);
                }
                if let Some(st) = r.status {
                    v["status"] = json!(st);
                }
                if let Some(l) = r.latency {
                    v["latency"] = json!(format!("{}ms", l.0.as_millis()));
                }
                if let Some(ra) = r.retry_after {
                    v["retryAfter"] = json!(ra);
                }
                v
            })
            .collect();
        json!({"rules": rules})
    }

    /// Decides the fate of one request: accumulated latency, then at most one terminal fault.
    fn decide(&self, verb: Verb, path: &str) -> (Duration, Outcome) {
        let mut s = self.lock();
        let FaultState { rng, rules } = &mut *s;
        let mut latency = Duration::ZERO;
        for a in rules.iter_mut() {
            let r = &a.rule;
            if r.times.is_some_and(|t| a.fired >= t)
                || !(r.verbs.is_empty() || r.verbs.contains(&verb))
                || !glob_match(&r.path, path)
            {
                continue;
            }
            if r.rate < 1.0 && next_random(rng) >= r.rate {
                continue;
            }
            a.fired += 1;
            match r.action {
                FaultAction::Latency => latency += r.latency.map(|l| l.0).unwrap_or_default(),
                FaultAction::Error => return (latency, Outcome::Error(r.status.unwrap_or(500))),
                FaultAction::Throttle => {
                    return (latency, Outcome::Throttle(r.retry_after.unwrap_or(1)));
                }
                FaultAction::Drop => return (latency, Outcome::Drop),
            }
        }
        (latency, Outcome::Pass)
    }
}

/// Per-connection switch the fault layer pulls to drop the connection without an answer.
#[derive(Clone)]
pub(crate) struct ConnKill(pub Arc<Notify>);

/// The Kubernetes verb of a request, as RBAC would name it.
pub(crate) fn request_verb(method: &Method, path: &str, query: Option<&str>) -> Verb {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest: &[&str] = match segs.as_slice() {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => &[],
    };
    let rest = if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        &rest[2..]
    } else {
        rest
    };
    let named = rest.len() >= 2 || segs.len() < 2 || !matches!(segs[0], "api" | "apis");
    match *method {
        Method::GET | Method::HEAD => {
            let watch = query.is_some_and(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .any(|(k, v)| k == "watch" && (v == "true" || v == "1"))
            });
            if watch {
                Verb::Watch
            } else if named {
                Verb::Get
            } else {
                Verb::List
            }
        }
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE if named => Verb::Delete,
        Method::DELETE => Verb::Deletecollection,
        _ => Verb::Get,
    }
}

fn status_response(code: u16, reason: &'static str, message: String) -> Response {
    let e = ApiError::new(code, reason, message);
    let mut resp = Response::new(Body::from(e.to_status().to_string()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

/// The middleware: runs after auth and before the API.
pub(crate) async fn layer(State(faults): State<Arc<Faults>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with(ADMIN_PREFIX) {
        let method = req.method().clone();
        return match axum::body::to_bytes(req.into_body(), ADMIN_BODY_LIMIT).await {
            Ok(body) => admin(&faults, &method, &path, &body),
            Err(e) => status_response(413, "RequestEntityTooLarge", format!("body: {e}")),
        };
    }
    let verb = request_verb(req.method(), &path, req.uri().query());
    let (latency, outcome) = faults.decide(verb, &path);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match outcome {
        Outcome::Pass => next.run(req).await,
        Outcome::Error(code) => status_response(
            code,
            reason_for(code),
            format!("injected fault: {} {path} answered {code}", verb.as_str()),
        ),
        Outcome::Throttle(secs) => {
            let e = ApiError::new(
                429,
                "TooManyRequests",
                format!("injected fault: too many requests, retry after {secs}s"),
            );
            let mut status = e.to_status();
            status["details"] = json!({"retryAfterSeconds": secs});
            let mut resp = Response::new(Body::from(status.to_string()));
            *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Outcome::Drop => {
            match req.extensions().get::<ConnKill>() {
                Some(kill) => {
                    kill.0.notify_one();
                    // The connection task drops this future with the connection.
                    std::future::pending::<()>().await;
                    Response::new(Body::empty())
                }
                None => status_response(500, "InternalError", "injected fault".to_string()),
            }
        }
    }
}

/// `/_admin/faults`: GET lists, PUT replaces, POST appends, DELETE clears.
fn admin(faults: &Faults, method: &Method, path: &str, body: &Bytes) -> Response {
    if path.trim_end_matches('/') != "/_admin/faults" {
        return status_response(404, "NotFound", format!("no admin endpoint {path}"));
    }
    let parse = || -> Result<FaultRules, String> {
        let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8".to_string())?;
        let v = crate::fixture::parse_yaml(text)?;
        let rules: FaultRules = from_value(v)?;
        rules.validate("faults")?;
        Ok(rules)
    };
    match *method {
        Method::GET => {}
        Method::PUT | Method::POST => match parse() {
            Ok(rules) if *method == Method::PUT => faults.replace(&rules),
            Ok(rules) => faults.append(&rules),
            Err(e) => return status_response(400, "BadRequest", e),
        },
        Method::DELETE => faults.replace(&FaultRules::default()),
        _ => {
            return status_response(
                405,
                "MethodNotAllowed",
                format!("{method} is not allowed on /_admin/faults"),
            );
        }
    }
    let mut resp = (StatusCode::OK, faults.listing().to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> FaultRules {
        let r: FaultRules = from_value(crate::fixture::parse_yaml(yaml).unwrap()).unwrap();
        r.validate("faults").unwrap();
        r
    }

    #[test]
    fn verbs_are_classified_like_rbac() {
        let v = |m: Method, p: &str, q: Option<&str>| request_verb(&m, p, q);
        assert_eq!(
            v(Method::GET, "/api/v1/namespaces/a/pods", None),
            Verb::List
        );
        assert_eq!(
            v(Method::GET, "/api/v1/namespaces/a/pods/p", None),
            Verb::Get
        );
        assert_eq!(v(Method::GET, "/api/v1/namespaces/a", None), Verb::Get);
        assert_eq!(v(Method::GET, "/api/v1/namespaces", None), Verb::List);
        assert_eq!(
            v(Method::GET, "/apis/apps/v1/deployments", Some("watch=true")),
            Verb::Watch
        );
        assert_eq!(v(Method::GET, "/version", None), Verb::Get);
        assert_eq!(
            v(Method::POST, "/api/v1/namespaces/a/pods", None),
            Verb::Create
        );
        assert_eq!(
            v(Method::DELETE, "/api/v1/namespaces/a/pods", None),
            Verb::Deletecollection
        );
        assert_eq!(
            v(Method::DELETE, "/api/v1/namespaces/a/pods/p", None),
            Verb::Delete
        );
    }

    #[test]
    fn seeded_rates_repeat_and_times_run_out() {
        let spec = "{seed: 42, rules: [{action: error, rate: 0.5, verbs: [list]}]}";
        let run = || {
            let f = Faults::new(&rules(spec));
            (0..64)
                .map(|_| f.decide(Verb::List, "/api/v1/pods").1 != Outcome::Pass)
                .collect::<Vec<bool>>()
        };
        let a = run();
        assert_eq!(a, run());
        let hits = a.iter().filter(|h| **h).count();
        assert!((16..=48).contains(&hits), "{hits} of 64 at rate 0.5");
        let f = Faults::new(&rules("{rules: [{action: error, status: 503, times: 2}]}"));
        let seq: Vec<Outcome> = (0..4).map(|_| f.decide(Verb::Get, "/x").1).collect();
        assert_eq!(
            seq,
            [
                Outcome::Error(503),
                Outcome::Error(503),
                Outcome::Pass,
                Outcome::Pass
            ]
        );
        // Verb and path filters.
        let f = Faults::new(&rules(
            "{rules: [{action: drop, path: '/apis/*', verbs: [patch]}]}",
        ));
        assert_eq!(f.decide(Verb::Get, "/apis/x").1, Outcome::Pass);
        assert_eq!(f.decide(Verb::Patch, "/api/v1/x").1, Outcome::Pass);
        assert_eq!(f.decide(Verb::Patch, "/apis/x").1, Outcome::Drop);
        // Latency adds up and does not stop later rules.
        let f = Faults::new(&rules(
            "{rules: [{action: latency, latency: 10ms}, {action: throttle, retryAfter: 3}]}",
        ));
        assert_eq!(
            f.decide(Verb::Get, "/x"),
            (Duration::from_millis(10), Outcome::Throttle(3))
        );
    }
}
