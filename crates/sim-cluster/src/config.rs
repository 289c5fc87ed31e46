//! `SIM.yaml`: which simulated controllers run (with their delays and failures), the chart
//! catalogue the simulated helm-controller installs from, and the faults injected at start.
//!
//! Every key is checked: an unknown key, a wrong type or an out-of-range value is one line
//! naming the file and the key (`SIM.yaml: controllers.flux.interval: ...`). The format is
//! documented in `testdata/sim-cluster/README.md`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::faults::FaultRules;

/// A `SIM.yaml` that cannot be used, named by file and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A duration written as `250ms`, `2s` or `1m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimDuration(pub Duration);

impl SimDuration {
    /// The same grammar as `upkeep.yaml`'s durations, except that a unit is
    /// required: in SIM.yaml a bare number is more likely a mistake.
    pub fn parse(s: &str) -> Option<Duration> {
        let s = s.trim();
        if s.ends_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        upkeep_config::parse_duration(s).ok()
    }
}

impl<'de> Deserialize<'de> for SimDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SimDuration::parse(&s).map(SimDuration).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?} (write it like 250ms, 2s or 1m)"
            ))
        })
    }
}

/// The whole `SIM.yaml`. [`SimConfig::default`] runs no controller and injects no fault.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SimConfig {
    #[serde(default)]
    pub controllers: Controllers,
    #[serde(default)]
    pub faults: FaultRules,
}

/// One section per simulated controller; an absent section means that controller is off.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Controllers {
    pub flux: Option<FluxConfig>,
    pub longhorn: Option<LonghornConfig>,
    pub upgrades: Option<UpgradesConfig>,
    pub workloads: Option<WorkloadsConfig>,
}

fn yes() -> bool {
    true
}

fn default_interval() -> SimDuration {
    SimDuration(Duration::from_millis(200))
}

/// The timing every controller section has.
#[derive(Debug, Clone, Copy)]
pub struct Common {
    pub enabled: bool,
    pub interval: Duration,
    pub delay: Duration,
}

macro_rules! common {
    ($($t:ty),*) => {$(
        impl $t {
            pub fn common(&self) -> Common {
                Common {
                    enabled: self.enabled,
                    interval: self.interval.0,
                    delay: self.delay.0,
                }
            }
        }
    )*};
}
common!(FluxConfig, LonghornConfig, UpgradesConfig, WorkloadsConfig);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FluxConfig {
    /// `false` turns the controller off while keeping its section.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How often the controller looks at its objects.
    #[serde(default = "default_interval")]
    pub interval: SimDuration,
    /// How long a change waits before the controller acts on it.
    #[serde(default)]
    pub delay: SimDuration,
    /// The charts HelmReleases can install.
    #[serde(default)]
    pub charts: Vec<ChartConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChartConfig {
    pub name: String,
    pub versions: Vec<ChartVersionConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChartVersionConfig {
    pub version: String,
    /// Defaults to the chart version.
    #[serde(default)]
    pub app_version: Option<String>,
    /// Installing or upgrading to this version fails (the release is marked failed).
    #[serde(default)]
    pub broken: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LonghornConfig {
    /// `false` turns the controller off while keeping its section.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How often the controller looks at its objects.
    #[serde(default = "default_interval")]
    pub interval: SimDuration,
    /// How long a change waits before the controller acts on it.
    #[serde(default)]
    pub delay: SimDuration,
    /// Backups whose name matches one of these globs end in state `Error`.
    #[serde(default)]
    pub fail_backups: Vec<String>,
    /// Attached volumes whose name matches one of these globs are `degraded`.
    #[serde(default)]
    pub degraded_volumes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpgradesConfig {
    /// `false` turns the controller off while keeping its section.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How often the controller looks at its objects.
    #[serde(default = "default_interval")]
    pub interval: SimDuration,
    /// How long a change waits before the controller acts on it.
    #[serde(default)]
    pub delay: SimDuration,
    /// Nodes (globs) whose upgrade fails: they stay cordoned on the old version.
    #[serde(default)]
    pub fail_nodes: Vec<String>,
    /// What a Plan's `spec.channel` URL resolves to (there is no network to ask).
    #[serde(default)]
    pub channels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadsConfig {
    /// `false` turns the controller off while keeping its section.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How often the controller looks at its objects.
    #[serde(default = "default_interval")]
    pub interval: SimDuration,
    /// How long a change waits before the controller acts on it.
    #[serde(default)]
    pub delay: SimDuration,
    /// How pods end and what they log; the first matching entry wins.
    #[serde(default)]
    pub pods: Vec<PodBehaviour>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodBehaviour {
    /// Glob on the pod name, or on the Job name for a Job's pods.
    #[serde(rename = "match")]
    pub pattern: String,
    /// Only pods in this namespace (default: any).
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub result: PodResult,
    /// What `kubectl logs` shows for these pods.
    #[serde(default)]
    pub logs: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum PodResult {
    #[default]
    Succeeded,
    Failed,
}

impl SimConfig {
    /// Reads and validates a `SIM.yaml`.
    pub fn load(path: &Path) -> Result<SimConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        SimConfig::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and validates the text of a `SIM.yaml`; the error names the key.
    pub fn parse(text: &str) -> Result<SimConfig, String> {
        let value = if text.trim().is_empty() {
            serde_json::json!({})
        } else {
            crate::fixture::parse_yaml(text)?
        };
        let value = if value.is_null() {
            serde_json::json!({})
        } else {
            value
        };
        let cfg: SimConfig = from_value(value)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        self.faults.validate("faults")?;
        if let Some(f) = &self.controllers.flux {
            let mut names = std::collections::BTreeSet::new();
            for (i, c) in f.charts.iter().enumerate() {
                let at = format!("controllers.flux.charts[{i}]");
                if c.name.trim().is_empty() {
                    return Err(format!("{at}.name: must not be empty"));
                }
                if !names.insert(c.name.as_str()) {
                    return Err(format!("{at}.name: chart {:?} is listed twice", c.name));
                }
                for (j, v) in c.versions.iter().enumerate() {
                    upkeep_version::Version::parse(&v.version)
                        .map_err(|e| format!("{at}.versions[{j}].version: {e}"))?;
                }
            }
        }
        if let Some(w) = &self.controllers.workloads {
            for (i, p) in w.pods.iter().enumerate() {
                if p.pattern.is_empty() {
                    return Err(format!(
                        "controllers.workloads.pods[{i}].match: must not be empty"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Deserializes with the path of the failing key in the message.
pub(crate) fn from_value<T: serde::de::DeserializeOwned>(
    v: serde_json::Value,
) -> Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." || path.is_empty() {
            inner
        } else {
            format!("{path}: {inner}")
        }
    })
}

/// `*` matches any run of characters (including none); everything else matches itself.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config_parses() {
        let cfg = SimConfig::parse(
            r#"
controllers:
  flux:
    interval: 100ms
    charts:
      - name: podinfo
        versions:
          - {version: 6.5.0}
          - {version: 6.6.0, appVersion: 6.6.0, broken: true}
  longhorn: {delay: 1s, failBackups: ["bad-*"]}
  upgrades: {enabled: false}
  workloads:
    pods:
      - {match: "check-*", result: Failed, logs: "boom\n"}
faults:
  seed: 7
  rules:
    - {path: "/api/v1/*", verbs: [list], action: error, status: 503, rate: 0.5}
"#,
        )
        .unwrap();
        let flux = cfg.controllers.flux.unwrap();
        assert!(flux.enabled);
        assert_eq!(flux.interval.0, Duration::from_millis(100));
        assert!(flux.charts[0].versions[1].broken);
        assert_eq!(
            cfg.controllers.longhorn.unwrap().delay.0,
            Duration::from_secs(1)
        );
        assert!(!cfg.controllers.upgrades.unwrap().enabled);
        assert_eq!(
            cfg.controllers.workloads.unwrap().pods[0].result,
            PodResult::Failed
        );
        assert_eq!(cfg.faults.rules.len(), 1);
        assert!(SimConfig::parse("").unwrap().controllers.flux.is_none());
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("controllers: {flux: {intervl: 1s}}", "controllers.flux"),
            ("controllers: {flux: {intervl: 1s}}", "intervl"),
            (
                "controllers: {flux: {interval: soon}}",
                "controllers.flux.interval",
            ),
            ("controllers: {flux: {interval: soon}}", "invalid duration"),
            ("controllers: {cilium: {}}", "cilium"),
            (
                "controllers: {longhorn: {failBackups: 3}}",
                "controllers.longhorn.failBackups",
            ),
            (
                "controllers: {flux: {charts: [{name: a, versions: [{version: x.y}]}]}}",
                "controllers.flux.charts[0].versions[0].version",
            ),
            (
                "controllers: {workloads: {pods: [{match: a, result: Maybe}]}}",
                "controllers.workloads.pods[0].result",
            ),
            (
                "faults: {rules: [{action: error, rate: 2}]}",
                "faults.rules[0].rate",
            ),
            (
                "faults: {rules: [{action: explode}]}",
                "faults.rules[0].action",
            ),
            (
                "faults: {rules: [{action: error, verbs: [yell]}]}",
                "faults.rules[0].verbs",
            ),
            (
                "faults: {rules: [{action: latency}]}",
                "faults.rules[0].latency",
            ),
            (
                "faults: {rules: [{action: error, status: 200}]}",
                "faults.rules[0].status",
            ),
            ("- a list", "invalid type"),
        ];
        for (text, want) in cases {
            let e = SimConfig::parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e:?} lacks {want:?}");
            assert!(!e.contains('\n'), "{e:?} is not one line");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*c", "abbc"));
        assert!(glob_match("/apis/*/v1/*", "/apis/x/v1/y"));
        assert!(!glob_match("a*c", "abd"));
        assert!(glob_match("nightly-*", "nightly-1"));
        assert!(!glob_match("nightly", "nightly-1"));
    }
}
