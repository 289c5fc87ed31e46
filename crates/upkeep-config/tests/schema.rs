//! `schemas/upkeep-config.json` must match the types (UPKEEP_BLESS=1 rewrites it).

use std::path::PathBuf;

#[test]
fn committed_config_schema_is_fresh() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/upkeep-config.json");
    let want = serde_json::to_string_pretty(&upkeep_config::schema()).unwrap() + "\n";
    if std::env::var_os("UPKEEP_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "schemas/upkeep-config.json is stale: run scripts/gen-schemas.sh"
    );
}
