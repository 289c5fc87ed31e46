//! Fetching indexes and OCI tags against a local server.

use std::collections::BTreeSet;

use upkeep_helm::{HelmError, Repositories};
use upkeep_http::{ClientConfig, UpstreamClient};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(cache: Option<&std::path::Path>, offline: bool) -> UpstreamClient {
    UpstreamClient::new(ClientConfig {
        cache_dir: cache.map(|p| p.to_path_buf()),
        offline,
        max_retries: 0,
        ..ClientConfig::default()
    })
    .unwrap()
}

const INDEX: &str = "apiVersion: v1\nentries:\n  podinfo:\n  - version: 6.5.0\n    urls: [podinfo-6.5.0.tgz]\n  - version: 6.10\n  other:\n  - version: 1.0.0\n";

#[tokio::test]
async fn index_through_a_mirror_with_etag_cache_and_offline() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/charts/index.yaml"))
        .and(header("if-none-match", "\"v1\""))
        .respond_with(ResponseTemplate::new(304))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/charts/index.yaml"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"v1\"")
                .set_body_string(INDEX),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let cache = tempfile::tempdir().unwrap();
    let mirrors = vec![(
        "https://stefanprodan.github.io/podinfo".to_string(),
        format!("{}/charts", server.uri()),
    )];
    let want: BTreeSet<String> = ["podinfo".to_string()].into();
    let repos = Repositories::new(client(Some(cache.path()), false), mirrors.clone());
    let first = repos
        .index("https://stefanprodan.github.io/podinfo/", &want)
        .await
        .unwrap();
    let versions: Vec<&str> = first.entries["podinfo"]
        .iter()
        .map(|v| v.version.as_str())
        .collect();
    assert_eq!(versions, vec!["6.5.0", "6.10"]);
    assert!(!first.entries.contains_key("other"));
    // Second run: revalidated with If-None-Match, 304, same answer.
    let second = repos
        .index("https://stefanprodan.github.io/podinfo", &want)
        .await
        .unwrap();
    assert_eq!(first, second);
    // Offline: from the cache; a repository never fetched is a clear miss.
    let offline = Repositories::new(client(Some(cache.path()), true), mirrors);
    assert_eq!(
        offline
            .index("https://stefanprodan.github.io/podinfo", &want)
            .await
            .unwrap(),
        first
    );
    let miss = offline
        .index("https://charts.example/other", &want)
        .await
        .unwrap_err();
    assert!(miss.is_environment());
    assert!(miss.to_string().contains("offline"), "{miss}");
}

#[tokio::test]
async fn an_index_that_is_not_yaml_is_reported() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/index.yaml"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>entries: [</html>"))
        .mount(&server)
        .await;
    let repos = Repositories::new(client(None, false), vec![]);
    let err = repos
        .index(&server.uri(), &BTreeSet::new())
        .await
        .unwrap_err();
    assert!(matches!(err, HelmError::Index { .. }), "{err}");
    assert!(!err.is_environment());
    assert!(err.to_string().contains("/index.yaml"));
}

#[tokio::test]
async fn oci_tags_with_token_challenge_and_pagination() {
    let server = MockServer::start().await;
    let realm = format!("{}/token", server.uri());
    // Without a token: the challenge.
    Mock::given(method("GET"))
        .and(path("/v2/org/charts/podinfo/tags/list"))
        .and(header("authorization", "Bearer s3cret-pull"))
        .and(query_param("last", "6.5.0"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(
                r#"{"name":"org/charts/podinfo","tags":["6.6.0_build.1","latest"]}"#,
            ),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/org/charts/podinfo/tags/list"))
        .and(header("authorization", "Bearer s3cret-pull"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "link",
                    "</v2/org/charts/podinfo/tags/list?n=2&last=6.5.0>; rel=\"next\"",
                )
                .set_body_string(r#"{"name":"org/charts/podinfo","tags":["6.4.0","6.5.0"]}"#),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/org/charts/podinfo/tags/list"))
        .respond_with(ResponseTemplate::new(401).insert_header(
            "www-authenticate",
            format!(r#"Bearer realm="{realm}",service="registry.test",scope="repository:org/charts/podinfo:pull""#),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .and(query_param("service", "registry.test"))
        .and(query_param("scope", "repository:org/charts/podinfo:pull"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"token":"s3cret-pull"}"#))
        .expect(1)
        .mount(&server)
        .await;
    let mirrors = vec![("oci://registry.test".to_string(), server.uri())];
    let repos = Repositories::new(client(None, false), mirrors);
    let tags = repos
        .oci_tags("oci://registry.test/org/charts/podinfo")
        .await
        .unwrap();
    assert_eq!(tags, vec!["6.4.0", "6.5.0", "6.6.0_build.1", "latest"]);
    let v = upkeep_helm::tag_version(&tags[2]).unwrap();
    assert_eq!(v.to_string(), "6.6.0+build.1");
}

#[tokio::test]
async fn oci_refusal_without_a_challenge_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    let base = server.uri().replace("http://", "");
    let repos = Repositories::new(
        client(None, false),
        vec![(format!("oci://{base}"), server.uri())],
    );
    let err = repos
        .oci_tags(&format!("oci://{base}/a/b"))
        .await
        .unwrap_err();
    assert!(err.is_environment());
    assert!(err.to_string().contains("403"), "{err}");
}
