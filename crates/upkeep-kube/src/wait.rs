//! What a wait waits for: a status condition (`kubectl wait --for=condition=Ready`), a field
//! value (`--for=jsonpath=...`), or a test of the tool's own.

use kube::api::DynamicObject;
use serde_json::Value;

type Check = dyn Fn(&DynamicObject) -> bool + Send + Sync;

/// A condition on one object.
pub enum Until {
    /// `status.conditions[type=TYPE].status == STATUS`.
    Condition { type_: String, status: String },
    /// The value at a JSON pointer (`/status/phase`) equals this.
    Field { pointer: String, value: Value },
    /// Anything else, with a description for messages.
    Custom {
        description: String,
        check: Box<Check>,
    },
}

impl Until {
    pub fn condition(type_: &str, status: &str) -> Self {
        Until::Condition {
            type_: type_.to_string(),
            status: status.to_string(),
        }
    }

    pub fn field(pointer: &str, value: Value) -> Self {
        Until::Field {
            pointer: pointer.to_string(),
            value,
        }
    }

    pub fn custom(
        description: &str,
        check: impl Fn(&DynamicObject) -> bool + Send + Sync + 'static,
    ) -> Self {
        Until::Custom {
            description: description.to_string(),
            check: Box::new(check),
        }
    }

    pub fn holds(&self, obj: &DynamicObject) -> bool {
        match self {
            Until::Condition { type_, status } => {
                condition(obj, type_).is_some_and(|c| c.status == *status)
            }
            Until::Field { pointer, value } => obj.data.pointer(pointer) == Some(value),
            Until::Custom { check, .. } => check(obj),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Until::Condition { type_, status } => format!("condition {type_}={status}"),
            Until::Field { pointer, value } => format!("{pointer} == {value}"),
            Until::Custom { description, .. } => description.clone(),
        }
    }

    /// What the object shows instead, for the message when the wait times out.
    pub fn observe(&self, obj: &DynamicObject) -> String {
        match self {
            Until::Condition { type_, .. } => match condition(obj, type_) {
                Some(c) => {
                    let mut s = format!("{type_}={}", c.status);
                    if !c.reason.is_empty() || !c.message.is_empty() {
                        s.push_str(&format!(" ({}: {})", c.reason, c.message));
                    }
                    s
                }
                None => format!("no {type_} condition"),
            },
            Until::Field { pointer, .. } => match obj.data.pointer(pointer) {
                Some(v) => format!("{pointer} is {v}"),
                None => format!("{pointer} is absent"),
            },
            Until::Custom { .. } => format!(
                "resourceVersion {}",
                obj.metadata.resource_version.as_deref().unwrap_or("?")
            ),
        }
    }
}

/// One entry of `status.conditions`, read leniently (missing fields are empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub observed_generation: Option<i64>,
}

/// The condition of the given type in `status.conditions`, if present.
pub fn condition(obj: &DynamicObject, type_: &str) -> Option<Condition> {
    condition_of(&obj.data, type_)
}

/// The same, for an object as JSON (as [`crate::object_value`] gives it).
pub fn condition_of(obj: &Value, type_: &str) -> Option<Condition> {
    let list = obj.pointer("/status/conditions")?.as_array()?;
    let c = list
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))?;
    let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Some(Condition {
        type_: type_.to_string(),
        status: text("status"),
        reason: text("reason"),
        message: crate::error::one_line(&text("message")),
        observed_generation: c.get("observedGeneration").and_then(Value::as_i64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn conditions_and_fields() {
        let o = obj(
            json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "False", "reason": "Pending", "message": "waiting\nfor it"}]}}),
        );
        assert!(!Until::condition("Ready", "True").holds(&o));
        assert!(Until::condition("Ready", "False").holds(&o));
        assert_eq!(
            Until::condition("Ready", "True").observe(&o),
            "Ready=False (Pending: waiting for it)"
        );
        assert_eq!(
            Until::condition("Stalled", "True").observe(&o),
            "no Stalled condition"
        );
        assert!(Until::field("/status/phase", json!("Running")).holds(&o));
        assert!(!Until::field("/status/phase", json!("Succeeded")).holds(&o));
        assert_eq!(
            Until::field("/status/x", json!(1)).observe(&o),
            "/status/x is absent"
        );
        let custom = Until::custom("has a phase", |o| o.data.pointer("/status/phase").is_some());
        assert!(custom.holds(&o));
        assert_eq!(custom.describe(), "has a phase");
    }
}
