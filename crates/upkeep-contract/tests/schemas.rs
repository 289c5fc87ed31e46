//! The committed JSON Schemas under `schemas/` must match the types.
//! Regenerate with `scripts/gen-schemas.sh` (UPKEEP_BLESS=1).

use std::path::PathBuf;

#[test]
fn committed_schemas_are_fresh() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let bless = std::env::var_os("UPKEEP_BLESS").is_some();
    let mut stale = Vec::new();
    for (file, schema) in upkeep_contract::schemas() {
        let path = dir.join(file);
        let want = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(have) if have == want => {}
            Ok(_) => stale.push(format!("{file} differs from the types")),
            Err(e) => stale.push(format!("{file}: {e}")),
        }
    }
    assert!(
        stale.is_empty(),
        "stale schemas (run scripts/gen-schemas.sh and commit): {stale:?}"
    );
}

#[test]
fn sample_documents_validate_against_their_schema() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("component-updates.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let sample = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/reports/sample-updates.jsonl"),
    )
    .unwrap();
    for (i, line) in sample.lines().enumerate() {
        let doc: serde_json::Value = serde_json::from_str(line).unwrap();
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "document {}: {errors:?}", i + 1);
        // And the schema must reject what the reader rejects.
        let mut bad = doc.clone();
        bad["apiVersion"] = "upkeep.dev/v2".into();
        assert!(!validator.is_valid(&bad));
    }
}
