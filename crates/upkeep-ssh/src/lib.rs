//! Runs commands on cluster nodes through the system OpenSSH client.
//!
//! The `ssh` binary rather than an SSH library, because homelab operators
//! already have it set up: their keys, agent, `~/.ssh/config` (jump hosts,
//! per-host users) and `known_hosts` all keep working. What this crate adds
//! is the discipline an unattended run needs:
//! - host keys are checked (`StrictHostKeyChecking=yes`): an unknown host is
//!   an error, never silently trusted;
//! - no prompt can hang a run (`BatchMode=yes`), and every command has a
//!   deadline after which the client is killed;
//! - output kept in memory is bounded;
//! - a host or user that could be read as an ssh option is refused, and
//!   [`quote`] makes any value safe inside a remote shell command.
//!
//! Nothing secret passes through argv: authentication is by key file or
//! agent, and only file paths are given to `ssh`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// Output kept per stream; more is cut (the start is kept for stdout, the
/// end for stderr, where the reason for a failure usually is).
const MAX_OUTPUT: usize = 1 << 20;
/// What of stderr goes into an error message.
const ERROR_TAIL: usize = 600;

/// How to reach the nodes.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// `ssh` itself (default: found on `PATH`).
    pub program: PathBuf,
    /// A private key to use (`-i`, with `IdentitiesOnly`); `None` leaves it
    /// to the agent and `~/.ssh/config`.
    pub identity_file: Option<PathBuf>,
    /// A known_hosts file to check host keys against instead of the user's.
    pub known_hosts_file: Option<PathBuf>,
    pub connect_timeout: Duration,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            program: PathBuf::from("ssh"),
            identity_file: None,
            known_hosts_file: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// One node as SSH reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub address: String,
    pub port: u16,
    pub user: String,
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}", self.user, self.address, self.port)
    }
}

impl Host {
    /// A host whose address and user cannot be mistaken for options.
    pub fn new(address: &str, port: u16, user: &str) -> Result<Host, SshError> {
        let bad = |what: &str, value: &str| SshError::Invalid {
            what: format!("{what} {value:?}"),
        };
        let plain = |s: &str| {
            !s.is_empty()
                && !s.starts_with('-')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._:[]%".contains(c))
        };
        if !plain(address) {
            return Err(bad("host", address));
        }
        if !plain(user) || user.contains(':') {
            return Err(bad("user", user));
        }
        if port == 0 {
            return Err(bad("port", "0"));
        }
        Ok(Host {
            address: address.to_string(),
            port,
            user: user.to_string(),
        })
    }
}

/// What a command printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("invalid {what}")]
    Invalid { what: String },
    #[error("cannot start {program}: {detail}")]
    Spawn { program: String, detail: String },
    /// ssh itself failed (exit 255): unreachable, refused, host key unknown
    /// or changed, authentication refused.
    #[error("ssh to {host}: {detail}")]
    Connect { host: String, detail: String },
    #[error("on {host}, `{command}` failed (exit {code}): {detail}")]
    Failed {
        host: String,
        command: String,
        code: i32,
        detail: String,
    },
    #[error("on {host}, `{command}` did not finish within {}s", after.as_secs())]
    Timeout {
        host: String,
        command: String,
        after: Duration,
    },
}

impl SshError {
    /// The node or the network is at fault (exit 3), rather than the input.
    pub fn is_environment(&self) -> bool {
        !matches!(self, SshError::Invalid { .. })
    }
}

/// `s` as one word for a POSIX shell: single-quoted, with `'` written `'\''`.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `ssh` command line for `host` running `command`.
fn command_for(cfg: &SshConfig, host: &Host, command: &str) -> Command {
    let mut c = Command::new(&cfg.program);
    c.arg("-o")
        .arg("BatchMode=yes")
        .arg("-o")
        .arg("StrictHostKeyChecking=yes")
        .arg("-o")
        .arg(format!(
            "ConnectTimeout={}",
            cfg.connect_timeout.as_secs().max(1)
        ))
        // A node that stops answering mid-command is noticed.
        .arg("-o")
        .arg("ServerAliveInterval=5")
        .arg("-o")
        .arg("ServerAliveCountMax=3")
        .arg("-o")
        .arg("LogLevel=ERROR");
    if let Some(k) = &cfg.known_hosts_file {
        c.arg("-o")
            .arg(format!("UserKnownHostsFile={}", k.display()));
    }
    if let Some(i) = &cfg.identity_file {
        c.arg("-i").arg(i).arg("-o").arg("IdentitiesOnly=yes");
    }
    c.arg("-p")
        .arg(host.port.to_string())
        .arg("-l")
        .arg(&host.user)
        .arg("--")
        .arg(&host.address)
        .arg(command);
    c
}

async fn read_bounded<R: AsyncRead + Unpin>(mut r: R) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > 2 * MAX_OUTPUT {
                    // Keep reading (so the remote side never blocks) but only the ends.
                    let cut = out.len() - MAX_OUTPUT;
                    out.drain(..cut);
                }
            }
        }
    }
    out
}

fn tail(s: &str) -> String {
    let s = s.trim();
    let flat: String = s.lines().collect::<Vec<_>>().join(" / ");
    if flat.len() <= ERROR_TAIL {
        return flat;
    }
    let mut start = flat.len() - ERROR_TAIL;
    while !flat.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &flat[start..])
}

/// Runs `command` (a remote shell command line) on `host`, feeding it
/// `input` on stdin, and waits at most `within`. A non-zero exit is an
/// error that carries the end of stderr.
pub async fn run(
    cfg: &SshConfig,
    host: &Host,
    command: &str,
    input: Option<&[u8]>,
    within: Duration,
) -> Result<Output, SshError> {
    let mut c = command_for(cfg, host, command);
    c.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    tracing::debug!(host = %host, command, "ssh");
    let mut child = c.spawn().map_err(|e| SshError::Spawn {
        program: cfg.program.display().to_string(),
        detail: e.to_string(),
    })?;
    let stdout = child.stdout.take().map(read_bounded);
    let stderr = child.stderr.take().map(read_bounded);
    let mut stdin = child.stdin.take();
    let work = async {
        let feed = async {
            if let (Some(w), Some(data)) = (stdin.as_mut(), input) {
                // A remote side that exits early closes the pipe; its exit says why.
                let _ = w.write_all(data).await;
                let _ = w.shutdown().await;
            }
            drop(stdin.take());
        };
        let out = async {
            match stdout {
                Some(f) => f.await,
                None => Vec::new(),
            }
        };
        let err = async {
            match stderr {
                Some(f) => f.await,
                None => Vec::new(),
            }
        };
        let ((), out, err) = tokio::join!(feed, out, err);
        let status = child.wait().await;
        (status, out, err)
    };
    let (status, out, err) = match tokio::time::timeout(within, work).await {
        Ok(r) => r,
        Err(_) => {
            return Err(SshError::Timeout {
                host: host.to_string(),
                command: command.to_string(),
                after: within,
            });
        }
    };
    let status = status.map_err(|e| SshError::Spawn {
        program: cfg.program.display().to_string(),
        detail: e.to_string(),
    })?;
    let output = Output {
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    };
    match status.code() {
        Some(0) => Ok(output),
        Some(255) => Err(SshError::Connect {
            host: host.to_string(),
            detail: tail(&output.stderr),
        }),
        code => Err(SshError::Failed {
            host: host.to_string(),
            command: command.to_string(),
            code: code.unwrap_or(-1),
            detail: tail(&output.stderr),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_any_text() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn hosts_that_look_like_options_are_refused() {
        assert!(Host::new("-oProxyCommand=x", 22, "root").is_err());
        assert!(Host::new("node 1", 22, "root").is_err());
        assert!(Host::new("10.0.0.5", 22, "-l").is_err());
        assert!(Host::new("10.0.0.5", 0, "root").is_err());
        let h = Host::new("node-1.lan", 2222, "pi").unwrap();
        assert_eq!(h.to_string(), "pi@node-1.lan:2222");
    }

    /// A stand-in for `ssh` (a shell script that runs the command locally
    /// and exits as told) shows how exits, output and deadlines are read.
    #[tokio::test]
    async fn exits_map_to_errors_and_deadlines_kill() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("ssh");
        // The last argument is the command; everything before it is options.
        std::fs::write(
            &fake,
            "#!/bin/sh\nfor last; do :; done\ncase \"$last\" in\n  unreachable) echo 'ssh: connect to host: Connection refused' >&2; exit 255;;\n  *) exec sh -c \"$last\";;\nesac\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cfg = SshConfig {
            program: fake,
            ..SshConfig::default()
        };
        let host = Host::new("127.0.0.1", 22, "root").unwrap();
        let t = Duration::from_secs(10);
        let out = run(&cfg, &host, "cat; echo done", Some(b"in\n"), t)
            .await
            .unwrap();
        assert_eq!(out.stdout, "in\ndone\n");
        let e = run(&cfg, &host, "echo oops >&2; exit 3", None, t)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, SshError::Failed { code: 3, detail, .. } if detail == "oops"),
            "{e}"
        );
        let e = run(&cfg, &host, "unreachable", None, t).await.unwrap_err();
        assert!(
            matches!(&e, SshError::Connect { detail, .. } if detail.contains("refused")),
            "{e}"
        );
        let started = std::time::Instant::now();
        let e = run(&cfg, &host, "sleep 30", None, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(e, SshError::Timeout { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
