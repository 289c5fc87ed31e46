//! Every chart version line in a real homelab repository can be bumped with
//! a one-line diff.

use std::path::{Path, PathBuf};

fn realdata() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/realdata/gitops/billimek__k8s-gitops");
    p.is_dir().then_some(p)
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

#[test]
fn bumping_every_helmrelease_version_is_a_one_line_diff() {
    let Some(root) = realdata() else {
        eprintln!("skipped: ../shared/realdata is absent");
        return;
    };
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    let mut edited = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        // A HelmRelease document (not a CRD that mentions the kind).
        if !text.lines().any(|l| l == "kind: HelmRelease") {
            continue;
        }
        // The chart version sits under spec.chart.spec: the first `version:`
        // line indented deeper than `chart:`.
        let Some((idx, line)) = text.lines().enumerate().find(|(_, l)| {
            l.starts_with("      ")
                && l.trim_start().starts_with("version:")
                && l.trim_end().len() > l.find(':').unwrap() + 1
        }) else {
            continue;
        };
        let old = line.trim_start().trim_start_matches("version:").trim();
        let old = old
            .split(" #")
            .next()
            .unwrap()
            .trim()
            .trim_matches(['"', '\'']);
        let out = upkeep_edit::replace_scalar(&text, idx + 1, "version", old, "99.1.2")
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let diff: Vec<_> = text
            .lines()
            .zip(out.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(diff.len(), 1, "{}", f.display());
        assert_eq!(text.lines().count(), out.lines().count());
        edited += 1;
    }
    assert!(edited >= 50, "only {edited} HelmReleases edited");
    eprintln!("edited {edited} HelmRelease files with one-line diffs");
}
