//! Keeping Flux out of the way: the reconcilers that would put their own idea of the cluster
//! back while the restore writes are suspended first (`spec.suspend: true`) and resumed after,
//! and only those the restore suspended: one a user had suspended stays suspended.

use serde_json::{Value, json};
use upkeep_contract::ObjectRef;

/// The Flux kinds that reconcile something (and honour `spec.suspend`).
pub const RECONCILERS: [(&str, &str); 7] = [
    ("kustomize.toolkit.fluxcd.io", "Kustomization"),
    ("helm.toolkit.fluxcd.io", "HelmRelease"),
    ("source.toolkit.fluxcd.io", "GitRepository"),
    ("source.toolkit.fluxcd.io", "OCIRepository"),
    ("source.toolkit.fluxcd.io", "HelmRepository"),
    ("source.toolkit.fluxcd.io", "HelmChart"),
    ("source.toolkit.fluxcd.io", "Bucket"),
];

pub fn is_reconciler(group: &str, kind: &str) -> bool {
    RECONCILERS.iter().any(|(g, k)| *g == group && *k == kind)
}

/// `spec.suspend` as the object has it: absent and `false` both mean "running".
pub fn is_suspended(obj: &Value) -> bool {
    obj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true)
}

/// The merge patch that suspends.
pub fn suspend_patch() -> Value {
    json!({"spec": {"suspend": true}})
}

/// One object the restore suspended, and what to put back.
#[derive(Debug, Clone, PartialEq)]
pub struct Suspended {
    pub object: ObjectRef,
    /// `spec.suspend` before: `None` when absent, so resuming removes the field rather than
    /// writing a `false` nobody wrote (the restored object then equals the stored one).
    pub prior: Option<Value>,
}

impl Suspended {
    /// The merge patch that resumes: the prior value, or `null` (RFC 7386: remove).
    pub fn resume_patch(&self) -> Value {
        json!({"spec": {"suspend": self.prior.clone().unwrap_or(Value::Null)}})
    }
}

/// What the restore suspended, in the order it did, to resume exactly those.
#[derive(Debug, Default)]
pub struct Suspensions {
    entries: Vec<Suspended>,
}

impl Suspensions {
    /// Whether `live` needs suspending: a running reconciler not already in the list.
    pub fn needs_suspend(&self, object: &ObjectRef, live: &Value) -> bool {
        !is_suspended(live) && !self.contains(object)
    }

    pub fn contains(&self, object: &ObjectRef) -> bool {
        self.entries.iter().any(|e| e.object == *object)
    }

    /// Records that `object` was suspended by the restore; `prior` is its `spec.suspend`
    /// before. A second record of the same object keeps the first (the true prior value).
    pub fn record(&mut self, object: ObjectRef, prior: Option<Value>) {
        if !self.contains(&object) {
            self.entries.push(Suspended { object, prior });
        }
    }

    /// Records or updates what to resume `object` to: a Flux object the restore wrote
    /// suspended ends as the restore point has it, whatever it was before.
    pub fn set_prior(&mut self, object: ObjectRef, prior: Option<Value>) {
        match self.entries.iter_mut().find(|e| e.object == object) {
            Some(e) => e.prior = prior,
            None => self.entries.push(Suspended { object, prior }),
        }
    }

    /// Forgets an object (it was already suspended before the restore touched it).
    pub fn forget(&mut self, object: &ObjectRef) {
        self.entries.retain(|e| e.object != *object);
    }

    /// The objects to resume, in the order they were suspended.
    pub fn entries(&self) -> &[Suspended] {
        &self.entries
    }

    pub fn refs(&self) -> Vec<ObjectRef> {
        self.entries.iter().map(|e| e.object.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The body a Flux reconciler is written with during the restore: suspended, so that it does
/// not start reconciling before the rest is back. Returns the stored `spec.suspend` (the value
/// to resume to) when the body was changed; `None` when the stored object was suspended
/// already (it stays so, and is not resumed).
pub fn write_suspended(body: &mut Value) -> Option<Option<Value>> {
    if is_suspended(body) {
        return None;
    }
    let prior = body.pointer("/spec/suspend").cloned();
    let map = body.as_object_mut()?;
    let spec = map.entry("spec").or_insert_with(|| json!({}));
    spec.as_object_mut()?
        .insert("suspend".to_string(), Value::Bool(true));
    Some(prior)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "kustomize.toolkit.fluxcd.io/v1".into(),
            kind: "Kustomization".into(),
            namespace: Some("flux-system".into()),
            name: name.into(),
        }
    }

    #[test]
    fn only_running_reconcilers_are_suspended_and_resumed() {
        let mut s = Suspensions::default();
        let running = json!({"spec": {"interval": "10m"}});
        let running_false = json!({"spec": {"suspend": false}});
        let user_suspended = json!({"spec": {"suspend": true}});
        assert!(s.needs_suspend(&r("apps"), &running));
        assert!(s.needs_suspend(&r("infra"), &running_false));
        // Suspended by the user before the restore: not ours to resume.
        assert!(!s.needs_suspend(&r("paused"), &user_suspended));
        s.record(r("apps"), running.pointer("/spec/suspend").cloned());
        s.record(r("infra"), running_false.pointer("/spec/suspend").cloned());
        // Seen again (e.g. restored later in the run): still one entry, first prior kept.
        assert!(!s.needs_suspend(&r("apps"), &running));
        s.record(r("apps"), Some(json!(true)));
        assert_eq!(s.refs(), [r("apps"), r("infra")]);
        // Resume puts back what was there: the field removed, or the explicit false.
        assert_eq!(
            s.entries()[0].resume_patch(),
            json!({"spec": {"suspend": null}})
        );
        assert_eq!(
            s.entries()[1].resume_patch(),
            json!({"spec": {"suspend": false}})
        );
        s.forget(&r("apps"));
        assert_eq!(s.refs(), [r("infra")]);
    }

    #[test]
    fn restored_reconcilers_are_written_suspended() {
        let mut body = json!({"spec": {"interval": "5m"}});
        assert_eq!(write_suspended(&mut body), Some(None));
        assert_eq!(body["spec"]["suspend"], true);
        let mut body = json!({"spec": {"suspend": false}});
        assert_eq!(write_suspended(&mut body), Some(Some(json!(false))));
        let mut body = json!({"spec": {"suspend": true}});
        assert_eq!(write_suspended(&mut body), None);
        assert!(is_reconciler("helm.toolkit.fluxcd.io", "HelmRelease"));
        assert!(!is_reconciler("notification.toolkit.fluxcd.io", "Alert"));
    }
}
