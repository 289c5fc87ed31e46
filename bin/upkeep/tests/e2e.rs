//! Against a real k3s cluster, when `UPKEEP_E2E_KUBECONFIG` names its
//! kubeconfig (skipped otherwise: these machines cannot run one): the
//! maintenance freeze is enforced by the real API server's admission
//! (sim-cluster stores the policy but does not run CEL), and off puts the
//! cluster back.

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_upkeep");

fn e2e_kubeconfig() -> Option<PathBuf> {
    match std::env::var_os("UPKEEP_E2E_KUBECONFIG") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            eprintln!("SKIP: UPKEEP_E2E_KUBECONFIG is not set (needs a real k3s cluster)");
            None
        }
    }
}

fn kubectl(kc: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kc)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn maintenance_freezes_spec_changes_for_others_and_off_lifts_it() {
    let Some(kc) = e2e_kubeconfig() else {
        return;
    };
    let ns = "upkeep-e2e-maintenance";
    let _ = kubectl(&kc, &["create", "namespace", ns]);
    let made = kubectl(
        &kc,
        &[
            "-n",
            ns,
            "create",
            "deployment",
            "web",
            "--image=registry.k8s.io/pause:3.10",
        ],
    );
    assert!(made.status.success(), "{made:?}");
    let on = Command::new(BIN)
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["maintenance", "on", "--reason", "e2e test"])
        .output()
        .unwrap();
    assert!(on.status.success(), "{on:?}");
    // Policies take a moment to be enforced after they are created.
    std::thread::sleep(std::time::Duration::from_secs(5));
    // A user outside the exemptions (impersonated) may still scale, but not change the spec.
    let scaled = kubectl(
        &kc,
        &[
            "-n",
            ns,
            "--as=someone",
            "--as-group=system:masters",
            "scale",
            "deployment",
            "web",
            "--replicas=2",
        ],
    );
    let patched = kubectl(
        &kc,
        &[
            "-n",
            ns,
            "--as=someone",
            "--as-group=system:masters",
            "patch",
            "deployment",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"minReadySeconds":5}}"#,
        ],
    );
    let off = Command::new(BIN)
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["maintenance", "off"])
        .output()
        .unwrap();
    let _ = kubectl(&kc, &["delete", "namespace", ns, "--wait=false"]);
    assert!(off.status.success(), "{off:?}");
    // Scaling goes through the scale subresource, which the freeze leaves alone.
    assert!(scaled.status.success(), "{scaled:?}");
    assert!(!patched.status.success(), "{patched:?}");
    assert!(
        String::from_utf8_lossy(&patched.stderr).contains("upkeep maintenance is on"),
        "{patched:?}"
    );
    let gone = kubectl(
        &kc,
        &[
            "get",
            "validatingadmissionpolicy",
            "upkeep-maintenance-freeze",
        ],
    );
    assert!(!gone.status.success());
}
