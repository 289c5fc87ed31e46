//! Loading and validating a fixture directory. Everything is read into memory at start-up so
//! that a bad file stops the server before it serves anything, and so that serving never
//! touches the file system (no path traversal to worry about).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::Value;

use crate::SimError;

/// Files bigger than this are refused: a fixture is test data, not a mirror.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// One recorded GitHub release, validated; `raw` is served (after URL rewriting).
#[derive(Debug, Clone)]
pub(crate) struct Release {
    pub id: u64,
    pub tag: String,
    pub draft: bool,
    pub prerelease: bool,
    pub created_at: jiff::Timestamp,
    pub raw: Value,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Repo {
    /// Newest first, in GitHub's list order (created_at descending, then id descending).
    pub releases: Vec<Release>,
}

impl Repo {
    /// GitHub's rule for /releases/latest: the most recently created release that is neither a
    /// draft nor a pre-release.
    pub fn latest(&self) -> Option<&Release> {
        self.releases.iter().find(|r| !r.draft && !r.prerelease)
    }

    /// /releases/tags/TAG answers published releases only, as GitHub does.
    pub fn by_tag(&self, tag: &str) -> Option<&Release> {
        self.releases.iter().find(|r| r.tag == tag && !r.draft)
    }

    pub fn by_id(&self, id: u64) -> Option<&Release> {
        self.releases.iter().find(|r| r.id == id)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub name: String,
    pub latest: String,
    pub latest_regexp: Option<String>,
    pub exclude_regexp: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Channels {
    pub redirect_base: String,
    pub channels: Vec<Channel>,
}

#[derive(Debug, Clone)]
pub(crate) struct StaticFile {
    pub content_type: &'static str,
    pub body: Bytes,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Fixture {
    /// Keyed by "owner/repo".
    pub repos: BTreeMap<String, Repo>,
    /// Keyed by "owner/repo/tag/name" (tag not percent-encoded).
    pub assets: BTreeMap<String, StaticFile>,
    pub channels: Option<Channels>,
    /// Keyed by the path under helm/, with forward slashes.
    pub helm: BTreeMap<String, StaticFile>,
}

fn err(path: &Path, message: impl Into<String>) -> SimError {
    SimError::Fixture {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, SimError> {
    let meta = std::fs::metadata(path).map_err(|e| err(path, e.to_string()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(err(
            path,
            format!(
                "file is {} bytes, more than the {MAX_FILE_BYTES} allowed",
                meta.len()
            ),
        ));
    }
    std::fs::read(path).map_err(|e| err(path, e.to_string()))
}

fn sorted_dir(path: &Path) -> Result<Vec<PathBuf>, SimError> {
    let rd = std::fs::read_dir(path).map_err(|e| err(path, e.to_string()))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| err(path, e.to_string()))?;
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

fn file_name(path: &Path) -> Result<String, SimError> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| err(path, "file name is not valid UTF-8"))
}

pub(crate) fn content_type_for(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        "application/x-yaml"
    } else if lower.ends_with(".tgz") || lower.ends_with(".tar.gz") {
        "application/gzip"
    } else if lower.ends_with(".json") {
        "application/json"
    } else if lower.ends_with(".txt") {
        "text/plain; charset=utf-8"
    } else if lower.ends_with(".prov") || lower.ends_with(".asc") {
        "application/pgp-signature"
    } else {
        "application/octet-stream"
    }
}

impl Fixture {
    pub fn load(dir: &Path) -> Result<Fixture, SimError> {
        if !dir.is_dir() {
            return Err(err(dir, "fixture directory not found"));
        }
        let mut fx = Fixture::default();
        let github = dir.join("github");
        if github.is_dir() {
            fx.load_github(&github)?;
        }
        let channels = dir.join("channels").join("k3s.json");
        if channels.exists() {
            fx.channels = Some(load_channels(&channels)?);
        }
        let helm = dir.join("helm");
        if helm.is_dir() {
            load_tree(&helm, "", &mut fx.helm)?;
        }
        if fx.repos.is_empty() && fx.channels.is_none() && fx.helm.is_empty() {
            return Err(err(
                dir,
                "nothing to serve: no github/OWNER/REPO/releases.json, channels/k3s.json or helm/ files",
            ));
        }
        Ok(fx)
    }

    fn load_github(&mut self, github: &Path) -> Result<(), SimError> {
        for owner_dir in sorted_dir(github)? {
            if !owner_dir.is_dir() {
                return Err(err(&owner_dir, "expected a directory github/OWNER/"));
            }
            let owner = file_name(&owner_dir)?;
            for repo_dir in sorted_dir(&owner_dir)? {
                if !repo_dir.is_dir() {
                    return Err(err(&repo_dir, "expected a directory github/OWNER/REPO/"));
                }
                let repo = file_name(&repo_dir)?;
                let key = format!("{owner}/{repo}");
                let releases_path = repo_dir.join("releases.json");
                let releases = load_releases(&releases_path)?;
                let assets_dir = repo_dir.join("assets");
                if assets_dir.is_dir() {
                    for tag_dir in sorted_dir(&assets_dir)? {
                        let tag = file_name(&tag_dir)?;
                        for file in sorted_dir(&tag_dir)? {
                            let name = file_name(&file)?;
                            let body = read_file(&file)?;
                            self.assets.insert(
                                format!("{key}/{tag}/{name}"),
                                StaticFile {
                                    content_type: "application/octet-stream",
                                    body: Bytes::from(body),
                                },
                            );
                        }
                    }
                }
                self.repos.insert(key, Repo { releases });
            }
        }
        Ok(())
    }
}

fn load_releases(path: &Path) -> Result<Vec<Release>, SimError> {
    let bytes = read_file(path)?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| err(path, format!("invalid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(err(path, "expected a JSON array of release objects"));
    };
    let mut releases = Vec::with_capacity(items.len());
    let mut seen_ids = std::collections::BTreeSet::new();
    for (i, raw) in items.into_iter().enumerate() {
        let field_err =
            |field: &str, what: &str| err(path, format!("release [{i}]: `{field}` {what}"));
        let obj = raw
            .as_object()
            .ok_or_else(|| err(path, format!("release [{i}]: not a JSON object")))?;
        let id = obj
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| field_err("id", "must be a positive integer"))?;
        if !seen_ids.insert(id) {
            return Err(field_err("id", &format!("{id} is used twice")));
        }
        let tag = obj
            .get("tag_name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| field_err("tag_name", "must be a non-empty string"))?
            .to_owned();
        let draft = obj
            .get("draft")
            .and_then(Value::as_bool)
            .ok_or_else(|| field_err("draft", "must be true or false"))?;
        let prerelease = obj
            .get("prerelease")
            .and_then(Value::as_bool)
            .ok_or_else(|| field_err("prerelease", "must be true or false"))?;
        let created_at = obj
            .get("created_at")
            .and_then(Value::as_str)
            .ok_or_else(|| field_err("created_at", "must be an RFC 3339 timestamp string"))?
            .parse::<jiff::Timestamp>()
            .map_err(|e| field_err("created_at", &format!("is not an RFC 3339 timestamp: {e}")))?;
        for field in ["name", "body", "html_url", "published_at"] {
            match obj.get(field) {
                None | Some(Value::String(_)) | Some(Value::Null) => {}
                Some(_) => return Err(field_err(field, "must be a string or null")),
            }
        }
        match obj.get("assets") {
            None => {}
            Some(Value::Array(assets)) => {
                for (j, a) in assets.iter().enumerate() {
                    let ok = a.get("name").is_some_and(Value::is_string)
                        && a.get("browser_download_url").is_some_and(Value::is_string)
                        && a.get("size").is_some_and(Value::is_u64);
                    if !ok {
                        return Err(field_err(
                            &format!("assets[{j}]"),
                            "needs string `name`, string `browser_download_url` and integer `size`",
                        ));
                    }
                }
            }
            Some(_) => return Err(field_err("assets", "must be an array")),
        }
        releases.push(Release {
            id,
            tag,
            draft,
            prerelease,
            created_at,
            raw,
        });
    }
    releases.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    Ok(releases)
}

fn load_channels(path: &Path) -> Result<Channels, SimError> {
    let bytes = read_file(path)?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| err(path, format!("invalid JSON: {e}")))?;
    let redirect_base = value
        .get("redirectBase")
        .and_then(Value::as_str)
        .filter(|s| s.starts_with("http://") || s.starts_with("https://"))
        .ok_or_else(|| err(path, "`redirectBase` must be an http(s) URL string"))?
        .to_owned();
    let list = value
        .get("channels")
        .and_then(Value::as_array)
        .ok_or_else(|| err(path, "`channels` must be an array"))?;
    let mut channels = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let s = |field: &str| c.get(field).and_then(Value::as_str).map(str::to_owned);
        let name = s("name")
            .filter(|n| !n.is_empty() && !n.contains('/'))
            .ok_or_else(|| {
                err(
                    path,
                    format!("channels[{i}]: `name` must be a non-empty string without '/'"),
                )
            })?;
        let latest = s("latest").filter(|n| !n.is_empty()).ok_or_else(|| {
            err(
                path,
                format!("channels[{i}] ({name}): `latest` must be a version string"),
            )
        })?;
        if channels.iter().any(|c: &Channel| c.name == name) {
            return Err(err(
                path,
                format!("channels[{i}]: channel `{name}` is listed twice"),
            ));
        }
        channels.push(Channel {
            name,
            latest,
            latest_regexp: s("latestRegexp"),
            exclude_regexp: s("excludeRegexp"),
        });
    }
    Ok(Channels {
        redirect_base,
        channels,
    })
}

fn load_tree(
    dir: &Path,
    prefix: &str,
    out: &mut BTreeMap<String, StaticFile>,
) -> Result<(), SimError> {
    for path in sorted_dir(dir)? {
        let name = file_name(&path)?;
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if path.is_dir() {
            load_tree(&path, &rel, out)?;
        } else {
            let body = read_file(&path)?;
            out.insert(
                rel,
                StaticFile {
                    content_type: content_type_for(&name),
                    body: Bytes::from(body),
                },
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn rel(id: u64, tag: &str, created: &str, draft: bool, pre: bool) -> String {
        format!(
            r#"{{"id":{id},"tag_name":"{tag}","draft":{draft},"prerelease":{pre},"created_at":"{created}","name":"{tag}","body":"notes"}}"#
        )
    }

    #[test]
    fn latest_skips_drafts_and_prereleases_and_sorts_by_created_at() {
        let d = tempfile::tempdir().unwrap();
        let list = [
            rel(1, "v1.0.0", "2024-01-01T00:00:00Z", false, false),
            rel(2, "v1.2.0", "2024-03-01T00:00:00Z", true, false),
            rel(3, "v1.2.0-rc1", "2024-02-20T00:00:00Z", false, true),
            rel(4, "v1.1.0", "2024-02-01T00:00:00Z", false, false),
        ]
        .join(",");
        write(d.path(), "github/o/r/releases.json", &format!("[{list}]"));
        let fx = Fixture::load(d.path()).unwrap();
        let repo = &fx.repos["o/r"];
        let order: Vec<_> = repo.releases.iter().map(|r| r.tag.as_str()).collect();
        assert_eq!(order, ["v1.2.0", "v1.2.0-rc1", "v1.1.0", "v1.0.0"]);
        assert_eq!(repo.latest().unwrap().tag, "v1.1.0");
        assert!(
            repo.by_tag("v1.2.0").is_none(),
            "drafts are not served by tag"
        );
        assert_eq!(repo.by_tag("v1.2.0-rc1").unwrap().id, 3);
    }

    #[test]
    fn bad_release_names_file_index_and_field() {
        let d = tempfile::tempdir().unwrap();
        let list = [
            rel(1, "v1.0.0", "2024-01-01T00:00:00Z", false, false),
            rel(2, "v1.1.0", "yesterday", false, false),
        ]
        .join(",");
        write(d.path(), "github/o/r/releases.json", &format!("[{list}]"));
        let e = Fixture::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("releases.json"), "{e}");
        assert!(e.contains("release [1]"), "{e}");
        assert!(e.contains("created_at"), "{e}");
    }

    #[test]
    fn invalid_json_and_empty_fixture_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let e = Fixture::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("nothing to serve"), "{e}");
        write(d.path(), "channels/k3s.json", "{not json");
        let e = Fixture::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("k3s.json") && e.contains("invalid JSON"), "{e}");
    }

    #[test]
    fn channels_need_latest_and_unique_names() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "channels/k3s.json",
            r#"{"redirectBase":"https://x/","channels":[{"name":"stable"}]}"#,
        );
        let e = Fixture::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("channels[0]") && e.contains("latest"), "{e}");
        write(
            d.path(),
            "channels/k3s.json",
            r#"{"redirectBase":"https://x/","channels":[{"name":"a","latest":"v1"},{"name":"a","latest":"v2"}]}"#,
        );
        let e = Fixture::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
    }

    #[test]
    fn helm_tree_is_loaded_with_content_types() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "helm/repo/index.yaml", "apiVersion: v1\n");
        write(d.path(), "helm/repo/c-1.0.0.tgz", "x");
        let fx = Fixture::load(d.path()).unwrap();
        assert_eq!(
            fx.helm["repo/index.yaml"].content_type,
            "application/x-yaml"
        );
        assert_eq!(fx.helm["repo/c-1.0.0.tgz"].content_type, "application/gzip");
    }

    #[test]
    fn committed_fixture_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/upstream");
        let fx = Fixture::load(&dir).unwrap();
        for repo in ["k3s-io/k3s", "fluxcd/flux2", "longhorn/longhorn"] {
            assert!(fx.repos[repo].releases.len() > 30, "{repo}");
        }
        assert!(fx.channels.is_some());
        assert!(fx.helm.contains_key("longhorn/index.yaml"));
    }
}
