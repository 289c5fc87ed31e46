//! The metrics after a real `upkeep run`: with `metrics.textfile` in
//! upkeep.yaml, the run's end rewrites node_exporter's textfile from the
//! run folder the run just wrote (sim-cluster, a real git checkout and
//! Flux's simulated helm-controller, as in run.rs); a Pushgateway that is
//! down does not fail the run.

#[path = "../../apply-update/tests/common/flux.rs"]
mod flux;
#[path = "common/run.rs"]
mod run;
#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use std::net::TcpListener;

use flux::*;
use sim::*;

const BIN: &str = env!("CARGO_BIN_EXE_upkeep");

#[test]
fn a_run_ends_by_writing_the_textfile_and_a_dead_pushgateway_does_not_fail_it() {
    let tmp = tempfile::tempdir().unwrap();
    let g = gitops(tmp.path());
    let sim = cluster(tmp.path(), &g.origin);
    eventually("6.5.0 installed", || {
        (installed(&sim)? == ("6.5.0".into(), "deployed".into())).then_some(())
    });
    let prom = tmp.path().join("collector/upkeep.prom");
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = tmp.path().join("upkeep.yaml");
    std::fs::write(
        &cfg,
        format!(
            "stateDir: {}\nsnapshot:\n  excludeSecrets: true\nrun:\n  validators: [flux, apps]\n  stepTimeout: 60s\nmetrics:\n  textfile: {}\n  pushgateway:\n    url: http://127.0.0.1:{dead}\n    timeout: 2s\n",
            tmp.path().join("state").display(),
            prom.display()
        ),
    )
    .unwrap();
    let out = tool(BIN, tmp.path())
        .arg("--config")
        .arg(&cfg)
        .arg("--gitops")
        .arg(&g.checkout)
        .arg("--kubeconfig")
        .arg(sim.kubeconfig())
        .args(["-o", "json", "run", "--yes", "--poll", "200ms", "--plan"])
        .arg(run::plan(tmp.path(), "plan.json", "6.5.0", "6.6.0"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["status"], "completed");
    // The push failed, and said so, as a warning.
    assert!(
        stderr.contains("metrics after run") && stderr.contains("cannot reach it"),
        "{stderr}"
    );

    let text = std::fs::read_to_string(&prom).unwrap();
    let finished = run["finishedAt"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_second();
    for line in [
        "upkeep_runs_total{status=\"completed\"} 1".to_string(),
        "upkeep_last_run_status{status=\"completed\"} 1".to_string(),
        "upkeep_last_run_status{status=\"running\"} 0".to_string(),
        "upkeep_last_run_steps{status=\"completed\"} 1".to_string(),
        "upkeep_rollbacks_total 0".to_string(),
        "upkeep_validation_failures_total{validator=\"apps\"} 0".to_string(),
        "upkeep_step_duration_seconds_count{kind=\"chart\"} 1".to_string(),
        format!("upkeep_last_successful_run_timestamp_seconds {finished}"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
    }
    // The step's time comes from the documents the run saved for it.
    assert!(
        text.lines().any(|l| l.starts_with(
            "upkeep_last_run_step_duration_seconds{step=\"1\",component=\"podinfo/podinfo\",kind=\"chart\",status=\"completed\"} "
        )),
        "{text}"
    );
}
