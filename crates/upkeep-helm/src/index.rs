//! `index.yaml` of a Helm repository, read straight into the few fields we
//! use. Everything else (descriptions, maintainers, dependencies, the
//! entries of charts nobody asked for) is skipped as it streams past, so a
//! big index costs little more memory than its own bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use upkeep_version::Version;

/// One published version of a chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartVersion {
    /// As written in the index.
    pub version: String,
    /// `None` when `version` is not a version (such entries are never
    /// offered, but they are kept so nothing is silently lost).
    pub parsed: Option<Version>,
    pub app_version: Option<String>,
    /// RFC 3339 as written.
    pub created: Option<String>,
    pub deprecated: bool,
    /// The Kubernetes versions the chart supports (a constraint).
    pub kube_version: Option<String>,
    /// Empty digests are `None`.
    pub digest: Option<String>,
    pub urls: Vec<String>,
    /// `artifacthub.io/changes`, as written (YAML list in a string, or text).
    pub changes: Option<String>,
    /// `artifacthub.io/containsSecurityUpdates: "true"`.
    pub contains_security_updates: bool,
}

/// The charts of an index that were asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    pub entries: BTreeMap<String, Vec<ChartVersion>>,
}

/// An index that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Helm repository index: {0}")]
pub struct IndexError(String);

impl IndexError {
    pub(crate) fn new(message: String) -> Self {
        IndexError(message)
    }
}

/// Which charts to keep.
#[derive(Debug, Clone, Copy)]
pub enum Charts<'a> {
    All,
    Only(&'a BTreeSet<String>),
}

impl Charts<'_> {
    fn wants(&self, name: &str) -> bool {
        match self {
            Charts::All => true,
            Charts::Only(set) => set.contains(name),
        }
    }
}

/// Reads `bytes` (an `index.yaml`) and keeps the entries of `charts`.
///
/// When only some charts are wanted, their sections are first cut out of
/// the text and only those are parsed: an index written by `helm repo
/// index` (or any block-style YAML) has each chart as a key indented by
/// exactly two spaces under `entries:`, and YAML forbids anything else from
/// sitting at that indentation there. Whatever does not fit that shape
/// (flow style, anchors, odd keys), or fails to parse once cut, is parsed
/// whole instead, so the answer is the same either way.
pub fn parse_index(bytes: &[u8], charts: Charts<'_>) -> Result<Index, IndexError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    if let Charts::Only(wanted) = charts
        && let Some(sections) = chart_sections(bytes, wanted)
        && let Ok(index) = parse_whole(sections.as_bytes(), charts)
    {
        return Ok(index);
    }
    parse_whole(bytes, charts)
}

/// `entries:` holding only the wanted charts' sections, cut from the text;
/// `None` when the text is not laid out as the fast path assumes.
fn chart_sections(bytes: &[u8], wanted: &BTreeSet<String>) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut out = String::from("entries:\n");
    let (mut in_entries, mut seen_entries, mut keep) = (false, false, false);
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        match bare.as_bytes().first() {
            None => {
                if keep {
                    out.push_str(line);
                }
                continue;
            }
            Some(b' ') => {}
            Some(b'#') => continue,
            Some(_) => {
                // A top-level key (or a document marker) ends `entries`.
                in_entries = false;
                keep = false;
                if let Some(rest) = bare.strip_prefix("entries:") {
                    let rest = rest.trim();
                    if seen_entries || !(rest.is_empty() || rest.starts_with('#')) {
                        return None;
                    }
                    seen_entries = true;
                    in_entries = true;
                } else if bare.starts_with("---")
                    || bare.starts_with("...")
                    || bare.starts_with('%')
                {
                    return None;
                }
                continue;
            }
        }
        if !in_entries {
            continue;
        }
        let indent = bare.len() - bare.trim_start_matches(' ').len();
        let content = &bare[indent..];
        if indent == 1 || content.starts_with('\t') {
            return None;
        }
        if indent == 2 && !content.starts_with('-') && !content.starts_with('#') {
            let (key, rest) = split_key(content)?;
            keep = wanted.contains(key);
            if keep {
                let rest = rest.trim();
                if !(rest.is_empty() || rest == "[]" || rest.starts_with('#')) {
                    return None;
                }
                out.push_str(line);
            }
            continue;
        }
        if keep {
            out.push_str(line);
        }
    }
    seen_entries.then_some(out)
}

/// `name: rest` or `"name": rest` → (name, rest); `None` for keys the fast
/// path does not read (escapes, anchors, tags, complex keys).
fn split_key(content: &str) -> Option<(&str, &str)> {
    let (key, after) = match content.as_bytes().first()? {
        q @ (b'"' | b'\'') => {
            let quote = *q as char;
            let end = content[1..].find(quote)? + 1;
            let key = &content[1..end];
            if key.contains('\\') {
                return None;
            }
            (key, &content[end + 1..])
        }
        b'?' | b'&' | b'*' | b'!' | b'[' | b'{' | b'|' | b'>' | b'@' | b'`' | b'%' => return None,
        _ => {
            let end = content
                .char_indices()
                .find(|(i, c)| {
                    *c == ':' && content[i + 1..].chars().next().is_none_or(|n| n == ' ')
                })
                .map(|(i, _)| i)?;
            (content[..end].trim_end(), &content[end..])
        }
    };
    let rest = after.trim_start().strip_prefix(':')?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    Some((key, rest))
}

fn parse_whole(bytes: &[u8], charts: Charts<'_>) -> Result<Index, IndexError> {
    let options = serde_saphyr::options! {
        // The defaults are sized for configuration files; a large repository
        // index has millions of nodes (grafana's 3.8 MiB has ~400k).
        budget: serde_saphyr::budget! {
            max_events: usize::MAX / 2,
            max_nodes: usize::MAX / 2,
            max_total_scalar_bytes: 1 << 30,
            max_reader_input_bytes: None,
            max_documents: 1,
            max_depth: 64,
        },
        with_snippet: false,
    };
    serde_saphyr::with_deserializer_from_slice_with_options(bytes, options, |de| {
        TopSeed { charts }.deserialize(de)
    })
    .map_err(|e| {
        IndexError(
            e.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        )
    })?
    .ok_or_else(|| IndexError("the document has no `entries` mapping".into()))
}

struct TopSeed<'a> {
    charts: Charts<'a>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Option<Index>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Option<Index>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Helm repository index (a mapping with `entries`)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut index = None;
        while let Some(key) = map.next_key::<KeyText>()? {
            if key.0.as_deref() == Some("entries") {
                index = Some(map.next_value_seed(EntriesSeed {
                    charts: self.charts,
                })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(index)
    }
}

struct EntriesSeed<'a> {
    charts: Charts<'a>,
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_> {
    type Value = Index;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Index, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_> {
    type Value = Index;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("`entries`: a mapping of chart names to lists of versions")
    }
    // `entries:` with nothing under it is an empty repository.
    fn visit_unit<E>(self) -> Result<Index, E> {
        Ok(Index::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Index, A::Error> {
        let mut index = Index::default();
        while let Some(name) = map.next_key::<KeyText>()? {
            match name.0 {
                Some(name) if self.charts.wants(&name) => {
                    let versions: Option<Vec<RawVersion>> = map.next_value()?;
                    let list = index.entries.entry(name).or_default();
                    list.extend(
                        versions
                            .into_iter()
                            .flatten()
                            .filter_map(RawVersion::finish),
                    );
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(index)
    }
}

/// A mapping key as text; `None` for keys that are collections.
struct KeyText(Option<String>);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Scalar).map(|s| KeyText(s.0))
    }
}

/// Any scalar as text (as written for strings, formatted for the rest);
/// `None` for null and collections, which are skipped.
struct Scalar;
struct ScalarText(Option<String>);

impl<'de> Visitor<'de> for Scalar {
    type Value = ScalarText;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar")
    }
    fn visit_str<E>(self, v: &str) -> Result<ScalarText, E> {
        Ok(ScalarText(Some(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<ScalarText, E> {
        Ok(ScalarText(Some(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<ScalarText, E> {
        Ok(ScalarText(Some(v.to_string())))
    }
    fn visit_i64<E>(self, v: i64) -> Result<ScalarText, E> {
        Ok(ScalarText(Some(v.to_string())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<ScalarText, E> {
        Ok(ScalarText(Some(v.to_string())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<ScalarText, E> {
        Ok(ScalarText(Some(v.to_string())))
    }
    fn visit_unit<E>(self) -> Result<ScalarText, E> {
        Ok(ScalarText(None))
    }
    fn visit_none<E>(self) -> Result<ScalarText, E> {
        Ok(ScalarText(None))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<ScalarText, D::Error> {
        d.deserialize_any(Scalar)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ScalarText, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(ScalarText(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ScalarText, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(ScalarText(None))
    }
}

/// A text field: read with `deserialize_str`, so the YAML scalar `1.10`
/// stays `1.10` instead of becoming the float 1.1; null is `None`.
#[derive(Default)]
struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<String>::deserialize(d).map(Text)
    }
}

/// A flag written as `true` or `"true"`.
#[derive(Default)]
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = d.deserialize_any(Scalar)?;
        Ok(Flag(s.0.is_some_and(|v| v.eq_ignore_ascii_case("true"))))
    }
}

#[derive(Default)]
struct Annotations {
    changes: Option<String>,
    security: bool,
}

impl<'de> Deserialize<'de> for Annotations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Annotations;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("chart annotations")
            }
            fn visit_unit<E>(self) -> Result<Annotations, E> {
                Ok(Annotations::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Annotations, A::Error> {
                let mut a = Annotations::default();
                while let Some(k) = map.next_key::<KeyText>()? {
                    match k.0.as_deref() {
                        Some("artifacthub.io/changes") => {
                            a.changes = map.next_value_seed(ScalarSeed)?.0;
                        }
                        Some("artifacthub.io/containsSecurityUpdates") => {
                            a.security = map.next_value::<Flag>()?.0;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(a)
            }
        }
        d.deserialize_any(V)
    }
}

struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = ScalarText;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ScalarText, D::Error> {
        d.deserialize_any(Scalar)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawVersion {
    #[serde(default)]
    version: Text,
    #[serde(default)]
    app_version: Text,
    #[serde(default)]
    created: Text,
    #[serde(default)]
    deprecated: Flag,
    #[serde(default)]
    kube_version: Text,
    #[serde(default)]
    digest: Text,
    #[serde(default)]
    urls: Option<Vec<Text>>,
    #[serde(default)]
    annotations: Annotations,
}

impl RawVersion {
    /// An entry without a version cannot be offered or compared: dropped.
    fn finish(self) -> Option<ChartVersion> {
        let version = self.version.0.filter(|v| !v.trim().is_empty())?;
        Some(ChartVersion {
            parsed: Version::parse(&version).ok(),
            version,
            app_version: self.app_version.0.filter(|s| !s.is_empty()),
            created: self.created.0.filter(|s| !s.is_empty()),
            deprecated: self.deprecated.0,
            kube_version: self.kube_version.0.filter(|s| !s.trim().is_empty()),
            digest: self.digest.0.filter(|s| !s.trim().is_empty()),
            urls: self
                .urls
                .into_iter()
                .flatten()
                .filter_map(|u| u.0)
                .collect(),
            changes: self.annotations.changes.filter(|s| !s.trim().is_empty()),
            contains_security_updates: self.annotations.security,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cut_sections_agree_with_the_whole_parse() {
        let yaml = "apiVersion: v1\n# comment\nentries:\n  a:\n  - version: 1.0.0\n    annotations:\n      artifacthub.io/changes: |\n        - kind: fixed\n\n          description: \"b:\n            not a key\"\n  \"b\":\n    - version: 2.0.0\n      description: multi\n        line\n  c: []\n  # note\n  d:\n  - version: 4.0.0\ngenerated: x\nserverInfo:\n  b:\n  - version: 9.9.9\n";
        let whole = parse_index(yaml.as_bytes(), Charts::All).unwrap();
        for name in ["a", "b", "c", "d", "zz"] {
            let want = only(&[name]);
            let cut = chart_sections(yaml.as_bytes(), &want).expect("block layout");
            let fast = parse_whole(cut.as_bytes(), Charts::Only(&want)).unwrap();
            assert_eq!(fast.entries.get(name), whole.entries.get(name), "{name}");
            assert_eq!(
                parse_index(yaml.as_bytes(), Charts::Only(&want)).unwrap(),
                fast
            );
        }
        // Shapes the fast path does not assume fall back to the whole parse.
        let flow = b"entries: {a: [{version: 1.0.0}]}\n";
        assert!(chart_sections(flow, &only(&["a"])).is_none());
        assert_eq!(
            parse_index(flow, Charts::Only(&only(&["a"])))
                .unwrap()
                .entries["a"][0]
                .version,
            "1.0.0"
        );
        let anchored = b"entries:\n  a: &x\n  - version: 1.0.0\n  b: *x\n";
        assert_eq!(
            parse_index(anchored, Charts::Only(&only(&["b"])))
                .unwrap()
                .entries["b"]
                .len(),
            1
        );
    }

    #[test]
    fn versions_stay_strings_quoted_or_not() {
        let yaml = b"apiVersion: v1\nentries:\n  a:\n  - version: 1.10\n    appVersion: 2.0\n    digest: 0123\n    created: 2024-01-01T00:00:00Z\n  - version: \"1.9\"\n    kubeVersion: '>=1.25.0-0'\n    deprecated: true\n  b:\n  - version: 9.9.9\ngenerated: 2024-01-01T00:00:00Z\n";
        let idx = parse_index(yaml, Charts::All).unwrap();
        let a = &idx.entries["a"];
        assert_eq!(a[0].version, "1.10");
        assert_eq!(a[0].parsed, Some(Version::parse("1.10.0").unwrap()));
        assert_eq!(a[0].app_version.as_deref(), Some("2.0"));
        assert_eq!(a[0].digest.as_deref(), Some("0123"));
        assert_eq!(a[0].created.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(a[1].version, "1.9");
        assert!(a[1].deprecated && !a[0].deprecated);
        assert_eq!(a[1].kube_version.as_deref(), Some(">=1.25.0-0"));
        let only_b = parse_index(yaml, Charts::Only(&only(&["b"]))).unwrap();
        assert_eq!(only_b.entries.keys().collect::<Vec<_>>(), vec!["b"]);
    }

    #[test]
    fn annotations_security_and_changes() {
        let yaml = b"entries:\n  c:\n  - version: 1.0.0\n    annotations:\n      artifacthub.io/containsSecurityUpdates: \"true\"\n      artifacthub.io/changes: |\n        - kind: security\n          description: fix CVE-2024-1234\n      category: x\n  - version: 0.9.0\n    annotations:\n      artifacthub.io/containsSecurityUpdates: false\n";
        let idx = parse_index(yaml, Charts::All).unwrap();
        let c = &idx.entries["c"];
        assert!(c[0].contains_security_updates);
        assert!(c[0].changes.as_deref().unwrap().contains("CVE-2024-1234"));
        assert!(!c[1].contains_security_updates);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_index(b"entries: [\n", Charts::All).is_err());
        assert!(parse_index(b"just text", Charts::All).is_err());
        assert!(parse_index(b"apiVersion: v1\n", Charts::All).is_err());
        assert!(parse_index(b"\xff\xfe", Charts::All).is_err());
        assert!(parse_index(b"entries:\n  a:\n  - version: [1]\n", Charts::All).is_err());
        let empty = parse_index(b"entries:\n", Charts::All).unwrap();
        assert!(empty.entries.is_empty());
    }
}
