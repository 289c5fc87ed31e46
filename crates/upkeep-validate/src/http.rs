//! `validate-apps`' user-defined HTTP checks: a file of URLs, the status
//! each must answer and a text its body must contain — the checks a person
//! would make by hand after an update ("does Nextcloud's login page come
//! up?"). TLS is verified (a homelab CA can be added per file), every
//! request has a timeout, and at most [`MAX_BODY`] bytes of a body are read.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use upkeep_contract::{CheckStatus, ObjectRef};

use crate::{Checks, ValidateError};

/// The most of a body read to look for `bodyContains`.
const MAX_BODY: usize = 1024 * 1024;
const CHECK: &str = "apps/http";

/// The file: `checks:` and an optional `caFile`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    /// PEM CA certificates to trust besides the system's (a homelab CA).
    #[serde(default)]
    ca_file: Option<std::path::PathBuf>,
    checks: Vec<HttpCheck>,
}

/// One check.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCheck {
    pub name: String,
    pub url: String,
    /// Default 200.
    #[serde(default)]
    pub expect_status: Option<u16>,
    #[serde(default)]
    pub body_contains: Option<String>,
    /// `10s` by default.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// The checks of a file, read and checked.
#[derive(Debug, Clone)]
pub struct HttpChecks {
    checks: Vec<(HttpCheck, Duration)>,
    ca_pem: Option<Vec<u8>>,
}

fn input(path: &Path, message: String) -> ValidateError {
    ValidateError::Input {
        what: format!("--http-checks {}", path.display()),
        message,
    }
}

impl HttpChecks {
    /// Reads `path`; a bad file, URL, duration or CA names what and where.
    pub fn load(path: &Path) -> Result<HttpChecks, ValidateError> {
        let text = std::fs::read_to_string(path).map_err(|e| input(path, e.to_string()))?;
        let file: File = serde_saphyr::from_str(&text)
            .map_err(|e| input(path, e.to_string().lines().next().unwrap_or("").to_string()))?;
        let mut checks = Vec::new();
        for (i, c) in file.checks.into_iter().enumerate() {
            let at = |field: &str| format!("checks[{i}].{field}");
            let url = url::Url::parse(&c.url)
                .map_err(|e| input(path, format!("{}: {:?}: {e}", at("url"), c.url)))?;
            if !url.username().is_empty() || url.password().is_some() {
                return Err(input(
                    path,
                    format!(
                        "{}: credentials in the URL would end up in reports and logs",
                        at("url")
                    ),
                ));
            }
            if !matches!(url.scheme(), "http" | "https") {
                return Err(input(
                    path,
                    format!("{}: {:?} is not an http(s) URL", at("url"), c.url),
                ));
            }
            if let Some(s) = c.expect_status
                && !(100..=599).contains(&s)
            {
                return Err(input(
                    path,
                    format!("{}: {s} is not an HTTP status", at("expectStatus")),
                ));
            }
            let timeout = match &c.timeout {
                Some(t) => upkeep_config::parse_duration(t)
                    .map_err(|e| input(path, format!("{}: {e}", at("timeout"))))?,
                None => Duration::from_secs(10),
            };
            checks.push((c, timeout));
        }
        let ca_pem = match &file.ca_file {
            Some(p) => {
                // Relative to the checks file, where people keep them together.
                let p = path
                    .parent()
                    .map(|d| d.join(p))
                    .unwrap_or_else(|| p.clone());
                let pem = std::fs::read(&p)
                    .map_err(|e| input(path, format!("caFile {}: {e}", p.display())))?;
                reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| input(path, format!("caFile {}: not PEM: {e}", p.display())))?;
                Some(pem)
            }
            None => None,
        };
        Ok(HttpChecks { checks, ca_pem })
    }

    /// Runs every check, one `apps/http` check each.
    pub async fn run(&self, out: &mut Checks) {
        for (c, timeout) in &self.checks {
            let start = Instant::now();
            let (status, detail) = match self.one(c, *timeout).await {
                Ok(detail) => (CheckStatus::Pass, detail),
                Err(detail) => (CheckStatus::Fail, detail),
            };
            // A query string may carry a token: reports show the URL without it.
            let detail = match c.url.split_once('?') {
                Some((bare, _)) => detail.replace(&c.url, &format!("{bare}?…")),
                None => detail,
            };
            out.push(
                CHECK,
                status,
                &format!("{}: {detail}", c.name),
                vec![ObjectRef {
                    api_version: upkeep_contract::API_VERSION.to_string(),
                    kind: "HttpCheck".to_string(),
                    namespace: None,
                    name: c.name.clone(),
                }],
                start,
            );
        }
    }

    async fn one(&self, c: &HttpCheck, timeout: Duration) -> Result<String, String> {
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("upkeep-validate/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &self.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())? {
                b = b.add_root_certificate(cert);
            }
        }
        let client = b.build().map_err(|e| format!("HTTP client: {e}"))?;
        let mut resp = client
            .get(&c.url)
            .send()
            .await
            .map_err(|e| format!("GET {}: {}", c.url, error_chain(&e)))?;
        let got = resp.status().as_u16();
        let want = c.expect_status.unwrap_or(200);
        if got != want {
            return Err(format!("GET {} answered {got}, expected {want}", c.url));
        }
        let Some(needle) = &c.body_contains else {
            return Ok(format!("GET {} answered {got}", c.url));
        };
        let mut body: Vec<u8> = Vec::new();
        while body.len() < MAX_BODY {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    return Err(format!(
                        "GET {}: reading the body: {}",
                        c.url,
                        error_chain(&e)
                    ));
                }
            }
        }
        body.truncate(MAX_BODY);
        if String::from_utf8_lossy(&body).contains(needle.as_str()) {
            Ok(format!(
                "GET {} answered {got} with {needle:?} in the body",
                c.url
            ))
        } else {
            Err(format!(
                "GET {} answered {got} but its body (first {} KiB) does not contain {needle:?}",
                c.url,
                body.len().div_ceil(1024)
            ))
        }
    }
}

/// reqwest's error with its causes, which say what actually failed
/// (connection refused, certificate unknown).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<HttpChecks, ValidateError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checks.yaml");
        std::fs::write(&p, text).unwrap();
        HttpChecks::load(&p)
    }

    #[test]
    fn the_file_is_checked_and_errors_name_the_field() {
        let ok = load("checks:\n  - {name: home, url: \"https://home.lan/\", expectStatus: 302, bodyContains: login, timeout: 5s}\n").unwrap();
        assert_eq!(ok.checks.len(), 1);
        assert_eq!(ok.checks[0].1, Duration::from_secs(5));
        for (text, want) in [
            (
                "checks:\n  - {name: a, url: \"ftp://x/\"}\n",
                "checks[0].url",
            ),
            (
                "checks:\n  - {name: a, url: \"not a url\"}\n",
                "checks[0].url",
            ),
            (
                "checks:\n  - {name: a, url: \"http://x/\", expectStatus: 99}\n",
                "checks[0].expectStatus",
            ),
            (
                "checks:\n  - {name: a, url: \"http://x/\", timeout: soon}\n",
                "checks[0].timeout",
            ),
            (
                "checks:\n  - {name: a, url: \"http://x/\", typo: 1}\n",
                "unknown field",
            ),
            ("checks: [\n", "--http-checks"),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(want) && !e.contains('\n'), "{text:?}: {e}");
        }
    }
}
