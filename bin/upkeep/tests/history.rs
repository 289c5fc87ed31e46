//! `upkeep history` and `upkeep report` on a seeded state directory (run
//! folders as `upkeep run` leaves them, and a saved UpdateReport): the
//! import, every filter and output form, bad flags, the report's figures to
//! the digit, and the HTML page rendered by a real headless Chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_upkeep");

const EMERGENCY: &str = "CVE-2026-1234, \"critical\" on the ingress";

struct Seeded {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    cfg: PathBuf,
    state: PathBuf,
}

impl Seeded {
    fn upkeep(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .env_clear()
            .env("HOME", &self.home)
            .env("NO_COLOR", "1")
            .arg("--config")
            .arg(&self.cfg)
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.upkeep(args);
        assert!(
            out.status.success(),
            "upkeep {args:?}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn write(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn comp(kind: &str, ns: &str, name: &str) -> Value {
    json!({"kind": kind, "name": name, "namespace": ns})
}

fn step(i: usize, c: Value, from: &str, to: &str, status: &str, extra: Value) -> Value {
    let mut s = json!({"index": i, "component": c, "from": from, "to": to, "status": status});
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

/// Seven runs: one in October, five in November (two completed, one rolled
/// back, one failed emergency run, one still running), one in December.
fn seed() -> Seeded {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().to_path_buf();
    let state = tmp.path().join("state");
    let cfg = tmp.path().join("upkeep.yaml");
    std::fs::write(&cfg, format!("stateDir: {}\n", state.display())).unwrap();
    let podinfo = || comp("chart", "apps", "podinfo");
    let redis = || comp("chart", "apps", "redis");
    let ingress = || comp("chart", "networking", "ingress-nginx");
    let longhorn = || comp("longhorn", "longhorn-system", "longhorn");
    let runs = state.join("runs");
    let run = |id: &str,
               start: &str,
               end: Option<&str>,
               status: &str,
               actor: &str,
               steps: Vec<Value>,
               emergency: Option<&str>| {
        let mut r = json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "RunRecord",
            "runId": id, "startedAt": start, "status": status, "actor": actor, "steps": steps});
        if let Some(e) = end {
            r["finishedAt"] = json!(e);
        }
        if let Some(reason) = emergency {
            r["emergency"] = json!({"reason": reason});
        }
        write(&runs.join(id).join("run.json"), &r);
    };
    let applied = |id: &str, i: usize, at: &str| {
        write(
            &runs.join(id).join(format!("step-{i}/apply.json")),
            &json!({"status": "applied", "finishedAt": at}),
        );
    };
    run(
        "20261003-020000",
        "2026-10-03T02:00:00Z",
        Some("2026-10-03T02:05:00Z"),
        "completed",
        "alice",
        vec![step(
            0,
            podinfo(),
            "6.0.0",
            "6.1.0",
            "completed",
            json!({"commitAfter": "a0"}),
        )],
        None,
    );
    run(
        "20261102-020000",
        "2026-11-02T02:00:00Z",
        Some("2026-11-02T02:20:00Z"),
        "completed",
        "alice",
        vec![
            step(
                0,
                podinfo(),
                "6.1.0",
                "6.2.0",
                "completed",
                json!({"commitAfter": "aaa111"}),
            ),
            step(
                1,
                longhorn(),
                "1.9.0",
                "1.9.1",
                "completed",
                json!({"commitAfter": "bbb222", "restorePoint": "/backups/r2-1.tar.zst"}),
            ),
        ],
        None,
    );
    applied("20261102-020000", 0, "2026-11-02T02:10:00Z");
    applied("20261102-020000", 1, "2026-11-02T02:18:00Z");
    run(
        "20261105-020000",
        "2026-11-05T02:00:00Z",
        Some("2026-11-05T02:40:00Z"),
        "rolled-back",
        "bob",
        vec![
            step(
                0,
                redis(),
                "18.0.0",
                "19.0.0",
                "rolled-back",
                json!({"commitAfter": "ccc333",
                "error": "2 check(s) fail since the update: apps: redis not ready, apps: redis-replicas not ready"}),
            ),
            step(1, podinfo(), "6.2.0", "6.3.0", "skipped", json!({})),
        ],
        None,
    );
    applied("20261105-020000", 0, "2026-11-05T02:10:00Z");
    write(
        &runs.join("20261105-020000/step-0/rollback.json"),
        &json!({"status": "rolled-back", "revertCommit": "ddd444"}),
    );
    run(
        "20261110-230000",
        "2026-11-10T23:00:00Z",
        Some("2026-11-10T23:30:00Z"),
        "failed",
        "system:serviceaccount:upkeep:upkeep",
        vec![step(
            0,
            ingress(),
            "4.11.0",
            "4.12.0",
            "failed",
            json!({
            "restorePoint": "/backups/r4-0.tar.zst",
            "error": "the update did not go in: git push: rejected (non-fast-forward)"}),
        )],
        Some(EMERGENCY),
    );
    run(
        "20261120-020000",
        "2026-11-20T02:00:00Z",
        Some("2026-11-20T02:30:00Z"),
        "completed",
        "alice",
        vec![
            step(
                0,
                redis(),
                "18.0.0",
                "19.0.0",
                "completed",
                json!({"commitAfter": "eee555"}),
            ),
            step(
                1,
                ingress(),
                "4.11.0",
                "4.12.0",
                "completed",
                json!({"commitAfter": "fff666"}),
            ),
        ],
        None,
    );
    applied("20261120-020000", 0, "2026-11-20T02:15:00Z");
    applied("20261120-020000", 1, "2026-11-20T02:25:00Z");
    run(
        "20261128-020000",
        "2026-11-28T02:00:00Z",
        None,
        "running",
        "alice",
        vec![step(0, podinfo(), "6.2.0", "6.3.0", "applying", json!({}))],
        None,
    );
    run(
        "20261202-020000",
        "2026-12-02T02:00:00Z",
        Some("2026-12-02T02:10:00Z"),
        "completed",
        "alice",
        vec![step(
            0,
            podinfo(),
            "6.2.0",
            "6.4.0",
            "completed",
            json!({"commitAfter": "ggg777"}),
        )],
        None,
    );

    // What `upkeep scan --save <stateDir>/report.json` leaves: release dates and newest versions.
    let cu = |c: Value, latest: &str, cands: Value| {
        json!({"apiVersion": "upkeep.dev/v1alpha1",
        "kind": "ComponentUpdates", "component": c, "latest": latest, "candidates": cands,
        "checkedAt": "2026-11-27T04:00:00Z"})
    };
    let cand = |v: &str, published: Option<&str>| {
        let mut c = json!({"version": v, "update": "minor", "allowed": true});
        if let Some(p) = published {
            c["published"] = json!(p);
        }
        c
    };
    write(
        &state.join("report.json"),
        &json!({
            "apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdateReport",
            "generatedAt": "2026-11-27T04:00:00Z",
            "summary": {"components": 5, "withUpdates": 2, "patch": 0, "minor": 2, "major": 0,
                        "security": 0, "breaking": 0, "blocked": 0, "errors": 0},
            "components": [
                cu(podinfo(), "6.4.0", json!([cand("6.2.0", Some("2026-10-31T02:10:00Z")), cand("6.4.0", Some("2026-11-25T00:00:00Z"))])),
                cu(longhorn(), "1.10.0", json!([cand("1.9.1", Some("2026-10-29T02:18:00Z")), cand("1.10.0", None)])),
                cu(redis(), "19.0.0", json!([cand("19.0.0", Some("2026-11-01T02:15:00Z"))])),
                cu(ingress(), "4.12.0", json!([cand("4.12.0", None)])),
                cu(comp("chart", "cert-manager", "cert-manager"), "1.19.0", json!([])),
            ]
        }),
    );
    Seeded {
        _tmp: tmp,
        home,
        cfg,
        state,
    }
}

fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn runs_and_components(rows: &[Value]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| {
            (
                r["runId"].as_str().unwrap().to_string(),
                r["component"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// An RFC 4180 reader, enough to check what the writer quoted.
fn parse_csv(s: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF");
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, '\n') => panic!("a bare LF outside quotes ends a CSV row"),
            (false, c) => field.push(c),
        }
    }
    assert!(
        row.is_empty() && field.is_empty(),
        "the last row ends in CRLF"
    );
    rows
}

#[test]
fn import_then_every_filter_and_output_form() {
    let s = seed();
    let out = s.ok(&["history", "import"]);
    assert!(out.starts_with("imported 7 run(s), 10 step(s)"), "{out}");
    // Importing again replaces, it does not double.
    s.ok(&["history", "import"]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(s.state.join("history.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let all = json_lines(&s.ok(&["-o", "json", "history"]));
    assert_eq!(all.len(), 10);
    assert_eq!(all[0]["runId"], "20261003-020000");
    assert_eq!(all[9]["runId"], "20261202-020000");

    let redis = json_lines(&s.ok(&["-o", "json", "history", "--component", "redis"]));
    assert_eq!(
        runs_and_components(&redis),
        [
            ("20261105-020000".into(), "apps/redis".into()),
            ("20261120-020000".into(), "apps/redis".into())
        ]
    );
    assert_eq!(redis[0]["commit"], "ccc333");
    assert_eq!(redis[0]["revertCommit"], "ddd444");
    assert_eq!(redis[0]["status"], "rolled-back");
    assert!(
        redis[0]["errors"]
            .as_str()
            .unwrap()
            .contains("redis-replicas not ready")
    );
    let by_ns = json_lines(&s.ok(&[
        "-o",
        "json",
        "history",
        "--component",
        "Networking/Ingress-Nginx",
    ]));
    assert_eq!(by_ns.len(), 2);
    assert!(json_lines(&s.ok(&["-o", "json", "history", "--component", "nginx"])).is_empty());

    let rolled = json_lines(&s.ok(&["-o", "json", "history", "--status", "rolled-back"]));
    assert_eq!(
        runs_and_components(&rolled),
        [("20261105-020000".into(), "apps/redis".into())]
    );
    let failed = json_lines(&s.ok(&["-o", "json", "history", "--status", "failed"]));
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["emergencyReason"], EMERGENCY);
    assert_eq!(failed[0]["restorePoint"], "/backups/r4-0.tar.zst");
    assert_eq!(failed[0]["actor"], "system:serviceaccount:upkeep:upkeep");

    // --until a date includes that whole day (the 23:00 run on the 10th).
    let span = json_lines(&s.ok(&[
        "-o",
        "json",
        "history",
        "--since",
        "2026-11-05",
        "--until",
        "2026-11-10",
    ]));
    assert_eq!(
        runs_and_components(&span),
        [
            ("20261105-020000".into(), "apps/redis".into()),
            ("20261105-020000".into(), "apps/podinfo".into()),
            ("20261110-230000".into(), "networking/ingress-nginx".into())
        ]
    );
    let exact = json_lines(&s.ok(&["-o", "json", "history", "--since", "2026-11-10T23:00:01Z"]));
    assert_eq!(exact[0]["runId"], "20261120-020000");

    let grep = json_lines(&s.ok(&["-o", "json", "history", "--grep", "NON-FAST-FORWARD"]));
    assert_eq!(
        runs_and_components(&grep),
        [("20261110-230000".into(), "networking/ingress-nginx".into())]
    );
    let bob = json_lines(&s.ok(&["-o", "json", "history", "--grep", "bob"]));
    assert_eq!(bob.len(), 2);
    // Filters add up.
    let both = json_lines(&s.ok(&[
        "-o",
        "json",
        "history",
        "--component",
        "podinfo",
        "--status",
        "completed",
        "--since",
        "2026-11-01",
    ]));
    assert_eq!(
        runs_and_components(&both),
        [
            ("20261102-020000".into(), "apps/podinfo".into()),
            ("20261202-020000".into(), "apps/podinfo".into())
        ]
    );

    let text = s.ok(&["history", "--component", "ingress-nginx"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("run ") && lines[0].contains("component"));
    assert!(
        lines[1].contains("20261110-230000")
            && lines[1].contains("failed")
            && lines[1].contains(EMERGENCY)
    );
    assert!(
        lines[2].contains("20261120-020000")
            && lines[2].contains("completed")
            && lines[2].contains("fff666")
    );
    assert_eq!(
        s.ok(&["history", "--component", "nothing"]),
        "no steps recorded match\n"
    );

    let csv = s.ok(&["-o", "csv", "history", "--status", "failed"]);
    let rows = parse_csv(&csv);
    assert_eq!(rows.len(), 2, "{csv}");
    assert_eq!(rows[0][..4], ["run", "time", "actor", "component"]);
    assert_eq!(rows[0].len(), rows[1].len());
    let col = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
    assert_eq!(rows[1][col("emergency reason")], EMERGENCY);
    assert_eq!(
        rows[1][col("errors")],
        "the update did not go in: git push: rejected (non-fast-forward)"
    );
    assert_eq!(rows[1][col("time")], "2026-11-10T23:00:00Z");
    assert!(
        csv.contains("\"CVE-2026-1234, \"\"critical\"\" on the ingress\""),
        "{csv}"
    );
}

#[test]
fn bad_flags_are_one_line_exit_2_and_touch_nothing() {
    let s = seed();
    for args in [
        &["history", "--since", "last tuesday"][..],
        &["history", "--until", "2026-02-30"],
        &["history", "--status", "done"],
        &["history", "--since", "2026-11-10", "--until", "2026-11-01"],
        &["-o", "html", "history"],
        &["report", "--month", "2026-13"],
        &["-o", "csv", "report", "--month", "2026-11"],
        &["-o", "csv", "status"],
    ] {
        let out = s.upkeep(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = s.upkeep(&["history", "--since", "last tuesday"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since \"last tuesday\""));
    assert!(
        !s.state.join("history.db").exists(),
        "a bad flag created the database"
    );
}

fn november_report(s: &Seeded) -> Value {
    serde_json::from_str(&s.ok(&["-o", "json", "report", "--month", "2026-11"])).unwrap()
}

#[test]
fn the_monthly_report_figures_are_exact() {
    let s = seed();
    // No import: the first read takes in the saved runs by itself.
    let r = november_report(&s);
    assert_eq!(r["period"], "2026-11-01 to 2026-11-30");
    assert_eq!(r["runs"], 5);
    assert_eq!(
        r["runsByStatus"],
        json!({"completed": 2, "failed": 1, "rolled-back": 1, "running": 1})
    );
    assert_eq!(r["runSuccessRate"], json!(0.5));
    assert_eq!(r["stepsAttempted"], 6);
    assert_eq!(r["stepsCompleted"], 4);
    assert_eq!(r["stepsRolledBack"], 1);
    assert_eq!(r["stepsFailed"], 1);
    assert_eq!(r["stepSuccessRate"].as_f64(), Some(4.0 / 6.0));
    // (20 + 40 + 30 + 30 minutes) / 4 finished runs; the running one is left out.
    assert_eq!(r["meanRunSeconds"].as_f64(), Some(1800.0));
    assert_eq!(r["runsTimed"], 4);
    assert_eq!(
        r["applied"],
        json!([
            {"component": "apps/podinfo", "kind": "chart", "count": 1, "updates": ["6.1.0 → 6.2.0"]},
            {"component": "apps/redis", "kind": "chart", "count": 1, "updates": ["18.0.0 → 19.0.0"]},
            {"component": "longhorn-system/longhorn", "kind": "longhorn", "count": 1, "updates": ["1.9.0 → 1.9.1"]},
            {"component": "networking/ingress-nginx", "kind": "chart", "count": 1, "updates": ["4.11.0 → 4.12.0"]},
        ])
    );
    assert_eq!(
        r["rollbacks"],
        json!([{"runId": "20261105-020000", "time": "2026-11-05T02:00:00Z", "component": "apps/redis",
                "from": "18.0.0", "to": "19.0.0",
                "cause": "2 check(s) fail since the update: apps: redis not ready, apps: redis-replicas not ready",
                "revertCommit": "ddd444"}])
    );
    // podinfo 6.2.0: 2 days, longhorn 1.9.1: 4 days, redis 19.0.0: 19 days (from
    // apply.json's finishedAt); ingress-nginx 4.12.0 has no release date.
    let lag = &r["releaseToApplied"];
    assert_eq!(lag["meanDays"].as_f64(), Some(25.0 / 3.0));
    assert_eq!(lag["maxDays"].as_f64(), Some(19.0));
    let days: Vec<(String, f64)> = lag["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["component"].as_str().unwrap().to_string(),
                u["days"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        [
            ("apps/podinfo".to_string(), 2.0),
            ("longhorn-system/longhorn".to_string(), 4.0),
            ("apps/redis".to_string(), 19.0)
        ]
    );
    assert_eq!(
        r["releaseToAppliedNote"],
        "1 applied update(s) left out: no saved UpdateReport gives their release date"
    );
    assert_eq!(
        r["failures"],
        json!([
            {"cause": "N check(s) fail since the update", "count": 1, "failures": [{
                "runId": "20261105-020000", "time": "2026-11-05T02:00:00Z", "component": "apps/redis",
                "from": "18.0.0", "to": "19.0.0", "status": "rolled-back",
                "error": "2 check(s) fail since the update: apps: redis not ready, apps: redis-replicas not ready",
                "resolution": "rolled back (revert ddd444); 19.0.0 applied in run 20261120-020000 on 2026-11-20"}]},
            {"cause": "the update did not go in", "count": 1, "failures": [{
                "runId": "20261110-230000", "time": "2026-11-10T23:00:00Z", "component": "networking/ingress-nginx",
                "from": "4.11.0", "to": "4.12.0", "status": "failed",
                "error": "the update did not go in: git push: rejected (non-fast-forward)",
                "resolution": "not rolled back; restore point /backups/r4-0.tar.zst; 4.12.0 applied in run 20261120-020000 on 2026-11-20"}]}
        ])
    );
    // podinfo's December update is after the month: in November it was behind.
    assert_eq!(
        r["behind"],
        json!([
            {"component": "apps/podinfo", "applied": "6.2.0", "newest": "6.4.0"},
            {"component": "longhorn-system/longhorn", "applied": "1.9.1", "newest": "1.10.0"}
        ])
    );
    let timeline = r["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 30);
    let day = |d: &str| timeline.iter().find(|b| b["label"] == d).unwrap().clone();
    assert_eq!(
        day("2026-11-02"),
        json!({"label": "2026-11-02", "completed": 2, "rolledBack": 0, "failed": 0})
    );
    assert_eq!(day("2026-11-05")["rolledBack"], 1);
    assert_eq!(day("2026-11-10")["failed"], 1);
    assert_eq!(day("2026-11-20")["completed"], 2);
    let total: u64 = timeline
        .iter()
        .map(|b| b["completed"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 4);

    // The markdown says the same.
    let md = s.ok(&["report", "--month", "2026-11"]);
    for line in [
        "# upkeep report: 2026-11-01 to 2026-11-30",
        "| runs | 5 |",
        "| run success rate | 50.0% |",
        "| step success rate | 66.7% |",
        "| mean run duration | 30m 00s (over 4 finished runs) |",
        "| mean time from release to applied | 8.3 days (longest 19.0, over 3 updates) |",
        "| apps/podinfo | 6.2.0 | 6.4.0 |",
        "### the update did not go in (1)",
    ] {
        assert!(md.lines().any(|l| l == line), "missing {line:?} in\n{md}");
    }

    // --since/--until over the same month gives the same figures.
    let same: Value = serde_json::from_str(&s.ok(&[
        "-o",
        "json",
        "report",
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-30",
    ]))
    .unwrap();
    assert_eq!(same["stepSuccessRate"], r["stepSuccessRate"]);
    assert_eq!(same["failures"], r["failures"]);
}

#[test]
fn without_a_saved_report_the_release_figures_are_left_out_and_said_so() {
    let s = seed();
    std::fs::remove_file(s.state.join("report.json")).unwrap();
    let r = november_report(&s);
    assert_eq!(r["releaseToApplied"], Value::Null);
    assert!(
        r["releaseToAppliedNote"]
            .as_str()
            .unwrap()
            .starts_with("left out: release dates are not in the run records")
    );
    assert_eq!(r["behind"], Value::Null);
    assert!(r["behindNote"].as_str().unwrap().starts_with("unknown"));
    let md = s.ok(&["report", "--month", "2026-11"]);
    assert!(
        md.contains("| mean time from release to applied | n/a |"),
        "{md}"
    );
}

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser"] {
        for dir in ["/usr/bin", "/usr/local/bin", "/snap/bin"] {
            let p = Path::new(dir).join(name);
            if p.exists() {
                return Some(p);
            }
        }
    }
    None
}

#[test]
fn the_html_report_renders_in_headless_chromium_without_console_errors() {
    let s = seed();
    let html = s.ok(&["-o", "html", "report", "--month", "2026-11"]);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script"), "no scripts");
    for outside in [
        "src=", "href=", "url(", "@import", "<link", "<img", "<iframe",
    ] {
        assert!(
            !html.contains(outside),
            "the page loads nothing ({outside})"
        );
    }
    assert!(
        html.matches("<svg").count() >= 2,
        "the charts are inline SVG"
    );
    assert!(html.contains("CVE-2026-1234") || html.contains("the update did not go in"));
    let Some(chromium) = chromium() else {
        if is_root() {
            panic!("chromium is missing: run scripts/install-test-deps.sh");
        }
        eprintln!(
            "SKIP: chromium is not installed and this user cannot install it (not root); scripts/install-test-deps.sh installs it"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();
    let shot = dir.path().join("report.png");
    let profile = dir.path().join("profile");
    let out = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium: {:?}\n{stderr}", out.status);
    let console: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("CONSOLE(") || l.contains(":INFO:CONSOLE"))
        .collect();
    assert!(
        console.is_empty(),
        "console messages from the page: {console:#?}"
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 2000));
    // A blank page compresses to a few kB; text, tables and charts do not.
    assert!(
        png.len() > 30_000,
        "the screenshot is {} bytes: nothing drawn?",
        png.len()
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
