//! The scanner on small constructed trees: namespaces, clusters, bad files.

use std::path::Path;

use upkeep_gitops::{NamespaceSource, Spec, scan};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const HR: &str = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: NAME\nspec:\n  chart:\n    spec:\n      chart: NAME\n      version: 1.0.0\n      sourceRef:\n        kind: HelmRepository\n        name: repo\n        namespace: flux-system\n";

fn hr(name: &str) -> String {
    HR.replace("NAME", name)
}

#[test]
fn namespaces_follow_kustomize_and_flux() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Own namespace only.
    write(
        root,
        "own/hr.yaml",
        &hr("own").replacen("metadata:\n", "metadata:\n  namespace: mine\n", 1),
    );
    // Kustomize namespace two levels up, through directories listed in resources.
    write(
        root,
        "apps/kustomization.yaml",
        "namespace: apps\nresources:\n  - ./web\n",
    );
    write(
        root,
        "apps/web/kustomization.yaml",
        "resources:\n  - hr.yaml\n",
    );
    write(root, "apps/web/hr.yaml", &hr("web"));
    // Not listed by its kustomization: no kustomize namespace.
    write(root, "apps/web/unlisted.yaml", &hr("unlisted"));
    // Flux Kustomization targetNamespace overrides.
    write(
        root,
        "flux/ks.yaml",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: tenants\n  namespace: flux-system\nspec:\n  path: ./tenants\n  targetNamespace: tenant-a\n",
    );
    write(
        root,
        "tenants/hr.yaml",
        &hr("tenant").replacen("metadata:\n", "metadata:\n  namespace: ignored\n", 1),
    );
    // Cluster-scoped kinds get none.
    write(
        root,
        "apps/web/ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n",
    );

    let tree = scan(root).unwrap();
    let get = |name: &str| {
        tree.objects()
            .iter()
            .find(|o| o.name() == Some(name))
            .unwrap()
    };
    assert_eq!(get("own").namespace(), Some("mine"));
    assert_eq!(
        get("own").namespace.as_ref().unwrap().source,
        NamespaceSource::Object
    );
    let web = get("web").namespace.clone().unwrap();
    assert_eq!(web.name, "apps");
    assert_eq!(
        web.source,
        NamespaceSource::Kustomize {
            path: "apps/kustomization.yaml".into()
        }
    );
    assert_eq!(get("unlisted").namespace(), None);
    let t = get("tenant").namespace.clone().unwrap();
    assert_eq!(t.name, "tenant-a");
    assert_eq!(
        t.source,
        NamespaceSource::FluxKustomization {
            name: "tenants".into(),
            path: "flux/ks.yaml".into()
        }
    );
    assert_eq!(
        get("tenant").declared_namespace.as_ref().unwrap().value,
        "ignored"
    );
    let ns = tree.of_kind("Namespace").next().unwrap();
    assert_eq!(ns.namespace(), None);
}

#[test]
fn bad_files_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "good.yaml", &hr("good"));
    write(
        root,
        "chart/templates/deploy.yaml",
        "{{- if .Values.enabled }}\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n{{- end }}\n",
    );
    write(
        root,
        "tagged.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: !!binary 'not base64 %%%'\n  b: [\n",
    );
    write(root, "latin1.yaml", "");
    std::fs::write(root.join("latin1.yaml"), b"name: caf\xe9\n").unwrap();
    write(root, ".git/config.yaml", "this: [is not read\n");
    write(root, ".github/workflows/ci.yaml", "on: [push\n");
    write(root, "notes.txt", "kind: HelmRelease\n");
    let tree = scan(root).unwrap();
    assert_eq!(tree.of_kind("HelmRelease").count(), 1);
    let bad: Vec<&str> = tree.problems().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        bad,
        vec!["chart/templates/deploy.yaml", "latin1.yaml", "tagged.yaml"]
    );
    for p in tree.problems() {
        assert!(!p.reason.is_empty() && !p.reason.contains('\n'), "{p}");
    }
    assert!(tree.problems()[0].line.is_some());
}

#[test]
fn missing_root_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = scan(&dir.path().join("nope")).unwrap_err();
    assert!(err.to_string().contains("nope"));
    std::fs::write(dir.path().join("file"), "x").unwrap();
    assert!(scan(&dir.path().join("file")).is_err());
}

#[test]
fn references_resolve_within_their_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let repo = |url: &str| {
        format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: repo\n  namespace: flux-system\nspec:\n  url: {url}\n"
        )
    };
    for (c, url) in [
        ("prod", "https://prod.example/charts"),
        ("staging", "https://staging.example/charts"),
    ] {
        write(
            root,
            &format!("clusters/{c}/flux-system/gotk-sync.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: marker\n",
        );
        write(
            root,
            &format!("clusters/{c}/apps.yaml"),
            &format!(
                "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  path: ./apps/{c}\n"
            ),
        );
        write(root, &format!("apps/{c}/repo.yaml"), &repo(url));
        write(
            root,
            &format!("apps/{c}/hr.yaml"),
            &hr(&format!("app-{c}")).replacen(
                "metadata:\n",
                "metadata:\n  namespace: default\n",
                1,
            ),
        );
    }
    let tree = scan(root).unwrap();
    let ids: Vec<&str> = tree.clusters().iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, vec!["clusters/prod", "clusters/staging"]);
    for c in ["prod", "staging"] {
        let hr = tree
            .of_kind("HelmRelease")
            .find(|o| o.name() == Some(&format!("app-{c}")))
            .unwrap();
        assert_eq!(hr.clusters, vec![format!("clusters/{c}")]);
        let repo = tree
            .resolve(
                hr,
                Some("source.toolkit.fluxcd.io"),
                "HelmRepository",
                Some("flux-system"),
                "repo",
            )
            .unwrap();
        let Spec::HelmRepository(r) = &repo.spec else {
            panic!("not a HelmRepository")
        };
        assert!(r.url.as_ref().unwrap().value.contains(c));
    }
}

#[test]
fn a_flux_spec_of_the_wrong_shape_keeps_the_object_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "sources.yaml",
        &format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: odd\n  namespace: flux-system\nspec:\n  url:\n    not: a string\n---\n{}",
            hr("fine")
        ),
    );
    let tree = scan(root).unwrap();
    let odd = tree.of_kind("HelmRepository").next().unwrap();
    assert_eq!(odd.name(), Some("odd"));
    assert_eq!(odd.spec, Spec::Other);
    assert_eq!(tree.of_kind("HelmRelease").count(), 1);
    let p = &tree.problems()[0];
    assert_eq!((p.path.as_str(), p.line), ("sources.yaml", Some(2)));
    assert!(p.reason.contains("HelmRepository"), "{p}");
}

/// Kustomization `dependsOn`: what Flux applies before an object, through
/// the deepest Kustomization path holding its file, followed transitively.
#[test]
fn kustomization_depends_on_orders_what_flux_applies() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let ks = |name: &str, path: &str, deps: &[&str]| {
        let mut s = format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  path: {path}\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n"
        );
        if !deps.is_empty() {
            s.push_str("  dependsOn:\n");
            for d in deps {
                s.push_str(&format!("    - name: {d}\n"));
            }
        }
        s
    };
    let hr = |name: &str, ns: &str| {
        format!(
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  chart:\n    spec:\n      chart: {name}\n      version: 1.0.0\n      sourceRef:\n        kind: HelmRepository\n        name: charts\n"
        )
    };
    write(
        root,
        "clusters/home/ks.yaml",
        &[
            ks("infra", "./infra", &[]),
            ks("storage", "./storage", &["infra"]),
            ks("apps", "./apps", &["storage"]),
            ks("loop-a", "./loop/a", &["loop-b"]),
            ks("loop-b", "./loop/b", &["loop-a"]),
        ]
        .join("---\n"),
    );
    write(
        root,
        "infra/cert-manager.yaml",
        &hr("cert-manager", "cert-manager"),
    );
    write(
        root,
        "storage/longhorn.yaml",
        &hr("longhorn", "longhorn-system"),
    );
    write(root, "apps/web/release.yaml", &hr("web", "default"));
    write(root, "loop/a/a.yaml", &hr("a", "default"));
    write(root, "loop/b/b.yaml", &hr("b", "default"));
    let tree = upkeep_gitops::scan(root).unwrap();
    let release = |name: &str| {
        tree.of_kind("HelmRelease")
            .find(|o| o.name() == Some(name))
            .unwrap()
    };
    let names = |objs: Vec<&upkeep_gitops::Object>| -> Vec<String> {
        let mut v: Vec<String> = objs
            .iter()
            .filter(|o| o.kind.value == "HelmRelease")
            .map(|o| o.name().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        tree.applied_by(release("web")).and_then(|k| k.name()),
        Some("apps")
    );
    // apps -> storage -> infra: both come first.
    assert_eq!(
        names(tree.flux_dependencies(release("web"))),
        ["cert-manager", "longhorn"]
    );
    assert_eq!(
        names(tree.flux_dependencies(release("longhorn"))),
        ["cert-manager"]
    );
    assert!(tree.flux_dependencies(release("cert-manager")).is_empty());
    // A cycle ends; each side sees the other, never itself.
    assert_eq!(names(tree.flux_dependencies(release("a"))), ["b"]);
    assert_eq!(names(tree.flux_dependencies(release("b"))), ["a"]);
}
