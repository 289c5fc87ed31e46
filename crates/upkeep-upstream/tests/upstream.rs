//! upkeep-upstream against the in-process sim-upstream serving the committed
//! fixture (testdata/upstream).

use std::path::Path;

use sim_upstream::{SimOptions, SimUpstream};
use upkeep_config::{ConfigFile, Overrides, Settings};
use upkeep_upstream::{GithubRepo, Upstream, channel_latest};

async fn sim() -> SimUpstream {
    SimUpstream::start(SimOptions::new(sim_upstream::workspace_fixture()))
        .await
        .unwrap()
}

/// Settings as a binary would resolve them from flags, with an empty
/// environment so the developer's GITHUB_TOKEN or config cannot leak in.
fn settings(base: &str, cache: &Path, offline: bool, token_file: Option<&Path>) -> Settings {
    let flags = Overrides {
        github_api: Some(base.to_string()),
        channels_url: Some(format!("{base}/v1-release/channels")),
        cache_dir: Some(cache.to_path_buf()),
        offline,
        github_token_file: token_file.map(Path::to_path_buf),
        ..Overrides::default()
    };
    let mut s =
        upkeep_config::resolve(None, &ConfigFile::default(), &flags, &|_: &str| None).unwrap();
    s.retries = 1;
    s
}

#[tokio::test]
async fn k3s_releases_drop_drafts_and_flag_prereleases() {
    let sim = sim().await;
    let cache = tempfile::tempdir().unwrap();
    let up =
        Upstream::from_settings(&settings(&sim.base_url(), cache.path(), false, None)).unwrap();
    let releases = up.github_releases(GithubRepo::K3S).await.unwrap();
    // 70 in the fixture, one of them a draft.
    assert_eq!(releases.len(), 69);
    assert!(
        releases.iter().all(|r| r.tag != "v1.37.2+k3s1"),
        "draft listed"
    );
    let rc = releases
        .iter()
        .find(|r| r.tag == "v1.37.2-rc1+k3s1")
        .unwrap();
    assert!(rc.prerelease);
    let r = releases.iter().find(|r| r.tag == "v1.29.1+k3s2").unwrap();
    assert!(!r.prerelease);
    assert_eq!(r.published.unwrap().to_string(), "2024-02-06T12:29:00Z");
    assert!(r.body.contains("CVE-2024-21626"));
    assert_eq!(r.version.build(), "k3s2");
    // Newest first, as GitHub lists them.
    assert_eq!(releases[0].tag, "v1.37.2-rc1+k3s1");
}

#[tokio::test]
async fn flux_releases_follow_link_pagination() {
    let sim = sim().await;
    let cache = tempfile::tempdir().unwrap();
    let up =
        Upstream::from_settings(&settings(&sim.base_url(), cache.path(), false, None)).unwrap();
    let releases = up.github_releases(GithubRepo::FLUX).await.unwrap();
    assert_eq!(releases.len(), 214);
    assert_eq!(releases.iter().filter(|r| r.prerelease).count(), 10);
    let pages: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/repos/fluxcd/flux2/releases")
        .collect();
    assert_eq!(pages.len(), 3, "214 releases at 100 per page: {pages:?}");
    assert!(pages[1].query.as_deref().unwrap_or("").contains("page=2"));
}

#[tokio::test]
async fn channels_name_to_latest() {
    let sim = sim().await;
    let cache = tempfile::tempdir().unwrap();
    let up =
        Upstream::from_settings(&settings(&sim.base_url(), cache.path(), false, None)).unwrap();
    let channels = up.k3s_channels().await.unwrap();
    assert_eq!(channels.len(), 12);
    let latest = |n| channel_latest(&channels, n).map(|v| v.to_string());
    assert_eq!(latest("stable").as_deref(), Some("v1.36.2+k3s1"));
    assert_eq!(latest("latest").as_deref(), Some("v1.37.1+k3s1"));
    assert_eq!(latest("v1.29").as_deref(), Some("v1.29.11+k3s1"));
    assert_eq!(latest("v1.99"), None);
}

#[tokio::test]
async fn second_run_is_answered_from_the_etag_cache_and_offline_works() {
    let sim = sim().await;
    let cache = tempfile::tempdir().unwrap();
    let base = sim.base_url();
    let first = Upstream::from_settings(&settings(&base, cache.path(), false, None)).unwrap();
    let a = first.github_releases(GithubRepo::LONGHORN).await.unwrap();
    let ca = first.k3s_channels().await.unwrap();
    let after_first = sim.requests().len();
    assert!(sim.requests().iter().all(|r| !r.not_modified));

    // A second run (a new client, as a second process would have) revalidates.
    let second = Upstream::from_settings(&settings(&base, cache.path(), false, None)).unwrap();
    let b = second.github_releases(GithubRepo::LONGHORN).await.unwrap();
    let cb = second.k3s_channels().await.unwrap();
    let log = sim.requests();
    let second_run = &log[after_first..];
    assert_eq!(second_run.len(), after_first, "same requests again");
    assert!(
        second_run
            .iter()
            .all(|r| r.not_modified && r.status == Some(304)),
        "second run must be all 304s: {second_run:?}"
    );
    assert_eq!(a.len(), b.len());
    assert_eq!(a.len(), 122);
    assert_eq!(ca.len(), cb.len());

    // Offline: answered from the cache, nothing sent.
    let offline = Upstream::from_settings(&settings(&base, cache.path(), true, None)).unwrap();
    let c = offline.github_releases(GithubRepo::LONGHORN).await.unwrap();
    assert_eq!(c.len(), 122);
    assert_eq!(offline.k3s_channels().await.unwrap().len(), 12);
    assert_eq!(sim.requests().len(), log.len(), "offline sent a request");

    // Offline with nothing cached for k3s: a clear environment error.
    let e = offline.github_releases(GithubRepo::K3S).await.unwrap_err();
    assert!(e.is_environment());
    assert!(e.to_string().contains("offline"), "{e}");
}

#[tokio::test]
async fn unreachable_upstream_is_an_environment_error() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cache = tempfile::tempdir().unwrap();
    let up = Upstream::from_settings(&settings(
        &format!("http://127.0.0.1:{port}"),
        cache.path(),
        false,
        None,
    ))
    .unwrap();
    let e = up.github_releases(GithubRepo::K3S).await.unwrap_err();
    assert!(e.is_environment(), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("cannot reach") && msg.contains("127.0.0.1"),
        "{msg}"
    );
    let e = up.k3s_channels().await.unwrap_err();
    assert!(
        e.is_environment() && e.to_string().contains("/v1-release/channels"),
        "{e}"
    );
}

#[tokio::test]
async fn token_from_file_is_sent_and_never_shown() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "ghp_secretvalue123\n").unwrap();
    let up = Upstream::from_settings(&settings(&sim.base_url(), dir.path(), false, Some(&token)))
        .unwrap();
    up.github_releases(GithubRepo::K3S).await.unwrap();
    let log = sim.requests();
    assert!(log.iter().all(|r| r.authorized), "{log:?}");

    // A missing token file is named, and its content never appears.
    let missing = dir.path().join("nope");
    let e = match Upstream::from_settings(&settings(
        &sim.base_url(),
        dir.path(),
        false,
        Some(&missing),
    )) {
        Err(e) => e,
        Ok(_) => panic!("missing token file accepted"),
    };
    assert!(e.to_string().contains("nope"), "{e}");
    assert!(!e.is_environment(), "a missing file is bad input");
    assert!(!format!("{e:?}").contains("ghp_secretvalue123"));
}

#[tokio::test]
async fn persistent_server_errors_are_environment_errors() {
    let sim = sim().await;
    let cache = tempfile::tempdir().unwrap();
    sim.set_faults(sim_upstream::FaultConfig {
        seed: 1,
        faults: vec![
            serde_json::from_value(serde_json::json!({
                "path": "/repos/*/releases", "kind": "error", "status": 503
            }))
            .unwrap(),
        ],
    })
    .unwrap();
    let up =
        Upstream::from_settings(&settings(&sim.base_url(), cache.path(), false, None)).unwrap();
    let e = up.github_releases(GithubRepo::K3S).await.unwrap_err();
    assert!(e.is_environment(), "{e}");
    assert!(e.to_string().contains("503"), "{e}");
    // Retried once (settings.retries = 1), then gave up.
    assert_eq!(sim.requests().len(), 2);
}

#[tokio::test]
async fn release_assets_download_within_their_limit() {
    let sim = sim().await;
    let cache = tempfile::tempdir().unwrap();
    let up =
        Upstream::from_settings(&settings(&sim.base_url(), cache.path(), false, None)).unwrap();
    let tag = "v1.31.10+k3s1";
    let binary = up
        .release_asset(GithubRepo::K3S, tag, "k3s", 1 << 20)
        .await
        .unwrap();
    let on_disk = std::fs::read(
        sim_upstream::workspace_fixture().join(format!("github/k3s-io/k3s/assets/{tag}/k3s")),
    )
    .unwrap();
    assert_eq!(binary.as_ref(), on_disk.as_slice());
    let sums = up
        .release_asset(GithubRepo::K3S, tag, "sha256sum-amd64.txt", 1 << 20)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&sums).ends_with("  k3s\n"));

    // An asset the release does not have is named, with what it has.
    let e = up
        .release_asset(GithubRepo::K3S, tag, "k3s-arm64", 1 << 20)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no asset \"k3s-arm64\"") && e.contains("sha256sum-amd64.txt"),
        "{e}"
    );
    // Larger than allowed: refused before the download, by its listed size.
    let e = up
        .release_asset(GithubRepo::K3S, tag, "k3s", 10)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("more than the 10 allowed"), "{e}");
    assert!(!e.is_environment());
}
