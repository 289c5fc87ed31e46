//! The request log: every authenticated Kubernetes API request, as the verb
//! RBAC would check and the path, so a test can hold what the tools did
//! against a ClusterRole. `GET /_admin/requests` lists them (JSON lines of
//! `{"verb", "path"}`), `DELETE` clears the log. Kept in memory with a cap,
//! since a long run makes many requests.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::faults::request_verb;

const PATH: &str = "/_admin/requests";
/// Entries kept at most; past it the oldest half is dropped and counted.
const CAP: usize = 200_000;

#[derive(Default)]
pub(crate) struct Requests {
    log: Mutex<(Vec<(&'static str, String)>, u64)>,
}

pub(crate) async fn layer(State(r): State<Arc<Requests>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.trim_end_matches('/') == PATH {
        return admin(&r, req.method());
    }
    if path.starts_with("/api/") || path.starts_with("/apis/") {
        let verb = request_verb(req.method(), &path, req.uri().query()).as_str();
        let mut log = r.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.0.len() >= CAP {
            let half = CAP / 2;
            log.0.drain(..half);
            log.1 += half as u64;
        }
        log.0.push((verb, path));
    }
    next.run(req).await
}

fn admin(r: &Requests, method: &Method) -> Response {
    let mut log = r.log.lock().unwrap_or_else(|p| p.into_inner());
    match *method {
        Method::GET => {
            let mut body = String::new();
            if log.1 > 0 {
                body.push_str(&json!({"dropped": log.1}).to_string());
                body.push('\n');
            }
            for (verb, path) in &log.0 {
                body.push_str(&json!({"verb": verb, "path": path}).to_string());
                body.push('\n');
            }
            let mut resp = Response::new(Body::from(body));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jsonl"),
            );
            resp
        }
        Method::DELETE => {
            *log = Default::default();
            StatusCode::NO_CONTENT.into_response()
        }
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {PATH}"),
        )
            .into_response(),
    }
}
