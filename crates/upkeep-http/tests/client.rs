//! Behaviour of `UpstreamClient` against real local HTTP servers: wiremock for
//! well-formed exchanges, a raw TCP listener for misbehaving upstreams.
//! Retries and cache hits are proven by counting the requests the server saw.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{fast_config, raw_server, read_head, url};
use tokio::io::AsyncWriteExt;
use upkeep_http::{AuthScheme, BaseUrl, ClientConfig, HttpError, Request, Token, UpstreamClient};
use wiremock::matchers::{header, header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap()
}

fn client(config: ClientConfig) -> UpstreamClient {
    UpstreamClient::new(config).unwrap()
}

fn cached_config(dir: &std::path::Path) -> ClientConfig {
    ClientConfig {
        cache_dir: Some(dir.to_owned()),
        ..fast_config()
    }
}

fn epoch_in(secs: i64) -> String {
    (jiff::Timestamp::now().as_second() + secs).to_string()
}

// ---------------------------------------------------------------- retries

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;

    let response = client(fast_config())
        .get(&Request::new(url(&server.uri(), "/flaky")))
        .await
        .unwrap();
    assert_eq!(response.body().as_ref(), b"ok");
    assert!(!response.from_cache());
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn retries_are_bounded() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;

    let config = ClientConfig {
        max_retries: 2,
        ..fast_config()
    };
    let err = client(config)
        .get(&Request::new(url(&server.uri(), "/down")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HttpError::Status {
                status: 503,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_environment());
    assert!(
        err.to_string().contains(&format!("{}/down", server.uri())),
        "{err}"
    );
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/missing"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(path("/forbidden"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    let client = client(fast_config());

    let err = client
        .get(&Request::new(url(&server.uri(), "/missing")))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(!err.is_environment(), "a 404 points at the caller's input");

    let err = client
        .get(&Request::new(url(&server.uri(), "/forbidden")))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert!(err.is_environment(), "permission denied is the environment");

    assert_eq!(
        requests(&server).await.len(),
        2,
        "one request each, no retries"
    );
}

#[tokio::test]
async fn unauthorized_carries_the_www_authenticate_challenge() {
    let server = MockServer::start().await;
    let challenge = "Bearer realm=\"http://127.0.0.1/token\",service=\"registry\",scope=\"repository:charts/podinfo:pull\"";
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).insert_header("WWW-Authenticate", challenge))
        .mount(&server)
        .await;
    let err = client(fast_config())
        .get(&Request::new(url(
            &server.uri(),
            "/v2/charts/podinfo/tags/list",
        )))
        .await
        .unwrap_err();
    match err {
        HttpError::Status {
            status: 401,
            www_authenticate: Some(w),
            ..
        } => assert_eq!(w, challenge),
        other => panic!("{other:?}"),
    }
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("after the wait"))
        .mount(&server)
        .await;

    let started = Instant::now();
    let response = client(fast_config())
        .get(&Request::new(url(&server.uri(), "/limited")))
        .await
        .unwrap();
    assert_eq!(response.body().as_ref(), b"after the wait");
    assert_eq!(requests(&server).await.len(), 2);
    // Only a lower bound: backoff alone is milliseconds, so this proves the
    // header was obeyed, and a slow machine can only make it larger.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn retry_after_http_date_is_honoured() {
    let server = MockServer::start().await;
    // Started before the date is computed, so the lower bound below holds
    // however slowly the rest of the test runs.
    let started = Instant::now();
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2);
    let http_date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&at)
        .unwrap();
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", http_date.as_str()))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("back"))
        .mount(&server)
        .await;

    let response = client(fast_config())
        .get(&Request::new(url(&server.uri(), "/maintenance")))
        .await
        .unwrap();
    assert_eq!(response.body().as_ref(), b"back");
    assert_eq!(requests(&server).await.len(), 2);
    // The date has one-second resolution: now+2s truncated is at least 1s away.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn retry_after_beyond_max_wait_fails_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3600"))
        .mount(&server)
        .await;
    Mock::given(path("/unavailable"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "3600"))
        .with_priority(1)
        .mount(&server)
        .await;
    let client = client(fast_config());

    let err = client
        .get(&Request::new(url(&server.uri(), "/busy")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HttpError::RateLimited {
                reset_at: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_environment());
    assert!(err.to_string().contains("resets at"), "{err}");

    let err = client
        .get(&Request::new(url(&server.uri(), "/unavailable")))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));

    assert_eq!(requests(&server).await.len(), 2, "no retry for either");
}

#[tokio::test]
async fn github_rate_limit_403_waits_for_the_reset() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Reset", epoch_in(1).as_str()),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-RateLimit-Remaining", "4999")
                .set_body_string("[]"),
        )
        .mount(&server)
        .await;

    let response = client(fast_config())
        .get(&Request::new(url(
            &server.uri(),
            "/repos/k3s-io/k3s/releases",
        )))
        .await
        .unwrap();
    assert_eq!(response.body().as_ref(), b"[]");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn github_rate_limit_beyond_max_wait_is_a_clear_error() {
    let server = MockServer::start().await;
    let reset = epoch_in(3600);
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Reset", reset.as_str()),
        )
        .mount(&server)
        .await;

    let err = client(fast_config())
        .get(&Request::new(url(
            &server.uri(),
            "/repos/fluxcd/flux2/releases",
        )))
        .await
        .unwrap_err();
    let expected = jiff::Timestamp::from_second(reset.parse().unwrap()).unwrap();
    match &err {
        HttpError::RateLimited { reset_at, .. } => assert_eq!(*reset_at, Some(expected)),
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&expected.to_string()), "{msg}");
    assert!(msg.contains("/repos/fluxcd/flux2/releases"), "{msg}");
    assert!(err.is_environment());
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn used_up_quota_holds_back_the_next_request() {
    let server = MockServer::start().await;
    Mock::given(path("/far"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Reset", epoch_in(3600).as_str())
                .set_body_string("last one"),
        )
        .mount(&server)
        .await;
    let client = client(fast_config());

    let first = client
        .get(&Request::new(url(&server.uri(), "/far")))
        .await
        .unwrap();
    assert_eq!(first.body().as_ref(), b"last one");

    // Another path on the same host: refused without sending anything.
    let err = client
        .get(&Request::new(url(&server.uri(), "/other")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HttpError::RateLimited {
                reset_at: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        requests(&server).await.len(),
        1,
        "no request burnt on a known 403"
    );

    // Clones share what is known about the quota.
    let err = client
        .clone()
        .get(&Request::new(url(&server.uri(), "/far")))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::RateLimited { .. }), "{err:?}");
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn used_up_quota_with_a_near_reset_waits_then_sends() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Reset", epoch_in(1).as_str())
                .set_body_string("page"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("next page"))
        .mount(&server)
        .await;
    let client = client(fast_config());
    client
        .get(&Request::new(url(&server.uri(), "/p1")))
        .await
        .unwrap();
    let second = client
        .get(&Request::new(url(&server.uri(), "/p2")))
        .await
        .unwrap();
    assert_eq!(second.body().as_ref(), b"next page");
    assert_eq!(requests(&server).await.len(), 2);
}

// ------------------------------------------------------ transport failures

#[tokio::test]
async fn a_silent_server_times_out_and_is_retried() {
    // Accepts, reads the request, never answers.
    let (base, connections) = raw_server(|mut stream, _| async move {
        read_head(&mut stream).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(stream);
    })
    .await;
    let config = ClientConfig {
        timeout: Duration::from_millis(300),
        max_retries: 1,
        ..fast_config()
    };
    let err = client(config)
        .get(&Request::new(url(&base, "/slow")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, HttpError::Timeout { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(err.is_environment());
    assert!(err.to_string().contains(&format!("{base}/slow")), "{err}");
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_connection_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener); // nothing listens there any more
    let config = ClientConfig {
        max_retries: 1,
        ..fast_config()
    };
    let err = client(config)
        .get(&Request::new(url(&format!("http://{addr}"), "/x")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, HttpError::Unreachable { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(err.is_environment());
    let msg = err.to_string();
    assert!(msg.contains(&format!("http://{addr}/x")), "{msg}");
}

#[tokio::test]
async fn a_connection_dropped_mid_body_is_retried() {
    let (base, connections) = raw_server(|mut stream, index| async move {
        read_head(&mut stream).await;
        if index == 0 {
            // Promise 100 bytes, send 10, hang up.
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                .await;
        } else {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nwhole",
                )
                .await;
        }
        let _ = stream.shutdown().await;
    })
    .await;
    let response = client(fast_config())
        .get(&Request::new(url(&base, "/index.yaml")))
        .await
        .unwrap();
    assert_eq!(response.body().as_ref(), b"whole");
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

// ------------------------------------------------------------ size limit

#[tokio::test]
async fn a_body_over_the_limit_is_an_error_and_not_cached() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 2048]))
        .mount(&server)
        .await;
    let cache = tempfile::tempdir().unwrap();
    let config = ClientConfig {
        max_body_bytes: 1024,
        ..cached_config(cache.path())
    };
    let target = url(&server.uri(), "/huge/index.yaml");
    let err = client(config.clone())
        .get(&Request::new(target.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, HttpError::BodyTooLarge { limit: 1024, .. }),
        "{err:?}"
    );
    assert!(
        !err.is_environment(),
        "an invalid response, not the environment"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(target.as_str()) && msg.contains("1024"),
        "{msg}"
    );
    assert_eq!(requests(&server).await.len(), 1, "not retried");

    // Nothing cached: offline has nothing to answer with.
    let offline = client(ClientConfig {
        offline: true,
        ..config
    });
    let err = offline.get(&Request::new(target)).await.unwrap_err();
    assert!(matches!(err, HttpError::OfflineMiss { .. }), "{err:?}");
    let http_dir = cache.path().join("http");
    let files = std::fs::read_dir(&http_dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(files, 0);
}

#[tokio::test]
async fn an_endless_body_without_length_stops_at_the_limit() {
    // Streams chunked data far past the limit; the client must hang up early
    // instead of buffering it all.
    let (base, _) = raw_server(|mut stream, _| async move {
        read_head(&mut stream).await;
        if stream
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "y".repeat(64 * 1024));
        // Bounded: 1 GiB at most, far more than the limit.
        for _ in 0..16 * 1024 {
            if stream.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await;
    let config = ClientConfig {
        max_body_bytes: 1024 * 1024,
        ..fast_config()
    };
    let err = client(config)
        .get(&Request::new(url(&base, "/stream")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HttpError::BodyTooLarge {
                limit: 1_048_576,
                ..
            }
        ),
        "{err:?}"
    );
}

// ------------------------------------------------------------ the cache

#[tokio::test]
async fn etag_revalidation_answers_304_from_the_cache() {
    let server = MockServer::start().await;
    Mock::given(header("If-None-Match", "\"v1\""))
        .respond_with(ResponseTemplate::new(304))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("ETag", "\"v1\"")
                .set_body_raw("entries: {}\n", "application/x-yaml"),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(cached_config(dir.path()));
    let request = Request::new(url(&server.uri(), "/index.yaml"));

    let first = client.get(&request).await.unwrap();
    assert!(!first.from_cache());
    let second = client.get(&request).await.unwrap();
    assert!(second.from_cache());
    assert_eq!(second.body(), first.body());
    assert_eq!(second.content_type(), Some("application/x-yaml"));
    assert_eq!(second.header("etag"), Some("\"v1\""));
    assert_eq!(second.status(), 200);

    let seen = requests(&server).await;
    assert_eq!(seen.len(), 2);
    assert!(!seen[0].headers.contains_key("if-none-match"));
    assert_eq!(seen[1].headers["if-none-match"], "\"v1\"");
}

#[tokio::test]
async fn last_modified_revalidation_answers_304_from_the_cache() {
    let server = MockServer::start().await;
    let stamp = "Wed, 21 Oct 2026 07:28:00 GMT";
    // wiremock's `header` matcher splits values at commas, which HTTP dates contain.
    Mock::given(move |req: &wiremock::Request| {
        req.headers
            .get("if-modified-since")
            .is_some_and(|v| v.as_bytes() == stamp.as_bytes())
    })
    .respond_with(ResponseTemplate::new(304))
    .with_priority(1)
    .mount(&server)
    .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Last-Modified", stamp)
                .set_body_string("stable"),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    // A second client on the same directory: the cache is on disk, not in memory.
    let request = Request::new(url(&server.uri(), "/v1-release"));
    let first = client(cached_config(dir.path()))
        .get(&request)
        .await
        .unwrap();
    assert!(!first.from_cache());
    let second = client(cached_config(dir.path()))
        .get(&request)
        .await
        .unwrap();
    assert!(second.from_cache());
    assert_eq!(second.body().as_ref(), b"stable");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_changed_upstream_replaces_the_cached_copy() {
    let server = MockServer::start().await;
    Mock::given(header("If-None-Match", "\"v2\""))
        .respond_with(ResponseTemplate::new(304))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(header("If-None-Match", "\"v1\""))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("ETag", "\"v2\"")
                .set_body_string("new"),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("ETag", "\"v1\"")
                .set_body_string("old"),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(cached_config(dir.path()));
    let request = Request::new(url(&server.uri(), "/channels"));

    assert_eq!(client.get(&request).await.unwrap().body().as_ref(), b"old");
    let changed = client.get(&request).await.unwrap();
    assert!(!changed.from_cache());
    assert_eq!(changed.body().as_ref(), b"new");
    let again = client.get(&request).await.unwrap();
    assert!(again.from_cache());
    assert_eq!(again.body().as_ref(), b"new");
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn accept_is_sent_and_keys_the_cache() {
    let server = MockServer::start().await;
    Mock::given(header("Accept", "application/vnd.oci.image.index.v1+json"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("ETag", "\"index\"")
                .insert_header("Docker-Content-Digest", "sha256:abc")
                .set_body_string("index"),
        )
        .mount(&server)
        .await;
    Mock::given(header(
        "Accept",
        "application/vnd.oci.image.manifest.v1+json",
    ))
    .respond_with(
        ResponseTemplate::new(200)
            .insert_header("ETag", "\"manifest\"")
            .set_body_string("manifest"),
    )
    .mount(&server)
    .await;
    let dir = tempfile::tempdir().unwrap();
    let online = client(cached_config(dir.path()));
    let target = url(&server.uri(), "/v2/charts/podinfo/manifests/6.9.0");
    let index = Request::new(target.clone()).accept("application/vnd.oci.image.index.v1+json");
    let manifest = Request::new(target).accept("application/vnd.oci.image.manifest.v1+json");
    let got = online.get(&index).await.unwrap();
    assert_eq!(got.body().as_ref(), b"index");
    assert_eq!(got.header("docker-content-digest"), Some("sha256:abc"));
    assert_eq!(
        online.get(&manifest).await.unwrap().body().as_ref(),
        b"manifest"
    );

    let offline = client(ClientConfig {
        offline: true,
        ..cached_config(dir.path())
    });
    assert_eq!(offline.get(&index).await.unwrap().body().as_ref(), b"index");
    assert_eq!(
        offline.get(&manifest).await.unwrap().body().as_ref(),
        b"manifest"
    );
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn corrupt_cache_metadata_is_a_miss_not_a_crash() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("ETag", "\"v1\"")
                .set_body_string("fresh"),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let request = Request::new(url(&server.uri(), "/index.yaml"));
    client(cached_config(dir.path()))
        .get(&request)
        .await
        .unwrap();

    // Tear every metadata file in half, as a crash mid-write would without
    // atomic writes.
    for entry in std::fs::read_dir(dir.path().join("http")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        }
    }

    let offline = client(ClientConfig {
        offline: true,
        ..cached_config(dir.path())
    });
    let err = offline.get(&request).await.unwrap_err();
    assert!(matches!(err, HttpError::OfflineMiss { .. }), "{err:?}");

    let again = client(cached_config(dir.path()))
        .get(&request)
        .await
        .unwrap();
    assert!(!again.from_cache());
    assert_eq!(again.body().as_ref(), b"fresh");
    let seen = requests(&server).await;
    assert_eq!(seen.len(), 2);
    assert!(
        !seen[1].headers.contains_key("if-none-match"),
        "no revalidation against an entry that is not intact"
    );
    // And the entry was rewritten whole.
    assert!(offline.get(&request).await.unwrap().from_cache());
}

#[tokio::test]
async fn no_store_responses_and_no_cache_requests_skip_the_cache() {
    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Cache-Control", "private, no-store")
                .set_body_string("{\"token\":\"x\"}"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/plain"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("ETag", "\"p\"")
                .set_body_string("p"),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let online = client(cached_config(dir.path()));
    online
        .get(&Request::new(url(&server.uri(), "/token")))
        .await
        .unwrap();
    online
        .get(&Request::new(url(&server.uri(), "/plain")).no_cache())
        .await
        .unwrap();

    let offline = client(ClientConfig {
        offline: true,
        ..cached_config(dir.path())
    });
    for p in ["/token", "/plain"] {
        let err = offline
            .get(&Request::new(url(&server.uri(), p)))
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::OfflineMiss { .. }), "{p}: {err:?}");
    }
}

// ---------------------------------------------------------------- offline

#[tokio::test]
async fn offline_answers_a_hit_without_any_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Link", "</page2>; rel=\"next\"")
                .set_body_string("cached body"),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let request = Request::new(url(&server.uri(), "/releases"));
    client(cached_config(dir.path()))
        .get(&request)
        .await
        .unwrap();
    assert_eq!(requests(&server).await.len(), 1);

    let offline = client(ClientConfig {
        offline: true,
        ..cached_config(dir.path())
    });
    let hit = offline.get(&request).await.unwrap();
    assert!(hit.from_cache());
    assert_eq!(hit.body().as_ref(), b"cached body");
    // Pagination works from the cache too.
    assert_eq!(hit.next_link(), Some(url(&server.uri(), "/page2")));
    assert_eq!(
        requests(&server).await.len(),
        1,
        "offline never touches the network"
    );
}

#[tokio::test]
async fn offline_miss_is_a_clear_error() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let offline = client(ClientConfig {
        offline: true,
        ..cached_config(dir.path())
    });
    let target = url(&server.uri(), "/repos/longhorn/longhorn/releases");
    let err = offline
        .get(&Request::new(target.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::OfflineMiss { .. }), "{err:?}");
    assert!(err.is_environment());
    assert_eq!(
        err.to_string(),
        format!("offline: {target} is not in the cache")
    );
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn offline_without_a_cache_dir_is_refused() {
    let err = UpstreamClient::new(ClientConfig {
        offline: true,
        ..fast_config()
    })
    .err()
    .unwrap();
    assert!(matches!(err, HttpError::Config(_)), "{err:?}");
}

// ---------------------------------------------------------------- tokens

#[tokio::test]
async fn token_is_sent_only_to_its_own_host() {
    let github = MockServer::start().await;
    let other = MockServer::start().await;
    for server in [&github, &other] {
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
            .mount(server)
            .await;
    }
    let scope = BaseUrl::parse(&github.uri()).unwrap();
    let token = Token::new("ghp_scopeIntegration1", AuthScheme::GitHub, &scope, "test").unwrap();
    let client = client(fast_config());
    client
        .get(&Request::new(scope.join("repos/a/b/releases").unwrap()).token(&token))
        .await
        .unwrap();
    client
        .get(&Request::new(url(&other.uri(), "/elsewhere")).token(&token))
        .await
        .unwrap();

    let seen = requests(&github).await;
    assert_eq!(
        seen[0].headers["authorization"],
        "token ghp_scopeIntegration1"
    );
    let seen = requests(&other).await;
    assert!(!seen[0].headers.contains_key("authorization"));
}

#[tokio::test]
async fn token_is_not_forwarded_to_a_redirect_on_another_host() {
    let api = MockServer::start().await;
    let assets = MockServer::start().await;
    Mock::given(path("/same-host"))
        .respond_with(ResponseTemplate::new(301).insert_header("Location", "/moved"))
        .mount(&api)
        .await;
    Mock::given(path("/moved"))
        .and(header_exists("authorization"))
        .respond_with(ResponseTemplate::new(200).set_body_string("moved"))
        .mount(&api)
        .await;
    let asset_url = url(&assets.uri(), "/release-asset?X-Amz-Signature=abc");
    Mock::given(path("/download"))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", asset_url.as_str()))
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("asset"))
        .mount(&assets)
        .await;

    let scope = BaseUrl::parse(&api.uri()).unwrap();
    let token = Token::new("bearerRedirectTest9", AuthScheme::Bearer, &scope, "test").unwrap();
    let client = client(fast_config());

    let same = client
        .get(&Request::new(scope.join("same-host").unwrap()).token(&token))
        .await
        .unwrap();
    assert_eq!(same.body().as_ref(), b"moved", "same host keeps the token");

    let cross = client
        .get(&Request::new(scope.join("download").unwrap()).token(&token))
        .await
        .unwrap();
    assert_eq!(cross.body().as_ref(), b"asset");
    assert_eq!(cross.url(), &asset_url, "the final URL is reported");

    for request in requests(&api).await {
        assert_eq!(
            request.headers["authorization"],
            "Bearer bearerRedirectTest9"
        );
    }
    let at_assets = requests(&assets).await;
    assert_eq!(at_assets.len(), 1);
    assert!(!at_assets[0].headers.contains_key("authorization"));
}

// ------------------------------------------------------------ odds and ends

#[tokio::test]
async fn user_agent_names_upkeep() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    client(fast_config())
        .get(&Request::new(url(&server.uri(), "/")))
        .await
        .unwrap();
    let agent = requests(&server).await[0].headers["user-agent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(agent, format!("upkeep/{}", env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn a_redirect_loop_is_a_bad_redirect() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", "/again"))
        .mount(&server)
        .await;
    let err = client(fast_config())
        .get(&Request::new(url(&server.uri(), "/start")))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::BadRedirect { .. }), "{err:?}");
    assert!(!err.is_environment());
    assert_eq!(
        requests(&server).await.len(),
        11,
        "the first request and 10 redirects, once"
    );
}

#[tokio::test]
async fn pagination_follows_next_links() {
    let server = MockServer::start().await;
    let page2 = format!(
        "<{}/r?page=2>; rel=\"next\", <{}/r?page=3>; rel=\"last\"",
        server.uri(),
        server.uri()
    );
    Mock::given(wiremock::matchers::query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Link", "</r?page=3>; rel=\"next\"")
                .set_body_string("[2]"),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::query_param("page", "3"))
        .respond_with(ResponseTemplate::new(200).set_body_string("[3]"))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Link", page2.as_str())
                .set_body_string("[1]"),
        )
        .mount(&server)
        .await;

    let client = client(fast_config());
    let mut next = Some(url(&server.uri(), "/r"));
    let mut pages = Vec::new();
    while let Some(target) = next {
        let response = client.get(&Request::new(target)).await.unwrap();
        let page: Vec<u32> = response.json().unwrap();
        pages.extend(page);
        next = response.next_link();
    }
    assert_eq!(pages, vec![1, 2, 3]);
}

#[tokio::test]
async fn unfit_urls_are_refused_before_any_request() {
    let server = MockServer::start().await;
    let client = client(fast_config());
    let err = client
        .get(&Request::new(
            url::Url::parse("file:///etc/passwd").unwrap(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::InvalidUrl { .. }), "{err:?}");

    let with_password = server.uri().replace("http://", "http://admin:hunter2@");
    let err = client
        .get(&Request::new(url(&with_password, "/index.yaml")))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::InvalidUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{:?}", Request::new(url(&with_password, "/"))).contains("hunter2"));
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn a_redirect_carrying_credentials_is_refused() {
    let server = MockServer::start().await;
    let target = server.uri().replace("http://", "http://u:p4ss@");
    Mock::given(path("/start"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("Location", format!("{target}/x").as_str()),
        )
        .mount(&server)
        .await;
    let err = client(fast_config())
        .get(&Request::new(url(&server.uri(), "/start")))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::BadRedirect { .. }), "{err:?}");
    assert_eq!(requests(&server).await.len(), 1);
}
