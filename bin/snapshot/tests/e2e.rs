//! Against a real k3s cluster, when `UPKEEP_E2E_KUBECONFIG` names its
//! kubeconfig (skipped otherwise: these machines cannot run one). Set
//! `UPKEEP_E2E_DATASTORE=1` as well to take an etcd/SQLite snapshot through
//! the privileged Job on a server node.

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_snapshot");

fn e2e_kubeconfig() -> Option<PathBuf> {
    match std::env::var_os("UPKEEP_E2E_KUBECONFIG") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            eprintln!("SKIP: UPKEEP_E2E_KUBECONFIG is not set (needs a real k3s cluster)");
            None
        }
    }
}

fn run(c: &mut Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn a_real_cluster_is_captured_encrypted_and_verified() {
    let Some(kubeconfig) = e2e_kubeconfig() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let identity = tmp.path().join("identity.txt");
    let (code, public, stderr) = run(Command::new(BIN).args(["keygen", "--out"]).arg(&identity));
    assert_eq!(code, 0, "{stderr}");
    let out = tmp.path().join("point.tar.zst");
    let mut create = Command::new(BIN);
    create
        .args(["create", "--age-recipient", public.trim(), "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--out")
        .arg(&out);
    let datastore = std::env::var_os("UPKEEP_E2E_DATASTORE").is_some();
    if datastore {
        create.args(["--datastore", "--datastore-timeout", "5m"]);
    }
    let (code, stdout, stderr) = run(&mut create);
    assert_eq!(code, 0, "{stderr}");
    let m: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let files = m["files"].as_array().unwrap();
    // Every real cluster has nodes, namespaces and kube-system's Secrets.
    assert!(files.iter().any(|f| {
        f["path"]
            .as_str()
            .unwrap()
            .starts_with("resources/core/Namespace/")
    }));
    assert!(files.iter().any(|f| f["encrypted"] == true));
    assert!(
        m["clusterVersion"].as_str().unwrap().contains("k3s"),
        "{}",
        m["clusterVersion"]
    );
    if datastore {
        assert_eq!(m["datastore"]["tokenCaptured"], true, "{}", m["datastore"]);
        assert_eq!(m["datastore"]["sha256"].as_str().unwrap().len(), 64);
    }
    let (code, stdout, stderr) = run(Command::new(BIN)
        .arg("verify")
        .arg(&out)
        .arg("--age-identity")
        .arg(&identity)
        .arg("--check-cluster")
        .arg("--kubeconfig")
        .arg(&kubeconfig));
    assert_eq!(code, 0, "{stdout}{stderr}");
    if datastore {
        assert!(stdout.contains("datastore snapshot found"), "{stdout}");
    }
}
