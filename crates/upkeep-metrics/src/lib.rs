//! Prometheus metrics in the classic text exposition format (what
//! node_exporter's textfile collector and the Pushgateway read; not
//! OpenMetrics), built from an `UpdateReport` and the runs in the state
//! directory.
//!
//! Every metric is named `upkeep_*` and declared once in [`DEFS`]; the
//! dashboard and the alerting rules under `deploy/monitoring/` use only
//! these names, which a test checks through [`series_names`].
//!
//! Run metrics are recomputed from every recorded run each time, so the
//! counters only go down when run folders are deleted, and a textfile or a
//! push written after any run says the same thing.

pub mod cli;
mod export;
mod push;
mod state;

use std::collections::BTreeMap;
use std::fmt::Write;

use upkeep_contract::{ComponentKind, RunStatus, StepStatus, UpdateReport};

pub use export::{
    Exporter, MetricsError, Targets, check_textfile, default_report_path, save_report,
};
pub use push::{DEFAULT_JOB, DEFAULT_TIMEOUT, Pushgateway};
pub use state::{RunData, StepData, load_runs, read_report};

/// The kind of a metric family, as the `# TYPE` line says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Gauge,
    Counter,
    Histogram,
}

impl MetricType {
    fn as_str(self) -> &'static str {
        match self {
            MetricType::Gauge => "gauge",
            MetricType::Counter => "counter",
            MetricType::Histogram => "histogram",
        }
    }
}

/// One metric family upkeep exports.
#[derive(Debug)]
pub struct Def {
    pub name: &'static str,
    pub kind: MetricType,
    pub help: &'static str,
}

macro_rules! defs {
    ($($id:ident = $name:literal, $kind:ident, $help:literal;)*) => {
        $(const $id: &Def = &Def { name: $name, kind: MetricType::$kind, help: $help };)*
        /// Every metric family upkeep exports.
        pub const DEFS: &[&Def] = &[$($id),*];
    };
}

defs! {
    UPDATES_AVAILABLE = "upkeep_updates_available", Gauge,
        "Newer versions on offer, by component and update type (patch, minor, major).";
    SECURITY_PENDING = "upkeep_security_updates_pending", Gauge,
        "1 when a newer version of the component fixes a security issue.";
    SECURITY_PUBLISHED = "upkeep_security_update_published_timestamp_seconds", Gauge,
        "When the oldest pending security fix of the component was published.";
    COMPONENT_INFO = "upkeep_component_info", Gauge,
        "Always 1: the component's current and latest versions as labels.";
    DETECTION_ERRORS = "upkeep_detection_errors", Gauge,
        "Errors the detector met for the component (unreachable upstream, unreadable object).";
    REPORT_TIMESTAMP = "upkeep_report_timestamp_seconds", Gauge,
        "When the update report was generated.";
    RUNS = "upkeep_runs_total", Counter,
        "Runs recorded, by status.";
    EMERGENCY_RUNS = "upkeep_emergency_runs_total", Counter,
        "Runs started outside the maintenance windows with --emergency.";
    ROLLBACKS = "upkeep_rollbacks_total", Counter,
        "Update steps rolled back.";
    VALIDATION_FAILURES = "upkeep_validation_failures_total", Counter,
        "Validations after an update step that found regressions, by validator.";
    RUN_DURATION = "upkeep_run_duration_seconds", Histogram,
        "How long finished runs took.";
    STEP_DURATION = "upkeep_step_duration_seconds", Histogram,
        "How long finished update steps took (restore point, validators, update, rollback), by component kind.";
    FIRST_RUN = "upkeep_first_run_timestamp_seconds", Gauge,
        "When the oldest recorded run started.";
    LAST_SUCCESS = "upkeep_last_successful_run_timestamp_seconds", Gauge,
        "When the last run that completed finished.";
    LAST_RUN = "upkeep_last_run_timestamp_seconds", Gauge,
        "When the newest run started.";
    LAST_RUN_STATUS = "upkeep_last_run_status", Gauge,
        "1 for the newest run's status, 0 for the others.";
    LAST_RUN_DURATION = "upkeep_last_run_duration_seconds", Gauge,
        "How long the newest run took, once it finished.";
    LAST_RUN_STEPS = "upkeep_last_run_steps", Gauge,
        "The newest run's steps, by status.";
    LAST_RUN_STEP_DURATION = "upkeep_last_run_step_duration_seconds", Gauge,
        "How long each finished step of the newest run took.";
}

/// Bucket bounds: a run is minutes to hours, a step seconds to an hour.
const RUN_BUCKETS: &[f64] = &[60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0];
const STEP_BUCKETS: &[f64] = &[30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0];

/// The validators a run can use; each gets a (possibly zero) failure counter
/// so that a rate over it exists before the first failure.
const VALIDATORS: &[&str] = &["flux", "apps", "storage", "net"];

/// Every series name a query can use: the families of [`DEFS`], and a
/// histogram's `_bucket`, `_sum` and `_count`.
pub fn series_names() -> Vec<String> {
    let mut names = Vec::new();
    for d in DEFS {
        match d.kind {
            MetricType::Histogram => {
                for s in ["_bucket", "_sum", "_count"] {
                    names.push(format!("{}{s}", d.name));
                }
            }
            _ => names.push(d.name.to_string()),
        }
    }
    names
}

/// Escapes a label value as the text format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// `+Inf` as Prometheus spells it; whole numbers without a fraction.
fn number(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".to_string()
    } else {
        format!("{v}")
    }
}

fn kind_name(k: ComponentKind) -> &'static str {
    k.as_str()
}

#[derive(Debug)]
struct Family {
    def: &'static Def,
    /// (series name, rendered labels, value), in the order added.
    samples: Vec<(String, String, f64)>,
}

/// The metric families in a stable order, so that files diff cleanly.
#[derive(Debug, Default)]
pub struct Metrics {
    families: BTreeMap<&'static str, Family>,
}

impl Metrics {
    fn family(&mut self, def: &'static Def) -> &mut Family {
        self.families.entry(def.name).or_insert_with(|| Family {
            def,
            samples: Vec::new(),
        })
    }

    fn add(&mut self, def: &'static Def, pairs: &[(&str, &str)], value: f64) {
        self.family(def)
            .samples
            .push((def.name.to_string(), labels(pairs), value));
    }

    /// One histogram series: cumulative buckets, `+Inf`, sum and count.
    fn histogram(
        &mut self,
        def: &'static Def,
        pairs: &[(&str, &str)],
        values: &[f64],
        bounds: &[f64],
    ) {
        let fam = self.family(def);
        for &b in bounds.iter().chain(std::iter::once(&f64::INFINITY)) {
            let le = number(b);
            let mut with_le: Vec<(&str, &str)> = pairs.to_vec();
            with_le.push(("le", &le));
            let n = values.iter().filter(|&&v| v <= b).count();
            fam.samples
                .push((format!("{}_bucket", def.name), labels(&with_le), n as f64));
        }
        fam.samples.push((
            format!("{}_sum", def.name),
            labels(pairs),
            values.iter().sum(),
        ));
        fam.samples.push((
            format!("{}_count", def.name),
            labels(pairs),
            values.len() as f64,
        ));
    }

    /// Updates on offer, from a merged report.
    pub fn from_report(&mut self, r: &UpdateReport) {
        for c in &r.components {
            let comp = c.component.to_string();
            let kind = kind_name(c.component.kind);
            let mut by_type: BTreeMap<&str, u32> = BTreeMap::new();
            for cand in &c.candidates {
                *by_type.entry(cand.update.as_str()).or_default() += 1;
            }
            for t in ["patch", "minor", "major"] {
                self.add(
                    UPDATES_AVAILABLE,
                    &[("component", &comp), ("kind", kind), ("type", t)],
                    f64::from(by_type.get(t).copied().unwrap_or(0)),
                );
            }
            let security = c.has_security();
            self.add(
                SECURITY_PENDING,
                &[("component", &comp), ("kind", kind)],
                if security { 1.0 } else { 0.0 },
            );
            // How long the cluster has been exposed: since the oldest fix it
            // has not taken was published. Without a publish date the alert
            // has nothing to count from, so no sample.
            let oldest_fix = c
                .candidates
                .iter()
                .filter(|cand| {
                    cand.security
                        .as_ref()
                        .is_some_and(|s| !s.ids.is_empty() || s.summary.is_some())
                })
                .filter_map(|cand| cand.published)
                .min();
            if let (true, Some(t)) = (security, oldest_fix) {
                self.add(
                    SECURITY_PUBLISHED,
                    &[("component", &comp), ("kind", kind)],
                    t.0.as_second() as f64,
                );
            }
            let current = c
                .current
                .as_ref()
                .map(|v| v.version.to_string())
                .unwrap_or_default();
            let latest = c.latest.as_ref().map(|v| v.to_string()).unwrap_or_default();
            self.add(
                COMPONENT_INFO,
                &[
                    ("component", &comp),
                    ("kind", kind),
                    ("current", &current),
                    ("latest", &latest),
                ],
                1.0,
            );
            self.add(
                DETECTION_ERRORS,
                &[("component", &comp), ("kind", kind)],
                c.errors.len() as f64,
            );
        }
        self.add(REPORT_TIMESTAMP, &[], r.generated_at.0.as_second() as f64);
    }

    /// Run outcomes, from the recorded runs (any order).
    pub fn from_runs(&mut self, runs: &[RunData]) {
        let mut by_status: BTreeMap<&str, u32> = BTreeMap::new();
        let mut rollbacks = 0u32;
        let mut emergencies = 0u32;
        let mut failures: BTreeMap<String, u32> =
            VALIDATORS.iter().map(|v| (v.to_string(), 0)).collect();
        let mut run_durations = Vec::new();
        let mut step_durations: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for run in runs {
            let r = &run.record;
            *by_status.entry(r.status.as_str()).or_default() += 1;
            if r.emergency.is_some() {
                emergencies += 1;
            }
            rollbacks += r
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::RolledBack)
                .count() as u32;
            if let Some(d) = run.duration() {
                run_durations.push(d);
            }
            for st in &r.steps {
                let Some(data) = run.step(st.index) else {
                    continue;
                };
                for v in &data.failed_validators {
                    *failures.entry(v.clone()).or_default() += 1;
                }
                if let Some(d) = data.duration().filter(|_| finished(st.status)) {
                    step_durations
                        .entry(kind_name(st.component.kind))
                        .or_default()
                        .push(d);
                }
            }
        }
        for s in RunStatus::ALL {
            let s = s.as_str();
            self.add(
                RUNS,
                &[("status", s)],
                f64::from(by_status.get(s).copied().unwrap_or(0)),
            );
        }
        self.add(EMERGENCY_RUNS, &[], f64::from(emergencies));
        self.add(ROLLBACKS, &[], f64::from(rollbacks));
        for (v, n) in &failures {
            self.add(VALIDATION_FAILURES, &[("validator", v)], f64::from(*n));
        }
        self.histogram(RUN_DURATION, &[], &run_durations, RUN_BUCKETS);
        for (kind, values) in &step_durations {
            self.histogram(STEP_DURATION, &[("kind", kind)], values, STEP_BUCKETS);
        }

        if let Some(first) = runs.iter().map(|r| r.record.started_at).min() {
            self.add(FIRST_RUN, &[], first.0.as_second() as f64);
        }
        let last_ok = runs
            .iter()
            .filter(|r| r.record.status == RunStatus::Completed)
            .filter_map(|r| r.record.finished_at)
            .max();
        if let Some(t) = last_ok {
            self.add(LAST_SUCCESS, &[], t.0.as_second() as f64);
        }
        // Run ids sort by time; the start time decides first.
        let Some(last) = runs.iter().max_by(|a, b| {
            (a.record.started_at, &a.record.run_id).cmp(&(b.record.started_at, &b.record.run_id))
        }) else {
            return;
        };
        let r = &last.record;
        self.add(LAST_RUN, &[], r.started_at.0.as_second() as f64);
        for s in RunStatus::ALL {
            self.add(
                LAST_RUN_STATUS,
                &[("status", s.as_str())],
                if *s == r.status { 1.0 } else { 0.0 },
            );
        }
        if let Some(d) = last.duration() {
            self.add(LAST_RUN_DURATION, &[], d);
        }
        for s in StepStatus::ALL {
            let n = r.steps.iter().filter(|st| st.status == *s).count();
            self.add(LAST_RUN_STEPS, &[("status", s.as_str())], n as f64);
        }
        for st in &r.steps {
            let Some(d) = last
                .step(st.index)
                .and_then(StepData::duration)
                .filter(|_| finished(st.status))
            else {
                continue;
            };
            let index = st.index.to_string();
            let comp = st.component.to_string();
            self.add(
                LAST_RUN_STEP_DURATION,
                &[
                    ("step", &index),
                    ("component", &comp),
                    ("kind", kind_name(st.component.kind)),
                    ("status", st.status.as_str()),
                ],
                d,
            );
        }
    }

    /// The families present, by name.
    pub fn family_names(&self) -> Vec<&'static str> {
        self.families.keys().copied().collect()
    }

    /// The text exposition format, ending in a newline.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, f) in &self.families {
            let _ = writeln!(out, "# HELP {name} {}", f.def.help);
            let _ = writeln!(out, "# TYPE {name} {}", f.def.kind.as_str());
            for (series, labels, v) in &f.samples {
                let _ = writeln!(out, "{series}{labels} {}", number(*v));
            }
        }
        out
    }
}

/// A step that will not move again: its duration is final.
fn finished(s: StepStatus) -> bool {
    matches!(
        s,
        StepStatus::Completed | StepStatus::RolledBack | StepStatus::Failed
    )
}

#[cfg(test)]
mod tests;
