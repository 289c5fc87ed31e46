//! `upkeep history`: one row per step, through filters, as text, JSON lines
//! or CSV.

use rusqlite::types::Value;
use serde::Serialize;

use upkeep_contract::StepStatus;

use crate::db::History;
use crate::{HistoryError, Period};

/// What `upkeep history` keeps. Every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A component's name or `namespace/name` (exact, case-insensitive).
    pub component: Option<String>,
    /// A step status (`completed`, `rolled-back`, `failed`...).
    pub status: Option<String>,
    /// When the run started.
    pub period: Period,
    /// Text anywhere in the row (case-insensitive).
    pub grep: Option<String>,
}

impl Filter {
    /// Refuses a status no step can have, so a typo is not an empty list.
    pub fn validate(&self) -> Result<(), HistoryError> {
        if let Some(s) = &self.status
            && !StepStatus::ALL.iter().any(|x| x.as_str() == s)
        {
            return Err(HistoryError::Input(format!(
                "--status {s:?}: not a step status (one of {})",
                StepStatus::ALL
                    .iter()
                    .map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    }
}

/// One step of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub run_id: String,
    /// When the run started (RFC 3339, UTC).
    pub time: String,
    pub actor: String,
    pub run_status: String,
    pub step: i64,
    pub component_kind: String,
    /// `namespace/name`, or the name of a cluster-wide component.
    pub component: String,
    pub from: String,
    pub to: String,
    pub status: String,
    pub commit: Option<String>,
    pub revert_commit: Option<String>,
    pub restore_point: Option<String>,
    pub emergency_reason: Option<String>,
    pub errors: Option<String>,
}

impl Row {
    fn fields(&self) -> [String; 14] {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        [
            self.run_id.clone(),
            self.time.clone(),
            self.actor.clone(),
            self.component.clone(),
            self.from.clone(),
            self.to.clone(),
            self.status.clone(),
            self.run_status.clone(),
            o(&self.commit),
            o(&self.revert_commit),
            o(&self.restore_point),
            o(&self.emergency_reason),
            o(&self.errors),
            self.step.to_string(),
        ]
    }
}

const HEADER: [&str; 14] = [
    "run",
    "time",
    "actor",
    "component",
    "from",
    "to",
    "status",
    "run status",
    "commit",
    "revert commit",
    "restore point",
    "emergency reason",
    "errors",
    "step",
];

/// The steps that pass `filter`, oldest run first.
pub fn list(history: &History, filter: &Filter) -> Result<Vec<Row>, HistoryError> {
    filter.validate()?;
    let mut sql = String::from(
        "SELECT r.run_id, r.started_at, r.actor, r.status, s.idx, s.component_kind,
                s.component_namespace, s.component_name, s.from_version, s.to_version,
                s.status, s.commit_after, s.revert_commit, s.restore_point,
                r.emergency_reason, s.error, r.errors
         FROM steps s JOIN runs r ON r.run_id = s.run_id WHERE 1=1",
    );
    let mut args: Vec<Value> = Vec::new();
    if let Some(c) = &filter.component {
        args.push(Value::Text(c.clone()));
        let n = args.len();
        sql.push_str(&format!(
            " AND (s.component_name = ?{n} COLLATE NOCASE
                   OR (coalesce(s.component_namespace, '') || '/' || s.component_name) = ?{n} COLLATE NOCASE)"
        ));
    }
    if let Some(st) = &filter.status {
        args.push(Value::Text(st.clone()));
        sql.push_str(&format!(" AND s.status = ?{}", args.len()));
    }
    if let Some(t) = filter.period.since {
        args.push(Value::Integer(t.as_second()));
        sql.push_str(&format!(" AND r.started_unix >= ?{}", args.len()));
    }
    if let Some(t) = filter.period.until {
        args.push(Value::Integer(t.as_second()));
        sql.push_str(&format!(" AND r.started_unix < ?{}", args.len()));
    }
    // Run ids and start times have one-second resolution; two runs in the same
    // second keep the order they were first recorded in (the row id).
    sql.push_str(" ORDER BY r.started_unix, r.rowid, s.idx");
    let conn = history.conn();
    let mut q = conn.prepare(&sql).map_err(|e| history.err(e))?;
    let rows = q
        .query_map(rusqlite::params_from_iter(args), |r| {
            let ns: Option<String> = r.get(6)?;
            let name: String = r.get(7)?;
            let step_error: Option<String> = r.get(15)?;
            let run_errors: String = r.get(16)?;
            Ok(Row {
                run_id: r.get(0)?,
                time: r.get(1)?,
                actor: r.get(2)?,
                run_status: r.get(3)?,
                step: r.get(4)?,
                component_kind: r.get(5)?,
                component: match ns {
                    Some(ns) => format!("{ns}/{name}"),
                    None => name,
                },
                from: r.get(8)?,
                to: r.get(9)?,
                status: r.get(10)?,
                commit: r.get(11)?,
                revert_commit: r.get(12)?,
                restore_point: r.get(13)?,
                emergency_reason: r.get(14)?,
                errors: join_errors(step_error, &run_errors),
            })
        })
        .map_err(|e| history.err(e))?;
    let mut out = Vec::new();
    let needle = filter.grep.as_ref().map(|g| g.to_lowercase());
    for row in rows {
        let row = row.map_err(|e| history.err(e))?;
        if let Some(n) = &needle
            && !row.fields().iter().any(|f| f.to_lowercase().contains(n))
        {
            continue;
        }
        out.push(row);
    }
    Ok(out)
}

/// The step's own error, then the run's errors (what stopped the run as a
/// whole, e.g. the cluster going away), on one line.
fn join_errors(step: Option<String>, run_errors: &str) -> Option<String> {
    let mut all: Vec<String> = step.into_iter().collect();
    if let Ok(serde_json::Value::Array(errs)) = serde_json::from_str(run_errors) {
        for e in errs {
            if let Some(m) = e["message"].as_str() {
                all.push(format!("run: {m}"));
            }
        }
    }
    (!all.is_empty()).then(|| all.join("; "))
}

/// Aligned columns for a terminal; the long columns (restore point,
/// errors) last so the short ones line up.
pub fn render_text(rows: &[Row]) -> String {
    if rows.is_empty() {
        return "no steps recorded match\n".to_string();
    }
    let cols: [&str; 11] = [
        "run",
        "time",
        "actor",
        "component",
        "from",
        "to",
        "status",
        "commit",
        "emergency",
        "restore point",
        "errors",
    ];
    let cells: Vec<[String; 11]> = rows
        .iter()
        .map(|r| {
            let o = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            let commit = match (&r.commit, &r.revert_commit) {
                (Some(c), Some(rv)) => format!("{} (reverted {})", short(c), short(rv)),
                (Some(c), None) => short(c).to_string(),
                (None, _) => "-".into(),
            };
            [
                r.run_id.clone(),
                r.time.clone(),
                r.actor.clone(),
                r.component.clone(),
                r.from.clone(),
                r.to.clone(),
                r.status.clone(),
                commit,
                o(&r.emergency_reason),
                o(&r.restore_point),
                o(&r.errors),
            ]
        })
        .collect();
    let mut width = cols.map(str::len);
    for c in &cells {
        for (w, v) in width.iter_mut().zip(c.iter()) {
            *w = (*w).max(v.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, vals: &[&str]| {
        let last = vals.len() - 1;
        for (i, v) in vals.iter().enumerate() {
            if i == last {
                out.push_str(v);
            } else {
                out.push_str(v);
                out.push_str(&" ".repeat(width[i] - v.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    line(&mut out, &cols);
    for c in &cells {
        let v: Vec<&str> = c.iter().map(String::as_str).collect();
        line(&mut out, &v);
    }
    out
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// One JSON object per line.
pub fn render_json(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(&serde_json::to_string(r).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// RFC 4180: a header, CRLF line ends, fields quoted when they hold a
/// comma, a quote or a line break, quotes doubled.
pub fn render_csv(rows: &[Row]) -> String {
    let mut out = String::new();
    let line = |out: &mut String, fields: &[String]| {
        let cells: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    };
    line(&mut out, &HEADER.map(String::from));
    for r in rows {
        line(&mut out, &r.fields());
    }
    out
}

pub fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_what_needs_it_and_doubles_quotes() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field(""), "");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("cr\rhere"), "\"cr\rhere\"");
        assert_eq!(csv_field("it's; fine"), "it's; fine");
    }

    #[test]
    fn csv_rows_end_in_crlf_and_keep_the_column_count() {
        let row = Row {
            run_id: "r1".into(),
            time: "2026-11-01T02:00:00Z".into(),
            actor: "alice".into(),
            run_status: "failed".into(),
            step: 0,
            component_kind: "chart".into(),
            component: "apps/podinfo".into(),
            from: "6.0.0".into(),
            to: "6.1.0".into(),
            status: "failed".into(),
            commit: None,
            revert_commit: None,
            restore_point: Some("/var/backups/x.tar.zst".into()),
            emergency_reason: Some("CVE, \"urgent\"".into()),
            errors: Some("line one\nline two".into()),
        };
        let csv = render_csv(&[row]);
        assert!(csv.starts_with("run,time,actor,component,"));
        assert!(csv.ends_with("\r\n"));
        assert_eq!(csv.matches("\r\n").count(), 2);
        assert!(csv.contains(",\"CVE, \"\"urgent\"\"\","), "{csv}");
        assert!(csv.contains(",\"line one\nline two\","), "{csv}");
    }

    #[test]
    fn run_errors_follow_the_steps_own() {
        assert_eq!(
            join_errors(
                Some("2 check(s) fail".into()),
                r#"[{"source":"cluster","message":"gone"}]"#
            )
            .as_deref(),
            Some("2 check(s) fail; run: gone")
        );
        assert_eq!(join_errors(None, "[]"), None);
    }
}
