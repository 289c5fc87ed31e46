//! Prometheus metrics in the classic text exposition format (what
//! node_exporter's textfile collector and the Pushgateway read; not
//! OpenMetrics), built from an `UpdateReport` and the latest `RunRecord`s.
//!
//! Every metric is named `upkeep_*`; the dashboard and the alerting rules
//! under `deploy/monitoring/` use only these names.

use std::collections::BTreeMap;
use std::fmt::Write;

use upkeep_contract::{RunRecord, RunStatus, StepStatus, UpdateReport};

/// Escapes a label value as the text format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family {
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, f64)>,
}

/// The metric families in a stable order, so that files diff cleanly.
#[derive(Default)]
pub struct Metrics {
    families: BTreeMap<&'static str, Family>,
}

impl Metrics {
    fn add(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let labels = if labels.is_empty() {
            String::new()
        } else {
            let inner: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        };
        self.families
            .entry(name)
            .or_insert_with(|| Family {
                help,
                kind,
                samples: Vec::new(),
            })
            .samples
            .push((labels, value));
    }

    /// Updates on offer, from a merged report.
    pub fn from_report(&mut self, r: &UpdateReport) {
        for c in &r.components {
            let comp = c.component.to_string();
            let kind = c.component.kind.as_str();
            let mut by_type: BTreeMap<&str, u32> = BTreeMap::new();
            for cand in &c.candidates {
                *by_type.entry(cand.update.as_str()).or_default() += 1;
            }
            for t in ["patch", "minor", "major"] {
                self.add(
                    "upkeep_updates_available",
                    "Newer versions on offer, by component and update type.",
                    "gauge",
                    &[("component", &comp), ("kind", kind), ("type", t)],
                    f64::from(by_type.get(t).copied().unwrap_or(0)),
                );
            }
            self.add(
                "upkeep_security_updates_pending",
                "1 when a newer version of the component fixes a security issue.",
                "gauge",
                &[("component", &comp), ("kind", kind)],
                if c.has_security() { 1.0 } else { 0.0 },
            );
            self.add(
                "upkeep_detection_errors",
                "Errors the detector met for the component (unreachable upstream, unreadable object).",
                "gauge",
                &[("component", &comp), ("kind", kind)],
                c.errors.len() as f64,
            );
        }
        self.add(
            "upkeep_report_timestamp_seconds",
            "When the update report was generated.",
            "gauge",
            &[],
            r.generated_at.0.as_second() as f64,
        );
    }

    /// Run outcomes, from the run records (any order).
    pub fn from_runs(&mut self, runs: &[RunRecord]) {
        let last_ok = runs
            .iter()
            .filter(|r| r.status == RunStatus::Completed)
            .filter_map(|r| r.finished_at)
            .max();
        if let Some(t) = last_ok {
            self.add(
                "upkeep_last_successful_run_timestamp_seconds",
                "When the last run that completed finished.",
                "gauge",
                &[],
                t.0.as_second() as f64,
            );
        }
        let mut by_status: BTreeMap<&str, u32> = BTreeMap::new();
        let mut rollbacks = 0u32;
        for r in runs {
            let s = match r.status {
                RunStatus::Running => "running",
                RunStatus::Completed => "completed",
                RunStatus::Failed => "failed",
                RunStatus::RolledBack => "rolled-back",
                RunStatus::Aborted => "aborted",
            };
            *by_status.entry(s).or_default() += 1;
            rollbacks += r
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::RolledBack)
                .count() as u32;
            if let Some(end) = r.finished_at {
                self.add(
                    "upkeep_run_duration_seconds",
                    "How long each recorded run took.",
                    "gauge",
                    &[("run", &r.run_id)],
                    (end.0.as_second() - r.started_at.0.as_second()).max(0) as f64,
                );
            }
        }
        for s in ["completed", "failed", "rolled-back", "aborted", "running"] {
            self.add(
                "upkeep_runs_total",
                "Runs recorded, by final status.",
                "counter",
                &[("status", s)],
                f64::from(by_status.get(s).copied().unwrap_or(0)),
            );
        }
        self.add(
            "upkeep_rollbacks_total",
            "Steps rolled back.",
            "counter",
            &[],
            f64::from(rollbacks),
        );
    }

    /// The text exposition format, ending in a newline.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, f) in &self.families {
            let _ = writeln!(out, "# HELP {name} {}", f.help);
            let _ = writeln!(out, "# TYPE {name} {}", f.kind);
            for (labels, v) in &f.samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_contract::{ComponentUpdates, Timestamp, read_kind};

    fn report() -> UpdateReport {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/reports/sample-updates.jsonl"
        );
        let docs: Vec<ComponentUpdates> = read_kind(&std::fs::read(p).unwrap(), "sample").unwrap();
        upkeep_report::merge(docs, Timestamp::parse("2026-11-28T04:00:00Z").unwrap())
    }

    #[test]
    fn report_metrics_in_text_format() {
        let mut m = Metrics::default();
        m.from_report(&report());
        let text = m.render();
        assert!(text.contains("# TYPE upkeep_updates_available gauge\n"));
        assert!(
            text.contains(
                "upkeep_updates_available{component=\"k3s\",kind=\"k3s\",type=\"minor\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "upkeep_updates_available{component=\"k3s\",kind=\"k3s\",type=\"patch\"} 1\n"
        ));
        assert!(text.contains("upkeep_security_updates_pending{component=\"networking/ingress-nginx\",kind=\"chart\"} 1\n"));
        assert!(text.contains(
            "upkeep_detection_errors{component=\"monitoring/grafana\",kind=\"chart\"} 1\n"
        ));
        assert!(
            text.contains("upkeep_report_timestamp_seconds 1795838400\n"),
            "{text}"
        );
        // Each family has exactly one HELP and one TYPE line.
        assert_eq!(text.matches("# HELP upkeep_updates_available ").count(), 1);
        assert_eq!(text.matches("upkeep_security_updates_pending{").count(), 8);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
