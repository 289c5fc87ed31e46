//! ETag/304, the rate limit and the request log.

mod common;

use common::Sim;

#[test]
fn etag_and_if_none_match_give_304() {
    let sim = Sim::start(&[]);
    let path = "/repos/longhorn/longhorn/releases?per_page=10";
    let a = sim.get(path);
    let b = sim.get(path);
    let etag = a.header("etag").expect("ETag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
        "strong: {etag}"
    );
    assert_eq!(
        b.header("etag"),
        Some(etag.as_str()),
        "same body, same ETag"
    );
    assert_ne!(
        sim.get("/repos/longhorn/longhorn/releases?per_page=11")
            .header("etag"),
        Some(etag.as_str())
    );

    let c = sim.get_with(path, &[("If-None-Match", &etag)]);
    assert_eq!(c.status, 304);
    assert!(c.body.is_empty());
    assert_eq!(c.header("etag"), Some(etag.as_str()));
    let weak = format!("W/{etag}");
    assert_eq!(sim.get_with(path, &[("If-None-Match", &weak)]).status, 304);
    assert_eq!(
        sim.get_with(path, &[("If-None-Match", "\"other\"")]).status,
        200
    );
    // Channels and Helm files carry ETags too.
    let ch = sim.get("/v1-release/channels");
    let ch_etag = ch.header("etag").unwrap().to_owned();
    assert_eq!(
        sim.get_with("/v1-release/channels", &[("If-None-Match", &ch_etag)])
            .status,
        304
    );
    let idx = sim.get("/helm/longhorn/index.yaml");
    let idx_etag = idx.header("etag").unwrap().to_owned();
    assert_eq!(
        sim.get_with("/helm/longhorn/index.yaml", &[("If-None-Match", &idx_etag)])
            .status,
        304
    );
}

#[test]
fn rate_limit_counts_down_then_403() {
    let sim = Sim::start(&["--rate-limit", "3"]);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let r = sim.get("/repos/k3s-io/k3s/releases/latest");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
        seen.push(r.header("x-ratelimit-remaining").unwrap().to_owned());
    }
    assert_eq!(seen, ["2", "1", "0"]);
    let reset: i64 = sim
        .get("/v1-release/channels")
        .header("x-ratelimit-reset")
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        reset > now && reset <= now + 3600,
        "reset {reset} is an epoch second within the hour"
    );

    let denied = sim.get("/repos/k3s-io/k3s/releases/latest");
    assert_eq!(denied.status, 403);
    assert_eq!(denied.header("x-ratelimit-remaining"), Some("0"));
    let msg = denied.json()["message"].as_str().unwrap().to_owned();
    assert!(
        msg.starts_with("API rate limit exceeded for 127.0.0.1."),
        "{msg}"
    );
    // The channel server and Helm files are not GitHub and are not limited.
    let ch = sim.get("/v1-release/channels");
    assert_eq!(ch.status, 200);
    assert_eq!(ch.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(sim.get("/helm/longhorn/index.yaml").status, 200);
}

#[test]
fn rate_limit_comes_from_config_and_the_flag_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sim.yaml");
    std::fs::write(&cfg, "rateLimit: 7\n").unwrap();
    let sim = Sim::start(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(
        sim.get("/repos/fluxcd/flux2/releases")
            .header("x-ratelimit-remaining"),
        Some("6")
    );
    drop(sim);
    let sim = Sim::start(&["--config", cfg.to_str().unwrap(), "--rate-limit", "100"]);
    assert_eq!(
        sim.get("/repos/fluxcd/flux2/releases")
            .header("x-ratelimit-limit"),
        Some("100")
    );
    drop(sim);
    let sim = Sim::start(&[]);
    assert_eq!(
        sim.get("/repos/fluxcd/flux2/releases")
            .header("x-ratelimit-limit"),
        Some("60"),
        "GitHub's unauthenticated default"
    );
}

#[test]
fn request_log_file_and_admin_endpoint_record_304s() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let sim = Sim::start(&["--request-log", log.to_str().unwrap()]);
    let first = sim.get("/repos/k3s-io/k3s/releases?per_page=5");
    let etag = first.header("etag").unwrap().to_owned();
    sim.get_with(
        "/repos/k3s-io/k3s/releases?per_page=5",
        &[("If-None-Match", &etag)],
    );
    sim.get("/v1-release/channels/nope");

    let admin = sim.admin_requests();
    assert_eq!(admin.len(), 3, "admin requests are not logged: {admin:?}");
    assert_eq!(admin[0]["method"], "GET");
    assert_eq!(admin[0]["path"], "/repos/k3s-io/k3s/releases");
    assert_eq!(admin[0]["query"], "per_page=5");
    assert_eq!(admin[0]["status"], 200);
    assert_eq!(admin[0]["notModified"], false);
    assert_eq!(admin[1]["status"], 304);
    assert_eq!(admin[1]["notModified"], true);
    assert_eq!(admin[2]["status"], 404);
    assert_eq!(admin[2]["seq"], 3);

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines, admin,
        "the file holds the same records, one JSON line each"
    );

    let cleared = common::request(sim.addr, "DELETE", "/_admin/requests", &[], None).unwrap();
    assert_eq!(cleared.status, 200);
    assert!(sim.admin_requests().is_empty());
}

#[test]
fn authorized_304s_are_free_and_tokens_are_not_logged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let sim = Sim::start(&["--rate-limit", "10", "--request-log", log.to_str().unwrap()]);
    let path = "/repos/k3s-io/k3s/releases/latest";
    let first = sim.get(path);
    assert_eq!(first.header("x-ratelimit-remaining"), Some("9"));
    let etag = first.header("etag").unwrap().to_owned();
    // Unauthenticated conditional requests still count...
    let anon = sim.get_with(path, &[("If-None-Match", &etag)]);
    assert_eq!(anon.status, 304);
    assert_eq!(anon.header("x-ratelimit-remaining"), Some("8"));
    // ...authorized ones answered 304 do not, as on GitHub; a 200 does.
    let auth = [
        ("If-None-Match", etag.as_str()),
        ("Authorization", "Bearer sekrit-token-123"),
    ];
    let free = sim.get_with(path, &auth);
    assert_eq!(free.status, 304);
    assert_eq!(free.header("x-ratelimit-remaining"), Some("8"));
    let paid = sim.get_with(path, &[("Authorization", "Bearer sekrit-token-123")]);
    assert_eq!(paid.status, 200);
    assert_eq!(paid.header("x-ratelimit-remaining"), Some("7"));

    let records = sim.admin_requests();
    let authorized: Vec<bool> = records
        .iter()
        .map(|r| r["authorized"].as_bool().unwrap())
        .collect();
    assert_eq!(authorized, [false, false, true, true]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("sekrit"), "the token never reaches the log");
}
