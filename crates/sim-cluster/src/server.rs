//! Serving: the listener (plain HTTP or TLS with a generated CA), the middleware chain, the
//! kubeconfig for clients, and the [`SimCluster`] handle that starts and stops it all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use base64::Engine;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, App};
use crate::config::SimConfig;
use crate::controllers::{Controllers, PodLogs};
use crate::error::ApiError;
use crate::faults::{self, ConnKill, Faults};
use crate::store::Store;

/// Largest request body accepted (real kube-apiserver allows 3 MiB objects; kubectl's
/// last-applied annotation can double a large CRD).
const MAX_BODY: usize = 32 * 1024 * 1024;
/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for open connections to finish.
const DRAIN: Duration = Duration::from_secs(5);

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// Reported by `/version`, e.g. `v1.31.4+k3s1`.
    pub git_version: String,
    /// Serve HTTPS with a generated CA and require a bearer token.
    pub tls: bool,
    /// Where the kubeconfig for this server is written (mode 0600).
    pub kubeconfig: PathBuf,
    /// Simulated controllers and faults (`SIM.yaml`); the default runs none of either.
    pub sim: SimConfig,
}

impl ServeConfig {
    pub fn new(kubeconfig: impl Into<PathBuf>) -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            git_version: "v1.31.4+k3s1".to_string(),
            tls: false,
            kubeconfig: kubeconfig.into(),
            sim: SimConfig::default(),
        }
    }

    /// The same configuration with `SIM.yaml` settings.
    pub fn with_sim(mut self, sim: SimConfig) -> Self {
        self.sim = sim;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

/// A running simulated cluster. Dropping it without [`SimCluster::shutdown`] aborts serving.
pub struct SimCluster {
    address: SocketAddr,
    kubeconfig: PathBuf,
    store: Store,
    ca_pem: Option<String>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    controllers: Option<Controllers>,
}

impl SimCluster {
    /// Starts serving `store`; returns once the listener is bound and the kubeconfig written.
    pub async fn start(store: Store, cfg: ServeConfig) -> Result<SimCluster, ServeError> {
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let (stop, stop_rx) = watch::channel(false);
        let (tls, token, ca_pem) = if cfg.tls {
            let t = tls_material(address)?;
            (Some(t.acceptor), Some(t.token), Some(t.ca_pem))
        } else {
            (None, None, None)
        };
        write_kubeconfig(
            &cfg.kubeconfig,
            address,
            ca_pem.as_deref(),
            token.as_deref(),
        )?;
        let logs = PodLogs::default();
        let app = Arc::new(App {
            store: store.clone(),
            git_version: cfg.git_version.clone(),
            token,
            shutdown: stop_rx.clone(),
            logs: logs.clone(),
        });
        let faults = Arc::new(Faults::new(&cfg.sim.faults));
        let router = router(app, faults);
        let task = tokio::spawn(accept_loop(listener, router, tls, stop_rx));
        let controllers = Controllers::start(&store, &cfg.sim.controllers, logs);
        Ok(SimCluster {
            address,
            kubeconfig: cfg.kubeconfig,
            store,
            ca_pem,
            stop,
            task: Some(task),
            controllers: Some(controllers),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The store behind the server, for in-process controllers and assertions.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The CA certificate (PEM) clients must trust, when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Stops accepting, ends open watches, and waits (bounded) for connections to close.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(c) = self.controllers.take() {
            // Controller threads finish their current pass (bounded by a git call or two).
            let _ = tokio::task::spawn_blocking(move || c.stop_and_join()).await;
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(c) = self.controllers.take() {
            c.stop();
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The middleware chain. Layers run outermost first: auth, then the request log (which
/// answers `/_admin/requests`), then fault injection (which answers `/_admin/faults`), then
/// the API. Faults come after auth so they hit authenticated traffic only; the log sees
/// every request a client made, faulted or not.
fn router(app: Arc<App>, faults: Arc<Faults>) -> Router {
    Router::new()
        .fallback(dispatch)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(faults, faults::layer))
        .layer(middleware::from_fn_with_state(
            Arc::new(crate::requests::Requests::default()),
            crate::requests::layer,
        ))
        .layer(middleware::from_fn_with_state(app.clone(), auth))
        .with_state(app)
}

async fn dispatch(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    api::handle(app, method, uri, headers, body).await
}

async fn auth(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let Some(token) = &app.token else {
        return next.run(req).await;
    };
    let public = matches!(
        req.uri().path(),
        "/healthz" | "/livez" | "/readyz" | "/version"
    );
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if public || presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes())) {
        return next.run(req).await;
    }
    let e = ApiError::new(401, "Unauthorized", "Unauthorized");
    let mut resp = Response::new(axum::body::Body::from(e.to_status().to_string()));
    *resp.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                // The fault layer pulls this to drop the connection without answering.
                let kill = Arc::new(tokio::sync::Notify::new());
                let service = TowerToHyperService::new(
                    router.clone().layer(axum::Extension(ConnKill(kill.clone()))),
                );
                let mut builder = auto::Builder::new(TokioExecutor::new());
                // A client that never finishes its request headers does not hold a task forever.
                builder
                    .http1()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT);
                match &tls {
                    None => {
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                        let conn = graceful.watch(conn);
                        tokio::spawn(async move {
                            tokio::select! {
                                r = conn => if let Err(e) = r {
                                    tracing::debug!("connection ended: {e}");
                                },
                                _ = kill.notified() => tracing::debug!("connection dropped by a fault"),
                            }
                        });
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        // TLS handshakes run on their own task so a slow client cannot stall accept.
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            let Ok(Ok(tls_stream)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await else {
                                return;
                            };
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), service).into_owned();
                            tokio::select! {
                                r = watcher.watch(conn) => if let Err(e) = r {
                                    tracing::debug!("connection ended: {e}");
                                },
                                _ = kill.notified() => tracing::debug!("connection dropped by a fault"),
                            }
                        });
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("connections still open after {DRAIN:?}; closing");
    }
}

struct TlsMaterial {
    acceptor: tokio_rustls::TlsAcceptor,
    ca_pem: String,
    token: String,
}

fn tls_material(addr: SocketAddr) -> Result<TlsMaterial, ServeError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
    let err = |e: rcgen::Error| ServeError::Tls(e.to_string());
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sim-cluster-ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(err)?;
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(err)?;
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), "kubernetes".to_string()])
            .map_err(err)?;
    leaf_params
        .subject_alt_names
        .push(SanType::IpAddress(addr.ip()));
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "sim-cluster");
    let leaf_key = KeyPair::generate().map_err(err)?;
    let leaf = leaf_params.signed_by(&leaf_key, &ca).map_err(err)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs = vec![leaf.der().clone(), ca.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let token_bytes: [u8; 32] = rand::random();
    let token: String = token_bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(TlsMaterial {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        ca_pem: ca.pem(),
        token,
    })
}

fn write_kubeconfig(
    path: &Path,
    addr: SocketAddr,
    ca_pem: Option<&str>,
    token: Option<&str>,
) -> Result<(), ServeError> {
    let scheme = if ca_pem.is_some() { "https" } else { "http" };
    let mut cluster = serde_json::json!({"server": format!("{scheme}://{addr}")});
    if let Some(ca) = ca_pem {
        cluster["certificate-authority-data"] =
            serde_json::json!(base64::engine::general_purpose::STANDARD.encode(ca));
    }
    let mut user = serde_json::json!({});
    if let Some(t) = token {
        user["token"] = serde_json::json!(t);
    }
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sim-cluster", "cluster": cluster}],
        "users": [{"name": "sim-cluster", "user": user}],
        "contexts": [{"name": "sim-cluster", "context": {"cluster": "sim-cluster", "user": "sim-cluster", "namespace": "default"}}],
        "current-context": "sim-cluster",
        "preferences": {},
    });
    // JSON is valid YAML, and every kubeconfig reader accepts it.
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    let io = |source| ServeError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    use std::io::Write;
    tmp.write_all(text.as_bytes()).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    // NamedTempFile is created 0600: the token never sits in a world-readable file.
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}
