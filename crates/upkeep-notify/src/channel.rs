//! What each HTTP channel's request looks like: method, URL, headers and
//! body, built from a rendered message. Sending is elsewhere, so the
//! formats are checked without a network.

use serde_json::json;
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::Target;
use crate::event::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    /// Failures and rollbacks: escalated.
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One HTTP request, ready to send.
#[derive(Clone, PartialEq)]
pub struct Outgoing {
    pub method: reqwest::Method,
    pub url: Url,
    /// Header values may hold tokens: Debug does not print them.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("method", &self.method)
            .field("url", &upkeep_redact::redact(self.url.as_str()))
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            )
            .field("body", &self.body.len())
            .finish()
    }
}

/// Discord refuses a message longer than this.
const DISCORD_MAX: usize = 2000;
/// Slack cuts a message's text at 40,000 characters; stay well under it.
const SLACK_MAX: usize = 3000;
/// ntfy stores bodies over 4 KiB as attachments; stay a message.
const NTFY_MAX: usize = 4000;

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(2)).collect();
    out.push_str(" …");
    out
}

/// Slack's mrkdwn treats these three as markup.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// RFC 2047 for a header value that is not ASCII (ntfy decodes it).
fn header_text(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    format!("=?UTF-8?B?{}?=", base64(s.as_bytes()))
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(A[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The Matrix transaction ID of a message: the same for every retry of it,
/// so a homeserver that got the first attempt but whose answer was lost
/// does not post it twice.
pub(crate) fn matrix_txn(channel: &str, key: &str) -> String {
    let digest = Sha256::digest(format!("{channel}\n{key}").as_bytes());
    format!("upkeep-{}", &hex::encode(digest)[..24])
}

fn json_body(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The request `target` (channel `channel`) is sent for `msg`; None for email.
pub fn http_request(
    channel: &str,
    target: &Target,
    msg: &Message,
    sent_at: jiff::Timestamp,
) -> Option<Outgoing> {
    const JSON: &str = "application/json";
    let out = match target {
        Target::Webhook { url, token } => {
            let mut headers = vec![("Content-Type", JSON.to_string())];
            if let Some(t) = token {
                headers.push(("Authorization", format!("Bearer {}", t.expose())));
            }
            Outgoing {
                method: reqwest::Method::POST,
                url: url.clone(),
                headers,
                body: json_body(json!({
                    "apiVersion": "upkeep.dev/v1alpha1",
                    "kind": "Notification",
                    "event": msg.event.as_str(),
                    "key": msg.key,
                    "severity": msg.severity.as_str(),
                    "escalation": msg.escalate,
                    "title": msg.title,
                    "body": msg.body,
                    "sentAt": sent_at.to_string(),
                    "data": msg.data,
                })),
            }
        }
        Target::Slack { url } => Outgoing {
            method: reqwest::Method::POST,
            url: url.clone(),
            headers: vec![("Content-Type", JSON.to_string())],
            body: json_body(json!({
                "text": truncate(
                    &format!("*{}*\n{}", slack_escape(&msg.title), slack_escape(&msg.body)),
                    SLACK_MAX,
                ),
            })),
        },
        Target::Discord { url } => Outgoing {
            method: reqwest::Method::POST,
            url: url.clone(),
            headers: vec![("Content-Type", JSON.to_string())],
            body: json_body(json!({
                "content": truncate(&format!("**{}**\n{}", msg.title, msg.body), DISCORD_MAX),
                "username": "upkeep",
                // Text from release notes or an error must not ping @everyone.
                "allowed_mentions": {"parse": []},
            })),
        },
        Target::Ntfy { url, token } => {
            let (priority, mut tags) = match msg.severity {
                Severity::Info => ("3", vec!["upkeep"]),
                Severity::Warning => ("4", vec!["upkeep", "warning"]),
                Severity::Critical => ("5", vec!["upkeep", "rotating_light"]),
            };
            tags.push(msg.event.as_str());
            let mut headers = vec![
                ("Title", header_text(&msg.title)),
                ("Priority", priority.to_string()),
                ("Tags", tags.join(",")),
                ("Content-Type", "text/plain; charset=utf-8".to_string()),
            ];
            if let Some(t) = token {
                headers.push(("Authorization", format!("Bearer {}", t.expose())));
            }
            Outgoing {
                method: reqwest::Method::POST,
                url: url.clone(),
                headers,
                body: truncate(&msg.body, NTFY_MAX).into_bytes(),
            }
        }
        Target::Gotify { url, token } => {
            let mut url = url.clone();
            // The token goes in a header, never the query string that
            // proxies and logs keep.
            url.path_segments_mut().ok()?.pop_if_empty().push("message");
            Outgoing {
                method: reqwest::Method::POST,
                url,
                headers: vec![
                    ("Content-Type", JSON.to_string()),
                    ("X-Gotify-Key", token.expose().to_string()),
                ],
                body: json_body(json!({
                    "title": msg.title,
                    "message": msg.body,
                    "priority": match msg.severity { Severity::Info => 4, Severity::Warning => 6, Severity::Critical => 9 },
                    "extras": {"client::display": {"contentType": "text/plain"}},
                })),
            }
        }
        Target::Matrix {
            homeserver,
            room,
            token,
        } => {
            let mut url = homeserver.clone();
            let txn = matrix_txn(channel, &msg.key);
            url.path_segments_mut().ok()?.pop_if_empty().extend([
                "_matrix",
                "client",
                "v3",
                "rooms",
                room.as_str(),
                "send",
                "m.room.message",
                txn.as_str(),
            ]);
            Outgoing {
                method: reqwest::Method::PUT,
                url,
                headers: vec![
                    ("Content-Type", JSON.to_string()),
                    ("Authorization", format!("Bearer {}", token.expose())),
                ],
                body: json_body(json!({
                    "msgtype": if msg.escalate { "m.text" } else { "m.notice" },
                    "body": format!("{}\n\n{}", msg.title, msg.body),
                })),
            }
        }
        Target::Email { .. } => return None,
    };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_config::NotifyEvent;

    fn msg() -> Message {
        Message {
            event: NotifyEvent::RolledBack,
            key: "run/r1/step/0/rolled-back".into(),
            severity: Severity::Critical,
            escalate: true,
            title: "podinfo rolled back → 6.7.0".into(),
            body: "<b>@everyone</b> & more\n".into(),
            data: json!({"run": {"id": "r1"}}),
        }
    }

    fn secret(s: &str) -> crate::config::Secret {
        // Through the config path so it is registered for redaction too.
        crate::config::test_secret(s)
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn ntfy_has_title_priority_and_tags_headers() {
        let t = Target::Ntfy {
            url: "https://ntfy.example/upkeep-topic".parse().unwrap(),
            token: None,
        };
        let o = http_request("phone", &t, &msg(), jiff::Timestamp::UNIX_EPOCH).unwrap();
        let h = |k: &str| {
            o.headers
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            h("Title").unwrap(),
            format!(
                "=?UTF-8?B?{}?=",
                base64("podinfo rolled back → 6.7.0".as_bytes())
            )
        );
        assert_eq!(h("Priority").unwrap(), "5");
        assert_eq!(h("Tags").unwrap(), "upkeep,rotating_light,rolled-back");
        assert_eq!(o.body, msg().body.into_bytes());
        assert_eq!(o.url.path(), "/upkeep-topic");
    }

    #[test]
    fn gotify_token_is_a_header_and_never_in_the_url() {
        let t = Target::Gotify {
            url: "https://gotify.example/base/".parse().unwrap(),
            token: secret("AppTok3n"),
        };
        let o = http_request("g", &t, &msg(), jiff::Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(o.url.as_str(), "https://gotify.example/base/message");
        assert!(!o.url.as_str().contains("AppTok3n"));
        assert!(
            o.headers
                .contains(&("X-Gotify-Key", "AppTok3n".to_string()))
        );
        assert!(!format!("{o:?}").contains("AppTok3n"));
        let body: serde_json::Value = serde_json::from_slice(&o.body).unwrap();
        assert_eq!(body["priority"], 9);
    }

    #[test]
    fn matrix_puts_to_the_room_with_a_stable_transaction() {
        let t = Target::Matrix {
            homeserver: "https://matrix.example".parse().unwrap(),
            room: "!room:example.org".into(),
            token: secret("syt_token"),
        };
        let a = http_request("m", &t, &msg(), jiff::Timestamp::UNIX_EPOCH).unwrap();
        let b = http_request("m", &t, &msg(), jiff::Timestamp::now()).unwrap();
        assert_eq!(a.method, reqwest::Method::PUT);
        assert!(
            a.url.path().starts_with(
                "/_matrix/client/v3/rooms/!room:example.org/send/m.room.message/upkeep-"
            ),
            "{}",
            a.url
        );
        assert_eq!(a.url, b.url, "a retry must reuse the transaction ID");
        let mut other = msg();
        other.key = "run/r1/finished/rolled-back".into();
        assert_ne!(
            http_request("m", &t, &other, jiff::Timestamp::UNIX_EPOCH)
                .unwrap()
                .url,
            a.url
        );
    }

    #[test]
    fn slack_escapes_markup_and_discord_mutes_mentions() {
        let url: Url = "https://hooks.example/services/T/B/x".parse().unwrap();
        let s = http_request(
            "s",
            &Target::Slack { url: url.clone() },
            &msg(),
            jiff::Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
        assert_eq!(
            v["text"],
            "*podinfo rolled back → 6.7.0*\n&lt;b&gt;@everyone&lt;/b&gt; &amp; more\n"
        );
        let mut long = msg();
        long.body = "x".repeat(5000);
        let d = http_request(
            "d",
            &Target::Discord { url },
            &long,
            jiff::Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(v["allowed_mentions"]["parse"], json!([]));
        assert_eq!(v["content"].as_str().unwrap().chars().count(), DISCORD_MAX);
    }
}
