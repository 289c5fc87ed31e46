//! merge-report as a user runs it: the real binary, real fixture streams.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    root().join("testdata/reports").join(name)
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_merge-report"))
        .args(args)
        // No user configuration may leak into the test.
        .env("XDG_CONFIG_HOME", root().join("target/no-such-config"))
        .env_remove("UPKEEP_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    // The tool may refuse before reading everything; a closed pipe is fine.
    let _ = pipe.write_all(stdin);
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn text_table_is_readable_and_security_comes_first() {
    let o = run(&["-o", "text"], &read(&fixture("sample-updates.jsonl")));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("8 components, 6 with updates"),
        "{text}"
    );
    assert!(lines[0].contains("2 security"), "{text}");
    assert!(
        lines[0].ends_with("oldest check 2026-11-28T04:00:00Z"),
        "{text}"
    );
    let header = lines
        .iter()
        .position(|l| l.trim_start().starts_with("COMPONENT"))
        .unwrap();
    // The two components with security updates come first, then breaking ones.
    let rows: Vec<&str> = lines[header + 1..header + 9]
        .iter()
        .map(|l| l.trim())
        .collect();
    assert!(
        rows[0].starts_with("k3s ") && rows[0].contains("security"),
        "{rows:#?}"
    );
    assert!(rows[1].starts_with("networking/ingress-nginx") && rows[1].contains("security"));
    assert!(
        rows[2].contains("breaking") && rows[3].contains("breaking"),
        "{rows:#?}"
    );
    // The k3s path is spelled out hop by hop.
    assert!(
        text.contains("path: v1.30.6+k3s1 -> v1.30.8+k3s1 -> v1.31.4+k3s1"),
        "{text}"
    );
    assert!(text.contains(
        "error: upstream: GET https://grafana.github.io/helm-charts/index.yaml: connection refused"
    ));
    assert!(
        text.lines().all(|l| l == l.trim_end()),
        "no trailing blanks"
    );
    // Where to make the Git change, and where to read about the fix.
    assert!(
        text.contains("pinned at networking/ingress-nginx/helm-release.yaml:14"),
        "{text}"
    );
    assert!(
        text.contains(
            "4.13.1: security: CVE-2025-1974 (https://github.com/kubernetes/ingress-nginx/releases)"
        ),
        "{text}"
    );
}

#[test]
fn json_output_validates_against_the_committed_schema() {
    let o = run(&[], &read(&fixture("sample-updates.jsonl")));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "one document, one line");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let schema: serde_json::Value =
        serde_json::from_slice(&read(&root().join("schemas/update-report.json"))).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(doc["kind"], "UpdateReport");
    assert_eq!(doc["summary"]["components"], 8);
    assert_eq!(doc["summary"]["security"], 2);
    assert_eq!(doc["summary"]["errors"], 1);
    // A report can be merged again, and is unchanged but for the timestamp.
    let again = run(&[], out.as_bytes());
    let doc2: serde_json::Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(doc["components"], doc2["components"]);
}

#[test]
fn duplicates_merge_newest_wins_and_errors_are_kept() {
    let o = run(
        &["-", fixture("sample-updates.jsonl").to_str().unwrap()],
        &read(&fixture("duplicates.jsonl")),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let comps = doc["components"].as_array().unwrap();
    assert_eq!(comps.len(), 8, "cert-manager appears once");
    let cm: Vec<_> = comps
        .iter()
        .filter(|c| c["component"]["name"] == "cert-manager")
        .collect();
    assert_eq!(cm.len(), 1);
    assert_eq!(
        cm[0]["current"]["version"], "v1.16.2",
        "the newer observation wins"
    );
    assert_eq!(cm[0]["checkedAt"], "2026-11-28T04:00:00Z");
    let errs = cm[0]["errors"].as_array().unwrap();
    assert_eq!(errs.len(), 1, "the older run's error is kept");
    assert!(
        errs[0]["message"]
            .as_str()
            .unwrap()
            .contains("upgrade retries exhausted")
    );
}

#[test]
fn fail_on_exits_one_when_matched() {
    let sample = read(&fixture("sample-updates.jsonl"));
    assert_eq!(
        run(&["--fail-on", "security"], &sample).status.code(),
        Some(1)
    );
    assert_eq!(
        run(&["--fail-on", "breaking"], &sample).status.code(),
        Some(1)
    );
    // Only the up-to-date chart: nothing to fail on.
    let text = String::from_utf8(sample).unwrap();
    let current: String = text
        .lines()
        .filter(|l| l.contains("\"echo-server\""))
        .collect();
    for on in ["any", "security", "breaking"] {
        let o = run(&["--fail-on", on, "-o", "text"], current.as_bytes());
        assert_eq!(o.status.code(), Some(0), "{on}: {}", stderr(&o));
        assert!(stdout(&o).starts_with("1 components, 0 with updates"));
    }
}

#[test]
fn yaml_and_markdown_outputs() {
    let sample = read(&fixture("sample-updates.jsonl"));
    let o = run(&["-o", "yaml"], &sample);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let y = stdout(&o);
    assert!(
        y.starts_with("---\n") && y.contains("kind: UpdateReport"),
        "{y}"
    );
    let o = run(&["-o", "markdown"], &sample);
    let md = stdout(&o);
    assert!(md.starts_with("## Updates"), "{md}");
    assert!(md.contains("| COMPONENT"), "{md}");
    assert!(md.contains("### flux-system/flux (flux)"), "{md}");
}

/// Each bad input: exit 2, one line on stderr naming what and where,
/// nothing on stdout.
#[test]
fn bad_input_is_refused_in_one_line() {
    let sample = read(&fixture("sample-updates.jsonl"));
    let text = String::from_utf8(sample.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut invalid_utf8 = sample.clone();
    invalid_utf8.splice(10..10, [0xc3, 0x28]);
    let wrong_api = format!(
        "{}\n{}\n",
        lines[0],
        lines[1].replace("upkeep.dev/v1alpha1", "upkeep.dev/v1")
    );
    let truncated = &sample[..sample.len() / 2];
    let plan = br#"{"apiVersion":"upkeep.dev/v1alpha1","kind":"UpdatePlan","createdAt":"2026-11-28T04:00:00Z"}"#;
    let bad_field = lines[0].replace("\"update\":\"minor\"", "\"update\":\"huge\"");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "stdin: no documents in input"),
        (
            "garbage",
            b"hello world".to_vec(),
            "stdin: document 1: not valid JSON",
        ),
        ("truncated", truncated.to_vec(), "truncated"),
        (
            "invalid utf-8",
            invalid_utf8,
            "stdin: input is not valid UTF-8 (byte 10, line 1)",
        ),
        (
            "wrong apiVersion",
            wrong_api.into_bytes(),
            "stdin: document 2: field `apiVersion`: unknown apiVersion \"upkeep.dev/v1\"",
        ),
        (
            "wrong kind",
            plan.to_vec(),
            "stdin: document 1: field `kind`: UpdatePlan cannot be merged",
        ),
        (
            "bad field",
            bad_field.into_bytes(),
            "stdin: document 1: field `candidates[0].update`: unknown variant `huge`",
        ),
    ];
    for (what, input, want) in cases {
        let o = run(&["-o", "text"], &input);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(o.stdout.is_empty(), "{what}: stdout must be empty");
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        assert!(err.starts_with("merge-report: error: "), "{what}: {err}");
        assert!(err.contains(want), "{what}: want {want:?} in {err}");
    }
}

#[test]
fn usage_errors_are_one_line_exit_two() {
    for args in [
        &["--no-such-flag"][..],
        &["-o", "xml"],
        &["--fail-on", "everything"],
    ] {
        let o = run(args, b"");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(o.stdout.is_empty());
    }
    let o = run(&["/no/such/file.jsonl"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/no/such/file.jsonl: no such file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn version_and_help_exit_zero() {
    let o = run(&["--version"], b"");
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("merge-report "), "{}", stdout(&o));
    let o = run(&["--help"], b"");
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("--fail-on"));
}

#[test]
fn bad_config_file_is_a_usage_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("upkeep.yaml");
    std::fs::write(&cfg, "http:\n  timeout: soon\n").unwrap();
    let o = run(
        &["--config", cfg.to_str().unwrap()],
        &read(&fixture("sample-updates.jsonl")),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(o.stdout.is_empty());
    assert!(
        err.contains("key `http.timeout`: invalid duration \"soon\""),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
    // A good file is accepted.
    std::fs::write(&cfg, "http:\n  timeout: 20s\n").unwrap();
    let o = run(
        &["--config", cfg.to_str().unwrap()],
        &read(&fixture("sample-updates.jsonl")),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn logs_go_to_stderr_never_to_stdout() {
    let sample = read(&fixture("sample-updates.jsonl"));
    let o = run(&["-v", "--log-format", "json"], &sample);
    assert_eq!(o.status.code(), Some(0));
    let doc: serde_json::Value =
        serde_json::from_str(&stdout(&o)).expect("stdout is exactly one document");
    assert_eq!(doc["kind"], "UpdateReport");
    let err = stderr(&o);
    let line: serde_json::Value = serde_json::from_str(err.lines().next().expect("a log line"))
        .unwrap_or_else(|e| panic!("--log-format json gives JSON lines: {e}: {err}"));
    assert_eq!(line["level"], "DEBUG");
    assert_eq!(line["fields"]["message"], "read 8 documents from stdin");
    // Text logs, default level: no debug line.
    let o = run(&[], &sample);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    let o = run(&["-v"], &sample);
    assert!(stderr(&o).contains("read 8 documents from stdin"));
    assert!(
        !stderr(&o).contains('\u{1b}'),
        "no colour when stderr is not a terminal"
    );
}

#[test]
fn fail_on_errors_catches_a_failed_detector() {
    let sample = read(&fixture("sample-updates.jsonl"));
    assert_eq!(
        run(&["--fail-on", "errors"], &sample).status.code(),
        Some(1)
    );
    let text = String::from_utf8(sample).unwrap();
    let clean: String = text
        .lines()
        .filter(|l| !l.contains("\"grafana\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        run(&["--fail-on", "errors"], clean.as_bytes())
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn hostile_names_cannot_break_the_layout() {
    let text = String::from_utf8(read(&fixture("sample-updates.jsonl"))).unwrap();
    let first = text.lines().nth(3).unwrap();
    assert!(first.contains("\"name\":\"ingress-nginx\""));
    let evil = first.replacen(
        "\"name\":\"ingress-nginx\"",
        "\"name\":\"nginx|x\\ninjected \\u001b[31mred\"",
        1,
    );
    let o = run(&["-o", "markdown"], evil.as_bytes());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let md = stdout(&o);
    assert!(!md.contains('\u{1b}'), "{md}");
    let row = md
        .lines()
        .find(|l| l.contains("injected"))
        .expect("a table row");
    assert!(row.contains("networking/nginx\\|x injected red"), "{row}");
    // Six cells: the escaped pipe does not split the row.
    assert_eq!(row.replace("\\|", "").matches('|').count(), 7, "{row}");
    let o = run(&["-o", "text"], evil.as_bytes());
    let text = stdout(&o);
    assert!(
        text.lines().any(|l| l
            .trim_start()
            .starts_with("networking/nginx|x injected red")),
        "{text}"
    );
}
