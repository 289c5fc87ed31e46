//! Secrets stay secret through a whole demo run: with a GitHub token in the
//! environment, `upkeep -vv demo` (debug logs as JSON) sends it to the
//! recorded GitHub, and the token appears nowhere: not in any process's
//! argv while the demo runs (git, kubectl and friends are watched through
//! /proc), not in stdout or the logs, not in any file the demo leaves
//! (run records, history, cache, restore points). Restore points hold
//! Secrets only age-encrypted, and every file of the state directory that
//! holds secret material is 0600.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const TOKEN: &str = "ghp_upkeepFAKEtoken0123456789abcdefXYZ";

/// Every process's command line that holds `needle`, until `stop`.
fn watch_argv(
    needle: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let mut scans = 0;
        let mut hits = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
                    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                    if cmd.contains(needle) && !cmd.contains("secrets-") {
                        hits.push(cmd);
                    }
                }
            }
            scans += 1;
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        (scans, hits)
    })
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn a_token_never_reaches_argv_logs_or_files_of_a_demo_run() {
    let home = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_argv(TOKEN, stop.clone());
    let child = Command::new(env!("CARGO_BIN_EXE_upkeep"))
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("GITHUB_TOKEN", TOKEN)
        .args(["-vv", "--log-format", "json", "demo", "--keep"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    stop.store(true, Ordering::Relaxed);
    let (scans, argv_hits) = watcher.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    // The token was used: requests to the recorded GitHub carried it.
    let authorized = stderr
        .lines()
        .filter(|l| {
            l.contains("\"GET\"") && l.contains("\"authorized\":true") && l.contains("/repos/")
        })
        .count();
    assert!(
        authorized > 0,
        "no request carried the token: {}",
        &stderr[..stderr.len().min(3000)]
    );

    assert!(scans > 10, "the argv watcher ran {scans} times");
    let hits: Vec<String> = argv_hits
        .into_iter()
        .filter(|c| !c.contains("a_token_never_reaches"))
        .collect();
    assert!(hits.is_empty(), "the token was in a command line: {hits:?}");
    assert!(!stdout.contains(TOKEN), "stdout has the token");
    assert!(!stderr.contains(TOKEN), "the logs have the token");

    let kept = PathBuf::from(
        stderr
            .lines()
            .find_map(|l| l.strip_prefix("kept "))
            .expect("the kept folder is named"),
    );
    let mut all = Vec::new();
    files(&kept, &mut all);
    assert!(all.len() > 20, "the demo left its files: {}", all.len());
    let mut points = 0;
    for f in &all {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(TOKEN),
            "{} holds the token",
            f.display()
        );
        let name = f.file_name().unwrap().to_string_lossy();
        if name.ends_with(".tar.zst") || name == "age-identity.txt" || name == "history.db" {
            let mode = f.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", f.display());
            points += usize::from(name.ends_with(".tar.zst"));
        }
    }
    assert!(points > 0, "the demo took restore points");
    // Each restore point's Secrets are encrypted: snapshot verify proves
    // the encrypted parts open only with the identity and lists them.
    let identity = kept.join("age-identity.txt");
    for p in all
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".tar.zst"))
    {
        let out =
            Command::new(PathBuf::from(env!("CARGO_BIN_EXE_upkeep")).with_file_name("snapshot"))
                .env_clear()
                .env("HOME", home.path())
                .arg("verify")
                .arg(p)
                .arg("--age-identity")
                .arg(&identity)
                .output()
                .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&kept).unwrap();
}
