//! `upkeep`'s subcommands: plan, run, resume, status, rollback, window.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use upkeep_cli::{CliError, ClusterArgs, ConfigArgs, LogArgs, Outcome, Output};
use upkeep_config::{LonghornSnapshot, RunValidator, Settings};
use upkeep_contract::{RunRecord, RunStatus, StepStatus, Timestamp, UpdatePlan, UpdateReport};
use upkeep_kube::{Cluster, ConnectOptions};
use upkeep_snapshot::LonghornMode;
use upkeep_validate::cli::Validator;

use crate::engine::status_name;
use crate::{RunError, RunOptions, RunStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Text,
    /// `history` only: RFC 4180 CSV.
    Csv,
    /// `report` only (its text form).
    Markdown,
    /// `report` only: one self-contained page.
    Html,
}

/// Flags every subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The GitOps checkout (default: gitops.dir of upkeep.yaml); without one,
    /// updates patch the cluster directly.
    #[arg(long, global = true, value_name = "DIR")]
    pub gitops: Option<PathBuf>,
    /// Output: lines for people, or the document as one JSON line.
    #[arg(short, long, global = true, value_enum, default_value = "text")]
    pub output: Format,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Every detector (k3s, Flux, Longhorn, the charts) at once, merged into one UpdateReport.
    Scan {
        /// Write the UpdateReport here too (for `upkeep plan --report`).
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
    },
    /// An UpdatePlan from an UpdateReport and upkeep.yaml's policy: steps in dependency order.
    Plan {
        /// The UpdateReport (`-` for stdin), as merge-report writes it.
        #[arg(long, value_name = "FILE")]
        report: PathBuf,
        /// Read the cluster (or --cluster-dump) and list in each step what it touches.
        #[arg(long)]
        impact: bool,
        /// With --impact: cluster objects from `kubectl get -o json|yaml` files instead of the cluster.
        #[arg(long, value_name = "FILE", requires = "impact")]
        cluster_dump: Vec<PathBuf>,
    },
    /// What each update touches before it is applied: the workloads, volumes, Ingresses and
    /// custom resources it reaches, APIs it removes (in Git and in managedFields), a risk level.
    Impact {
        /// An UpdateReport: each component's next hop.
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "plan",
            required_unless_present = "plan"
        )]
        report: Option<PathBuf>,
        /// An UpdatePlan: each step.
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
        /// Cluster objects from `kubectl get -o json|yaml` files instead of the cluster.
        #[arg(long, value_name = "FILE")]
        cluster_dump: Vec<PathBuf>,
    },
    /// Applies a plan step by step: restore point, validators, update, validators, rollback on a regression.
    Run(RunArgs),
    /// Goes on with a stopped run from where it stopped (default: the newest run).
    Resume {
        run: Option<String>,
        #[command(flatten)]
        how: HowArgs,
    },
    /// The state of a run and its steps (default: the newest run).
    Status { run: Option<String> },
    /// Takes back a finished run's completed steps, newest first.
    Rollback {
        run: String,
        /// Only this step (its index in the plan).
        #[arg(long, value_name = "N")]
        step: Option<usize>,
        #[command(flatten)]
        how: HowArgs,
    },
    /// Maintenance mode by hand: `on` freezes spec changes and suspends Flux, `off` puts back
    /// exactly what `on` changed, `status` says whether it is on.
    Maintenance {
        #[arg(value_enum)]
        action: MaintenanceAction,
        /// Why (shown to whoever hits the freeze); needed for `on`.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// How long it is expected to last (announced in the ConfigMap).
        #[arg(long = "for", value_name = "DURATION", default_value = "1h")]
        duration: String,
    },
    /// The scheduled form of a run, at the start of each maintenance window: a CronJob with its
    /// RBAC, a crontab entry, or a systemd service and timer.
    Schedule {
        #[arg(value_enum)]
        form: ScheduleForm,
        /// The image the CronJob runs.
        #[arg(long, value_name = "IMAGE", default_value = concat!("ghcr.io/upkeep-dev/upkeep:", env!("CARGO_PKG_VERSION")))]
        image: String,
        /// The CronJob's namespace.
        #[arg(long, value_name = "NS", default_value = "upkeep")]
        namespace: String,
        /// With no windows configured: run daily at this UTC time.
        #[arg(long, value_name = "HH:MM", default_value = "03:00")]
        at: String,
    },
    /// Maintenance windows: `check` exits 0 inside one, `next` says when the next one opens.
    Window {
        #[arg(value_enum)]
        action: WindowAction,
    },
    /// What upkeep did, one row per step of each recorded run (-o text|json|csv); `import`
    /// adds runs saved before the history database existed.
    History(upkeep_history::cli::HistoryArgs),
    /// A month (or --since/--until) of history summed up: updates per component, success
    /// rate, rollbacks, release to applied, run durations, failures by cause, components
    /// falling behind (-o markdown|html|json).
    Report(upkeep_history::cli::ReportArgs),
    /// Notifications: `test` every channel, announce `updates` of a report or the next
    /// maintenance `window`, print the emergency `runbook`.
    Notify {
        #[command(subcommand)]
        action: upkeep_notify::cli::NotifyCommand,
    },
    /// Prometheus metrics of the updates on offer and of the runs: printed, written for
    /// node_exporter's textfile collector (--textfile), pushed to a Pushgateway (--pushgateway).
    Metrics(upkeep_metrics::cli::MetricsArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleForm {
    PrintCronjob,
    PrintCrontab,
    PrintSystemd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MaintenanceAction {
    On,
    Off,
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WindowAction {
    Check,
    Next,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The UpdatePlan (`-` for stdin), as `upkeep plan` writes it.
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Show each step's edit and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run outside the maintenance windows; needs --reason, which is recorded.
    #[arg(long, requires = "reason")]
    pub emergency: bool,
    #[arg(long, value_name = "TEXT", requires = "emergency")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub how: HowArgs,
}

/// How steps are carried out (run, resume, rollback).
#[derive(Debug, Clone, Args)]
pub struct HowArgs {
    /// Take no restore point before each step (the way back is then only Git).
    #[arg(long)]
    pub no_restore_point: bool,
    /// Do not push commits to the checkout's origin (default: upkeep.yaml run.push, else push).
    #[arg(long)]
    pub no_push: bool,
    /// How often to look while waiting for Flux and the cluster.
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub poll: String,
    /// Do not freeze the cluster (admission policy, Flux suspended) while the run works.
    #[arg(long)]
    pub no_maintenance: bool,
    /// How long the cluster Lease lasts without renewal (a killed run frees it after this).
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub lease_ttl: String,
}

fn duration(flag: &str, v: &str) -> Result<Duration, CliError> {
    upkeep_config::parse_duration(v).map_err(|e| CliError::usage(format!("{flag}: {e}")))
}

fn history_error(e: upkeep_history::HistoryError) -> CliError {
    match e.exit_code() {
        2 => CliError::usage(e),
        _ => CliError::environment(e),
    }
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Json => "json",
        Format::Text => "text",
        Format::Csv => "csv",
        Format::Markdown => "markdown",
        Format::Html => "html",
    }
}

/// The history database is told of every saved transition of a run.
impl crate::RunObserver for upkeep_history::HistoryObserver {
    fn record_saved(&self, record: &RunRecord) {
        self.record(record);
    }
}

/// The metrics are written when a run ends.
impl crate::RunObserver for upkeep_metrics::Exporter {
    fn record_saved(&self, record: &RunRecord) {
        upkeep_metrics::Exporter::record_saved(self, record);
    }
}

/// Notifications are told of every saved transition of a run.
impl crate::RunObserver for upkeep_notify::NotifyObserver {
    fn record_saved(&self, record: &RunRecord) {
        upkeep_notify::NotifyObserver::record_saved(self, record);
    }
}

fn run_error(e: RunError) -> CliError {
    match e.exit_code() {
        2 => CliError::usage(e),
        _ => CliError::environment(e),
    }
}

/// Runs one subcommand.
pub fn main(common: Common, command: Command) -> Result<Outcome, CliError> {
    upkeep_cli::init_logging(&common.log);
    let settings = upkeep_cli::load_settings(
        &common.config,
        None,
        Some(&common.cluster),
        common.gitops.clone(),
    )?;
    // csv, markdown and html are the history and report forms only.
    if !matches!(command, Command::History(_) | Command::Report(_))
        && !matches!(common.output, Format::Json | Format::Text)
    {
        return Err(CliError::usage(format!(
            "-o {}: only `upkeep history` (csv) and `upkeep report` (markdown, html) write it",
            format_name(common.output)
        )));
    }
    let store = RunStore::new(&settings.state_dir).observe(std::sync::Arc::new(
        upkeep_history::HistoryObserver::new(&settings.state_dir),
    ));
    // Only the commands that make runs load the notify section, so a bad
    // one stops exactly those (exit 2 naming the key), before any change.
    let notifier = match &command {
        Command::Run(_) | Command::Resume { .. } | Command::Rollback { .. } => {
            upkeep_notify::cli::observer(&settings)?
        }
        _ => None,
    };
    let store = match &notifier {
        Some(n) => store.observe(n.clone()),
        None => store,
    };
    // The metrics (upkeep.yaml `metrics`) are written again when a run ends.
    let store = match &command {
        Command::Run(_) | Command::Resume { .. } | Command::Rollback { .. } => {
            match upkeep_metrics::cli::observer(&settings)? {
                Some(m) => store.observe(std::sync::Arc::new(m)),
                None => store,
            }
        }
        _ => store,
    };
    let mut out = Output::new();
    let outcome = match command {
        Command::Scan { save } => {
            let (report, degraded) = crate::scan::scan(&common.config, &common.cluster, &settings)?;
            upkeep_notify::cli::after_scan(&settings, &report)?;
            upkeep_metrics::cli::after_scan(&settings, &report);
            if let Some(path) = save {
                upkeep_fs::atomic_write(
                    &path,
                    format!(
                        "{}\n",
                        serde_json::to_string(&report)
                            .map_err(|e| CliError::usage(format!("--save: {e}")))?
                    )
                    .as_bytes(),
                    0o644,
                )
                .map_err(CliError::environment)?;
            }
            match common.output {
                Format::Json => out.json_line(&report)?,
                _ => out.text(&upkeep_report::render_text(&report))?,
            }
            if degraded {
                Outcome::Degraded
            } else {
                Outcome::Done
            }
        }
        Command::Impact {
            report,
            plan,
            cluster_dump,
        } => {
            let updates = match (&report, &plan) {
                (Some(r), _) => {
                    upkeep_impact::from_report(&upkeep_cli::read_document(r, "--report")?)
                }
                (None, Some(p)) => {
                    upkeep_impact::from_plan(&upkeep_cli::read_document(p, "--plan")?)
                }
                (None, None) => return Err(CliError::usage("give --report FILE or --plan FILE")),
            };
            let (impacts, source) = impact_of(&common, &settings, &updates, &cluster_dump)?;
            let doc = upkeep_impact::report(
                impacts,
                Some(source),
                settings
                    .gitops_dir
                    .as_ref()
                    .map(|d| d.display().to_string()),
            );
            match common.output {
                Format::Json => out.json_line(&doc)?,
                _ => out.text(&upkeep_impact::render_text(&doc))?,
            }
            Outcome::Done
        }
        Command::Plan {
            report,
            impact,
            cluster_dump,
        } => {
            let report: UpdateReport = upkeep_cli::read_document(&report, "--report")?;
            let policy = crate::policy::from_settings(&settings).map_err(run_error)?;
            let mut plan = upkeep_plan::plan(&report, &policy, Timestamp::now());
            if impact {
                let (impacts, _) = impact_of(
                    &common,
                    &settings,
                    &upkeep_impact::from_plan(&plan),
                    &cluster_dump,
                )?;
                for (step, i) in plan.steps.iter_mut().zip(impacts) {
                    step.touches = i.affected.into_iter().map(|a| a.object).collect();
                }
            }
            match common.output {
                Format::Json => out.json_line(&plan)?,
                _ => out.text(&plan_text(&plan))?,
            }
            Outcome::Done
        }
        Command::Schedule {
            form,
            image,
            namespace,
            at,
        } => {
            let windows = crate::engine::windows(&settings).map_err(run_error)?;
            let starts: Vec<crate::schedule::Start> = if windows.is_empty() {
                let bad = || CliError::usage(format!("--at: {at:?} is not a time like 03:00"));
                let (h, m) = at.split_once(':').ok_or_else(bad)?;
                let (h, m): (i8, i8) =
                    (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
                if !(0..24).contains(&h) || !(0..60).contains(&m) {
                    return Err(bad());
                }
                vec![crate::schedule::Start::daily(h, m)]
            } else {
                windows.iter().map(crate::schedule::Start::of).collect()
            };
            let config = settings
                .config_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "$HOME/.config/upkeep/upkeep.yaml".to_string());
            out.text(&match form {
                ScheduleForm::PrintCronjob => crate::schedule::cronjob(&starts, &namespace, &image),
                ScheduleForm::PrintCrontab => crate::schedule::crontab(&starts, &config),
                ScheduleForm::PrintSystemd => crate::schedule::systemd(&starts, &config),
            })?;
            Outcome::Done
        }
        Command::Window { action } => {
            let now = jiff::Timestamp::now();
            let windows = crate::engine::windows(&settings).map_err(run_error)?;
            match action {
                WindowAction::Check => match crate::window_verdict(&settings, now, false) {
                    Ok(Some(why)) => {
                        out.text(&format!("{why}\n"))?;
                        Outcome::Done
                    }
                    Ok(None) => {
                        out.text("no maintenance windows are configured: any time is allowed\n")?;
                        Outcome::Done
                    }
                    Err(e) => {
                        out.text(&format!("{e}\n"))?;
                        Outcome::Negative
                    }
                },
                WindowAction::Next => {
                    match upkeep_window::next_of(&windows, now) {
                        Some((s, e)) => out.text(&format!(
                            "{} to {}\n",
                            s.strftime("%a %Y-%m-%d %H:%M %Z"),
                            e.strftime("%a %Y-%m-%d %H:%M %Z")
                        ))?,
                        None => out.text("no maintenance windows are configured\n")?,
                    }
                    Outcome::Done
                }
            }
        }
        Command::History(args) => {
            let format = match common.output {
                Format::Text => upkeep_history::cli::HistoryFormat::Text,
                Format::Json => upkeep_history::cli::HistoryFormat::Json,
                Format::Csv => upkeep_history::cli::HistoryFormat::Csv,
                f => {
                    return Err(CliError::usage(format!(
                        "-o {}: `upkeep history` writes text, json or csv",
                        format_name(f)
                    )));
                }
            };
            let text = upkeep_history::cli::history(&settings.state_dir, &args, format)
                .map_err(history_error)?;
            out.text(&text)?;
            Outcome::Done
        }
        Command::Report(args) => {
            let format = match common.output {
                Format::Text | Format::Markdown => upkeep_history::cli::ReportFormat::Markdown,
                Format::Html => upkeep_history::cli::ReportFormat::Html,
                Format::Json => upkeep_history::cli::ReportFormat::Json,
                Format::Csv => {
                    return Err(CliError::usage(
                        "-o csv: `upkeep report` writes markdown, html or json",
                    ));
                }
            };
            let text = upkeep_history::cli::report(
                &settings.state_dir,
                &args,
                format,
                jiff::Timestamp::now(),
            )
            .map_err(history_error)?;
            out.text(&text)?;
            Outcome::Done
        }
        Command::Status { run } => {
            let id = match run {
                Some(r) => r,
                None => store.latest().map_err(run_error)?.ok_or_else(|| {
                    CliError::usage(format!("no runs yet in {}", store.runs_dir().display()))
                })?,
            };
            let record = store.record(&id).map_err(run_error)?;
            print_record(&mut out, common.output, &record)?;
            Outcome::Done
        }
        Command::Run(args) => run_cmd(&common, &settings, &store, args, &mut out)?,
        Command::Notify { action } => upkeep_notify::cli::main(action, &settings, &mut out)?,
        Command::Metrics(args) => {
            if let Some(text) = upkeep_metrics::cli::run(&settings, &args)? {
                out.text(&text)?;
            }
            Outcome::Done
        }
        Command::Maintenance {
            action,
            reason,
            duration: for_,
        } => {
            let lasts = duration("--for", &for_)?;
            if action == MaintenanceAction::On && reason.is_none() {
                return Err(CliError::usage("maintenance on: --reason TEXT is needed"));
            }
            let text = with_cluster(&common, &settings, |cluster| async move {
                let st = match action {
                    MaintenanceAction::On => {
                        let end = jiff::Timestamp::now()
                            .checked_add(lasts)
                            .unwrap_or_else(|_| jiff::Timestamp::now());
                        let reason = reason.unwrap_or_default();
                        Some(
                            crate::maintenance::on(&cluster, &reason, end, &Default::default())
                                .await?,
                        )
                    }
                    MaintenanceAction::Off => crate::maintenance::off(&cluster).await?,
                    MaintenanceAction::Status => crate::maintenance::status(&cluster).await?,
                };
                let list = |v: &[String]| {
                    if v.is_empty() {
                        "nothing".to_string()
                    } else {
                        v.join(", ")
                    }
                };
                Ok(match (action, st) {
                    (MaintenanceAction::Off, Some(st)) => {
                        format!("maintenance off; resumed {}\n", list(&st.suspended))
                    }
                    (MaintenanceAction::Off, None) => "maintenance was not on\n".to_string(),
                    (_, Some(st)) => format!(
                        "maintenance on: {} (since {}, until about {}); suspended: {}\n",
                        st.reason,
                        st.started,
                        st.expected_end,
                        list(&st.suspended)
                    ),
                    (_, None) => "maintenance is off\n".to_string(),
                })
            })?;
            out.text(&text)?;
            Outcome::Done
        }
        Command::Resume { run, how } => {
            let id = match run {
                Some(r) => r,
                None => store
                    .latest()
                    .map_err(run_error)?
                    .ok_or_else(|| CliError::usage("no run to resume"))?,
            };
            let opts = run_options(&common, &settings, &how, None)?;
            let record = with_cluster(&common, &settings, |cluster| async move {
                crate::resume(&cluster, &store, &id, &opts).await
            })?;
            print_record(&mut out, common.output, &record)?;
            verdict(&record)
        }
        Command::Rollback { run, step, how } => {
            let opts = run_options(&common, &settings, &how, None)?;
            let record = with_cluster(&common, &settings, |cluster| async move {
                crate::rollback_run(&cluster, &store, &run, step, &opts).await
            })?;
            print_record(&mut out, common.output, &record)?;
            // Done when what was asked is taken back: step N, or the whole run.
            let done = match step {
                Some(n) => record
                    .steps
                    .iter()
                    .any(|s| s.index == n && s.status == StepStatus::RolledBack),
                None => record.status == RunStatus::RolledBack,
            };
            if done {
                Outcome::Done
            } else {
                Outcome::Negative
            }
        }
    };
    out.flush()?;
    // The last messages (run finished) go out before the process ends.
    if let Some(n) = &notifier {
        n.finish();
    }
    Ok(outcome)
}

fn verdict(record: &RunRecord) -> Outcome {
    match record.status {
        RunStatus::Completed => Outcome::Done,
        _ => Outcome::Negative,
    }
}

/// The impact of `updates` on the cluster (or the dump files) and the
/// GitOps checkout, and where the objects were read.
fn impact_of(
    common: &Common,
    settings: &Settings,
    updates: &[upkeep_impact::Update],
    dumps: &[PathBuf],
) -> Result<(Vec<upkeep_contract::UpdateImpact>, String), CliError> {
    let impact_err = |e: upkeep_impact::ImpactError| match e.exit_code() {
        2 => CliError::usage(e),
        _ => CliError::environment(e),
    };
    let (objects, source) = if dumps.is_empty() {
        with_cluster(common, settings, |cluster| async move {
            let source = format!("cluster {}", cluster.server());
            let objects = upkeep_impact::read_all(&cluster)
                .await
                .map_err(|e| RunError::Input(e.to_string()))?;
            Ok((objects, source))
        })?
    } else {
        let src = upkeep_kube::FileSource::load(dumps)
            .map_err(|e| CliError::usage(format!("--cluster-dump: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::environment(format!("cannot start the async runtime: {e}")))?;
        let objects = runtime
            .block_on(upkeep_impact::read_all(&src))
            .map_err(impact_err)?;
        (
            objects,
            format!(
                "files {}",
                dumps
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    };
    let tree = match &settings.gitops_dir {
        Some(dir) => {
            Some(upkeep_gitops::scan(dir).map_err(|e| CliError::usage(format!("--gitops: {e}")))?)
        }
        None => None,
    };
    let charts = chart_archives(settings, updates)?;
    let impacts = upkeep_impact::analyze(
        updates,
        &upkeep_impact::Inputs {
            objects,
            gitops: tree.as_ref(),
            now: None,
            charts,
        },
    );
    Ok((impacts, source))
}

/// Both archives of each chart update from a Helm repository over HTTP(S)
/// (OCI charts are not fetched), for the values and CRD comparison; a chart
/// that cannot be read is said in its impact, not an error of the command.
#[allow(clippy::type_complexity)]
fn chart_archives(
    settings: &Settings,
    updates: &[upkeep_impact::Update],
) -> Result<
    BTreeMap<String, Result<(upkeep_helm::ChartFiles, upkeep_helm::ChartFiles), String>>,
    CliError,
> {
    let wanted: Vec<(&upkeep_impact::Update, &upkeep_contract::Source)> = updates
        .iter()
        .filter(|u| u.component.kind == upkeep_contract::ComponentKind::Chart)
        .filter_map(|u| u.component.source.as_ref().map(|s| (u, s)))
        .filter(|(_, s)| s.url.starts_with("http://") || s.url.starts_with("https://"))
        .collect();
    if wanted.is_empty() {
        return Ok(BTreeMap::new());
    }
    let http = upkeep_http::UpstreamClient::new(upkeep_upstream::client_config(settings))
        .map_err(|e| CliError::usage(format!("HTTP client: {e}")))?;
    let repos = upkeep_helm::Repositories::new(http, settings.helm_mirrors.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::environment(format!("cannot start the async runtime: {e}")))?;
    Ok(runtime.block_on(async {
        let mut out = BTreeMap::new();
        for (u, src) in wanted {
            let chart = src.chart.as_deref().unwrap_or(&u.component.name);
            let (from, to) = (u.from.to_string(), u.to.to_string());
            let pair = futures_util::future::try_join(
                repos.chart(&src.url, chart, &from),
                repos.chart(&src.url, chart, &to),
            )
            .await
            .map_err(|e| upkeep_redact::redact(&e.to_string()));
            out.insert(u.component.to_string(), pair);
        }
        out
    }))
}

fn with_cluster<T, F, Fut>(common: &Common, settings: &Settings, body: F) -> Result<T, CliError>
where
    F: FnOnce(Cluster) -> Fut,
    Fut: std::future::Future<Output = Result<T, RunError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::environment(format!("cannot start the async runtime: {e}")))?;
    let choice = upkeep_cli::cluster_choice(&common.cluster, settings);
    let connect = ConnectOptions {
        kubeconfig: choice.kubeconfig,
        context: choice.context,
        ..ConnectOptions::default()
    };
    upkeep_cli::without_kube_errors(|| {
        runtime.block_on(async {
            let cluster = Cluster::connect(&connect).await.map_err(RunError::from)?;
            tokio::select! {
                r = body(cluster) => r,
                // The state file says where it stopped: resume goes on from there.
                _ = tokio::signal::ctrl_c() => Err(RunError::Input(
                    "interrupted: `upkeep resume` goes on from the stage it was in".to_string(),
                )),
            }
        })
    })
    .map_err(run_error)
}

fn run_options(
    common: &Common,
    settings: &Settings,
    how: &HowArgs,
    emergency: Option<String>,
) -> Result<RunOptions, CliError> {
    let snapshot_dir = (!how.no_restore_point).then(|| settings.restore_point_dir());
    let validators = settings
        .run
        .validators
        .clone()
        .unwrap_or_else(|| vec![RunValidator::Flux, RunValidator::Apps])
        .into_iter()
        .map(|v| match v {
            RunValidator::Flux => Validator::Flux,
            RunValidator::Apps => Validator::Apps,
            RunValidator::Storage => Validator::Storage,
            RunValidator::Net => Validator::Net,
        })
        .collect();
    Ok(RunOptions {
        gitops: common
            .gitops
            .clone()
            .or_else(|| settings.gitops_dir.clone()),
        push: !how.no_push && settings.run.push.unwrap_or(true),
        validators,
        prove: upkeep_validate::ProveOptions {
            http: settings
                .run
                .http_checks
                .as_deref()
                .map(upkeep_validate::http::HttpChecks::load)
                .transpose()
                .map_err(|e| CliError::usage(format!("{}: {e}", settings.key("run.httpChecks"))))?,
            ..Default::default()
        },
        step_timeout: settings.step_timeout,
        poll: duration("--poll", &how.poll)?,
        snapshot_dir,
        age_recipients: settings.snapshot.age_recipients.clone().unwrap_or_default(),
        exclude_secrets: settings.snapshot.exclude_secrets.unwrap_or(false),
        longhorn: match settings.snapshot.longhorn {
            Some(LonghornSnapshot::Snapshot) => LonghornMode::Snapshot,
            Some(LonghornSnapshot::Backup) => LonghornMode::Backup,
            _ => LonghornMode::None,
        },
        actor: std::env::var("USER").unwrap_or_else(|_| "unknown".to_string()),
        emergency,
        lease_ttl: {
            let ttl = duration("--lease-ttl", &how.lease_ttl)?;
            if ttl < Duration::from_secs(15) {
                return Err(CliError::usage(
                    "--lease-ttl: at least 15s (it is renewed every third of it)",
                ));
            }
            ttl
        },
        maintenance: !how.no_maintenance,
        upstream: Some(
            upkeep_upstream::Upstream::from_settings(settings).map_err(|e| {
                if e.is_environment() {
                    CliError::environment(e)
                } else {
                    CliError::usage(e)
                }
            })?,
        ),
        k3s: upkeep_apply::K3sMethod::from_settings(settings, None).map_err(CliError::usage)?,
    })
}

fn run_cmd(
    common: &Common,
    settings: &Settings,
    store: &RunStore,
    args: RunArgs,
    out: &mut Output,
) -> Result<Outcome, CliError> {
    let plan: UpdatePlan = upkeep_cli::read_document(&args.plan, "--plan")?;
    if plan.steps.is_empty() {
        out.text("the plan has no steps: the cluster is up to date (within the policy)\n")?;
        return Ok(Outcome::Done);
    }
    let opts = run_options(common, settings, &args.how, args.reason.clone())?;
    if args.dry_run {
        return dry_run(&plan, &opts, common, out);
    }
    let why = crate::window_verdict(settings, jiff::Timestamp::now(), args.emergency)
        .map_err(run_error)?;
    if let Some(w) = why {
        tracing::info!("{w}");
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::usage(
                "upkeep run changes the cluster: pass --yes to run without a prompt (or --dry-run to see what it would do)",
            ));
        }
        eprint!(
            "{}Apply these {} step(s)? [y/N] ",
            plan_text(&plan),
            plan.steps.len()
        );
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|e| CliError::usage(format!("stdin: {e}")))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(CliError::usage("not confirmed: nothing was changed"));
        }
    }
    let store = store.clone();
    let record = with_cluster(common, settings, |cluster| async move {
        crate::run(&cluster, &store, &plan, &opts).await
    })?;
    print_record(out, common.output, &record)?;
    Ok(verdict(&record))
}

fn dry_run(
    plan: &UpdatePlan,
    opts: &RunOptions,
    common: &Common,
    out: &mut Output,
) -> Result<Outcome, CliError> {
    let Some(dir) = &opts.gitops else {
        return Err(CliError::usage(
            "--dry-run shows the GitOps edits: give --gitops DIR (direct mode is tried per step with apply-update --dry-run)",
        ));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::environment(format!("cannot start the async runtime: {e}")))?;
    // Each step sees the edits of the steps before it: they are made in a
    // scratch copy of the checkout, never in the checkout itself.
    let scratch = tempfile::tempdir()
        .map_err(|e| CliError::environment(format!("a scratch directory: {e}")))?;
    copy_tree(dir, scratch.path())
        .map_err(|e| CliError::environment(format!("copying {}: {e}", dir.display())))?;
    let mut text = String::new();
    let mut docs = Vec::new();
    for step in &plan.steps {
        let s = upkeep_apply::Step {
            component: step.component.clone(),
            from: step.from.clone(),
            to: step.to.clone(),
        };
        let o = upkeep_apply::Options {
            gitops: Some(scratch.path().to_path_buf()),
            dry_run: true,
            wait: false,
            k3s: opts.k3s.clone(),
            ..upkeep_apply::Options::default()
        };
        let r = runtime
            .block_on(upkeep_apply::apply(&s, &o, None))
            .map_err(|e| match e.exit_code() {
                2 => CliError::usage(format!("step {}: {e}", step.index)),
                _ => CliError::environment(format!("step {}: {e}", step.index)),
            })?;
        text.push_str(&format!(
            "step {}: {} {} {} -> {} ({})\n",
            step.index, step.component.kind, step.component, step.from, step.to, step.reason
        ));
        text.push_str(&upkeep_apply::render_edits(&r.edits));
        if r.mode == upkeep_contract::ApplyMode::Ssh {
            text.push_str(
                "  no edit: the k3s binary is rolled over SSH, node by node, servers first\n",
            );
        }
        for e in &r.edits {
            let path = scratch.path().join(&e.path);
            let old = std::fs::read_to_string(&path)
                .map_err(|err| CliError::environment(format!("{}: {err}", e.path)))?;
            let mut new = String::with_capacity(old.len());
            for (i, l) in old.split_inclusive('\n').enumerate() {
                if i + 1 == e.line as usize {
                    new.push_str(&e.after);
                    if l.ends_with('\n') {
                        new.push('\n');
                    }
                } else {
                    new.push_str(l);
                }
            }
            std::fs::write(&path, new)
                .map_err(|err| CliError::environment(format!("{}: {err}", e.path)))?;
        }
        docs.push(r);
    }
    match common.output {
        Format::Json => {
            for d in &docs {
                out.json_line(d)?;
            }
        }
        _ => out.text(&format!("dry run: nothing was changed\n{text}"))?,
    }
    Ok(Outcome::Done)
}

/// Copies the checkout's files (not `.git`) for a dry run to edit.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_name() == ".git" {
            continue;
        }
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn plan_text(plan: &UpdatePlan) -> String {
    let mut s = String::new();
    if plan.steps.is_empty() {
        s.push_str("nothing to update\n");
    }
    for step in &plan.steps {
        s.push_str(&format!(
            "{:>2}. {} {} {} -> {}  ({}; {})\n",
            step.index,
            step.component.kind,
            step.component,
            step.from,
            step.to,
            step.reason,
            match step.reversibility {
                upkeep_contract::Reversibility::Revert => "reverts with a commit",
                upkeep_contract::Reversibility::RestorePointOnly =>
                    "one-way: only the restore point takes it back",
            }
        ));
    }
    for u in &plan.unreachable {
        s.push_str(&format!(
            "  not planned: {} {}: {}\n",
            u.component,
            u.version,
            u.why
                .iter()
                .map(|f| f.message.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    s
}

fn print_record(out: &mut Output, format: Format, r: &RunRecord) -> Result<(), CliError> {
    match format {
        Format::Json => out.json_line(r),
        _ => {
            let mut s = format!(
                "{}: {} (started {}",
                r.run_id,
                status_name(r.status),
                r.started_at
            );
            if let Some(f) = &r.finished_at {
                s.push_str(&format!(", finished {f}"));
            }
            s.push_str(")\n");
            for st in &r.steps {
                s.push_str(&format!(
                    "{:>2}. {:<18} {} {} {} -> {}\n",
                    st.index,
                    step_status(st.status),
                    st.component.kind,
                    st.component,
                    st.from,
                    st.to
                ));
                if let Some(c) = &st.commit_after {
                    s.push_str(&format!("      commit {}\n", upkeep_apply::short_commit(c)));
                }
                if let Some(p) = &st.restore_point {
                    s.push_str(&format!("      restore point {p}\n"));
                }
                if let Some(e) = &st.error {
                    s.push_str(&format!("      {e}\n"));
                }
            }
            out.text(&s)
        }
    }
}

fn step_status(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Pending => "pending",
        StepStatus::Snapshotting => "restore point",
        StepStatus::ValidatingBefore => "validating before",
        StepStatus::Applying => "applying",
        StepStatus::ValidatingAfter => "validating after",
        StepStatus::RollingBack => "rolling back",
        StepStatus::Completed => "completed",
        StepStatus::RolledBack => "rolled back",
        StepStatus::Failed => "FAILED",
        StepStatus::Skipped => "skipped",
    }
}
