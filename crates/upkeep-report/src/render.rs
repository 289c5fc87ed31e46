//! Text and markdown views of an `UpdateReport`. Every string that came
//! from a document goes through `sanitize` again, so whatever a document
//! holds, the terminal only ever receives printable text.

use std::fmt::Write;

use comfy_table::{Table, presets};
use upkeep_contract::{ComponentKind, ComponentUpdates, UpdateReport, Version, sanitize};

fn name(c: &ComponentUpdates) -> String {
    let base = sanitize(&c.component.to_string());
    match c.component.kind {
        ComponentKind::Chart => base,
        k if base == k.as_str() => base,
        k => format!("{base} ({k})"),
    }
}

/// The version the component would move to first.
fn next(c: &ComponentUpdates) -> Option<&Version> {
    if let Some(hop) = c.path.first() {
        return Some(&hop.to);
    }
    let current = c.current.as_ref().map(|cur| &cur.version);
    c.latest_allowed
        .as_ref()
        .filter(|v| current.is_none_or(|cur| *v > cur))
}

fn attention(c: &ComponentUpdates) -> Vec<&'static str> {
    let mut a = Vec::new();
    if c.has_security() {
        a.push("security");
    }
    if c.has_breaking() {
        a.push("breaking");
    }
    if c.has_blocking() {
        a.push("blocked");
    }
    if !c.errors.is_empty() {
        a.push("error");
    }
    let beyond = match (&c.latest, &c.latest_allowed) {
        (Some(l), Some(a)) => l > a,
        (Some(_), None) => c
            .current
            .as_ref()
            .is_some_and(|cur| cur.constraint.is_some()),
        _ => false,
    };
    if beyond {
        a.push("needs git change");
    }
    a
}

fn opt(v: Option<&Version>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".to_string())
}

fn summary_line(r: &UpdateReport) -> String {
    let s = &r.summary;
    let mut line = format!(
        "{} components, {} with updates ({} patch, {} minor, {} major); {} security, {} breaking, {} blocked, {} with errors",
        s.components,
        s.with_updates,
        s.patch,
        s.minor,
        s.major,
        s.security,
        s.breaking,
        s.blocked,
        s.errors
    );
    // Stale input looks current unless its age is said.
    if let Some(oldest) = r.components.iter().map(|c| c.checked_at).min() {
        line.push_str(&format!("; oldest check {oldest}"));
    }
    line
}

/// One line, whatever the text held: continuation lines would land under
/// the wrong component.
fn flat(s: &str) -> String {
    sanitize(s).split_whitespace().collect::<Vec<_>>().join(" ")
}

const HEADER: [&str; 6] = [
    "COMPONENT",
    "CURRENT",
    "NEXT",
    "LATEST",
    "BIGGEST",
    "ATTENTION",
];

fn table(r: &UpdateReport, preset: &str) -> Table {
    let mut t = Table::new();
    t.load_preset(preset);
    // BIGGEST is the largest update on offer; NEXT is only the first step.
    t.set_header(HEADER.to_vec());
    for row in rows(r) {
        t.add_row(row);
    }
    t
}

fn rows(r: &UpdateReport) -> Vec<Vec<String>> {
    r.components
        .iter()
        .map(|c| {
            vec![
                flat(&name(c)),
                opt(c.current.as_ref().map(|c| &c.version)),
                opt(next(c)),
                opt(c.latest.as_ref()),
                c.biggest_update()
                    .map(|u| u.to_string())
                    .unwrap_or_else(|| "-".to_string()),
                attention(c).join(", "),
            ]
        })
        .collect()
}

/// The markdown table, with `|` escaped in every cell (a pipe in a name
/// would otherwise split the row).
fn table_escaped(r: &UpdateReport) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::ASCII_MARKDOWN);
    t.set_header(HEADER.to_vec());
    for row in rows(r) {
        t.add_row(
            row.into_iter()
                .map(|c| c.replace('|', "\\|"))
                .collect::<Vec<_>>(),
        );
    }
    t
}

/// The details worth reading under the table: paths, security ids,
/// breaking reasons, blockers, findings, errors. One item per line.
fn details(c: &ComponentUpdates) -> Vec<String> {
    let mut out = Vec::new();
    if c.path.len() > 1 {
        let mut hops = vec![opt(c.current.as_ref().map(|c| &c.version))];
        hops.extend(c.path.iter().map(|h| h.to.to_string()));
        out.push(format!("path: {}", hops.join(" -> ")));
    }
    for cand in &c.candidates {
        if let Some(sec) = &cand.security {
            let ids = if sec.ids.is_empty() {
                "security fixes".to_string()
            } else {
                sec.ids
                    .iter()
                    .map(|i| sanitize(i))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let notes = cand
                .notes_url
                .as_deref()
                .map(|u| format!(" ({})", flat(u)))
                .unwrap_or_default();
            out.push(format!("{}: security: {ids}{notes}", cand.version));
        }
        if let Some(b) = &cand.breaking {
            for reason in &b.reasons {
                out.push(format!("{}: breaking: {reason}", cand.version));
            }
        }
        if let Some(k) = cand.requires.as_ref().and_then(|r| r.kubernetes.as_ref()) {
            out.push(format!("{}: needs Kubernetes {k}", cand.version));
        }
    }
    for hop in &c.path {
        for b in &hop.blockers {
            let at: Vec<String> = b
                .locations
                .iter()
                .map(|l| sanitize(&l.to_string()))
                .collect();
            let at = if at.is_empty() {
                String::new()
            } else {
                format!(" ({})", at.join(", "))
            };
            out.push(format!(
                "blocks {} -> {}: {}{at}",
                hop.from, hop.to, b.message
            ));
        }
    }
    for f in &c.findings {
        let at: Vec<String> = f
            .locations
            .iter()
            .map(|l| sanitize(&l.to_string()))
            .collect();
        let at = if at.is_empty() {
            String::new()
        } else {
            format!(" ({})", at.join(", "))
        };
        out.push(format!("{}: {}{at}", f.severity.as_str(), f.message));
    }
    for e in &c.errors {
        out.push(format!("error: {}: {}", sanitize(&e.source), e.message));
    }
    if attention(c).contains(&"needs git change")
        && let Some(at) = c
            .observed
            .iter()
            .find(|l| matches!(l, upkeep_contract::Location::Gitops { .. }))
    {
        out.push(format!("pinned at {at}"));
    }
    out.into_iter().map(|l| flat(&l)).collect()
}

/// Plain text for a terminal or a log.
pub fn render_text(r: &UpdateReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", summary_line(r));
    if r.components.is_empty() {
        return s;
    }
    let _ = writeln!(s);
    // comfy-table pads every cell; trailing blanks only get in the way of grep and diff.
    for line in table(r, presets::NOTHING).to_string().lines() {
        let _ = writeln!(s, "{}", line.trim_end());
    }
    let with_details: Vec<_> = r
        .components
        .iter()
        .map(|c| (name(c), details(c)))
        .filter(|(_, d)| !d.is_empty())
        .collect();
    if !with_details.is_empty() {
        let _ = writeln!(s);
        for (n, d) in with_details {
            let _ = writeln!(s, "{n}");
            for line in d {
                let _ = writeln!(s, "  - {line}");
            }
        }
    }
    s
}

/// Markdown for a PR description, an issue or a chat message.
pub fn render_markdown(r: &UpdateReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Updates");
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", summary_line(r));
    if r.components.is_empty() {
        return s;
    }
    let _ = writeln!(s);
    let t = table_escaped(r).to_string();
    let _ = writeln!(s, "{t}");
    for c in &r.components {
        let d = details(c);
        if d.is_empty() {
            continue;
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "### {}", name(c).replace('|', "\\|"));
        let _ = writeln!(s);
        for line in d {
            let _ = writeln!(s, "- {}", line.replace('|', "\\|"));
        }
    }
    s
}
