//! The run observer as `upkeep run` uses it: registered on a real RunStore,
//! told of each saved transition, delivering to a real HTTP receiver on its
//! own thread. A dead endpoint neither fails nor holds up the run; a
//! resumed run in a new process does not send again what was sent.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, closed_port, notify_config, rolled_back_run};
use serde_json::Value;
use upkeep_notify::NotifyObserver;
use upkeep_run::RunStore;

/// The log lines of the whole test process (the delivery thread's too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> Logs {
    let logs = Logs::default();
    let w = logs.clone();
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || w.clone())
        .try_init();
    logs
}

fn keys(reqs: &[Value], path: &str) -> Vec<String> {
    reqs.iter()
        .filter(|r| r["path"] == path)
        .map(|r| {
            let b: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            b["key"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn a_run_is_told_to_each_channel_as_it_asked_and_a_dead_endpoint_does_not_hold_it_up() {
    let logs = capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let rec = Server::http(dir.path());
    let dead = closed_port();
    let yaml = format!(
        r#"notify:
  timeout: 2s
  retries: 1
  channels:
    all: {{type: webhook, url: "{all}"}}
    chat: {{type: webhook, url: "{chat}", events: [run-started, run-finished]}}
    pager: {{type: webhook, url: "{pager}", escalation: true}}
    dead: {{type: webhook, url: "http://127.0.0.1:{dead}/hook/deadtoken99"}}
"#,
        all = rec.url("/all"),
        chat = rec.url("/chat"),
        pager = rec.url("/pager"),
    );
    let config = notify_config(dir.path(), &yaml, &[]);
    let (timeout, attempts) = (config.timeout, 1 + config.retries);
    let state = config.state_dir.clone();
    let observer = Arc::new(NotifyObserver::start(config));
    let store = RunStore::new(&state).observe(observer.clone());

    let started = Instant::now();
    for r in rolled_back_run("r-1") {
        store
            .save_record(&r)
            .expect("saving never fails because of a notification");
    }
    let saving = started.elapsed();
    // Saving does not wait for any delivery: one dead-endpoint attempt alone
    // may take the timeout.
    assert!(saving < timeout, "saving nine transitions took {saving:?}");
    let finishing = Instant::now();
    observer.finish();
    // Six events, each at most timeout × attempts (plus a pause) on the dead channel.
    let bound = (timeout * attempts + Duration::from_millis(200)) * 6 + Duration::from_secs(2);
    assert!(finishing.elapsed() <= bound, "{:?}", finishing.elapsed());

    let reqs = rec.records();
    assert_eq!(
        keys(&reqs, "/all"),
        [
            "run/r-1/started",
            "run/r-1/step/0/applied",
            "run/r-1/step/1/applied",
            "run/r-1/step/1/validation-failed",
            "run/r-1/step/1/rolled-back",
            "run/r-1/finished/rolled-back",
        ]
    );
    assert_eq!(
        keys(&reqs, "/chat"),
        ["run/r-1/started", "run/r-1/finished/rolled-back"]
    );
    // The escalation channel gets the failures and rollbacks only.
    assert_eq!(
        keys(&reqs, "/pager"),
        [
            "run/r-1/step/1/validation-failed",
            "run/r-1/step/1/rolled-back",
            "run/r-1/finished/rolled-back",
        ]
    );
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains(&format!("rolled-back NOT delivered to dead (webhook, http://127.0.0.1:{dead}) after 2 attempt(s)")),
        "{text}"
    );
    assert!(!text.contains("deadtoken99"), "{text}");

    // The sent-events file is the operator's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(state.join("notify-sent.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_resumed_run_in_a_new_process_does_not_send_again() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Server::http(dir.path());
    let yaml = format!(
        "notify:\n  channels:\n    all: {{type: webhook, url: \"{}\"}}\n",
        rec.url("/all")
    );
    let run = rolled_back_run("r-2");

    // The first process gets as far as the rollback of step 1, then dies.
    let config = notify_config(dir.path(), &yaml, &[]);
    let state = config.state_dir.clone();
    let first = Arc::new(NotifyObserver::start(config));
    let store = RunStore::new(&state).observe(first.clone());
    for r in &run[..7] {
        store.save_record(r).unwrap();
    }
    first.finish();
    drop(store);
    let sent_before = keys(&rec.records(), "/all");
    assert_eq!(
        sent_before.last().unwrap(),
        "run/r-2/step/1/validation-failed"
    );

    // `upkeep resume`: a new observer sees the run afresh from where it stood.
    let config = notify_config(dir.path(), &yaml, &[]);
    let second = Arc::new(NotifyObserver::start(config));
    let store = RunStore::new(&state).observe(second.clone());
    for r in &run[6..] {
        store.save_record(r).unwrap();
    }
    second.finish();
    let all = keys(&rec.records(), "/all");
    assert_eq!(
        all[sent_before.len()..],
        ["run/r-2/step/1/rolled-back", "run/r-2/finished/rolled-back"]
    );
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len(), "sent twice: {all:?}");
}
