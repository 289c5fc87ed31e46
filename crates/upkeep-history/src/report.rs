//! `upkeep report`: a period of history summed up — updates applied per
//! component, success rates, rollbacks and their causes, time from release
//! to applied, mean run duration, failures grouped by cause with what
//! became of them, and the components falling behind.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use upkeep_contract::{UpdateReport, Version};

use crate::db::History;
use crate::{HistoryError, Period};

mod html;
mod markdown;

pub use html::render_html;
pub use markdown::render_markdown;

/// A step as the report needs it, with its run.
#[derive(Debug, Clone)]
struct Fact {
    run_id: String,
    run_started: Timestamp,
    run_finished: Option<Timestamp>,
    kind: String,
    namespace: Option<String>,
    name: String,
    from: String,
    to: String,
    status: String,
    revert_commit: Option<String>,
    restore_point: Option<String>,
    error: Option<String>,
    applied_at: Option<Timestamp>,
}

impl Fact {
    fn key(&self) -> (String, Option<String>, String) {
        (self.kind.clone(), self.namespace.clone(), self.name.clone())
    }

    fn component(&self) -> String {
        display(self.namespace.as_deref(), &self.name)
    }

    /// When the update was in: the apply's end, else the run's end, else its start.
    fn applied(&self) -> Timestamp {
        self.applied_at
            .or(self.run_finished)
            .unwrap_or(self.run_started)
    }
}

fn display(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

#[derive(Debug, Clone)]
struct RunFact {
    started: Timestamp,
    finished: Option<Timestamp>,
    status: String,
}

/// The month (or span) in figures. Rates are fractions (0.75), times seconds or days.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// "2026-11-01 to 2026-11-30".
    pub period: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub runs: usize,
    /// Runs by their final status (`running` for one not finished).
    pub runs_by_status: BTreeMap<String, usize>,
    /// Completed runs among the finished ones.
    pub run_success_rate: Option<f64>,
    /// Steps that were carried through to an end: completed, rolled back or failed.
    pub steps_attempted: usize,
    pub steps_completed: usize,
    pub steps_rolled_back: usize,
    pub steps_failed: usize,
    /// Completed among attempted steps.
    pub step_success_rate: Option<f64>,
    pub applied: Vec<ComponentApplied>,
    pub rollbacks: Vec<Rollback>,
    pub release_to_applied: Option<ReleaseLag>,
    /// Why `releaseToApplied` is missing or partial.
    pub release_to_applied_note: Option<String>,
    pub mean_run_seconds: Option<f64>,
    /// The finished runs the mean is over.
    pub runs_timed: usize,
    pub failures: Vec<FailureGroup>,
    /// `None` when no saved UpdateReport says what the newest versions are.
    pub behind: Option<Vec<Behind>>,
    pub behind_note: Option<String>,
    /// Step outcomes per day (or per month over long spans), for the charts.
    pub timeline: Vec<Bucket>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentApplied {
    pub component: String,
    pub kind: String,
    pub count: usize,
    /// "6.0.0 → 6.1.0", in the order applied.
    pub updates: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollback {
    pub run_id: String,
    pub time: String,
    pub component: String,
    pub from: String,
    pub to: String,
    pub cause: String,
    pub revert_commit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseLag {
    pub mean_days: f64,
    pub max_days: f64,
    pub updates: Vec<Lag>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lag {
    pub component: String,
    pub version: String,
    pub released: String,
    pub applied: String,
    pub days: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureGroup {
    /// The leading clause of the error, numbers as N ("N check(s) fail since the update").
    pub cause: String,
    pub count: usize,
    pub failures: Vec<Failure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub run_id: String,
    pub time: String,
    pub component: String,
    pub from: String,
    pub to: String,
    pub status: String,
    pub error: String,
    /// What the record says became of it: rolled back (and its revert
    /// commit), the restore point, applied in a later run, or unresolved.
    pub resolution: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Behind {
    pub component: String,
    pub applied: String,
    pub newest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    /// `2026-11-03`, or `2026-11` over spans longer than two months.
    pub label: String,
    pub completed: usize,
    pub rolled_back: usize,
    pub failed: usize,
}

/// Saved UpdateReports: where release dates and the newest versions come
/// from (the RunRecord has neither).
#[derive(Debug, Clone, Default)]
pub struct Releases {
    reports: Vec<UpdateReport>,
    /// Files that were found but could not be read.
    pub notes: Vec<String>,
}

impl Releases {
    pub fn new(reports: Vec<UpdateReport>) -> Releases {
        Releases {
            reports,
            notes: Vec::new(),
        }
    }

    /// Reads each file that exists; one that does not parse is a note, not
    /// a failure (a report without release dates is still a report).
    pub fn read(paths: &[std::path::PathBuf]) -> Releases {
        let mut r = Releases::default();
        for p in paths {
            let Ok(bytes) = std::fs::read(p) else {
                continue;
            };
            match upkeep_contract::read_kind::<UpdateReport>(&bytes, &p.display().to_string()) {
                Ok(docs) => r.reports.extend(docs),
                Err(e) => r.notes.push(format!("skipped {e}")),
            }
        }
        r
    }

    /// When each version of each component was published, per the reports.
    fn dates(&self) -> BTreeMap<(String, Option<String>, String, String), Timestamp> {
        let mut out = BTreeMap::new();
        for rep in &self.reports {
            for c in &rep.components {
                let key = |v: &Version| {
                    (
                        c.component.kind.as_str().to_string(),
                        c.component.namespace.clone(),
                        c.component.name.clone(),
                        v.to_string(),
                    )
                };
                for cand in &c.candidates {
                    if let Some(p) = cand.published {
                        out.insert(key(&cand.version), p.0);
                    }
                }
                for hop in &c.path {
                    if let Some(p) = hop.published {
                        out.entry(key(&hop.to)).or_insert(p.0);
                    }
                }
            }
        }
        out
    }

    fn latest(&self) -> Option<&UpdateReport> {
        self.reports.iter().max_by_key(|r| r.generated_at)
    }
}

/// Sums up `period` of `history`.
pub fn build(
    history: &History,
    period: Period,
    releases: &Releases,
) -> Result<Report, HistoryError> {
    let (facts, runs) = load(history)?;
    Ok(summarise(&facts, &runs, period, releases))
}

fn load(history: &History) -> Result<(Vec<Fact>, BTreeMap<String, RunFact>), HistoryError> {
    let conn = history.conn();
    let ts = |s: Option<String>| s.and_then(|s| s.parse::<Timestamp>().ok());
    let mut runs = BTreeMap::new();
    {
        let mut q = conn
            .prepare("SELECT run_id, started_at, finished_at, status FROM runs")
            .map_err(|e| history.err(e))?;
        let rows = q
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(|e| history.err(e))?;
        for row in rows {
            let (id, started, finished, status) = row.map_err(|e| history.err(e))?;
            let Some(started) = ts(Some(started)) else {
                continue;
            };
            runs.insert(
                id,
                RunFact {
                    started,
                    finished: ts(finished),
                    status,
                },
            );
        }
    }
    let mut q = conn
        .prepare(
            "SELECT s.run_id, s.component_kind, s.component_namespace, s.component_name,
                    s.from_version, s.to_version, s.status, s.revert_commit,
                    s.restore_point, s.error, s.applied_at
             FROM steps s JOIN runs r ON r.run_id = s.run_id
             ORDER BY r.started_unix, r.rowid, s.idx",
        )
        .map_err(|e| history.err(e))?;
    let rows = q
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Fact {
                    run_id: r.get(0)?,
                    run_started: Timestamp::UNIX_EPOCH,
                    run_finished: None,
                    kind: r.get(1)?,
                    namespace: r.get(2)?,
                    name: r.get(3)?,
                    from: r.get(4)?,
                    to: r.get(5)?,
                    status: r.get(6)?,
                    revert_commit: r.get(7)?,
                    restore_point: r.get(8)?,
                    error: r.get(9)?,
                    applied_at: None,
                },
                r.get::<_, Option<String>>(10)?,
            ))
        })
        .map_err(|e| history.err(e))?;
    let mut facts = Vec::new();
    for row in rows {
        let (id, mut f, applied) = row.map_err(|e| history.err(e))?;
        let Some(run) = runs.get(&id) else { continue };
        f.run_started = run.started;
        f.run_finished = run.finished;
        f.applied_at = ts(applied);
        facts.push(f);
    }
    Ok((facts, runs))
}

fn ratio(n: usize, d: usize) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

fn day(t: Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string()
}

fn summarise(
    facts: &[Fact],
    runs: &BTreeMap<String, RunFact>,
    period: Period,
    releases: &Releases,
) -> Report {
    let in_period: Vec<&Fact> = facts
        .iter()
        .filter(|f| period.contains(f.run_started))
        .collect();
    let period_runs: Vec<&RunFact> = runs
        .values()
        .filter(|r| period.contains(r.started))
        .collect();

    let mut runs_by_status = BTreeMap::new();
    for r in &period_runs {
        *runs_by_status.entry(r.status.clone()).or_insert(0) += 1;
    }
    let finished = period_runs.iter().filter(|r| r.status != "running").count();
    let completed_runs = period_runs
        .iter()
        .filter(|r| r.status == "completed")
        .count();

    let count = |s: &str| in_period.iter().filter(|f| f.status == s).count();
    let (done, back, failed) = (count("completed"), count("rolled-back"), count("failed"));
    let attempted = done + back + failed;

    // Updates applied, per component, most first.
    let mut applied: BTreeMap<String, ComponentApplied> = BTreeMap::new();
    for f in in_period.iter().filter(|f| f.status == "completed") {
        let e = applied
            .entry(f.component())
            .or_insert_with(|| ComponentApplied {
                component: f.component(),
                kind: f.kind.clone(),
                count: 0,
                updates: Vec::new(),
            });
        e.count += 1;
        e.updates.push(format!("{} → {}", f.from, f.to));
    }
    let mut applied: Vec<ComponentApplied> = applied.into_values().collect();
    applied.sort_by(|a, b| b.count.cmp(&a.count).then(a.component.cmp(&b.component)));

    let rollbacks = in_period
        .iter()
        .filter(|f| f.status == "rolled-back")
        .map(|f| Rollback {
            run_id: f.run_id.clone(),
            time: f.run_started.to_string(),
            component: f.component(),
            from: f.from.clone(),
            to: f.to.clone(),
            cause: f
                .error
                .clone()
                .unwrap_or_else(|| "no cause recorded".into()),
            revert_commit: f.revert_commit.clone(),
        })
        .collect();

    // Release to applied, for the updates whose release date a saved report has.
    let dates = releases.dates();
    let mut lags = Vec::new();
    let mut undated = 0;
    for f in in_period.iter().filter(|f| f.status == "completed") {
        let key = (
            f.kind.clone(),
            f.namespace.clone(),
            f.name.clone(),
            f.to.clone(),
        );
        match dates.get(&key) {
            Some(released) => {
                let secs = f.applied().as_second() - released.as_second();
                lags.push(Lag {
                    component: f.component(),
                    version: f.to.clone(),
                    released: released.to_string(),
                    applied: f.applied().to_string(),
                    days: secs as f64 / 86_400.0,
                });
            }
            None => undated += 1,
        }
    }
    let release_to_applied_note = match (lags.is_empty(), undated) {
        (_, 0) => None,
        (true, _) if releases.reports.is_empty() => Some(
            "left out: release dates are not in the run records, and no saved UpdateReport (upkeep scan --save <stateDir>/report.json) gives them".to_string(),
        ),
        (true, n) => Some(format!(
            "left out: no saved UpdateReport gives the release date of the {n} update(s) applied"
        )),
        (false, n) => Some(format!(
            "{n} applied update(s) left out: no saved UpdateReport gives their release date"
        )),
    };
    let release_to_applied = (!lags.is_empty()).then(|| ReleaseLag {
        mean_days: lags.iter().map(|l| l.days).sum::<f64>() / lags.len() as f64,
        max_days: lags.iter().map(|l| l.days).fold(f64::MIN, f64::max),
        updates: lags,
    });

    let timed: Vec<i64> = period_runs
        .iter()
        .filter_map(|r| Some(r.finished?.as_second() - r.started.as_second()))
        .collect();
    let mean_run_seconds =
        (!timed.is_empty()).then(|| timed.iter().sum::<i64>() as f64 / timed.len() as f64);

    let failures = group_failures(facts, &in_period);
    let (behind, behind_note) = falling_behind(facts, period, releases);

    let mut notes = releases.notes.clone();
    let unfinished = period_runs.len() - finished;
    if unfinished > 0 {
        notes.push(format!(
            "{unfinished} run(s) still running or stopped without an end (upkeep resume): not in the success rate"
        ));
    }

    Report {
        period: period.describe(),
        since: period.since.map(|t| t.to_string()),
        until: period.until.map(|t| t.to_string()),
        runs: period_runs.len(),
        runs_by_status,
        run_success_rate: ratio(completed_runs, finished),
        steps_attempted: attempted,
        steps_completed: done,
        steps_rolled_back: back,
        steps_failed: failed,
        step_success_rate: ratio(done, attempted),
        applied,
        rollbacks,
        release_to_applied,
        release_to_applied_note,
        mean_run_seconds,
        runs_timed: timed.len(),
        failures,
        behind,
        behind_note,
        timeline: timeline(&in_period, period),
        notes,
    }
}

/// The leading clause of an error, with numbers as N, so that "2 checks
/// fail" and "3 checks fail" are one cause.
pub fn cause_of(error: Option<&str>) -> String {
    let Some(e) = error.map(str::trim).filter(|e| !e.is_empty()) else {
        return "no cause recorded".to_string();
    };
    let head = e.split("; ").next().unwrap_or(e);
    let head = head.split(": ").next().unwrap_or(head).trim();
    let mut out = String::new();
    let mut in_number = false;
    for ch in head.chars() {
        if ch.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(ch);
        }
    }
    if out.chars().count() > 100 {
        out = out.chars().take(99).collect::<String>() + "…";
    }
    out
}

fn group_failures(all: &[Fact], in_period: &[&Fact]) -> Vec<FailureGroup> {
    let mut groups: BTreeMap<String, Vec<Failure>> = BTreeMap::new();
    for f in in_period
        .iter()
        .filter(|f| f.status == "failed" || f.status == "rolled-back")
    {
        groups
            .entry(cause_of(f.error.as_deref()))
            .or_default()
            .push(Failure {
                run_id: f.run_id.clone(),
                time: f.run_started.to_string(),
                component: f.component(),
                from: f.from.clone(),
                to: f.to.clone(),
                status: f.status.clone(),
                error: f.error.clone().unwrap_or_default(),
                resolution: resolution(all, f),
            });
    }
    let mut out: Vec<FailureGroup> = groups
        .into_iter()
        .map(|(cause, failures)| FailureGroup {
            cause,
            count: failures.len(),
            failures,
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.cause.cmp(&b.cause)));
    out
}

fn at_least(v: &str, target: &str) -> bool {
    match (Version::parse(v), Version::parse(target)) {
        (Ok(a), Ok(b)) => a >= b,
        _ => v == target,
    }
}

/// What the record says became of a failed step: its own end, then what
/// the later runs did with the same component.
fn resolution(all: &[Fact], f: &Fact) -> String {
    let mut parts = Vec::new();
    match f.status.as_str() {
        "rolled-back" => parts.push(match &f.revert_commit {
            Some(c) => format!("rolled back (revert {})", short(c)),
            None => "rolled back".to_string(),
        }),
        _ => match &f.restore_point {
            Some(p) => parts.push(format!("not rolled back; restore point {p}")),
            None => parts.push("not rolled back".to_string()),
        },
    }
    let later = all
        .iter()
        .filter(|g| g.key() == f.key() && g.run_started > f.run_started);
    let mut retried = Vec::new();
    let mut fixed = None;
    for g in later {
        if g.status == "completed" && at_least(&g.to, &f.to) {
            fixed = Some(g);
            break;
        }
        if g.status == "failed" || g.status == "rolled-back" {
            retried.push(g);
        }
    }
    if !retried.is_empty() {
        parts.push(format!(
            "failed again in {}",
            retried
                .iter()
                .map(|g| format!("run {}", g.run_id))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    match fixed {
        Some(g) => parts.push(format!(
            "{} applied in run {} on {}",
            g.to,
            g.run_id,
            day(g.applied())
        )),
        None => parts.push("not applied since".to_string()),
    }
    parts.join("; ")
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Components whose last applied version (up to the period's end) is older
/// than the newest the latest saved UpdateReport knows.
fn falling_behind(
    facts: &[Fact],
    period: Period,
    releases: &Releases,
) -> (Option<Vec<Behind>>, Option<String>) {
    let Some(latest) = releases.latest() else {
        return (
            None,
            Some("unknown: no saved UpdateReport (upkeep scan --save <stateDir>/report.json) says which versions are newest".to_string()),
        );
    };
    let mut last: BTreeMap<(String, Option<String>, String), &Fact> = BTreeMap::new();
    for f in facts
        .iter()
        .filter(|f| f.status == "completed")
        .filter(|f| period.until.is_none_or(|u| f.run_started < u))
    {
        last.insert(f.key(), f);
    }
    let mut out = Vec::new();
    for c in &latest.components {
        let Some(newest) = &c.latest else { continue };
        let key = (
            c.component.kind.as_str().to_string(),
            c.component.namespace.clone(),
            c.component.name.clone(),
        );
        let Some(f) = last.get(&key) else { continue };
        if !at_least(&f.to, &newest.to_string()) {
            out.push(Behind {
                component: f.component(),
                applied: f.to.clone(),
                newest: newest.to_string(),
            });
        }
    }
    out.sort_by(|a, b| a.component.cmp(&b.component));
    (
        Some(out),
        Some(format!(
            "against the UpdateReport of {}",
            latest.generated_at
        )),
    )
}

/// Step outcomes per day over spans up to 62 days, per month beyond.
fn timeline(facts: &[&Fact], period: Period) -> Vec<Bucket> {
    let first = period
        .since
        .or_else(|| facts.iter().map(|f| f.run_started).min());
    let last = period
        .until
        .map(|u| u - jiff::SignedDuration::from_secs(1))
        .or_else(|| facts.iter().map(|f| f.run_started).max());
    let (Some(first), Some(last)) = (first, last) else {
        return Vec::new();
    };
    let utc = jiff::tz::TimeZone::UTC;
    let (d0, d1) = (
        first.to_zoned(utc.clone()).date(),
        last.to_zoned(utc.clone()).date(),
    );
    let monthly = (d1 - d0).get_days() > 62;
    let label = |d: jiff::civil::Date| {
        if monthly {
            format!("{:04}-{:02}", d.year(), d.month())
        } else {
            d.to_string()
        }
    };
    let mut buckets: Vec<Bucket> = Vec::new();
    let mut d = d0;
    while d <= d1 {
        let l = label(d);
        if buckets.last().is_none_or(|b| b.label != l) {
            buckets.push(Bucket {
                label: l,
                completed: 0,
                rolled_back: 0,
                failed: 0,
            });
        }
        match d.tomorrow() {
            Ok(n) => d = n,
            Err(_) => break,
        }
    }
    for f in facts {
        let l = label(f.run_started.to_zoned(utc.clone()).date());
        if let Some(b) = buckets.iter_mut().find(|b| b.label == l) {
            match f.status.as_str() {
                "completed" => b.completed += 1,
                "rolled-back" => b.rolled_back += 1,
                "failed" => b.failed += 1,
                _ => {}
            }
        }
    }
    buckets
}

/// "1h 02m", "3m 20s", "45s".
pub fn human_duration(secs: f64) -> String {
    let s = secs.round() as i64;
    match s {
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// "75.0%".
pub fn percent(r: f64) -> String {
    format!("{:.1}%", r * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(run: &str, started: &str, name: &str, to: &str, status: &str) -> Fact {
        Fact {
            run_id: run.into(),
            run_started: started.parse().unwrap(),
            run_finished: None,
            kind: "chart".into(),
            namespace: Some("apps".into()),
            name: name.into(),
            from: "1.0.0".into(),
            to: to.into(),
            status: status.into(),
            revert_commit: None,
            restore_point: None,
            error: None,
            applied_at: None,
        }
    }

    #[test]
    fn causes_group_by_their_leading_clause_with_numbers_as_n() {
        assert_eq!(
            cause_of(Some(
                "2 check(s) fail since the update: apps: podinfo not ready"
            )),
            "N check(s) fail since the update"
        );
        assert_eq!(
            cause_of(Some("13 check(s) fail since the update: x")),
            "N check(s) fail since the update"
        );
        assert_eq!(
            cause_of(Some("the update did not go in: git push: rejected")),
            "the update did not go in"
        );
        assert_eq!(
            cause_of(Some(
                "a one-way update cannot be reverted; the way back is: x"
            )),
            "a one-way update cannot be reverted"
        );
        assert_eq!(cause_of(None), "no cause recorded");
        assert_eq!(cause_of(Some("  ")), "no cause recorded");
    }

    #[test]
    fn rates_and_means_are_exact_fractions_of_the_period() {
        let mut a = fact(
            "r1",
            "2026-11-02T02:00:00Z",
            "podinfo",
            "1.1.0",
            "completed",
        );
        a.run_finished = Some("2026-11-02T02:10:00Z".parse().unwrap());
        let b = fact(
            "r2",
            "2026-11-03T02:00:00Z",
            "podinfo",
            "1.2.0",
            "rolled-back",
        );
        let c = fact("r3", "2026-11-04T02:00:00Z", "redis", "2.0.0", "failed");
        let d = fact("r3", "2026-11-04T02:00:00Z", "redis", "2.0.0", "skipped");
        let outside = fact(
            "r0",
            "2026-10-30T02:00:00Z",
            "podinfo",
            "1.0.5",
            "completed",
        );
        let facts = vec![outside, a, b, c, d];
        let mut runs = BTreeMap::new();
        for (id, s, f, st) in [
            ("r0", "2026-10-30T02:00:00Z", None, "completed"),
            (
                "r1",
                "2026-11-02T02:00:00Z",
                Some("2026-11-02T02:10:00Z"),
                "completed",
            ),
            (
                "r2",
                "2026-11-03T02:00:00Z",
                Some("2026-11-03T02:30:00Z"),
                "rolled-back",
            ),
            ("r3", "2026-11-04T02:00:00Z", None, "running"),
        ] {
            runs.insert(
                id.to_string(),
                RunFact {
                    started: s.parse().unwrap(),
                    finished: f.map(|f: &str| f.parse().unwrap()),
                    status: st.into(),
                },
            );
        }
        let p = crate::parse_month("2026-11").unwrap();
        let r = summarise(&facts, &runs, p, &Releases::default());
        assert_eq!(r.runs, 3);
        assert_eq!(r.run_success_rate, Some(0.5));
        assert_eq!(r.steps_attempted, 3);
        assert_eq!(r.step_success_rate, Some(1.0 / 3.0));
        assert_eq!(r.mean_run_seconds, Some(1200.0));
        assert_eq!(r.runs_timed, 2);
        assert_eq!(r.timeline.len(), 30);
        assert_eq!(r.timeline[1].completed, 1);
        assert_eq!(r.timeline[2].rolled_back, 1);
        assert_eq!(r.timeline[3].failed, 1);
        assert!(r.release_to_applied.is_none());
        assert!(r.release_to_applied_note.unwrap().contains("left out"));
        assert!(r.behind.is_none());
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    }

    #[test]
    fn a_failure_is_resolved_by_a_later_run_that_applies_that_version_or_newer() {
        let f = fact(
            "r1",
            "2026-11-02T02:00:00Z",
            "podinfo",
            "1.2.0",
            "rolled-back",
        );
        let again = fact("r2", "2026-11-03T02:00:00Z", "podinfo", "1.2.0", "failed");
        let newer = fact(
            "r3",
            "2026-11-05T02:00:00Z",
            "podinfo",
            "1.3.0",
            "completed",
        );
        let other = fact("r3", "2026-11-05T02:00:00Z", "redis", "9.0.0", "completed");
        let all = vec![f.clone(), again.clone(), newer, other];
        assert_eq!(
            resolution(&all, &f),
            "rolled back; failed again in run r2; 1.3.0 applied in run r3 on 2026-11-05"
        );
        assert_eq!(
            resolution(&all[..2], &again),
            "not rolled back; not applied since"
        );
    }

    #[test]
    fn durations_and_percentages_read_well() {
        assert_eq!(human_duration(45.4), "45s");
        assert_eq!(human_duration(200.0), "3m 20s");
        assert_eq!(human_duration(3720.0), "1h 02m");
        assert_eq!(percent(0.75), "75.0%");
        assert_eq!(percent(1.0 / 3.0), "33.3%");
    }
}
