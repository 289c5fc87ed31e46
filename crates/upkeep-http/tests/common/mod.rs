//! Helpers shared by the integration tests: a fast client configuration and a
//! raw TCP server for upstreams that misbehave in ways wiremock cannot.

#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use upkeep_http::ClientConfig;
use url::Url;

/// Retries with millisecond backoff so tests are fast; the timeouts are
/// generous because only misbehaving servers should ever hit them.
pub fn fast_config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
        max_retries: 3,
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(5),
        max_wait: Duration::from_secs(10),
        ..ClientConfig::default()
    }
}

pub fn url(base: &str, path: &str) -> Url {
    Url::parse(&format!("{}{}", base.trim_end_matches('/'), path)).unwrap()
}

/// A TCP server on 127.0.0.1 that runs `handler` for every connection, with
/// the connection's 0-based index. Returns its base URL and the count of
/// connections accepted so far.
pub async fn raw_server<F, Fut>(handler: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let index = counter.fetch_add(1, Ordering::SeqCst);
            let handler = Arc::clone(&handler);
            tokio::spawn(async move { handler(stream, index).await });
        }
    });
    (format!("http://{addr}"), count)
}

/// Read one request head (up to the blank line) and return it.
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}
