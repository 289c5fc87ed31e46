//! `upkeep notify ...`, and the hooks `upkeep` calls: the run observer and
//! the message after a scan.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;
use upkeep_cli::{CliError, Outcome, Output};
use upkeep_config::{NotifyEvent, ProcessEnv, Settings};
use upkeep_contract::{RunRecord, UpdateReport};

use crate::config::NotifyConfig;
use crate::deliver::{Deliverer, describe, log};
use crate::event::{Event, render, test_event, updates_event, window_event};
use crate::observer::NotifyObserver;
use crate::sent::SentLog;

#[derive(Debug, Clone, Subcommand)]
pub enum NotifyCommand {
    /// Sends a test message to every channel of upkeep.yaml's `notify`: exit 0 when each got
    /// it, 3 naming those that did not, 2 for a bad `notify` section.
    Test,
    /// Announces the updates of an UpdateReport (security first), once per set of updates.
    Updates {
        /// The UpdateReport (`-` for stdin), as `upkeep scan --save` or merge-report writes it.
        #[arg(long, value_name = "FILE")]
        report: PathBuf,
        /// Send it even when the same updates were announced before.
        #[arg(long)]
        force: bool,
    },
    /// Announces the next maintenance window when it opens within `--ahead`, and says when
    /// one ended within the same span; each only once. Meant for cron, e.g. every 15 minutes.
    Window {
        /// How far ahead to announce (default: notify.announceAhead, else 1h).
        #[arg(long, value_name = "DURATION")]
        ahead: Option<String>,
    },
    /// Prints the emergency runbook: what to do and who to call; with a run, its steps,
    /// commits and restore points.
    Runbook {
        /// A run ID (`upkeep status` shows it).
        run: Option<String>,
    },
}

/// The checked `notify` section; a bad one is exit 2 naming the key.
pub fn load(settings: &Settings) -> Result<NotifyConfig, CliError> {
    NotifyConfig::load(settings, &ProcessEnv).map_err(CliError::usage)
}

/// The run observer, when any channel is configured.
pub fn observer(settings: &Settings) -> Result<Option<Arc<NotifyObserver>>, CliError> {
    let config = load(settings)?;
    if config.channels.is_empty() {
        return Ok(None);
    }
    Ok(Some(Arc::new(NotifyObserver::start(config))))
}

/// After `upkeep scan`: `updates-available` when `notify.afterScan` is set.
/// Delivery failures are logged, never raised: the scan did its job.
pub fn after_scan(settings: &Settings, report: &UpdateReport) -> Result<(), CliError> {
    let config = load(settings)?;
    if !config.after_scan || config.channels.is_empty() {
        return Ok(());
    }
    if let Some(event) = updates_event(report) {
        send_once(&config, &event, None, false);
    }
    Ok(())
}

/// Sends `event` unless its key was sent before (or `force`); returns the
/// deliveries, empty when it was skipped.
fn send_once(
    config: &NotifyConfig,
    event: &Event,
    record: Option<&RunRecord>,
    force: bool,
) -> Option<Vec<crate::deliver::Delivery>> {
    let sent = SentLog::new(&config.state_dir);
    if !force && sent.contains(&event.key) {
        tracing::info!(
            "notify: {} already sent ({}), not again",
            event.kind,
            event.key
        );
        return None;
    }
    let msg = render(config, event, record);
    let deliveries = Deliverer::new(config).send_all(config, &msg);
    log(event.kind.as_str(), &deliveries);
    sent.mark(&event.key);
    Some(deliveries)
}

fn report_deliveries(
    out: &mut Output,
    what: &str,
    deliveries: &[crate::deliver::Delivery],
) -> Result<Outcome, CliError> {
    if deliveries.is_empty() {
        out.text(&format!("{what}: no channel takes this event\n"))?;
        return Ok(Outcome::Done);
    }
    for d in deliveries {
        out.text(&format!("{}\n", describe(d)))?;
    }
    let failed: Vec<&str> = deliveries
        .iter()
        .filter(|d| !d.ok)
        .map(|d| d.channel.as_str())
        .collect();
    if failed.is_empty() {
        Ok(Outcome::Done)
    } else {
        tracing::error!("notify: {what} failed on {}", failed.join(", "));
        Ok(Outcome::Degraded)
    }
}

fn windows(settings: &Settings) -> Result<Vec<upkeep_window::Window>, CliError> {
    settings
        .windows
        .iter()
        .map(|(key, w)| {
            upkeep_window::Window::from_spec(&upkeep_window::WindowSpec {
                days: w.days.clone(),
                start: w.start.clone(),
                end: w.end.clone(),
                time_zone: w.time_zone.clone(),
            })
            .map_err(|e| CliError::usage(format!("{key}: {e}")))
        })
        .collect()
}

/// Runs one `upkeep notify` subcommand.
pub fn main(
    command: NotifyCommand,
    settings: &Settings,
    out: &mut Output,
) -> Result<Outcome, CliError> {
    let config = load(settings)?;
    match command {
        NotifyCommand::Test => {
            if config.channels.is_empty() {
                return Err(CliError::usage(format!(
                    "{}: no channels configured",
                    settings.key("notify.channels")
                )));
            }
            let msg = render(&config, &test_event(jiff::Timestamp::now()), None);
            let deliveries = Deliverer::new(&config).send_all(&config, &msg);
            report_deliveries(out, "test", &deliveries)
        }
        NotifyCommand::Updates { report, force } => {
            let report: UpdateReport = upkeep_cli::read_document(&report, "--report")?;
            let Some(event) = updates_event(&report) else {
                out.text("no updates to announce\n")?;
                return Ok(Outcome::Done);
            };
            match send_once(&config, &event, None, force) {
                Some(d) => report_deliveries(out, "updates-available", &d),
                None => {
                    out.text("these updates were announced before (--force sends them again)\n")?;
                    Ok(Outcome::Done)
                }
            }
        }
        NotifyCommand::Window { ahead } => {
            let ahead = match ahead {
                Some(a) => upkeep_config::parse_duration(&a)
                    .map_err(|e| CliError::usage(format!("--ahead: {e}")))?,
                None => config.announce_ahead,
            };
            let span = jiff::SignedDuration::try_from(ahead)
                .map_err(|e| CliError::usage(format!("--ahead: {e}")))?;
            let windows = windows(settings)?;
            if windows.is_empty() {
                out.text("no maintenance windows are configured\n")?;
                return Ok(Outcome::Done);
            }
            let now = jiff::Timestamp::now();
            let mut outcome = Outcome::Done;
            let mut said = false;
            // The latest window that ended within the span: walk the
            // windows from one span (and the longest window, a day) back.
            let mut t = now
                .checked_sub(span)
                .and_then(|t| t.checked_sub(jiff::SignedDuration::from_hours(25)))
                .unwrap_or(now);
            let mut ended = None;
            while let Some((s, e)) = upkeep_window::next_of(&windows, t) {
                if s.timestamp() > now {
                    break;
                }
                if e.timestamp() <= now && now.duration_since(e.timestamp()) <= span {
                    ended = Some((s.clone(), e));
                }
                t = s.timestamp();
            }
            if let Some((s, e)) = ended {
                said = true;
                let event = window_event(NotifyEvent::WindowEnded, &s, &e);
                match send_once(&config, &event, None, false) {
                    Some(d) => {
                        outcome = worst(outcome, report_deliveries(out, "window-ended", &d)?)
                    }
                    None => out.text("the end of this window was announced before\n")?,
                }
            }
            if let Some((s, e)) = upkeep_window::next_of(&windows, now)
                .filter(|(s, _)| s.timestamp().duration_since(now) <= span)
            {
                said = true;
                let event = window_event(NotifyEvent::WindowAnnounced, &s, &e);
                match send_once(&config, &event, None, false) {
                    Some(d) => {
                        outcome = worst(outcome, report_deliveries(out, "window-announced", &d)?)
                    }
                    None => out.text("this window was announced before\n")?,
                }
            }
            if !said {
                out.text("no maintenance window opens or ended within that span\n")?;
            }
            Ok(outcome)
        }
        NotifyCommand::Runbook { run } => {
            let record: Option<RunRecord> = match run {
                Some(id) => {
                    if id.contains('/') || id.starts_with('.') {
                        return Err(CliError::usage(format!("{id:?} is not a run ID")));
                    }
                    let path = settings.state_dir.join("runs").join(&id).join("run.json");
                    if !path.exists() {
                        return Err(CliError::usage(format!(
                            "no run {id} in {}",
                            settings.state_dir.join("runs").display()
                        )));
                    }
                    Some(upkeep_cli::read_document(&path, "RUN")?)
                }
                None => None,
            };
            out.text(&crate::runbook::runbook(&config, record.as_ref()))?;
            Ok(Outcome::Done)
        }
    }
}

fn worst(a: Outcome, b: Outcome) -> Outcome {
    if a == Outcome::Degraded || b == Outcome::Degraded {
        Outcome::Degraded
    } else {
        a
    }
}
