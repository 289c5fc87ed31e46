//! Applies one update step and can take it back.
//!
//! GitOps mode edits the one line where the version is written (a
//! HelmRelease's chart version, an OCIRepository's tag, the
//! system-upgrade-controller Plans' version), proves the edit changed that
//! value and nothing else (upkeep-edit), commits it with a structured
//! message, pushes when asked, then asks Flux to reconcile and waits until
//! the source has the commit, the Kustomizations have applied it and the
//! HelmRelease or the Plan's nodes are at the new version. Flux itself is
//! the exception to one line: its gotk-components.yaml is regenerated from
//! the release's install manifest (a FluxInstance is one line again), and it
//! is in when its controllers have rolled out ([`flux`]). Direct mode
//! patches the object in the cluster with server-side apply and waits the
//! same way. A rollback is a `git revert` of the step's commit (or the
//! previous value patched back) and the same wait for the old version.
//!
//! Nothing is left half-done: files are checked before any is written,
//! written atomically, and put back when the commit fails.

pub mod cli;
pub mod flux;
mod ssh;
mod target;
mod wait;

pub use ssh::{K3sMethod, NodeOverride, SshOptions};
pub use target::{Target, Watch, locate};
pub use wait::WaitError;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use upkeep_contract::{
    ApiVersion, ApplyMode, ApplyResult, ApplyStatus, Component, ComponentKind, DocError, FileEdit,
    ObjectRef, Timestamp, Version,
};
use upkeep_kube::{ApplyOptions, Cluster, ClusterRead, KubeError, ResourceRef};

/// What can stop a step before or while it is applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{component}: {what} in the GitOps checkout")]
    NotInCheckout { component: String, what: String },
    #[error("{component}: more than one place sets its version: {}", found.join("; "))]
    Ambiguous {
        component: String,
        found: Vec<String>,
    },
    #[error("{object}: cannot pin a version: {why}")]
    Unpinned { object: String, why: String },
    #[error("{component}: {why}")]
    Unsupported { component: String, why: String },
    #[error(
        "{path}:{line}: {key} is {written:?}, but the step goes from {from}: the checkout changed since the plan was made"
    )]
    Stale {
        path: String,
        line: u32,
        key: String,
        written: String,
        from: String,
    },
    #[error("{path}:{line}: {source}")]
    Edit {
        path: String,
        line: u32,
        #[source]
        source: upkeep_edit::EditError,
    },
    #[error("{0}")]
    Input(String),
    /// The network or a node failed (a download, SSH): exit 3.
    #[error("{0}")]
    Environment(String),
    #[error(transparent)]
    Gitops(#[from] upkeep_gitops::GitopsError),
    #[error(transparent)]
    Git(#[from] upkeep_git::GitError),
    #[error(transparent)]
    Fs(#[from] upkeep_fs::FsError),
    #[error(transparent)]
    Cluster(#[from] KubeError),
    #[error(transparent)]
    Upstream(#[from] upkeep_upstream::UpstreamError),
}

impl ApplyError {
    /// 2 for what the operator must fix in the input or the checkout, 3
    /// for what the environment refused (git, the cluster, the disk).
    pub fn exit_code(&self) -> u8 {
        match self {
            ApplyError::Git(_) | ApplyError::Fs(_) | ApplyError::Environment(_) => 3,
            ApplyError::Cluster(e) => e.exit_code(),
            ApplyError::Upstream(e) if e.is_environment() => 3,
            _ => 2,
        }
    }
}

/// One update: a component from one version to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub component: Component,
    pub from: Version,
    pub to: Version,
}

/// How to apply it.
#[derive(Debug, Clone)]
pub struct Options {
    /// The GitOps checkout; `None` is direct mode.
    pub gitops: Option<PathBuf>,
    /// Push the commit to `origin`.
    pub push: bool,
    /// Show the edit or the patch; change nothing.
    pub dry_run: bool,
    /// Wait for the cluster to take the change (needs a cluster).
    pub wait: bool,
    pub within: Duration,
    pub poll: Duration,
    /// Recorded in the commit message.
    pub run_id: Option<String>,
    pub restore_point: Option<String>,
    /// Where release assets come from (a k3s binary, Flux's install
    /// manifest); `None` where the step needs none.
    pub upstream: Option<upkeep_upstream::Upstream>,
    /// How a k3s step is applied.
    pub k3s: K3sMethod,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            gitops: None,
            push: false,
            dry_run: false,
            wait: true,
            within: Duration::from_secs(15 * 60),
            poll: Duration::from_secs(2),
            run_id: None,
            restore_point: None,
            upstream: None,
            k3s: K3sMethod::Plan,
        }
    }
}

fn result(step: &Step, mode: ApplyMode, started_at: Timestamp) -> ApplyResult {
    ApplyResult {
        api_version: ApiVersion,
        kind: Default::default(),
        component: step.component.clone(),
        from: step.from.clone(),
        to: step.to.clone(),
        mode,
        status: ApplyStatus::Applied,
        dry_run: false,
        started_at,
        finished_at: started_at,
        commit: None,
        revert_commit: None,
        restore_point: None,
        edits: Vec::new(),
        objects: Vec::new(),
        errors: Vec::new(),
    }
}

/// Applies `step`. A refused or timed-out wait is a `Failed` result (the
/// caller rolls back); errors are for what stopped it before any change
/// or what the environment refused.
pub async fn apply(
    step: &Step,
    opts: &Options,
    cluster: Option<&Cluster>,
) -> Result<ApplyResult, ApplyError> {
    let started = Timestamp::now();
    if let (ComponentKind::K3s, K3sMethod::Ssh(ssh)) = (step.component.kind, &opts.k3s) {
        return ssh::apply(step, opts, ssh, cluster, started).await;
    }
    match &opts.gitops {
        Some(dir) => gitops_apply(step, opts, dir, cluster, started).await,
        None => {
            let cluster = cluster.ok_or_else(|| {
                ApplyError::Input(
                    "direct mode (no --gitops) patches the cluster: give a kubeconfig".to_string(),
                )
            })?;
            direct_apply(step, opts, cluster, started).await
        }
    }
}

/// The commit message: a subject people read in `git log`, and trailers
/// that tools (and `upkeep history`) read back.
fn commit_message(subject: &str, step: &Step, opts: &Options) -> String {
    let mut m = format!(
        "{subject}\n\nUpkeep-Component: {} {}\nUpkeep-From: {}\nUpkeep-To: {}\n",
        step.component.kind, step.component, step.from, step.to
    );
    if let Some(r) = &opts.run_id {
        m.push_str(&format!("Upkeep-Run: {r}\n"));
    }
    if let Some(r) = &opts.restore_point {
        m.push_str(&format!("Upkeep-Restore-Point: {r}\n"));
    }
    m
}

fn line_of(text: &str, n: u32) -> String {
    text.lines()
        .nth(n.saturating_sub(1) as usize)
        .unwrap_or("")
        .to_string()
}

/// Paths of the checkout relative to the repository's top, as git wants them.
fn repo_path(repo: &upkeep_git::Repo, root: &Path, rel: &str) -> Result<String, ApplyError> {
    let top = repo
        .dir()
        .canonicalize()
        .map_err(|e| ApplyError::Input(format!("{}: {e}", repo.dir().display())))?;
    let full = root
        .canonicalize()
        .map_err(|e| ApplyError::Input(format!("{}: {e}", root.display())))?
        .join(rel);
    Ok(full
        .strip_prefix(&top)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| rel.to_string()))
}

async fn gitops_apply(
    step: &Step,
    opts: &Options,
    dir: &Path,
    cluster: Option<&Cluster>,
    started: Timestamp,
) -> Result<ApplyResult, ApplyError> {
    let mut out = result(step, ApplyMode::Gitops, started);
    out.dry_run = opts.dry_run;
    out.restore_point = opts.restore_point.clone();
    if cluster.is_some() && opts.wait && !opts.push && !opts.dry_run {
        return Err(ApplyError::Input(
            "waiting for Flux needs the commit pushed (Flux fetches from the forge): add --push, or --no-wait to commit only"
                .to_string(),
        ));
    }
    let tree = upkeep_gitops::scan(dir)?;
    let targets = locate(&tree, &step.component)?;
    out.objects = targets.iter().map(|t| t.object.clone()).collect();
    out.objects.dedup();
    if targets.iter().all(|t| t.is_at(&step.to)) {
        out.status = ApplyStatus::NoOp;
        if !opts.dry_run {
            already_committed(&mut out, step, opts, dir, cluster, &targets).await?;
        }
        out.finished_at = Timestamp::now();
        return Ok(out);
    }
    for t in &targets {
        if !t.is_at(&step.from) && !t.is_at(&step.to) {
            return Err(ApplyError::Stale {
                path: t.path.clone(),
                line: t.line,
                key: t.key.to_string(),
                written: t.written.clone(),
                from: step.from.to_string(),
            });
        }
    }
    // Every edit is made in memory and proven first; only then is a file written.
    let mut files: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut watches = distinct_watches(&targets);
    if let Some(t) = targets.iter().find(|t| t.is_regenerated()) {
        let r = flux::regenerate_target(t, dir, &step.to, opts).await?;
        out.edits.extend(r.edits);
        if let Some(text) = r.text {
            out.objects.extend(r.controllers.iter().map(|c| ObjectRef {
                api_version: "apps/v1".to_string(),
                kind: "Deployment".to_string(),
                namespace: Some(c.namespace.clone()),
                name: c.name.clone(),
            }));
            watches = vec![Watch::FluxControllers(r.controllers)];
            files.insert(t.path.clone(), (r.original, text));
        }
    }
    for t in targets
        .iter()
        .filter(|t| !t.is_at(&step.to) && !t.is_regenerated())
    {
        let entry = match files.get(&t.path) {
            Some(e) => e.clone(),
            None => {
                let text = std::fs::read_to_string(dir.join(&t.path))
                    .map_err(|e| ApplyError::Input(format!("{}: {e}", t.path)))?;
                (text.clone(), text)
            }
        };
        let new = t.new_value(&step.to);
        let edited =
            upkeep_edit::replace_scalar(&entry.1, t.line as usize, t.key, &t.written, &new)
                .map_err(|source| ApplyError::Edit {
                    path: t.path.clone(),
                    line: t.line,
                    source,
                })?;
        out.edits.push(FileEdit {
            path: t.path.clone(),
            line: t.line,
            before: line_of(&entry.1, t.line),
            after: line_of(&edited, t.line),
        });
        files.insert(t.path.clone(), (entry.0, edited));
    }
    if opts.dry_run {
        out.finished_at = Timestamp::now();
        return Ok(out);
    }
    let repo = upkeep_git::Repo::open(dir)?;
    forget_leftovers(&repo)?;
    let state = repo.state()?;
    if !state.dirty.is_empty() {
        return Err(upkeep_git::GitError::Dirty {
            dir: repo.dir().to_path_buf(),
            files: state.dirty.join(", "),
        }
        .into());
    }
    let mut paths = Vec::new();
    for (path, (_, edited)) in &files {
        let full = dir.join(path);
        let mode = file_mode(&full);
        upkeep_fs::atomic_write(&full, edited.as_bytes(), mode)?;
        paths.push(repo_path(&repo, dir, path)?);
    }
    let subject = format!(
        "upkeep: {} {} {} -> {}",
        step.component.kind, step.component, step.from, step.to
    );
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let commit = match repo.commit_paths(&refs, &commit_message(&subject, step, opts)) {
        Ok(c) => c,
        Err(e) => {
            // Put the files back: no edit without its commit.
            for (path, (original, _)) in &files {
                let full = dir.join(path);
                let _ = upkeep_fs::atomic_write(&full, original.as_bytes(), file_mode(&full));
            }
            return Err(e.into());
        }
    };
    tracing::info!("committed {} ({subject})", short_commit(&commit));
    out.commit = Some(commit.clone());
    if opts.push {
        if let Err(e) = repo.push() {
            out.status = ApplyStatus::Failed;
            out.errors.push(doc_error(
                "push",
                &format!("committed {commit} locally but could not push it: {e}"),
            ));
            out.finished_at = Timestamp::now();
            return Ok(out);
        }
        tracing::info!("pushed to origin");
    }
    if let (Some(cluster), true) = (cluster, opts.wait)
        && let Err(e) = wait_gitops(cluster, &commit, &watches, &step.to, opts).await
    {
        fail(&mut out, e)?;
    }
    out.finished_at = Timestamp::now();
    Ok(out)
}

/// The checkout already asks for the version: perhaps a run that was
/// stopped after its commit. Find that commit (by the run's trailers), push
/// it if asked (pushing what is pushed is harmless), and wait for the
/// cluster as after a commit, so that resuming a step ends where it would
/// have.
async fn already_committed(
    out: &mut ApplyResult,
    step: &Step,
    opts: &Options,
    dir: &Path,
    cluster: Option<&Cluster>,
    targets: &[Target],
) -> Result<(), ApplyError> {
    let repo = upkeep_git::Repo::open(dir)?;
    // Stopped between writing the file and committing it: the edit in the
    // working tree is ours (the file asks for the version); commit it now.
    let mut ours = Vec::new();
    for t in targets {
        let p = repo_path(&repo, dir, &t.path)?;
        if !ours.contains(&p) {
            ours.push(p);
        }
    }
    forget_leftovers(&repo)?;
    let dirty = repo.state()?.dirty;
    let pending: Vec<&str> = ours
        .iter()
        .filter(|p| dirty.contains(p))
        .map(String::as_str)
        .collect();
    if !pending.is_empty() {
        let subject = format!(
            "upkeep: {} {} {} -> {}",
            step.component.kind, step.component, step.from, step.to
        );
        let commit = repo.commit_paths(&pending, &commit_message(&subject, step, opts))?;
        tracing::info!(
            "committed the edit left uncommitted: {}",
            short_commit(&commit)
        );
        out.status = ApplyStatus::Applied;
        out.commit = Some(commit);
    } else if let Some(run) = &opts.run_id {
        let want = [
            format!("Upkeep-Run: {run}"),
            format!(
                "Upkeep-Component: {} {}",
                step.component.kind, step.component
            ),
            format!("Upkeep-To: {}", step.to),
        ];
        out.commit = find_commit(&repo, &want)?;
    }
    if opts.push {
        repo.push()?;
    }
    if let (Some(cluster), true) = (cluster, opts.wait) {
        let head = repo.state()?.head;
        let watches = distinct_watches(targets);
        if let Err(e) = wait_gitops(cluster, &head, &watches, &step.to, opts).await {
            fail(out, e)?;
        }
    }
    Ok(())
}

/// The first 12 characters of a commit id, for people.
pub fn short_commit(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// A commit id as git prints it (SHA-1 or SHA-256, hex): anything else in
/// a document is refused rather than handed to git, where `--x` is an option.
fn is_commit_id(id: &str) -> bool {
    (7..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// How far back a stopped run's commits are looked for.
const HISTORY_DEPTH: usize = 200;

/// The newest commit whose message has every one of `lines`.
fn find_commit(repo: &upkeep_git::Repo, lines: &[String]) -> Result<Option<String>, ApplyError> {
    Ok(repo
        .trailers(HISTORY_DEPTH)?
        .into_iter()
        .find(|(_, m)| lines.iter().all(|l| m.lines().any(|ml| ml.trim() == l)))
        .map(|(id, _)| id))
}

fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o644)
}

/// Whether the HelmRelease (as JSON from the cluster) is `component`'s:
/// Longhorn's is the one installing the `longhorn` chart, a chart's is the
/// HelmRelease of its name (and namespace, when the component has one).
pub fn is_helm_release_of(component: &Component, hr: &serde_json::Value) -> bool {
    let s = |p: &str| hr.pointer(p).and_then(serde_json::Value::as_str);
    match component.kind {
        ComponentKind::Longhorn => s("/spec/chart/spec/chart") == Some("longhorn"),
        ComponentKind::Chart => {
            s("/metadata/name") == Some(component.name.as_str())
                && component
                    .namespace
                    .as_deref()
                    .is_none_or(|n| s("/metadata/namespace").unwrap_or("default") == n)
        }
        ComponentKind::K3s | ComponentKind::Flux => false,
    }
}

/// The edits for people: `path:line`, the line before and after.
pub fn render_edits(edits: &[FileEdit]) -> String {
    edits
        .iter()
        .map(|e| {
            format!(
                "  {}:{}\n  - {}\n  + {}\n",
                e.path,
                e.line,
                e.before.trim(),
                e.after.trim()
            )
        })
        .collect()
}

/// Each watch once, in order (both k3s Plans of one step, say).
fn distinct<'a>(watches: impl IntoIterator<Item = &'a Watch>) -> Vec<Watch> {
    let mut w: Vec<Watch> = Vec::new();
    for x in watches {
        if !w.contains(x) {
            w.push(x.clone());
        }
    }
    w
}

fn distinct_watches(targets: &[Target]) -> Vec<Watch> {
    distinct(targets.iter().map(|t| &t.watch))
}

/// Waits for each watch to show `to`, all within one deadline; a watch that
/// does not is the result's failure.
async fn wait_direct(
    cluster: &Cluster,
    watches: &[Watch],
    to: &Version,
    opts: &Options,
    out: &mut ApplyResult,
) -> Result<(), ApplyError> {
    let until = std::time::Instant::now() + opts.within;
    for w in watches {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if let Err(e) = wait::at_version(cluster, w, to, left, opts.poll).await {
            return fail(out, e);
        }
    }
    Ok(())
}

fn doc_error(source: &str, message: &str) -> DocError {
    DocError {
        source: source.to_string(),
        message: upkeep_contract::SafeText::new(message),
        target: None,
    }
}

/// A wait that ended without the version: the result says failed; only a
/// cluster that cannot be read is an error.
fn fail(out: &mut ApplyResult, e: WaitError) -> Result<(), ApplyError> {
    match e {
        WaitError::Cluster(k) if k.is_environment() => Err(k.into()),
        e => {
            out.status = ApplyStatus::Failed;
            out.errors.push(doc_error("wait", &e.to_string()));
            Ok(())
        }
    }
}

/// Whether a Flux revision includes `commit`: it names it, or its commit
/// descends from it (someone pushed after us; origin is fetched to know).
fn includes(dir: Option<&Path>, commit: &str, revision: &str) -> bool {
    if revision.contains(commit) {
        return true;
    }
    let Some(theirs) = revision.rsplit(':').next().filter(|id| is_commit_id(id)) else {
        return false;
    };
    let Some(repo) = dir.and_then(|d| upkeep_git::Repo::open(d).ok()) else {
        return false;
    };
    // Fetch only for a commit not seen yet (an old revision is known and
    // simply not ours).
    if !repo.has_commit(theirs) && repo.fetch().is_err() {
        return false;
    }
    repo.is_ancestor(commit, theirs)
}

async fn wait_gitops(
    cluster: &Cluster,
    commit: &str,
    watches: &[Watch],
    version: &Version,
    opts: &Options,
) -> Result<(), WaitError> {
    // One deadline for all of it: --timeout is the step's, not each wait's.
    let until = std::time::Instant::now() + opts.within;
    let left = || until.saturating_duration_since(std::time::Instant::now());
    wait::request_reconcile(cluster).await?;
    let dir = opts.gitops.clone();
    let inc = move |rev: &str| includes(dir.as_deref(), commit, rev);
    wait::flux_applied(cluster, commit, &inc, left(), opts.poll).await?;
    for w in watches {
        wait::at_version(cluster, w, version, left(), opts.poll).await?;
    }
    Ok(())
}

/// The objects direct mode patches: found in the cluster as `locate`
/// finds them in a checkout.
async fn cluster_targets(
    cluster: &Cluster,
    component: &Component,
) -> Result<Vec<(ObjectRef, Watch, Option<String>)>, ApplyError> {
    let (group, kind) = match component.kind {
        ComponentKind::Chart | ComponentKind::Longhorn => ("helm.toolkit.fluxcd.io", "HelmRelease"),
        ComponentKind::K3s => ("upgrade.cattle.io", "Plan"),
        ComponentKind::Flux => {
            return Err(ApplyError::Unsupported {
                component: component.to_string(),
                why: "direct mode cannot update Flux itself: give --gitops DIR (the checkout \
                      with gotk-components.yaml or the FluxInstance), or run `flux install` \
                      for the new version by hand"
                    .to_string(),
            });
        }
    };
    let res = cluster
        .resource(&ResourceRef::preferred(group, kind))
        .await?;
    let items =
        upkeep_kube::list_values(cluster, &res, &upkeep_kube::ListOptions::all_namespaces())
            .await?;
    let mut out = Vec::new();
    for v in &items {
        let s = |p: &str| v.pointer(p).and_then(serde_json::Value::as_str);
        let ns = s("/metadata/namespace").unwrap_or("default").to_string();
        let name = s("/metadata/name").unwrap_or("").to_string();
        let (hit, watch, current) = match component.kind {
            ComponentKind::K3s => (
                s("/spec/version").is_some(),
                Watch::Plan {
                    namespace: ns.clone(),
                    name: name.clone(),
                },
                s("/spec/version"),
            ),
            _ => (
                is_helm_release_of(component, v),
                Watch::HelmRelease {
                    namespace: ns.clone(),
                    name: name.clone(),
                },
                s("/spec/chart/spec/version"),
            ),
        };
        if hit {
            out.push((
                upkeep_contract::ObjectRef::of(v),
                watch,
                current.map(str::to_string),
            ));
        }
    }
    if out.is_empty() {
        return Err(ApplyError::Input(format!(
            "{}: no {kind} for it in the cluster",
            component
        )));
    }
    Ok(out)
}

fn version_patch(kind: ComponentKind, obj: &ObjectRef, value: &str) -> serde_json::Value {
    let spec = match kind {
        ComponentKind::K3s => serde_json::json!({"version": value}),
        _ => serde_json::json!({"chart": {"spec": {"version": value}}}),
    };
    serde_json::json!({
        "apiVersion": obj.api_version,
        "kind": obj.kind,
        "metadata": {"name": obj.name, "namespace": obj.namespace},
        "spec": spec,
    })
}

const FIELD_MANAGER: &str = "upkeep";

async fn direct_apply(
    step: &Step,
    opts: &Options,
    cluster: &Cluster,
    started: Timestamp,
) -> Result<ApplyResult, ApplyError> {
    let mut out = result(step, ApplyMode::Direct, started);
    out.dry_run = opts.dry_run;
    out.restore_point = opts.restore_point.clone();
    let targets = cluster_targets(cluster, &step.component).await?;
    out.objects = targets.iter().map(|t| t.0.clone()).collect();
    let is = |v: &Option<String>, want: &Version| {
        v.as_deref()
            .and_then(|s| Version::parse(s).ok())
            .is_some_and(|s| target::same(&s, want))
    };
    if targets.iter().all(|t| is(&t.2, &step.to)) {
        out.status = ApplyStatus::NoOp;
        // Asked for already (a step taken up again): still wait until it is in.
        if opts.wait && !opts.dry_run {
            let watches = distinct(targets.iter().map(|t| &t.1));
            wait_direct(cluster, &watches, &step.to, opts, &mut out).await?;
        }
        out.finished_at = Timestamp::now();
        return Ok(out);
    }
    if let Some(t) = targets
        .iter()
        .find(|t| !is(&t.2, &step.from) && !is(&t.2, &step.to))
    {
        return Err(ApplyError::Input(format!(
            "{}: asks for {}, but the step goes from {}: the cluster changed since the plan was made",
            t.0,
            t.2.as_deref().unwrap_or("no version"),
            step.from
        )));
    }
    // Every patch is tried with the server's dry run first, so a refusal
    // changes nothing; a dry run stops there.
    let passes: &[bool] = if opts.dry_run {
        &[true]
    } else {
        &[true, false]
    };
    for &dry in passes {
        for (obj, _, current) in &targets {
            let value = target::styled(current.as_deref().unwrap_or_default(), &step.to);
            let res = cluster
                .resource(&ResourceRef::preferred(
                    obj.api_version.split_once('/').map_or("", |(g, _)| g),
                    &obj.kind,
                ))
                .await?;
            let mut o = ApplyOptions::new(FIELD_MANAGER).force();
            if dry {
                o = o.dry_run();
            }
            cluster
                .apply(&res, &version_patch(step.component.kind, obj, &value), &o)
                .await?;
        }
    }
    if opts.wait && !opts.dry_run {
        let watches = distinct(targets.iter().map(|t| &t.1));
        wait_direct(cluster, &watches, &step.to, opts, &mut out).await?;
    }
    out.finished_at = Timestamp::now();
    Ok(out)
}

/// Takes back the step `done` recorded: a revert commit (GitOps) or the
/// previous version patched back (direct), then the same wait for the old
/// version. The result says `rolled-back`, or `failed` when the cluster did
/// not return to the old version.
pub async fn rollback(
    done: &ApplyResult,
    opts: &Options,
    cluster: Option<&Cluster>,
) -> Result<ApplyResult, ApplyError> {
    let started = Timestamp::now();
    let back = Step {
        component: done.component.clone(),
        from: done.to.clone(),
        to: done.from.clone(),
    };
    let mut out = match done.mode {
        ApplyMode::Gitops => {
            let commit = done.commit.as_deref().ok_or_else(|| {
                ApplyError::Input(
                    "the ApplyResult has no commit: nothing was committed, so there is nothing to revert"
                        .to_string(),
                )
            })?;
            if !is_commit_id(commit) {
                return Err(ApplyError::Input(format!(
                    "the ApplyResult's commit {commit:?} is not a commit id"
                )));
            }
            let dir = opts.gitops.as_deref().ok_or_else(|| {
                ApplyError::Input("rolling back a GitOps step needs --gitops DIR".to_string())
            })?;
            let mut out = result(&back, ApplyMode::Gitops, started);
            out.dry_run = opts.dry_run;
            out.commit = Some(commit.to_string());
            out.objects = done.objects.clone();
            let repo = upkeep_git::Repo::open(dir)?;
            if opts.dry_run {
                out.edits = done
                    .edits
                    .iter()
                    .map(|e| FileEdit {
                        path: e.path.clone(),
                        line: e.line,
                        before: e.after.clone(),
                        after: e.before.clone(),
                    })
                    .collect();
                out.finished_at = Timestamp::now();
                return Ok(out);
            }
            let subject = format!(
                "upkeep: roll back {} {} {} -> {}",
                back.component.kind, back.component, back.from, back.to
            );
            let mut message = commit_message(&subject, &back, opts);
            let reverts = format!("Upkeep-Reverts: {commit}");
            message.push_str(&format!("{reverts}\n"));
            // A rollback stopped after its commit is not reverted twice
            // (which would put the update back).
            let revert = match find_commit(&repo, std::slice::from_ref(&reverts))? {
                Some(done) => {
                    tracing::info!("{commit} was already reverted by {done}");
                    done
                }
                None => {
                    let r = repo.revert(commit, &message)?;
                    tracing::info!("reverted {commit} with {r}");
                    r
                }
            };
            out.revert_commit = Some(revert.clone());
            // An update whose push failed never reached the forge, so the
            // cluster never saw it: the revert stays local, nothing to wait for.
            let never_pushed = done.errors.iter().any(|e| e.source == "push");
            if never_pushed {
                tracing::info!(
                    "{} was never pushed: reverted locally; the cluster did not change",
                    short_commit(commit)
                );
            } else if opts.push {
                repo.push()?;
            }
            if let (Some(cluster), true, false) = (cluster, opts.wait, never_pushed) {
                let tree = upkeep_gitops::scan(dir)?;
                let watches = distinct_watches(&locate(&tree, &back.component)?);
                if let Err(e) = wait_gitops(cluster, &revert, &watches, &back.to, opts).await {
                    fail(&mut out, e)?;
                }
            }
            out
        }
        ApplyMode::Direct => {
            let cluster = cluster.ok_or_else(|| {
                ApplyError::Input("rolling back a direct step needs a cluster".to_string())
            })?;
            let direct = Options {
                gitops: None,
                ..opts.clone()
            };
            direct_apply(&back, &direct, cluster, started).await?
        }
        ApplyMode::Ssh => {
            return Err(ApplyError::Unsupported {
                component: done.component.to_string(),
                why: "k3s refuses downgrades, so a binary rolled over SSH is not rolled back by apply-update: \
                      restore the step's restore point; each node keeps its previous binary beside the \
                      new one (`.upkeep-prev`) for recovery by hand"
                    .to_string(),
            });
        }
    };
    // Already back at the old version (a rollback taken up again) is rolled back too.
    if matches!(out.status, ApplyStatus::Applied | ApplyStatus::NoOp) {
        out.status = ApplyStatus::RolledBack;
    }
    out.finished_at = Timestamp::now();
    Ok(out)
}

/// A run killed in the middle of writing a file leaves our temporary file
/// in the checkout; it would make the tree dirty for good.
fn forget_leftovers(repo: &upkeep_git::Repo) -> Result<(), upkeep_git::GitError> {
    for p in repo.remove_upkeep_leftovers()? {
        tracing::info!("removed {p}, left by an interrupted write");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_message_carries_trailers() {
        let step = Step {
            component: Component {
                kind: ComponentKind::Chart,
                name: "podinfo".into(),
                namespace: Some("apps".into()),
                source: None,
            },
            from: Version::parse("6.5.0").unwrap(),
            to: Version::parse("6.6.0").unwrap(),
        };
        let opts = Options {
            run_id: Some("run-1".into()),
            restore_point: Some("upkeep-20261128T040000Z".into()),
            ..Options::default()
        };
        assert_eq!(
            commit_message("upkeep: chart apps/podinfo 6.5.0 -> 6.6.0", &step, &opts),
            "upkeep: chart apps/podinfo 6.5.0 -> 6.6.0\n\nUpkeep-Component: chart apps/podinfo\n\
             Upkeep-From: 6.5.0\nUpkeep-To: 6.6.0\nUpkeep-Run: run-1\n\
             Upkeep-Restore-Point: upkeep-20261128T040000Z\n"
        );
    }
}
