//! upkeep.yaml's `policy` as the planner's [`upkeep_plan::Policy`].

use upkeep_config::{PolicyComponent, PolicyUpdate, Settings};
use upkeep_contract::{ComponentKind, Constraint, UpdateType};

use crate::RunError;

/// The policy of `settings`; a pin that is not a constraint names its key.
pub fn from_settings(settings: &Settings) -> Result<upkeep_plan::Policy, RunError> {
    let p = &settings.policy;
    let mut pins = Vec::new();
    for (name, text) in p.pins.iter().flatten() {
        let c = Constraint::parse(text).map_err(|e| {
            RunError::Input(format!(
                "{}: {e}",
                settings.key(&format!("policy.pins.{name}"))
            ))
        })?;
        pins.push((name.clone(), c));
    }
    Ok(upkeep_plan::Policy {
        max_update: p
            .max_update
            .iter()
            .flatten()
            .map(|(k, u)| {
                (
                    match k {
                        PolicyComponent::K3s => ComponentKind::K3s,
                        PolicyComponent::Flux => ComponentKind::Flux,
                        PolicyComponent::Longhorn => ComponentKind::Longhorn,
                        PolicyComponent::Chart => ComponentKind::Chart,
                    },
                    match u {
                        PolicyUpdate::Patch => UpdateType::Patch,
                        PolicyUpdate::Minor => UpdateType::Minor,
                        PolicyUpdate::Major => UpdateType::Major,
                    },
                )
            })
            .collect(),
        security_only: p.security_only.unwrap_or(false),
        min_release_age_days: p.min_release_age_days,
        ignore: p.ignore.iter().flatten().cloned().collect(),
        pins,
    })
}
