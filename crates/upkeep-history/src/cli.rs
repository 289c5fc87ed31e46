//! `upkeep history` and `upkeep report`: flags in, text out. The `upkeep`
//! binary maps its `-o` to [`HistoryFormat`] / [`ReportFormat`] and the
//! errors to exit codes.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::db::History;
use crate::ingest::open_with_backfill as open;
use crate::query::{self, Filter};
use crate::report::{self, Releases};
use crate::{HistoryError, Period, import, parse_bound, parse_month};

#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HistoryArgs {
    #[command(subcommand)]
    pub action: Option<HistoryAction>,
    /// Only this component (its name, or namespace/name).
    #[arg(long, value_name = "NAME")]
    pub component: Option<String>,
    /// Only steps that ended so: completed, rolled-back, failed, skipped, ...
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// Only runs started at or after this date (YYYY-MM-DD, UTC) or time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only runs started before the end of this date, or before this time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only rows with this text anywhere (run, actor, versions, commits, errors, reason).
    #[arg(long, value_name = "TEXT")]
    pub grep: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum HistoryAction {
    /// Adds the runs saved in <stateDir>/runs/*/run.json (runs from before the database, or
    /// missed while it could not be written); a run already there is replaced, not doubled.
    Import,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The calendar month (UTC), e.g. 2026-11; default: this month.
    #[arg(long, value_name = "YYYY-MM", conflicts_with_all = ["since", "until"])]
    pub month: Option<String>,
    /// From this date (YYYY-MM-DD, UTC) or time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// To the end of this date, or to this time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Saved UpdateReports with release dates and the newest versions (besides
    /// <stateDir>/report.json and <stateDir>/runs/*/report.json, read when present).
    #[arg(long = "updates", value_name = "FILE")]
    pub updates: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryFormat {
    Text,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Markdown,
    Html,
    Json,
}

fn period(since: Option<&str>, until: Option<&str>) -> Result<Period, HistoryError> {
    let p = Period {
        since: since
            .map(|s| parse_bound("--since", s, false))
            .transpose()?,
        until: until.map(|u| parse_bound("--until", u, true)).transpose()?,
    };
    if let (Some(s), Some(u)) = (p.since, p.until)
        && s >= u
    {
        return Err(HistoryError::Input(format!(
            "--since {} is not before --until {}",
            since.unwrap_or_default(),
            until.unwrap_or_default()
        )));
    }
    Ok(p)
}

/// `upkeep history` and `upkeep history import`.
pub fn history(
    state_dir: &Path,
    args: &HistoryArgs,
    format: HistoryFormat,
) -> Result<String, HistoryError> {
    if let Some(HistoryAction::Import) = args.action {
        let mut h = History::open_in(state_dir)?;
        let runs = state_dir.join("runs");
        let done = import(&mut h, &runs)?;
        return Ok(match format {
            HistoryFormat::Json => format!(
                "{}\n",
                serde_json::json!({"runs": done.runs, "steps": done.steps, "skipped": done.skipped})
            ),
            _ => {
                let mut s = format!(
                    "imported {} run(s), {} step(s) from {} into {}\n",
                    done.runs,
                    done.steps,
                    runs.display(),
                    h.path().display()
                );
                for k in &done.skipped {
                    s.push_str(&format!("skipped {k}\n"));
                }
                s
            }
        });
    }
    // Flags first: a typo must not create or touch anything.
    let filter = Filter {
        component: args.component.clone(),
        status: args.status.clone(),
        period: period(args.since.as_deref(), args.until.as_deref())?,
        grep: args.grep.clone(),
    };
    filter.validate()?;
    let h = open(state_dir)?;
    let rows = query::list(&h, &filter)?;
    Ok(match format {
        HistoryFormat::Text => query::render_text(&rows),
        HistoryFormat::Json => query::render_json(&rows),
        HistoryFormat::Csv => query::render_csv(&rows),
    })
}

/// `upkeep report`.
pub fn report(
    state_dir: &Path,
    args: &ReportArgs,
    format: ReportFormat,
    now: jiff::Timestamp,
) -> Result<String, HistoryError> {
    let p = match &args.month {
        Some(m) => parse_month(m)?,
        None if args.since.is_none() && args.until.is_none() => {
            let z = now.to_zoned(jiff::tz::TimeZone::UTC);
            parse_month(&format!("{:04}-{:02}", z.year(), z.month()))?
        }
        None => period(args.since.as_deref(), args.until.as_deref())?,
    };
    for f in &args.updates {
        if !f.is_file() {
            return Err(HistoryError::Input(format!(
                "--updates {}: no such file",
                f.display()
            )));
        }
    }
    let mut files = args.updates.clone();
    files.push(state_dir.join("report.json"));
    if let Ok(entries) = std::fs::read_dir(state_dir.join("runs")) {
        let mut per_run: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path().join("report.json"))
            .filter(|p| p.is_file())
            .collect();
        per_run.sort();
        files.extend(per_run);
    }
    let mut releases = Releases::read(&files);
    // A file the operator named must be readable; found ones are best effort.
    if let Some(bad) = releases.notes.iter().find(|n| {
        args.updates
            .iter()
            .any(|u| n.contains(&u.display().to_string()))
    }) {
        return Err(HistoryError::Input(
            bad.trim_start_matches("skipped ").to_string(),
        ));
    }
    releases.notes.sort();
    let h = open(state_dir)?;
    let r = report::build(&h, p, &releases)?;
    Ok(match format {
        ReportFormat::Markdown => report::render_markdown(&r),
        ReportFormat::Html => report::render_html(&r),
        ReportFormat::Json => format!("{}\n", serde_json::to_string(&r).unwrap_or_default()),
    })
}
