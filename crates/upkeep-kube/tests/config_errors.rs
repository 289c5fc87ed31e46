//! Bad kubeconfigs and unusable servers: each is a one-line error naming the file, context or
//! server and what is wrong, classed as bad input (exit 2) or environment (exit 3), never a
//! panic; an unreachable or silent server fails within the timeout.

use std::path::Path;
use std::time::{Duration, Instant};

use upkeep_kube::{Cluster, ConnectOptions, KubeError, load_config};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn kubeconfig(server: &str, current: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: {current}\n\
         clusters:\n- name: c\n  cluster:\n    server: '{server}'\n\
         contexts:\n- name: home\n  context: {{cluster: c, user: u}}\n- name: lost\n  context: {{cluster: gone, user: u}}\n\
         users:\n- name: u\n  user: {{token: not-a-real-token}}\n"
    )
}

fn load_err(path: &Path, context: Option<&str>) -> KubeError {
    let mut opts = ConnectOptions::default().kubeconfig(path);
    if let Some(c) = context {
        opts = opts.context(c);
    }
    let err = load_config(&opts).expect_err("configuration must be refused");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    err
}

#[test]
fn unreadable_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-kubeconfig");
    let err = load_err(&missing, None);
    assert_eq!(err.exit_code(), 2);
    assert_eq!(
        err.to_string(),
        format!(
            "kubeconfig {}: cannot read: No such file or directory (os error 2)",
            missing.display()
        )
    );
    let err = load_err(dir.path(), None);
    assert_eq!(
        err.to_string(),
        format!(
            "kubeconfig {}: is a directory, not a file",
            dir.path().display()
        )
    );
}

#[test]
fn malformed_yaml_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "broken",
        "apiVersion: v1\nclusters: [\n  - name: a\n",
    );
    let err = load_err(&p, None);
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("kubeconfig {}: malformed YAML: ", p.display())),
        "{msg}"
    );
    // Valid YAML that is not a kubeconfig is malformed too.
    assert!(msg.contains("line 3 column 3"), "{msg}");
    assert!(!msg.contains("-->"), "no source snippet: {msg}");
    let p = write(dir.path(), "list", "- a\n- b\n");
    let msg = load_err(&p, None).to_string();
    assert!(msg.contains("malformed YAML: line 1 column 1"), "{msg}");
}

#[test]
fn missing_context_is_named_with_the_defined_ones() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "kc",
        &kubeconfig("https://127.0.0.1:6443", "home"),
    );
    let err = load_err(&p, Some("prod"));
    assert_eq!(err.exit_code(), 2);
    assert_eq!(
        err.to_string(),
        format!(
            "kubeconfig {}: context \"prod\" not found (defined: home, lost)",
            p.display()
        )
    );
    // The same when current-context names a context that is not there.
    let p2 = write(
        dir.path(),
        "kc2",
        &kubeconfig("https://127.0.0.1:6443", "staging"),
    );
    assert!(
        load_err(&p2, None)
            .to_string()
            .contains("context \"staging\" not found")
    );
    // No current-context and no --context.
    let p3 = write(dir.path(), "kc3", "apiVersion: v1\nkind: Config\n");
    assert_eq!(
        load_err(&p3, None).to_string(),
        format!(
            "kubeconfig {}: no current-context set and no --context given",
            p3.display()
        )
    );
}

#[test]
fn context_pointing_at_nothing_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "kc",
        &kubeconfig("https://127.0.0.1:6443", "home"),
    );
    let err = load_err(&p, Some("lost"));
    assert_eq!(err.exit_code(), 2);
    assert_eq!(
        err.to_string(),
        format!(
            "kubeconfig {}: context \"lost\": cluster \"gone\" is not defined",
            p.display()
        )
    );
    let p = write(dir.path(), "bad-url", &kubeconfig("not a url", "home"));
    let msg = load_err(&p, None).to_string();
    assert!(
        msg.contains("context \"home\": server \"not a url\" is not"),
        "{msg}"
    );
    let p = write(dir.path(), "no-server", &kubeconfig("", "home"));
    let msg = load_err(&p, None).to_string();
    assert!(
        msg.ends_with("context \"home\": cluster \"c\" has no server"),
        "{msg}"
    );
    // A CA file the kubeconfig names but that is not there.
    let with_ca = kubeconfig("https://127.0.0.1:6443", "home").replace(
        "    server:",
        "    certificate-authority: missing-ca.pem\n    server:",
    );
    let p = write(dir.path(), "bad-ca", &with_ca);
    let err = load_err(&p, None);
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(msg.contains("missing-ca.pem"), "{msg}");
}

/// A server nobody listens on: refused at once, an environment error naming the server.
#[tokio::test]
async fn unreachable_server_is_an_environment_error() {
    let dir = tempfile::tempdir().unwrap();
    // Bind then drop: the port is free and nothing answers on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("https://127.0.0.1:{port}");
    let p = write(dir.path(), "kc", &kubeconfig(&server, "home"));
    let cluster = Cluster::connect(
        &ConnectOptions::default()
            .kubeconfig(&p)
            .timeout(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let err = cluster.server_version().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.is_environment(), "{err}");
    assert_eq!(err.exit_code(), 3);
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "get /version from {server}: cannot reach {server}: "
        )),
        "{msg}"
    );
    eprintln!("{msg}");
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert!(!msg.contains('\n'));
}

/// A server that accepts connections and never answers: the call ends at the timeout.
#[tokio::test]
async fn silent_server_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let server = format!("http://{addr}");
    let p = write(dir.path(), "kc", &kubeconfig(&server, "home"));
    let cluster = Cluster::connect(
        &ConnectOptions::default()
            .kubeconfig(&p)
            .timeout(Duration::from_millis(700)),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let err = cluster.server_version().await.unwrap_err();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(700), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(matches!(err, KubeError::Timeout { .. }), "{err}");
    assert!(err.is_environment());
    assert_eq!(
        err.to_string(),
        format!("get /version from {server}: no answer from {server} within 0.7s")
    );
    holder.abort();
}
