//! What an update touches, said before it is applied.
//!
//! A dependency map built from the cluster's objects (and the GitOps
//! checkout, where the manifests of the next apply live):
//! - Longhorn → its StorageClasses → the claims on them → the workloads that
//!   mount them, with each volume's size, robustness and newest backup;
//! - ingress-nginx → the IngressClasses of its controller → their Ingresses
//!   (and those with no class, when its class is the default) → backends;
//! - cert-manager → Certificates, Issuers and ClusterIssuers;
//! - any chart → what its HelmRelease installed (Flux's and Helm's labels)
//!   and the custom resources of the CRDs it owns;
//! - Flux → every Flux object; k3s → the nodes, its bundled components and
//!   every workload (a drain moves them all).
//!
//! Breaking changes: API versions the target Kubernetes minor stops serving,
//! found in the checkout's manifests and in the cluster — including in
//! `managedFields[].apiVersion`, because Flux applies with server-side apply
//! and leaves no last-applied annotation for kubent-style tools to read —
//! and the blockers the detectors already reported for the hop.
//!
//! Everything here is a pure function of the objects it is given, so a
//! `kubectl get -o json` dump gives the same answer as the live cluster.

mod chart;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use upkeep_contract::{
    Affected, ApiVersion, Component, ComponentKind, Finding, ImpactReport, ObjectRef, Risk,
    SafeText, Severity, Timestamp, UpdateImpact, UpdateType, Version, VolumeImpact,
};
use upkeep_kube::{ClusterRead, KubeError, ListOptions};

/// One update to assess: from a report's candidate or a plan's step.
#[derive(Debug, Clone)]
pub struct Update {
    pub component: Component,
    pub from: Version,
    pub to: Version,
    pub update: UpdateType,
    /// What the detectors already found against this hop (removed Flux
    /// APIs, stored versions...), carried into `breaking`.
    pub blockers: Vec<Finding>,
    /// What the release notes of the versions in (from, to] say must be
    /// done (Longhorn's migration requirements, upgrade notices), by version.
    pub notes: Vec<(Version, SafeText)>,
}

/// What the analysis reads.
#[derive(Debug, Default)]
pub struct Inputs<'a> {
    /// Every object of the cluster (or a dump of it).
    pub objects: Vec<Value>,
    pub gitops: Option<&'a upkeep_gitops::Tree>,
    /// "Now", for the age of backups.
    pub now: Option<Timestamp>,
    /// Each chart update's archives at `from` and `to` (keyed by the
    /// component as shown, `namespace/name`), or why they could not be read.
    pub charts:
        BTreeMap<String, Result<(upkeep_helm::ChartFiles, upkeep_helm::ChartFiles), String>>,
}

/// Reading the cluster failed.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ImpactError(#[from] KubeError);

impl ImpactError {
    pub fn exit_code(&self) -> u8 {
        self.0.exit_code()
    }
}

/// Every object of every resource the source serves, as JSON.
pub async fn read_all<R: ClusterRead>(src: &R) -> Result<Vec<Value>, ImpactError> {
    let mut out = Vec::new();
    for res in src.resources().await? {
        // Events and the like say nothing about what an update touches.
        if matches!(
            res.api.kind.as_str(),
            "Event" | "Lease" | "EndpointSlice" | "Endpoints" | "ControllerRevision"
        ) {
            continue;
        }
        match upkeep_kube::list_values(src, &res, &ListOptions::all_namespaces()).await {
            Ok(v) => out.extend(v),
            // A resource we may not list is left out, not fatal: say so.
            Err(e) if matches!(e.status_code(), Some(403) | Some(404) | Some(405)) => {
                tracing::warn!("{}: not read ({e})", res.api.kind);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

fn s<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

fn kind(v: &Value) -> &str {
    s(v, "/kind").unwrap_or("")
}

fn group(v: &Value) -> &str {
    s(v, "/apiVersion")
        .and_then(|a| a.split_once('/'))
        .map_or("", |(g, _)| g)
}

fn name(v: &Value) -> &str {
    s(v, "/metadata/name").unwrap_or("")
}

fn ns(v: &Value) -> Option<&str> {
    s(v, "/metadata/namespace")
}

fn label<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.pointer("/metadata/labels")
        .and_then(|l| l.get(k))
        .and_then(Value::as_str)
}

fn annotation<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.pointer("/metadata/annotations")
        .and_then(|l| l.get(k))
        .and_then(Value::as_str)
}

fn oref(v: &Value) -> ObjectRef {
    ObjectRef {
        api_version: s(v, "/apiVersion").unwrap_or("").to_string(),
        kind: kind(v).to_string(),
        namespace: ns(v).map(str::to_string),
        name: name(v).to_string(),
    }
}

fn shown(o: &ObjectRef) -> String {
    match &o.namespace {
        Some(n) => format!("{} {n}/{}", o.kind, o.name),
        None => format!("{} {}", o.kind, o.name),
    }
}

const WORKLOADS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job"];

/// The objects, indexed the few ways the analysis looks them up.
struct Index<'a> {
    all: &'a [Value],
}

impl<'a> Index<'a> {
    fn of(&self, group: &'a str, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.all
            .iter()
            .filter(move |v| self::kind(v) == kind && self::group(v) == group)
    }

    /// The pod template of a workload (a CronJob's is one level deeper).
    fn template(w: &Value) -> Option<&Value> {
        match kind(w) {
            "CronJob" => w.pointer("/spec/jobTemplate/spec/template/spec"),
            _ => w.pointer("/spec/template/spec"),
        }
    }

    /// Workloads (top-level: Jobs a CronJob owns are the CronJob's) and
    /// bare pods, with their pod specs.
    fn workloads(&self) -> Vec<(&'a Value, &'a Value)> {
        let mut out = Vec::new();
        let selects = |w: &Value, pod: &Value| {
            ns(w) == ns(pod)
                && w.pointer("/spec/selector/matchLabels")
                    .and_then(Value::as_object)
                    .is_some_and(|m| {
                        !m.is_empty() && m.iter().all(|(k, v)| label(pod, k) == v.as_str())
                    })
        };
        for v in self.all {
            let k = kind(v);
            let owned = v
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|o| !o.is_empty());
            if WORKLOADS.contains(&k) && !group(v).is_empty() && !(k == "Job" && owned) {
                if let Some(t) = Self::template(v) {
                    out.push((v, t));
                }
            } else if k == "Pod"
                && group(v).is_empty()
                && !owned
                // A pod a workload selects is that workload's, ownerReferences or not.
                && !self
                    .all
                    .iter()
                    .any(|w| WORKLOADS.contains(&kind(w)) && selects(w, v))
                && let Some(spec) = v.pointer("/spec")
            {
                out.push((v, spec));
            }
        }
        out
    }
}

/// The claims a pod spec mounts.
fn claims(spec: &Value) -> Vec<&str> {
    spec.pointer("/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| s(v, "/persistentVolumeClaim/claimName"))
        .collect()
}

fn push(
    out: &mut Vec<Affected>,
    seen: &mut BTreeSet<String>,
    v: &Value,
    via: String,
    restarts: bool,
) {
    let o = oref(v);
    if seen.insert(shown(&o)) {
        out.push(Affected {
            object: o,
            via: SafeText::new(&via),
            restarts,
        });
    }
}

const LONGHORN_DRIVER: &str = "driver.longhorn.io";

/// Longhorn: StorageClasses → claims → workloads, and each volume's state.
fn longhorn(ix: &Index) -> (Vec<Affected>, Vec<VolumeImpact>) {
    let mut affected = Vec::new();
    let mut seen = BTreeSet::new();
    let classes: BTreeSet<&str> = ix
        .of("storage.k8s.io", "StorageClass")
        .filter(|c| s(c, "/provisioner") == Some(LONGHORN_DRIVER))
        .map(name)
        .collect();
    let pvs: BTreeMap<&str, &Value> = ix
        .of("", "PersistentVolume")
        .map(|p| (name(p), p))
        .collect();
    let volumes: BTreeMap<&str, &Value> = ix
        .of("longhorn.io", "Volume")
        .map(|v| (name(v), v))
        .collect();
    let backups: Vec<&Value> = ix.of("longhorn.io", "Backup").collect();
    let workloads = ix.workloads();
    let mut storage = Vec::new();
    for pvc in ix.of("", "PersistentVolumeClaim") {
        let pv = s(pvc, "/spec/volumeName").and_then(|n| pvs.get(n).copied());
        let on_longhorn = s(pvc, "/spec/storageClassName").is_some_and(|c| classes.contains(c))
            || pv.is_some_and(|p| s(p, "/spec/csi/driver") == Some(LONGHORN_DRIVER));
        if !on_longhorn {
            continue;
        }
        let claim_ns = ns(pvc).unwrap_or("default");
        let class = s(pvc, "/spec/storageClassName").unwrap_or("?");
        push(
            &mut affected,
            &mut seen,
            pvc,
            format!("StorageClass {class} (Longhorn)"),
            false,
        );
        let mut users = Vec::new();
        for (w, spec) in &workloads {
            if ns(w).unwrap_or("default") == claim_ns && claims(spec).contains(&name(pvc)) {
                users.push(oref(w));
                push(
                    &mut affected,
                    &mut seen,
                    w,
                    format!(
                        "mounts PersistentVolumeClaim {claim_ns}/{} on StorageClass {class} (Longhorn)",
                        name(pvc)
                    ),
                    false,
                );
            }
        }
        let handle = pv
            .and_then(|p| s(p, "/spec/csi/volumeHandle"))
            .or_else(|| s(pvc, "/spec/volumeName"))
            .unwrap_or("");
        let vol = volumes.get(handle).copied();
        let last_backup = backups
            .iter()
            .filter(|b| {
                label(b, "backup-volume") == Some(handle)
                    || s(b, "/status/volumeName") == Some(handle)
            })
            .filter(|b| s(b, "/status/state") == Some("Completed"))
            .filter_map(|b| {
                s(b, "/status/backupCreatedAt")
                    .or_else(|| s(b, "/status/snapshotCreatedAt"))
                    .and_then(|t| Timestamp::parse(t).ok())
            })
            .max();
        storage.push(VolumeImpact {
            claim: oref(pvc),
            volume: handle.to_string(),
            size: s(pvc, "/spec/resources/requests/storage")
                .or_else(|| s(pvc, "/status/capacity/storage"))
                .map(str::to_string),
            robustness: vol
                .and_then(|v| s(v, "/status/robustness"))
                .map(str::to_string),
            last_backup,
            workloads: users,
        });
    }
    (affected, storage)
}

/// ingress-nginx: its IngressClasses, their Ingresses (and class-less ones
/// when its class is the default), and their backend Services.
fn ingress_nginx(ix: &Index) -> Vec<Affected> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let classes: Vec<&Value> = ix
        .of("networking.k8s.io", "IngressClass")
        .filter(|c| s(c, "/spec/controller") == Some("k8s.io/ingress-nginx"))
        .collect();
    let default_is_ours = classes
        .iter()
        .any(|c| annotation(c, "ingressclass.kubernetes.io/is-default-class") == Some("true"));
    let names: BTreeSet<&str> = classes.iter().map(|c| name(c)).collect();
    for c in &classes {
        push(&mut out, &mut seen, c, "its controller".to_string(), false);
    }
    let services: Vec<&Value> = ix.of("", "Service").collect();
    for ing in ix.of("networking.k8s.io", "Ingress") {
        let class = s(ing, "/spec/ingressClassName")
            .or_else(|| annotation(ing, "kubernetes.io/ingress.class"));
        let ours = match class {
            Some(c) => names.contains(c),
            None => default_is_ours,
        };
        if !ours {
            continue;
        }
        let via = format!("IngressClass {}", class.unwrap_or("(default)"));
        push(&mut out, &mut seen, ing, via.clone(), false);
        let ing_ns = ns(ing).unwrap_or("default");
        let mut backends: Vec<&str> = Vec::new();
        if let Some(b) = s(ing, "/spec/defaultBackend/service/name") {
            backends.push(b);
        }
        for rule in ing
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for p in rule
                .pointer("/http/paths")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(b) = s(p, "/backend/service/name") {
                    backends.push(b);
                }
            }
        }
        for b in backends {
            if let Some(svc) = services
                .iter()
                .find(|svc| name(svc) == b && ns(svc).unwrap_or("default") == ing_ns)
            {
                push(
                    &mut out,
                    &mut seen,
                    svc,
                    format!("backend of Ingress {ing_ns}/{} ({via})", name(ing)),
                    false,
                );
            }
        }
    }
    out
}

fn cert_manager(ix: &Index) -> Vec<Affected> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for k in ["ClusterIssuer", "Issuer", "Certificate"] {
        for v in ix.of("cert-manager.io", k) {
            push(
                &mut out,
                &mut seen,
                v,
                "cert-manager issues and renews it".to_string(),
                false,
            );
        }
    }
    out
}

/// What a HelmRelease installed: Flux labels its objects with the
/// release's name and namespace; Helm's own labels are the fallback.
fn chart_objects(ix: &Index, c: &Component) -> Vec<Affected> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let hr_ns = c.namespace.as_deref().unwrap_or("default");
    let hr = ix
        .of("helm.toolkit.fluxcd.io", "HelmRelease")
        .find(|h| name(h) == c.name && ns(h).unwrap_or("default") == hr_ns);
    let release = hr
        .and_then(|h| s(h, "/spec/releaseName"))
        .unwrap_or(&c.name);
    let target_ns = hr
        .and_then(|h| s(h, "/spec/targetNamespace"))
        .unwrap_or(hr_ns);
    let ours = |v: &Value| {
        (label(v, "helm.toolkit.fluxcd.io/name") == Some(c.name.as_str())
            && label(v, "helm.toolkit.fluxcd.io/namespace") == Some(hr_ns))
            || (annotation(v, "meta.helm.sh/release-name") == Some(release)
                && annotation(v, "meta.helm.sh/release-namespace") == Some(target_ns))
            || (label(v, "app.kubernetes.io/instance") == Some(release)
                && ns(v).is_none_or(|n| n == target_ns))
    };
    let mut crds = Vec::new();
    for v in ix.all.iter().filter(|v| ours(v)) {
        let restarts = WORKLOADS.contains(&kind(v)) && !group(v).is_empty();
        if kind(v) == "CustomResourceDefinition" {
            crds.push(v);
        }
        push(
            &mut out,
            &mut seen,
            v,
            format!("installed by HelmRelease {hr_ns}/{}", c.name),
            restarts,
        );
    }
    // Workloads whose pods the release's templates own restart on upgrade;
    // so does everything that uses the CRDs it ships.
    for crd in crds {
        let g = s(crd, "/spec/group").unwrap_or("");
        let k = s(crd, "/spec/names/kind").unwrap_or("");
        for cr in ix.of(g, k) {
            push(
                &mut out,
                &mut seen,
                cr,
                format!(
                    "a {k} of CustomResourceDefinition {} (from the chart)",
                    name(crd)
                ),
                false,
            );
        }
    }
    out
}

fn flux_objects(ix: &Index) -> Vec<Affected> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for v in ix
        .all
        .iter()
        .filter(|v| group(v).ends_with(".toolkit.fluxcd.io"))
    {
        push(
            &mut out,
            &mut seen,
            v,
            "reconciled by Flux".to_string(),
            false,
        );
    }
    for v in ix
        .of("apps", "Deployment")
        .filter(|d| ns(d) == Some("flux-system"))
    {
        push(
            &mut out,
            &mut seen,
            v,
            "a Flux controller".to_string(),
            true,
        );
    }
    out
}

fn k3s_objects(ix: &Index) -> Vec<Affected> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for n in ix.of("", "Node") {
        push(&mut out, &mut seen, n, "runs k3s".to_string(), false);
    }
    // k3s's packaged components: its HelmCharts and Addons in kube-system.
    for k in ["HelmChart", "Addon"] {
        for v in ix.all.iter().filter(|v| {
            kind(v) == k && group(v).ends_with(".cattle.io") && ns(v) == Some("kube-system")
        }) {
            push(&mut out, &mut seen, v, "bundled with k3s".to_string(), true);
        }
    }
    for (w, _) in ix.workloads() {
        // DaemonSet pods stay on their node; everything else is drained.
        let restarts = kind(w) != "DaemonSet";
        push(
            &mut out,
            &mut seen,
            w,
            "runs on a node k3s restarts (drained first)".to_string(),
            restarts,
        );
    }
    out
}

fn minor(v: &Version) -> Option<upkeep_contract::MinorVersion> {
    Some(v.minor_line())
}

/// Objects on an API version removed in (from, to]: in the checkout, as
/// written, and in the cluster, in each managedFields entry.
fn removed_apis(ix: &Index, tree: Option<&upkeep_gitops::Tree>, u: &Update) -> Vec<Finding> {
    let (Some(from), Some(to)) = (minor(&u.from), minor(&u.to)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(tree) = tree {
        for o in tree.objects() {
            if let Some((m, repl)) =
                upkeep_platform::removed_between(&o.api_version.value, &o.kind.value, from, to)
            {
                out.push(Finding {
                    severity: Severity::Blocking,
                    code: "removed-api-in-git".to_string(),
                    message: SafeText::new(&format!(
                        "{} {} is written as {}, which Kubernetes v1.{m} no longer serves: migrate it to {repl}",
                        o.kind.value,
                        o.name().unwrap_or("<unnamed>"),
                        o.api_version.value
                    )),
                    locations: vec![upkeep_contract::Location::Gitops {
                        path: o.path.clone(),
                        line: Some(o.api_version.line),
                        object: None,
                    }],
                });
            }
        }
    }
    for v in ix.all {
        let k = kind(v);
        let mut seen = BTreeSet::new();
        for mf in v
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(api) = s(mf, "/apiVersion") else {
                continue;
            };
            let Some((m, repl)) = upkeep_platform::removed_between(api, k, from, to) else {
                continue;
            };
            let manager = s(mf, "/manager").unwrap_or("?");
            if !seen.insert((api.to_string(), manager.to_string())) {
                continue;
            }
            let o = oref(v);
            out.push(Finding {
                severity: Severity::Blocking,
                code: "removed-api-in-managed-fields".to_string(),
                message: SafeText::new(&format!(
                    "{} was last written by {manager} as {api} (managedFields), which Kubernetes v1.{m} no longer serves: \
                     that manager must move to {repl} before the hop, or its next apply fails",
                    shown(&o)
                )),
                locations: vec![upkeep_contract::Location::Cluster {
                    object: o,
                    field: Some("metadata.managedFields".to_string()),
                }],
            });
        }
    }
    out
}

/// A chart by what it installs: its chart name when the report says, else
/// the release name.
fn chart_name(c: &Component) -> &str {
    c.source
        .as_ref()
        .and_then(|s| s.chart.as_deref())
        .unwrap_or(&c.name)
}

const BACKUP_FRESH_DAYS: i64 = 7;

fn assess(u: &Update, ix: &Index, inputs: &Inputs) -> UpdateImpact {
    let mut storage = Vec::new();
    let mut recommendations: Vec<String> = Vec::new();
    let mut breaking = u.blockers.clone();
    for (v, note) in &u.notes {
        recommendations.push(format!("the release notes of {v} say: {}", note.as_str()));
    }
    let mut affected = match u.component.kind {
        ComponentKind::Longhorn => {
            let (a, st) = longhorn(ix);
            storage = st;
            recommendations.push(
                "Longhorn upgrades its engines with the volumes attached; a minor cannot be downgraded, so each volume below needs a backup that restores"
                    .to_string(),
            );
            a
        }
        ComponentKind::K3s => {
            breaking.extend(removed_apis(ix, inputs.gitops, u));
            recommendations.push(
                "k3s refuses downgrades: take an etcd snapshot (k3s etcd-snapshot save) as well as the restore point"
                    .to_string(),
            );
            k3s_objects(ix)
        }
        ComponentKind::Flux => flux_objects(ix),
        ComponentKind::Chart => {
            match inputs.charts.get(&u.component.to_string()) {
                Some(Ok(pair)) => breaking.extend(chart::findings(u, pair, ix, inputs.gitops)),
                Some(Err(why)) => recommendations.push(format!(
                    "the chart's values keys and CRD versions were not compared: {why}"
                )),
                None => {}
            }
            let mut affected = chart_objects(ix, &u.component);
            match chart_name(&u.component) {
                "ingress-nginx" => affected.extend(ingress_nginx(ix)),
                "cert-manager" => affected.extend(cert_manager(ix)),
                "longhorn" => {
                    let (a, st) = longhorn(ix);
                    affected.extend(a);
                    storage = st;
                }
                _ => {}
            }
            let mut seen = BTreeSet::new();
            affected.retain(|a| seen.insert(shown(&a.object)));
            affected
        }
    };
    // Workloads first, then the rest, each group by kind and name.
    affected.sort_by_key(|a| {
        (
            !WORKLOADS.contains(&a.object.kind.as_str()),
            a.object.kind.clone(),
            a.object.namespace.clone(),
            a.object.name.clone(),
        )
    });

    let now = inputs.now.unwrap_or_else(Timestamp::now);
    let fresh = |t: &Option<Timestamp>| {
        t.is_some_and(|t| now.0.as_second() - t.0.as_second() < BACKUP_FRESH_DAYS * 86400)
    };
    let unhealthy: Vec<&VolumeImpact> = storage
        .iter()
        .filter(|v| v.robustness.as_deref().is_some_and(|r| r != "healthy"))
        .collect();
    let unbacked: Vec<&VolumeImpact> = storage.iter().filter(|v| !fresh(&v.last_backup)).collect();
    for v in &unhealthy {
        recommendations.push(format!(
            "volume {} ({}) is {}: repair it before the update",
            v.volume,
            shown(&v.claim),
            v.robustness.as_deref().unwrap_or("?")
        ));
    }
    if !unbacked.is_empty() {
        recommendations.push(format!(
            "no Longhorn backup newer than {BACKUP_FRESH_DAYS} days of {}: take one (snapshot create --longhorn backup)",
            unbacked
                .iter()
                .map(|v| shown(&v.claim))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !breaking.is_empty() {
        recommendations.push(format!(
            "{} breaking change(s) listed: fix them before this update",
            breaking.len()
        ));
    }
    let restarts = affected.iter().filter(|a| a.restarts).count();
    if restarts > 0 {
        recommendations.push(format!(
            "{restarts} workload(s) restart: expect short outages of what they serve"
        ));
    }
    let one_way = matches!(
        u.component.kind,
        ComponentKind::K3s | ComponentKind::Longhorn
    ) && u.update != UpdateType::Patch;
    let risk = if !breaking.is_empty() || !unhealthy.is_empty() || (one_way && !unbacked.is_empty())
    {
        Risk::High
    } else if u.update != UpdateType::Patch
        || restarts > 0
        || !storage.is_empty()
        || u.component.kind == ComponentKind::K3s
    {
        Risk::Medium
    } else {
        Risk::Low
    };
    UpdateImpact {
        component: u.component.clone(),
        from: u.from.clone(),
        to: u.to.clone(),
        risk,
        affected,
        breaking,
        storage,
        recommendations: recommendations.iter().map(|r| SafeText::new(r)).collect(),
    }
}

/// The impact of each update.
pub fn analyze(updates: &[Update], inputs: &Inputs) -> Vec<UpdateImpact> {
    let ix = Index {
        all: &inputs.objects,
    };
    updates.iter().map(|u| assess(u, &ix, inputs)).collect()
}

/// The report document.
pub fn report(
    updates: Vec<UpdateImpact>,
    cluster: Option<String>,
    gitops: Option<String>,
) -> ImpactReport {
    ImpactReport {
        api_version: ApiVersion,
        kind: Default::default(),
        generated_at: Timestamp::now(),
        cluster,
        gitops,
        updates,
    }
}

/// The updates a report offers: each component's next hop (what a plan
/// would take first), with the hop's blockers.
pub fn from_report(r: &upkeep_contract::UpdateReport) -> Vec<Update> {
    r.components
        .iter()
        .filter_map(|c| {
            let current = c.current.as_ref()?.version.clone();
            match c.path.first() {
                Some(h) => Some(Update {
                    component: c.component.clone(),
                    from: h.from.clone(),
                    to: h.to.clone(),
                    update: h.update,
                    blockers: h.blockers.clone(),
                    notes: notes_between(c, &h.from, &h.to),
                }),
                None => c.candidates.iter().find(|x| x.allowed).map(|x| Update {
                    component: c.component.clone(),
                    from: current.clone(),
                    to: x.version.clone(),
                    update: x.update,
                    blockers: Vec::new(),
                    notes: notes_between(c, &current, &x.version),
                }),
            }
        })
        .collect()
}

/// The breaking reasons the release notes of each version in (from, to] give.
fn notes_between(
    c: &upkeep_contract::ComponentUpdates,
    from: &Version,
    to: &Version,
) -> Vec<(Version, SafeText)> {
    let mut out: Vec<(Version, SafeText)> = c
        .candidates
        .iter()
        .filter(|x| x.version > *from && x.version <= *to)
        .flat_map(|x| {
            x.breaking
                .iter()
                .flat_map(|b| b.reasons.iter())
                .map(|r| (x.version.clone(), r.clone()))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The updates of a plan's steps.
pub fn from_plan(p: &upkeep_contract::UpdatePlan) -> Vec<Update> {
    p.steps
        .iter()
        .map(|s| Update {
            component: s.component.clone(),
            from: s.from.clone(),
            to: s.to.clone(),
            update: s.update,
            blockers: Vec::new(),
            notes: Vec::new(),
        })
        .collect()
}

/// For people: each update, its risk, what it touches and what to do.
pub fn render_text(r: &ImpactReport) -> String {
    let mut out = String::new();
    for u in &r.updates {
        out.push_str(&format!(
            "{} {} {} -> {}: risk {:?}\n",
            u.component.kind, u.component, u.from, u.to, u.risk
        ));
        if !u.affected.is_empty() {
            out.push_str(&format!("  touches {} object(s):\n", u.affected.len()));
            for a in &u.affected {
                out.push_str(&format!(
                    "    {}{} — {}\n",
                    shown(&a.object),
                    if a.restarts { " (restarts)" } else { "" },
                    a.via
                ));
            }
        }
        for v in &u.storage {
            out.push_str(&format!(
                "  volume {} for {}: {}, {}, last backup {}; used by {}\n",
                v.volume,
                shown(&v.claim),
                v.size.as_deref().unwrap_or("size unknown"),
                v.robustness.as_deref().unwrap_or("state unknown"),
                v.last_backup
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "none".to_string()),
                if v.workloads.is_empty() {
                    "nothing".to_string()
                } else {
                    v.workloads.iter().map(shown).collect::<Vec<_>>().join(", ")
                }
            ));
        }
        for b in &u.breaking {
            out.push_str(&format!("  BREAKING ({}): {}\n", b.code, b.message));
        }
        for rec in &u.recommendations {
            out.push_str(&format!("  - {rec}\n"));
        }
    }
    if r.updates.is_empty() {
        out.push_str("no updates to assess\n");
    }
    out
}

#[cfg(test)]
mod tests;
