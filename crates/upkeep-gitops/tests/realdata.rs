//! The scanner on real homelab repositories from ../shared/realdata.

use std::path::{Path, PathBuf};

use upkeep_gitops::{NamespaceSource, Spec, scan};

fn realdata() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/realdata");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "skipping: {} is absent (real data is not in a user's clone)",
            p.display()
        );
        None
    }
}

/// Counts `kind: HelmRelease` lines in YAML files with grep-like logic,
/// independent of the scanner.
fn count_kind(dir: &Path, kind: &str) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                let t = std::fs::read_to_string(&p).unwrap();
                n += t
                    .lines()
                    .filter(|l| l.trim_end() == format!("kind: {kind}"))
                    .count();
            }
        }
    }
    n
}

#[test]
fn billimek_every_helmrelease_with_lines_and_flux_version() {
    let Some(data) = realdata() else { return };
    let root = data.join("gitops/billimek__k8s-gitops");
    let tree = scan(&root).unwrap();
    let expected = count_kind(&root, "HelmRelease");
    assert_eq!(expected, 58);
    let hrs: Vec<_> = tree.of_kind("HelmRelease").collect();
    assert_eq!(hrs.len(), expected, "problems: {:?}", tree.problems());
    for hr in &hrs {
        let Spec::HelmRelease(spec) = &hr.spec else {
            panic!("{} has no spec", hr.describe())
        };
        let chart = spec.chart.as_ref().expect("chart");
        let version = chart.version.as_ref().expect("version");
        // The line we report holds exactly that version field.
        let text = std::fs::read_to_string(root.join(&hr.path)).unwrap();
        let line = text.lines().nth(version.line as usize - 1).unwrap();
        assert!(
            line.trim_start().starts_with("version:") && line.contains(&version.value),
            "{}: line {} is {line:?}",
            hr.path,
            version.line
        );
        let api_line = text.lines().nth(hr.api_version.line as usize - 1).unwrap();
        assert!(api_line.starts_with("apiVersion: helm.toolkit.fluxcd.io/"));
        assert!(
            hr.namespace().is_some(),
            "{} has no namespace",
            hr.describe()
        );
    }
    let header = tree.gotk_components_version().expect("flux version header");
    assert_eq!(header.version, "v2.5.1");
    assert_eq!(header.path, "flux-system/gotk-components.yaml");
    assert_eq!(
        tree.of_kind("HelmRepository").count(),
        count_kind(&root, "HelmRepository")
    );
    assert_eq!(tree.clusters().len(), 1);
}

#[test]
fn cluster_template_namespaces_from_kustomize_files() {
    let Some(data) = realdata() else { return };
    let root = data.join("gitops/onedr0p__flux-cluster-template/kubernetes");
    let tree = scan(&root).unwrap();
    assert_eq!(
        tree.of_kind("HelmRelease").count(),
        count_kind(&root, "HelmRelease")
    );
    let dns = tree
        .of_kind("HelmRelease")
        .find(|o| o.path == "apps/networking/external-dns/app/helmrelease.yaml")
        .unwrap();
    let ns = dns.namespace.as_ref().unwrap();
    assert_eq!(ns.name, "networking");
    if dns.declared_namespace.is_none() {
        assert_eq!(
            ns.source,
            NamespaceSource::Kustomize {
                path: "apps/networking/external-dns/app/kustomization.yaml".into()
            }
        );
    }
    // `${SECRET_DOMAIN}` and friends are kept as written.
    assert!(tree.objects().iter().any(|o| {
        match &o.spec {
            Spec::HelmRelease(_) => std::fs::read_to_string(root.join(&o.path))
                .unwrap()
                .contains("${"),
            _ => false,
        }
    }));
    for p in tree.problems() {
        eprintln!("problem: {p}");
    }
}
