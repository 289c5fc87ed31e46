use std::path::Path;

use serde_json::{Value, json};
use upkeep_contract::{ComponentUpdates, RunRecord, Timestamp, read_kind};

use super::*;

pub(crate) fn report() -> UpdateReport {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/reports/sample-updates.jsonl"
    );
    let docs: Vec<ComponentUpdates> = read_kind(&std::fs::read(p).unwrap(), "sample").unwrap();
    upkeep_report::merge(docs, Timestamp::parse("2026-11-28T04:00:00Z").unwrap())
}

fn write(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn validation(validator: &str, start: &str, end: &str, regression: bool) -> Value {
    json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "ValidationReport",
           "validator": validator, "startedAt": start, "finishedAt": end,
           "checks": [{"name": format!("{validator}/ready"), "status": if regression {"fail"} else {"pass"},
                       "durationMs": 10, "detail": "x", "regression": regression}]})
}

fn apply(component: Value, start: &str, end: &str, status: &str) -> Value {
    json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "ApplyResult", "component": component,
           "from": "1.0.0", "to": "1.1.0", "mode": "gitops", "status": status,
           "startedAt": start, "finishedAt": end})
}

fn run(
    id: &str,
    status: &str,
    start: &str,
    end: Option<&str>,
    emergency: bool,
    steps: Value,
) -> Value {
    let mut r = json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "RunRecord", "runId": id,
                       "startedAt": start, "status": status, "actor": "me", "steps": steps});
    if let Some(e) = end {
        r["finishedAt"] = json!(e);
    }
    if emergency {
        r["emergency"] = json!({"reason": "CVE"});
    }
    r
}

/// Three runs as upkeep-run's store lays them out: a completed chart
/// update, an emergency Longhorn update rolled back after the apps
/// validator found a regression, and a failed k3s step (the newest).
pub(crate) fn state_dir(dir: &Path) {
    let grafana = json!({"kind": "chart", "name": "grafana", "namespace": "monitoring"});
    let longhorn = json!({"kind": "longhorn", "name": "longhorn", "namespace": "longhorn-system"});
    let podinfo = json!({"kind": "chart", "name": "podinfo", "namespace": "podinfo"});
    let k3s = json!({"kind": "k3s", "name": "k3s"});
    let step = |i: u32, c: &Value, status: &str| json!({"index": i, "component": c, "from": "1.0.0", "to": "1.1.0", "status": status});
    let runs = dir.join("runs");

    let a = runs.join("20261101-030000");
    write(
        &a.join("run.json"),
        &run(
            "20261101-030000",
            "completed",
            "2026-11-01T03:00:00Z",
            Some("2026-11-01T03:20:00Z"),
            false,
            json!([step(1, &grafana, "completed")]),
        ),
    );
    write(
        &a.join("step-1/before-flux.json"),
        &validation(
            "flux",
            "2026-11-01T03:01:00Z",
            "2026-11-01T03:02:00Z",
            false,
        ),
    );
    write(
        &a.join("step-1/apply.json"),
        &apply(
            grafana.clone(),
            "2026-11-01T03:02:00Z",
            "2026-11-01T03:10:00Z",
            "applied",
        ),
    );
    write(
        &a.join("step-1/after-flux.json"),
        &validation(
            "flux",
            "2026-11-01T03:10:00Z",
            "2026-11-01T03:12:00Z",
            false,
        ),
    );

    let b = runs.join("20261108-030000");
    write(
        &b.join("run.json"),
        &run(
            "20261108-030000",
            "rolled-back",
            "2026-11-08T03:00:00Z",
            Some("2026-11-08T03:30:00Z"),
            true,
            json!([
                step(1, &longhorn, "rolled-back"),
                step(2, &podinfo, "pending")
            ]),
        ),
    );
    write(
        &b.join("step-1/apply.json"),
        &apply(
            longhorn.clone(),
            "2026-11-08T03:01:00Z",
            "2026-11-08T03:04:00Z",
            "applied",
        ),
    );
    write(
        &b.join("step-1/after-apps.json"),
        &validation("apps", "2026-11-08T03:05:00Z", "2026-11-08T03:06:00Z", true),
    );
    // Still failing after the rollback: not a second failure of the update.
    write(
        &b.join("step-1/after-rollback-apps.json"),
        &validation("apps", "2026-11-08T03:20:00Z", "2026-11-08T03:21:00Z", true),
    );
    write(
        &b.join("step-1/rollback.json"),
        &apply(
            longhorn,
            "2026-11-08T03:07:00Z",
            "2026-11-08T03:25:00Z",
            "rolled-back",
        ),
    );

    let c = runs.join("20261115-030000");
    write(
        &c.join("run.json"),
        &run(
            "20261115-030000",
            "failed",
            "2026-11-15T03:00:00Z",
            Some("2026-11-15T03:05:00Z"),
            false,
            json!([step(1, &k3s, "failed")]),
        ),
    );
    write(
        &c.join("step-1/apply.json"),
        &apply(
            k3s,
            "2026-11-15T03:00:30Z",
            "2026-11-15T03:04:30Z",
            "failed",
        ),
    );
    // A folder without run.json (a run being created) is not a run.
    std::fs::create_dir_all(runs.join("20261116-030000")).unwrap();
}

/// promtool, from Debian's `prometheus` (scripts/install-test-deps.sh).
fn promtool(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; run scripts/install-test-deps.sh)");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn has(text: &str, line: &str) {
    assert!(lines(text).contains(&line), "missing {line:?} in\n{text}");
}

#[test]
fn report_metrics_in_text_format() {
    let mut m = Metrics::default();
    m.from_report(&report());
    let text = m.render();
    has(&text, "# TYPE upkeep_updates_available gauge");
    has(
        &text,
        "upkeep_updates_available{component=\"k3s\",kind=\"k3s\",type=\"minor\"} 1",
    );
    has(
        &text,
        "upkeep_updates_available{component=\"k3s\",kind=\"k3s\",type=\"patch\"} 1",
    );
    has(
        &text,
        "upkeep_updates_available{component=\"flux-system/flux\",kind=\"flux\",type=\"minor\"} 2",
    );
    has(
        &text,
        "upkeep_updates_available{component=\"default/home-assistant\",kind=\"chart\",type=\"major\"} 1",
    );
    has(
        &text,
        "upkeep_security_updates_pending{component=\"networking/ingress-nginx\",kind=\"chart\"} 1",
    );
    has(
        &text,
        "upkeep_security_updates_pending{component=\"flux-system/flux\",kind=\"flux\"} 0",
    );
    // The oldest unapplied fix's publish date, only where a fix is pending.
    has(
        &text,
        "upkeep_security_update_published_timestamp_seconds{component=\"k3s\",kind=\"k3s\"} 1734480000",
    );
    has(
        &text,
        "upkeep_security_update_published_timestamp_seconds{component=\"networking/ingress-nginx\",kind=\"chart\"} 1790932320",
    );
    assert_eq!(
        text.matches("upkeep_security_update_published_timestamp_seconds{")
            .count(),
        2
    );
    has(
        &text,
        "upkeep_component_info{component=\"longhorn-system/longhorn\",kind=\"longhorn\",current=\"1.9.0\",latest=\"1.10.1\"} 1",
    );
    has(
        &text,
        "upkeep_detection_errors{component=\"monitoring/grafana\",kind=\"chart\"} 1",
    );
    has(&text, "upkeep_report_timestamp_seconds 1795838400");
    // Each family has exactly one HELP and one TYPE line.
    assert_eq!(text.matches("# HELP upkeep_updates_available ").count(), 1);
    assert_eq!(text.matches("upkeep_security_updates_pending{").count(), 8);
}

#[test]
fn run_metrics_from_the_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    state_dir(dir.path());
    let runs = load_runs(dir.path()).unwrap();
    assert_eq!(runs.len(), 3, "the folder without run.json is skipped");
    let mut m = Metrics::default();
    m.from_runs(&runs);
    let text = m.render();
    for l in [
        "# TYPE upkeep_runs_total counter",
        "upkeep_runs_total{status=\"completed\"} 1",
        "upkeep_runs_total{status=\"failed\"} 1",
        "upkeep_runs_total{status=\"rolled-back\"} 1",
        "upkeep_runs_total{status=\"running\"} 0",
        "upkeep_runs_total{status=\"aborted\"} 0",
        "upkeep_rollbacks_total 1",
        "upkeep_emergency_runs_total 1",
        // The regression after the update counts; the one after the rollback does not.
        "upkeep_validation_failures_total{validator=\"apps\"} 1",
        "upkeep_validation_failures_total{validator=\"flux\"} 0",
        "upkeep_validation_failures_total{validator=\"storage\"} 0",
        // Runs of 1200 s, 1800 s and 300 s.
        "# TYPE upkeep_run_duration_seconds histogram",
        "upkeep_run_duration_seconds_bucket{le=\"60\"} 0",
        "upkeep_run_duration_seconds_bucket{le=\"300\"} 1",
        "upkeep_run_duration_seconds_bucket{le=\"600\"} 1",
        "upkeep_run_duration_seconds_bucket{le=\"1800\"} 3",
        "upkeep_run_duration_seconds_bucket{le=\"+Inf\"} 3",
        "upkeep_run_duration_seconds_sum 3300",
        "upkeep_run_duration_seconds_count 3",
        // Steps: earliest start to latest finish of their documents.
        "upkeep_step_duration_seconds_bucket{kind=\"chart\",le=\"600\"} 0",
        "upkeep_step_duration_seconds_bucket{kind=\"chart\",le=\"1200\"} 1",
        "upkeep_step_duration_seconds_sum{kind=\"chart\"} 660",
        "upkeep_step_duration_seconds_sum{kind=\"longhorn\"} 1440",
        "upkeep_step_duration_seconds_count{kind=\"longhorn\"} 1",
        "upkeep_step_duration_seconds_sum{kind=\"k3s\"} 240",
        "upkeep_first_run_timestamp_seconds 1793502000",
        "upkeep_last_successful_run_timestamp_seconds 1793503200",
        "upkeep_last_run_timestamp_seconds 1794711600",
        "upkeep_last_run_status{status=\"failed\"} 1",
        "upkeep_last_run_status{status=\"completed\"} 0",
        "upkeep_last_run_status{status=\"rolled-back\"} 0",
        "upkeep_last_run_duration_seconds 300",
        "upkeep_last_run_steps{status=\"failed\"} 1",
        "upkeep_last_run_steps{status=\"completed\"} 0",
        "upkeep_last_run_step_duration_seconds{step=\"1\",component=\"k3s\",kind=\"k3s\",status=\"failed\"} 240",
    ] {
        has(&text, l);
    }
    // The pending step of the rolled-back run has no duration.
    assert_eq!(
        text.matches("upkeep_step_duration_seconds_count{").count(),
        3
    );
}

#[test]
fn no_runs_no_last_run_metrics_but_zero_counters() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Metrics::default();
    m.from_runs(&load_runs(dir.path()).unwrap());
    let text = m.render();
    has(&text, "upkeep_runs_total{status=\"completed\"} 0");
    has(&text, "upkeep_run_duration_seconds_count 0");
    assert!(!text.contains("upkeep_last_run_status"));
    assert!(!text.contains("upkeep_last_successful_run_timestamp_seconds"));
    assert!(!text.contains("upkeep_first_run_timestamp_seconds"));
}

#[test]
fn a_running_run_is_the_last_run_without_a_duration() {
    let dir = tempfile::tempdir().unwrap();
    state_dir(dir.path());
    write(
        &dir.path().join("runs/20261120-030000/run.json"),
        &run(
            "20261120-030000",
            "running",
            "2026-11-20T03:00:00Z",
            None,
            false,
            json!([]),
        ),
    );
    let mut m = Metrics::default();
    m.from_runs(&load_runs(dir.path()).unwrap());
    let text = m.render();
    has(&text, "upkeep_last_run_status{status=\"running\"} 1");
    has(&text, "upkeep_last_run_status{status=\"failed\"} 0");
    assert!(!text.contains("upkeep_last_run_duration_seconds"));
    has(&text, "upkeep_run_duration_seconds_count 3");
}

#[test]
fn every_declared_family_is_exported_and_only_those() {
    let dir = tempfile::tempdir().unwrap();
    state_dir(dir.path());
    let mut m = Metrics::default();
    m.from_report(&report());
    m.from_runs(&load_runs(dir.path()).unwrap());
    let declared: Vec<&str> = DEFS.iter().map(|d| d.name).collect();
    let mut sorted = declared.clone();
    sorted.sort();
    assert_eq!(m.family_names(), sorted);
    let names = series_names();
    for l in m.render().lines().filter(|l| !l.starts_with('#')) {
        let series = l.split(['{', ' ']).next().unwrap();
        assert!(names.iter().any(|n| n == series), "{series} not declared");
    }
    for n in &names {
        assert!(n.starts_with("upkeep_"), "{n}");
    }
}

#[test]
fn promtool_accepts_the_exposition_format() {
    let dir = tempfile::tempdir().unwrap();
    state_dir(dir.path());
    let mut m = Metrics::default();
    m.from_report(&report());
    m.from_runs(&load_runs(dir.path()).unwrap());
    let text = m.render();
    let out = promtool(&["check", "metrics"], Some(&text));
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_broken_run_record_is_an_input_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("runs/r1/run.json");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(
        &p,
        "{\"apiVersion\": \"upkeep.dev/v1alpha1\", \"kind\": \"RunRecord\"",
    )
    .unwrap();
    let e = load_runs(dir.path()).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("runs/r1/run.json"), "{e}");
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

fn record(status: &str) -> RunRecord {
    serde_json::from_value(run(
        "20261115-030000",
        status,
        "2026-11-15T03:00:00Z",
        None,
        false,
        json!([]),
    ))
    .unwrap()
}

#[test]
fn the_exporter_writes_the_textfile_when_a_run_ends_not_before() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    state_dir(dir.path());
    let prom = dir.path().join("collector/upkeep.prom");
    let exporter = Exporter::new(
        dir.path(),
        Targets {
            textfile: Some(prom.clone()),
            pushgateway: None,
        },
    );
    exporter.record_saved(&record("running"));
    assert!(!prom.exists(), "nothing while the run is going");
    exporter.record_saved(&record("failed"));
    let text = std::fs::read_to_string(&prom).unwrap();
    has(&text, "upkeep_last_run_status{status=\"failed\"} 1");
    let mode = std::fs::metadata(&prom).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "node_exporter must read it");
    // Only the .prom file: no temporary file left for the collector.
    let names: Vec<String> = std::fs::read_dir(prom.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["upkeep.prom"]);
}

#[test]
fn a_dead_pushgateway_is_logged_not_fatal_and_the_textfile_still_lands() {
    let dir = tempfile::tempdir().unwrap();
    state_dir(dir.path());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let prom = dir.path().join("upkeep.prom");
    let exporter = Exporter::new(
        dir.path(),
        Targets {
            textfile: Some(prom.clone()),
            pushgateway: Some(
                Pushgateway::new(
                    &format!("http://127.0.0.1:{port}"),
                    "upkeep",
                    std::time::Duration::from_secs(2),
                    "x",
                )
                .unwrap(),
            ),
        },
    );
    let t = std::time::Instant::now();
    // record_saved returns (): it cannot fail the run.
    exporter.record_saved(&record("completed"));
    assert!(t.elapsed() <= exporter.max_delay() + std::time::Duration::from_secs(1));
    assert!(prom.exists());
    // export() says what failed.
    let e = exporter.export(None).unwrap_err();
    assert_eq!(e.exit_code(), 3);
    assert!(
        e.to_string().starts_with("pushgateway http://127.0.0.1:"),
        "{e}"
    );
}

#[test]
fn the_saved_report_is_used_when_present() {
    let dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::new(dir.path(), Targets::default());
    let text = exporter.collect(None).unwrap().render();
    assert!(!text.contains("upkeep_updates_available"), "no report yet");
    save_report(dir.path(), &report()).unwrap();
    let text = exporter.collect(None).unwrap().render();
    has(&text, "upkeep_report_timestamp_seconds 1795838400");
    std::fs::write(
        default_report_path(dir.path()),
        "{\"kind\": \"UpdateReport\"}",
    )
    .unwrap();
    let e = exporter.collect(None).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("report.json"), "{e}");
}

#[test]
fn textfile_must_be_a_prom_file() {
    assert!(check_textfile(Path::new("/var/lib/node_exporter/upkeep.prom"), "x").is_ok());
    let e =
        check_textfile(Path::new("/var/lib/node_exporter/upkeep.txt"), "--textfile").unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().starts_with("--textfile: "), "{e}");
}
