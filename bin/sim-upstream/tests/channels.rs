//! The k3s channel server as sim-upstream serves it.

mod common;

use common::Sim;

#[test]
fn channel_list_has_the_real_servers_shape() {
    let sim = Sim::start(&[]);
    let r = sim.get("/v1-release/channels");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["type"], "collection");
    assert_eq!(v["resourceType"], "channels");
    assert_eq!(
        v["links"]["self"],
        format!("http://{}/v1-release/channels", sim.addr)
    );
    let data = v["data"].as_array().unwrap();
    let names: Vec<&str> = data.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for want in ["stable", "latest", "testing", "v1.29", "v1.33", "v1.37"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for c in data {
        assert_eq!(c["type"], "channel");
        assert_eq!(c["id"], c["name"]);
        assert_eq!(
            c["links"]["self"],
            format!(
                "http://{}/v1-release/channels/{}",
                sim.addr,
                c["name"].as_str().unwrap()
            )
        );
        assert!(c["latest"].as_str().unwrap().starts_with("v1."));
    }
    let by = |n: &str| data.iter().find(|c| c["name"] == n).unwrap().clone();
    assert_eq!(by("v1.29")["latest"], "v1.29.11+k3s1");
    assert_eq!(
        by("v1.32")["latest"],
        "v1.32.11+k3s3",
        "+k3s3 beats +k3s1 of the same patch"
    );
    assert_eq!(by("latest")["latest"], "v1.37.1+k3s1");
    assert_eq!(by("latest")["excludeRegexp"], "^[^+]+-");
    assert_eq!(
        by("testing")["latest"],
        "v1.37.2-rc1+k3s1",
        "testing includes release candidates"
    );
}

#[test]
fn channel_redirects_to_the_github_release() {
    let sim = Sim::start(&[]);
    let r = sim.get("/v1-release/channels/v1.31");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://github.com/k3s-io/k3s/releases/tag/v1.31.10+k3s1")
    );
    let stable = sim.get("/v1-release/channels/stable");
    assert_eq!(stable.status, 302);
    let loc = stable.header("location").unwrap();
    let version = loc.rsplit('/').next().unwrap();
    // The stable version is a release the GitHub API knows.
    let rel = sim.get(&format!(
        "/repos/k3s-io/k3s/releases/tags/{}",
        version.replace('+', "%2B")
    ));
    assert_eq!(rel.status, 200, "{version}");
    let missing = sim.get("/v1-release/channels/v1.99");
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("v1.99"));
}
