//! Flux: source-controller for GitRepositories on local disk, kustomize-controller for plain
//! manifests and `kustomization.yaml` `resources:` lists, and helm-controller installing
//! charts from the `SIM.yaml` catalogue with Flux's remediation (rollback) on failure.
//!
//! Only GitRepositories whose URL is local (`file://…` or an absolute path) are fetched, with
//! the real `git` CLI; others (there is no network) keep the status they were loaded with, as
//! do Kustomizations built from them. Not supported (documented in the fixture README):
//! Kustomization `dependsOn`, `patches`, `images`, generators, components, remote bases,
//! post-build substitution and health checks; HelmRelease `chartRef`, values from
//! ConfigMaps/Secrets (inline `values` only), tests and drift detection; OCI and Bucket sources.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::{
    Delay, Reconciler, annotation, conditions_of, generation, list, name_of, ns_of, opts,
    put_status, remove_condition, resource, set_condition, sha256_hex, str_at,
};
use crate::config::{ChartConfig, FluxConfig};
use crate::fixture::{gvk, parse_stream};
use crate::patch::PatchKind;
use crate::store::{DeleteOptions, Store, now};

const SOURCE: &str = "source-controller";
const KUSTOMIZE: &str = "kustomize-controller";
const HELM: &str = "helm-controller";
const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";
/// Entries of `status.history` kept, like helm-controller's default.
const MAX_HISTORY: usize = 5;

struct Artifact {
    repo: PathBuf,
    commit: String,
    revision: String,
}

pub(super) struct Flux {
    charts: Vec<ChartConfig>,
    delay: Delay,
    /// Fetched GitRepositories by `namespace/name`.
    artifacts: HashMap<String, Artifact>,
}

impl Flux {
    pub(super) fn new(cfg: &FluxConfig) -> Self {
        Flux {
            charts: cfg.charts.clone(),
            delay: Delay::new(cfg.delay.0),
            artifacts: HashMap::new(),
        }
    }
}

impl Reconciler for Flux {
    fn pass(&mut self, store: &Store) {
        if let Some(info) = resource(store, "source.toolkit.fluxcd.io", "gitrepositories") {
            let repos = list(store, &info);
            // A deleted source's artifact is gone with it.
            let live: BTreeSet<String> = repos.iter().map(key).collect();
            self.artifacts.retain(|k, _| live.contains(k));
            for obj in repos {
                if let Some(status) = self.git_repository(&obj) {
                    put_status(store, &info, &obj, status, SOURCE);
                }
            }
        }
        if let Some(info) = resource(store, "kustomize.toolkit.fluxcd.io", "kustomizations") {
            for obj in list(store, &info) {
                if let Some(status) = self.kustomization(store, &obj) {
                    put_status(store, &info, &obj, status, KUSTOMIZE);
                }
            }
        }
        if let Some(info) = resource(store, "helm.toolkit.fluxcd.io", "helmreleases") {
            for obj in list(store, &info) {
                if let Some(status) = self.helm_release(&obj) {
                    put_status(store, &info, &obj, status, HELM);
                }
            }
        }
    }
}

fn suspended(obj: &Value) -> bool {
    obj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true)
}

fn key(obj: &Value) -> String {
    format!("{}/{}", ns_of(obj).unwrap_or(""), name_of(obj))
}

/// The local path of a GitRepository URL, or None for a remote one.
fn local_repo(url: &str) -> Option<PathBuf> {
    if let Some(p) = url.strip_prefix("file://") {
        return Some(PathBuf::from(p));
    }
    url.starts_with('/').then(|| PathBuf::from(url))
}

fn git(repo: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(format!("git {}: {}", args.join(" "), line.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Status fields every Flux object echoes.
fn handled(obj: &Value, status: &mut Value) {
    if let Some(at) = annotation(obj, REQUESTED_AT) {
        status["lastHandledReconcileAt"] = json!(at);
    }
}

fn request_pending(obj: &Value) -> bool {
    annotation(obj, REQUESTED_AT).is_some_and(|at| {
        obj.pointer("/status/lastHandledReconcileAt")
            .and_then(Value::as_str)
            != Some(at)
    })
}

impl Flux {
    fn git_repository(&mut self, obj: &Value) -> Option<Value> {
        if suspended(obj) {
            return None;
        }
        let repo = local_repo(str_at(obj, "/spec/url")?)?;
        let gen_ = generation(obj);
        let mut status = obj.get("status").cloned().unwrap_or_else(|| json!({}));
        let mut conds = conditions_of(obj);
        status["observedGeneration"] = json!(gen_);
        handled(obj, &mut status);
        match resolve_ref(&repo, obj.pointer("/spec/ref")) {
            Ok((commit, revision)) => {
                let old_rev = str_at(obj, "/status/artifact/revision");
                if old_rev != Some(revision.as_str())
                    && !self.delay.ready(&format!("git/{}/{revision}", key(obj)))
                {
                    return None;
                }
                let kept_time = obj
                    .pointer("/status/artifact/lastUpdateTime")
                    .filter(|_| old_rev == Some(revision.as_str()))
                    .cloned();
                let ns = ns_of(obj).unwrap_or("");
                let path = format!("gitrepository/{ns}/{}/{commit}.tar.gz", name_of(obj));
                status["artifact"] = json!({
                    "digest": format!("sha256:{}", sha256_hex(commit.as_bytes())),
                    "lastUpdateTime": kept_time.unwrap_or_else(|| json!(now())),
                    "path": path,
                    "revision": revision,
                    "size": 0,
                    "url": format!("http://source-controller.flux-system.svc.cluster.local./{path}"),
                });
                let msg = format!("stored artifact for revision '{revision}'");
                set_condition(&mut conds, "Ready", true, "Succeeded", &msg, Some(gen_));
                set_condition(
                    &mut conds,
                    "ArtifactInStorage",
                    true,
                    "Succeeded",
                    &msg,
                    Some(gen_),
                );
                remove_condition(&mut conds, "FetchFailed");
                self.artifacts.insert(
                    key(obj),
                    Artifact {
                        repo,
                        commit,
                        revision,
                    },
                );
            }
            Err(e) => {
                let msg = format!("failed to checkout and determine revision: {e}");
                set_condition(
                    &mut conds,
                    "Ready",
                    false,
                    "GitOperationFailed",
                    &msg,
                    Some(gen_),
                );
                set_condition(
                    &mut conds,
                    "FetchFailed",
                    true,
                    "GitOperationFailed",
                    &msg,
                    Some(gen_),
                );
            }
        }
        status["conditions"] = json!(conds);
        Some(status)
    }

    fn kustomization(&mut self, store: &Store, obj: &Value) -> Option<Value> {
        if suspended(obj) {
            return None;
        }
        let src_kind = str_at(obj, "/spec/sourceRef/kind").unwrap_or("");
        if src_kind != "GitRepository" {
            return None;
        }
        let src_name = str_at(obj, "/spec/sourceRef/name")?;
        let src_ns = str_at(obj, "/spec/sourceRef/namespace")
            .or(ns_of(obj))
            .unwrap_or("default");
        let src_key = format!("{src_ns}/{src_name}");
        let gen_ = generation(obj);
        let mut status = obj.get("status").cloned().unwrap_or_else(|| json!({}));
        let mut conds = conditions_of(obj);
        let Some(art) = self.artifacts.get(&src_key) else {
            // A remote (unfetchable) source is left as loaded; a missing one is an error.
            let info = resource(store, "source.toolkit.fluxcd.io", "gitrepositories")?;
            if store.get(&info, Some(src_ns), src_name).is_ok() {
                return None;
            }
            let msg = format!("GitRepository.source.toolkit.fluxcd.io \"{src_name}\" not found");
            set_condition(
                &mut conds,
                "Ready",
                false,
                "ArtifactFailed",
                &msg,
                Some(gen_),
            );
            status["observedGeneration"] = json!(gen_);
            handled(obj, &mut status);
            status["conditions"] = json!(conds);
            return Some(status);
        };
        let applied = str_at(obj, "/status/lastAppliedRevision");
        let failed_before = conds
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "False");
        let wanted = applied != Some(art.revision.as_str())
            || status.get("observedGeneration").and_then(Value::as_i64) != Some(gen_)
            || request_pending(obj)
            || failed_before;
        if !wanted {
            return None;
        }
        if !self
            .delay
            .ready(&format!("ks/{}/{}/{gen_}", key(obj), art.revision))
        {
            return None;
        }
        let revision = art.revision.clone();
        status["lastAttemptedRevision"] = json!(revision);
        status["observedGeneration"] = json!(gen_);
        handled(obj, &mut status);
        match apply_kustomization(store, obj, art) {
            Ok(entries) => {
                status["lastAppliedRevision"] = json!(revision);
                status["inventory"] = json!({"entries": entries});
                let msg = format!("Applied revision: {revision}");
                set_condition(
                    &mut conds,
                    "Ready",
                    true,
                    "ReconciliationSucceeded",
                    &msg,
                    Some(gen_),
                );
            }
            Err(e) => {
                set_condition(
                    &mut conds,
                    "Ready",
                    false,
                    "ReconciliationFailed",
                    &e,
                    Some(gen_),
                );
            }
        }
        status["conditions"] = json!(conds);
        Some(status)
    }
}

/// The commit and Flux revision string for a GitRepository `spec.ref`.
fn resolve_ref(repo: &Path, r: Option<&Value>) -> Result<(String, String), String> {
    let field = |k: &str| r.and_then(|r| r.get(k)).and_then(Value::as_str);
    let rev = |spec: &str| -> Result<String, String> {
        // `--end-of-options`: a ref taken from the object is never read as an option.
        Ok(git(
            repo,
            &[
                "rev-parse",
                "--verify",
                "--end-of-options",
                &format!("{spec}^{{commit}}"),
            ],
        )?
        .trim()
        .to_string())
    };
    if let Some(c) = field("commit") {
        let commit = rev(c)?;
        return Ok((commit.clone(), format!("sha1:{commit}")));
    }
    if let Some(n) = field("name") {
        let commit = rev(n)?;
        return Ok((commit.clone(), format!("{n}@sha1:{commit}")));
    }
    if field("semver").is_some() {
        return Err("spec.ref.semver is not supported by sim-cluster".to_string());
    }
    if let Some(t) = field("tag") {
        let commit = rev(&format!("refs/tags/{t}"))?;
        return Ok((commit.clone(), format!("{t}@sha1:{commit}")));
    }
    let branch = field("branch").unwrap_or("master");
    let commit = rev(&format!("refs/heads/{branch}"))?;
    Ok((commit.clone(), format!("{branch}@sha1:{commit}")))
}

/// A commit's tree, read through git without a checkout.
struct Tree<'a> {
    repo: &'a Path,
    commit: &'a str,
    files: BTreeSet<String>,
}

impl Tree<'_> {
    fn is_dir(&self, dir: &str) -> bool {
        dir.is_empty() || self.files.iter().any(|f| f.starts_with(&format!("{dir}/")))
    }

    fn read(&self, path: &str) -> Result<String, String> {
        git(
            self.repo,
            &["cat-file", "blob", &format!("{}:{path}", self.commit)],
        )
    }

    fn kustomization_file(&self, dir: &str) -> Option<String> {
        ["kustomization.yaml", "kustomization.yml", "Kustomization"]
            .iter()
            .map(|f| join(dir, f))
            .find(|p| self.files.contains(p))
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Normalises a repository-relative path (`./a/../b/` → `b`); None if it leaves the repo.
fn normalise(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

/// The objects a directory yields: through its kustomization file, or (as Flux generates one)
/// every manifest under it, descending into sub-directories without a kustomization file.
fn build_dir(tree: &Tree, dir: &str, out: &mut Vec<Value>) -> Result<(), String> {
    if let Some(k) = tree.kustomization_file(dir) {
        return build_kustomize(tree, dir, &k, out);
    }
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut subdirs = BTreeSet::new();
    let mut files = Vec::new();
    for f in &tree.files {
        let Some(rest) = f.strip_prefix(&prefix) else {
            continue;
        };
        match rest.split_once('/') {
            Some((sub, _)) => {
                subdirs.insert(join(dir, sub));
            }
            None if rest.ends_with(".yaml") || rest.ends_with(".yml") => files.push(f.clone()),
            None => {}
        }
    }
    for f in files {
        read_manifests(tree, &f, out)?;
    }
    for d in subdirs {
        build_dir(tree, &d, out)?;
    }
    Ok(())
}

fn read_manifests(tree: &Tree, file: &str, out: &mut Vec<Value>) -> Result<(), String> {
    let text = tree.read(file)?;
    let docs = parse_stream(&text).map_err(|e| format!("{file}: {e}"))?;
    for d in docs {
        // Flux's generator skips YAML that is not a Kubernetes object (e.g. Helm values).
        if d.get("apiVersion").is_some() && d.get("kind").is_some() {
            out.push(d);
        }
    }
    Ok(())
}

const KUSTOMIZE_SUPPORTED: &[&str] = &["apiVersion", "kind", "resources", "namespace"];

fn build_kustomize(tree: &Tree, dir: &str, file: &str, out: &mut Vec<Value>) -> Result<(), String> {
    let text = tree.read(file)?;
    let k = crate::fixture::parse_yaml(&text).map_err(|e| format!("{file}: {e}"))?;
    let Some(map) = k.as_object() else {
        return Err(format!("{file}: not a mapping"));
    };
    if let Some(bad) = map
        .keys()
        .find(|k| !KUSTOMIZE_SUPPORTED.contains(&k.as_str()))
    {
        return Err(format!(
            "{file}: field {bad:?} is not supported by sim-cluster (only resources and namespace)"
        ));
    }
    let mut objs = Vec::new();
    let resources = map
        .get("resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, r) in resources.iter().enumerate() {
        let Some(r) = r.as_str() else {
            return Err(format!("{file}: resources[{i}] is not a string"));
        };
        if r.contains("://") || r.starts_with("github.com/") {
            return Err(format!("{file}: remote resource {r:?} is not supported"));
        }
        let Some(p) = normalise(&join(dir, r)) else {
            return Err(format!("{file}: resource {r:?} is outside the repository"));
        };
        if tree.files.contains(&p) {
            read_manifests(tree, &p, &mut objs)?;
        } else if tree.is_dir(&p) {
            let Some(k) = tree.kustomization_file(&p) else {
                return Err(format!(
                    "{file}: resource {r:?}: directory {p} has no kustomization.yaml"
                ));
            };
            build_kustomize(tree, &p, &k, &mut objs)?;
        } else {
            return Err(format!("{file}: resource {r:?}: {p} does not exist"));
        }
    }
    if let Some(ns) = map.get("namespace").and_then(Value::as_str) {
        // Cluster-scoped objects lose it again at apply time, when the registry knows.
        for o in &mut objs {
            o["metadata"]["namespace"] = json!(ns);
        }
    }
    out.extend(objs);
    Ok(())
}

fn apply_order(obj: &Value) -> u8 {
    match obj.get("kind").and_then(Value::as_str) {
        Some("CustomResourceDefinition") => 0,
        Some("Namespace") => 1,
        _ => 2,
    }
}

/// Builds and server-side-applies a Kustomization; returns the inventory entries.
fn apply_kustomization(store: &Store, ks: &Value, art: &Artifact) -> Result<Vec<Value>, String> {
    let listing = git(&art.repo, &["ls-tree", "-r", "--name-only", &art.commit])?;
    let tree = Tree {
        repo: &art.repo,
        commit: &art.commit,
        files: listing.lines().map(str::to_string).collect(),
    };
    let raw_path = str_at(ks, "/spec/path").unwrap_or("");
    let root =
        normalise(raw_path).ok_or_else(|| format!("path {raw_path:?} leaves the repository"))?;
    if !tree.is_dir(&root) {
        return Err(format!(
            "kustomization path not found: {raw_path:?} is not a directory in revision {}",
            art.revision
        ));
    }
    let mut objs = Vec::new();
    build_dir(&tree, &root, &mut objs)?;
    objs.sort_by_key(apply_order);
    let target_ns = str_at(ks, "/spec/targetNamespace");
    let ks_name = name_of(ks).to_string();
    let ks_ns = ns_of(ks).unwrap_or("default").to_string();
    let opts = crate::store::WriteOptions {
        force: true,
        ..opts(KUSTOMIZE)
    };
    let mut entries = Vec::new();
    for mut o in objs {
        let (g, v, k) = gvk(&o)?;
        let reg = store.registry();
        let info = reg.lookup_kind(&g, &v, &k).ok_or_else(|| {
            format!(
                "no matches for kind \"{k}\" in version \"{}\"",
                o["apiVersion"].as_str().unwrap_or("")
            )
        })?;
        let name = str_at(&o, "/metadata/name")
            .ok_or_else(|| format!("{k} without metadata.name"))?
            .to_string();
        let ns = if info.namespaced {
            let ns = target_ns
                .or(str_at(&o, "/metadata/namespace"))
                .unwrap_or("default")
                .to_string();
            o["metadata"]["namespace"] = json!(ns);
            Some(ns)
        } else {
            if let Some(m) = o["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            None
        };
        let labels = &mut o["metadata"]["labels"];
        if !labels.is_object() {
            *labels = json!({});
        }
        labels["kustomize.toolkit.fluxcd.io/name"] = json!(ks_name);
        labels["kustomize.toolkit.fluxcd.io/namespace"] = json!(ks_ns);
        store
            .patch(
                &info,
                ns.as_deref(),
                &name,
                PatchKind::Apply,
                &o,
                false,
                &opts,
            )
            .map_err(|e| {
                let at = match &ns {
                    Some(ns) => format!("{k}/{ns}/{name}"),
                    None => format!("{k}/{name}"),
                };
                format!("{at} apply failed: {}", e.message)
            })?;
        entries.push(json!({
            "id": format!("{}_{name}_{g}_{k}", ns.as_deref().unwrap_or("")),
            "v": v,
        }));
    }
    if ks.pointer("/spec/prune").and_then(Value::as_bool) == Some(true) {
        prune(store, ks, &entries);
    }
    Ok(entries)
}

/// Deletes what the previous inventory had and the new one does not.
fn prune(store: &Store, ks: &Value, entries: &[Value]) {
    let keep: BTreeSet<&str> = entries.iter().filter_map(|e| e["id"].as_str()).collect();
    let old = ks
        .pointer("/status/inventory/entries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for e in old {
        let Some(id) = e["id"].as_str() else { continue };
        if keep.contains(id) {
            continue;
        }
        let parts: Vec<&str> = id.split('_').collect();
        let [ns, name, group, kind] = parts.as_slice() else {
            continue;
        };
        let version = e["v"].as_str().unwrap_or("v1");
        let Some(info) = store.registry().lookup_kind(group, version, kind) else {
            continue;
        };
        let ns = (!ns.is_empty()).then_some(*ns);
        if let Err(err) = store.delete(&info, ns, name, &DeleteOptions::default()) {
            tracing::debug!("{KUSTOMIZE}: prune {id}: {}", err.message);
        }
    }
}

/// What a HelmRelease asks for, resolved against the catalogue.
struct Wanted {
    chart: String,
    version: String,
    app_version: String,
    broken: bool,
}

impl Flux {
    fn resolve_chart(&self, obj: &Value) -> Result<Wanted, String> {
        let chart =
            str_at(obj, "/spec/chart/spec/chart").ok_or("spec.chart.spec.chart is not set")?;
        let constraint = str_at(obj, "/spec/chart/spec/version").unwrap_or("*");
        let c = upkeep_version::Constraint::parse(constraint)
            .map_err(|e| format!("invalid chart version constraint {constraint:?}: {e}"))?;
        let entry = self
            .charts
            .iter()
            .find(|c| c.name == chart)
            .ok_or_else(|| {
                format!("chart \"{chart}\" is not in the sim-cluster chart catalogue")
            })?;
        let best = entry
            .versions
            .iter()
            .filter_map(|v| Some((upkeep_version::Version::parse(&v.version).ok()?, v)))
            .filter(|(parsed, _)| c.matches(parsed))
            .max_by(|a, b| a.0.cmp(&b.0))
            .ok_or_else(|| {
                format!("no chart version of \"{chart}\" in the catalogue matches {constraint:?}")
            })?;
        Ok(Wanted {
            chart: chart.to_string(),
            version: best.1.version.clone(),
            app_version: best
                .1
                .app_version
                .clone()
                .unwrap_or_else(|| best.1.version.clone()),
            broken: best.1.broken,
        })
    }

    fn helm_release(&mut self, obj: &Value) -> Option<Value> {
        if suspended(obj) {
            return None;
        }
        obj.pointer("/spec/chart")?;
        let gen_ = generation(obj);
        let old = obj.get("status").cloned();
        let mut status = old.clone().unwrap_or_else(|| json!({}));
        let mut conds = conditions_of(obj);
        let gen_changed = status.get("observedGeneration").and_then(Value::as_i64) != Some(gen_);
        let stalled = conds
            .iter()
            .any(|c| c["type"] == "Stalled" && c["status"] == "True");
        let failures = |s: &Value| {
            s.get("installFailures")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + s.get("upgradeFailures")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
        };
        let retry_pending = failures(&status) > 0 && !stalled;
        if !(gen_changed || request_pending(obj) || old.is_none() || retry_pending) {
            return None;
        }
        handled(obj, &mut status);
        if gen_changed {
            // A new generation resets the remediation counters, as helm-controller does.
            if let Some(m) = status.as_object_mut() {
                m.remove("installFailures");
                m.remove("upgradeFailures");
            }
            remove_condition(&mut conds, "Stalled");
        } else if stalled {
            // Retries are exhausted: only the request is acknowledged.
            status["conditions"] = json!(conds);
            return Some(status);
        }
        let wanted = match self.resolve_chart(obj) {
            Ok(w) => w,
            Err(e) => {
                status["observedGeneration"] = json!(gen_);
                set_condition(&mut conds, "Ready", false, "ArtifactFailed", &e, Some(gen_));
                status["conditions"] = json!(conds);
                return Some(status);
            }
        };
        let ns = ns_of(obj).unwrap_or("default");
        let name = name_of(obj);
        let target_ns = str_at(obj, "/spec/targetNamespace").unwrap_or(ns);
        let release = match (
            str_at(obj, "/spec/releaseName"),
            str_at(obj, "/spec/targetNamespace"),
        ) {
            (Some(r), _) => r.to_string(),
            (None, Some(t)) => format!("{t}-{name}"),
            (None, None) => name.to_string(),
        };
        let values = obj.pointer("/spec/values").cloned().unwrap_or(json!({}));
        let config_digest = format!("sha256:{}", sha256_hex(values.to_string().as_bytes()));
        let history: Vec<Value> = status
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let current = history.first();
        let in_sync = current.is_some_and(|c| {
            c["status"] == "deployed"
                && c["chartName"] == wanted.chart.as_str()
                && c["chartVersion"] == wanted.version.as_str()
                && c["configDigest"] == config_digest.as_str()
        });
        let src_ns = str_at(obj, "/spec/chart/spec/sourceRef/namespace").unwrap_or(ns);
        status["helmChart"] = json!(format!("{src_ns}/{ns}-{name}"));
        status["storageNamespace"] =
            json!(str_at(obj, "/spec/storageNamespace").unwrap_or(target_ns));
        if in_sync && failures(&status) == 0 {
            status["observedGeneration"] = json!(gen_);
            status["lastAttemptedGeneration"] = json!(gen_);
            if let Some(c) = current {
                let action = c["action"].as_str().unwrap_or("upgrade");
                let title = if action == "install" {
                    "Install"
                } else {
                    "Upgrade"
                };
                let msg = format!(
                    "Helm {action} succeeded for release {target_ns}/{release}.v{} with chart {}@{}",
                    c["version"], wanted.chart, wanted.version
                );
                let reason = format!("{title}Succeeded");
                set_condition(&mut conds, "Ready", true, &reason, &msg, Some(gen_));
                set_condition(&mut conds, "Released", true, &reason, &msg, Some(gen_));
                remove_condition(&mut conds, "Remediated");
            }
            status["conditions"] = json!(conds);
            return Some(status);
        }
        if !self.delay.ready(&format!(
            "hr/{ns}/{name}/{gen_}/{}/{config_digest}/{}",
            wanted.version,
            failures(&status)
        )) {
            return None;
        }
        let installed = history
            .iter()
            .any(|h| matches!(h["status"].as_str(), Some("deployed" | "superseded")));
        let action = if installed { "upgrade" } else { "install" };
        let number = history
            .iter()
            .filter_map(|h| h["version"].as_i64())
            .max()
            .unwrap_or(0)
            + 1;
        let first_deployed = history
            .last()
            .and_then(|h| h.get("firstDeployed").cloned())
            .unwrap_or_else(|| json!(now()));
        let stamp = now();
        let entry = |n: i64,
                     chart: &str,
                     version: &str,
                     app: &str,
                     digest: &str,
                     st: &str,
                     act: &str| {
            json!({
                "appVersion": app,
                "chartName": chart,
                "chartVersion": version,
                "configDigest": digest,
                "digest": format!("sha256:{}", sha256_hex(format!("{release}/{n}/{chart}@{version}").as_bytes())),
                "firstDeployed": first_deployed,
                "lastDeployed": stamp,
                "name": release,
                "namespace": target_ns,
                "status": st,
                "action": act,
                "version": n,
            })
        };
        let mut new_history: Vec<Value> = history
            .iter()
            .map(|h| {
                let mut h = h.clone();
                if h["status"] == "deployed" {
                    h["status"] = json!("superseded");
                }
                h
            })
            .collect();
        let msg_release = format!("{target_ns}/{release}.v{number}");
        status["observedGeneration"] = json!(gen_);
        status["lastAttemptedGeneration"] = json!(gen_);
        status["lastAttemptedRevision"] = json!(wanted.version);
        status["lastAttemptedConfigDigest"] = json!(config_digest);
        status["lastAttemptedReleaseAction"] = json!(action);
        let title = if action == "install" {
            "Install"
        } else {
            "Upgrade"
        };
        if !wanted.broken {
            new_history.insert(
                0,
                entry(
                    number,
                    &wanted.chart,
                    &wanted.version,
                    &wanted.app_version,
                    &config_digest,
                    "deployed",
                    action,
                ),
            );
            new_history.truncate(MAX_HISTORY);
            status["history"] = json!(new_history);
            if let Some(m) = status.as_object_mut() {
                m.remove("installFailures");
                m.remove("upgradeFailures");
            }
            let msg = format!(
                "Helm {action} succeeded for release {msg_release} with chart {}@{}",
                wanted.chart, wanted.version
            );
            let reason = format!("{title}Succeeded");
            set_condition(&mut conds, "Ready", true, &reason, &msg, Some(gen_));
            set_condition(&mut conds, "Released", true, &reason, &msg, Some(gen_));
            remove_condition(&mut conds, "Remediated");
            remove_condition(&mut conds, "Stalled");
            status["conditions"] = json!(conds);
            return Some(status);
        }
        // The chart version is configured as broken: the release fails.
        let counter = if action == "install" {
            "installFailures"
        } else {
            "upgradeFailures"
        };
        let count = status.get(counter).and_then(Value::as_i64).unwrap_or(0) + 1;
        status[counter] = json!(count);
        new_history.insert(
            0,
            entry(
                number,
                &wanted.chart,
                &wanted.version,
                &wanted.app_version,
                &config_digest,
                "failed",
                action,
            ),
        );
        let fail_msg = format!(
            "Helm {action} failed for release {msg_release} with chart {}@{}: chart version is configured as broken in SIM.yaml",
            wanted.chart, wanted.version
        );
        let fail_reason = format!("{title}Failed");
        set_condition(
            &mut conds,
            "Released",
            false,
            &fail_reason,
            &fail_msg,
            Some(gen_),
        );
        set_condition(
            &mut conds,
            "Ready",
            false,
            &fail_reason,
            &fail_msg,
            Some(gen_),
        );
        let remediation = obj.pointer(&format!("/spec/{action}/remediation"));
        let retries = remediation
            .and_then(|r| r.get("retries"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let remediate_last = remediation
            .and_then(|r| r.get("remediateLastFailure"))
            .and_then(Value::as_bool)
            .unwrap_or(retries > 0);
        let exhausted = retries >= 0 && count > retries;
        let strategy = remediation
            .and_then(|r| r.get("strategy"))
            .and_then(Value::as_str)
            .unwrap_or("rollback");
        let remediate = !exhausted || remediate_last;
        // Remediation: an upgrade rolls back to the previous release, an install is uninstalled.
        if remediate && action == "upgrade" && strategy == "rollback" {
            let previous = history
                .iter()
                .find(|h| matches!(h["status"].as_str(), Some("deployed" | "superseded")));
            if let Some(p) = previous {
                let pv = p["version"].as_i64().unwrap_or(0);
                let chart = p["chartName"].as_str().unwrap_or("").to_string();
                let version = p["chartVersion"].as_str().unwrap_or("").to_string();
                let app = p["appVersion"].as_str().unwrap_or("").to_string();
                let digest = p["configDigest"].as_str().unwrap_or("").to_string();
                new_history.insert(
                    0,
                    entry(
                        number + 1,
                        &chart,
                        &version,
                        &app,
                        &digest,
                        "deployed",
                        "rollback",
                    ),
                );
                let msg = format!(
                    "Helm rollback to previous release {target_ns}/{release}.v{pv} with chart {chart}@{version} succeeded"
                );
                set_condition(
                    &mut conds,
                    "Remediated",
                    true,
                    "RollbackSucceeded",
                    &msg,
                    Some(gen_),
                );
                set_condition(
                    &mut conds,
                    "Ready",
                    false,
                    "RollbackSucceeded",
                    &msg,
                    Some(gen_),
                );
            }
        } else if remediate && action == "install" {
            if let Some(h) = new_history.first_mut() {
                h["status"] = json!("uninstalled");
            }
            let msg = format!("Helm uninstall for release {msg_release} succeeded");
            set_condition(
                &mut conds,
                "Remediated",
                true,
                "UninstallSucceeded",
                &msg,
                Some(gen_),
            );
            set_condition(
                &mut conds,
                "Ready",
                false,
                "UninstallSucceeded",
                &msg,
                Some(gen_),
            );
        }
        if exhausted {
            let verb = if action == "install" {
                "install"
            } else {
                "upgrade"
            };
            let msg = format!("Failed to {verb} after {count} attempt(s)");
            set_condition(
                &mut conds,
                "Stalled",
                true,
                "RetriesExceeded",
                &msg,
                Some(gen_),
            );
        }
        new_history.truncate(MAX_HISTORY);
        status["history"] = json!(new_history);
        status["conditions"] = json!(conds);
        Some(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise_inside_the_repository() {
        assert_eq!(normalise("./apps/").as_deref(), Some("apps"));
        assert_eq!(normalise("a/../b").as_deref(), Some("b"));
        assert_eq!(normalise("./").as_deref(), Some(""));
        assert_eq!(normalise("../x"), None);
        assert_eq!(local_repo("file:///tmp/r"), Some(PathBuf::from("/tmp/r")));
        assert_eq!(local_repo("https://github.com/a/b"), None);
    }
}
