//! One document of a scanned file, read again line by line, for fields the
//! scan locates the object of but does not model (a system-upgrade-controller
//! Plan's `version`, a FluxInstance's `spec.distribution.version`).

use std::path::Path;

use crate::Object;

/// One YAML document of a file, with the 1-based line range it spans.
pub struct Document {
    lines: Vec<(u32, String)>,
}

impl Document {
    /// The line of the value at `path` (`["spec", "distribution", "version"]`),
    /// found by following the keys in order through the document's lines.
    pub fn line_of(&self, path: &[&str]) -> Option<u32> {
        let mut keys = path.iter().peekable();
        for (n, line) in &self.lines {
            let Some(key) = keys.peek() else {
                break;
            };
            let t = line.trim_start().trim_start_matches("- ");
            if t.starts_with(&format!("{key}:")) {
                keys.next();
                if keys.peek().is_none() {
                    return Some(*n);
                }
            }
        }
        None
    }

    /// The scalar at `path` as written on its line (quotes and a trailing
    /// comment removed), with the line: `1.10` stays `1.10`.
    pub fn scalar(&self, path: &[&str]) -> Option<(u32, String)> {
        let n = self.line_of(path)?;
        let line = &self.lines.iter().find(|(l, _)| *l == n)?.1;
        let (_, rest) = line.split_once(':')?;
        let rest = match rest.find(" #") {
            Some(i) => &rest[..i],
            None => rest,
        };
        let value = rest.trim().trim_matches(['"', '\'']).trim();
        (!value.is_empty()).then(|| (n, value.to_string()))
    }

    /// The first line containing `needle`.
    pub fn line_containing(&self, needle: &str) -> Option<(u32, &str)> {
        self.lines
            .iter()
            .find(|(_, l)| l.contains(needle))
            .map(|(n, l)| (*n, l.as_str()))
    }
}

/// The document `obj` was read from, parsed. `None` when the file cannot be
/// read again or the document does not parse (the scan already reported it).
pub fn document(root: &Path, obj: &Object) -> Option<Document> {
    let text = std::fs::read_to_string(root.join(&obj.path)).ok()?;
    let mut chunk: Vec<(u32, String)> = Vec::new();
    let mut found = None;
    for (i, line) in text.lines().enumerate() {
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if line.starts_with("---") {
            if chunk.iter().any(|(l, _)| *l == obj.line) {
                found = Some(std::mem::take(&mut chunk));
                break;
            }
            chunk.clear();
            continue;
        }
        chunk.push((n, line.to_string()));
    }
    let lines = match found {
        Some(c) => c,
        None if chunk.iter().any(|(l, _)| *l == obj.line) => chunk,
        None => return None,
    };
    let source: String = lines
        .iter()
        .map(|(_, l)| l.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    // Only a document that parses is read from, so a field is never taken
    // out of a broken one.
    let _: serde::de::IgnoredAny = serde_saphyr::from_str(&source).ok()?;
    Some(Document { lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_of_the_located_document() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("plans.yaml"),
            "---\napiVersion: upgrade.cattle.io/v1\nkind: Plan\nmetadata:\n  name: agent\nspec:\n  # pinned\n  version: \"v1.26.2+k3s1\" # renovate\n---\napiVersion: upgrade.cattle.io/v1\nkind: Plan\nmetadata:\n  name: server\nspec:\n  channel: https://update.k3s.io/v1-release/channels/v1.31\n  upgrade:\n    image: rancher/k3s-upgrade\n",
        )
        .unwrap();
        let tree = crate::scan(dir.path()).unwrap();
        let plans: Vec<&Object> = tree.of_kind("Plan").collect();
        assert_eq!(plans.len(), 2);
        let agent = document(tree.root(), plans[0]).unwrap();
        assert_eq!(
            agent.scalar(&["spec", "version"]),
            Some((8, "v1.26.2+k3s1".to_string()))
        );
        assert_eq!(agent.scalar(&["spec", "channel"]), None);
        let server = document(tree.root(), plans[1]).unwrap();
        assert_eq!(
            server.scalar(&["spec", "channel"]).map(|(l, _)| l),
            Some(15)
        );
        assert_eq!(
            server
                .line_containing("rancher/k3s-upgrade")
                .map(|(l, _)| l),
            Some(17)
        );
    }

    #[test]
    fn a_broken_document_gives_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ok.yaml"),
            "apiVersion: upgrade.cattle.io/v1\nkind: Plan\nmetadata:\n  name: a\nspec:\n  version: v1.31.4+k3s1\n",
        )
        .unwrap();
        let tree = crate::scan(dir.path()).unwrap();
        let plan = tree.of_kind("Plan").next().unwrap();
        // The file changed after the scan: the document no longer parses.
        std::fs::write(dir.path().join("ok.yaml"), "apiVersion: [\nkind: Plan\n").unwrap();
        assert!(document(tree.root(), plan).is_none());
    }
}
