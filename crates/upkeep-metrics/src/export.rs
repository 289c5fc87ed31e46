//! Where the metrics go (node_exporter's textfile collector, a
//! Pushgateway) and the exporter a run calls when it ends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use upkeep_config::Settings;
use upkeep_contract::{RunRecord, RunStatus, UpdateReport};

use crate::{Metrics, Pushgateway, load_runs, read_report};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Bad input: a flag, a key of upkeep.yaml, a document.
    #[error("{0}")]
    Input(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("textfile: {0}")]
    Write(#[from] upkeep_fs::FsError),
    #[error("pushgateway {url}: {why}")]
    Push { url: String, why: String },
}

impl MetricsError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> MetricsError {
        MetricsError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// 2 for what the operator must fix (a flag, a file that is not there
    /// or does not read), 3 for what the environment refused.
    pub fn exit_code(&self) -> u8 {
        match self {
            MetricsError::Input(_) => 2,
            MetricsError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 2,
            MetricsError::Io { .. } | MetricsError::Write(_) | MetricsError::Push { .. } => 3,
        }
    }
}

/// node_exporter's textfile collector reads only `*.prom` files; anything
/// else would be written and silently never collected.
pub fn check_textfile(path: &Path, what: &str) -> Result<(), MetricsError> {
    if path.extension().is_some_and(|x| x == "prom") && path.file_name().is_some() {
        Ok(())
    } else {
        Err(MetricsError::Input(format!(
            "{what}: {} must end in .prom (node_exporter's textfile collector reads only *.prom)",
            path.display()
        )))
    }
}

/// Where the metrics are written or pushed.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub textfile: Option<PathBuf>,
    pub pushgateway: Option<Pushgateway>,
}

impl Targets {
    /// The `metrics` section of upkeep.yaml, checked; errors name the key.
    pub fn from_settings(settings: &Settings) -> Result<Targets, MetricsError> {
        let m = &settings.metrics;
        if let Some(p) = &m.textfile {
            check_textfile(p, &settings.key("metrics.textfile"))?;
        }
        let pushgateway = match &m.pushgateway {
            None => None,
            Some(pg) => {
                let timeout = match &pg.timeout {
                    None => crate::DEFAULT_TIMEOUT,
                    Some(t) => upkeep_config::parse_duration(t).map_err(|e| {
                        MetricsError::Input(format!(
                            "{}: {e}",
                            settings.key("metrics.pushgateway.timeout")
                        ))
                    })?,
                };
                let job = pg.job.as_deref().unwrap_or(crate::DEFAULT_JOB);
                Some(Pushgateway::new(
                    &pg.url,
                    job,
                    timeout,
                    &settings.key("metrics.pushgateway"),
                )?)
            }
        };
        Ok(Targets {
            textfile: m.textfile.clone(),
            pushgateway,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.textfile.is_none() && self.pushgateway.is_none()
    }

    /// Writes the textfile (atomically: the collector never reads half of
    /// it) and pushes, both attempted; the first failure is returned and any
    /// other one logged.
    pub fn send(&self, text: &str) -> Result<(), MetricsError> {
        let mut errors = Vec::new();
        if let Some(path) = &self.textfile {
            // 0644: node_exporter runs as a user of its own and must read it.
            if let Err(e) = upkeep_fs::atomic_write(path, text.as_bytes(), 0o644) {
                errors.push(MetricsError::from(e));
            }
        }
        if let Some(gw) = &self.pushgateway
            && let Err(e) = gw.push(text)
        {
            errors.push(e);
        }
        let mut errors = errors.into_iter();
        match errors.next() {
            None => Ok(()),
            Some(first) => {
                for e in errors {
                    tracing::warn!("metrics: {e}");
                }
                Err(first)
            }
        }
    }
}

/// The newest UpdateReport `upkeep scan` saved in the state directory.
pub fn default_report_path(state_dir: &Path) -> PathBuf {
    state_dir.join("report.json")
}

/// Keeps `report` as the state directory's newest scan (0600, like the
/// rest of the state), for the metrics written after a run.
pub fn save_report(state_dir: &Path, report: &UpdateReport) -> Result<(), MetricsError> {
    let mut bytes = serde_json::to_vec(report)
        .map_err(|e| MetricsError::Input(format!("the update report: {e}")))?;
    bytes.push(b'\n');
    upkeep_fs::atomic_write(&default_report_path(state_dir), &bytes, 0o600)?;
    Ok(())
}

/// Builds the metrics from the state directory (and a report) and sends
/// them to the targets; what a run's end and `upkeep metrics` both do.
#[derive(Debug, Clone)]
pub struct Exporter {
    state_dir: PathBuf,
    targets: Targets,
}

impl Exporter {
    pub fn new(state_dir: &Path, targets: Targets) -> Exporter {
        Exporter {
            state_dir: state_dir.to_path_buf(),
            targets,
        }
    }

    /// The exporter upkeep.yaml asks for, or `None` when it names no target.
    pub fn from_settings(settings: &Settings) -> Result<Option<Exporter>, MetricsError> {
        let targets = Targets::from_settings(settings)?;
        Ok((!targets.is_empty()).then(|| Exporter::new(&settings.state_dir, targets)))
    }

    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// The metrics of every recorded run, and of `report` (default: the
    /// state directory's `report.json`, left out when there is none yet).
    pub fn collect(&self, report: Option<&UpdateReport>) -> Result<Metrics, MetricsError> {
        let mut m = Metrics::default();
        let default = default_report_path(&self.state_dir);
        match report {
            Some(r) => m.from_report(r),
            None if default.is_file() => m.from_report(&read_report(&default)?),
            None => tracing::debug!(
                "no {}: `upkeep scan` saves one; update metrics left out",
                default.display()
            ),
        }
        m.from_runs(&load_runs(&self.state_dir)?);
        Ok(m)
    }

    /// Collects and sends. Returns the text sent.
    pub fn export(&self, report: Option<&UpdateReport>) -> Result<String, MetricsError> {
        let text = self.collect(report)?.render();
        self.targets.send(&text)?;
        Ok(text)
    }

    /// For the run's observer: once a run has ended (any status but
    /// running), export. A failure is logged, never the run's failure; the
    /// time it can take is bounded by the push timeout.
    pub fn record_saved(&self, record: &RunRecord) {
        if record.status == RunStatus::Running {
            return;
        }
        match self.export(None) {
            Ok(_) => tracing::debug!("metrics exported after run {}", record.run_id),
            Err(e) => tracing::warn!("metrics after run {}: {e}", record.run_id),
        }
    }

    /// The longest [`Exporter::record_saved`] may block.
    pub fn max_delay(&self) -> Duration {
        self.targets
            .pushgateway
            .as_ref()
            .map_or(Duration::ZERO, |g| g.timeout())
    }
}
