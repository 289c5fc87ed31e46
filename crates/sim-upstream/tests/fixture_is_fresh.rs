//! The committed fixture is exactly what scripts/fixtures/make-upstream.py writes from
//! ../shared/realdata. Skipped (with a message) where realdata or python3 is missing, as in a
//! user's clone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out.remove(Path::new("README.md"));
    out
}

#[test]
fn committed_fixture_matches_the_generator() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let realdata = workspace.join("../shared/realdata");
    if !realdata.join("releases").is_dir() {
        eprintln!(
            "SKIP: {} not present; cannot regenerate the fixture",
            realdata.display()
        );
        return;
    }
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIP: python3 not found");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .arg(workspace.join("scripts/fixtures/make-upstream.py"))
        .arg("--realdata")
        .arg(&realdata)
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "make-upstream.py failed");
    let fresh = files(out.path());
    let committed = files(&workspace.join("testdata/upstream"));
    let fresh_names: Vec<_> = fresh.keys().collect();
    let committed_names: Vec<_> = committed.keys().collect();
    assert_eq!(
        fresh_names, committed_names,
        "file lists differ; rerun scripts/fixtures/make-upstream.py"
    );
    for (name, bytes) in &fresh {
        assert!(
            committed[name] == *bytes,
            "{} is stale; rerun scripts/fixtures/make-upstream.py",
            name.display()
        );
    }
}
