//! Notifications: who hears about a run, a maintenance window or pending
//! updates, and how.
//!
//! - [`NotifyConfig::load`] checks the `notify` section of upkeep.yaml once,
//!   at start: every channel's URL and secrets, and every message template
//!   rendered against a sample event, so a typo is an exit 2 at load time and
//!   not a silent failure at 3 am.
//! - [`NotifyObserver`] is told of every saved transition of a run, derives
//!   the events (run started, step applied, validation failed, rolled back,
//!   run finished) from the difference to the record it saw before, and
//!   delivers them on a thread of its own so a slow or dead endpoint never
//!   slows or fails the run. What was sent is kept in the state directory,
//!   so a resumed run does not send it again.
//! - [`deliver`] sends one message to one channel with a deadline, bounded
//!   retries and a response size limit; failures are returned, never raised.

mod channel;
pub mod cli;
mod config;
mod deliver;
mod event;
mod observer;
mod runbook;
mod sent;
mod template;

pub use channel::{Outgoing, Severity, http_request};
pub use config::{Channel, NotifyConfig, Secret, Target};
pub use deliver::{Deliverer, Delivery};
pub use event::{Event, Message, render, run_events, test_event, updates_event, window_event};
pub use observer::NotifyObserver;
pub use runbook::runbook;
pub use sent::SentLog;
pub use template::Templates;

/// A problem with the `notify` section, named by its key: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// e.g. ``upkeep.yaml: key `notify.channels.chat.url` ``.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: upkeep_redact::redact(&message.into()),
        }
    }
}
