//! Fields of GitOps objects that `upkeep_gitops::scan` locates but does not
//! model (a system-upgrade-controller Plan's `version`, a FluxInstance's
//! `spec.distribution.version`, a kustomization's `resources`): the scan
//! gives the object's file and line, and `upkeep_gitops::document` reads
//! that one document.

use upkeep_contract::{Finding, Location, ObjectRef, SafeText, Severity};
use upkeep_gitops::Object;

/// Files of the checkout that could not be read: objects in them were not
/// checked, which the operator must know (a warning, not silence).
pub(crate) fn problems_finding(tree: &upkeep_gitops::Tree) -> Option<Finding> {
    const SHOWN: usize = 20;
    let problems = tree.problems();
    if problems.is_empty() {
        return None;
    }
    let mut message = format!(
        "{} file(s) or document(s) of the GitOps checkout could not be read and were not checked: {}",
        problems.len(),
        problems
            .iter()
            .take(SHOWN)
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    );
    if problems.len() > SHOWN {
        message.push_str(&format!("; and {} more", problems.len() - SHOWN));
    }
    Some(Finding {
        severity: Severity::Warning,
        code: "gitops-unreadable".to_string(),
        message: SafeText::excerpt(&message, 2000),
        locations: problems
            .iter()
            .take(SHOWN)
            .map(|p| Location::Gitops {
                path: p.path.clone(),
                line: p.line,
                object: None,
            })
            .collect(),
    })
}

pub(crate) fn object_ref(obj: &Object) -> ObjectRef {
    ObjectRef {
        api_version: obj.api_version.value.clone(),
        kind: obj.kind.value.clone(),
        namespace: obj.namespace().map(str::to_string),
        name: obj.name().unwrap_or("<unnamed>").to_string(),
    }
}

pub(crate) fn location(obj: &Object, line: Option<u32>) -> Location {
    Location::Gitops {
        path: obj.path.clone(),
        line: Some(line.unwrap_or(obj.line)),
        object: Some(object_ref(obj)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_files_are_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "key: [unclosed\n").unwrap();
        std::fs::write(
            dir.path().join("ok.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n",
        )
        .unwrap();
        let tree = upkeep_gitops::scan(dir.path()).unwrap();
        let f = problems_finding(&tree).unwrap();
        assert_eq!(f.code, "gitops-unreadable");
        assert!(f.message.as_str().contains("bad.yaml"), "{f:?}");
        std::fs::remove_file(dir.path().join("bad.yaml")).unwrap();
        assert!(problems_finding(&upkeep_gitops::scan(dir.path()).unwrap()).is_none());
    }
}
