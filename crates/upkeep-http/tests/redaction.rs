//! A token never appears in an error message or in any log line, captured at
//! TRACE level from every crate (reqwest and hyper included) and every thread.
//!
//! Its own test binary, because it installs the process-wide subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{fast_config, url};
use upkeep_http::{AuthScheme, BaseUrl, ClientConfig, HttpError, Request, Token, UpstreamClient};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const SECRET: &str = "ghp_neverInLogsOrErrors0123456789";
const QUERY_SECRET: &str = "sigValueNeverShown42";

#[tokio::test]
async fn tokens_never_reach_errors_or_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        // Everything at TRACE except the mock server, whose own logging of the
        // requests it receives is not the client's output.
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace,wiremock=off"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(path("/failing"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let target = format!(
        "{}/asset?token={SECRET}&sig={QUERY_SECRET}",
        elsewhere.uri()
    );
    Mock::given(path("/redirect"))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", target.as_str()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'z'; 4096]))
        .mount(&elsewhere)
        .await;

    let scope = BaseUrl::parse(&server.uri()).unwrap();
    let token = Token::new(SECRET, AuthScheme::GitHub, &scope, "test").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let client = UpstreamClient::new(ClientConfig {
        max_retries: 2,
        max_body_bytes: 1024,
        cache_dir: Some(cache.path().to_owned()),
        ..fast_config()
    })
    .unwrap();

    // Retried 5xx with the token in the header and in the URL.
    let failing = url(&server.uri(), &format!("/failing?access_token={SECRET}"));
    let err = client
        .get(&Request::new(failing).token(&token))
        .await
        .unwrap_err();
    let mut errors = vec![err.to_string(), format!("{err:?}")];
    assert!(matches!(err, HttpError::Status { status: 500, .. }));

    // A redirect to a signed URL on another host, whose body is too large.
    let err = client
        .get(&Request::new(url(&server.uri(), "/redirect")).token(&token))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::BodyTooLarge { .. }), "{err:?}");
    errors.push(err.to_string());
    errors.push(format!("{err:?}"));

    // An unreachable host with credentials in the URL.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let refused = url(&format!("http://{addr}"), &format!("/x?password={SECRET}"));
    let err = client
        .get(&Request::new(refused).token(&token))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Unreachable { .. }), "{err:?}");
    errors.push(err.to_string());
    errors.push(format!("{err:?}"));
    errors.push(format!("{token:?} {token}"));

    for text in &errors {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains(QUERY_SECRET), "{text}");
    }

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture really saw this crate's lines, and reqwest's and hyper's,
    // so the absence of the secret means something.
    assert!(logs.contains("retrying"), "{logs}");
    assert!(logs.contains("upkeep_http"), "{logs}");
    assert!(logs.contains("access_token=***"), "{logs}");
    assert!(logs.contains("hyper") || logs.contains("reqwest"), "{logs}");
    assert!(!logs.contains(SECRET), "secret leaked into logs:\n{logs}");
    assert!(
        !logs.contains(QUERY_SECRET),
        "signature leaked into logs:\n{logs}"
    );
}
