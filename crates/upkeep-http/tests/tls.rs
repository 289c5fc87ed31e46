//! TLS verification is on: a server with a certificate from an unknown CA is
//! refused, trusting that CA through `extra_root_certs_pem` makes it work, and
//! only the explicit danger switch skips verification (with a warning).

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};
use upkeep_http::{ClientConfig, HttpError, Request, UpstreamClient};
use url::Url;

/// A homelab-style CA and an HTTPS server on 127.0.0.1 with a certificate it
/// signed. Returns the server URL and the CA certificate PEM.
async fn https_server() -> (Url, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca.der().clone()],
            pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A failed handshake is the expected outcome of some tests.
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecure",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let url = Url::parse(&format!("https://127.0.0.1:{}/index.yaml", addr.port())).unwrap();
    (url, ca.pem())
}

fn config() -> ClientConfig {
    ClientConfig {
        max_retries: 0,
        ..ClientConfig::default()
    }
}

#[tokio::test]
async fn unknown_ca_is_refused() {
    let (url, _) = https_server().await;
    let err = UpstreamClient::new(config())
        .unwrap()
        .get(&Request::new(url.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(url.as_str()), "{msg}");
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
}

#[tokio::test]
async fn extra_root_ca_is_trusted() {
    let (url, ca_pem) = https_server().await;
    let client = UpstreamClient::new(ClientConfig {
        extra_root_certs_pem: vec![ca_pem.into_bytes()],
        ..config()
    })
    .unwrap();
    let response = client.get(&Request::new(url)).await.unwrap();
    assert_eq!(response.body().as_ref(), b"secure");
}

#[tokio::test]
async fn danger_switch_skips_verification() {
    let (url, _) = https_server().await;
    // The warning is emitted while building the client, on this thread.
    let captured = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = Arc::clone(&captured);
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || Sink(Arc::clone(&sink)))
        .finish();
    let client = tracing::subscriber::with_default(subscriber, || {
        UpstreamClient::new(ClientConfig {
            danger_accept_invalid_certs: true,
            ..config()
        })
    })
    .unwrap();
    let logs = String::from_utf8(captured.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("WARN"), "{logs}");
    assert!(
        logs.contains("TLS CERTIFICATE VERIFICATION IS DISABLED"),
        "{logs}"
    );
    let response = client.get(&Request::new(url)).await.unwrap();
    assert_eq!(response.body().as_ref(), b"secure");
}

#[test]
fn garbage_ca_pem_is_a_config_error() {
    let err = UpstreamClient::new(ClientConfig {
        extra_root_certs_pem: vec![b"not a certificate".to_vec()],
        ..config()
    })
    .err()
    .unwrap();
    assert!(matches!(err, HttpError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("#1"), "{err}");
}

struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
