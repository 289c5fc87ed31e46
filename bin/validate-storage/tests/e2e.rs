//! Against a real k3s cluster with Longhorn, when `UPKEEP_E2E_KUBECONFIG`
//! names its kubeconfig (skipped otherwise): the data test writes real
//! bytes through a real Longhorn volume and leaves nothing behind.

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_validate-storage");

#[test]
fn the_data_test_round_trips_real_bytes_and_cleans_up() {
    let Some(kubeconfig) = std::env::var_os("UPKEEP_E2E_KUBECONFIG")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
    else {
        eprintln!(
            "SKIP: UPKEEP_E2E_KUBECONFIG is not set (needs a real k3s cluster with Longhorn)"
        );
        return;
    };
    let out = Command::new(BIN)
        .args(["--timeout", "5m", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}: {report}"))
    };
    assert_eq!(
        check("storage/data-roundtrip")["status"],
        "pass",
        "{report}"
    );
    assert_eq!(
        check("storage/data-test-cleanup")["status"],
        "pass",
        "{report}"
    );
    let left = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "get",
            "pvc,jobs,pods",
            "-A",
            "-l",
            "upkeep.dev/storage-test",
            "-o",
            "name",
        ])
        .output()
        .unwrap();
    assert!(left.status.success());
    assert!(
        left.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&left.stdout)
    );
}
