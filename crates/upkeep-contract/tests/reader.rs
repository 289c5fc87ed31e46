//! The document reader against real sample streams and every kind of bad
//! input the foundation issue names.

use std::path::PathBuf;

use upkeep_contract::{ComponentUpdates, ReadError, read_documents, read_kind};

fn testdata(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/reports")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn refuse(input: &[u8]) -> ReadError {
    match read_documents(input, "stdin") {
        Ok(docs) => panic!(
            "accepted {} documents from {:?}",
            docs.len(),
            String::from_utf8_lossy(input)
        ),
        Err(e) => {
            let line = e.to_string();
            assert!(!line.contains('\n'), "message must be one line: {line}");
            e
        }
    }
}

#[test]
fn reads_one_per_line_and_pretty_streams() {
    let docs = read_kind::<ComponentUpdates>(&testdata("sample-updates.jsonl"), "sample").unwrap();
    assert_eq!(docs.len(), 8);
    assert_eq!(docs[0].component.name, "k3s");
    assert_eq!(docs[0].path.len(), 2);
    // The duplicates fixture mixes a compact line and a pretty-printed document.
    let dup = read_documents(&testdata("duplicates.jsonl"), "dup").unwrap();
    assert_eq!(dup.len(), 2);
    assert!(dup.iter().all(|d| d.kind() == "ComponentUpdates"));
}

#[test]
fn concatenated_without_newlines_is_accepted() {
    let one = String::from_utf8(testdata("sample-updates.jsonl")).unwrap();
    let glued: String = one.lines().collect::<Vec<_>>().join("");
    assert_eq!(read_documents(glued.as_bytes(), "stdin").unwrap().len(), 8);
}

#[test]
fn documents_round_trip_unchanged() {
    let raw = testdata("sample-updates.jsonl");
    let docs = read_documents(&raw, "sample").unwrap();
    let written: String = docs.iter().map(|d| d.to_json_line() + "\n").collect();
    let again = read_documents(written.as_bytes(), "written").unwrap();
    assert_eq!(docs, again);
    // Versions keep their spelling: `v` prefixes and build metadata survive.
    assert!(written.contains("\"version\":\"v1.30.6+k3s1\""));
    assert!(written.contains("\"constraint\":\"v1.16.x\""));
    let rewritten: String = again.iter().map(|d| d.to_json_line() + "\n").collect();
    assert_eq!(written, rewritten, "serialisation is stable");
}

#[test]
fn empty_input_is_refused() {
    for input in [&b""[..], b"   \n\n"] {
        let e = refuse(input);
        assert!(e.to_string().contains("no documents"), "{e}");
    }
}

#[test]
fn garbage_is_refused_naming_the_document() {
    let e = refuse(b"this is not json");
    assert_eq!(e.document, Some(1));
    assert!(e.to_string().contains("not valid JSON"), "{e}");
}

#[test]
fn unknown_fields_are_refused_not_dropped() {
    let text = String::from_utf8(testdata("sample-updates.jsonl")).unwrap();
    let first = text.lines().next().unwrap();
    // A typo must not turn "two candidates" into "up to date".
    let typo = first.replacen("\"candidates\"", "\"candidate\"", 1);
    let e = refuse(typo.as_bytes());
    assert!(e.to_string().contains("unknown field `candidate`"), "{e}");
}

#[test]
fn yaml_input_gets_a_hint() {
    let e = refuse(b"---\napiVersion: upkeep.dev/v1alpha1\nkind: UpdateReport\n");
    assert!(e.to_string().contains("save them with -o json"), "{e}");
}

#[test]
fn truncated_document_is_refused_as_truncated() {
    let raw = testdata("sample-updates.jsonl");
    let text = String::from_utf8(raw).unwrap();
    let second_line_start = text.find('\n').unwrap() + 1;
    let cut = &text.as_bytes()[..second_line_start + 200];
    let e = refuse(cut);
    assert_eq!(e.document, Some(2), "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn invalid_utf8_is_refused_with_offset() {
    let mut raw = testdata("sample-updates.jsonl");
    raw.splice(50..50, [0xff, 0xfe]);
    let e = refuse(&raw);
    assert!(
        e.to_string().contains("not valid UTF-8 (byte 50, line 1)"),
        "{e}"
    );
}

#[test]
fn wrong_api_version_names_field_and_document() {
    let text = String::from_utf8(testdata("sample-updates.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let bad = lines[2].replace("upkeep.dev/v1alpha1", "upkeep.dev/v2");
    let input = format!("{}\n{}\n{}\n", lines[0], lines[1], bad);
    let e = refuse(input.as_bytes());
    assert_eq!(e.document, Some(3));
    assert_eq!(e.field.as_deref(), Some("apiVersion"));
    assert_eq!(
        e.to_string(),
        "stdin: document 3: field `apiVersion`: unknown apiVersion \"upkeep.dev/v2\"; this build reads upkeep.dev/v1alpha1"
    );
}

#[test]
fn unknown_kind_and_non_objects_are_refused() {
    let e = refuse(br#"{"apiVersion":"upkeep.dev/v1alpha1","kind":"Pizza"}"#);
    assert_eq!(e.field.as_deref(), Some("kind"));
    assert!(
        e.to_string().contains("known kinds: ComponentUpdates"),
        "{e}"
    );
    let e = refuse(b"[1,2,3]");
    assert!(
        e.to_string()
            .contains("expected a JSON object, found an array"),
        "{e}"
    );
    let e = refuse(br#"{"kind":"ComponentUpdates"}"#);
    assert_eq!(
        e.to_string(),
        "stdin: document 1: field `apiVersion`: missing"
    );
}

#[test]
fn bad_field_is_named_by_path() {
    let text = String::from_utf8(testdata("sample-updates.jsonl")).unwrap();
    let first = text.lines().next().unwrap();
    let bad = first.replacen(
        "\"version\":\"v1.31.4+k3s1\"",
        "\"version\":\"one-point-three\"",
        1,
    );
    assert_ne!(bad, first);
    let e = refuse(bad.as_bytes());
    assert_eq!(e.field.as_deref(), Some("candidates[0].version"), "{e}");
    assert!(
        e.to_string()
            .contains("invalid version \"one-point-three\""),
        "{e}"
    );

    let missing = first.replace(",\"checkedAt\":\"2026-11-28T04:00:00Z\"", "");
    let e = refuse(missing.as_bytes());
    assert!(e.to_string().contains("missing field `checkedAt`"), "{e}");
}

#[test]
fn wrong_kind_for_a_typed_reader() {
    let report = br#"{"apiVersion":"upkeep.dev/v1alpha1","kind":"UpdatePlan","createdAt":"2026-11-28T04:00:00Z","steps":[],"unreachable":[]}"#;
    assert_eq!(read_documents(report, "plan.json").unwrap().len(), 1);
    let e = read_kind::<ComponentUpdates>(report, "plan.json").unwrap_err();
    assert_eq!(
        e.to_string(),
        "plan.json: document 1: field `kind`: expected ComponentUpdates, found UpdatePlan"
    );
}

#[test]
fn hostile_text_is_sanitised_on_read() {
    let text = String::from_utf8(testdata("sample-updates.jsonl")).unwrap();
    let first = text.lines().next().unwrap();
    let evil = first.replacen(
        "\"checkedAt\"",
        "\"findings\":[{\"severity\":\"info\",\"code\":\"x\",\"message\":\"hi\\u001b]0;pwned\\u0007 there\"}],\"checkedAt\"",
        1,
    );
    // the fixture already has a findings key; use the last one serde sees
    let docs = read_kind::<ComponentUpdates>(evil.as_bytes(), "stdin").unwrap();
    let msg = docs[0]
        .findings
        .first()
        .map(|f| f.message.as_str().to_string());
    assert_eq!(msg.as_deref(), Some("hi there"));
}
