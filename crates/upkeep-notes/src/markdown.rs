//! Just enough Markdown to read release notes: sections by heading, and
//! plain text out of a line (links, emphasis, code marks and quote markers
//! dropped) for excerpts.

use std::sync::LazyLock;

use regex::Regex;

/// A heading and the lines under it, up to the next heading of any level.
#[derive(Debug, Clone)]
pub(crate) struct Section<'a> {
    /// Heading text, cleaned; empty for the text before the first heading.
    pub heading: String,
    pub lines: Vec<&'a str>,
}

static LINK: LazyLock<Regex> = LazyLock::new(|| {
    // `[text](url)` and `![alt](url)`; text may itself hold brackets one level deep.
    Regex::new(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\([^)]*\)").expect("static regex")
});
static HTML_COMMENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)<!--.*?-->").expect("static regex"));
static SHORTCODE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{[%<].*?[%>]\}\}").expect("static regex"));
static ALERT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\[!(note|tip|important|warning|caution)\]").expect("static regex")
});

/// Removes Markdown decoration from one line: quote markers, list bullets,
/// links (keeping their text), emphasis, code ticks, HTML comments, Hugo
/// shortcodes and GitHub alert markers.
pub(crate) fn plain(line: &str) -> String {
    let mut s = line.trim();
    loop {
        let before = s;
        s = s.trim_start_matches('>').trim_start();
        for bullet in ["- ", "* ", "+ "] {
            if let Some(rest) = s.strip_prefix(bullet) {
                s = rest.trim_start();
            }
        }
        if s == before {
            break;
        }
    }
    let s = HTML_COMMENT.replace_all(s, "");
    let s = SHORTCODE.replace_all(&s, "");
    let s = ALERT.replace_all(&s, "");
    let s = LINK.replace_all(&s, "$1");
    let s = s.replace("**", "").replace("__", "").replace('`', "");
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The heading text of a line, when it is an ATX heading (`## Upgrade`) or a
/// line that is only bold text (`**Important Notes**`, `> **Breaking change**`),
/// which release notes use as headings too.
pub(crate) fn heading(line: &str) -> Option<String> {
    let t = line.trim();
    if let Some(rest) = t.strip_prefix('#') {
        let rest = rest.trim_start_matches('#');
        if rest.is_empty() || rest.starts_with(' ') {
            let text = plain(rest.trim().trim_end_matches('#'));
            return (!text.is_empty()).then_some(text);
        }
        return None;
    }
    // Docusaurus admonitions (`:::warning Upgrade Notice`), as in the k3s docs.
    if let Some(rest) = t.strip_prefix(":::") {
        let title = rest.split_once(' ').map(|(_, title)| plain(title));
        return title.filter(|t| !t.is_empty());
    }
    let inner = t.trim_start_matches('>').trim();
    let bold = inner
        .strip_prefix("**")
        .and_then(|r| r.trim_end_matches(':').strip_suffix("**"));
    match bold {
        Some(text) if !text.contains("**") && !text.is_empty() && text.len() <= 80 => {
            let text = plain(text);
            let text = text.trim_end_matches(':').trim().to_string();
            (!text.is_empty()).then_some(text)
        }
        _ => None,
    }
}

/// Splits notes into sections. Fenced code blocks are kept whole inside the
/// section they belong to, so a `# comment` in a YAML example is not a heading.
pub(crate) fn sections(text: &str) -> Vec<Section<'_>> {
    let mut out = vec![Section {
        heading: String::new(),
        lines: Vec::new(),
    }];
    let mut in_fence = false;
    for line in text.lines() {
        let t = line.trim_start_matches(['>', ' ']);
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
        }
        let h = if in_fence { None } else { heading(line) };
        match h {
            Some(h) => out.push(Section {
                heading: h,
                lines: Vec::new(),
            }),
            None => {
                if let Some(last) = out.last_mut() {
                    last.lines.push(line);
                }
            }
        }
    }
    out
}

/// The first paragraph of a section as plain text (lines up to the first
/// blank line after some text, code fences skipped).
pub(crate) fn first_paragraph(lines: &[&str]) -> String {
    let mut parts = Vec::new();
    let mut in_fence = false;
    for line in lines {
        let t = line.trim_start_matches(['>', ' ']);
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let p = plain(line);
        if p.is_empty() {
            if !parts.is_empty() {
                break;
            }
            continue;
        }
        parts.push(p);
    }
    parts.join(" ")
}

/// Rows of the pipe tables in `lines`, each as its cleaned cells; separator
/// rows (`|---|:--|`) are skipped.
pub(crate) fn table_rows(lines: &[&str]) -> Vec<Vec<String>> {
    lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| plain(c.trim()))
                .collect::<Vec<_>>()
        })
        .filter(|cells| {
            !cells
                .iter()
                .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_strips_decoration() {
        assert_eq!(
            plain(
                "* Bump quic-go for CVE-2023-49295 [(#9208)](https://github.com/k3s-io/k3s/pull/9208)"
            ),
            "Bump quic-go for CVE-2023-49295 (#9208)"
        );
        assert_eq!(
            plain("> **V2 Live Upgrade:** see `docs`"),
            "V2 Live Upgrade: see docs"
        );
        assert_eq!(plain("> [!WARNING]"), "");
        assert_eq!(plain("{{% alert color=\"info\" %}}"), "");
        assert_eq!(plain("<!-- v1.29.1+k3s2 -->"), "");
    }

    #[test]
    fn headings_atx_and_bold() {
        assert_eq!(
            heading("## Upgrade Notice").as_deref(),
            Some("Upgrade Notice")
        );
        assert_eq!(heading("### Bug ###").as_deref(), Some("Bug"));
        assert_eq!(
            heading("**Important Notes**").as_deref(),
            Some("Important Notes")
        );
        assert_eq!(
            heading("**Breaking changes**:").as_deref(),
            Some("Breaking changes")
        );
        assert_eq!(
            heading("> **Breaking change**").as_deref(),
            Some("Breaking change")
        );
        assert_eq!(heading("#hashtag"), None);
        assert_eq!(
            heading(":::warning Upgrade Notice").as_deref(),
            Some("Upgrade Notice")
        );
        assert_eq!(heading(":::"), None);
        assert_eq!(heading("**bold** and more text"), None);
    }

    #[test]
    fn fenced_comments_are_not_headings() {
        let s = sections("## A\n```yaml\n# not a heading\n```\n## B\nx\n");
        let names: Vec<_> = s.iter().map(|s| s.heading.as_str()).collect();
        assert_eq!(names, ["", "A", "B"]);
    }
}
