//! detect-charts as a user runs it: the real binary on the constructed
//! checkout in testdata/gitops/charts-basic, against sim-upstream's Helm
//! repository (testdata/upstream/helm/longhorn) and a local OCI registry
//! stub, through upkeep.yaml mirrors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sim_upstream::{SimOptions, SimUpstream};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn checkout() -> PathBuf {
    root().join("testdata/gitops/charts-basic")
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_detect-charts"));
    c.args(args)
        .env("XDG_CONFIG_HOME", root().join("target/no-such-config"))
        .env_remove("UPKEEP_CONFIG")
        .env_remove("UPKEEP_OFFLINE")
        .env_remove("UPKEEP_CACHE_DIR");
    c
}

async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        command(&args).output().unwrap()
    })
    .await
    .unwrap()
}

fn docs(o: &Output) -> Vec<Value> {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn by_name<'a>(docs: &'a [Value], name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["component"]["name"] == name)
        .unwrap_or_else(|| panic!("no document for {name}"))
}

fn versions(d: &Value) -> Vec<&str> {
    d["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["version"].as_str().unwrap())
        .collect()
}

fn codes(d: &Value) -> Vec<&str> {
    d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect()
}

/// The 1-based line of the first line in `file` containing `needle`.
fn line_of(file: &Path, needle: &str) -> u64 {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap() as u64 + 1
}

/// A registry stub: anonymous-token challenge, two pages of tags.
async fn registry() -> MockServer {
    let server = MockServer::start().await;
    let tags = "/v2/stefanprodan/charts/podinfo/tags/list";
    Mock::given(method("GET"))
        .and(path(tags))
        .and(header("authorization", "Bearer pull-token"))
        .and(query_param("last", "6.5.0"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"name":"stefanprodan/charts/podinfo","tags":["6.5.3","6.6.0-rc.1","6.6.1","latest"]}"#,
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(tags))
        .and(header("authorization", "Bearer pull-token"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", format!("<{tags}?n=2&last=6.5.0>; rel=\"next\""))
                .set_body_string(
                    r#"{"name":"stefanprodan/charts/podinfo","tags":["6.4.0","6.5.0"]}"#,
                ),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(tags))
        .respond_with(ResponseTemplate::new(401).insert_header(
            "www-authenticate",
            format!(
                r#"Bearer realm="{}/token",service="ghcr.io",scope="repository:stefanprodan/charts/podinfo:pull""#,
                server.uri()
            ),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"token":"pull-token"}"#))
        .mount(&server)
        .await;
    server
}

fn config(dir: &Path, helm: &str, oci: &str) -> PathBuf {
    let p = dir.join("upkeep.yaml");
    std::fs::write(
        &p,
        format!(
            "upstreams:\n  helmMirrors:\n    https://charts.longhorn.io: {helm}\n    oci://ghcr.io: {oci}\nhttp:\n  retries: 0\n  timeout: 10s\n"
        ),
    )
    .unwrap();
    p
}

fn index_requests(sim: &SimUpstream) -> Vec<u16> {
    sim.requests()
        .iter()
        .filter(|r| r.path == "/helm/longhorn/index.yaml")
        .map(|r| r.status.unwrap_or(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_release_resolved_checked_and_cached() {
    let sim = SimUpstream::start(SimOptions::new(sim_upstream::workspace_fixture()))
        .await
        .unwrap();
    let oci = registry().await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        tmp.path(),
        &format!("{}/helm/longhorn", sim.base_url()),
        &oci.uri(),
    );
    let cache = tmp.path().join("cache");
    let args = vec![
        "--gitops".to_string(),
        checkout().display().to_string(),
        "--config".into(),
        cfg.display().to_string(),
        "--cache-dir".into(),
        cache.display().to_string(),
        "--kubernetes-version".into(),
        "v1.31.4+k3s1".into(),
    ];
    let out = run(args.clone()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    // The Helm template is reported on stderr and skipped.
    assert!(
        stderr.contains("charts/demo/templates/deployment.yaml"),
        "{stderr}"
    );
    let docs = docs(&out);
    assert_eq!(docs.len(), 6);
    for d in &docs {
        assert_eq!(d["apiVersion"], "upkeep.dev/v1alpha1");
        assert_eq!(d["kind"], "ComponentUpdates");
        assert_eq!(d["component"]["kind"], "chart");
        assert!(d["errors"].as_array().unwrap().is_empty(), "{d}");
    }

    // Exact pin, namespace from kustomization.yaml, 1.11.3 needs Kubernetes >= 1.34.
    let lh = by_name(&docs, "longhorn");
    let file = checkout().join("apps/storage/helmrelease.yaml");
    assert_eq!(lh["component"]["namespace"], "longhorn-system");
    assert_eq!(lh["component"]["source"]["type"], "helm-http");
    assert_eq!(
        lh["component"]["source"]["url"],
        "https://charts.longhorn.io"
    );
    assert_eq!(lh["observed"][0]["path"], "apps/storage/helmrelease.yaml");
    assert_eq!(lh["observed"][0]["line"], line_of(&file, "version: 1.9.0"));
    assert_eq!(lh["current"]["version"], "1.9.0");
    assert_eq!(lh["latest"], "1.12.1");
    assert_eq!(lh["latestAllowed"], "1.9.0");
    let v = versions(lh);
    assert_eq!(v.first(), Some(&"1.12.1"));
    assert!(!v.contains(&"1.11.3") && v.contains(&"1.11.2") && v.contains(&"1.9.1"));
    assert!(v.windows(2).all(|w| w[0] != w[1]));
    let held = lh["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "held-back-kubernetes")
        .unwrap();
    assert!(held["message"].as_str().unwrap().contains("1.11.3"));
    assert!(held["message"].as_str().unwrap().contains("v1.34"));
    let c = &lh["candidates"][0];
    assert_eq!(c["update"], "minor");
    assert_eq!(c["requires"]["kubernetes"], ">=1.25.0-0");
    assert_eq!(c["published"], "2026-08-14T01:14:28Z");

    // Tilde range resolves to what Flux installs.
    let dr = by_name(&docs, "longhorn-dr");
    assert_eq!(dr["current"]["constraint"], "~1.10.0");
    assert_eq!(dr["current"]["version"], "1.10.2");
    assert_eq!(dr["latestAllowed"], "1.10.2");

    // OCI HelmRepository: tags through the token challenge and two pages.
    let pi = by_name(&docs, "podinfo");
    assert_eq!(pi["component"]["source"]["type"], "helm-oci");
    assert_eq!(pi["current"]["version"], "6.5.3");
    assert_eq!(pi["latest"], "6.6.1");
    assert_eq!(versions(pi), vec!["6.6.1"]);

    // chartRef to an OCIRepository: observed at its ref.semver line.
    let pr = by_name(&docs, "podinfo-ref");
    assert_eq!(pr["component"]["source"]["type"], "oci-repository");
    assert_eq!(
        pr["component"]["source"]["url"],
        "oci://ghcr.io/stefanprodan/charts/podinfo"
    );
    assert_eq!(
        pr["observed"][0]["path"],
        "infrastructure/sources/helm-repositories.yaml"
    );
    assert_eq!(
        pr["observed"][0]["line"],
        line_of(
            &checkout().join("infrastructure/sources/helm-repositories.yaml"),
            "semver:"
        )
    );
    assert_eq!(pr["current"]["version"], "6.5.3");
    assert_eq!(pr["current"]["constraint"], ">=6.0.0 <6.6.0");

    // Git source: not checkable, with the reason; missing source: a finding.
    let demo = by_name(&docs, "demo");
    assert_eq!(demo["component"]["source"]["type"], "git");
    assert_eq!(codes(demo), vec!["not-checkable"]);
    let orphan = by_name(&docs, "orphan");
    assert_eq!(codes(orphan), vec!["unresolved-source"]);
    assert_eq!(orphan["current"]["version"], "1.0.0");

    // One index fetch per run for two releases; the second run revalidates (304).
    assert_eq!(index_requests(&sim), vec![200]);
    let again = run(args).await;
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(index_requests(&sim), vec![200, 304]);
    let docs2 = self::docs(&again);
    assert_eq!(by_name(&docs2, "longhorn")["candidates"], lh["candidates"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_with_an_empty_cache_writes_every_document_and_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(vec![
        "--gitops".into(),
        checkout().display().to_string(),
        "--offline".into(),
        "--cache-dir".into(),
        tmp.path().join("empty").display().to_string(),
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = docs(&out);
    assert_eq!(docs.len(), 6);
    let lh = by_name(&docs, "longhorn");
    assert_eq!(lh["current"]["version"], "1.9.0");
    let err = lh["errors"][0]["message"].as_str().unwrap();
    assert!(
        err.contains("offline") && err.contains("charts.longhorn.io"),
        "{err}"
    );
    assert!(
        by_name(&docs, "podinfo")["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("offline")
    );
    // Releases that need no upstream have no error.
    assert!(
        by_name(&docs, "demo")["errors"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_repository_is_an_error_in_the_document() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &url, &url);
    let out = run(vec![
        "--gitops".into(),
        checkout().display().to_string(),
        "--config".into(),
        cfg.display().to_string(),
        "--cache-dir".into(),
        tmp.path().join("c").display().to_string(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(3));
    let docs = docs(&out);
    assert_eq!(docs.len(), 6);
    let err = &by_name(&docs, "longhorn")["errors"][0];
    assert_eq!(err["source"], "upstream");
    assert!(
        err["message"].as_str().unwrap().contains("cannot reach"),
        "{err}"
    );
}

#[test]
fn bad_input_is_exit_2_with_one_line() {
    let o = command(&["--gitops", "/nonexistent/checkout"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8(o.stderr).unwrap();
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("/nonexistent/checkout"));
    assert!(o.stdout.is_empty());
    let o = command(&["--gitops", ".", "--kubernetes-version", "one.two"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8(o.stderr)
            .unwrap()
            .contains("--kubernetes-version")
    );
    let o = command(&["--gitops", ".", "-o", "text"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// `detect-charts | merge-report`: the documents are what merge-report reads.
/// merge-report is another package's binary; it is used when built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipes_into_merge_report() {
    let merge = Path::new(env!("CARGO_BIN_EXE_detect-charts")).with_file_name("merge-report");
    if !merge.exists() {
        eprintln!(
            "skipping: {} is not built (cargo build -p merge-report)",
            merge.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = run(vec![
        "--gitops".into(),
        checkout().display().to_string(),
        "--offline".into(),
        "--cache-dir".into(),
        tmp.path().display().to_string(),
    ])
    .await;
    let input = tmp.path().join("docs.jsonl");
    std::fs::write(&input, &out.stdout).unwrap();
    let report = Command::new(&merge)
        .arg(&input)
        .env("XDG_CONFIG_HOME", root().join("target/no-such-config"))
        .env_remove("UPKEEP_CONFIG")
        .output()
        .unwrap();
    assert_eq!(
        report.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let r: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(r["kind"], "UpdateReport");
    assert_eq!(r["components"].as_array().unwrap().len(), 6);
    let with_errors = docs(&out)
        .iter()
        .filter(|d| !d["errors"].as_array().unwrap().is_empty())
        .count();
    assert_eq!(with_errors, 4);
    assert_eq!(r["summary"]["errors"], with_errors);
}

/// A release's Kustomization that dependsOn another Kustomization (through a
/// third) puts the HelmReleases that other one applies in `dependsOn`, next
/// to the release's own HelmRelease dependsOn, so the plan orders them first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kustomization_depends_on_reaches_the_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let put = |rel: &str, text: String| {
        let p = repo.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let ks = |name: &str, path: &str, dep: Option<&str>| {
        format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  path: {path}\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n{}",
            dep.map(|d| format!("  dependsOn:\n    - name: {d}\n"))
                .unwrap_or_default()
        )
    };
    let hr = |name: &str, ns: &str, extra: &str| {
        format!(
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{extra}  chart:\n    spec:\n      chart: {name}\n      version: 1.0.0\n      sourceRef:\n        kind: HelmRepository\n        name: charts\n        namespace: flux-system\n"
        )
    };
    put(
        "clusters/home/apps.yaml",
        [
            ks("infra", "./infra", None),
            ks("storage", "./storage", Some("infra")),
            ks("apps", "./apps", Some("storage")),
        ]
        .join("---\n"),
    );
    // Nothing listens there: the documents still say what depends on what.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    put(
        "clusters/home/repo.yaml",
        format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: charts\n  namespace: flux-system\nspec:\n  url: {url}\n"
        ),
    );
    put(
        "infra/cert-manager.yaml",
        hr("cert-manager", "cert-manager", ""),
    );
    put(
        "storage/longhorn.yaml",
        hr("longhorn", "longhorn-system", ""),
    );
    put(
        "apps/web.yaml",
        hr("web", "apps", "  dependsOn:\n    - name: db\n"),
    );
    put("apps/db.yaml", hr("db", "apps", ""));
    let cfg = config(tmp.path(), &url, &url);
    let out = run(vec![
        "--gitops".into(),
        repo.display().to_string(),
        "--config".into(),
        cfg.display().to_string(),
        "--cache-dir".into(),
        tmp.path().join("c").display().to_string(),
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = docs(&out);
    let deps = |name: &str| -> Vec<String> {
        by_name(&docs, name)["dependsOn"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        deps("web"),
        [
            "apps/db",
            "cert-manager/cert-manager",
            "longhorn-system/longhorn"
        ]
    );
    assert_eq!(
        deps("db"),
        ["cert-manager/cert-manager", "longhorn-system/longhorn"]
    );
    assert_eq!(deps("longhorn"), ["cert-manager/cert-manager"]);
    assert!(deps("cert-manager").is_empty());
}
