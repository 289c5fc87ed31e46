//! TLS verification toward upstreams is on by default and off only when
//! asked, loudly: a Helm repository served over HTTPS with a certificate of
//! a test CA is refused as it is, read with `http.caFiles` naming that CA
//! (no warning), and read with `http.insecureSkipTlsVerify` only with a
//! warning on stderr. The server is Python's, the certificates openssl's.

#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use sim::*;

const BIN: &str = env!("CARGO_BIN_EXE_upkeep");

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a certificate for 127.0.0.1 it signed.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=upkeep test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves `root` over HTTPS on a free loopback port.
fn https(root: &Path, cert: &Path, key: &Path) -> (Server, u16) {
    let script = r#"
import functools, http.server, ssl, sys
root, cert, key = sys.argv[1:4]
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=root))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("PORT", srv.server_address[1], flush=True)
srv.serve_forever()
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(root)
        .arg(cert)
        .arg(key)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .strip_prefix("PORT ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("the HTTPS server did not start: {line:?}"));
    (Server(child), port)
}

#[test]
fn upstream_tls_is_verified_unless_a_ca_is_given_or_verification_is_turned_off_loudly() {
    let tmp = tempfile::tempdir().unwrap();
    certificates(tmp.path());
    let (_server, port) = https(
        &workspace().join("testdata/upstream/helm"),
        &tmp.path().join("server.pem"),
        &tmp.path().join("server.key"),
    );
    let report = tmp.path().join("report.json");
    std::fs::write(
        &report,
        json!({
            "apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdateReport",
            "generatedAt": "2026-11-28T04:00:00Z",
            "summary": {"components": 1, "withUpdates": 1, "patch": 1, "minor": 0, "major": 0,
                        "security": 0, "breaking": 0, "blocked": 0, "errors": 0},
            "components": [{"apiVersion": "upkeep.dev/v1alpha1", "kind": "ComponentUpdates",
                "component": {"kind": "chart", "name": "longhorn", "namespace": "longhorn-system",
                              "source": {"type": "helm-http", "url": format!("https://127.0.0.1:{port}/longhorn"), "chart": "longhorn"}},
                "current": {"version": "1.10.0"},
                "candidates": [{"version": "1.10.1", "update": "patch", "allowed": true}],
                "checkedAt": "2026-11-28T04:00:00Z"}]
        })
        .to_string(),
    )
    .unwrap();
    let dump = tmp.path().join("cluster.yaml");
    std::fs::write(
        &dump,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: longhorn-system}\n",
    )
    .unwrap();

    let impact = |name: &str, http: &str| -> (Value, String) {
        let cfg = tmp.path().join(format!("{name}.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "apiVersion: upkeep.dev/v1alpha1\nkind: Config\nhttp:\n  retries: 0\n{http}cache:\n  dir: {}\n",
                tmp.path().join(format!("cache-{name}")).display()
            ),
        )
        .unwrap();
        let out = tool(BIN, tmp.path())
            .arg("--config")
            .arg(&cfg)
            .args(["-o", "json", "impact", "--report"])
            .arg(&report)
            .arg("--cluster-dump")
            .arg(&dump)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        (doc["updates"][0]["recommendations"].clone(), stderr)
    };
    let not_compared = |r: &Value| r.to_string().contains("were not compared");

    // By default the test CA is nobody's: the archives are not read.
    let (recs, stderr) = impact("default", "");
    assert!(not_compared(&recs), "{recs}");
    assert!(
        recs.to_string().to_lowercase().contains("certificate"),
        "{recs}"
    );
    assert!(!stderr.contains("VERIFICATION IS DISABLED"), "{stderr}");

    // Trusting the CA reads them, quietly.
    let ca = tmp.path().join("ca.pem");
    let (recs, stderr) = impact("ca", &format!("  caFiles: [{}]\n", ca.display()));
    assert!(!not_compared(&recs), "{recs}");
    assert!(!stderr.contains("VERIFICATION IS DISABLED"), "{stderr}");

    // Turning verification off reads them too, and says so.
    let (recs, stderr) = impact("insecure", "  insecureSkipTlsVerify: true\n");
    assert!(!not_compared(&recs), "{recs}");
    assert!(
        stderr.contains("TLS CERTIFICATE VERIFICATION IS DISABLED"),
        "{stderr}"
    );

    // A CA file that is not one is refused at load, naming the key.
    let (code, err) = {
        let cfg = tmp.path().join("bad.yaml");
        std::fs::write(&cfg, format!("http:\n  caFiles: [{}]\n", dump.display())).unwrap();
        let out = tool(BIN, tmp.path())
            .arg("--config")
            .arg(&cfg)
            .args(["impact", "--report"])
            .arg(&report)
            .arg("--cluster-dump")
            .arg(&dump)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("http.caFiles[0]") && err.trim().lines().count() == 1,
        "{err}"
    );
}
