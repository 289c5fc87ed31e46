//! The on-disk response cache.
//!
//! One entry is two files named by the sha256 of the request (URL and
//! Accept): `<key>.body` and `<key>.json` (metadata). Each is written
//! atomically (temp file in the same directory, fsync, rename), body first.
//! The metadata records the body's length and sha256, so a pair that does not
//! match (a crash between the two renames, a concurrent writer, a truncated or
//! edited file) is detected on read and treated as a miss. Any unreadable
//! entry is a miss, never an error: the cache is an optimisation and the
//! source of offline answers, not a source of failures.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use crate::response::Response;
use upkeep_redact::redact;

/// Bumped when the layout changes, so old entries become misses.
const FORMAT: u32 = 1;
/// Metadata is a few hundred bytes; anything far larger is not ours.
const MAX_META_BYTES: u64 = 64 * 1024;

#[derive(Serialize, Deserialize)]
struct Meta {
    format: u32,
    /// Redacted, like everything else written by upkeep; the key already
    /// identifies the exact URL, this is for people looking at the cache.
    url: String,
    accept: Option<String>,
    final_url: String,
    status: u16,
    etag: Option<String>,
    last_modified: Option<String>,
    content_type: Option<String>,
    headers: BTreeMap<String, String>,
    stored_at: Timestamp,
    body_len: u64,
    body_sha256: String,
}

/// An intact cache entry.
pub(crate) struct Entry {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    response: Response,
}

impl Entry {
    /// The cached response, marked as served from the cache.
    pub(crate) fn response(&self) -> Response {
        Response {
            from_cache: true,
            ..self.response.clone()
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub(crate) fn new(cache_dir: &Path) -> Cache {
        Cache {
            dir: cache_dir.join("http"),
        }
    }

    fn key(url: &Url, accept: Option<&str>) -> String {
        let mut hasher = Sha256::new();
        hasher.update(url.as_str().as_bytes());
        // The separator keeps ("a", "b\nc") and ("a\nb", "c") apart; a URL
        // cannot contain a newline.
        hasher.update(b"\n");
        hasher.update(accept.unwrap_or("").as_bytes());
        hex::encode(hasher.finalize())
    }

    /// The intact entry for the request, or None. `max_body` guards against a
    /// planted huge body file.
    pub(crate) fn load(&self, url: &Url, accept: Option<&str>, max_body: u64) -> Option<Entry> {
        let key = Self::key(url, accept);
        match self.try_load(&key, url, accept, max_body) {
            Ok(entry) => Some(entry),
            Err(reason) => {
                if reason.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(
                        url = %redact(url.as_str()),
                        key = %key,
                        "ignoring unusable cache entry: {}",
                        redact(&reason.to_string())
                    );
                }
                None
            }
        }
    }

    fn try_load(
        &self,
        key: &str,
        url: &Url,
        accept: Option<&str>,
        max_body: u64,
    ) -> io::Result<Entry> {
        let corrupt = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_owned());
        let meta_bytes = read_limited(&self.dir.join(format!("{key}.json")), MAX_META_BYTES)?;
        let meta: Meta = serde_json::from_slice(&meta_bytes)
            .map_err(|e| corrupt(&format!("metadata is not valid: {e}")))?;
        if meta.format != FORMAT {
            return Err(corrupt("metadata has another format version"));
        }
        if meta.url != redact(url.as_str()) || meta.accept.as_deref() != accept {
            return Err(corrupt("metadata belongs to another request"));
        }
        if meta.body_len > max_body {
            return Err(corrupt("body is larger than the size limit"));
        }
        let body = read_limited(&self.dir.join(format!("{key}.body")), max_body)?;
        if body.len() as u64 != meta.body_len
            || hex::encode(Sha256::digest(&body)) != meta.body_sha256
        {
            return Err(corrupt("body does not match its metadata"));
        }
        let final_url = Url::parse(&meta.final_url)
            .map_err(|e| corrupt(&format!("final URL is not valid: {e}")))?;
        Ok(Entry {
            etag: meta.etag,
            last_modified: meta.last_modified,
            response: Response {
                status: meta.status,
                url: final_url,
                body: Bytes::from(body),
                headers: meta.headers,
                from_cache: true,
            },
        })
    }

    /// Store a fresh response. Errors are the caller's to log; a failed store
    /// never fails the request.
    pub(crate) fn store(
        &self,
        url: &Url,
        accept: Option<&str>,
        response: &Response,
    ) -> io::Result<()> {
        create_private_dir(&self.dir)?;
        let key = Self::key(url, accept);
        let meta = Meta {
            format: FORMAT,
            url: redact(url.as_str()),
            accept: accept.map(str::to_owned),
            final_url: redact(response.url.as_str()),
            status: response.status,
            etag: response.header("etag").map(str::to_owned),
            last_modified: response.header("last-modified").map(str::to_owned),
            content_type: response.content_type().map(str::to_owned),
            headers: response.headers.clone(),
            stored_at: Timestamp::now(),
            body_len: response.body.len() as u64,
            body_sha256: hex::encode(Sha256::digest(&response.body)),
        };
        let meta_json = serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?;
        write_atomic(&self.dir, &format!("{key}.body"), &response.body)?;
        write_atomic(&self.dir, &format!("{key}.json"), &meta_json)
    }
}

fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = fs::File::open(path)?;
    let mut data = Vec::new();
    file.take(limit + 1).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {limit} bytes", path.display()),
        ));
    }
    Ok(data)
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Bodies of authenticated requests live here.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Write `data` to `dir/name` so that readers see either the old file or the
/// whole new one: temp file in the same directory (same filesystem, so the
/// rename is atomic), fsync, rename, fsync the directory. Files are 0600.
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    // tempfile creates the file 0600 on unix.
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(url: &Url, body: &'static [u8]) -> Response {
        let mut headers = BTreeMap::new();
        headers.insert("etag".to_owned(), "\"v1\"".to_owned());
        headers.insert("content-type".to_owned(), "application/json".to_owned());
        Response {
            status: 200,
            url: url.clone(),
            body: Bytes::from_static(body),
            headers,
            from_cache: false,
        }
    }

    #[test]
    fn round_trip_keyed_by_url_and_accept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let url = Url::parse("https://example.com/index.yaml").unwrap();
        cache
            .store(&url, Some("application/json"), &response(&url, b"hello"))
            .unwrap();

        let entry = cache.load(&url, Some("application/json"), 100).unwrap();
        assert_eq!(entry.etag.as_deref(), Some("\"v1\""));
        let hit = entry.response();
        assert!(hit.from_cache());
        assert_eq!(hit.body().as_ref(), b"hello");
        assert_eq!(hit.content_type(), Some("application/json"));

        assert!(
            cache.load(&url, None, 100).is_none(),
            "Accept is part of the key"
        );
        let other = Url::parse("https://example.com/other").unwrap();
        assert!(cache.load(&other, Some("application/json"), 100).is_none());
    }

    #[test]
    fn files_are_private_and_no_temp_files_remain() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let url = Url::parse("https://example.com/a").unwrap();
        cache.store(&url, None, &response(&url, b"x")).unwrap();
        cache.store(&url, None, &response(&url, b"y")).unwrap();
        let http_dir = dir.path().join("http");
        assert_eq!(
            fs::metadata(&http_dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let names: Vec<_> = fs::read_dir(&http_dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        assert_eq!(
            names.len(),
            2,
            "one body and one metadata file, no temp files"
        );
        for entry in names {
            let name = entry.file_name().into_string().unwrap();
            assert!(!name.starts_with(".tmp-"), "{name}");
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
        assert_eq!(
            cache
                .load(&url, None, 100)
                .unwrap()
                .response()
                .body()
                .as_ref(),
            b"y"
        );
    }

    #[test]
    fn damaged_entries_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let url = Url::parse("https://example.com/a").unwrap();
        let key = Cache::key(&url, None);
        let meta_path = dir.path().join("http").join(format!("{key}.json"));
        let body_path = dir.path().join("http").join(format!("{key}.body"));

        cache
            .store(&url, None, &response(&url, b"complete body"))
            .unwrap();
        fs::write(&body_path, b"complete").unwrap(); // truncated body
        assert!(cache.load(&url, None, 100).is_none());

        cache
            .store(&url, None, &response(&url, b"complete body"))
            .unwrap();
        let meta = fs::read(&meta_path).unwrap();
        fs::write(&meta_path, &meta[..meta.len() / 2]).unwrap(); // torn metadata
        assert!(cache.load(&url, None, 100).is_none());

        fs::write(&meta_path, b"\xff\xfe not json").unwrap();
        assert!(cache.load(&url, None, 100).is_none());

        cache
            .store(&url, None, &response(&url, b"complete body"))
            .unwrap();
        assert!(cache.load(&url, None, 5).is_none(), "over the size limit");
        fs::remove_file(&body_path).unwrap();
        assert!(cache.load(&url, None, 100).is_none());
    }

    #[test]
    fn store_failure_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the cache directory should be.
        let blocker = dir.path().join("blocked");
        fs::write(&blocker, b"").unwrap();
        let cache = Cache::new(&blocker);
        let url = Url::parse("https://example.com/a").unwrap();
        assert!(cache.store(&url, None, &response(&url, b"x")).is_err());
        assert!(cache.load(&url, None, 100).is_none());
    }
}
