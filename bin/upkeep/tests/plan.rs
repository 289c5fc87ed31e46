//! `upkeep plan` and `upkeep window`, and a run refused outside the
//! maintenance window: the built binary, no cluster needed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_upkeep");

fn upkeep(home: &Path, cfg: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .arg("--config")
        .arg(cfg);
    c
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn report(dir: &Path) -> PathBuf {
    let cand = |v: &str, u: &str| json!({"version": v, "update": u, "allowed": true, "published": "2026-10-01T00:00:00Z"});
    let chart = |name: &str, cur: &str, cands: Value| {
        json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "ComponentUpdates",
               "component": {"kind": "chart", "name": name, "namespace": "apps"},
               "current": {"version": cur}, "candidates": cands, "checkedAt": "2026-11-28T04:00:00Z"})
    };
    let doc = json!({
        "apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdateReport",
        "generatedAt": "2026-11-28T04:00:00Z",
        "summary": {"components": 2, "withUpdates": 2, "patch": 1, "minor": 0, "major": 1,
                    "security": 0, "breaking": 0, "blocked": 0, "errors": 0},
        "components": [
            chart("podinfo", "6.5.0", json!([cand("6.5.1", "patch")])),
            chart("grafana", "7.3.0", json!([cand("8.0.0", "major")])),
        ]
    });
    write(dir, "report.json", &doc.to_string())
}

#[test]
fn plan_follows_the_policy_and_says_what_it_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(
        tmp.path(),
        "upkeep.yaml",
        "policy:\n  maxUpdate: {chart: minor}\n",
    );
    let out = upkeep(tmp.path(), &cfg)
        .args(["-o", "json", "plan", "--report"])
        .arg(report(tmp.path()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["kind"], "UpdatePlan");
    let steps: Vec<(&str, &str)> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["component"]["name"].as_str().unwrap(),
                s["to"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(steps, [("podinfo", "6.5.1")]);
    // Text for people.
    let out = upkeep(tmp.path(), &cfg)
        .args(["plan", "--report"])
        .arg(report(tmp.path()))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(" 1. chart apps/podinfo 6.5.0 -> 6.5.1"),
        "{text}"
    );
    // A bad pin names its key; a bad report names the input.
    let cfg2 = write(
        tmp.path(),
        "bad.yaml",
        "policy:\n  pins: {podinfo: \"not a range\"}\n",
    );
    let out = upkeep(tmp.path(), &cfg2)
        .args(["plan", "--report"])
        .arg(report(tmp.path()))
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("policy.pins.podinfo"), "{stderr}");
    let bad = write(tmp.path(), "bad.json", "{\"kind\": \"UpdateReport\"");
    let out = upkeep(tmp.path(), &cfg)
        .args(["plan", "--report"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn outside_the_window_a_run_is_refused_unless_it_is_an_emergency() {
    let tmp = tempfile::tempdir().unwrap();
    // A one-minute window three days from now: never now.
    let day = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .checked_add(jiff::Span::new().days(3))
        .unwrap()
        .strftime("%a")
        .to_string()
        .to_lowercase();
    let cfg = write(
        tmp.path(),
        "upkeep.yaml",
        &format!(
            "stateDir: {}\nwindows:\n  - {{days: [{day}], start: \"00:00\", end: \"00:01\", timeZone: UTC}}\n",
            tmp.path().join("state").display()
        ),
    );
    let out = upkeep(tmp.path(), &cfg)
        .args(["window", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("outside every maintenance window"), "{text}");
    let out = upkeep(tmp.path(), &cfg)
        .args(["window", "next"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout).unwrap().contains("00:00 UTC"));

    let plan = write(
        tmp.path(),
        "plan.json",
        &json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdatePlan", "createdAt": "2026-11-28T04:00:00Z",
               "steps": [{"index": 1, "component": {"kind": "chart", "name": "podinfo", "namespace": "apps"},
                          "from": "6.5.0", "to": "6.5.1", "update": "patch", "reason": "r", "reversibility": "revert"}]})
        .to_string(),
    );
    let out = upkeep(tmp.path(), &cfg)
        .args(["run", "--yes", "--plan"])
        .arg(&plan)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("outside every maintenance window") && stderr.contains("--emergency"),
        "{stderr}"
    );
    assert!(
        !tmp.path().join("state/runs").exists(),
        "nothing was started"
    );
    // --emergency needs a reason.
    let out = upkeep(tmp.path(), &cfg)
        .args(["run", "--yes", "--emergency", "--plan"])
        .arg(&plan)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A window that is not valid names its key.
    let bad = write(
        tmp.path(),
        "bad.yaml",
        "windows:\n  - {days: [someday], start: \"00:00\", end: \"00:01\", timeZone: UTC}\n",
    );
    let out = upkeep(tmp.path(), &bad)
        .args(["window", "check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("windows[0]"), "{stderr}");
}

#[test]
fn schedule_prints_each_form_at_the_window_start() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(
        tmp.path(),
        "upkeep.yaml",
        "windows:\n  - {days: [sat, sun], start: \"02:30\", end: \"05:00\", timeZone: Europe/Berlin}\n",
    );
    let print = |form: &str| {
        let out = upkeep(tmp.path(), &cfg)
            .args(["schedule", form])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(print("print-systemd").contains("OnCalendar=Sat,Sun *-*-* 02:30:00 Europe/Berlin\n"));
    let crontab = print("print-crontab");
    assert!(
        crontab.contains("CRON_TZ=Europe/Berlin\n30 2 * * 0,6 "),
        "{crontab}"
    );
    assert!(
        crontab.contains(&format!("UPKEEP_CONFIG={}", cfg.display())),
        "{crontab}"
    );
    let cj = print("print-cronjob");
    assert!(
        cj.contains("schedule: \"30 2 * * 0,6\"\n  timeZone: Europe/Berlin"),
        "{cj}"
    );
    // Without windows, --at; a bad one is refused.
    let none = write(tmp.path(), "none.yaml", "http:\n  retries: 1\n");
    let out = upkeep(tmp.path(), &none)
        .args(["schedule", "print-crontab", "--at", "25:00"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--at"));
}

/// A dry run shows each step's edit as it would be after the steps before
/// it (chained hops), and changes nothing in the checkout.
#[test]
fn a_dry_run_shows_chained_edits_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "upkeep.yaml", "http:\n  retries: 1\n");
    let checkout = tmp.path().join("home-ops");
    std::fs::create_dir_all(&checkout).unwrap();
    let hr = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: longhorn\n  namespace: longhorn-system\nspec:\n  chart:\n    spec:\n      chart: longhorn\n      version: 1.9.0 # pinned\n";
    std::fs::write(checkout.join("longhorn.yaml"), hr).unwrap();
    let step = |i: u32, from: &str, to: &str| {
        json!({"index": i, "component": {"kind": "longhorn", "name": "longhorn", "namespace": "longhorn-system"},
               "from": from, "to": to, "update": "minor", "reason": "hop", "reversibility": "restore-point-only"})
    };
    let plan = write(
        tmp.path(),
        "plan.json",
        &json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdatePlan", "createdAt": "2026-11-28T04:00:00Z",
                "steps": [step(1, "v1.9.0", "v1.9.2"), step(2, "v1.9.2", "v1.10.2")]})
        .to_string(),
    );
    let out = upkeep(tmp.path(), &cfg)
        .args(["run", "--dry-run", "--plan"])
        .arg(&plan)
        .arg("--gitops")
        .arg(&checkout)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("  - version: 1.9.0 # pinned\n  + version: 1.9.2 # pinned\n")
            && text.contains("  - version: 1.9.2 # pinned\n  + version: 1.10.2 # pinned\n"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(checkout.join("longhorn.yaml")).unwrap(),
        hr
    );
}
