//! Simulated controllers: Flux (source, kustomize and helm controllers), Longhorn, the k3s
//! system-upgrade-controller, and the Job/Pod lifecycle.
//!
//! Each runs on its own thread and makes a pass over its objects every `interval`; a pass
//! reads through the shared [`Store`] and writes back with `update`/`patch`/`create`/`delete`
//! under its own field manager, so its writes get resourceVersions, generations and watch
//! events like any client's. Passes are idempotent: an object already in the wanted state is
//! not written, so a quiet cluster stays quiet.

mod flux;
mod longhorn;
mod upgrades;
mod workloads;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::config;
use crate::patch::PatchKind;
use crate::resources::ResourceInfo;
use crate::store::{Store, WriteOptions, now};

/// Log text of pods, keyed by namespace and pod name; served by `pods/log`.
#[derive(Clone, Default)]
pub(crate) struct PodLogs(Arc<Mutex<HashMap<(String, String), String>>>);

impl PodLogs {
    pub(crate) fn get(&self, ns: &str, pod: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(ns.to_string(), pod.to_string()))
            .cloned()
    }

    fn set(&self, ns: &str, pod: &str, text: String) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((ns.to_string(), pod.to_string()), text);
    }
}

/// One simulated controller: a pass over its objects.
trait Reconciler: Send {
    fn pass(&mut self, store: &Store);
}

/// The running controller threads.
pub(crate) struct Controllers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Controllers {
    pub(crate) fn start(store: &Store, cfg: &config::Controllers, logs: PodLogs) -> Controllers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut spawn = |name: &str, common: config::Common, r: Box<dyn Reconciler>| {
            if !common.enabled {
                return;
            }
            let store = store.clone();
            let stop = stop.clone();
            let mut r = r;
            let spawned = std::thread::Builder::new()
                .name(format!("sim-{name}"))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        r.pass(&store);
                        let until = Instant::now() + common.interval;
                        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                            std::thread::sleep(
                                common
                                    .interval
                                    .min(Duration::from_millis(50))
                                    .max(Duration::from_millis(1)),
                            );
                        }
                    }
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => tracing::error!("cannot start the {name} controller: {e}"),
            }
        };
        if let Some(c) = &cfg.flux {
            spawn("flux", c.common(), Box::new(flux::Flux::new(c)));
        }
        if let Some(c) = &cfg.longhorn {
            spawn("longhorn", c.common(), Box::new(longhorn::Longhorn::new(c)));
        }
        if let Some(c) = &cfg.upgrades {
            spawn("upgrades", c.common(), Box::new(upgrades::Upgrades::new(c)));
        }
        if let Some(c) = &cfg.workloads {
            spawn(
                "workloads",
                c.common(),
                Box::new(workloads::Workloads::new(c, logs)),
            );
        }
        Controllers { stop, threads }
    }

    /// Asks the threads to stop without waiting.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub(crate) fn stop_and_join(self) {
        self.stop();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The served resource for `group`/`plural` (any version: objects are presented in it).
fn resource(store: &Store, group: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
    let reg = store.registry();
    reg.all()
        .iter()
        .find(|i| i.group == group && i.plural == plural)
        .cloned()
}

/// Every object of a resource (empty when the resource is not served).
fn list(store: &Store, info: &ResourceInfo) -> Vec<Value> {
    store
        .list(info, &crate::store::ListQuery::default())
        .map(|p| p.items)
        .unwrap_or_default()
}

fn opts(manager: &str) -> WriteOptions {
    WriteOptions {
        field_manager: Some(manager.to_string()),
        ..WriteOptions::default()
    }
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn ns_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/namespace").and_then(Value::as_str)
}

fn generation(obj: &Value) -> i64 {
    obj.pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str)
}

/// Writes `status` when it differs from the object's; conflicts are retried on the next pass.
fn put_status(store: &Store, info: &ResourceInfo, obj: &Value, status: Value, manager: &str) {
    if obj.get("status") == Some(&status) {
        return;
    }
    let mut new = obj.clone();
    new["status"] = status;
    if let Err(e) = store.update(info, ns_of(obj), name_of(obj), new, true, &opts(manager)) {
        tracing::debug!("{manager}: status of {}: {}", name_of(obj), e.message);
    }
}

/// A JSON merge patch of the main resource.
fn merge(store: &Store, info: &ResourceInfo, obj: &Value, patch: Value, manager: &str) {
    if let Err(e) = store.patch(
        info,
        ns_of(obj),
        name_of(obj),
        PatchKind::Merge,
        &patch,
        false,
        &opts(manager),
    ) {
        tracing::debug!("{manager}: patch of {}: {}", name_of(obj), e.message);
    }
}

/// Sets a condition the way Kubernetes API conventions want it: `lastTransitionTime`
/// changes only when `status` does.
fn set_condition(
    conditions: &mut Vec<Value>,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
) {
    let status_s = if status { "True" } else { "False" };
    let previous = conditions
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind));
    let since = match previous {
        Some(p) if p.get("status").and_then(Value::as_str) == Some(status_s) => p
            .get("lastTransitionTime")
            .cloned()
            .unwrap_or_else(|| json!(now())),
        _ => json!(now()),
    };
    let mut c = json!({
        "type": kind,
        "status": status_s,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    });
    if let Some(g) = observed_generation {
        c["observedGeneration"] = json!(g);
    }
    match conditions
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
    {
        Some(slot) => *slot = c,
        None => conditions.push(c),
    }
}

fn remove_condition(conditions: &mut Vec<Value>, kind: &str) {
    conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some(kind));
}

fn conditions_of(obj: &Value) -> Vec<Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Holds work back for the configured delay: `ready(key)` is true once `key` has been
/// asked about for at least `delay`. Keys name the piece of work (object plus what changed).
struct Delay {
    delay: Duration,
    seen: HashMap<String, Instant>,
}

impl Delay {
    fn new(delay: Duration) -> Self {
        Delay {
            delay,
            seen: HashMap::new(),
        }
    }

    fn ready(&mut self, key: &str) -> bool {
        if self.delay.is_zero() {
            return true;
        }
        let first = *self
            .seen
            .entry(key.to_string())
            .or_insert_with(Instant::now);
        if first.elapsed() >= self.delay {
            self.seen.remove(key);
            true
        } else {
            false
        }
    }
}

fn any_glob(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| config::glob_match(p, name))
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
