//! Sending: one message to one channel, with a deadline on every attempt,
//! bounded retries with a growing pause, and a cap on what is read back.
//! Nothing here raises: a failure is a [`Delivery`] that says why, with
//! secrets masked, for the caller to log.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant};

use upkeep_config::SmtpTls;

use crate::channel::{Outgoing, http_request};
use crate::config::{Channel, NotifyConfig, Target};
use crate::event::Message;

/// At most this much of a response is read (for the error message); a
/// webhook answers "ok", not a document.
const MAX_RESPONSE: u64 = 64 * 1024;
/// The first pause between attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(200);
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// What became of one message on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub channel: String,
    /// `chat (slack, https://hooks.slack.com)`: safe to log.
    pub shown: String,
    pub ok: bool,
    pub attempts: u32,
    /// Why the last attempt failed, secrets masked.
    pub error: Option<String>,
    pub elapsed: Duration,
}

enum Failure {
    /// Worth another attempt: the network, a timeout, 429, 5xx.
    Transient(String),
    /// Will fail the same way again: 4xx, a refused login, a bad address.
    Permanent(String),
}

/// The pause before attempt `n` (1-based, after the first failed).
pub(crate) fn pause(n: u32) -> Duration {
    FIRST_PAUSE
        .saturating_mul(1u32 << n.saturating_sub(1).min(8))
        .min(MAX_PAUSE)
}

/// Sends messages. Holds one HTTP client per channel (each may trust its
/// own CA). Build it on the thread that sends: the blocking client must not
/// be dropped inside an async runtime.
pub struct Deliverer {
    timeout: Duration,
    retries: u32,
    clients: HashMap<String, Result<reqwest::blocking::Client, String>>,
}

impl Deliverer {
    pub fn new(config: &NotifyConfig) -> Deliverer {
        let mut clients = HashMap::new();
        for ch in &config.channels {
            if matches!(ch.target, Target::Email { .. }) {
                continue;
            }
            clients.insert(
                ch.name.clone(),
                client(config.timeout, ch.ca_pem.as_deref()),
            );
        }
        Deliverer {
            timeout: config.timeout,
            retries: config.retries,
            clients,
        }
    }

    /// Every channel that wants `msg`, one after the other.
    pub fn send_all(&self, config: &NotifyConfig, msg: &Message) -> Vec<Delivery> {
        config
            .channels
            .iter()
            .filter(|c| c.wants(msg.event, msg.escalate))
            .map(|c| self.deliver(c, msg))
            .collect()
    }

    /// `msg` to `channel`: at most `1 + retries` attempts, each within the
    /// timeout.
    pub fn deliver(&self, channel: &Channel, msg: &Message) -> Delivery {
        let started = Instant::now();
        let mut attempts = 0;
        let mut error = None;
        let sent_at = jiff::Timestamp::now();
        while attempts <= self.retries {
            if attempts > 0 {
                std::thread::sleep(pause(attempts));
            }
            attempts += 1;
            let result = match &channel.target {
                Target::Email { .. } => self.email(channel, msg),
                target => match (
                    http_request(&channel.name, target, msg, sent_at),
                    self.clients.get(&channel.name),
                ) {
                    (Some(out), Some(Ok(client))) => send_http(client, &out),
                    (_, Some(Err(e))) => Err(Failure::Permanent(e.clone())),
                    _ => Err(Failure::Permanent(
                        "the URL cannot carry this channel's path".to_string(),
                    )),
                },
            };
            match result {
                Ok(()) => {
                    return Delivery {
                        channel: channel.name.clone(),
                        shown: channel.shown(),
                        ok: true,
                        attempts,
                        error: None,
                        elapsed: started.elapsed(),
                    };
                }
                Err(Failure::Transient(e)) => {
                    tracing::debug!("notify: {} attempt {attempts} failed: {e}", channel.shown());
                    error = Some(e);
                }
                Err(Failure::Permanent(e)) => {
                    error = Some(e);
                    break;
                }
            }
        }
        Delivery {
            channel: channel.name.clone(),
            shown: channel.shown(),
            ok: false,
            attempts,
            error: error.map(|e| upkeep_redact::redact(&e)),
            elapsed: started.elapsed(),
        }
    }

    fn email(&self, channel: &Channel, msg: &Message) -> Result<(), Failure> {
        use lettre::Transport;
        use lettre::message::header::ContentType;
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};

        let Target::Email {
            host,
            port,
            tls,
            from,
            to,
            login,
        } = &channel.target
        else {
            return Err(Failure::Permanent("not an email channel".into()));
        };
        let permanent =
            |what: &str, e: &dyn std::fmt::Display| Failure::Permanent(format!("{what}: {e}"));
        let mut mail = lettre::Message::builder()
            .from(from.parse().map_err(|e| permanent("from", &e))?)
            .subject(msg.title.clone())
            .header(ContentType::TEXT_PLAIN);
        for t in to {
            mail = mail.to(t.parse().map_err(|e| permanent("to", &e))?);
        }
        let mail = mail
            .body(msg.body.clone())
            .map_err(|e| permanent("message", &e))?;
        let mut params = TlsParameters::builder(host.clone());
        if let Some(pem) = &channel.ca_pem {
            params = params.add_root_certificate(
                Certificate::from_pem(pem).map_err(|e| permanent("caFile", &e))?,
            );
        }
        let params = params.build_rustls().map_err(|e| permanent("TLS", &e))?;
        let mut transport = lettre::SmtpTransport::builder_dangerous(host.as_str())
            .port(*port)
            .timeout(Some(self.timeout))
            .tls(match tls {
                SmtpTls::Starttls => Tls::Required(params),
                SmtpTls::Tls => Tls::Wrapper(params),
            });
        if let Some((user, password)) = login {
            transport = transport.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        match transport.build().send(&mail) {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(Failure::Permanent(one_line(&error_chain(&e)))),
            Err(e) => Err(Failure::Transient(one_line(&error_chain(&e)))),
        }
    }
}

fn client(timeout: Duration, ca_pem: Option<&[u8]>) -> Result<reqwest::blocking::Client, String> {
    let mut b = reqwest::blocking::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("upkeep/", env!("CARGO_PKG_VERSION")))
        // A redirect would carry the token or the secret URL elsewhere.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = ca_pem {
        for cert in
            reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("caFile: {e}"))?
        {
            b = b.add_root_certificate(cert);
        }
    }
    b.build()
        .map_err(|e| format!("cannot make an HTTP client: {}", error_chain(&e)))
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

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn send_http(client: &reqwest::blocking::Client, out: &Outgoing) -> Result<(), Failure> {
    let mut req = client
        .request(out.method.clone(), out.url.clone())
        .body(out.body.clone());
    for (k, v) in &out.headers {
        req = req.header(*k, v);
    }
    let resp = req.send().map_err(|e| {
        // The URL may hold the secret (Slack, Discord, ntfy topic).
        let e = e.without_url();
        let what = if e.is_timeout() {
            "timed out"
        } else {
            "could not be sent"
        };
        Failure::Transient(format!("{what}: {}", one_line(&error_chain(&e))))
    })?;
    let status = resp.status();
    let mut text = Vec::new();
    // What it said, bounded; a body that fails to read mid-way changes nothing.
    let _ = resp.take(MAX_RESPONSE).read_to_end(&mut text);
    if status.is_success() {
        return Ok(());
    }
    let said: String = String::from_utf8_lossy(&text)
        .chars()
        .filter(|c| !c.is_control() || *c == ' ')
        .take(200)
        .collect();
    let msg = format!(
        "the server answered {status}{}",
        if said.is_empty() {
            String::new()
        } else {
            format!(": {said}")
        }
    );
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        Err(Failure::Transient(msg))
    } else {
        Err(Failure::Permanent(msg))
    }
}

/// For logs: what happened to each channel.
pub(crate) fn log(event: &str, deliveries: &[Delivery]) {
    for d in deliveries {
        if d.ok {
            tracing::info!(
                "notify: {event} sent to {} ({} attempt(s))",
                d.shown,
                d.attempts
            );
        } else {
            tracing::warn!(
                "notify: {event} NOT delivered to {} after {} attempt(s) in {:.1}s: {}",
                d.shown,
                d.attempts,
                d.elapsed.as_secs_f64(),
                d.error.as_deref().unwrap_or("unknown error")
            );
        }
    }
}

pub(crate) fn describe(d: &Delivery) -> String {
    if d.ok {
        format!("{}: delivered", d.shown)
    } else {
        format!(
            "{}: FAILED after {} attempt(s): {}",
            d.shown,
            d.attempts,
            d.error.as_deref().unwrap_or("unknown error")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_and_stay_bounded() {
        assert_eq!(pause(1), Duration::from_millis(200));
        assert_eq!(pause(2), Duration::from_millis(400));
        assert_eq!(pause(3), Duration::from_millis(800));
        assert_eq!(pause(30), MAX_PAUSE);
    }
}
