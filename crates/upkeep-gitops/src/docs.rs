//! One YAML file into Kubernetes objects: the file is cut into documents at
//! their markers, each document is read twice at most (a small head for
//! every object, a typed spec for the Flux kinds we use), and every value we
//! keep carries the line it came from, so later tools can edit that line.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_saphyr::Spanned;

use crate::{
    BucketSpec, Dependency, Field, FluxKustomizationSpec, GitRef, GitRepositorySpec, HelmChartSpec,
    HelmReleaseChart, HelmReleaseSpec, HelmRepositorySpec, OciRef, OciRepositorySpec, SourceRef,
    Spec,
};

/// What a file yielded before namespaces and clusters are worked out.
pub(crate) struct RawObject {
    pub api_version: Field,
    pub kind: Field,
    pub name: Option<Field>,
    pub namespace: Option<Field>,
    pub line: u32,
    pub spec: Spec,
}

/// A document that could not be read, with the 1-based line it starts on.
pub(crate) struct DocProblem {
    pub line: u32,
    pub reason: String,
}

/// The documents of a file: (0-based index of the first line, text).
///
/// YAML forbids `---` and `...` at the start of a line inside any scalar, so
/// cutting at such lines is what a YAML parser does too. Cutting ourselves
/// lets every document be read (and fail) on its own and keeps line numbers.
pub fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 0;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_marker = |m: &str| {
            bare.strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
        };
        if is_marker("---") {
            if offset > start_byte {
                docs.push((start_line, &text[start_byte..offset]));
            }
            start_byte = offset;
            start_line = i;
        } else if is_marker("...") {
            let end = offset + line.len();
            docs.push((start_line, &text[start_byte..end]));
            start_byte = end;
            start_line = i + 1;
        }
        offset += line.len();
    }
    if text.len() > start_byte {
        docs.push((start_line, &text[start_byte..]));
    }
    docs
}

fn options() -> serde_saphyr::Options {
    // The defaults (1,024 documents, 250,000 nodes, 1,000,000 events) are
    // for configuration files; CRD bundles such as gotk-components.yaml and
    // big generated manifests go past them. Depth stays bounded.
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 50_000_000,
            max_nodes: 20_000_000,
            max_documents: 1_000_000,
            max_depth: 256,
        },
        with_snippet: false,
    }
}

/// Reads every document of one file. `Err` when a document is not YAML:
/// the caller reports the file and keeps none of its objects, because a file
/// with one broken document is usually a template, not a manifest.
#[cfg(test)]
pub(crate) fn read_file(text: &str) -> Result<Vec<RawObject>, DocProblem> {
    let mut spec_problems = Vec::new();
    read_file_with(text, &mut spec_problems)
}

/// [`read_file`], collecting problems with specs (the objects are kept).
pub(crate) fn read_file_with(
    text: &str,
    spec_problems: &mut Vec<DocProblem>,
) -> Result<Vec<RawObject>, DocProblem> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (first_line, doc) in split_documents(text) {
        let base = u32::try_from(first_line).unwrap_or(u32::MAX);
        let heads: Vec<Top> =
            serde_saphyr::from_multiple_with_options(doc, options()).map_err(|e| DocProblem {
                line: base + 1,
                reason: one_line(&e.to_string(), base),
            })?;
        for head in heads {
            let Top::Object(head) = head else { continue };
            let (Some(api_version), Some(kind)) = (head.api_version, head.kind) else {
                continue;
            };
            let api_version = field(api_version, base);
            let kind = field(kind, base);
            // A Flux object whose spec does not have the shape we read is
            // still an object (its kind, name and lines are right); the
            // problem is reported and the spec left unread.
            let spec = match read_spec(&api_version.value, &kind.value, doc) {
                Ok(spec) => spec,
                Err(reason) => {
                    spec_problems.push(DocProblem {
                        line: kind.line,
                        reason: format!("spec of {}: {}", kind.value, one_line(&reason, base)),
                    });
                    None
                }
            };
            let meta = head.metadata.unwrap_or_default();
            out.push(RawObject {
                line: head.line.map_or(base + 1, |l| l.saturating_add(base)),
                api_version,
                kind,
                name: meta.name.map(|f| field(f, base)),
                namespace: meta.namespace.map(|f| field(f, base)),
                spec: spec.map(|s| s.into_spec(base)).unwrap_or(Spec::Other),
            });
        }
    }
    Ok(out)
}

/// Messages from the parser name lines inside the document; make them
/// lines of the file, and keep one line.
fn one_line(message: &str, base: u32) -> String {
    let mut out = String::new();
    let mut rest = message;
    // "line N" → "line N+base"
    while let Some(i) = rest.find("line ") {
        out.push_str(&rest[..i + 5]);
        rest = &rest[i + 5..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
            let n: u64 = rest[..digits].parse().unwrap_or(0);
            out.push_str(&(n + u64::from(base)).to_string());
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn field(s: Spanned<String>, base: u32) -> Field {
    let line = u32::try_from(s.referenced.line()).unwrap_or(u32::MAX);
    Field {
        value: s.value,
        line: line.saturating_add(base),
    }
}

fn opt(s: Option<Spanned<String>>, base: u32) -> Option<Field> {
    s.map(|s| field(s, base))
}

/// The top of a document: a mapping (maybe a Kubernetes object) or
/// anything else (a list, a scalar), which is not an object and not an error.
// Short-lived, one at a time: boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
enum Top {
    Object(Head),
    NotObject,
}

#[derive(Default)]
struct Head {
    line: Option<u32>,
    api_version: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
    metadata: Option<Meta>,
}

#[derive(Default, Deserialize)]
struct Meta {
    #[serde(default)]
    name: Option<Spanned<String>>,
    #[serde(default)]
    namespace: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for Top {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a YAML document")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
                let mut head = Head::default();
                while let Some(key) = map.next_key::<Spanned<Key>>()? {
                    if head.line.is_none() {
                        head.line = u32::try_from(key.referenced.line()).ok();
                    }
                    match key.value.0.as_deref() {
                        Some("apiVersion") => head.api_version = map.next_value()?,
                        Some("kind") => head.kind = map.next_value()?,
                        Some("metadata") => head.metadata = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Top::Object(head))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Top::NotObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<Top, E> {
                Ok(Top::NotObject)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Top, E> {
                Ok(Top::NotObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Top, E> {
                Ok(Top::NotObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Top, E> {
                Ok(Top::NotObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Top, E> {
                Ok(Top::NotObject)
            }
            fn visit_unit<E>(self) -> Result<Top, E> {
                Ok(Top::NotObject)
            }
        }
        d.deserialize_any(V)
    }
}

/// A mapping key: text when it is a scalar, nothing when it is a
/// collection (legal YAML, never a field we read).
struct Key(Option<String>);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(Key(Some(v.to_string())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Key, E> {
                Ok(Key(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Key, E> {
                Ok(Key(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Key, E> {
                Ok(Key(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Key, E> {
                Ok(Key(None))
            }
            fn visit_unit<E>(self) -> Result<Key, E> {
                Ok(Key(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Key(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Key, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Key(None))
            }
        }
        d.deserialize_any(V)
    }
}

fn group(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// Typed specs of the Flux kinds we read. Fields are strings (a chart
/// version `1.10` must stay `1.10`) with their positions.
#[allow(clippy::large_enum_variant)]
enum RawSpec {
    HelmRelease(RawHelmReleaseSpec),
    HelmRepository(RawHelmRepositorySpec),
    OciRepository(RawOciRepositorySpec),
    GitRepository(RawGitRepositorySpec),
    Bucket(RawBucketSpec),
    HelmChart(RawHelmChartSpec),
    Kustomization(RawKustomizationSpec),
}

#[derive(Deserialize)]
struct WithSpec<T> {
    #[serde(default = "Option::default")]
    spec: Option<T>,
}

fn spec_of<'de, T: Deserialize<'de>>(doc: &'de str) -> Result<Option<T>, String> {
    let docs: Vec<WithSpec<T>> =
        serde_saphyr::from_multiple_with_options(doc, options()).map_err(|e| e.to_string())?;
    Ok(docs.into_iter().next().and_then(|d| d.spec))
}

fn read_spec(api_version: &str, kind: &str, doc: &str) -> Result<Option<RawSpec>, String> {
    Ok(match (group(api_version), kind) {
        ("helm.toolkit.fluxcd.io", "HelmRelease") => spec_of(doc)?.map(RawSpec::HelmRelease),
        ("source.toolkit.fluxcd.io", "HelmRepository") => {
            spec_of(doc)?.map(RawSpec::HelmRepository)
        }
        ("source.toolkit.fluxcd.io", "OCIRepository") => spec_of(doc)?.map(RawSpec::OciRepository),
        ("source.toolkit.fluxcd.io", "GitRepository") => spec_of(doc)?.map(RawSpec::GitRepository),
        ("source.toolkit.fluxcd.io", "Bucket") => spec_of(doc)?.map(RawSpec::Bucket),
        ("source.toolkit.fluxcd.io", "HelmChart") => spec_of(doc)?.map(RawSpec::HelmChart),
        ("kustomize.toolkit.fluxcd.io", "Kustomization") => {
            spec_of(doc)?.map(RawSpec::Kustomization)
        }
        _ => None,
    })
}

type S = Option<Spanned<String>>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSourceRef {
    #[serde(default)]
    api_version: S,
    #[serde(default)]
    kind: S,
    #[serde(default)]
    name: S,
    #[serde(default)]
    namespace: S,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawHelmReleaseSpec {
    #[serde(default)]
    chart: Option<RawChartTemplate>,
    #[serde(default)]
    chart_ref: Option<Spanned<RawSourceRef>>,
    #[serde(default)]
    target_namespace: S,
    #[serde(default)]
    release_name: S,
    #[serde(default)]
    depends_on: Option<Vec<RawDependency>>,
}

#[derive(Deserialize)]
struct RawDependency {
    #[serde(default)]
    name: S,
    #[serde(default)]
    namespace: S,
}

#[derive(Deserialize)]
struct RawChartTemplate {
    #[serde(default)]
    spec: Option<RawChartTemplateSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawChartTemplateSpec {
    #[serde(default)]
    chart: S,
    #[serde(default)]
    version: S,
    #[serde(default)]
    source_ref: Option<Spanned<RawSourceRef>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawHelmRepositorySpec {
    #[serde(default)]
    url: S,
    #[serde(default, rename = "type")]
    repo_type: S,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOciRef {
    #[serde(default)]
    tag: S,
    #[serde(default)]
    semver: S,
    #[serde(default)]
    semver_filter: S,
    #[serde(default)]
    digest: S,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOciRepositorySpec {
    #[serde(default)]
    url: S,
    #[serde(default, rename = "ref")]
    reference: Option<RawOciRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGitRef {
    #[serde(default)]
    branch: S,
    #[serde(default)]
    tag: S,
    #[serde(default)]
    semver: S,
    #[serde(default)]
    commit: S,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGitRepositorySpec {
    #[serde(default)]
    url: S,
    #[serde(default, rename = "ref")]
    reference: Option<RawGitRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBucketSpec {
    #[serde(default)]
    endpoint: S,
    #[serde(default)]
    bucket_name: S,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawHelmChartSpec {
    #[serde(default)]
    chart: S,
    #[serde(default)]
    version: S,
    #[serde(default)]
    source_ref: Option<Spanned<RawSourceRef>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKustomizationSpec {
    #[serde(default)]
    path: S,
    #[serde(default)]
    depends_on: Option<Vec<RawDependency>>,
    #[serde(default)]
    target_namespace: S,
    #[serde(default)]
    source_ref: Option<Spanned<RawSourceRef>>,
}

fn source_ref(r: Option<Spanned<RawSourceRef>>, base: u32) -> Option<SourceRef> {
    r.map(|r| SourceRef {
        line: u32::try_from(r.referenced.line())
            .unwrap_or(u32::MAX)
            .saturating_add(base),
        api_version: opt(r.value.api_version, base),
        kind: opt(r.value.kind, base),
        name: opt(r.value.name, base),
        namespace: opt(r.value.namespace, base),
    })
}

/// `spec.dependsOn` entries with a name (Flux requires one).
fn dependencies(raw: Option<Vec<RawDependency>>, b: u32) -> Vec<Dependency> {
    raw.into_iter()
        .flatten()
        .filter_map(|d| {
            Some(Dependency {
                name: opt(d.name, b)?,
                namespace: opt(d.namespace, b),
            })
        })
        .collect()
}

impl RawSpec {
    fn into_spec(self, b: u32) -> Spec {
        match self {
            RawSpec::HelmRelease(s) => Spec::HelmRelease(HelmReleaseSpec {
                chart: s.chart.and_then(|c| c.spec).map(|c| HelmReleaseChart {
                    chart: opt(c.chart, b),
                    version: opt(c.version, b),
                    source_ref: source_ref(c.source_ref, b),
                }),
                chart_ref: source_ref(s.chart_ref, b),
                target_namespace: opt(s.target_namespace, b),
                release_name: opt(s.release_name, b),
                depends_on: dependencies(s.depends_on, b),
            }),
            RawSpec::HelmRepository(s) => Spec::HelmRepository(HelmRepositorySpec {
                url: opt(s.url, b),
                repo_type: opt(s.repo_type, b),
            }),
            RawSpec::OciRepository(s) => Spec::OciRepository(OciRepositorySpec {
                url: opt(s.url, b),
                reference: s.reference.map(|r| OciRef {
                    tag: opt(r.tag, b),
                    semver: opt(r.semver, b),
                    semver_filter: opt(r.semver_filter, b),
                    digest: opt(r.digest, b),
                }),
            }),
            RawSpec::GitRepository(s) => Spec::GitRepository(GitRepositorySpec {
                url: opt(s.url, b),
                reference: s.reference.map(|r| GitRef {
                    branch: opt(r.branch, b),
                    tag: opt(r.tag, b),
                    semver: opt(r.semver, b),
                    commit: opt(r.commit, b),
                }),
            }),
            RawSpec::Bucket(s) => Spec::Bucket(BucketSpec {
                endpoint: opt(s.endpoint, b),
                bucket_name: opt(s.bucket_name, b),
            }),
            RawSpec::HelmChart(s) => Spec::HelmChart(HelmChartSpec {
                chart: opt(s.chart, b),
                version: opt(s.version, b),
                source_ref: source_ref(s.source_ref, b),
            }),
            RawSpec::Kustomization(s) => Spec::Kustomization(FluxKustomizationSpec {
                path: opt(s.path, b),
                target_namespace: opt(s.target_namespace, b),
                source_ref: source_ref(s.source_ref, b),
                depends_on: dependencies(s.depends_on, b),
            }),
        }
    }
}

/// What a kustomize `kustomization.yaml` says that matters to us.
#[derive(Default)]
pub(crate) struct KustomizeFile {
    pub namespace: Option<String>,
    pub resources: Vec<String>,
}

#[derive(Deserialize)]
struct RawKustomizeFile {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    resources: Option<Vec<Key>>,
    #[serde(default)]
    components: Option<Vec<Key>>,
}

pub(crate) fn read_kustomize_file(text: &str) -> Result<KustomizeFile, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let docs: Vec<RawKustomizeFile> = serde_saphyr::from_multiple_with_options(text, options())
        .map_err(|e| one_line(&e.to_string(), 0))?;
    let Some(doc) = docs.into_iter().next() else {
        return Ok(KustomizeFile::default());
    };
    let resources = doc
        .resources
        .into_iter()
        .chain(doc.components)
        .flatten()
        .filter_map(|k| k.0)
        .collect();
    Ok(KustomizeFile {
        namespace: doc.namespace.filter(|n| !n.is_empty()),
        resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_markers_only_at_line_start() {
        let text = "a: 1\n---\nb: |\n  --- not a marker\n---   \nc: 3\n...\n# tail\n";
        let docs = split_documents(text);
        let starts: Vec<usize> = docs.iter().map(|d| d.0).collect();
        assert_eq!(starts, vec![0, 1, 4, 7]);
        assert!(docs[1].1.contains("not a marker"));
    }

    #[test]
    fn versions_stay_strings_and_lines_are_file_lines() {
        let text = "# comment\n---\napiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: a\nspec:\n  chart:\n    spec:\n      chart: a\n      version: 1.10\n---\napiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: b\nspec:\n  chart:\n    spec:\n      chart: b\n      version: 1.20.0\n      sourceRef:\n        kind: HelmRepository\n        name: r\n";
        let objs = read_file(text).map_err(|p| p.reason).unwrap();
        assert_eq!(objs.len(), 2);
        let Spec::HelmRelease(a) = &objs[0].spec else {
            panic!("not a HelmRelease")
        };
        let v = a.chart.as_ref().unwrap().version.as_ref().unwrap();
        assert_eq!(v.value, "1.10");
        assert_eq!(v.line, 11);
        assert_eq!(objs[0].line, 3);
        assert_eq!(objs[0].api_version.line, 3);
        let Spec::HelmRelease(b) = &objs[1].spec else {
            panic!("not a HelmRelease")
        };
        let c = b.chart.as_ref().unwrap();
        assert_eq!(c.version.as_ref().unwrap().line, 21);
        assert_eq!(
            c.source_ref.as_ref().unwrap().name.as_ref().unwrap().value,
            "r"
        );
        assert_eq!(objs[1].line, 13);
        assert_eq!(objs[1].name.as_ref().unwrap().line, 16);
    }

    #[test]
    fn depends_on_is_read_with_lines() {
        let objs = read_file("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: web\nspec:\n  dependsOn:\n    - name: db\n    - name: cache\n      namespace: infra\n    - namespace: no-name\n").unwrap_or_else(|_| panic!("parses"));
        let Spec::HelmRelease(hr) = &objs[0].spec else {
            panic!("not a HelmRelease")
        };
        let got: Vec<(&str, u32, Option<&str>)> = hr
            .depends_on
            .iter()
            .map(|d| {
                (
                    d.name.value.as_str(),
                    d.name.line,
                    d.namespace.as_ref().map(|n| n.value.as_str()),
                )
            })
            .collect();
        assert_eq!(got, [("db", 7, None), ("cache", 8, Some("infra"))]);
    }

    #[test]
    fn non_objects_are_skipped_and_templates_fail() {
        let objs = read_file("- a\n- b\n---\njust text\n---\nfoo: bar\n")
            .map_err(|p| p.reason)
            .unwrap();
        assert!(objs.is_empty());
        let bad = "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}\n  labels: [\n";
        let err = read_file(bad).err().expect("a template is not YAML");
        assert_eq!(err.line, 3);
        assert!(!err.reason.contains('\n'));
    }

    #[test]
    fn substitutions_are_kept_verbatim() {
        let objs = read_file("apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: x\n  namespace: ${NS}\nspec:\n  url: https://${DOMAIN}/charts\n").map_err(|p| p.reason).unwrap();
        assert_eq!(objs[0].namespace.as_ref().unwrap().value, "${NS}");
        let Spec::HelmRepository(r) = &objs[0].spec else {
            panic!("not a HelmRepository")
        };
        assert!(r.url.as_ref().unwrap().has_substitution());
    }
}
