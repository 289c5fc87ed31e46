//! Label and field selectors in kubectl's syntax, for the file source (a live server applies
//! them itself).

use std::collections::BTreeMap;

use kube::core::ObjectMeta;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("unbalanced ')' in \"{s}\""));
                }
            }
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced '(' in \"{s}\""));
    }
    parts.push(&s[start..]);
    Ok(parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect())
}

fn check_key(key: &str, whole: &str) -> Result<String, String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_string())
    } else {
        Err(format!("invalid label key \"{key}\" in \"{whole}\""))
    }
}

fn set_values(rest: &str, whole: &str) -> Result<Vec<String>, String> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected a (value, ...) list in \"{whole}\""))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s)? {
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement::NotExists(check_key(key.trim(), part)?)
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(check_key(k.trim(), part)?, v.trim().to_string())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(check_key(k.trim(), part)?, v.trim().to_string())
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                Requirement::NotIn(check_key(k.trim(), part)?, set_values(rest, part)?)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                Requirement::In(check_key(k.trim(), part)?, set_values(rest, part)?)
            } else {
                Requirement::Exists(check_key(part, part)?)
            };
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k));
        self.0.iter().all(|r| match r {
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
            Requirement::Equals(k, v) => get(k) == Some(v),
            Requirement::NotEquals(k, v) => get(k) != Some(v),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.contains(x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(x)),
        })
    }
}

/// A field selector over `metadata.name` and `metadata.namespace` (what every kind supports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s)? {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!("expected field=value in \"{part}\""));
            };
            let field = field.trim();
            if !matches!(field, "metadata.name" | "metadata.namespace") {
                return Err(format!(
                    "field \"{field}\" is not supported from files (only metadata.name and metadata.namespace)"
                ));
            }
            reqs.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    pub fn matches(&self, meta: &ObjectMeta) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = match field.as_str() {
                "metadata.name" => meta.name.as_deref(),
                _ => meta.namespace.as_deref(),
            }
            .unwrap_or("");
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selectors_as_kubectl_reads_them() {
        let l = labels(&[("app", "web"), ("env", "prod"), ("tier", "front")]);
        let yes = [
            "app=web",
            "app==web,env=prod",
            "env!=staging",
            "tier",
            "!missing",
            "env in (prod, staging)",
            "env notin (staging),app",
            "app.kubernetes.io/name!=x",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches(Some(&l)), "{s}");
        }
        let no = [
            "app=api",
            "!app",
            "env in (staging)",
            "env notin (prod)",
            "missing",
        ];
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches(Some(&l)), "{s}");
        }
        assert!(LabelSelector::parse("!app").unwrap().matches(None));
        assert!(LabelSelector::parse("env in (prod").is_err());
        assert!(LabelSelector::parse("a b c").is_err());
    }

    #[test]
    fn field_selectors_on_name_and_namespace() {
        let meta = ObjectMeta {
            name: Some("a".into()),
            namespace: Some("apps".into()),
            ..Default::default()
        };
        assert!(
            FieldSelector::parse("metadata.name=a")
                .unwrap()
                .matches(&meta)
        );
        assert!(
            FieldSelector::parse("metadata.namespace!=kube-system,metadata.name==a")
                .unwrap()
                .matches(&meta)
        );
        assert!(
            !FieldSelector::parse("metadata.name=b")
                .unwrap()
                .matches(&meta)
        );
        assert!(FieldSelector::parse("status.phase=Running").is_err());
    }
}
