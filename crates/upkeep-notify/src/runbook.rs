//! The emergency runbook: what to do now that a run failed or rolled
//! back, and who to call. `upkeep notify runbook [RUN]` prints it, and the
//! rolled-back and failed-run messages carry it.

use std::fmt::Write;

use upkeep_contract::{RunRecord, StepStatus};

use crate::config::NotifyConfig;

pub fn runbook(config: &NotifyConfig, record: Option<&RunRecord>) -> String {
    let mut s = String::from("EMERGENCY RUNBOOK (upkeep)\n");
    let run = record.map(|r| r.run_id.as_str()).unwrap_or("RUN");
    if let Some(r) = record {
        let ctx = crate::event::run_context(r);
        let _ = writeln!(
            s,
            "Run {} by {}: {}{}.",
            r.run_id,
            r.actor,
            ctx["status"].as_str().unwrap_or("?"),
            match ctx["summary"].as_str() {
                Some(x) if !x.is_empty() => format!(" ({x})"),
                _ => String::new(),
            }
        );
        if let Some(e) = &r.emergency {
            let _ = writeln!(s, "Emergency run: {}", e.reason.as_str());
        }
        for st in &r.steps {
            let _ = write!(
                s,
                "- step {} {} {} -> {}: {}",
                st.index,
                st.component,
                st.from,
                st.to,
                crate::event::step_context(st)["status"]
                    .as_str()
                    .unwrap_or("?")
            );
            if let Some(p) = &st.restore_point {
                let _ = write!(s, "; restore point {p}");
            }
            if let Some(c) = &st.commit_after {
                let _ = write!(s, "; commit {}", c.chars().take(12).collect::<String>());
            }
            if let Some(e) = &st.error {
                let _ = write!(s, "; {}", e.as_str());
            }
            s.push('\n');
        }
    }
    let _ = writeln!(s, "1. See where it stands: upkeep status {run}");
    let _ = writeln!(
        s,
        "2. Keep changes out while you look: upkeep maintenance on --reason \"incident\" (off when done)"
    );
    let _ = writeln!(s, "3. A stopped run goes on with: upkeep resume {run}");
    let _ = writeln!(
        s,
        "4. Take back its completed steps, newest first: upkeep rollback {run} [--step N]"
    );
    let one_way = record.is_some_and(|r| {
        r.steps
            .iter()
            .any(|st| st.status == StepStatus::Failed && st.restore_point.is_some())
    });
    let _ = writeln!(
        s,
        "5. {}A one-way step (Longhorn or k3s minor) is not reverted: restore its restore point with restore POINT --mode replace --age-identity FILE (add --dry-run first).",
        if one_way {
            "This run has a failed step with a restore point. "
        } else {
            ""
        }
    );
    if config.contacts.is_empty() {
        s.push_str("Contacts: none configured (notify.contacts in upkeep.yaml).\n");
    } else {
        s.push_str("Contacts:\n");
        for c in &config.contacts {
            let _ = write!(s, "- {}", c.name);
            if let Some(r) = &c.role {
                let _ = write!(s, " ({r})");
            }
            for (label, v) in [("phone", &c.phone), ("email", &c.email), ("chat", &c.chat)] {
                if let Some(v) = v {
                    let _ = write!(s, ", {label} {v}");
                }
            }
            s.push('\n');
        }
    }
    if let Some(extra) = &config.runbook_extra {
        s.push_str(extra.trim_end());
        s.push('\n');
    }
    s
}
