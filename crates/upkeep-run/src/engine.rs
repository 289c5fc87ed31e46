//! The run loop and its stages. Each stage saves the step's new status
//! before it does its work, so that whatever kills the process, `resume`
//! starts that stage again; every stage can run twice without harm (a
//! restore point is taken again, an update already committed is found by
//! its trailers and waited on, a revert already made is not made again).

use std::path::{Path, PathBuf};
use std::time::Duration;

use upkeep_apply::Step;
use upkeep_contract::{
    AfterStep, ApiVersion, ApplyResult, ApplyStatus, Emergency, PlanStep, Reversibility, RunRecord,
    RunStatus, SafeText, StepRecord, StepStatus, Timestamp, UpdatePlan, ValidationReport,
};
use upkeep_kube::Cluster;
use upkeep_snapshot::{CreateOptions, LonghornMode, Recipients};
use upkeep_validate::ProveOptions;
use upkeep_validate::cli::Validator;

use crate::lease::Lease;
use crate::{RunError, RunStore};

/// The validators a run proves each step with.
pub type Validators = Vec<Validator>;

/// How a run works; built from upkeep.yaml and the flags.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub gitops: Option<PathBuf>,
    pub push: bool,
    pub validators: Validators,
    pub prove: ProveOptions,
    pub step_timeout: Duration,
    pub poll: Duration,
    /// Where restore points go; `None` takes none (refused unless the
    /// operator said so, see the CLI).
    pub snapshot_dir: Option<PathBuf>,
    pub age_recipients: Vec<String>,
    pub exclude_secrets: bool,
    pub longhorn: LonghornMode,
    /// Who runs it, for the record.
    pub actor: String,
    pub emergency: Option<String>,
    pub lease_ttl: Duration,
    /// Freeze the cluster around the run (see [`crate::maintenance`]).
    pub maintenance: bool,
    /// Release assets for Flux and k3s steps.
    pub upstream: Option<upkeep_upstream::Upstream>,
    /// How k3s steps are applied.
    pub k3s: upkeep_apply::K3sMethod,
}

enum StepEnd {
    Completed,
    RolledBack,
    Failed,
}

fn describe(s: &PlanStep) -> String {
    format!(
        "{} {} {} -> {}",
        s.component.kind, s.component, s.from, s.to
    )
}

/// Starts a run of `plan`. Returns the record as it ended.
pub async fn run(
    cluster: &Cluster,
    store: &RunStore,
    plan: &UpdatePlan,
    opts: &RunOptions,
) -> Result<RunRecord, RunError> {
    if plan.steps.is_empty() {
        return Err(RunError::Input(
            "the plan has no steps: nothing to update".to_string(),
        ));
    }
    check_options(opts)?;
    let started_at = Timestamp::now();
    // The time sorts runs; the suffix keeps two runs started in the same
    // second (on two machines) apart, since the run id names the Lease holder.
    let now = jiff::Timestamp::now();
    let suffix = (now.subsec_nanosecond() as u32 ^ std::process::id().rotate_left(16)) & 0xffff;
    let run_id = format!(
        "run-{}-{suffix:04x}",
        started_at.0.strftime("%Y%m%dT%H%M%SZ")
    );
    let local = local_lock(store, &run_id)?;
    // A run of this machine killed before it saved its record left its id in
    // the lock file (a clean end clears it) and its Lease in the cluster for
    // the whole TTL; nothing can resume it, so its Lease is ours to take.
    let dead_id = local
        .previous_holder()
        .and_then(|h| h.split_whitespace().next())
        .filter(|id| {
            id.starts_with("run-")
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !store.run_dir(id).join("run.json").exists()
        })
        .map(str::to_string);
    let dead = dead_id.as_deref().map(holder);
    if let Some(id) = &dead_id {
        tracing::info!("{id} was killed before it saved its state; taking its Lease over");
        // Its folder holds at most its plan: not a run anyone can resume.
        let dir = store.run_dir(id);
        if dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!("cannot remove {}: {e}", dir.display());
        }
    }
    let lease =
        Lease::acquire_from(cluster, &holder(&run_id), dead.as_deref(), opts.lease_ttl).await?;
    let mut record = RunRecord {
        api_version: ApiVersion,
        kind: Default::default(),
        run_id: run_id.clone(),
        started_at,
        finished_at: None,
        status: RunStatus::Running,
        actor: opts.actor.clone(),
        emergency: opts.emergency.as_ref().map(|r| Emergency {
            reason: SafeText::new(r),
        }),
        steps: plan
            .steps
            .iter()
            .map(|s| StepRecord {
                index: s.index,
                component: s.component.clone(),
                from: s.from.clone(),
                to: s.to.clone(),
                status: StepStatus::Pending,
                restore_point: None,
                commit_before: None,
                commit_after: None,
                error: None,
            })
            .collect(),
        errors: Vec::new(),
    };
    // Maintenance first: a run that cannot freeze the cluster never starts
    // (no record left Running, the Lease given back).
    let started = async {
        if let Some(d) = &dead {
            end_dead_maintenance(cluster, d, opts).await?;
        }
        maintenance_on(cluster, &run_id, plan, opts).await
    };
    if let Err(e) = started.await {
        if let Err(r) = lease.release(cluster).await {
            tracing::warn!("cannot release the Lease: {r}");
        }
        return Err(e);
    }
    store.save_plan(&run_id, plan)?;
    store.save_record(&record)?;
    tracing::info!(
        "{run_id}: {} step(s); state in {}",
        plan.steps.len(),
        store.run_dir(&run_id).display()
    );
    drive(cluster, store, plan, &mut record, opts, lease).await?;
    Ok(record)
}

/// Goes on with a run that was stopped (killed, interrupted, or ended by an
/// error the environment caused) from the stage it was in.
pub async fn resume(
    cluster: &Cluster,
    store: &RunStore,
    run_id: &str,
    opts: &RunOptions,
) -> Result<RunRecord, RunError> {
    let mut record = store.record(run_id)?;
    if record.status != RunStatus::Running {
        return Err(RunError::Input(format!(
            "{run_id} already ended ({}); nothing to resume",
            status_name(record.status)
        )));
    }
    check_options(opts)?;
    let plan = store.plan(run_id)?;
    let _local = local_lock(store, run_id)?;
    let lease = Lease::acquire(cluster, &holder(run_id), opts.lease_ttl).await?;
    tracing::info!("{run_id}: resuming");
    remove_leftovers(store, run_id, opts);
    if let Err(e) = maintenance_on(cluster, run_id, &plan, opts).await {
        tracing::warn!("{run_id}: maintenance could not be turned on again: {e}");
    }
    drive(cluster, store, &plan, &mut record, opts, lease).await?;
    Ok(record)
}

/// Maintenance a run killed before it saved its state turned on (nothing
/// can resume that run to turn it off): off, putting back what it froze,
/// before this run turns its own on.
async fn end_dead_maintenance(
    cluster: &Cluster,
    dead: &str,
    opts: &RunOptions,
) -> Result<(), RunError> {
    if !opts.maintenance {
        return Ok(());
    }
    if let Some(st) = crate::maintenance::status(cluster).await?
        && st.reason == dead
    {
        tracing::info!("turning off the maintenance {dead} turned on");
        crate::maintenance::off(cluster).await?;
    }
    Ok(())
}

/// Maintenance on for `run_id` (again, harmlessly, when resuming).
async fn maintenance_on(
    cluster: &Cluster,
    run_id: &str,
    plan: &UpdatePlan,
    opts: &RunOptions,
) -> Result<(), RunError> {
    if !opts.maintenance {
        return Ok(());
    }
    let keep = crate::maintenance::needed(cluster, &plan.steps).await?;
    let steps = u32::try_from(plan.steps.len().saturating_mul(2)).unwrap_or(u32::MAX);
    let end = opts
        .step_timeout
        .checked_mul(steps)
        .and_then(|d| jiff::Timestamp::now().checked_add(d).ok())
        .unwrap_or_else(jiff::Timestamp::now);
    crate::maintenance::on(cluster, &holder(run_id), end, &keep).await?;
    Ok(())
}

/// What a run killed in the middle of a write left behind, removed by the
/// resume that holds the lock now: temporary files of atomic writes in the
/// run's folder and the run's half-written restore points. Nothing else can
/// be writing them, and a failure to remove one is only a warning.
fn remove_leftovers(store: &RunStore, run_id: &str, opts: &RunOptions) {
    let remove = |p: &Path| {
        let r = if p.is_dir() {
            std::fs::remove_dir_all(p)
        } else {
            std::fs::remove_file(p)
        };
        match r {
            Ok(()) => tracing::info!("removed {}, left by an interrupted write", p.display()),
            Err(e) => tracing::warn!("cannot remove {}: {e}", p.display()),
        }
    };
    let entries = |dir: &Path| -> Vec<(PathBuf, String)> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| (e.path(), e.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let run_dir = store.run_dir(run_id);
    let mut dirs = vec![run_dir.clone()];
    dirs.extend(
        entries(&run_dir)
            .into_iter()
            .filter(|(p, _)| p.is_dir())
            .map(|(p, _)| p),
    );
    for dir in dirs {
        for (p, name) in entries(&dir) {
            if name.starts_with(upkeep_fs::TEMP_PREFIX) {
                remove(&p);
            }
        }
    }
    if let Some(snap_dir) = &opts.snapshot_dir {
        let ours = format!(".{run_id}-step-");
        for (p, name) in entries(snap_dir) {
            if name.starts_with(&ours) && name.contains(".partial-") {
                remove(&p);
            }
        }
    }
}

fn holder(run_id: &str) -> String {
    format!("upkeep {run_id}")
}

fn local_lock(store: &RunStore, run_id: &str) -> Result<upkeep_fs::RunLock, RunError> {
    upkeep_fs::RunLock::acquire(
        &store.lock_path(),
        &format!("{run_id} (pid {})", std::process::id()),
    )
    .map_err(|e| match e {
        upkeep_fs::FsError::Locked { .. } => {
            RunError::Busy(format!("another upkeep run is going on this machine: {e}"))
        }
        e => e.into(),
    })
}

fn check_options(opts: &RunOptions) -> Result<(), RunError> {
    if opts.snapshot_dir.is_some() && opts.age_recipients.is_empty() && !opts.exclude_secrets {
        return Err(RunError::Input(
            "snapshot.ageRecipients: none given; restore points never store Secrets unencrypted: \
             add an age recipient (snapshot keygen) or set snapshot.excludeSecrets"
                .to_string(),
        ));
    }
    Recipients::parse(&opts.age_recipients)?;
    Ok(())
}

pub(crate) fn status_name(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "running",
        RunStatus::Completed => "completed",
        RunStatus::Failed => "failed",
        RunStatus::RolledBack => "rolled back",
        RunStatus::Aborted => "aborted",
    }
}

async fn drive(
    cluster: &Cluster,
    store: &RunStore,
    plan: &UpdatePlan,
    record: &mut RunRecord,
    opts: &RunOptions,
    lease: Lease,
) -> Result<(), RunError> {
    let total = plan.steps.len();
    let mut outcome = Ok(());
    for (i, step) in plan.steps.iter().enumerate() {
        match record.steps[i].status {
            StepStatus::Completed | StepStatus::Skipped => continue,
            // Ended before the record said so (stopped between two saves).
            StepStatus::RolledBack => {
                record.status = RunStatus::RolledBack;
                break;
            }
            StepStatus::Failed => {
                record.status = RunStatus::Failed;
                break;
            }
            _ => {}
        }
        tracing::info!("step {}/{total}: {}", step.index, describe(step));
        // The Lease is renewed while a step works, however long its waits.
        let end = {
            let work = do_step(cluster, store, step, record, i, opts);
            tokio::pin!(work);
            let mut tick = tokio::time::interval((opts.lease_ttl / 3).max(Duration::from_secs(1)));
            tick.tick().await;
            loop {
                tokio::select! {
                    r = &mut work => break r,
                    _ = tick.tick() => match lease.renew(cluster).await {
                        Ok(()) => {}
                        // Another run has the cluster now: stop at once (the
                        // state says where; resume goes on later).
                        Err(e @ RunError::Busy(_)) => break Err(e),
                        Err(e) => tracing::warn!("cannot renew the Lease: {e}"),
                    }
                }
            }
        };
        match end {
            Ok(StepEnd::Completed) => continue,
            Ok(StepEnd::RolledBack) => {
                record.status = RunStatus::RolledBack;
                break;
            }
            Ok(StepEnd::Failed) => {
                record.status = RunStatus::Failed;
                break;
            }
            // The state says where it stopped; `upkeep resume` goes on from there.
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    if outcome.is_ok() && record.status == RunStatus::Running {
        record.status = RunStatus::Completed;
    }
    if record.status != RunStatus::Running {
        record.finished_at = Some(Timestamp::now());
    }
    store.save_record(record)?;
    if record.status != RunStatus::Running {
        if opts.maintenance {
            match crate::maintenance::off(cluster).await {
                Ok(Some(st)) if !st.suspended.is_empty() => {
                    tracing::info!("maintenance off: resumed {}", st.suspended.join(", "))
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    "cannot turn maintenance off ({e}); run `upkeep maintenance off`"
                ),
            }
        }
        if let Err(e) = lease.release(cluster).await {
            tracing::warn!("cannot release the Lease: {e}");
        }
    } else if opts.maintenance {
        tracing::warn!(
            "the run stopped with maintenance on: `upkeep resume` goes on, `upkeep maintenance off` ends it"
        );
    }
    outcome
}

fn set(
    store: &RunStore,
    record: &mut RunRecord,
    i: usize,
    status: StepStatus,
) -> Result<(), RunError> {
    record.steps[i].status = status;
    store.save_record(record)
}

fn apply_options(
    opts: &RunOptions,
    run_id: &str,
    restore_point: Option<String>,
) -> upkeep_apply::Options {
    upkeep_apply::Options {
        gitops: opts.gitops.clone(),
        push: opts.push,
        dry_run: false,
        wait: true,
        within: opts.step_timeout,
        poll: opts.poll,
        run_id: Some(run_id.to_string()),
        restore_point,
        upstream: opts.upstream.clone(),
        k3s: opts.k3s.clone(),
    }
}

/// The namespaces a step's restore point covers: what it touches; a k3s
/// hop or a Longhorn minor touches everything.
fn scope(step: &PlanStep) -> Vec<String> {
    use upkeep_contract::ComponentKind;
    if matches!(
        step.component.kind,
        ComponentKind::K3s | ComponentKind::Longhorn
    ) {
        return Vec::new();
    }
    let mut ns: Vec<String> = step
        .component
        .namespace
        .iter()
        .cloned()
        .chain(step.touches.iter().filter_map(|o| o.namespace.clone()))
        .collect();
    ns.sort();
    ns.dedup();
    ns
}

/// Which validator pass: its name (`before`, `after`, `after-rollback`),
/// the step it follows, and since when restarts count.
struct Stage<'a> {
    name: &'a str,
    after: Option<&'a ApplyResult>,
    restarts_since: Option<Timestamp>,
}

async fn prove_all(
    cluster: &Cluster,
    store: &RunStore,
    record: &RunRecord,
    step: &PlanStep,
    opts: &RunOptions,
    stage: Stage<'_>,
) -> Result<Vec<ValidationReport>, RunError> {
    let dir = store.step_dir(&record.run_id, step.index);
    let mut out = Vec::new();
    for v in &opts.validators {
        let mut baseline: Option<ValidationReport> = match stage.name {
            "before" => None,
            _ => store.read(&dir.join(format!("before-{}.json", v.name())))?,
        };
        // After a rollback, a restart during the bad update is history:
        // only restarts since the rollback count.
        if let (Some(since), Some(b)) = (stage.restarts_since, baseline.as_mut()) {
            b.started_at = since;
        }
        let after_step = stage.after.map(|a| {
            let mut s = AfterStep::from_apply(a);
            s.index = Some(step.index);
            s
        });
        let report =
            upkeep_validate::prove(cluster, *v, &opts.prove, baseline.as_ref(), after_step).await?;
        store.write(
            &dir.join(format!("{}-{}.json", stage.name, v.name())),
            &report,
        )?;
        out.push(report);
    }
    Ok(out)
}

fn regressions(reports: &[ValidationReport]) -> Vec<String> {
    reports
        .iter()
        .flat_map(|r| r.checks.iter().filter(|c| c.regression))
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect()
}

async fn do_step(
    cluster: &Cluster,
    store: &RunStore,
    step: &PlanStep,
    record: &mut RunRecord,
    i: usize,
    opts: &RunOptions,
) -> Result<StepEnd, RunError> {
    let run_id = record.run_id.clone();
    let dir = store.step_dir(&run_id, step.index);
    let apply_path = dir.join("apply.json");
    loop {
        match record.steps[i].status {
            StepStatus::Pending | StepStatus::Snapshotting => {
                set(store, record, i, StepStatus::Snapshotting)?;
                if let Some(snap_dir) = &opts.snapshot_dir {
                    create_private_dir(snap_dir)?;
                    // A restore point is never overwritten: a stage taken again
                    // (after a stop just past the last one) gets a name of its own.
                    let mut out = snap_dir.join(format!("{run_id}-step-{}.tar.zst", step.index));
                    let mut attempt = 1;
                    while out.exists() {
                        attempt += 1;
                        out = snap_dir
                            .join(format!("{run_id}-step-{}-{attempt}.tar.zst", step.index));
                    }
                    tracing::info!("  restore point {}", out.display());
                    let manifest = upkeep_snapshot::create(
                        cluster,
                        &CreateOptions {
                            out: out.clone(),
                            namespaces: scope(step),
                            recipients: Recipients::parse(&opts.age_recipients)?,
                            exclude_secrets: opts.exclude_secrets,
                            gitops: opts.gitops.clone(),
                            longhorn: opts.longhorn,
                            longhorn_timeout: opts.step_timeout,
                            tool_version: env!("CARGO_PKG_VERSION").to_string(),
                            page_size: 500,
                            datastore_timeout: opts.step_timeout,
                            ..CreateOptions::default()
                        },
                    )
                    .await?;
                    store.write(&dir.join("snapshot.json"), &manifest)?;
                    record.steps[i].restore_point = Some(out.display().to_string());
                }
                set(store, record, i, StepStatus::ValidatingBefore)?;
            }
            StepStatus::ValidatingBefore => {
                tracing::info!("  validators before");
                let before = prove_all(
                    cluster,
                    store,
                    record,
                    step,
                    opts,
                    Stage {
                        name: "before",
                        after: None,
                        restarts_since: None,
                    },
                )
                .await?;
                // Already broken is not the update's doing, but the operator should know.
                let failing: Vec<String> = before
                    .iter()
                    .flat_map(|r| r.checks.iter())
                    .filter(|c| c.status == upkeep_contract::CheckStatus::Fail)
                    .map(|c| c.name.clone())
                    .collect();
                if !failing.is_empty() {
                    tracing::warn!(
                        "  {} check(s) already fail before this step (not blamed on it): {}",
                        failing.len(),
                        failing.join(", ")
                    );
                }
                set(store, record, i, StepStatus::Applying)?;
            }
            StepStatus::Applying => {
                tracing::info!("  applying");
                let s = Step {
                    component: step.component.clone(),
                    from: step.from.clone(),
                    to: step.to.clone(),
                };
                let point = record.steps[i].restore_point.clone();
                let result =
                    upkeep_apply::apply(&s, &apply_options(opts, &run_id, point), Some(cluster))
                        .await?;
                store.write(&apply_path, &result)?;
                record.steps[i].commit_after = result.commit.clone();
                if result.status == ApplyStatus::Failed {
                    record.steps[i].error = Some(SafeText::new(&format!(
                        "the update did not go in: {}",
                        messages(&result)
                    )));
                    set(store, record, i, StepStatus::RollingBack)?;
                } else {
                    set(store, record, i, StepStatus::ValidatingAfter)?;
                }
            }
            StepStatus::ValidatingAfter => {
                tracing::info!("  validators after");
                let applied: Option<ApplyResult> = store.read(&apply_path)?;
                let reports = prove_all(
                    cluster,
                    store,
                    record,
                    step,
                    opts,
                    Stage {
                        name: "after",
                        after: applied.as_ref(),
                        restarts_since: None,
                    },
                )
                .await?;
                let new = regressions(&reports);
                if new.is_empty() {
                    set(store, record, i, StepStatus::Completed)?;
                    tracing::info!("  done");
                    return Ok(StepEnd::Completed);
                }
                record.steps[i].error = Some(SafeText::new(&format!(
                    "{} check(s) fail since the update: {}",
                    new.len(),
                    new.join("; ")
                )));
                set(store, record, i, StepStatus::RollingBack)?;
            }
            StepStatus::RollingBack => {
                return roll_back(cluster, store, step, record, i, opts).await;
            }
            StepStatus::Completed | StepStatus::Skipped => return Ok(StepEnd::Completed),
            StepStatus::RolledBack => return Ok(StepEnd::RolledBack),
            StepStatus::Failed => return Ok(StepEnd::Failed),
        }
    }
}

/// Restore points hold the cluster's objects: the directory is the operator's alone.
fn create_private_dir(dir: &std::path::Path) -> Result<(), RunError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| RunError::io(dir, e))
}

/// What an ApplyResult's errors say, on one line.
fn messages(r: &ApplyResult) -> String {
    r.errors
        .iter()
        .map(|e| e.message.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn append_error(record: &mut RunRecord, i: usize, more: &str) {
    let text = match &record.steps[i].error {
        Some(e) => format!("{e}; {more}"),
        None => more.to_string(),
    };
    record.steps[i].error = Some(SafeText::new(&text));
}

async fn roll_back(
    cluster: &Cluster,
    store: &RunStore,
    step: &PlanStep,
    record: &mut RunRecord,
    i: usize,
    opts: &RunOptions,
) -> Result<StepEnd, RunError> {
    let run_id = record.run_id.clone();
    let dir = store.step_dir(&run_id, step.index);
    tracing::warn!("  rolling back");
    if step.reversibility == Reversibility::RestorePointOnly {
        let how = match &record.steps[i].restore_point {
            Some(p) => format!("restore {p} --mode replace"),
            None => "restore from your own backup (this run took no restore point)".to_string(),
        };
        append_error(
            record,
            i,
            &format!(
                "a one-way update cannot be reverted; the way back is the restore point: {how}"
            ),
        );
        set(store, record, i, StepStatus::Failed)?;
        return Ok(StepEnd::Failed);
    }
    let applied: Option<ApplyResult> = store.read(&dir.join("apply.json"))?;
    let Some(applied) = applied else {
        append_error(
            record,
            i,
            "nothing was applied, so there is nothing to roll back",
        );
        set(store, record, i, StepStatus::Failed)?;
        return Ok(StepEnd::Failed);
    };
    // A GitOps step that made no commit (it found the version already
    // written) has nothing of ours to revert: say so, do not loop on it.
    if applied.mode == upkeep_contract::ApplyMode::Gitops && applied.commit.is_none() {
        append_error(
            record,
            i,
            "the step made no commit of its own (the checkout already asked for the version), so there is no commit to revert; the way back is the restore point",
        );
        set(store, record, i, StepStatus::Failed)?;
        return Ok(StepEnd::Failed);
    }
    let rollback_started = Timestamp::now();
    let point = record.steps[i].restore_point.clone();
    let back = upkeep_apply::rollback(
        &applied,
        &apply_options(opts, &run_id, point),
        Some(cluster),
    )
    .await?;
    store.write(&dir.join("rollback.json"), &back)?;
    if back.status != ApplyStatus::RolledBack {
        append_error(
            record,
            i,
            &format!("the rollback did not complete: {}", messages(&back)),
        );
        set(store, record, i, StepStatus::Failed)?;
        return Ok(StepEnd::Failed);
    }
    // Rolled back is only as good as the checks after it.
    let reports = prove_all(
        cluster,
        store,
        record,
        step,
        opts,
        Stage {
            name: "after-rollback",
            after: Some(&back),
            restarts_since: Some(rollback_started),
        },
    )
    .await?;
    let still = regressions(&reports);
    if still.is_empty() {
        set(store, record, i, StepStatus::RolledBack)?;
        tracing::warn!("  rolled back; the validators pass as before the step");
        Ok(StepEnd::RolledBack)
    } else {
        append_error(
            record,
            i,
            &format!(
                "rolled back, but {} check(s) still fail: {}",
                still.len(),
                still.join("; ")
            ),
        );
        set(store, record, i, StepStatus::Failed)?;
        Ok(StepEnd::Failed)
    }
}

/// Takes back a finished run's completed steps, newest first (or only
/// step `only`): each one's revert and the wait for the old version.
pub async fn rollback_run(
    cluster: &Cluster,
    store: &RunStore,
    run_id: &str,
    only: Option<usize>,
    opts: &RunOptions,
) -> Result<RunRecord, RunError> {
    let mut record = store.record(run_id)?;
    if record.status == RunStatus::Running {
        return Err(RunError::Input(format!(
            "{run_id} is still running (or was stopped): `upkeep resume {run_id}` first"
        )));
    }
    let plan = store.plan(run_id)?;
    let _local = local_lock(store, run_id)?;
    let lease = Lease::acquire(cluster, &holder(run_id), opts.lease_ttl).await?;
    // The Lease is given back however this ends.
    let result = rollback_steps(cluster, store, &plan, &mut record, only, opts).await;
    if let Err(e) = lease.release(cluster).await {
        tracing::warn!("cannot release the Lease: {e}");
    }
    result.map(|()| record)
}

async fn rollback_steps(
    cluster: &Cluster,
    store: &RunStore,
    plan: &UpdatePlan,
    record: &mut RunRecord,
    only: Option<usize>,
    opts: &RunOptions,
) -> Result<(), RunError> {
    let run_id = record.run_id.clone();
    let before = record.status;
    let mut any = false;
    for i in (0..record.steps.len()).rev() {
        let index = record.steps[i].index;
        // A rollback that was stopped is taken up again where it was.
        if !matches!(
            record.steps[i].status,
            StepStatus::Completed | StepStatus::RollingBack
        ) || only.is_some_and(|n| n != index)
        {
            continue;
        }
        any = true;
        let step = &plan.steps[i];
        tracing::info!("rolling back step {index}: {}", describe(step));
        set(store, record, i, StepStatus::RollingBack)?;
        match roll_back(cluster, store, step, record, i, opts).await? {
            StepEnd::RolledBack => {
                // Rolled back once nothing of it is applied any more; with
                // other steps still in place (`--step N`) it keeps its status
                // and the steps say what is applied.
                let applied = record
                    .steps
                    .iter()
                    .any(|s| s.status == StepStatus::Completed);
                record.status = if applied {
                    before
                } else {
                    RunStatus::RolledBack
                };
            }
            _ => {
                record.status = RunStatus::Failed;
                break;
            }
        }
    }
    if !any {
        return Err(RunError::Input(match only {
            Some(n) => format!("{run_id}: step {n} is not a completed step of the run"),
            None => format!("{run_id}: no completed step to roll back"),
        }));
    }
    record.finished_at = Some(Timestamp::now());
    store.save_record(record)
}

/// Whether a run may start now: inside a window (or no windows configured),
/// or an emergency with its reason. The error says when the next window is.
pub fn window_verdict(
    settings: &upkeep_config::Settings,
    now: jiff::Timestamp,
    emergency: bool,
) -> Result<Option<String>, RunError> {
    let windows = windows(settings)?;
    if windows.is_empty() {
        return Ok(None);
    }
    if let Some(z) = upkeep_window::inside_any(&windows, now) {
        return Ok(Some(format!(
            "inside the maintenance window (local time {})",
            z.strftime("%a %H:%M %Z")
        )));
    }
    if emergency {
        return Ok(Some(
            "outside every maintenance window: an emergency run".to_string(),
        ));
    }
    let next = match upkeep_window::next_of(&windows, now) {
        Some((start, end)) => format!(
            "the next one is {} to {}",
            start.strftime("%a %Y-%m-%d %H:%M %Z"),
            end.strftime("%H:%M")
        ),
        None => "no window ever opens".to_string(),
    };
    Err(RunError::Window(format!(
        "outside every maintenance window ({next}); wait for it, or run with --emergency --reason TEXT"
    )))
}

/// The configured windows, validated; an error names the key.
pub(crate) fn windows(
    settings: &upkeep_config::Settings,
) -> Result<Vec<upkeep_window::Window>, RunError> {
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
            .map_err(|e| RunError::Input(format!("{key}: {e}")))
        })
        .collect()
}
