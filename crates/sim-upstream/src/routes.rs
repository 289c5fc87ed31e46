//! The recorded upstreams: GitHub releases API, k3s channel server, static Helm repositories.
//! Each handler turns a request into a complete [`Reply`]; ETags, rate limits and faults are
//! layered on by the server.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::fixture::{Fixture, Release, Repo};

const JSON: &str = "application/json; charset=utf-8";
const DEFAULT_PER_PAGE: usize = 30;
const MAX_PER_PAGE: usize = 100;

/// A complete response before ETag, rate-limit and fault handling.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Reply {
    pub fn json(status: StatusCode, value: &Value) -> Reply {
        // Serialising a Value cannot fail; an empty body would be the only fallback.
        let body = serde_json::to_vec(value).unwrap_or_default();
        Reply {
            status,
            headers: Vec::new(),
            content_type: Some(JSON.to_owned()),
            body: Bytes::from(body),
        }
    }

    fn file(content_type: &str, body: Bytes) -> Reply {
        Reply {
            status: StatusCode::OK,
            headers: Vec::new(),
            content_type: Some(content_type.to_owned()),
            body,
        }
    }

    fn header(mut self, name: header::HeaderName, value: &str) -> Reply {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }
}

pub(crate) fn github_not_found(doc: &str) -> Reply {
    Reply::json(
        StatusCode::NOT_FOUND,
        &json!({
            "message": "Not Found",
            "documentation_url": format!("https://docs.github.com/rest/releases/{doc}"),
            "status": "404"
        }),
    )
}

pub(crate) fn not_found() -> Reply {
    Reply::json(
        StatusCode::NOT_FOUND,
        &json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}),
    )
}

/// Decodes %XX escapes in one path segment (not `+`: in a path it is a plus sign, as in
/// `v1.31.4+k3s1`).
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Rewrites recorded github.com / api.github.com links so that they point at this server.
fn rewrite_urls(value: &Value, base: &str) -> Value {
    match value {
        Value::String(s) => {
            if let Some(rest) = s.strip_prefix("https://api.github.com/") {
                Value::String(format!("{base}/{rest}"))
            } else if s.starts_with("https://github.com/") && s.contains("/releases/download/") {
                Value::String(format!("{base}/{}", &s["https://github.com/".len()..]))
            } else {
                value.clone()
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| rewrite_urls(v, base)).collect()),
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map {
                // The notes are served as recorded; only link fields are rewritten.
                let v = if k == "body" {
                    v.clone()
                } else {
                    rewrite_urls(v, base)
                };
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn release_json(r: &Release, base: &str) -> Value {
    rewrite_urls(&r.raw, base)
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    let q = query?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// GitHub ignores values it cannot parse and clamps `per_page` to 100.
fn page_params(query: Option<&str>) -> (usize, usize) {
    let per_page = query_param(query, "per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|v| *v > 0)
        .map_or(DEFAULT_PER_PAGE, |v| v.min(MAX_PER_PAGE));
    let page = query_param(query, "page")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(1);
    (per_page, page)
}

fn list_releases(repo: &Repo, key: &str, query: Option<&str>, base: &str) -> Reply {
    let (per_page, page) = page_params(query);
    let total = repo.releases.len();
    let last = total.div_ceil(per_page).max(1);
    let start = (page - 1).saturating_mul(per_page);
    let items: Vec<Value> = repo
        .releases
        .iter()
        .skip(start)
        .take(per_page)
        .map(|r| release_json(r, base))
        .collect();
    let mut reply = Reply::json(StatusCode::OK, &Value::Array(items));
    let link = |p: usize, rel: &str| {
        format!("<{base}/repos/{key}/releases?per_page={per_page}&page={p}>; rel=\"{rel}\"")
    };
    // GitHub's order: prev, next, last, first; each only where it makes sense.
    let mut links = Vec::new();
    if page > 1 {
        links.push(link((page - 1).min(last), "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    if !links.is_empty() {
        reply = reply.header(header::LINK, &links.join(", "));
    }
    reply
}

/// `/repos/OWNER/REPO/releases[/latest|/tags/TAG|/ID]`. `segments` excludes the leading
/// "repos".
fn github(fx: &Fixture, segments: &[String], query: Option<&str>, base: &str) -> Reply {
    let [owner, repo, releases, rest @ ..] = segments else {
        return not_found();
    };
    if releases != "releases" {
        return not_found();
    }
    let key = format!("{owner}/{repo}");
    let Some(r) = fx.repos.get(&key) else {
        return github_not_found("releases#list-releases");
    };
    match rest {
        [] => list_releases(r, &key, query, base),
        [latest] if latest == "latest" => match r.latest() {
            Some(rel) => Reply::json(StatusCode::OK, &release_json(rel, base)),
            None => github_not_found("releases#get-the-latest-release"),
        },
        [tags, tag] if tags == "tags" => match r.by_tag(tag) {
            Some(rel) => Reply::json(StatusCode::OK, &release_json(rel, base)),
            None => github_not_found("releases#get-a-release-by-tag-name"),
        },
        [id] => match id.parse::<u64>().ok().and_then(|id| r.by_id(id)) {
            Some(rel) => Reply::json(StatusCode::OK, &release_json(rel, base)),
            None => github_not_found("releases#get-a-release"),
        },
        _ => not_found(),
    }
}

fn channels(fx: &Fixture, segments: &[String], base: &str) -> Reply {
    let Some(ch) = &fx.channels else {
        return not_found();
    };
    match segments {
        [] => {
            let data: Vec<Value> = ch
                .channels
                .iter()
                .map(|c| {
                    let mut v = json!({
                        "id": c.name,
                        "type": "channel",
                        "links": {"self": format!("{base}/v1-release/channels/{}", c.name)},
                        "name": c.name,
                        "latest": c.latest,
                    });
                    if let Some(obj) = v.as_object_mut() {
                        if let Some(r) = &c.latest_regexp {
                            obj.insert("latestRegexp".into(), json!(r));
                        }
                        if let Some(r) = &c.exclude_regexp {
                            obj.insert("excludeRegexp".into(), json!(r));
                        }
                    }
                    v
                })
                .collect();
            Reply::json(
                StatusCode::OK,
                &json!({
                    "type": "collection",
                    "links": {"self": format!("{base}/v1-release/channels")},
                    "actions": {},
                    "resourceType": "channels",
                    "data": data,
                }),
            )
        }
        [name] => match ch.channels.iter().find(|c| &c.name == name) {
            Some(c) => {
                let location = format!("{}{}", ch.redirect_base, c.latest);
                // Go's http.Redirect body, which is what the real channel server sends.
                let body = format!("<a href=\"{location}\">Found</a>.\n\n");
                Reply {
                    status: StatusCode::FOUND,
                    headers: Vec::new(),
                    content_type: Some("text/html; charset=utf-8".into()),
                    body: Bytes::from(body),
                }
                .header(header::LOCATION, &location)
            }
            None => Reply::json(
                StatusCode::NOT_FOUND,
                &json!({"type": "error", "status": "404", "code": "NotFound", "message": format!("channel {name} not found")}),
            ),
        },
        _ => not_found(),
    }
}

/// True for the paths that count against the GitHub rate limit.
pub(crate) fn is_github_path(path: &str) -> bool {
    path.starts_with("/repos/")
}

/// Routes a GET/HEAD request. `path` is the raw (still percent-encoded) request path.
pub(crate) fn route(fx: &Fixture, path: &str, query: Option<&str>, base: &str) -> Reply {
    let mut segments = Vec::new();
    for raw in path.split('/').skip(1) {
        match percent_decode(raw) {
            Some(s) => segments.push(s),
            None => return not_found(),
        }
    }
    match segments.first().map(String::as_str) {
        Some("repos") => github(fx, &segments[1..], query, base),
        Some("v1-release") if segments.get(1).map(String::as_str) == Some("channels") => {
            channels(fx, &segments[2..], base)
        }
        Some("helm") => {
            let rel = segments[1..].join("/");
            match fx.helm.get(&rel) {
                Some(f) => Reply::file(f.content_type, f.body.clone()),
                None => not_found(),
            }
        }
        // GitHub's asset download path: /OWNER/REPO/releases/download/TAG/NAME
        Some(_)
            if segments.len() == 6 && segments[2] == "releases" && segments[3] == "download" =>
        {
            let key = format!(
                "{}/{}/{}/{}",
                segments[0], segments[1], segments[4], segments[5]
            );
            match fx.assets.get(&key) {
                Some(f) => Reply::file(f.content_type, f.body.clone()),
                None => not_found(),
            }
        }
        _ => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_keeps_plus() {
        assert_eq!(percent_decode("v1.31.4%2Bk3s1").unwrap(), "v1.31.4+k3s1");
        assert_eq!(percent_decode("v1.31.4+k3s1").unwrap(), "v1.31.4+k3s1");
        assert!(percent_decode("bad%zz").is_none());
        assert!(percent_decode("bad%2").is_none());
    }

    #[test]
    fn page_params_default_and_clamp() {
        assert_eq!(page_params(None), (30, 1));
        assert_eq!(page_params(Some("per_page=500&page=3")), (100, 3));
        assert_eq!(page_params(Some("per_page=abc&page=0")), (30, 1));
    }

    #[test]
    fn urls_are_rewritten_but_notes_are_not() {
        let v = json!({
            "url": "https://api.github.com/repos/o/r/releases/1",
            "html_url": "https://github.com/o/r/releases/tag/v1",
            "body": "see https://api.github.com/x",
            "assets": [{"browser_download_url": "https://github.com/o/r/releases/download/v1/a.txt"}]
        });
        let out = rewrite_urls(&v, "http://h:1");
        assert_eq!(out["url"], "http://h:1/repos/o/r/releases/1");
        assert_eq!(out["html_url"], "https://github.com/o/r/releases/tag/v1");
        assert_eq!(out["body"], "see https://api.github.com/x");
        assert_eq!(
            out["assets"][0]["browser_download_url"],
            "http://h:1/o/r/releases/download/v1/a.txt"
        );
    }
}
