//! Message templates (MiniJinja): a title and a body per event type,
//! built in, each overridable in upkeep.yaml. Every template is rendered
//! against a sample of its event at load time with undefined variables
//! refused, so a misspelt variable is a config error, not a blank message.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;
use upkeep_config::{NotifyEvent, TemplateSection};

use crate::ConfigError;

/// The built-in templates: (title, body).
fn builtin(event: NotifyEvent) -> (&'static str, &'static str) {
    match event {
        NotifyEvent::RunStarted => (
            "upkeep: run {{ run.id }} started on {{ host }}",
            "{{ run.steps|length }} update(s), started by {{ run.actor }}:\n\
             {% for s in run.steps %}- {{ s.component }} {{ s.from }} -> {{ s.to }}\n{% endfor %}\
             {% if run.emergency %}Emergency run outside the maintenance windows: {{ run.emergency }}\n{% endif %}",
        ),
        NotifyEvent::StepApplied => (
            "upkeep: {{ step.component }} updated to {{ step.to }}",
            "Step {{ step.number }} of {{ run.steps|length }} in run {{ run.id }}: {{ step.component }} \
             {{ step.from }} -> {{ step.to }} is applied{% if step.commitShort %} (commit {{ step.commitShort }}){% endif %}; \
             the validators check it now.\n",
        ),
        NotifyEvent::ValidationFailed => (
            "upkeep: {{ step.component }} {{ step.to }} failed validation",
            "Run {{ run.id }}, step {{ step.number }} ({{ step.component }} {{ step.from }} -> {{ step.to }}):\n\
             {{ step.error or 'the validators reported a failure' }}\n\
             {% if step.status == 'failed' %}The step stopped before the update was made.{% else %}The step is being rolled back to {{ step.from }}.{% endif %}\n",
        ),
        NotifyEvent::RolledBack => (
            "upkeep: {{ step.component }} rolled back to {{ step.from }}",
            "Run {{ run.id }} rolled {{ step.component }} back from {{ step.to }} to {{ step.from }}.\n\
             Why: {{ step.error or 'see upkeep status ' ~ run.id }}\n\n{{ runbook }}",
        ),
        NotifyEvent::RunFinished => (
            "upkeep: run {{ run.id }} {{ run.status }}{% if run.summary %} ({{ run.summary }}){% endif %}",
            "{% for s in run.steps %}- {{ s.component }} {{ s.from }} -> {{ s.to }}: {{ s.status }}{% if s.error %} ({{ s.error }}){% endif %}\n{% endfor %}\
             {% if escalation %}\n{{ runbook }}{% endif %}",
        ),
        NotifyEvent::WindowAnnounced => (
            "upkeep: maintenance window opens {{ window.start }}",
            "The cluster on {{ host }} may be updated from {{ window.start }} to {{ window.end }}.\n\
             Services can restart during that time.\n",
        ),
        NotifyEvent::WindowEnded => (
            "upkeep: maintenance window ended",
            "The maintenance window from {{ window.start }} to {{ window.end }} is over; \
             `upkeep status` shows the last run.\n",
        ),
        NotifyEvent::UpdatesAvailable => (
            "upkeep: {{ updates.total }} update(s) available{% if updates.security %}, {{ updates.security }} security{% endif %}",
            "{% for u in updates.items %}- {% if u.security %}[security{% if u.ids %} {{ u.ids|join(', ') }}{% endif %}] {% endif %}\
             {{ u.component }} {{ u.current or '?' }} -> {{ u.latest }} ({{ u.update }})\n{% endfor %}",
        ),
        NotifyEvent::Test => (
            "upkeep: test notification from {{ host }}",
            "This is a test message from `upkeep notify test` ({{ sentAt }}). If you read it, this channel works.\n",
        ),
    }
}

#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
    /// Built-ins alone, the fallback when a user template fails at run time.
    builtin: Arc<Environment<'static>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .build()
            .expect("the default delimiters with trim_blocks are a valid syntax"),
    );
    env
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Templates {
    /// Compiles the built-ins with the user's overrides (`key` names a
    /// key under `notify.templates`) and renders each against a sample.
    pub fn load(
        overrides: Option<&BTreeMap<String, TemplateSection>>,
        key: &dyn Fn(&str) -> String,
    ) -> Result<Templates, ConfigError> {
        let mut env = environment();
        let mut builtin_env = environment();
        for (name, _) in overrides.into_iter().flatten() {
            if NotifyEvent::parse(name).is_none() {
                let known: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.as_str()).collect();
                return Err(ConfigError::new(
                    key(name),
                    format!("unknown event; the events are {}", known.join(", ")),
                ));
            }
        }
        for event in NotifyEvent::ALL {
            let (title, body) = builtin(event);
            let user = overrides.and_then(|o| o.get(event.as_str()));
            for (part, default, given) in [
                ("title", title, user.and_then(|u| u.title.clone())),
                ("body", body, user.and_then(|u| u.body.clone())),
            ] {
                let name = format!("{event}.{part}");
                builtin_env
                    .add_template_owned(name.clone(), default.to_string())
                    .map_err(|e| ConfigError::new(key(&name), format!("built-in template: {e}")))?;
                let source = given.unwrap_or_else(|| default.to_string());
                env.add_template_owned(name.clone(), source)
                    .map_err(|e| ConfigError::new(key(&name), one_line(&format!("{e:#}"))))?;
            }
        }
        let t = Templates {
            env: Arc::new(env),
            builtin: Arc::new(builtin_env),
        };
        for event in NotifyEvent::ALL {
            let sample = crate::event::sample_event(event);
            let mut data = sample.context.clone();
            if let Value::Object(map) = &mut data {
                map.insert("host".into(), "sample-host".into());
                map.insert("contacts".into(), Value::Array(Vec::new()));
                map.insert("runbook".into(), "sample runbook".into());
                map.insert("escalation".into(), true.into());
            }
            for part in ["title", "body"] {
                let name = format!("{event}.{part}");
                t.try_render(&t.env, &name, &data).map_err(|e| {
                    ConfigError::new(
                        key(&name),
                        format!("does not render on a sample {event} event: {e}"),
                    )
                })?;
            }
        }
        Ok(t)
    }

    fn try_render(
        &self,
        env: &Environment<'static>,
        name: &str,
        data: &Value,
    ) -> Result<String, String> {
        let tmpl = env
            .get_template(name)
            .map_err(|e| one_line(&format!("{e:#}")))?;
        tmpl.render(minijinja::value::Serde(data))
            .map_err(|e| one_line(&format!("{e:#}")))
    }

    /// (title, body) of `event` for `data`. The title is one line.
    pub fn render(&self, event: NotifyEvent, data: &Value) -> (String, String) {
        let mut out = Vec::new();
        for part in ["title", "body"] {
            let name = format!("{event}.{part}");
            let text = match self.try_render(&self.env, &name, data) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(
                        "notify: template notify.templates.{name} failed on this event ({e}); using the built-in one"
                    );
                    self.try_render(&self.builtin, &name, data)
                        .unwrap_or_else(|e| format!("upkeep {event} (template failed: {e})"))
                }
            };
            out.push(text);
        }
        let body = out.pop().unwrap_or_default();
        let title = one_line(&out.pop().unwrap_or_default());
        (title, body.trim_end().to_string() + "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> String {
        format!("upkeep.yaml: key `notify.templates.{k}`")
    }

    fn overrides(
        event: &str,
        title: Option<&str>,
        body: Option<&str>,
    ) -> BTreeMap<String, TemplateSection> {
        BTreeMap::from([(
            event.to_string(),
            TemplateSection {
                title: title.map(str::to_string),
                body: body.map(str::to_string),
            },
        )])
    }

    fn data(event: NotifyEvent) -> Value {
        let mut d = crate::event::sample_event(event).context;
        d["host"] = "pi-1".into();
        d["contacts"] = Value::Array(vec![]);
        d["runbook"] = "RUNBOOK".into();
        d["escalation"] = true.into();
        d
    }

    #[test]
    fn builtins_render_every_event_with_its_facts() {
        let t = Templates::load(None, &key).unwrap();
        let (title, body) = t.render(NotifyEvent::RolledBack, &data(NotifyEvent::RolledBack));
        assert_eq!(title, "upkeep: apps/podinfo rolled back to 6.7.0");
        assert!(body.contains("from 6.8.0 to 6.7.0"), "{body}");
        assert!(body.contains("0 of 1 replicas ready"), "{body}");
        assert!(body.contains("RUNBOOK"), "{body}");
        let (title, body) = t.render(
            NotifyEvent::UpdatesAvailable,
            &data(NotifyEvent::UpdatesAvailable),
        );
        assert_eq!(title, "upkeep: 2 update(s) available, 1 security");
        let first = body.lines().next().unwrap();
        assert_eq!(
            first,
            "- [security CVE-2026-1234] networking/ingress-nginx 4.12.0 -> 4.12.1 (patch)"
        );
        for e in NotifyEvent::ALL {
            let (title, body) = t.render(e, &data(e));
            assert!(!title.is_empty() && !title.contains('\n'), "{e}: {title:?}");
            assert!(!body.trim().is_empty(), "{e}");
        }
    }

    #[test]
    fn a_user_template_replaces_only_its_part() {
        let o = overrides(
            "step-applied",
            Some("{{ step.name }} is now {{ step.to }}"),
            None,
        );
        let t = Templates::load(Some(&o), &key).unwrap();
        let (title, body) = t.render(NotifyEvent::StepApplied, &data(NotifyEvent::StepApplied));
        assert_eq!(title, "podinfo is now 6.8.0");
        assert!(body.starts_with("Step 2 of 2 in run"), "{body}");
    }

    #[test]
    fn a_syntax_error_names_the_key() {
        let o = overrides("rolled-back", None, Some("{% if step.error %}unclosed"));
        let e = Templates::load(Some(&o), &key).unwrap_err();
        assert_eq!(e.key, key("rolled-back.body"));
    }

    #[test]
    fn an_unknown_variable_is_refused_at_load_time() {
        let o = overrides("run-finished", Some("run {{ run.idd }}"), None);
        let e = Templates::load(Some(&o), &key).unwrap_err();
        assert_eq!(e.key, key("run-finished.title"));
        assert!(e.message.contains("sample run-finished"), "{}", e.message);
        // A variable of another event is just as unknown.
        let o = overrides("window-announced", None, Some("{{ step.component }}"));
        assert!(Templates::load(Some(&o), &key).is_err());
    }

    #[test]
    fn an_unknown_event_is_refused() {
        let o = overrides("rollback", Some("x"), None);
        let e = Templates::load(Some(&o), &key).unwrap_err();
        assert_eq!(e.key, key("rollback"));
        assert!(e.message.contains("rolled-back"));
    }

    #[test]
    fn a_template_failing_on_real_data_falls_back_to_the_builtin() {
        // Renders on the sample (the step has an error there), fails when
        // a real step has none: the operator still gets a message.
        let o = overrides(
            "rolled-back",
            Some("{{ step.error | length }} chars of error"),
            None,
        );
        let t = Templates::load(Some(&o), &key).unwrap();
        let mut d = data(NotifyEvent::RolledBack);
        d["step"]["error"] = Value::Null;
        let (title, _) = t.render(NotifyEvent::RolledBack, &d);
        assert_eq!(title, "upkeep: apps/podinfo rolled back to 6.7.0");
    }
}
