//! The bad-input matrix: every binary against empty input, garbage,
//! truncated JSON, invalid UTF-8, a 100 MB stream, a document of the wrong
//! kind, an unknown flag, an unreadable kubeconfig and a kubeconfig that
//! points nowhere. Each case must end with exit 2 (bad input) or 3 (the
//! environment), one line on stderr, no panic, and nothing written.
//!
//! The binaries are the workspace's, found next to this test's own
//! executable (target/debug/), as `cargo build --workspace --bins` leaves
//! them (scripts/test.sh builds them first).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Every binary of the workspace.
const BINARIES: &[&str] = &[
    "merge-report",
    "detect-k3s",
    "detect-flux",
    "detect-longhorn",
    "detect-charts",
    "snapshot",
    "restore",
    "validate-flux",
    "validate-apps",
    "validate-storage",
    "validate-net",
    "apply-update",
    "upkeep",
    "sim-cluster",
    "sim-upstream",
];

fn bin_dir() -> PathBuf {
    // target/debug/deps/bad_input-HASH -> target/debug
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// What a case feeds the binary on stdin.
#[derive(Clone, Copy)]
enum Input<'a> {
    None,
    Bytes(&'a [u8]),
    /// `n` bytes of a JSON array that never ends.
    Huge(usize),
}

struct Case<'a> {
    what: String,
    bin: &'static str,
    args: Vec<String>,
    input: Input<'a>,
}

/// Files under `dir` (recursively), to tell that nothing was written.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
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

/// Runs a case in an empty directory with an empty HOME and checks the rule.
fn check(case: &Case, fixtures: &Path) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let before = files(tmp.path());
    let mut c = Command::new(bin(case.bin));
    c.args(&case.args)
        .current_dir(tmp.path())
        .env_clear()
        .env("HOME", &home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("FIXTURES", fixtures)
        .stdin(match case.input {
            Input::None => Stdio::null(),
            _ => Stdio::piped(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let feeder = child.stdin.take().map(|mut w| {
        let input = match case.input {
            Input::Bytes(b) => b.to_vec(),
            _ => Vec::new(),
        };
        let huge = match case.input {
            Input::Huge(n) => n,
            _ => 0,
        };
        std::thread::spawn(move || {
            // A tool that stops reading at its limit closes the pipe: fine.
            let _ = w.write_all(&input);
            if huge > 0 {
                let _ = w.write_all(b"[");
                let chunk = vec![b' '; 1 << 20];
                let mut sent = 0;
                while sent < huge {
                    if w.write_all(&chunk).is_err() {
                        break;
                    }
                    sent += chunk.len();
                }
            }
        })
    });
    let out = child.wait_with_output().unwrap();
    if let Some(f) = feeder {
        f.join().unwrap();
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    let mut problems = Vec::new();
    if !matches!(code, Some(2 | 3)) {
        problems.push(format!("exit {code:?}"));
    }
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        problems.push("panicked".to_string());
    }
    if stderr.trim().lines().count() != 1 {
        problems.push(format!("{} stderr lines", stderr.trim().lines().count()));
    }
    let after = files(tmp.path());
    if after != before {
        problems.push(format!("wrote {:?}", after));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} ({} {}): {}\n    stderr: {}",
            case.what,
            case.bin,
            case.args.join(" "),
            problems.join(", "),
            stderr.trim()
        ))
    }
}

#[test]
fn every_binary_refuses_bad_input_cleanly() {
    let fx = tempfile::tempdir().unwrap();
    let put = |name: &str, bytes: &[u8]| {
        let p = fx.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let bad_kubeconfig = put("kubeconfig-garbage", b"apiVersion: v1\nclusters: [\n");
    // A kubeconfig whose server nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nowhere = put(
        "kubeconfig-nowhere",
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n\
             users:\n- name: u\n  user:\n    token: not-a-real-token\n"
        )
        .as_bytes(),
    );
    let run_record = br#"{"apiVersion":"upkeep.dev/v1alpha1","kind":"RunRecord","runId":"r","startedAt":"2026-11-28T02:00:00Z","status":"completed","actor":"me","steps":[]}"#;
    let inputs: Vec<(&str, Input)> = vec![
        ("empty input", Input::Bytes(b"")),
        ("garbage", Input::Bytes(b"hello, this is not a document\n")),
        (
            "truncated JSON",
            Input::Bytes(
                br#"{"apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdateReport", "compo"#,
            ),
        ),
        (
            "invalid UTF-8",
            Input::Bytes(&[0xff, 0xfe, 0x7b, 0x22, 0xc3, 0x28, 0x0a]),
        ),
        ("a document of the wrong kind", Input::Bytes(run_record)),
        ("a 100 MB stream", Input::Huge(100 << 20)),
    ];
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    // Where each binary reads a document from stdin.
    let readers: Vec<(&'static str, Vec<String>)> = vec![
        ("merge-report", s(&[])),
        (
            "apply-update",
            s(&["--report", "-", "--component", "x", "--to", "1.0.0"]),
        ),
        ("apply-update", s(&["--plan", "-", "--step", "1"])),
        ("apply-update", s(&["--rollback", "-"])),
        ("upkeep", s(&["plan", "--report", "-"])),
        ("upkeep", s(&["impact", "--report", "-"])),
        (
            "upkeep",
            s(&["run", "--plan", "-", "--dry-run", "--gitops", "."]),
        ),
        (
            "validate-apps",
            s(&["--baseline", "/dev/stdin", "--cluster-dump", "/dev/stdin"]),
        ),
        (
            "validate-flux",
            s(&["--after-step", "/dev/stdin", "--kubeconfig", &nowhere]),
        ),
        (
            "detect-k3s",
            s(&[
                "--cluster-dump",
                "/dev/stdin",
                "--github-api",
                "http://127.0.0.1:9",
            ]),
        ),
        (
            "detect-longhorn",
            s(&[
                "--cluster-dump",
                "/dev/stdin",
                "--github-api",
                "http://127.0.0.1:9",
            ]),
        ),
    ];
    let mut cases: Vec<Case> = Vec::new();
    for (bin, args) in &readers {
        for (what, input) in &inputs {
            cases.push(Case {
                what: what.to_string(),
                bin,
                args: args.clone(),
                input: *input,
            });
        }
    }
    for b in BINARIES {
        cases.push(Case {
            what: "an unknown flag".to_string(),
            bin: b,
            args: s(&["--no-such-flag"]),
            input: Input::None,
        });
    }
    // Every binary that reads the cluster, with a kubeconfig it cannot use.
    let cluster_readers: Vec<(&'static str, Vec<String>)> = vec![
        ("detect-k3s", s(&["--github-api", "http://127.0.0.1:9"])),
        ("detect-flux", s(&[])),
        ("detect-longhorn", s(&[])),
        ("detect-charts", s(&[])),
        (
            "snapshot",
            s(&["create", "--exclude-secrets", "--out", "rp"]),
        ),
        ("validate-flux", s(&[])),
        ("validate-apps", s(&[])),
        ("validate-storage", s(&["--no-data-test"])),
        ("validate-net", s(&[])),
        ("upkeep", s(&["maintenance", "status"])),
    ];
    for (bin, args) in &cluster_readers {
        for (what, kc) in [
            ("an unreadable kubeconfig", &bad_kubeconfig),
            ("a kubeconfig pointing nowhere", &nowhere),
        ] {
            let mut a = args.clone();
            a.extend(["--kubeconfig".to_string(), kc.clone()]);
            cases.push(Case {
                what: what.to_string(),
                bin,
                args: a,
                input: Input::None,
            });
        }
    }
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(e) = check(case, fx.path()) {
            failures.push(e);
        }
    }
    println!(
        "bad-input matrix: {} cases tried, {} failures",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
