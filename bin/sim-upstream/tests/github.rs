//! The GitHub releases API as sim-upstream serves it from testdata/upstream.

mod common;

use common::{Sim, links, path_of};
use sha2::{Digest, Sha256};

#[test]
fn pagination_walks_every_release_through_link_headers() {
    let sim = Sim::start(&["--rate-limit", "1000"]);
    // fluxcd/flux2 has 214 recorded releases: 8 pages of the default 30.
    let first = sim.get("/repos/fluxcd/flux2/releases");
    assert_eq!(first.status, 200);
    assert_eq!(first.json().as_array().unwrap().len(), 30);
    let l = links(first.header("link").expect("Link on page 1"));
    let rels: Vec<&str> = l.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(rels, ["next", "last"], "page 1 has no prev/first");
    let last = &l[1].1;
    assert!(last.ends_with("per_page=30&page=8"), "{last}");

    let mut tags = Vec::new();
    let mut next = Some("/repos/fluxcd/flux2/releases".to_owned());
    let mut pages = 0;
    while let Some(p) = next {
        let r = sim.get(&p);
        assert_eq!(r.status, 200, "{p}");
        pages += 1;
        for rel in r.json().as_array().unwrap() {
            tags.push(rel["tag_name"].as_str().unwrap().to_owned());
        }
        next = r
            .header("link")
            .and_then(|h| links(h).into_iter().find(|(rel, _)| rel == "next"))
            .map(|(_, url)| path_of(&url, sim.addr));
    }
    assert_eq!(pages, 8);
    assert_eq!(tags.len(), 214);
    let mut unique = tags.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 214, "no release twice across pages");
    assert_eq!(tags[0], "v2.9.4", "newest first");

    let middle = sim.get("/repos/fluxcd/flux2/releases?per_page=30&page=4");
    let rels: Vec<String> = links(middle.header("link").unwrap())
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(rels, ["prev", "next", "last", "first"]);
    let end = sim.get("/repos/fluxcd/flux2/releases?page=8");
    assert_eq!(end.json().as_array().unwrap().len(), 214 - 7 * 30);
    let rels: Vec<String> = links(end.header("link").unwrap())
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(rels, ["prev", "first"]);
    let beyond = sim.get("/repos/fluxcd/flux2/releases?page=9");
    assert_eq!(beyond.status, 200);
    assert_eq!(beyond.json(), serde_json::json!([]));

    // per_page is clamped to 100, as GitHub does.
    let big = sim.get("/repos/fluxcd/flux2/releases?per_page=500");
    assert_eq!(big.json().as_array().unwrap().len(), 100);
    assert!(
        big.header("link")
            .unwrap()
            .contains("per_page=100&page=3>; rel=\"last\"")
    );
}

#[test]
fn release_objects_have_the_fields_detectors_use() {
    let sim = Sim::start(&[]);
    let r = sim.get("/repos/k3s-io/k3s/releases?per_page=100");
    let list = r.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 70);
    for rel in list {
        for f in [
            "id",
            "tag_name",
            "name",
            "draft",
            "prerelease",
            "created_at",
            "published_at",
            "body",
            "html_url",
            "assets",
        ] {
            assert!(rel.get(f).is_some(), "{} lacks {f}", rel["tag_name"]);
        }
    }
    assert_eq!(list.iter().filter(|r| r["draft"] == true).count(), 1);
    assert!(list.iter().any(|r| r["prerelease"] == true));
    let v131 = list
        .iter()
        .find(|r| r["tag_name"] == "v1.31.8+k3s1")
        .unwrap();
    let body = v131["body"].as_str().unwrap();
    assert!(body.contains("CVE-2025-30215"), "CVE mention kept");
    assert!(body.contains("## Embedded Component Versions"));
    assert!(
        body.contains("| Traefik |") && body.contains("| CoreDNS |") && body.contains("| Etcd |")
    );
    assert_eq!(
        v131["html_url"],
        "https://github.com/k3s-io/k3s/releases/tag/v1.31.8%2Bk3s1"
    );
}

#[test]
fn latest_follows_githubs_rule() {
    let sim = Sim::start(&[]);
    // k3s has a newer pre-release (rc) and a newer draft; neither is "latest".
    let k3s = sim.get("/repos/k3s-io/k3s/releases/latest").json();
    assert_eq!(k3s["tag_name"], "v1.37.1+k3s1");
    assert_eq!(k3s["prerelease"], false);
    let lh = sim.get("/repos/longhorn/longhorn/releases/latest").json();
    assert_eq!(lh["tag_name"], "v1.12.1");
    let flux = sim.get("/repos/fluxcd/flux2/releases/latest").json();
    assert_eq!(flux["tag_name"], "v2.9.4");
}

#[test]
fn release_by_tag_and_404s() {
    let sim = Sim::start(&[]);
    let r = sim.get("/repos/k3s-io/k3s/releases/tags/v1.31.4%2Bk3s1");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["tag_name"], "v1.31.4+k3s1");
    let plus = sim.get("/repos/k3s-io/k3s/releases/tags/v1.31.4+k3s1");
    assert_eq!(plus.json()["id"], r.json()["id"]);
    let rc = sim.get("/repos/longhorn/longhorn/releases/tags/v1.12.1-rc4");
    assert_eq!(rc.json()["prerelease"], true);

    let missing = sim.get("/repos/k3s-io/k3s/releases/tags/v9.9.9%2Bk3s1");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["message"], "Not Found");
    assert!(
        missing.json()["documentation_url"]
            .as_str()
            .unwrap()
            .starts_with("https://docs.github.com/")
    );
    // GitHub serves drafts by tag to no one.
    let draft = sim.get("/repos/k3s-io/k3s/releases/tags/v1.37.2%2Bk3s1");
    assert_eq!(draft.status, 404);
    assert_eq!(sim.get("/repos/nobody/nothing/releases").status, 404);
    assert_eq!(
        sim.get("/repos/k3s-io/k3s/releases/latest/extra").status,
        404
    );
    assert_eq!(sim.get("/nothing/here").status, 404);

    // The release's own API url is served too.
    let url = r.json()["url"].as_str().unwrap().to_owned();
    let again = sim.get(&path_of(&url, sim.addr));
    assert_eq!(again.json()["tag_name"], "v1.31.4+k3s1");
}

#[test]
fn k3s_assets_are_served_and_checksums_match() {
    let sim = Sim::start(&[]);
    let rel = sim.get("/repos/k3s-io/k3s/releases/latest").json();
    let assets = rel["assets"].as_array().unwrap();
    let url_of = |name: &str| {
        assets
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("asset {name}"))["browser_download_url"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let sums_url = url_of("sha256sum-amd64.txt");
    assert!(
        sums_url.starts_with(&format!(
            "http://{}/k3s-io/k3s/releases/download/v1.37.1%2Bk3s1/",
            sim.addr
        )),
        "{sums_url}"
    );
    let sums = sim.get(&path_of(&sums_url, sim.addr));
    assert_eq!(sums.status, 200);
    let binary = sim.get(&path_of(&url_of("k3s"), sim.addr));
    assert_eq!(binary.status, 200);
    let size = assets.iter().find(|a| a["name"] == "k3s").unwrap()["size"]
        .as_u64()
        .unwrap();
    assert_eq!(binary.body.len() as u64, size);
    let expected = format!("{}  k3s", hex(&Sha256::digest(&binary.body)));
    assert!(
        sums.text().lines().any(|l| l == expected),
        "{} vs {expected}",
        sums.text()
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn helm_repository_files_are_served_with_content_types() {
    let sim = Sim::start(&[]);
    let index = sim.get("/helm/longhorn/index.yaml");
    assert_eq!(index.status, 200);
    assert_eq!(index.header("content-type"), Some("application/x-yaml"));
    let text = index.text();
    assert!(text.contains("version: 1.12.1"));
    let tgz = sim.get("/helm/longhorn/longhorn-1.12.1.tgz");
    assert_eq!(tgz.status, 200);
    assert_eq!(tgz.header("content-type"), Some("application/gzip"));
    assert_eq!(&tgz.body[..2], &[0x1f, 0x8b], "gzip magic");
    // The index's digest is the sha256 of the served chart archive.
    let digest = hex(&Sha256::digest(&tgz.body));
    assert!(text.contains(&format!("digest: {digest}")));
    assert_eq!(sim.get("/helm/longhorn/missing.tgz").status, 404);
    assert_eq!(sim.get("/helm/../channels/k3s.json").status, 404);
}

#[test]
fn notes_carry_what_the_detectors_read() {
    let sim = Sim::start(&[]);
    let flux = sim.get("/repos/fluxcd/flux2/releases/tags/v2.8.0").json();
    let body = flux["body"].as_str().unwrap();
    assert!(body.contains("## Kubernetes compatibility") && body.contains("1.33, 1.34, 1.35"));
    for removed in [
        "source.toolkit.fluxcd.io/v1beta2",
        "kustomize.toolkit.fluxcd.io/v1beta2",
        "helm.toolkit.fluxcd.io/v2beta2",
    ] {
        assert!(body.contains(removed), "v2.8.0 names {removed} as removed");
    }
    let flux29 = sim.get("/repos/fluxcd/flux2/releases/tags/v2.9.0").json();
    assert!(flux29["body"].as_str().unwrap().contains("CVE-2026-40109"));
    let rc = sim
        .get("/repos/fluxcd/flux2/releases/tags/v2.0.0-rc.1")
        .json();
    assert_eq!(rc["prerelease"], true);

    let lh = sim
        .get("/repos/longhorn/longhorn/releases/tags/v1.11.3")
        .json();
    assert!(
        lh["body"]
            .as_str()
            .unwrap()
            .contains("Kubernetes v1.34 or later")
    );
    let k3s = sim
        .get("/repos/k3s-io/k3s/releases/tags/v1.32.11%2Bk3s3")
        .json();
    let body = k3s["body"].as_str().unwrap();
    assert!(body.contains("K3s v1.34 Upgrade Warning"));
    assert!(
        body.contains("| Etcd | v3.5.26"),
        "embedded etcd version from the notes table"
    );
}
