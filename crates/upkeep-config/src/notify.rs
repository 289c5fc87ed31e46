//! The `notify` section: who is told about runs, maintenance windows and
//! updates, and through which channels. Only the shape lives here; the
//! checks that need the channels' rules or the template engine (a channel
//! without its URL, a template that does not render) are made by
//! upkeep-notify when the section is loaded, and name the key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifySection {
    /// Channels by name (the name is what logs and `upkeep notify test` show).
    pub channels: Option<BTreeMap<String, ChannelSection>>,
    /// Each request's deadline, connection included (default `10s`).
    pub timeout: Option<String>,
    /// Attempts after the first one failed (default 2), with a growing pause.
    pub retries: Option<u32>,
    /// Message templates (MiniJinja) by event, e.g. `rolled-back: {title: ..., body: ...}`;
    /// an event or part left out keeps the built-in one.
    pub templates: Option<BTreeMap<String, TemplateSection>>,
    /// Who to call when a run fails or is rolled back; named in the runbook
    /// and in the messages of those events.
    pub contacts: Option<Vec<ContactSection>>,
    /// Extra text for the emergency runbook (`upkeep notify runbook`), e.g.
    /// where the break-glass kubeconfig is kept.
    pub runbook: Option<String>,
    /// `upkeep notify window` announces a maintenance window this long before it opens
    /// (default `1h`).
    pub announce_ahead: Option<String>,
    /// Send `updates-available` after every `upkeep scan` that finds updates (default false).
    pub after_scan: Option<bool>,
}

/// The events a channel can be sent.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyEvent {
    RunStarted,
    StepApplied,
    ValidationFailed,
    RolledBack,
    RunFinished,
    WindowAnnounced,
    WindowEnded,
    UpdatesAvailable,
    /// `upkeep notify test`: always sent to every channel.
    Test,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 9] = [
        NotifyEvent::RunStarted,
        NotifyEvent::StepApplied,
        NotifyEvent::ValidationFailed,
        NotifyEvent::RolledBack,
        NotifyEvent::RunFinished,
        NotifyEvent::WindowAnnounced,
        NotifyEvent::WindowEnded,
        NotifyEvent::UpdatesAvailable,
        NotifyEvent::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::RunStarted => "run-started",
            NotifyEvent::StepApplied => "step-applied",
            NotifyEvent::ValidationFailed => "validation-failed",
            NotifyEvent::RolledBack => "rolled-back",
            NotifyEvent::RunFinished => "run-finished",
            NotifyEvent::WindowAnnounced => "window-announced",
            NotifyEvent::WindowEnded => "window-ended",
            NotifyEvent::UpdatesAvailable => "updates-available",
            NotifyEvent::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

impl std::fmt::Display for NotifyEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// POST of a JSON document (`kind: Notification`) to `url`.
    Webhook,
    /// A Slack incoming webhook (`url` or `urlFile`: the URL is the secret).
    Slack,
    /// A Discord webhook (`url` or `urlFile`: the URL is the secret).
    Discord,
    /// POST to an ntfy topic URL, with Title, Priority and Tags headers.
    Ntfy,
    /// POST /message on a Gotify server with the application token.
    Gotify,
    /// A message in a Matrix room through the client-server API.
    Matrix,
    /// Mail over SMTP with STARTTLS or implicit TLS.
    Email,
}

/// How the SMTP connection is secured. There is no plain-text mode: mail
/// carries the runbook and the password would cross the network in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// STARTTLS on the submission port (default, port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelSection {
    #[serde(rename = "type")]
    pub kind: ChannelKind,
    /// Which events this channel gets (default: all of them).
    pub events: Option<Vec<NotifyEvent>>,
    /// An escalation channel gets only failures and rollbacks (validation-failed,
    /// rolled-back, a run that did not complete), whatever `events` says elsewhere.
    pub escalation: Option<bool>,
    /// webhook, slack, discord, ntfy: where to POST; gotify: the server; matrix: the homeserver.
    pub url: Option<String>,
    /// The URL from a file instead (Slack and Discord URLs are credentials).
    pub url_file: Option<PathBuf>,
    /// The URL from an environment variable instead.
    pub url_env: Option<String>,
    /// The token (gotify application token, matrix access token, ntfy access token,
    /// webhook bearer token) from a file.
    pub token_file: Option<PathBuf>,
    /// The token from an environment variable.
    pub token_env: Option<String>,
    /// matrix: the room ID (`!abc:example.org`).
    pub room: Option<String>,
    /// Extra root CA (PEM) for a server with a homelab certificate; system roots stay trusted.
    pub ca_file: Option<PathBuf>,
    /// email: the SMTP server.
    pub host: Option<String>,
    /// email: default 587 for starttls, 465 for tls.
    pub port: Option<u16>,
    /// email: `starttls` (default) or `tls`.
    pub tls: Option<SmtpTls>,
    /// email: the sender address.
    pub from: Option<String>,
    /// email: the recipients.
    pub to: Option<Vec<String>>,
    /// email: the SMTP login (with `passwordFile` or `passwordEnv`).
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateSection {
    /// The subject line (MiniJinja).
    pub title: Option<String>,
    /// The message (MiniJinja).
    pub body: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactSection {
    pub name: String,
    /// e.g. `primary`, `backup`, `hosting provider`.
    pub role: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// A chat handle, e.g. `@alice:matrix.org`.
    pub chat: Option<String>,
}
