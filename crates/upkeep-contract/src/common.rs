//! Pieces shared by several documents: object references, where a thing was
//! observed, findings, errors, timestamps and text that is safe to print.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, written as RFC 3339 in UTC (`2026-11-28T04:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub jiff::Timestamp);

impl Timestamp {
    /// Now, to the whole second: documents are diffed between runs, and
    /// nanoseconds only add noise.
    pub fn now() -> Self {
        let now = jiff::Timestamp::now();
        Timestamp(jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        s.parse::<jiff::Timestamp>()
            .map(Timestamp)
            .map_err(|e| format!("invalid timestamp {s:?}: {e}"))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whole seconds: documents are for people too.
        let secs = jiff::Timestamp::from_second(self.0.as_second()).unwrap_or(self.0);
        write!(f, "{secs}")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Timestamp")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "date-time" })
    }
}

/// Text that came from outside (release notes, chart annotations, object
/// names) and is safe to print on a terminal: control characters and escape
/// sequences are removed when the value is made and again when it is read
/// from a document, so a hostile release note cannot drive the terminal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SafeText(String);

/// Longest excerpt kept from release notes, in characters.
pub const EXCERPT_MAX_CHARS: usize = 600;

impl SafeText {
    pub fn new(s: &str) -> Self {
        SafeText(sanitize(s))
    }

    /// A sanitised excerpt no longer than `max` characters, cut at a word
    /// boundary when one is near, with an ellipsis when cut.
    pub fn excerpt(s: &str, max: usize) -> Self {
        let clean = sanitize(s);
        if clean.chars().count() <= max {
            return SafeText(clean);
        }
        let cut: String = clean.chars().take(max.saturating_sub(1)).collect();
        let cut = match cut.rfind(char::is_whitespace) {
            Some(i) if i > cut.len() / 2 => cut[..i].trim_end().to_string(),
            _ => cut,
        };
        SafeText(format!("{cut}…"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Removes ANSI/VT escape sequences (CSI, OSC, and lone ESC) and every other
/// control character except newline and tab.
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    // CSI parameters run to a final byte in 0x40..=0x7e.
    fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
        for c in chars.by_ref() {
            if ('\u{40}'..='\u{7e}').contains(&c) {
                break;
            }
        }
    }
    // OSC, DCS and friends run to BEL, ST (0x9c) or ESC \.
    fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
        while let Some(c) = chars.next() {
            if c == '\u{7}' || c == '\u{9c}' {
                break;
            }
            if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                chars.next();
                break;
            }
        }
    }
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.peek() {
                Some('[') => {
                    chars.next();
                    skip_csi(&mut chars);
                }
                Some(']' | 'P' | '^' | '_' | 'X') => {
                    chars.next();
                    skip_string(&mut chars);
                }
                // Two-character escapes (ESC c, ESC 7, ...)
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            // 8-bit introducers do what their ESC forms do.
            '\u{9b}' => skip_csi(&mut chars),
            '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\u{80}'..='\u{9f}' => {}
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            // Bidirectional overrides can make text read differently than it is.
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {}
            c => out.push(c),
        }
    }
    out
}

impl fmt::Display for SafeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SafeText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SafeText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        Ok(SafeText::new(&s))
    }
}

impl JsonSchema for SafeText {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("SafeText")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "description": "Text with control characters and terminal escape sequences removed." })
    }
}

/// A Kubernetes object, named the way `kubectl` names it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// The reference to a Kubernetes object given as JSON (its `apiVersion`,
    /// `kind`, `metadata.namespace` and `metadata.name`; absent ones empty).
    pub fn of(obj: &serde_json::Value) -> ObjectRef {
        let s = |p: &str| obj.pointer(p).and_then(serde_json::Value::as_str);
        ObjectRef {
            api_version: s("/apiVersion").unwrap_or_default().to_string(),
            kind: s("/kind").unwrap_or_default().to_string(),
            namespace: s("/metadata/namespace").map(str::to_string),
            name: s("/metadata/name").unwrap_or_default().to_string(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Where something was seen: in the cluster, in a file of the GitOps
/// checkout, or on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "from", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Location {
    Cluster {
        object: ObjectRef,
        /// The field read, e.g. `status.history[0].chartVersion`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
    Gitops {
        /// Path relative to the checkout's root.
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        object: Option<ObjectRef>,
    },
    Flag {
        flag: String,
    },
    Upstream {
        url: String,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Cluster { object, field } => match field {
                Some(field) => write!(f, "{object} ({field})"),
                None => write!(f, "{object}"),
            },
            Location::Gitops { path, line, .. } => match line {
                Some(l) => write!(f, "{path}:{l}"),
                None => write!(f, "{path}"),
            },
            Location::Flag { flag } => write!(f, "{flag}"),
            Location::Upstream { url } => write!(f, "{url}"),
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    /// Stops an update (or a hop) from being applied until resolved.
    Blocking,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Blocking => "blocking",
        }
    }
}

/// Something the operator should know, with a stable code for machines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Finding {
    pub severity: Severity,
    /// Stable, kebab-case, e.g. `mixed-versions`, `removed-api`.
    pub code: String,
    pub message: SafeText,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
}

/// A failure that kept a tool from finishing part of its work; the document
/// is still written so a pipeline degrades instead of breaking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DocError {
    /// What failed: `upstream`, `cluster`, `gitops`, ...
    pub source: String,
    pub message: SafeText,
    /// The upstream or file involved (tokens redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_escapes_and_controls() {
        let hostile = "ok\u{1b}[31mred\u{1b}[0m \u{1b}]0;title\u{7}done\u{9b}2J\r\nnext\tcol\u{1b}]8;;http://x\u{1b}\\link\u{202e}";
        assert_eq!(sanitize(hostile), "okred done\nnext\tcollink");
        assert!(!SafeText::new(hostile).as_str().contains('\u{1b}'));
    }

    #[test]
    fn deserialising_sanitises() {
        let t: SafeText = serde_json::from_str("\"a\\u001b[2Jb\"").unwrap();
        assert_eq!(t.as_str(), "ab");
    }

    #[test]
    fn excerpt_is_bounded() {
        let long = "word ".repeat(500);
        let e = SafeText::excerpt(&long, 100);
        assert!(e.as_str().chars().count() <= 100);
        assert!(e.as_str().ends_with('…'));
        assert_eq!(SafeText::excerpt("short", 100).as_str(), "short");
    }

    #[test]
    fn timestamps_round_trip() {
        let t: Timestamp = serde_json::from_str("\"2026-11-28T04:00:00Z\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-11-28T04:00:00Z\""
        );
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }
}
