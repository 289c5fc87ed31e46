//! Minimal YAML edits: change one version string in place, nothing else.
//!
//! In a GitOps repository the diff of an update must be the version line and
//! only that: comments, key order, quoting and formatting stay as the
//! operator wrote them. So we never re-serialise a file. The scanner says on
//! which line a value sits; [`replace_scalar`] finds the `key: value` pair on
//! that line, checks the value is the one expected (a file changed since the
//! scan is refused, not clobbered), replaces exactly those bytes keeping the
//! quote style, and then proves the result: every document parses, and the
//! parsed documents differ from the original in exactly that one value.

use serde_json::Value;

/// Why an edit was refused. The file is never written when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("line {line}: no `{key}:` with a scalar value on that line")]
    KeyNotFound { line: usize, key: String },
    #[error(
        "line {line}: `{key}` is {found:?}, expected {expected:?} (the file changed since it was scanned?)"
    )]
    Unexpected {
        line: usize,
        key: String,
        expected: String,
        found: String,
    },
    #[error("the new value {0:?} cannot be written as a YAML scalar here")]
    BadValue(String),
    #[error("the edited file does not parse as YAML: {0}")]
    Unparseable(String),
    #[error("the edit would change {0} values, not exactly one; refusing")]
    NotMinimal(usize),
}

/// A scalar on one line: where its bytes are and how it is quoted.
struct Found {
    start: usize,
    end: usize,
    quote: Option<char>,
    text: String,
}

/// Finds `key: <scalar>` on `line_text` (block style or inside a flow
/// mapping). Returns byte offsets relative to the line.
fn find_on_line(line_text: &str, key: &str) -> Option<Found> {
    let bytes = line_text.as_bytes();
    let mut search = 0;
    while let Some(rel) = line_text[search..].find(key) {
        let k = search + rel;
        search = k + key.len();
        // The key must stand alone: start of line (after indent, `- `, `{` or
        // `,`) and be followed by `:`.
        let before_ok = line_text[..k].chars().next_back().is_none_or(|c| {
            c == ' ' || c == '\t' || c == '{' || c == ',' || c == '-' || c == '"' || c == '\''
        });
        let key_end = if k > 0 && matches!(bytes[k - 1], b'"' | b'\'') {
            // a quoted key: "version": 1.2.3
            let q = bytes[k - 1];
            if bytes.get(k + key.len()) != Some(&q) {
                continue;
            }
            k + key.len() + 1
        } else {
            k + key.len()
        };
        if !before_ok || bytes.get(key_end) != Some(&b':') {
            continue;
        }
        let mut v = key_end + 1;
        while v < bytes.len() && (bytes[v] == b' ' || bytes[v] == b'\t') {
            v += 1;
        }
        if v >= bytes.len() {
            return None;
        }
        return match bytes[v] {
            q @ (b'"' | b'\'') => {
                let close = line_text[v + 1..].find(q as char)? + v + 1;
                Some(Found {
                    start: v + 1,
                    end: close,
                    quote: Some(q as char),
                    text: line_text[v + 1..close].to_string(),
                })
            }
            b'#' | b'{' | b'[' | b'|' | b'>' | b'&' | b'*' | b'!' => None,
            _ => {
                // A plain scalar ends at ` #`, `,` or `}` (flow), or the line end.
                let rest = &line_text[v..];
                let mut end = rest.len();
                for (i, c) in rest.char_indices() {
                    if c == ',' || c == '}' || (c == '#' && rest[..i].ends_with([' ', '\t'])) {
                        end = i;
                        break;
                    }
                }
                let text = rest[..end].trim_end();
                Some(Found {
                    start: v,
                    end: v + text.len(),
                    quote: None,
                    text: text.to_string(),
                })
            }
        };
    }
    None
}

fn parse_all(text: &str) -> Result<Vec<Value>, EditError> {
    let mut out = Vec::new();
    // The scanner's splitter: edits are proved on the same documents the
    // scan found their line numbers in.
    for (_, doc) in upkeep_gitops::split_documents(text) {
        let v: Value = serde_saphyr::from_str(doc).map_err(|e| {
            EditError::Unparseable(
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })?;
        out.push(v);
    }
    Ok(out)
}

fn count_differences(a: &Value, b: &Value) -> usize {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut n = 0;
            for (k, va) in x {
                n += y.get(k).map_or(1, |vb| count_differences(va, vb));
            }
            n + y.keys().filter(|k| !x.contains_key(*k)).count()
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).map(|(p, q)| count_differences(p, q)).sum()
        }
        _ => usize::from(a != b),
    }
}

/// Replaces the value of `key` on 1-based `line` of `text`, which must be
/// `expected`, by `new`. Returns the new text; the caller writes it
/// (atomically). Quotes are kept; a plain scalar that would read as a number
/// or need quoting is refused rather than silently changing type.
pub fn replace_scalar(
    text: &str,
    line: usize,
    key: &str,
    expected: &str,
    new: &str,
) -> Result<String, EditError> {
    if new.is_empty()
        || new
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\'' || c == '#')
    {
        return Err(EditError::BadValue(new.to_string()));
    }
    let not_found = || EditError::KeyNotFound {
        line,
        key: key.to_string(),
    };
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let line_text = text[line_start..]
        .split_inclusive('\n')
        .next()
        .filter(|_| line >= 1)
        .ok_or_else(not_found)?;
    let line_text = line_text.trim_end_matches(['\n', '\r']);
    let found = find_on_line(line_text, key).ok_or_else(not_found)?;
    if found.text != expected {
        return Err(EditError::Unexpected {
            line,
            key: key.to_string(),
            expected: expected.to_string(),
            found: found.text,
        });
    }
    // A plain `4.13` would be read back as a number; `- x` as a list.
    if found.quote.is_none()
        && (new.parse::<f64>().is_ok()
            || new.contains(": ")
            || new.starts_with(['-', '{', '[', '*', '&', '!', '%', '@', '`']))
    {
        return Err(EditError::BadValue(new.to_string()));
    }
    let mut out = String::with_capacity(text.len() + new.len());
    out.push_str(&text[..line_start + found.start]);
    out.push_str(new);
    out.push_str(&text[line_start + found.end..]);

    // Prove the edit: same documents, exactly one value changed, to `new`.
    let before = parse_all(text)?;
    let after = parse_all(&out)?;
    if before.len() != after.len() {
        return Err(EditError::NotMinimal(before.len().abs_diff(after.len())));
    }
    let diffs: usize = before
        .iter()
        .zip(&after)
        .map(|(a, b)| count_differences(a, b))
        .sum();
    if diffs != 1 {
        return Err(EditError::NotMinimal(diffs));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HR: &str = "\
---
# ingress controller; pinned until the 4.13 notes are read
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: ingress-nginx   # keep
  namespace: networking
spec:
  interval: 30m
  chart:
    spec:
      chart: ingress-nginx
      version: 4.12.0 # renovate: ignore
      sourceRef: {kind: HelmRepository, name: ingress-nginx}
  values:
    controller:
      image:
        version: 4.12.0
";

    #[test]
    fn only_the_version_bytes_change() {
        let out = replace_scalar(HR, 13, "version", "4.12.0", "4.13.1").unwrap();
        let changed: Vec<(&str, &str)> = HR
            .lines()
            .zip(out.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(
            changed,
            [(
                "      version: 4.12.0 # renovate: ignore",
                "      version: 4.13.1 # renovate: ignore"
            )]
        );
        assert_eq!(HR.len(), out.len());
    }

    #[test]
    fn quotes_and_flow_style_are_kept() {
        let y = "spec:\n  chart: {spec: {chart: x, version: \"1.2.3\"}}\n";
        let out = replace_scalar(y, 2, "version", "1.2.3", "1.3.0").unwrap();
        assert_eq!(
            out,
            "spec:\n  chart: {spec: {chart: x, version: \"1.3.0\"}}\n"
        );
        let y = "spec:\n  ref:\n    semver: '>=1.0.0 <2.0.0'\n";
        let out = replace_scalar(y, 3, "semver", ">=1.0.0 <2.0.0", ">=2.0.0 <3.0.0").unwrap();
        assert_eq!(out, "spec:\n  ref:\n    semver: '>=2.0.0 <3.0.0'\n");
    }

    #[test]
    fn stale_line_information_is_refused() {
        let e = replace_scalar(HR, 13, "version", "4.11.0", "4.13.1").unwrap_err();
        assert!(matches!(e, EditError::Unexpected { .. }), "{e}");
        assert!(
            e.to_string().contains("is \"4.12.0\", expected \"4.11.0\""),
            "{e}"
        );
        let e = replace_scalar(HR, 12, "version", "4.12.0", "4.13.1").unwrap_err();
        assert!(matches!(e, EditError::KeyNotFound { .. }), "{e}");
        let e = replace_scalar(HR, 999, "version", "4.12.0", "4.13.1").unwrap_err();
        assert!(matches!(e, EditError::KeyNotFound { .. }), "{e}");
        // `appVersion:` must not match `version`
        let y = "appVersion: 1.0.0\n";
        assert!(replace_scalar(y, 1, "version", "1.0.0", "2.0.0").is_err());
    }

    #[test]
    fn values_that_would_change_type_or_structure_are_refused() {
        for bad in ["", "1.0 # x", "a: b", "-1", "x\ny", "\"q\"", "4.13"] {
            assert!(
                replace_scalar(HR, 13, "version", "4.12.0", bad).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn multi_document_files_keep_every_document() {
        let y = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\nspec:\n  version: 1.0.0\n---\nspec:\n  version: 1.0.0\n";
        let out = replace_scalar(y, 10, "version", "1.0.0", "1.1.0").unwrap();
        assert_eq!(out.matches("version: 1.0.0").count(), 1);
        assert!(out.ends_with("spec:\n  version: 1.1.0\n"));
    }
}
