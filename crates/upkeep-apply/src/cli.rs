//! The flags and the run of `apply-update`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use upkeep_cli::{CliError, ClusterArgs, ConfigArgs, LogArgs, Outcome, Output};
use upkeep_contract::{ApplyResult, ApplyStatus, ComponentKind, UpdatePlan, UpdateReport, Version};
use upkeep_kube::{Cluster, ConnectOptions};

use crate::{ApplyError, Options, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Text,
}

/// `--k3s-method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum K3sMethodFlag {
    /// Edit the system-upgrade-controller Plans.
    Plan,
    /// Roll the release binary over SSH (upkeep.yaml `k3s.ssh`).
    Ssh,
}

#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// An UpdatePlan (`-` for stdin); with --step, the step to apply.
    #[arg(long, value_name = "FILE", requires = "step", conflicts_with_all = ["report", "rollback"])]
    pub plan: Option<PathBuf>,
    /// The 1-based index of the plan's step.
    #[arg(long, value_name = "N", requires = "plan")]
    pub step: Option<usize>,
    /// An UpdateReport (`-` for stdin); with --component and --to, the update to apply.
    #[arg(long, value_name = "FILE", requires_all = ["component", "to"], conflicts_with = "rollback")]
    pub report: Option<PathBuf>,
    /// The component in the report: `NAMESPACE/NAME`, or `NAME` when that is unique.
    #[arg(long, value_name = "NAME", requires = "report")]
    pub component: Option<String>,
    /// The version to go to: one of the report's candidates for the component.
    #[arg(long, value_name = "VERSION", requires = "report")]
    pub to: Option<String>,
    /// Take back a step: the ApplyResult it printed (`-` for stdin).
    #[arg(long, value_name = "APPLY_RESULT")]
    pub rollback: Option<PathBuf>,
    /// The GitOps checkout to edit and commit in (default: gitops.dir of
    /// upkeep.yaml). Without one, the object is patched in the cluster.
    #[arg(long, value_name = "DIR")]
    pub gitops: Option<PathBuf>,
    /// Push the commit to the checkout's `origin`.
    #[arg(long)]
    pub push: bool,
    /// Show the edit (or the patch, tried with the server's dry run) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit (and push) only; do not wait for the cluster to take the change.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for Flux and the cluster.
    #[arg(long, value_name = "DURATION", default_value = "15m")]
    pub timeout: String,
    /// How often to look while waiting.
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub poll: String,
    /// The run this step belongs to, recorded in the commit message.
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// The restore point taken before this step, recorded in the commit and the result.
    #[arg(long, value_name = "NAME")]
    pub restore_point: Option<String>,
    /// How a k3s step is applied (default: upkeep.yaml `k3s.method`, else plan).
    #[arg(long, value_enum, value_name = "METHOD")]
    pub k3s_method: Option<K3sMethodFlag>,
    /// Output: the ApplyResult as one JSON line, or lines for people.
    #[arg(short, long, value_enum, default_value = "json")]
    pub output: Format,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The step the flags name.
fn step_from(args: &ApplyArgs) -> Result<Step, CliError> {
    if let (Some(path), Some(n)) = (&args.plan, args.step) {
        let plan: UpdatePlan = upkeep_cli::read_document(path, "--plan")?;
        let s = plan.steps.iter().find(|s| s.index == n).ok_or_else(|| {
            CliError::usage(format!(
                "--step {n}: the plan has steps {}",
                if plan.steps.is_empty() {
                    "none".to_string()
                } else {
                    format!("1 to {}", plan.steps.len())
                }
            ))
        })?;
        return Ok(Step {
            component: s.component.clone(),
            from: s.from.clone(),
            to: s.to.clone(),
        });
    }
    if let (Some(path), Some(name), Some(to)) = (&args.report, &args.component, &args.to) {
        let report: UpdateReport = upkeep_cli::read_document(path, "--report")?;
        let matches: Vec<_> = report
            .components
            .iter()
            .filter(|c| c.component.to_string() == *name || c.component.name == *name)
            .collect();
        let c = match matches.as_slice() {
            [c] => *c,
            [] => {
                return Err(CliError::usage(format!(
                    "--component {name}: not in the report (it has {})",
                    report
                        .components
                        .iter()
                        .map(|c| c.component.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            many => {
                return Err(CliError::usage(format!(
                    "--component {name}: more than one component is called that ({}); give NAMESPACE/NAME",
                    many.iter()
                        .map(|c| c.component.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };
        let to = Version::parse(to).map_err(|e| CliError::usage(format!("--to {to}: {e}")))?;
        let from = c
            .current
            .as_ref()
            .map(|cur| cur.version.clone())
            .ok_or_else(|| {
                CliError::usage(format!(
                    "--component {name}: the report does not know its current version"
                ))
            })?;
        if !c.candidates.iter().any(|k| k.version == to) {
            return Err(CliError::usage(format!(
                "--to {to}: not a candidate for {} (candidates: {})",
                c.component,
                if c.candidates.is_empty() {
                    "none".to_string()
                } else {
                    c.candidates
                        .iter()
                        .map(|k| k.version.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )));
        }
        return Ok(Step {
            component: c.component.clone(),
            from,
            to,
        });
    }
    Err(CliError::usage(
        "say what to apply: --plan FILE --step N, --report FILE --component NAME --to VERSION, or --rollback APPLY_RESULT",
    ))
}

/// Applies the step (or rolls one back): exit 0 when it is in place (or
/// back), 1 when the cluster refused it, 2 for bad input, 3 when git or the
/// cluster cannot be reached.
pub fn run(args: ApplyArgs) -> Result<Outcome, CliError> {
    upkeep_cli::init_logging(&args.log);
    let settings =
        upkeep_cli::load_settings(&args.config, None, Some(&args.cluster), args.gitops.clone())?;
    let within = upkeep_config::parse_duration(&args.timeout)
        .map_err(|e| CliError::usage(format!("--timeout: {e}")))?;
    let poll = upkeep_config::parse_duration(&args.poll)
        .map_err(|e| CliError::usage(format!("--poll: {e}")))?;
    let rollback: Option<ApplyResult> = args
        .rollback
        .as_deref()
        .map(|p| upkeep_cli::read_document(p, "--rollback"))
        .transpose()?;
    let step = match &rollback {
        Some(_) => None,
        None => Some(step_from(&args)?),
    };
    // Only Flux and k3s steps download release assets; a chart update does
    // not need the GitHub token's source to be readable.
    let kind = rollback
        .as_ref()
        .map(|r| r.component.kind)
        .or(step.as_ref().map(|s| s.component.kind));
    let upstream = match kind {
        Some(ComponentKind::Flux | ComponentKind::K3s) => Some(
            upkeep_upstream::Upstream::from_settings(&settings).map_err(|e| {
                if e.is_environment() {
                    CliError::environment(e)
                } else {
                    CliError::usage(e)
                }
            })?,
        ),
        _ => None,
    };
    let k3s = crate::K3sMethod::from_settings(
        &settings,
        args.k3s_method.map(|m| match m {
            K3sMethodFlag::Plan => upkeep_config::K3sMethodName::Plan,
            K3sMethodFlag::Ssh => upkeep_config::K3sMethodName::Ssh,
        }),
    )
    .map_err(CliError::usage)?;
    let ssh_k3s = kind == Some(ComponentKind::K3s) && matches!(k3s, crate::K3sMethod::Ssh(_));
    let opts = Options {
        k3s,
        upstream,
        gitops: settings.gitops_dir.clone(),
        push: args.push,
        dry_run: args.dry_run,
        wait: !args.no_wait,
        within,
        poll,
        run_id: args.run_id.clone(),
        restore_point: args.restore_point.clone(),
    };
    // GitOps without waiting, or a dry run of an edit, needs no cluster.
    // k3s over SSH drains and watches the nodes, also to show a dry run.
    let needs_cluster = opts.gitops.is_none() || (opts.wait && !opts.dry_run) || ssh_k3s;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::environment(format!("cannot start the async runtime: {e}")))?;
    let result = upkeep_cli::without_kube_errors(|| {
        runtime.block_on(async {
            let cluster = if needs_cluster {
                let choice = upkeep_cli::cluster_choice(&args.cluster, &settings);
                let connect = ConnectOptions {
                    kubeconfig: choice.kubeconfig,
                    context: choice.context,
                    ..ConnectOptions::default()
                };
                Some(Cluster::connect(&connect).await.map_err(ApplyError::from)?)
            } else {
                None
            };
            let work = async {
                match (&rollback, &step) {
                    (Some(done), _) => crate::rollback(done, &opts, cluster.as_ref()).await,
                    (None, Some(step)) => crate::apply(step, &opts, cluster.as_ref()).await,
                    (None, None) => Err(ApplyError::Input("nothing to apply".to_string())),
                }
            };
            tokio::select! {
                r = work => r,
                _ = tokio::signal::ctrl_c() => Err(ApplyError::Input(
                    "interrupted: a commit already made stays; see git log and rerun apply-update to wait, or --rollback"
                        .to_string(),
                )),
            }
        })
    })
    .map_err(|e| match e.exit_code() {
        2 => CliError::usage(e),
        _ => CliError::environment(e),
    })?;
    let mut out = Output::new();
    match args.output {
        Format::Json => out.json_line(&result)?,
        Format::Text => out.text(&text(&result))?,
    }
    out.flush()?;
    Ok(match result.status {
        ApplyStatus::Failed => Outcome::Negative,
        _ => Outcome::Done,
    })
}

fn text(r: &ApplyResult) -> String {
    let verb = match (r.status, r.dry_run) {
        (_, true) => "would apply",
        (ApplyStatus::Applied, _) => "applied",
        (ApplyStatus::NoOp, _) => "already at the version:",
        (ApplyStatus::RolledBack, _) => "rolled back",
        (ApplyStatus::Failed, _) => "FAILED",
    };
    let mut s = format!(
        "{verb} {} {} {} -> {}",
        r.component.kind, r.component, r.from, r.to
    );
    if let Some(c) = r.revert_commit.as_ref().or(r.commit.as_ref()) {
        s.push_str(&format!(" (commit {})", crate::short_commit(c)));
    }
    s.push('\n');
    s.push_str(&crate::render_edits(&r.edits));
    for e in &r.errors {
        s.push_str(&format!("  error ({}): {}\n", e.source, e.message));
    }
    s
}
