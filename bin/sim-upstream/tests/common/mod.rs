//! Helpers for the CLI tests: start the real `sim-upstream` binary and talk raw HTTP/1.1 to it
//! over a TcpStream, so that dropped connections and short bodies are visible as they are.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/upstream")
}

pub struct Sim {
    pub child: Child,
    pub addr: SocketAddr,
    pub ready: serde_json::Value,
}

impl Sim {
    /// Starts `sim-upstream serve --fixture <testdata/upstream> <extra...>` and waits for the
    /// ready line.
    pub fn start(extra: &[&str]) -> Sim {
        Sim::start_with_fixture(&fixture_dir(), extra)
    }

    pub fn start_with_fixture(fixture: &Path, extra: &[&str]) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sim-upstream"))
            .arg("serve")
            .arg("--fixture")
            .arg(fixture)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sim-upstream");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read ready line");
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("ready line is not JSON ({e}): {line:?}"));
        let addr = ready["address"]
            .as_str()
            .expect("address")
            .parse()
            .expect("socket address");
        Sim { child, addr, ready }
    }

    pub fn get(&self, path: &str) -> Resp {
        request(self.addr, "GET", path, &[], None).expect("request")
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        request(self.addr, "GET", path, headers, None).expect("request")
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Resp {
        let b = body.to_string();
        request(
            self.addr,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            Some(b.as_bytes()),
        )
        .expect("request")
    }

    pub fn admin_requests(&self) -> Vec<serde_json::Value> {
        let r = self.get("/_admin/requests");
        assert_eq!(r.status, 200);
        r.json().as_array().expect("array").clone()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request with `Connection: close` and reads until EOF. `timeout` bounds each read;
/// an error is returned when the connection ends before any byte of a status line arrives, or
/// when a read times out (with what was read so far lost; see `request_raw`).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Resp> {
    let raw = request_raw(addr, method, path, headers, body, Duration::from_secs(20))?;
    if let Some(e) = raw.error {
        return Err(e);
    }
    parse(&raw.bytes).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no complete HTTP response head",
        )
    })
}

pub struct Raw {
    pub bytes: Vec<u8>,
    /// The read error that ended the exchange, if it did not end with a clean EOF.
    pub error: Option<std::io::Error>,
}

pub fn request_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<Raw> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(timeout))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    if let Some(b) = body {
        s.write_all(b)?;
    }
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(Raw { bytes, error: None }),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) => {
                return Ok(Raw {
                    bytes,
                    error: Some(e),
                });
            }
        }
    }
}

pub fn parse(bytes: &[u8]) -> Option<Resp> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some(Resp {
        status,
        headers,
        body: bytes[end + 4..].to_vec(),
    })
}

/// Parses an RFC 5988 Link header into (rel, url) pairs.
pub fn links(header: &str) -> Vec<(String, String)> {
    header
        .split(',')
        .filter_map(|part| {
            let (url, rel) = part.split_once(';')?;
            let url = url
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned();
            let rel = rel
                .trim()
                .strip_prefix("rel=\"")?
                .trim_end_matches('"')
                .to_owned();
            Some((rel, url))
        })
        .collect()
}

/// The path and query of an absolute http URL served by `addr`.
pub fn path_of(url: &str, addr: SocketAddr) -> String {
    let prefix = format!("http://{addr}");
    url.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{url} does not start with {prefix}"))
        .to_owned()
}
