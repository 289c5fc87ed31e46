//! `upkeep demo`, as the README's first command runs it: the whole job on
//! the built-in simulators, every stage printed, the run completed.

use std::process::Command;

#[test]
fn the_demo_runs_the_whole_job_and_completes() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_upkeep"))
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .args(["demo", "--keep"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for stage in [
        "== upkeep scan",
        "== upkeep plan",
        "== upkeep run",
        "== what happened",
    ] {
        assert!(stderr.contains(stage), "{stage} missing: {stderr}");
    }
    assert!(stdout.contains(": Completed\n"), "{stdout}");
    assert!(
        stdout.contains("upkeep: longhorn longhorn-system/longhorn 1.9.0 -> v1.9.2")
            && stdout.contains("upkeep: k3s k3s v1.31.4+k3s1 -> v1.31.10+k3s1"),
        "{stdout}"
    );
    assert!(stdout.contains("k3s-server v1.31.10+k3s1"), "{stdout}");
    // --keep left the run folder with every stage's document.
    let kept = stderr
        .lines()
        .find_map(|l| l.strip_prefix("kept "))
        .expect("the kept folder is named");
    let runs = std::path::Path::new(kept).join("state/runs");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for f in [
        "run.json",
        "plan.json",
        "step-1/apply.json",
        "step-2/after-flux.json",
    ] {
        assert!(run.join(f).is_file(), "{f} in {}", run.display());
    }
    std::fs::remove_dir_all(kept).unwrap();
}
