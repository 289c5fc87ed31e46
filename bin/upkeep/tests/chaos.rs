//! The chaos suite: the real binaries while the world misbehaves.
//!
//! - sim-cluster faults (10% 500s, 200 ms latency, 429 with Retry-After,
//!   dropped connections and watches, 409 on updates) during `upkeep scan`,
//!   `snapshot create`, `restore` and `upkeep run`;
//! - sim-upstream faults (truncated bodies, wrong content types, a stalled
//!   connection, 429s, dropped connections, 5xx, 10 MB of garbage) during
//!   `upkeep scan`;
//! - the API server gone for 30 s in the middle of a run, then back;
//! - the disk full (a tmpfs half the size the restore point needs) during
//!   `snapshot create`, and the state directory's (a 2 MiB tmpfs, filled at
//!   each stage of a run) during a run's state and history writes; skipped
//!   with a message where mounting is not permitted;
//! - a memory limit (RLIMIT_DATA through prlimit: 256 and 128 MiB) on
//!   `upkeep scan` (also against 10 MB of garbage), `snapshot create` and
//!   `merge-report` fed a 200 MB stream;
//! - SIGKILL of `upkeep run` at seeded random moments, then `upkeep resume`.
//!
//! The rule for every case: the command ends with success, or with a clean
//! failure (exit 1, 2 or 3; for 2 and 3 one `NAME: error:` line last, or a
//! degraded document on stdout), never a panic or a signal; nothing in the state directory is left corrupt or half-written
//! (every JSON file parses, no temporary leftovers, every restore point
//! passes `snapshot verify`, `upkeep history` reads history.db); a run ends
//! completed or rolled back (after `upkeep resume` if it was cut short) with
//! the GitOps checkout, its origin and the cluster agreeing.
//!
//! All randomness is seeded. The suite prints `chaos: N cases tried, M
//! failures`; `CHAOS_ONLY=kill,disk` runs some groups only.

#[path = "../../apply-update/tests/common/flux.rs"]
mod flux;
#[path = "common/run.rs"]
mod run;
#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flux::*;
use run::*;
use serde_json::Value;
use sim::*;
use sim_upstream::{FaultConfig, SimOptions, SimUpstream};

/// SIGKILL seeds; each is one case.
const KILL_SEEDS: u64 = 50;
/// Workers sharing the SIGKILL seeds.
const KILL_WORKERS: u64 = 3;

/// splitmix64: a seeded generator, the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Cases tried and failures found, across the groups' threads.
struct Suite {
    tried: AtomicUsize,
    failures: Mutex<Vec<String>>,
    groups: Mutex<Vec<String>>,
}

impl Suite {
    fn new() -> Suite {
        Suite {
            tried: AtomicUsize::new(0),
            failures: Mutex::new(Vec::new()),
            groups: Mutex::new(Vec::new()),
        }
    }

    /// Runs one case; a helper's panic (a setup step that broke) is a failure too.
    fn case(&self, name: &str, f: impl FnOnce() -> Result<(), String>) -> bool {
        self.tried.fetch_add(1, Ordering::SeqCst);
        let start = Instant::now();
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
                Err(p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "the case panicked".into()))
            });
        let secs = start.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                eprintln!("chaos: ok   {name} ({secs:.1}s)");
                true
            }
            Err(e) => {
                eprintln!("chaos: FAIL {name} ({secs:.1}s): {e}");
                self.failures.lock().unwrap().push(format!("{name}: {e}"));
                false
            }
        }
    }

    fn group(&self, name: &str, tried: usize, failed: usize) {
        self.groups.lock().unwrap().push(format!(
            "chaos {name}: {tried} cases tried, {failed} failures"
        ));
    }
}

fn wanted(group: &str) -> bool {
    match std::env::var("CHAOS_ONLY") {
        Ok(only) => only.split(',').any(|g| g.trim() == group),
        Err(_) => true,
    }
}

fn bin_dir() -> PathBuf {
    // target/debug/deps/chaos-HASH -> target/debug
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Another binary of the workspace (`cargo build --workspace --bins` puts it there).
fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

/// The rule for one command's end: exit 0 or 1, or 2/3 with a one-line
/// `NAME: error:` message last; never a panic or a signal. Returns the code.
fn judge(what: &str, out: &Output) -> Result<i32, String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A degraded result (exit 3 with its document, the failures inside it,
    // as a detector that could not reach an upstream writes) is clean too.
    if out.status.code() == Some(3)
        && !out.stdout.is_empty()
        && !stderr.contains("panicked")
        && !stderr.contains("internal error (a bug")
    {
        eprintln!("chaos:        {what}: exit 3 with a degraded document");
        return Ok(3);
    }
    judge_parts(what, out.status.code(), &stderr)
}

fn judge_parts(what: &str, code: Option<i32>, stderr: &str) -> Result<i32, String> {
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    eprintln!(
        "chaos:        {what}: exit {code:?}: {}",
        last.chars().take(160).collect::<String>()
    );
    if stderr.contains("panicked") || stderr.contains("internal error (a bug") {
        return Err(format!("{what} panicked: {}", tail(stderr)));
    }
    let Some(code) = code else {
        return Err(format!("{what} died by a signal: {}", tail(stderr)));
    };
    match code {
        0 | 1 => Ok(code),
        2 | 3 => {
            if last.contains(": error: ") {
                Ok(code)
            } else {
                Err(format!(
                    "{what} exit {code} without a one-line error: {}",
                    tail(stderr)
                ))
            }
        }
        _ => Err(format!("{what} exit {code}: {}", tail(stderr))),
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(6)..].join(" | ")
}

fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A temporary or half-written file's name.
fn leftover(p: &Path) -> bool {
    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    n.starts_with(".upkeep-tmp-")
        || n.starts_with(".tmp-")
        || n.contains(".partial-")
        || n.ends_with(".tmp")
}

/// `snapshot verify` on a restore point (archive or directory).
fn verify_point(home: &Path, point: &Path) -> Result<(), String> {
    let out = tool(bin("snapshot").to_str().unwrap(), home)
        .arg("verify")
        .arg(point)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "snapshot verify {}: {}",
            point.display(),
            tail(&String::from_utf8_lossy(&out.stderr))
        ))
    }
}

/// Restore points under `dir`: `*.tar.zst` archives and directories with a manifest.
fn restore_points(dir: &Path) -> Vec<PathBuf> {
    let mut points = Vec::new();
    for f in files_below(dir) {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".tar.zst") && !leftover(&f) {
            points.push(f);
        } else if name == "manifest.json"
            && let Some(parent) = f.parent()
            && parent.join("objects").exists()
        {
            points.push(parent.to_path_buf());
        }
    }
    points
}

/// Nothing corrupt or half-written under the state directory `state`:
/// no temporary leftovers, every JSON file parses, every restore point
/// verifies, and `upkeep history` reads history.db.
fn state_is_sound(home: &Path, state: &Path, cfg: &Path) -> Result<(), String> {
    if !state.exists() {
        return Ok(());
    }
    for f in files_below(state) {
        if leftover(&f) {
            return Err(format!("left behind: {}", f.display()));
        }
        if f.extension().is_some_and(|e| e == "json") {
            let bytes = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| format!("{} does not parse: {e}", f.display()))?;
        }
    }
    for p in restore_points(state) {
        verify_point(home, &p)?;
    }
    // Every run folder is a run (a plan without its record is half a run).
    if let Ok(rd) = std::fs::read_dir(state.join("runs")) {
        for d in rd.flatten() {
            if !d.path().join("run.json").is_file() {
                return Err(format!("{} holds no run.json", d.path().display()));
            }
        }
    }
    if state.join("history.db").exists() {
        let out = tool(BIN, home)
            .arg("--config")
            .arg(cfg)
            .args(["-o", "json", "history"])
            .output()
            .unwrap();
        let code = judge("upkeep history", &out)?;
        if code != 0 {
            return Err(format!(
                "upkeep history exit {code}: {}",
                tail(&String::from_utf8_lossy(&out.stderr))
            ));
        }
        for doc in serde_json::Deserializer::from_slice(&out.stdout).into_iter::<Value>() {
            doc.map_err(|e| format!("upkeep history printed broken JSON: {e}"))?;
        }
    }
    Ok(())
}

/// The newest run's record, if any run was saved (as upkeep sees it: a run
/// killed between saving its plan and its record left a folder without
/// one, which is not a run).
fn newest_run(state: &Path) -> Option<Value> {
    let dir = std::fs::read_dir(state.join("runs"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("run.json").is_file())
        .max()?;
    serde_json::from_slice(&std::fs::read(dir.join("run.json")).ok()?).ok()
}

fn ended(run: &Value) -> bool {
    matches!(
        run["status"].as_str(),
        Some("completed" | "rolled-back" | "failed")
    )
}

/// The HelmRelease file with the podinfo version `v`.
fn helmrelease_at(v: &str) -> String {
    HELMRELEASE.replace("\"6.5.0\"", &format!("\"{v}\""))
}

/// After a run (resumed if needed) on the one-step podinfo plan to `to`:
/// it ended completed or rolled back, and Git, origin and the cluster agree.
fn run_is_consistent(tmp: &Path, g: &Gitops, sim: &Sim, to: &str) -> Result<(), String> {
    let state = tmp.join("state");
    let commits = upkeep_commits(g);
    let head = git(&g.checkout, &["rev-parse", "HEAD"]);
    let origin = git(&g.origin, &["rev-parse", "main"]);
    if head != origin {
        return Err(format!("checkout HEAD {head} is not origin's {origin}"));
    }
    let dirty = git(&g.checkout, &["status", "--porcelain"]);
    if !dirty.trim().is_empty() {
        return Err(format!("the checkout is dirty: {dirty}"));
    }
    let file = std::fs::read_to_string(g.checkout.join("apps/podinfo/helmrelease.yaml"))
        .map_err(|e| e.to_string())?;
    let Some(run) = newest_run(&state) else {
        // Killed before the run was saved: nothing may have changed.
        return if commits.is_empty() && file == HELMRELEASE {
            Ok(())
        } else {
            Err(format!("no run saved, yet commits {commits:?}"))
        };
    };
    let update = format!("upkeep: chart podinfo/podinfo 6.5.0 -> {to}");
    let revert = format!("upkeep: roll back chart podinfo/podinfo {to} -> 6.5.0");
    let want_installed = match run["status"].as_str() {
        Some("completed") => {
            if commits != [update.clone()] || file != helmrelease_at(to) {
                return Err(format!("completed, but commits {commits:?}"));
            }
            to
        }
        Some("rolled-back") => {
            if !(commits.is_empty() || commits == [revert.clone(), update.clone()])
                || file != HELMRELEASE
            {
                return Err(format!("rolled back, but commits {commits:?}"));
            }
            "6.5.0"
        }
        other => return Err(format!("the run ended {other:?}: {run}")),
    };
    if run["steps"][0]["status"] != run["status"] {
        return Err(format!("the step disagrees with the run: {run}"));
    }
    let start = Instant::now();
    loop {
        if installed(sim).is_some_and(|(v, s)| v == want_installed && s == "deployed") {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "{} is not installed: {:?}",
                want_installed,
                installed(sim)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `upkeep resume` until the newest run has ended (a resume can itself be
/// cut short by the fault being tested; each try must still end cleanly).
fn resume_to_the_end(
    tmp: &Path,
    g: &Gitops,
    sim: &Sim,
    cfg: &Path,
    what: &str,
) -> Result<(), String> {
    for _ in 0..3 {
        match newest_run(&tmp.join("state")) {
            Some(r) if ended(&r) => return Ok(()),
            None => return Ok(()),
            Some(_) => {}
        }
        let out = upkeep(tmp, g, sim, cfg)
            .args(["resume", "--poll", "200ms"])
            .output()
            .unwrap();
        judge(&format!("{what}: upkeep resume"), &out)?;
    }
    match newest_run(&tmp.join("state")) {
        Some(r) if !ended(&r) => Err(format!("{what}: three resumes did not end the run: {r}")),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// sim-cluster faults

/// The fault profiles of the brief, as `/_admin/faults` documents.
fn cluster_profiles(seed: u64) -> Vec<(&'static str, String)> {
    vec![
        (
            "10% 500s",
            format!("{{seed: {seed}, rules: [{{action: error, status: 500, rate: 0.1}}]}}"),
        ),
        (
            "200 ms latency",
            "{rules: [{action: latency, latency: 200ms}]}".into(),
        ),
        (
            "429 with Retry-After",
            format!("{{seed: {seed}, rules: [{{action: throttle, retryAfter: 1, rate: 0.1}}]}}"),
        ),
        (
            "dropped connections and watches",
            format!(
                "{{seed: {seed}, rules: [{{action: drop, verbs: [watch]}}, {{action: drop, rate: 0.05}}]}}"
            ),
        ),
        (
            "409 on updates",
            format!(
                "{{seed: {seed}, rules: [{{action: error, status: 409, verbs: [update, patch], rate: 0.3}}]}}"
            ),
        ),
    ]
}

/// Replaces sim-cluster's faults (through kubectl's raw PUT to the admin endpoint).
fn set_faults(sim: &Sim, rules: &str) {
    let f = sim.dir.path().join("faults.yaml");
    std::fs::write(&f, rules).unwrap();
    sim.kubectl(&[
        "replace",
        "--raw",
        "/_admin/faults",
        "-f",
        f.to_str().unwrap(),
    ]);
}

fn clear_faults(sim: &Sim) {
    sim.kubectl(&["delete", "--raw", "/_admin/faults"]);
}

fn cluster_faults(suite: &Suite) {
    let (mut tried, mut failed) = (0, 0);
    let mut count = |ok: bool| {
        tried += 1;
        if !ok {
            failed += 1;
        }
    };
    for (i, (name, rules)) in cluster_profiles(11).into_iter().enumerate() {
        count(suite.case(&format!("cluster {name}: upkeep scan"), || {
            let tmp = tempfile::tempdir().unwrap();
            let cluster = Sim::start(&workspace().join("testdata/clusters/homelab"), None);
            let upstream = Upstream::start();
            let cfg = upstream.config(tmp.path());
            set_faults(&cluster, &rules);
            scan(tool(BIN, tmp.path()), &cfg, &cluster, "upkeep scan").map(|_| ())
        }));
        count(suite.case(&format!("cluster {name}: snapshot create"), || {
            let tmp = tempfile::tempdir().unwrap();
            let cluster = Sim::start(&workspace().join("testdata/clusters/homelab"), None);
            set_faults(&cluster, &rules);
            let out_dir = tmp.path().join("points");
            std::fs::create_dir_all(&out_dir).unwrap();
            let out = tool(bin("snapshot").to_str().unwrap(), tmp.path())
                .args(["create", "--exclude-secrets", "--kubeconfig"])
                .arg(cluster.kubeconfig())
                .arg("--out")
                .arg(out_dir.join("rp.tar.zst"))
                .output()
                .unwrap();
            let code = judge("snapshot create", &out)?;
            no_leftovers(&out_dir)?;
            let archive = out_dir.join("rp.tar.zst");
            match (code, archive.exists()) {
                (0, true) => verify_point(tmp.path(), &archive),
                (0, false) => Err("exit 0 but no archive".into()),
                (_, false) => Ok(()),
                (c, true) => Err(format!("exit {c} but an archive was left")),
            }
        }));
        count(suite.case(&format!("cluster {name}: restore"), || {
            restore_under(&rules)
        }));
        count(suite.case(&format!("cluster {name}: upkeep run"), || {
            run_under(&rules, if i % 2 == 0 { "6.6.0" } else { "6.7.0" })
        }));
    }
    suite.group("sim-cluster faults", tried, failed);
}

/// stdout of a command that exited 0 or 3 (degraded) holds one document of `kind`.
/// `upkeep -o json scan` started by `cmd` (plain, or under a memory limit)
/// against `cluster` with `cfg`: judged, its report parsed; its output.
fn scan(mut cmd: Command, cfg: &Path, cluster: &Sim, what: &str) -> Result<Output, String> {
    let out = cmd
        .arg("--config")
        .arg(cfg)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["-o", "json", "scan"])
        .output()
        .unwrap();
    let code = judge(what, &out)?;
    report_parses(code, &out.stdout, "UpdateReport")?;
    Ok(out)
}

fn report_parses(code: i32, stdout: &[u8], kind: &str) -> Result<(), String> {
    if code == 0 || (code == 3 && !stdout.is_empty()) {
        let doc: Value = serde_json::from_slice(stdout)
            .map_err(|e| format!("exit {code}, stdout is not one document: {e}"))?;
        if doc["kind"] != kind {
            return Err(format!("exit {code}, printed a {} document", doc["kind"]));
        }
    }
    Ok(())
}

fn no_leftovers(dir: &Path) -> Result<(), String> {
    match files_below(dir).into_iter().find(|f| leftover(f)) {
        Some(f) => Err(format!("left behind: {}", f.display())),
        None => Ok(()),
    }
}

/// A restore point taken cleanly, drift, then `restore --mode replace`
/// under the faults; whatever it says, a second restore without faults
/// puts everything back.
fn restore_under(rules: &str) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Sim::start(&workspace().join("testdata/clusters/homelab"), None);
    let point = tmp.path().join("rp.tar.zst");
    let out = tool(bin("snapshot").to_str().unwrap(), tmp.path())
        .args(["create", "--exclude-secrets", "--kubeconfig"])
        .arg(cluster.kubeconfig())
        .arg("--out")
        .arg(&point)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!(
            "snapshot create: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    cluster.kubectl(&[
        "scale",
        "deployment/podinfo",
        "-n",
        "podinfo",
        "--replicas=5",
    ]);
    set_faults(&cluster, rules);
    let restore = || {
        tool(bin("restore").to_str().unwrap(), tmp.path())
            .arg(&point)
            .args(["--mode", "replace", "--kubeconfig"])
            .arg(cluster.kubeconfig())
            .output()
            .unwrap()
    };
    let out = restore();
    let code = judge("restore", &out)?;
    if code != 3 || !out.stdout.is_empty() {
        report_parses(0, &out.stdout, "RestoreResult")?;
    }
    clear_faults(&cluster);
    let out = restore();
    if judge("restore (again, no faults)", &out)? != 0 {
        return Err(format!(
            "the restore without faults failed: {}",
            tail(&String::from_utf8_lossy(&out.stderr))
        ));
    }
    let d = cluster.json(&["get", "deployment", "podinfo", "-n", "podinfo"]);
    if d["spec"]["replicas"] == 5 {
        return Err("the drift is still there".into());
    }
    Ok(())
}

/// `upkeep run` under the faults; then, faults cleared, `resume` until it
/// ends; the run must end completed or rolled back and consistent.
fn run_under(rules: &str, to: &str) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let g = gitops(tmp.path());
    let sim = cluster(tmp.path(), &g.origin);
    ready(&sim);
    let cfg = config(tmp.path());
    set_faults(&sim, rules);
    let out = upkeep(tmp.path(), &g, &sim, &cfg)
        .args(["run", "--yes", "--poll", "200ms", "--plan"])
        .arg(plan(tmp.path(), "p.json", "6.5.0", to))
        .output()
        .unwrap();
    judge("upkeep run", &out)?;
    clear_faults(&sim);
    resume_to_the_end(tmp.path(), &g, &sim, &cfg, "after the faults")?;
    run_is_consistent(tmp.path(), &g, &sim, to)?;
    state_is_sound(tmp.path(), &tmp.path().join("state"), &cfg)
}

// ---------------------------------------------------------------------------
// sim-upstream faults

struct Upstream {
    server: Option<SimUpstream>,
    runtime: tokio::runtime::Runtime,
}

impl Upstream {
    fn start() -> Upstream {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime
            .block_on(SimUpstream::start(SimOptions::new(
                sim_upstream::workspace_fixture(),
            )))
            .unwrap();
        Upstream {
            server: Some(server),
            runtime,
        }
    }

    fn set_faults(&self, json: &str) {
        let cfg: FaultConfig = serde_json::from_str(json).unwrap();
        self.server.as_ref().unwrap().set_faults(cfg).unwrap();
    }

    /// upkeep.yaml pointing every upstream here: one retry, a 3 s timeout.
    fn config(&self, dir: &Path) -> PathBuf {
        let base = self.server.as_ref().unwrap().base_url();
        let cfg = dir.join("upkeep.yaml");
        std::fs::write(
            &cfg,
            format!(
                "stateDir: {}\nupstreams:\n  github:\n    url: {base}\n  k3sChannels:\n    url: {base}/v1-release/channels\n  \
                 helmMirrors:\n    https://charts.longhorn.io: {base}/helm/longhorn\nhttp:\n  retries: 1\n  timeout: 3s\n\
                 cache:\n  dir: {}\n",
                dir.join("state").display(),
                dir.join("cache").display()
            ),
        )
        .unwrap();
        cfg
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.runtime.block_on(s.shutdown());
        }
    }
}

fn upstream_faults(suite: &Suite) {
    let kinds: Vec<(&str, String)> = vec![
        ("truncated bodies", r#"{"kind":"truncate"}"#.into()),
        (
            "wrong content type",
            r#"{"kind":"wrong-content-type"}"#.into(),
        ),
        (
            "a stalled connection",
            r#"{"kind":"stall","delayMs":20000}"#.into(),
        ),
        (
            "an exhausted rate limit",
            r#"{"kind":"too-many-requests","retryAfter":3600}"#.into(),
        ),
        (
            "429 then success",
            r#"{"kind":"too-many-requests","retryAfter":1,"times":2}"#.into(),
        ),
        ("dropped connections", r#"{"kind":"drop"}"#.into()),
        ("502s", r#"{"kind":"error","status":502}"#.into()),
        ("10 MB of garbage", r#"{"kind":"garbage"}"#.into()),
        ("half garbage", r#"{"kind":"garbage","rate":0.5}"#.into()),
    ];
    let cluster = Sim::start(&workspace().join("testdata/clusters/homelab"), None);
    let (mut tried, mut failed) = (0, 0);
    for (name, rule) in &kinds {
        let ok = suite.case(&format!("upstream {name}: upkeep scan"), || {
            let tmp = tempfile::tempdir().unwrap();
            let upstream = Upstream::start();
            let rule = rule.replacen('{', r#"{"path":"*","#, 1);
            upstream.set_faults(&format!(r#"{{"seed":5,"faults":[{rule}]}}"#));
            let cfg = upstream.config(tmp.path());
            scan(tool(BIN, tmp.path()), &cfg, &cluster, "upkeep scan")?;
            no_leftovers(&tmp.path().join("cache"))?;
            // What a faulty upstream served must not poison the cache: a
            // scan after it (faults gone) gets the recorded releases.
            upstream.set_faults(r#"{"faults":[]}"#);
            let out = scan(
                tool(BIN, tmp.path()),
                &cfg,
                &cluster,
                "upkeep scan (faults gone)",
            )?;
            let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let k3s = report["components"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["component"]["kind"] == "k3s"));
            match k3s {
                Some(k) if k["candidates"].as_array().is_some_and(|c| !c.is_empty()) => Ok(()),
                _ => Err(format!(
                    "after the faults the k3s releases are not back: {}",
                    tail(&String::from_utf8_lossy(&out.stderr))
                )),
            }
        });
        tried += 1;
        if !ok {
            failed += 1;
        }
    }
    suite.group("sim-upstream faults", tried, failed);
}

// ---------------------------------------------------------------------------
// a partition: the API server gone for 30 s in the middle of a run

fn partition(suite: &Suite) {
    let (mut tried, mut failed) = (0, 0);
    for (stage, to) in [("applying", "6.6.0"), ("validating-before", "6.7.0")] {
        let ok = suite.case(
            &format!("partition: API gone for 30 s at {stage}, run to {to}"),
            || {
                let tmp = tempfile::tempdir().unwrap();
                let g = gitops(tmp.path());
                let sim = cluster(tmp.path(), &g.origin);
                ready(&sim);
                let cfg = config(tmp.path());
                let err = tmp.path().join("run.stderr");
                let child = upkeep(tmp.path(), &g, &sim, &cfg)
                    .args(["run", "--yes", "--poll", "300ms", "--plan"])
                    .arg(plan(tmp.path(), "p.json", "6.5.0", to))
                    .stdout(Stdio::null())
                    .stderr(File::create(&err).unwrap())
                    .spawn()
                    .unwrap();
                let stages = ["validating-before", "applying", "validating-after"];
                let from = stages.iter().position(|s| *s == stage).unwrap();
                wait_for_status(&tmp.path().join("state"), &reached(&stages[from..]));
                // Every request dropped: as if the network had gone.
                set_faults(&sim, "{rules: [{action: drop}]}");
                let child = Waiter::new(child);
                std::thread::sleep(Duration::from_secs(30));
                clear_faults(&sim);
                let code = child.wait(Duration::from_secs(120))?;
                judge_parts("upkeep run", code, &std::fs::read_to_string(&err).unwrap())?;
                resume_to_the_end(tmp.path(), &g, &sim, &cfg, "after the partition")?;
                run_is_consistent(tmp.path(), &g, &sim, to)?;
                state_is_sound(tmp.path(), &tmp.path().join("state"), &cfg)
            },
        );
        tried += 1;
        if !ok {
            failed += 1;
        }
    }
    suite.group("partition", tried, failed);
}

/// A child process waited for with a deadline (killed past it).
struct Waiter(Child);

impl Waiter {
    fn new(c: Child) -> Waiter {
        Waiter(c)
    }

    fn wait(mut self, limit: Duration) -> Result<Option<i32>, String> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return Ok(s.code());
            }
            if start.elapsed() > limit {
                let _ = self.0.kill();
                let _ = self.0.wait();
                return Err(format!("still running after {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

// ---------------------------------------------------------------------------
// the disk full

/// A 2 MiB tmpfs, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        out.status.success().then(|| Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    /// Fills what is left with one file (removed to free the space).
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let p = self.dir.join("filler");
        let mut f = File::create(&p).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        p
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn disk_full(suite: &Suite) {
    let probe = tempfile::tempdir().unwrap();
    if Tmpfs::mount(&probe.path().join("m"), "64k").is_none() {
        eprintln!("chaos: disk-full cases skipped: mounting a tmpfs is not permitted here");
        suite.group("disk full (skipped: cannot mount)", 0, 0);
        return;
    }
    let (mut tried, mut failed) = (0, 0);
    let mut count = |ok: bool| {
        tried += 1;
        if !ok {
            failed += 1;
        }
    };
    for (what, out_name) in [("an archive", "rp.tar.zst"), ("a directory", "rp")] {
        count(
            suite.case(&format!("disk full: snapshot create into {what}"), || {
                let tmp = tempfile::tempdir().unwrap();
                // Big enough not to fit: the homelab grown by 3000 objects.
                let fixture = homelab_grown(tmp.path(), 3000);
                let cluster = Sim::start(&fixture, None);
                // A disk half the size the restore point needs.
                let probe = tmp.path().join(format!("probe-{out_name}"));
                let out = tool(bin("snapshot").to_str().unwrap(), tmp.path())
                    .args(["create", "--exclude-secrets", "--kubeconfig"])
                    .arg(cluster.kubeconfig())
                    .arg("--out")
                    .arg(&probe)
                    .output()
                    .unwrap();
                if !out.status.success() {
                    return Err(format!(
                        "snapshot create: {}",
                        tail(&String::from_utf8_lossy(&out.stderr))
                    ));
                }
                let need: u64 = files_below(&probe)
                    .iter()
                    .chain(std::iter::once(&probe))
                    .filter(|f| f.is_file())
                    .map(|f| f.metadata().unwrap().len())
                    .sum();
                let size = format!("{}k", (need / 2 / 1024).max(8));
                let disk = Tmpfs::mount(&tmp.path().join("disk"), &size).ok_or("mount")?;
                let out = tool(bin("snapshot").to_str().unwrap(), tmp.path())
                    .args(["create", "--exclude-secrets", "--kubeconfig"])
                    .arg(cluster.kubeconfig())
                    .arg("--out")
                    .arg(disk.dir.join(out_name))
                    .output()
                    .unwrap();
                let code = judge("snapshot create", &out)?;
                if code != 3 {
                    return Err(format!("exit {code} on a full disk"));
                }
                let stderr = String::from_utf8_lossy(&out.stderr);
                if !stderr.to_lowercase().contains("no space") && !stderr.contains("disk") {
                    return Err(format!(
                        "the message does not say the disk is full: {stderr}"
                    ));
                }
                let left = files_below(&disk.dir);
                if !left.is_empty() {
                    return Err(format!("left on the full disk: {left:?}"));
                }
                Ok(())
            }),
        );
    }
    // The state directory fills up in the middle of a run (its state,
    // step documents and history writes fail); freed, `resume` finishes.
    let stages = [
        "snapshotting",
        "validating-before",
        "applying",
        "validating-after",
    ];
    for (stage, to) in [
        ("before the run", "6.6.0"),
        ("snapshotting", "6.7.0"),
        ("validating-before", "6.6.0"),
        ("applying", "6.7.0"),
        ("validating-after", "6.6.0"),
    ] {
        count(suite.case(
            &format!("disk full: state directory {stage}, run to {to}"),
            || {
                let tmp = tempfile::tempdir().unwrap();
                let g = gitops(tmp.path());
                let sim = cluster(tmp.path(), &g.origin);
                ready(&sim);
                let cfg = config(tmp.path());
                let disk = Tmpfs::mount(&tmp.path().join("state"), "2m").ok_or("mount")?;
                let err = tmp.path().join("run.stderr");
                let mut filler = None;
                if stage == "before the run" {
                    filler = Some(disk.fill());
                }
                let child = upkeep(tmp.path(), &g, &sim, &cfg)
                    .args(["run", "--yes", "--poll", "300ms", "--plan"])
                    .arg(plan(tmp.path(), "p.json", "6.5.0", to))
                    .stdout(Stdio::null())
                    .stderr(File::create(&err).unwrap())
                    .spawn()
                    .unwrap();
                if filler.is_none() {
                    let from = stages.iter().position(|s| *s == stage).unwrap();
                    wait_for_status(&tmp.path().join("state"), &reached(&stages[from..]));
                    filler = Some(disk.fill());
                }
                let code = Waiter::new(child).wait(Duration::from_secs(120))?;
                let stderr = std::fs::read_to_string(&err).unwrap();
                judge_parts("upkeep run", code, &stderr)?;
                std::fs::remove_file(filler.unwrap()).unwrap();
                // What was written before the disk filled must be whole.
                state_is_sound(tmp.path(), &tmp.path().join("state"), &cfg)?;
                resume_to_the_end(tmp.path(), &g, &sim, &cfg, "after freeing the disk")?;
                run_is_consistent(tmp.path(), &g, &sim, to)?;
                state_is_sound(tmp.path(), &tmp.path().join("state"), &cfg)
            },
        ));
    }
    suite.group("disk full", tried, failed);
}

// ---------------------------------------------------------------------------
// a tight memory limit

fn memory_limit(suite: &Suite) {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("chaos: memory-limit cases skipped: no prlimit");
        suite.group("memory limit (skipped: no prlimit)", 0, 0);
        return;
    }
    let (mut tried, mut failed) = (0, 0);
    let mut count = |ok: bool| {
        tried += 1;
        if !ok {
            failed += 1;
        }
    };
    // RLIMIT_DATA bounds the heap and anonymous mappings (not the binary's
    // own pages, which RLIMIT_AS would count).
    let limited = |bytes: u64, program: &Path, home: &Path| -> Command {
        let mut c = Command::new("prlimit");
        c.env_clear()
            .env("HOME", home)
            .env("NO_COLOR", "1")
            .arg(format!("--data={bytes}"))
            .arg("--")
            .arg(program);
        c
    };
    let cluster = Sim::start(&workspace().join("testdata/clusters/homelab"), None);
    // The limits: 256 MiB and 128 MiB (`CHAOS_MEMORY_MIB=64,32` tries others).
    let limits: Vec<u64> = std::env::var("CHAOS_MEMORY_MIB")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![256, 128]);
    for mib in limits {
        count(suite.case(
            &format!("memory {mib} MiB: upkeep scan against 10 MB of garbage"),
            || {
                let tmp = tempfile::tempdir().unwrap();
                let upstream = Upstream::start();
                upstream.set_faults(
                    r#"{"faults":[{"path":"*","kind":"garbage","sizeBytes":10485760}]}"#,
                );
                let cfg = upstream.config(tmp.path());
                scan(
                    limited(mib << 20, Path::new(BIN), tmp.path()),
                    &cfg,
                    &cluster,
                    "upkeep scan",
                )
                .map(|_| ())
            },
        ));
        count(suite.case(&format!("memory {mib} MiB: upkeep scan"), || {
            let tmp = tempfile::tempdir().unwrap();
            let upstream = Upstream::start();
            let cfg = upstream.config(tmp.path());
            scan(
                limited(mib << 20, Path::new(BIN), tmp.path()),
                &cfg,
                &cluster,
                "upkeep scan",
            )
            .map(|_| ())
        }));
        count(
            suite.case(&format!("memory {mib} MiB: snapshot create"), || {
                let tmp = tempfile::tempdir().unwrap();
                let out = limited(mib << 20, &bin("snapshot"), tmp.path())
                    .args(["create", "--exclude-secrets", "--kubeconfig"])
                    .arg(cluster.kubeconfig())
                    .arg("--out")
                    .arg(tmp.path().join("rp.tar.zst"))
                    .output()
                    .unwrap();
                let code = judge("snapshot create", &out)?;
                no_leftovers(tmp.path())?;
                if code == 0 {
                    verify_point(tmp.path(), &tmp.path().join("rp.tar.zst"))?;
                }
                Ok(())
            }),
        );
        count(suite.case(&format!("memory {mib} MiB: merge-report of a 200 MB stream"), || {
            let tmp = tempfile::tempdir().unwrap();
            let mut child = limited(mib << 20, &bin("merge-report"), tmp.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut w = child.stdin.take().unwrap();
            let feeder = std::thread::spawn(move || {
                use std::io::Write;
                let doc = br#"{"apiVersion":"upkeep.dev/v1alpha1","kind":"ComponentUpdates","component":{"kind":"chart","name":"x"},"current":{"version":"1.0.0"},"candidates":[],"errors":[]}"#;
                let mut sent = 0;
                while sent < 200 << 20 {
                    if w.write_all(doc).and_then(|_| w.write_all(b"\n")).is_err() {
                        break;
                    }
                    sent += doc.len() + 1;
                }
            });
            let out = child.wait_with_output().unwrap();
            feeder.join().unwrap();
            judge("merge-report", &out)?;
            Ok(())
        }));
    }
    suite.group("memory limit", tried, failed);
}

// ---------------------------------------------------------------------------
// SIGKILL at random moments

/// One seed: `upkeep run` killed after a seeded delay (odd seeds update to
/// the broken 6.7.0, so they roll back), every fifth seed's first resume
/// killed too, then `upkeep resume` to the end.
fn kill_case(seed: u64, span_ms: u64) -> Result<(), String> {
    let mut rng = Rng(seed);
    let to = if seed.is_multiple_of(2) {
        "6.6.0"
    } else {
        "6.7.0"
    };
    let tmp = tempfile::tempdir().unwrap();
    let g = gitops(tmp.path());
    let sim = cluster(tmp.path(), &g.origin);
    ready(&sim);
    let cfg = config(tmp.path());
    let err = tmp.path().join("run.stderr");
    let mut child = upkeep(tmp.path(), &g, &sim, &cfg)
        .args(["run", "--yes", "--poll", "200ms", "--plan"])
        .arg(plan(tmp.path(), "p.json", "6.5.0", to))
        .stdout(Stdio::null())
        .stderr(File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let delay = rng.below(span_ms);
    std::thread::sleep(Duration::from_millis(delay));
    let _ = child.kill();
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&err).unwrap();
    if status.code().is_some() {
        // It ended before the kill: its own end must be clean.
        judge_parts("upkeep run", status.code(), &stderr)?;
    } else if stderr.contains("panicked") {
        return Err(format!("upkeep run panicked: {}", tail(&stderr)));
    }
    if seed.is_multiple_of(5)
        && let Some(r) = newest_run(&tmp.path().join("state"))
        && !ended(&r)
    {
        let mut resume = upkeep(tmp.path(), &g, &sim, &cfg)
            .args(["resume", "--poll", "200ms"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(span_ms / 2)));
        let _ = resume.kill();
        resume.wait().unwrap();
    }
    // The state left by a SIGKILL is readable as it stands.
    for f in files_below(&tmp.path().join("state")) {
        if f.extension().is_some_and(|e| e == "json") && !leftover(&f) {
            let bytes = std::fs::read(&f).unwrap();
            serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| format!("killed after {delay} ms: {} torn: {e}", f.display()))?;
        }
    }
    resume_to_the_end(tmp.path(), &g, &sim, &cfg, "after the kill")
        .map_err(|e| format!("killed after {delay} ms: {e}"))?;
    if newest_run(&tmp.path().join("state")).is_none() {
        // Killed before a run was saved: a new run must be possible at once.
        let out = upkeep(tmp.path(), &g, &sim, &cfg)
            .args(["run", "--yes", "--poll", "200ms", "--plan"])
            .arg(plan(tmp.path(), "p.json", "6.5.0", to))
            .output()
            .unwrap();
        let code = judge("upkeep run (again)", &out)
            .map_err(|e| format!("killed after {delay} ms: {e}"))?;
        if code > 1 {
            return Err(format!(
                "killed after {delay} ms, before a run was saved: a new run is refused: {}",
                tail(&String::from_utf8_lossy(&out.stderr))
            ));
        }
    }
    run_is_consistent(tmp.path(), &g, &sim, to)
        .map_err(|e| format!("killed after {delay} ms: {e}"))?;
    state_is_sound(tmp.path(), &tmp.path().join("state"), &cfg)
        .map_err(|e| format!("killed after {delay} ms: {e}"))
}

fn kills(suite: &Suite) {
    // How long an undisturbed run takes here, so the kills land all along it.
    let span_ms = {
        let tmp = tempfile::tempdir().unwrap();
        let g = gitops(tmp.path());
        let sim = cluster(tmp.path(), &g.origin);
        ready(&sim);
        let cfg = config(tmp.path());
        let start = Instant::now();
        let out = upkeep(tmp.path(), &g, &sim, &cfg)
            .args(["run", "--yes", "--poll", "200ms", "--plan"])
            .arg(plan(tmp.path(), "p.json", "6.5.0", "6.7.0"))
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(1)),
            "the undisturbed run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (start.elapsed().as_millis() as u64).max(500)
    };
    eprintln!("chaos: an undisturbed run (with its rollback) takes {span_ms} ms");
    let tried = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for w in 0..KILL_WORKERS {
            let (tried, failed) = (&tried, &failed);
            s.spawn(move || {
                for seed in (1..=KILL_SEEDS).filter(|s| s % KILL_WORKERS == w) {
                    let ok =
                        suite.case(&format!("SIGKILL seed {seed}"), || kill_case(seed, span_ms));
                    tried.fetch_add(1, Ordering::SeqCst);
                    if !ok {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    suite.group("SIGKILL + resume", tried.into_inner(), failed.into_inner());
}

// ---------------------------------------------------------------------------
// what the random kills found, pinned down

/// A run killed at `stage` (or the first one after it that it reached).
fn killed_at(tmp: &Path, g: &Gitops, sim: &Sim, cfg: &Path, stage: &str, to: &str) -> Value {
    let stages = [
        "snapshotting",
        "validating-before",
        "applying",
        "validating-after",
    ];
    let mut child = upkeep(tmp, g, sim, cfg)
        .args(["run", "--yes", "--poll", "300ms", "--plan"])
        .arg(plan(tmp, "p.json", "6.5.0", to))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let from = stages.iter().position(|s| *s == stage).unwrap();
    wait_for_status(&tmp.join("state"), &reached(&stages[from..]));
    child.kill().unwrap();
    child.wait().unwrap();
    newest_run(&tmp.join("state")).expect("a saved run")
}

fn resume_ends(tmp: &Path, g: &Gitops, sim: &Sim, cfg: &Path, want: i32) -> Result<(), String> {
    let out = upkeep(tmp, g, sim, cfg)
        .args(["resume", "--poll", "200ms"])
        .output()
        .unwrap();
    let code = judge("upkeep resume", &out)?;
    if code != want {
        return Err(format!(
            "upkeep resume exit {code}, not {want}: {}",
            tail(&String::from_utf8_lossy(&out.stderr))
        ));
    }
    Ok(())
}

fn regressions(suite: &Suite) {
    let (mut tried, mut failed) = (0, 0);
    let mut count = |ok: bool| {
        tried += 1;
        if !ok {
            failed += 1;
        }
    };
    // A SIGKILL between an atomic write of the HelmRelease and its rename
    // left `.upkeep-tmp-*` in the checkout: the tree was dirty for good and
    // every resume (and every later run) was refused.
    count(suite.case(
        "regression: a temporary file of a killed edit in the checkout",
        || {
            let tmp = tempfile::tempdir().unwrap();
            let g = gitops(tmp.path());
            let sim = cluster(tmp.path(), &g.origin);
            ready(&sim);
            let cfg = config(tmp.path());
            killed_at(tmp.path(), &g, &sim, &cfg, "applying", "6.6.0");
            let stray = g.checkout.join("apps/podinfo/.upkeep-tmp-Kd93jf");
            std::fs::write(&stray, helmrelease_at("6.6.0")).unwrap();
            resume_ends(tmp.path(), &g, &sim, &cfg, 0)?;
            if stray.exists() {
                return Err("the leftover is still there".into());
            }
            run_is_consistent(tmp.path(), &g, &sim, "6.6.0")?;
            // And a new run starting beside one.
            std::fs::write(&stray, "x").unwrap();
            let out = upkeep(tmp.path(), &g, &sim, &cfg)
                .args(["run", "--yes", "--poll", "200ms", "--plan"])
                .arg(plan(tmp.path(), "p2.json", "6.6.0", "6.5.0"))
                .output()
                .unwrap();
            if judge("upkeep run", &out)? != 0 || stray.exists() {
                return Err(format!(
                    "a run beside a leftover: {}",
                    tail(&String::from_utf8_lossy(&out.stderr))
                ));
            }
            state_is_sound(tmp.path(), &tmp.path().join("state"), &cfg)
        },
    ));
    // A SIGKILL in the middle of a state write or a restore point left
    // `.upkeep-tmp-*` in the run's folder and `.RUN-step-1.tar.zst.partial-*`
    // among the restore points, for good.
    count(suite.case(
        "regression: half-written state files of a killed run",
        || {
            let tmp = tempfile::tempdir().unwrap();
            let g = gitops(tmp.path());
            let sim = cluster(tmp.path(), &g.origin);
            ready(&sim);
            let cfg = config(tmp.path());
            let run = killed_at(tmp.path(), &g, &sim, &cfg, "validating-before", "6.7.0");
            let id = run["runId"].as_str().unwrap();
            let state = tmp.path().join("state");
            let strays = [
                state.join("runs").join(id).join(".upkeep-tmp-a1b2c3"),
                state
                    .join("runs")
                    .join(id)
                    .join("step-1/.upkeep-tmp-d4e5f6"),
                state
                    .join("restore-points")
                    .join(format!(".{id}-step-1.tar.zst.partial-g7h8i9")),
            ];
            for p in &strays {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, "half").unwrap();
            }
            resume_ends(tmp.path(), &g, &sim, &cfg, 1)?;
            if let Some(p) = strays.iter().find(|p| p.exists()) {
                return Err(format!("{} is still there", p.display()));
            }
            run_is_consistent(tmp.path(), &g, &sim, "6.7.0")?;
            state_is_sound(tmp.path(), &state, &cfg)
        },
    ));
    // A SIGKILL after the Lease was taken but before the run was saved left
    // the Lease held for its whole TTL (10 min) by a run nothing could
    // resume: every run was refused until it expired. The dead run's id
    // stays in the local lock file (a clean end clears it).
    let lease = |holder: &str| {
        let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ");
        format!(
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: upkeep-run\n  namespace: kube-system\n\
             spec:\n  holderIdentity: {holder}\n  leaseDurationSeconds: 600\n  acquireTime: \"{now}\"\n  renewTime: \"{now}\"\n"
        )
    };
    for (what, lock, holder, saved, want) in [
        (
            "the Lease of a run of this machine killed before it saved anything is taken over",
            "run-20261204T010000Z-dead (pid 4242)",
            "upkeep run-20261204T010000Z-dead",
            false,
            0,
        ),
        (
            "a Lease held by another machine's run is still refused",
            "run-20261204T010000Z-dead (pid 4242)",
            "upkeep run-20261204T010000Z-else",
            false,
            2,
        ),
        (
            "a Lease of a killed run that can be resumed is still refused",
            "run-20261204T010000Z-dead (pid 4242)",
            "upkeep run-20261204T010000Z-dead",
            true,
            2,
        ),
    ] {
        count(suite.case(&format!("regression: {what}"), || {
            let tmp = tempfile::tempdir().unwrap();
            let g = gitops(tmp.path());
            let sim = cluster(tmp.path(), &g.origin);
            ready(&sim);
            let cfg = config(tmp.path());
            let state = tmp.path().join("state");
            std::fs::create_dir_all(&state).unwrap();
            std::fs::write(state.join("run.lock"), lock).unwrap();
            // Killed between saving its plan and its record, or after.
            let dead_dir = state.join("runs/run-20261204T010000Z-dead");
            std::fs::create_dir_all(&dead_dir).unwrap();
            std::fs::write(dead_dir.join("plan.json"), "{}").unwrap();
            if saved {
                std::fs::write(dead_dir.join("run.json"), "{}").unwrap();
            }
            let f = tmp.path().join("lease.yaml");
            std::fs::write(&f, lease(holder)).unwrap();
            sim.kubectl(&["apply", "-f", f.to_str().unwrap()]);
            // Killed just after it turned maintenance on, too.
            let out = upkeep(tmp.path(), &g, &sim, &cfg)
                .args(["maintenance", "on", "--reason"])
                .arg(holder)
                .output()
                .unwrap();
            if judge("upkeep maintenance on", &out)? != 0 {
                return Err("upkeep maintenance on failed".into());
            }
            let out = upkeep(tmp.path(), &g, &sim, &cfg)
                .args(["run", "--yes", "--poll", "200ms", "--plan"])
                .arg(plan(tmp.path(), "p.json", "6.5.0", "6.6.0"))
                .output()
                .unwrap();
            let code = judge("upkeep run", &out)?;
            if code != want {
                return Err(format!(
                    "exit {code}, not {want}: {}",
                    tail(&String::from_utf8_lossy(&out.stderr))
                ));
            }
            if dead_dir.exists() != saved {
                return Err(format!(
                    "the dead run's folder: there {}, its record saved {saved}",
                    dead_dir.exists()
                ));
            }
            if want == 0 {
                run_is_consistent(tmp.path(), &g, &sim, "6.6.0")?;
                state_is_sound(tmp.path(), &state, &cfg)?;
                let out = sim.kubectl_out(&[
                    "get",
                    "configmap",
                    "upkeep-maintenance",
                    "-n",
                    "kube-system",
                ]);
                if out.status.success() {
                    return Err("maintenance is still on after the run".into());
                }
            }
            Ok(())
        }));
    }
    suite.group("regressions", tried, failed);
}

#[test]
fn chaos() {
    let suite = Suite::new();
    let start = Instant::now();
    std::thread::scope(|s| {
        let suite = &suite;
        if wanted("cluster") {
            s.spawn(move || cluster_faults(suite));
        }
        if wanted("upstream") {
            s.spawn(move || upstream_faults(suite));
        }
        if wanted("partition") {
            s.spawn(move || partition(suite));
        }
        if wanted("disk") {
            s.spawn(move || disk_full(suite));
        }
        if wanted("memory") {
            s.spawn(move || memory_limit(suite));
        }
        if wanted("kill") {
            s.spawn(move || kills(suite));
        }
        if wanted("regressions") {
            s.spawn(move || regressions(suite));
        }
    });
    let failures = suite.failures.into_inner().unwrap();
    for g in suite.groups.into_inner().unwrap() {
        println!("{g}");
    }
    println!(
        "chaos: {} cases tried, {} failures ({:.0} s)",
        suite.tried.load(Ordering::SeqCst),
        failures.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The step statuses that show a run got to the first of `stages` or past
/// it: a loaded machine may look only after a short stage (validating-after)
/// is over, and the fault then lands later, which must hold too.
fn reached<'a>(stages: &[&'a str]) -> Vec<&'a str> {
    let mut all = stages.to_vec();
    all.extend(["rolling-back", "completed", "rolled-back", "failed"]);
    all
}
