//! OCI end to end: charts packaged and pushed with the real `helm` to a
//! real `docker-registry` (Debian's distribution registry), then found by
//! detect-charts through a `type: oci` HelmRepository and through an
//! OCIRepository with `ref.semver`. Skips when either program is missing.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn which(candidates: &[String]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

fn helm() -> Option<PathBuf> {
    let mut c = vec![
        "/tmp/peers/layer/helm/helm".to_string(),
        format!("{}/../../.tools/bin/helm", env!("CARGO_MANIFEST_DIR")),
    ];
    if let Ok(h) = std::env::var("HELM") {
        c.insert(0, h);
    }
    which(&c)
}

struct Registry(Child);
impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_registry(bin: &Path, dir: &Path) -> (Registry, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("storage").display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let registry = Registry(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "docker-registry did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (registry, port)
}

fn helm_cmd(helm: &Path, home: &Path) -> Command {
    let mut c = Command::new(helm);
    c.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"));
    c
}

fn push(helm: &Path, home: &Path, port: u16, version: &str) {
    let src = home.join(format!("src-{version}/podinfo"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("Chart.yaml"),
        format!("apiVersion: v2\nname: podinfo\nversion: {version}\nappVersion: \"6.{version}\"\n"),
    )
    .unwrap();
    let out = home.join("pkg");
    let o = helm_cmd(helm, home)
        .args(["package", "-d"])
        .arg(&out)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "helm package: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = helm_cmd(helm, home)
        .arg("push")
        .arg(out.join(format!("podinfo-{version}.tgz")))
        .arg(format!("oci://127.0.0.1:{port}/charts"))
        .arg("--plain-http")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "helm push: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn charts_pushed_with_helm_are_found_through_both_oci_sources() {
    let Some(registry_bin) = which(&["/usr/bin/docker-registry".to_string()]) else {
        eprintln!("skipping: docker-registry is not installed (apt-get install docker-registry)");
        return;
    };
    let Some(helm) = helm() else {
        eprintln!(
            "skipping: no helm binary ($HELM, /tmp/peers/layer/helm/helm or .tools/bin/helm)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_registry, port) = start_registry(&registry_bin, tmp.path());
    for v in ["1.0.0", "1.1.0", "1.1.1+build.7", "1.2.0-rc.1"] {
        push(&helm, tmp.path(), port, v);
    }

    let gitops = tmp.path().join("gitops");
    std::fs::create_dir_all(&gitops).unwrap();
    std::fs::write(
        gitops.join("sources.yaml"),
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: charts\n  namespace: flux-system\nspec:\n  type: oci\n  url: oci://registry.test/charts\n---\napiVersion: source.toolkit.fluxcd.io/v1beta2\nkind: OCIRepository\nmetadata:\n  name: podinfo\n  namespace: flux-system\nspec:\n  url: oci://registry.test/charts/podinfo\n  ref:\n    semver: \"~1.1.0\"\n",
    )
    .unwrap();
    std::fs::write(
        gitops.join("releases.yaml"),
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: podinfo\n  namespace: apps\nspec:\n  chart:\n    spec:\n      chart: podinfo\n      version: 1.0.0\n      sourceRef:\n        kind: HelmRepository\n        name: charts\n        namespace: flux-system\n---\napiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: podinfo-ref\n  namespace: apps\nspec:\n  chartRef:\n    kind: OCIRepository\n    name: podinfo\n    namespace: flux-system\n",
    )
    .unwrap();
    let config = tmp.path().join("upkeep.yaml");
    std::fs::write(
        &config,
        format!("upstreams:\n  helmMirrors:\n    oci://registry.test: http://127.0.0.1:{port}\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_detect-charts"))
        .arg("--gitops")
        .arg(&gitops)
        .arg("--config")
        .arg(&config)
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);

    let named = |n: &str| docs.iter().find(|d| d["component"]["name"] == n).unwrap();
    let hr = named("podinfo");
    assert_eq!(hr["component"]["name"], "podinfo");
    assert_eq!(hr["component"]["source"]["type"], "helm-oci");
    assert_eq!(hr["current"]["version"], "1.0.0");
    // The tag 1.1.1_build.7 is the chart version 1.1.1+build.7; the
    // pre-release is not offered to a stable pin.
    let versions: Vec<&str> = hr["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, vec!["1.1.1+build.7", "1.1.0"]);
    assert_eq!(hr["latest"], "1.1.1+build.7");

    let oci = named("podinfo-ref");
    assert_eq!(oci["component"]["name"], "podinfo-ref");
    assert_eq!(oci["component"]["source"]["type"], "oci-repository");
    assert_eq!(oci["observed"][0]["path"], "sources.yaml");
    assert_eq!(oci["current"]["constraint"], "~1.1.0");
    assert_eq!(oci["current"]["version"], "1.1.1+build.7");
    assert!(oci["candidates"].as_array().unwrap().is_empty());
}
