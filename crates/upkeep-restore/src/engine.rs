//! The restore itself, against a live cluster: suspend Flux, CRDs (waited until Established),
//! everything else in order, resume Flux — also when something failed on the way.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::Value;
use upkeep_contract::{
    DocError, ObjectRef, RestoreAction, RestoreMode, RestoreResult, RestoredObject, SafeText,
    Timestamp,
};
use upkeep_kube::{
    ApplyOptions, Cluster, ClusterRead, KubeError, ListOptions, Resource, ResourceRef, Until,
};

use crate::RestoreError;
use crate::diff::{create_body, differences, replace_body};
use crate::flux::{self, Suspensions};
use crate::order::{self, group_kind, is_crd};
use crate::volumes::{self, VolumeOptions};

/// The field manager restore's writes are recorded under.
pub const FIELD_MANAGER: &str = "upkeep-restore";

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub mode: RestoreMode,
    /// The server's dry run (`dryRun=All`): validated and answered, nothing stored; Flux is
    /// not suspended either (what would be is listed).
    pub dry_run: bool,
    /// How long a restored CRD may take to become Established.
    pub crd_timeout: Duration,
    /// Objects written at once within one step of the order (they do not depend on each
    /// other; the steps run one after the other).
    pub concurrency: usize,
}

impl RestoreOptions {
    pub fn new(mode: RestoreMode) -> Self {
        RestoreOptions {
            mode,
            dry_run: false,
            crd_timeout: Duration::from_secs(60),
            concurrency: 8,
        }
    }
}

/// A finished (or stopped) restore.
#[derive(Debug)]
pub struct RestoreRun {
    pub result: RestoreResult,
    /// The cluster stopped answering part way (this error): the rest was not attempted.
    pub stopped: Option<String>,
}

impl RestoreRun {
    /// True when any object failed or anything went wrong around the objects (suspend,
    /// resume, CRD waits): exit 1.
    pub fn has_failures(&self) -> bool {
        !self.result.errors.is_empty()
            || self
                .result
                .objects
                .iter()
                .any(|o| o.action == RestoreAction::Failed)
    }
}

/// The `ObjectRef` of a stored object.
pub fn object_ref(obj: &Value) -> ObjectRef {
    ObjectRef::of(obj)
}

/// Checks that every object names what a write needs, before anything is written.
pub fn check_objects(objects: &[(String, Value)]) -> Result<(), RestoreError> {
    for (path, obj) in objects {
        let bad = |field: &str, problem: &str| RestoreError::BadObject {
            path: path.clone(),
            field: field.to_string(),
            problem: problem.to_string(),
        };
        if !obj.is_object() {
            return Err(bad("(object)", "not a JSON object"));
        }
        for (pointer, field) in [
            ("/apiVersion", "apiVersion"),
            ("/kind", "kind"),
            ("/metadata/name", "metadata.name"),
        ] {
            if obj
                .pointer(pointer)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(bad(field, "missing or empty"));
            }
        }
    }
    Ok(())
}

/// What one object's restore came to.
struct Step {
    entry: RestoredObject,
    /// For a Flux reconciler written suspended: the stored `spec.suspend` to resume to
    /// (`Some(None)`: absent), or `None` when it was not written suspended.
    written_suspended: Option<Option<Value>>,
    /// The stored object was itself suspended: it stays so, whatever the restore did before.
    stored_suspended: bool,
    /// The cluster stopped answering (this error).
    stop: Option<String>,
}

/// Whether the cluster stopped answering (as opposed to refusing this one object).
fn is_unreachable(e: &KubeError) -> bool {
    matches!(e, KubeError::Unreachable { .. } | KubeError::Timeout { .. })
}

struct Engine<'a> {
    cluster: &'a Cluster,
    opts: &'a RestoreOptions,
    write: ApplyOptions,
    /// Resolved resources by (apiVersion, kind); a miss is remembered too, so a thousand
    /// objects of a kind that is not served cost one discovery, not a thousand.
    resources: tokio::sync::Mutex<HashMap<(String, String), Result<Resource, String>>>,
    /// (group, kind) of CRDs a dry run would create: their objects cannot be checked.
    dry_run_crds: BTreeSet<(String, String)>,
}

/// Restores `objects` (the restore point's, already selected) into the cluster.
///
/// Returns an error only when nothing was changed (the cluster is unreachable from the start,
/// or Flux cannot be listed); once writing has started, every outcome is in the result, and
/// Flux objects the restore suspended are resumed before it returns.
pub async fn restore(
    cluster: &Cluster,
    snapshot: &str,
    objects: Vec<Value>,
    opts: &RestoreOptions,
) -> Result<RestoreRun, RestoreError> {
    restore_with_volumes(cluster, snapshot, objects, opts, None).await
}

/// [`restore`], and with `volumes` (`--volumes`) the recorded Longhorn volumes brought back
/// as their claims, right after the claims' step of the order (so before the workloads that
/// mount them): the claims, PVs and Longhorn Volumes of those volumes are left to
/// [`crate::volumes`] instead of being put back as stored.
pub async fn restore_with_volumes(
    cluster: &Cluster,
    snapshot: &str,
    objects: Vec<Value>,
    opts: &RestoreOptions,
    volumes: Option<&VolumeOptions>,
) -> Result<RestoreRun, RestoreError> {
    let started_at = Timestamp::now();
    let (plans, unmapped) = match volumes {
        Some(v) => volumes::plan(v, &objects),
        None => (Vec::new(), Vec::new()),
    };
    let mut taken: Vec<RestoredObject> = Vec::new();
    let objects: Vec<Value> = objects
        .into_iter()
        .filter(|o| {
            if !volumes::taken_over(o, &plans) {
                return true;
            }
            if group_kind(o) != ("", "PersistentVolumeClaim") {
                taken.push(RestoredObject {
                    object: object_ref(o),
                    action: RestoreAction::Skipped,
                    message: Some(SafeText::new(
                        "left out by --volumes: a new volume is made from the recorded snapshot or backup",
                    )),
                });
            }
            false
        })
        .collect();
    let mut write = ApplyOptions::new(FIELD_MANAGER);
    write.dry_run = opts.dry_run;
    let objects = order::order(objects);
    let dry_run_crds = if opts.dry_run {
        objects
            .iter()
            .filter(|o| is_crd(o))
            .filter_map(|o| {
                let s = |p: &str| o.pointer(p).and_then(Value::as_str).map(str::to_string);
                Some((s("/spec/group")?, s("/spec/names/kind")?))
            })
            .collect()
    } else {
        BTreeSet::new()
    };
    let engine = Engine {
        cluster,
        opts,
        write,
        resources: tokio::sync::Mutex::new(HashMap::new()),
        dry_run_crds,
    };
    let mut result = RestoreResult {
        api_version: Default::default(),
        kind: Default::default(),
        snapshot: snapshot.to_string(),
        mode: opts.mode,
        dry_run: opts.dry_run,
        started_at,
        finished_at: started_at,
        objects: Vec::with_capacity(objects.len()),
        suspended: Vec::new(),
        volumes: Vec::new(),
        errors: Vec::new(),
    };
    result.objects.append(&mut taken);
    for (object, volume) in unmapped {
        result.objects.push(object);
        result.volumes.push(volume);
    }

    // Flux first: listing it is also the first contact with the cluster, so an unreachable
    // cluster ends here, before anything changed.
    let mut suspensions = Suspensions::default();
    let running = engine.running_reconcilers().await?;
    let mut stopped = None;
    for (object, res, prior) in running {
        if opts.dry_run {
            suspensions.record(object, prior);
            continue;
        }
        match cluster
            .patch_merge(
                &res,
                object.namespace.as_deref(),
                &object.name,
                &flux::suspend_patch(),
            )
            .await
        {
            Ok(_) => {
                tracing::info!("suspended {object} for the restore");
                suspensions.record(object, prior);
            }
            // Gone since it was listed: nothing left to fight the restore.
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                // Restoring under a reconciler that keeps running would be undone behind
                // our back: stop before writing anything.
                if is_unreachable(&e) {
                    stopped = Some(e.to_string());
                }
                result.errors.push(doc_error(
                    "flux",
                    &format!("cannot suspend {object}, so nothing was restored: {e}"),
                    &object,
                ));
                break;
            }
        }
    }

    if result.errors.is_empty() {
        // CRDs (one step), then the other steps of the order.
        let mut steps: Vec<Vec<Value>> = Vec::new();
        let mut last = None;
        for obj in objects {
            let (g, k) = group_kind(&obj);
            let p = order::priority(g, k);
            if last != Some(p) {
                steps.push(Vec::new());
                last = Some(p);
            }
            if let Some(step) = steps.last_mut() {
                step.push(obj);
            }
        }
        let claims_step = order::priority("", "PersistentVolumeClaim");
        let mut volumes_done = plans.is_empty();
        let mut pending_steps = steps.into_iter().peekable();
        loop {
            let next_priority = pending_steps.peek().and_then(|s| s.first()).map(|o| {
                let (g, k) = group_kind(o);
                order::priority(g, k)
            });
            // The volumes go in once the claims' step is behind (or absent), before the rest.
            if !volumes_done && next_priority.is_none_or(|p| p > claims_step) {
                volumes_done = true;
                if let (Some(v), None) = (volumes, &stopped) {
                    for (object, volume) in
                        volumes::restore(cluster, &plans, snapshot, opts.mode, opts.dry_run, v)
                            .await
                    {
                        result.objects.push(object);
                        result.volumes.push(volume);
                    }
                }
            }
            let Some(step) = pending_steps.next() else {
                break;
            };
            if let Some(e) = &stopped {
                for obj in &step {
                    result.objects.push(RestoredObject {
                        object: object_ref(obj),
                        action: RestoreAction::Skipped,
                        message: Some(SafeText::new(&format!(
                            "not attempted: the restore stopped when the cluster stopped answering ({e})"
                        ))),
                    });
                }
                continue;
            }
            let crds = step.first().is_some_and(is_crd);
            let done: Vec<(Step, Value)> = stream::iter(step.into_iter().map(|obj| {
                let engine = &engine;
                async move { (engine.restore_one(&obj).await, obj) }
            }))
            .buffered(opts.concurrency.max(1))
            .collect()
            .await;
            let mut written_crds = Vec::new();
            for (step, obj) in done {
                let r = &step.entry.object;
                if step.stored_suspended {
                    // Suspended in the restore point: it stays suspended, ours or not.
                    suspensions.forget(r);
                } else if let Some(prior) = step.written_suspended {
                    suspensions.set_prior(r.clone(), prior);
                }
                if stopped.is_none() {
                    stopped = step.stop;
                }
                if crds
                    && matches!(
                        step.entry.action,
                        RestoreAction::Created | RestoreAction::Replaced
                    )
                    && !opts.dry_run
                {
                    written_crds.push((result.objects.len(), obj));
                }
                result.objects.push(step.entry);
            }
            if crds && !written_crds.is_empty() {
                engine.wait_established(&written_crds, &mut result).await;
            }
        }
    }

    // Resume what the restore suspended, whatever happened above.
    result.suspended = suspensions.refs();
    if !opts.dry_run {
        for s in suspensions.entries() {
            let res = match engine.resolve(&s.object).await {
                Ok(r) => r,
                Err(message) => {
                    result.errors.push(doc_error(
                        "flux",
                        &format!("cannot resume {}: {message}", s.object),
                        &s.object,
                    ));
                    continue;
                }
            };
            match cluster
                .patch_merge(
                    &res,
                    s.object.namespace.as_deref(),
                    &s.object.name,
                    &s.resume_patch(),
                )
                .await
            {
                Ok(_) => tracing::info!("resumed {}", s.object),
                Err(e) => result.errors.push(doc_error(
                    "flux",
                    &format!(
                        "cannot resume {} (resume it with `flux resume`): {e}",
                        s.object
                    ),
                    &s.object,
                )),
            }
        }
    }
    result.finished_at = Timestamp::now();
    Ok(RestoreRun { result, stopped })
}

fn doc_error(source: &str, message: &str, object: &ObjectRef) -> DocError {
    DocError {
        source: source.to_string(),
        message: SafeText::new(message),
        target: Some(object.to_string()),
    }
}

impl Engine<'_> {
    /// Every Flux reconciler in the cluster that is running now, with its `spec.suspend`.
    async fn running_reconcilers(
        &self,
    ) -> Result<Vec<(ObjectRef, Resource, Option<Value>)>, RestoreError> {
        let mut out = Vec::new();
        for (group, kind) in flux::RECONCILERS {
            let res = match self
                .cluster
                .resource(&ResourceRef::preferred(group, kind))
                .await
            {
                Ok(r) => r,
                // Flux (or this part of it) is not installed: nothing of it to fight.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            let opts = ListOptions::all_namespaces();
            let items: Vec<_> = self.cluster.list(&res, &opts).try_collect().await?;
            for item in items {
                let value = serde_json::to_value(&item).unwrap_or(Value::Null);
                if flux::is_suspended(&value) {
                    continue;
                }
                let object = ObjectRef {
                    api_version: res.api.api_version.clone(),
                    kind: res.api.kind.clone(),
                    namespace: item.metadata.namespace.clone(),
                    name: item.metadata.name.clone().unwrap_or_default(),
                };
                out.push((object, res.clone(), value.pointer("/spec/suspend").cloned()));
            }
        }
        Ok(out)
    }

    /// The served resource for an object, remembered per (apiVersion, kind).
    async fn resolve(&self, r: &ObjectRef) -> Result<Resource, String> {
        let key = (r.api_version.clone(), r.kind.clone());
        if let Some(hit) = self.resources.lock().await.get(&key) {
            return hit.clone();
        }
        let found = self
            .cluster
            .resource(&ResourceRef::from_api_version(&r.api_version, &r.kind))
            .await
            .map_err(|e| e.to_string());
        self.resources.lock().await.insert(key, found.clone());
        found
    }

    async fn restore_one(&self, stored: &Value) -> Step {
        let object = object_ref(stored);
        let (group, kind) = group_kind(stored);
        let stored_suspended = flux::is_reconciler(group, kind) && flux::is_suspended(stored);
        let mut step = Step {
            entry: RestoredObject {
                object: object.clone(),
                action: RestoreAction::Failed,
                message: None,
            },
            written_suspended: None,
            stored_suspended,
            stop: None,
        };
        let res = match self.resolve(&object).await {
            Ok(r) => r,
            Err(message) => {
                if self
                    .dry_run_crds
                    .contains(&(group.to_string(), kind.to_string()))
                {
                    step.entry.action = RestoreAction::Created;
                    step.entry.message = Some(SafeText::new(
                        "not checked by the server: its CustomResourceDefinition is created by this restore",
                    ));
                } else {
                    step.entry.message = Some(SafeText::new(&message));
                }
                return step;
            }
        };
        let ns = object.namespace.as_deref();
        let live = match self.cluster.get(&res, ns, &object.name).await {
            Ok(live) => live.map(|l| serde_json::to_value(&l).unwrap_or(Value::Null)),
            Err(e) => return self.failed(step, e),
        };
        // A Flux reconciler is written suspended, so it does not start before the rest is
        // back; resuming at the end puts the stored value.
        let reconciler = flux::is_reconciler(group, kind);
        let mut desired = stored.clone();
        let suspend_prior = if reconciler {
            flux::write_suspended(&mut desired)
        } else {
            None
        };
        match live {
            None => match self
                .cluster
                .create(&res, &create_body(&desired), &self.write)
                .await
            {
                Ok(_) => {
                    step.entry.action = RestoreAction::Created;
                    step.written_suspended = suspend_prior;
                    step
                }
                Err(e) => self.failed(step, e),
            },
            Some(live) if live.pointer("/metadata/deletionTimestamp").is_some() => {
                step.entry.message = Some(SafeText::new(&format!(
                    "{} is being deleted (finalizers pending): restore again once it is gone",
                    res.object_target(ns, &object.name)
                )));
                step
            }
            Some(live) => {
                let body = replace_body(&desired, &live);
                let diffs = differences(&body, &live);
                if diffs.is_empty() {
                    step.entry.action = RestoreAction::Unchanged;
                    return step;
                }
                if self.opts.mode == RestoreMode::Create {
                    step.entry.action = RestoreAction::Skipped;
                    step.entry.message = Some(SafeText::new(&format!(
                        "exists and differs ({}); --mode replace puts the stored one back",
                        diffs.join(", ")
                    )));
                    return step;
                }
                match self.replace(&res, &desired, body, &object).await {
                    Ok(()) => {
                        step.entry.action = RestoreAction::Replaced;
                        step.entry.message =
                            Some(SafeText::new(&format!("differed in {}", diffs.join(", "))));
                        step.written_suspended = suspend_prior;
                        step
                    }
                    Err(e) => self.failed(step, e),
                }
            }
        }
    }

    /// PUT, and once more against a fresh read when someone changed the object in between
    /// (a 409 on resourceVersion): the restore point wins over a concurrent writer, but never
    /// over a change it has not seen.
    async fn replace(
        &self,
        res: &Resource,
        desired: &Value,
        body: Value,
        object: &ObjectRef,
    ) -> Result<(), KubeError> {
        match self.cluster.replace(res, &body, &self.write).await {
            Err(e) if e.is_conflict() => {
                let ns = object.namespace.as_deref();
                let Some(live) = self.cluster.get(res, ns, &object.name).await? else {
                    self.cluster
                        .create(res, &create_body(desired), &self.write)
                        .await?;
                    return Ok(());
                };
                let live = serde_json::to_value(&live).unwrap_or(Value::Null);
                let body = replace_body(desired, &live);
                self.cluster.replace(res, &body, &self.write).await?;
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    fn failed(&self, mut step: Step, e: KubeError) -> Step {
        step.entry.action = RestoreAction::Failed;
        step.entry.message = Some(SafeText::new(&e.to_string()));
        if is_unreachable(&e) {
            step.stop = Some(e.to_string());
        }
        step
    }

    /// Waits for each CRD just written to be Established, then refreshes discovery so its
    /// kinds resolve. A CRD that does not become Established is a failure of that CRD (its
    /// custom resources then fail on their own, naming the kind).
    async fn wait_established(&self, written: &[(usize, Value)], result: &mut RestoreResult) {
        let crds = match self
            .cluster
            .resource(&ResourceRef::preferred(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
            ))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                result.errors.push(DocError {
                    source: "cluster".to_string(),
                    message: SafeText::new(&e.to_string()),
                    target: None,
                });
                return;
            }
        };
        let established = Until::condition("Established", "True");
        let waits = written.iter().map(|(i, crd)| {
            let name = crd
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let (crds, established) = (&crds, &established);
            async move {
                let r = self
                    .cluster
                    .wait_for(crds, None, name, established, self.opts.crd_timeout)
                    .await;
                (*i, r)
            }
        });
        let outcomes: Vec<_> = stream::iter(waits)
            .buffer_unordered(self.opts.concurrency.max(1))
            .collect()
            .await;
        for (i, r) in outcomes {
            if let Err(e) = r
                && let Some(entry) = result.objects.get_mut(i)
            {
                entry.action = RestoreAction::Failed;
                entry.message = Some(SafeText::new(&e.to_string()));
            }
        }
        self.cluster.refresh_discovery().await;
        // Kinds that were not served before the CRDs were restored may be now.
        self.resources.lock().await.clear();
    }
}
