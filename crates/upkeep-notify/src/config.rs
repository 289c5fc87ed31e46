//! The `notify` section, checked: every channel complete, its secrets read
//! (and registered for redaction), every template rendering.

use std::path::{Path, PathBuf};
use std::time::Duration;

use upkeep_config::{
    ChannelKind, ChannelSection, ContactSection, Env, NotifyEvent, Settings, SmtpTls,
};
use url::Url;

use crate::ConfigError;
use crate::template::Templates;

/// Longest a secret file may be: a token or a webhook URL, not a document.
const MAX_SECRET_FILE: u64 = 16 * 1024;
/// Longest a CA bundle may be.
const MAX_CA_FILE: u64 = 1024 * 1024;

/// A credential. Its Debug form is masked, so it never reaches a log
/// through a `{:?}` of the channel.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    fn new(s: String) -> Secret {
        upkeep_redact::register_secret(&s);
        Secret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where and how one channel delivers.
#[derive(Debug, Clone)]
pub enum Target {
    Webhook {
        url: Url,
        token: Option<Secret>,
    },
    Slack {
        url: Url,
    },
    Discord {
        url: Url,
    },
    Ntfy {
        url: Url,
        token: Option<Secret>,
    },
    Gotify {
        url: Url,
        token: Secret,
    },
    Matrix {
        homeserver: Url,
        room: String,
        token: Secret,
    },
    Email {
        host: String,
        port: u16,
        tls: SmtpTls,
        from: String,
        to: Vec<String>,
        login: Option<(String, Secret)>,
    },
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    /// None: every event.
    pub events: Option<Vec<NotifyEvent>>,
    pub escalation: bool,
    pub target: Target,
    /// An extra root CA (PEM), on top of the system's.
    pub ca_pem: Option<Vec<u8>>,
}

impl Channel {
    /// Does this channel get `event`? An escalation channel gets only what
    /// escalates; the test message goes everywhere.
    pub fn wants(&self, event: NotifyEvent, escalate: bool) -> bool {
        if event == NotifyEvent::Test {
            return true;
        }
        if self.escalation {
            return escalate;
        }
        match &self.events {
            None => true,
            Some(list) => list.contains(&event),
        }
    }

    /// How logs name the channel: its name, its type and the server, never
    /// the path or query (Slack, Discord and ntfy put the secret there).
    pub fn shown(&self) -> String {
        let origin = match &self.target {
            Target::Webhook { url, .. }
            | Target::Slack { url }
            | Target::Discord { url }
            | Target::Ntfy { url, .. }
            | Target::Gotify { url, .. } => origin(url),
            Target::Matrix { homeserver, .. } => origin(homeserver),
            Target::Email { host, port, .. } => format!("smtp://{host}:{port}"),
        };
        format!("{} ({}, {origin})", self.name, kind_name(self.kind))
    }
}

pub(crate) fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Webhook => "webhook",
        ChannelKind::Slack => "slack",
        ChannelKind::Discord => "discord",
        ChannelKind::Ntfy => "ntfy",
        ChannelKind::Gotify => "gotify",
        ChannelKind::Matrix => "matrix",
        ChannelKind::Email => "email",
    }
}

fn origin(url: &Url) -> String {
    match url.port() {
        Some(p) => format!("{}://{}:{p}", url.scheme(), url.host_str().unwrap_or("")),
        None => format!("{}://{}", url.scheme(), url.host_str().unwrap_or("")),
    }
}

/// The checked `notify` section.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub channels: Vec<Channel>,
    /// Each request's deadline, connection included.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    pub templates: Templates,
    pub contacts: Vec<ContactSection>,
    pub runbook_extra: Option<String>,
    pub announce_ahead: Duration,
    pub after_scan: bool,
    /// Where the sent-events file lives.
    pub state_dir: PathBuf,
}

impl NotifyConfig {
    /// Checks `settings.notify`. Secrets named by `*Env` are read from `env`.
    pub fn load(settings: &Settings, env: &dyn Env) -> Result<NotifyConfig, ConfigError> {
        let section = &settings.notify;
        let key = |k: &str| settings.key(&format!("notify.{k}"));
        let base = settings
            .config_path
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let timeout = match &section.timeout {
            Some(t) => {
                upkeep_config::parse_duration(t).map_err(|e| ConfigError::new(key("timeout"), e))?
            }
            None => Duration::from_secs(10),
        };
        if timeout.is_zero() {
            return Err(ConfigError::new(key("timeout"), "must be more than 0s"));
        }
        let retries = section.retries.unwrap_or(2);
        if retries > 10 {
            return Err(ConfigError::new(
                key("retries"),
                format!(
                    "{retries} is too many: a notification must not hold a run up (at most 10)"
                ),
            ));
        }
        let announce_ahead = match &section.announce_ahead {
            Some(t) => upkeep_config::parse_duration(t)
                .map_err(|e| ConfigError::new(key("announceAhead"), e))?,
            None => Duration::from_secs(3600),
        };
        let mut channels = Vec::new();
        for (name, ch) in section.channels.iter().flatten() {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(ConfigError::new(
                    key(&format!("channels.{name}")),
                    "a channel name is letters, digits, `-`, `_` and `.`",
                ));
            }
            channels.push(channel(
                name,
                ch,
                &|k| key(&format!("channels.{name}.{k}")),
                &base,
                env,
            )?);
        }
        let contacts = section.contacts.clone().unwrap_or_default();
        for (i, c) in contacts.iter().enumerate() {
            if c.name.trim().is_empty() {
                return Err(ConfigError::new(
                    key(&format!("contacts[{i}].name")),
                    "is empty",
                ));
            }
        }
        let templates = Templates::load(section.templates.as_ref(), &|k| {
            key(&format!("templates.{k}"))
        })?;
        Ok(NotifyConfig {
            channels,
            timeout,
            retries,
            templates,
            contacts,
            runbook_extra: section.runbook.clone(),
            announce_ahead,
            after_scan: section.after_scan.unwrap_or(false),
            state_dir: settings.state_dir.clone(),
        })
    }
}

fn read_small(path: &Path, max: u64, key: &str) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 > max {
        return Err(ConfigError::new(
            key,
            format!("{} is larger than {max} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

/// A relative path in upkeep.yaml is relative to the file, as the operator reads it.
fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// A secret from exactly one of: the file, the environment, or (for URLs
/// only, where the secret part is often just a topic) the config itself.
fn secret(
    file: Option<&PathBuf>,
    env_name: Option<&String>,
    file_key: &str,
    env_key: &str,
    base: &Path,
    env: &dyn Env,
) -> Result<Option<Secret>, ConfigError> {
    match (file, env_name) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            file_key,
            format!(
                "give either this or `{}`, not both",
                env_key.rsplit('`').nth(1).unwrap_or(env_key)
            ),
        )),
        (Some(f), None) => {
            let path = resolve(base, f);
            let bytes = read_small(&path, MAX_SECRET_FILE, file_key)?;
            let text = String::from_utf8(bytes).map_err(|_| {
                ConfigError::new(file_key, format!("{} is not UTF-8 text", path.display()))
            })?;
            let text = text.trim().to_string();
            if text.is_empty() {
                return Err(ConfigError::new(
                    file_key,
                    format!("{} is empty", path.display()),
                ));
            }
            Ok(Some(Secret::new(text)))
        }
        (None, Some(name)) => match env.var(name) {
            Some(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v.trim().to_string()))),
            _ => Err(ConfigError::new(
                env_key,
                format!("environment variable {name} is not set"),
            )),
        },
        (None, None) => Ok(None),
    }
}

fn parse_url(text: &str, key: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|e| ConfigError::new(key, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(
            key,
            "must be an http or https URL with a host",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(
            key,
            "must not hold a user or password: use tokenFile or tokenEnv",
        ));
    }
    Ok(url)
}

fn channel(
    name: &str,
    ch: &ChannelSection,
    key: &dyn Fn(&str) -> String,
    base: &Path,
    env: &dyn Env,
) -> Result<Channel, ConfigError> {
    let url = || -> Result<Option<Url>, ConfigError> {
        let given = [
            ch.url.is_some(),
            ch.url_file.is_some(),
            ch.url_env.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given > 1 {
            return Err(ConfigError::new(
                key("url"),
                "give one of url, urlFile and urlEnv",
            ));
        }
        if let Some(u) = &ch.url {
            return parse_url(u, &key("url")).map(Some);
        }
        let s = secret(
            ch.url_file.as_ref(),
            ch.url_env.as_ref(),
            &key("urlFile"),
            &key("urlEnv"),
            base,
            env,
        )?;
        match s {
            Some(s) => {
                let k = if ch.url_file.is_some() {
                    key("urlFile")
                } else {
                    key("urlEnv")
                };
                parse_url(s.expose(), &k).map(Some)
            }
            None => Ok(None),
        }
    };
    let need_url = || -> Result<Url, ConfigError> {
        url()?.ok_or_else(|| ConfigError::new(key("url"), "is needed (or urlFile, urlEnv)"))
    };
    let token = || {
        secret(
            ch.token_file.as_ref(),
            ch.token_env.as_ref(),
            &key("tokenFile"),
            &key("tokenEnv"),
            base,
            env,
        )
    };
    let need_token = || -> Result<Secret, ConfigError> {
        token()?.ok_or_else(|| ConfigError::new(key("tokenFile"), "is needed (or tokenEnv)"))
    };
    let email_only = |field: &str, set: bool| -> Result<(), ConfigError> {
        if set && ch.kind != ChannelKind::Email {
            return Err(ConfigError::new(key(field), "is only for type: email"));
        }
        Ok(())
    };
    email_only("host", ch.host.is_some())?;
    email_only("port", ch.port.is_some())?;
    email_only("tls", ch.tls.is_some())?;
    email_only("from", ch.from.is_some())?;
    email_only("to", ch.to.is_some())?;
    email_only("username", ch.username.is_some())?;
    email_only("passwordFile", ch.password_file.is_some())?;
    email_only("passwordEnv", ch.password_env.is_some())?;
    if ch.room.is_some() && ch.kind != ChannelKind::Matrix {
        return Err(ConfigError::new(key("room"), "is only for type: matrix"));
    }
    let target = match ch.kind {
        ChannelKind::Webhook => Target::Webhook {
            url: need_url()?,
            token: token()?,
        },
        ChannelKind::Slack | ChannelKind::Discord => {
            if ch.token_file.is_some() || ch.token_env.is_some() {
                return Err(ConfigError::new(
                    key("tokenFile"),
                    "a Slack or Discord webhook has its secret in the URL: use urlFile",
                ));
            }
            let url = need_url()?;
            // The whole URL is the credential: mask it wherever it might show.
            upkeep_redact::register_secret(url.path());
            if ch.kind == ChannelKind::Slack {
                Target::Slack { url }
            } else {
                Target::Discord { url }
            }
        }
        ChannelKind::Ntfy => {
            let url = need_url()?;
            // An ntfy topic is as good as a password to whoever knows it.
            if url.path().len() > 1 {
                upkeep_redact::register_secret(url.path());
            }
            Target::Ntfy {
                url,
                token: token()?,
            }
        }
        ChannelKind::Gotify => Target::Gotify {
            url: need_url()?,
            token: need_token()?,
        },
        ChannelKind::Matrix => {
            let room = ch.room.clone().ok_or_else(|| {
                ConfigError::new(key("room"), "is needed: the room ID, e.g. !abc:example.org")
            })?;
            if !(room.starts_with('!') || room.starts_with('#')) || !room.contains(':') {
                return Err(ConfigError::new(
                    key("room"),
                    format!("{room:?} is not a room ID like !abc:example.org"),
                ));
            }
            Target::Matrix {
                homeserver: need_url()?,
                room,
                token: need_token()?,
            }
        }
        ChannelKind::Email => {
            if ch.url.is_some() || ch.url_file.is_some() || ch.url_env.is_some() {
                return Err(ConfigError::new(
                    key("url"),
                    "an email channel has host and port instead",
                ));
            }
            if ch.token_file.is_some() || ch.token_env.is_some() {
                return Err(ConfigError::new(
                    key("tokenFile"),
                    "an email channel has passwordFile instead",
                ));
            }
            let host = ch
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| ConfigError::new(key("host"), "is needed"))?;
            let tls = ch.tls.unwrap_or(SmtpTls::Starttls);
            let port = ch.port.unwrap_or(match tls {
                SmtpTls::Starttls => 587,
                SmtpTls::Tls => 465,
            });
            let from = ch
                .from
                .clone()
                .ok_or_else(|| ConfigError::new(key("from"), "is needed"))?;
            from.parse::<lettre::message::Mailbox>().map_err(|e| {
                ConfigError::new(key("from"), format!("{from:?} is not a mail address: {e}"))
            })?;
            let to = ch.to.clone().unwrap_or_default();
            if to.is_empty() {
                return Err(ConfigError::new(key("to"), "needs at least one recipient"));
            }
            for (i, t) in to.iter().enumerate() {
                t.parse::<lettre::message::Mailbox>().map_err(|e| {
                    ConfigError::new(
                        key(&format!("to[{i}]")),
                        format!("{t:?} is not a mail address: {e}"),
                    )
                })?;
            }
            let password = secret(
                ch.password_file.as_ref(),
                ch.password_env.as_ref(),
                &key("passwordFile"),
                &key("passwordEnv"),
                base,
                env,
            )?;
            let login = match (&ch.username, password) {
                (Some(u), Some(p)) => Some((u.clone(), p)),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(ConfigError::new(
                        key("passwordFile"),
                        "is needed with username (or passwordEnv)",
                    ));
                }
                (None, Some(_)) => {
                    return Err(ConfigError::new(
                        key("username"),
                        "is needed with a password",
                    ));
                }
            };
            Target::Email {
                host,
                port,
                tls,
                from,
                to,
                login,
            }
        }
    };
    let ca_pem = match &ch.ca_file {
        Some(f) => {
            let path = resolve(base, f);
            let pem = read_small(&path, MAX_CA_FILE, &key("caFile"))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ConfigError::new(key("caFile"), format!("{} is not PEM: {e}", path.display()))
            })?;
            if certs.is_empty() {
                return Err(ConfigError::new(
                    key("caFile"),
                    format!("{} holds no certificate", path.display()),
                ));
            }
            Some(pem)
        }
        None => None,
    };
    if let Some(events) = &ch.events
        && events.is_empty()
    {
        return Err(ConfigError::new(
            key("events"),
            "is empty: leave it out for every event",
        ));
    }
    Ok(Channel {
        name: name.to_string(),
        kind: ch.kind,
        events: ch.events.clone(),
        escalation: ch.escalation.unwrap_or(false),
        target,
        ca_pem,
    })
}

#[cfg(test)]
pub(crate) fn test_secret(s: &str) -> Secret {
    Secret::new(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(
        yaml: &str,
        env: &[(&str, &str)],
    ) -> (tempfile::TempDir, Result<NotifyConfig, ConfigError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upkeep.yaml");
        std::fs::write(&path, format!("stateDir: {}\n{yaml}", dir.path().display())).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let home = dir.path().display().to_string();
        let env_fn = move |n: &str| -> Option<String> {
            if n == "HOME" {
                return Some(home.clone());
            }
            env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        };
        let (p, file) = upkeep_config::load(Some(&path), &env_fn).unwrap();
        let settings =
            upkeep_config::resolve(p, &file, &upkeep_config::Overrides::default(), &env_fn)
                .unwrap();
        let r = NotifyConfig::load(&settings, &env_fn);
        (dir, r)
    }

    fn err(yaml: &str) -> ConfigError {
        match load(yaml, &[]).1 {
            Ok(_) => panic!("accepted: {yaml}"),
            Err(e) => e,
        }
    }

    #[test]
    fn secrets_from_files_and_urls_are_masked_wherever_they_show() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("gotify.token");
        std::fs::write(&token, "gotify-secret-zz1\n").unwrap();
        let yaml = format!(
            "notify:\n  channels:\n    g: {{type: gotify, url: \"https://gotify.lan\", tokenFile: {}}}\n    s: {{type: slack, url: \"https://hooks.slack.example/services/T9/B9/slack-secret-zz2\"}}\n",
            token.display()
        );
        let (_d, cfg) = load(&yaml, &[]);
        let cfg = cfg.unwrap();
        let g = cfg.channels.iter().find(|c| c.name == "g").unwrap();
        let s = cfg.channels.iter().find(|c| c.name == "s").unwrap();
        assert_eq!(g.shown(), "g (gotify, https://gotify.lan)");
        assert_eq!(s.shown(), "s (slack, https://hooks.slack.example)");
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("gotify-secret-zz1"), "{debug}");
        let line = upkeep_redact::redact(
            "error posting to https://hooks.slack.example/services/T9/B9/slack-secret-zz2 with key gotify-secret-zz1",
        );
        assert!(
            !line.contains("slack-secret-zz2") && !line.contains("gotify-secret-zz1"),
            "{line}"
        );
        assert!(line.contains("https://hooks.slack.example"), "{line}");
    }

    #[test]
    fn defaults_and_routing() {
        let (_d, cfg) = load(
            "notify:\n  channels:\n    a: {type: webhook, url: \"http://h/\"}\n    b: {type: webhook, url: \"http://h/\", events: [run-finished]}\n    p: {type: ntfy, url: \"http://h/t\", escalation: true}\n",
            &[],
        );
        let cfg = cfg.unwrap();
        assert_eq!(cfg.timeout, Duration::from_secs(10));
        assert_eq!(cfg.retries, 2);
        let ch = |n: &str| cfg.channels.iter().find(|c| c.name == n).unwrap();
        assert!(ch("a").wants(NotifyEvent::StepApplied, false));
        assert!(!ch("b").wants(NotifyEvent::StepApplied, false));
        assert!(ch("b").wants(NotifyEvent::RunFinished, false));
        assert!(
            !ch("p").wants(NotifyEvent::RunFinished, false),
            "a completed run is not escalated"
        );
        assert!(ch("p").wants(NotifyEvent::RunFinished, true));
        assert!(
            ch("p").wants(NotifyEvent::Test, false),
            "the test message goes everywhere"
        );
    }

    #[test]
    fn each_mistake_names_its_key() {
        for (yaml, key) in [
            (
                "notify:\n  channels:\n    a: {type: webhook}\n",
                "notify.channels.a.url",
            ),
            (
                "notify:\n  channels:\n    a: {type: webhook, url: \"ftp://h/\"}\n",
                "notify.channels.a.url",
            ),
            (
                "notify:\n  channels:\n    a: {type: webhook, url: \"https://u:p@h/\"}\n",
                "notify.channels.a.url",
            ),
            (
                "notify:\n  channels:\n    a: {type: webhook, url: \"http://h/\", urlEnv: X}\n",
                "notify.channels.a.url",
            ),
            (
                "notify:\n  channels:\n    a: {type: webhook, url: \"http://h/\", host: smtp}\n",
                "notify.channels.a.host",
            ),
            (
                "notify:\n  channels:\n    a: {type: slack, url: \"http://h/\", tokenEnv: X}\n",
                "notify.channels.a.tokenFile",
            ),
            (
                "notify:\n  channels:\n    a: {type: gotify, url: \"http://h/\"}\n",
                "notify.channels.a.tokenFile",
            ),
            (
                "notify:\n  channels:\n    a: {type: matrix, url: \"http://h/\", room: general, tokenEnv: T}\n",
                "notify.channels.a.room",
            ),
            (
                "notify:\n  channels:\n    a: {type: ntfy, url: \"http://h/t\", tokenEnv: UNSET_VAR}\n",
                "notify.channels.a.tokenEnv",
            ),
            (
                "notify:\n  channels:\n    a: {type: email, host: h, from: \"not an address\", to: [a@b.c]}\n",
                "notify.channels.a.from",
            ),
            (
                "notify:\n  channels:\n    a: {type: email, host: h, from: a@b.c}\n",
                "notify.channels.a.to",
            ),
            (
                "notify:\n  channels:\n    a: {type: email, host: h, from: a@b.c, to: [x@y.z], username: u}\n",
                "notify.channels.a.passwordFile",
            ),
            (
                "notify:\n  channels:\n    a: {type: webhook, url: \"http://h/\", caFile: upkeep.yaml}\n",
                "notify.channels.a.caFile",
            ),
            (
                "notify:\n  channels:\n    a: {type: webhook, url: \"http://h/\", events: []}\n",
                "notify.channels.a.events",
            ),
            (
                "notify:\n  channels:\n    \"a b\": {type: webhook, url: \"http://h/\"}\n",
                "notify.channels.a b",
            ),
            ("notify:\n  retries: 50\n", "notify.retries"),
            ("notify:\n  timeout: soon\n", "notify.timeout"),
            (
                "notify:\n  contacts: [{name: \"\"}]\n",
                "notify.contacts[0].name",
            ),
        ] {
            let e = err(yaml);
            assert!(e.key.ends_with(&format!("key `{key}`")), "{yaml}: {e}");
        }
    }
}
