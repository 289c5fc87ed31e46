//! Pushing to a Prometheus Pushgateway: one HTTP PUT of the whole text to
//! `/metrics/job/<job>`, which replaces everything the job pushed before,
//! so a metric that is gone (a component no longer in the report) does not
//! linger.

use std::time::Duration;

use url::Url;

use crate::MetricsError;

pub const DEFAULT_JOB: &str = "upkeep";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What of the gateway's answer is kept for an error message.
const MAX_ANSWER: usize = 4096;

/// A Pushgateway and the job pushed as.
#[derive(Debug, Clone)]
pub struct Pushgateway {
    endpoint: Url,
    timeout: Duration,
}

impl Pushgateway {
    /// `base` is the gateway's URL (a path prefix is kept, for a gateway
    /// behind a proxy). `what` names where the URL came from in errors.
    pub fn new(
        base: &str,
        job: &str,
        timeout: Duration,
        what: &str,
    ) -> Result<Pushgateway, MetricsError> {
        let mut url = Url::parse(base)
            .map_err(|e| MetricsError::Input(format!("{what}: {base:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(MetricsError::Input(format!(
                "{what}: {} is not http or https",
                url.scheme()
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Credentials in a URL end up in shell history, ps and logs.
            return Err(MetricsError::Input(format!(
                "{what}: the URL must not carry credentials"
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(MetricsError::Input(format!(
                "{what}: the URL must not have a query or fragment"
            )));
        }
        // A job name is a path segment the gateway reads back as a label
        // value: keep it to characters that need no encoding.
        if job.is_empty()
            || !job
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        {
            return Err(MetricsError::Input(format!(
                "{what}: job {job:?} must be letters, digits, '_', '-', '.' or ':'"
            )));
        }
        if timeout.is_zero() {
            return Err(MetricsError::Input(format!(
                "{what}: timeout must not be 0"
            )));
        }
        url.path_segments_mut()
            .map_err(|()| MetricsError::Input(format!("{what}: {base:?} cannot be a base URL")))?
            .pop_if_empty()
            .extend(["metrics", "job", job]);
        Ok(Pushgateway {
            endpoint: url,
            timeout,
        })
    }

    /// Where the PUT goes.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Pushes `text` (the text exposition format). Blocks at most the
    /// timeout; safe to call from inside an async runtime (the run's
    /// observer is called there), because the request runs on a thread of
    /// its own.
    pub fn push(&self, text: &str) -> Result<(), MetricsError> {
        let this = self.clone();
        let body = text.to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| this.failed(format!("cannot start the async runtime: {e}")))?;
            rt.block_on(this.put(body))
        })
        .join()
        .unwrap_or_else(|_| Err(self.failed("the push thread panicked".to_string())))
    }

    async fn put(&self, body: String) -> Result<(), MetricsError> {
        // TLS is verified against the system roots (reqwest's default); no
        // redirects, so the body never goes anywhere it was not sent.
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("upkeep/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| self.failed(format!("HTTP client: {e}")))?;
        let mut resp = client
            .put(self.endpoint.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| {
                self.failed(if e.is_timeout() {
                    format!("no answer within {:?}", self.timeout)
                } else {
                    format!("cannot reach it: {}", error_chain(&e))
                })
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        // The gateway says why in the body (an inconsistent metric, a bad
        // label); keep a bounded, printable piece of it.
        let mut answer = Vec::new();
        while answer.len() < MAX_ANSWER {
            match resp.chunk().await {
                Ok(Some(c)) => answer.extend_from_slice(&c),
                _ => break,
            }
        }
        answer.truncate(MAX_ANSWER);
        let text: String = String::from_utf8_lossy(&answer)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Err(self.failed(format!("answered {status}: {}", text.trim())))
    }

    fn failed(&self, why: String) -> MetricsError {
        MetricsError::Push {
            url: self.endpoint.to_string(),
            why,
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(url: &str, job: &str) -> Result<Pushgateway, MetricsError> {
        Pushgateway::new(url, job, DEFAULT_TIMEOUT, "--pushgateway")
    }

    #[test]
    fn endpoint_is_the_job_group_under_the_base_path() {
        assert_eq!(
            gw("http://127.0.0.1:9091", "upkeep")
                .unwrap()
                .endpoint()
                .as_str(),
            "http://127.0.0.1:9091/metrics/job/upkeep"
        );
        assert_eq!(
            gw("https://mon.lan/pushgateway/", "home-lab")
                .unwrap()
                .endpoint()
                .as_str(),
            "https://mon.lan/pushgateway/metrics/job/home-lab"
        );
    }

    #[test]
    fn bad_urls_and_jobs_are_input_errors_naming_the_flag() {
        for (url, job, says) in [
            ("pushgateway:9091", "upkeep", "is not http or https"),
            ("not a url", "upkeep", "is not a URL"),
            (
                "http://u:secret@gw:9091",
                "upkeep",
                "must not carry credentials",
            ),
            ("http://gw:9091/?a=b", "upkeep", "query"),
            ("http://gw:9091", "a/b", "job \"a/b\""),
            ("http://gw:9091", "", "job \"\""),
        ] {
            let e = gw(url, job).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            let msg = e.to_string();
            assert!(msg.starts_with("--pushgateway: "), "{msg}");
            assert!(msg.contains(says), "{msg}");
            assert!(!msg.contains("secret"), "{msg}");
        }
    }

    #[test]
    fn a_closed_port_fails_fast_as_an_environment_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let g = Pushgateway::new(
            &format!("http://127.0.0.1:{port}"),
            "upkeep",
            Duration::from_secs(2),
            "x",
        )
        .unwrap();
        let t = std::time::Instant::now();
        let e = g.push("upkeep_x 1\n").unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(3));
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("cannot reach it"), "{e}");
    }

    #[test]
    fn a_gateway_that_refuses_says_why_within_bounds() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 65536];
            let mut got = Vec::new();
            // Read the request head and body before answering.
            while !String::from_utf8_lossy(&got).contains("upkeep_x 1") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let body = format!("bad metric\n\x1b[31m{}", "x".repeat(20000));
            write!(
                s,
                "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            String::from_utf8_lossy(&got).to_string()
        });
        let g = Pushgateway::new(
            &format!("http://127.0.0.1:{port}"),
            "upkeep",
            Duration::from_secs(5),
            "x",
        )
        .unwrap();
        let e = g.push("upkeep_x 1\n").unwrap_err().to_string();
        let request = server.join().unwrap();
        assert!(
            request.starts_with("PUT /metrics/job/upkeep HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{request}"
        );
        assert!(e.contains("answered 400 Bad Request: bad metric"), "{e}");
        assert!(!e.contains('\x1b'), "control characters removed");
        assert!(e.len() < MAX_ANSWER + 200, "answer bounded: {}", e.len());
    }
}
