//! The report as one self-contained HTML page: inline CSS, inline SVG
//! charts, no scripts, nothing fetched (it is mailed, attached, opened
//! offline, and must not phone home).

use std::fmt::Write;

use super::{Bucket, ComponentApplied, Report, human_duration, percent};

const COMPLETED: &str = "#2e7d32";
const ROLLED_BACK: &str = "#ef6c00";
const FAILED: &str = "#c62828";

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1b1b1b;background:#fff;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
h3{font-size:1rem}.sub{color:#555;margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.6rem .9rem;min-width:9rem}
.card .v{font-size:1.4rem;font-weight:600}.card .k{color:#555;font-size:.85rem}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right}
.note{color:#555;font-size:.9rem}.legend span{display:inline-block;margin-right:1rem;font-size:.85rem}
.sw{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
svg text{font-family:inherit;font-size:11px;fill:#333}
";

pub fn render_html(r: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>upkeep report: {p}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>upkeep report</h1>\n<p class=\"sub\">{p}</p>\n",
        p = esc(&r.period)
    );
    let rate = |x: Option<f64>| x.map(percent).unwrap_or_else(|| "n/a".into());
    let cards = [
        ("runs", r.runs.to_string()),
        ("run success rate", rate(r.run_success_rate)),
        ("updates applied", r.steps_completed.to_string()),
        ("step success rate", rate(r.step_success_rate)),
        ("rollbacks", r.steps_rolled_back.to_string()),
        ("failed steps", r.steps_failed.to_string()),
        (
            "mean run duration",
            r.mean_run_seconds
                .map(human_duration)
                .unwrap_or_else(|| "n/a".into()),
        ),
        (
            "release to applied (mean)",
            r.release_to_applied
                .as_ref()
                .map(|l| format!("{:.1} days", l.mean_days))
                .unwrap_or_else(|| "n/a".into()),
        ),
    ];
    o.push_str("<div class=\"cards\">\n");
    for (k, v) in cards {
        let _ = writeln!(
            o,
            "<div class=\"card\"><div class=\"v\">{}</div><div class=\"k\">{}</div></div>",
            esc(&v),
            esc(k)
        );
    }
    o.push_str("</div>\n");
    if let Some(n) = &r.release_to_applied_note {
        let _ = writeln!(o, "<p class=\"note\">Release to applied: {}.</p>", esc(n));
    }

    o.push_str("<h2>Updates and outcomes over time</h2>\n");
    let _ = writeln!(
        o,
        "<p class=\"legend\"><span><i class=\"sw\" style=\"background:{COMPLETED}\"></i>completed</span>\
         <span><i class=\"sw\" style=\"background:{ROLLED_BACK}\"></i>rolled back</span>\
         <span><i class=\"sw\" style=\"background:{FAILED}\"></i>failed</span></p>"
    );
    o.push_str(&timeline_svg(&r.timeline));

    o.push_str("<h2>Updates applied per component</h2>\n");
    if r.applied.is_empty() {
        o.push_str("<p>None.</p>\n");
    } else {
        o.push_str(&components_svg(&r.applied));
        o.push_str(
            "<table><tr><th>component</th><th>kind</th><th>updates</th><th>versions</th></tr>\n",
        );
        for a in &r.applied {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&a.component),
                esc(&a.kind),
                a.count,
                esc(&a.updates.join(", "))
            );
        }
        o.push_str("</table>\n");
    }

    o.push_str("<h2>Rollbacks</h2>\n");
    if r.rollbacks.is_empty() {
        o.push_str("<p>None.</p>\n");
    } else {
        o.push_str("<table><tr><th>run</th><th>component</th><th>update</th><th>cause</th><th>revert commit</th></tr>\n");
        for b in &r.rollbacks {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td></tr>",
                esc(&b.run_id),
                esc(&b.component),
                esc(&b.from),
                esc(&b.to),
                esc(&b.cause),
                esc(b.revert_commit.as_deref().unwrap_or("-"))
            );
        }
        o.push_str("</table>\n");
    }

    o.push_str("<h2>Failures by cause</h2>\n");
    if r.failures.is_empty() {
        o.push_str("<p>None.</p>\n");
    }
    for g in &r.failures {
        let _ = writeln!(o, "<h3>{} ({})</h3>", esc(&g.cause), g.count);
        o.push_str("<table><tr><th>run</th><th>component</th><th>update</th><th>status</th><th>error</th><th>resolution</th></tr>\n");
        for f in &g.failures {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.run_id),
                esc(&f.component),
                esc(&f.from),
                esc(&f.to),
                esc(&f.status),
                esc(&f.error),
                esc(&f.resolution)
            );
        }
        o.push_str("</table>\n");
    }

    if let Some(l) = &r.release_to_applied {
        o.push_str("<h2>Release to applied</h2>\n<table><tr><th>component</th><th>version</th><th>released</th><th>applied</th><th>days</th></tr>\n");
        for u in &l.updates {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{:.1}</td></tr>",
                esc(&u.component),
                esc(&u.version),
                esc(&u.released),
                esc(&u.applied),
                u.days
            );
        }
        o.push_str("</table>\n");
    }

    o.push_str("<h2>Falling behind</h2>\n");
    match &r.behind {
        Some(b) if b.is_empty() => {
            o.push_str("<p>None: every component upkeep applied is at the newest version.</p>\n")
        }
        Some(b) => {
            o.push_str("<table><tr><th>component</th><th>applied</th><th>newest</th></tr>\n");
            for x in b {
                let _ = writeln!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&x.component),
                    esc(&x.applied),
                    esc(&x.newest)
                );
            }
            o.push_str("</table>\n");
        }
        None => o.push_str("<p>Not known.</p>\n"),
    }
    if let Some(n) = &r.behind_note {
        let _ = writeln!(o, "<p class=\"note\">{}</p>", esc(n));
    }
    if !r.notes.is_empty() {
        o.push_str("<h2>Notes</h2>\n<ul>\n");
        for n in &r.notes {
            let _ = writeln!(o, "<li>{}</li>", esc(n));
        }
        o.push_str("</ul>\n");
    }
    o.push_str("</body>\n</html>\n");
    o
}

/// Stacked bars of step outcomes per bucket, with a y axis in whole steps.
fn timeline_svg(buckets: &[Bucket]) -> String {
    let (w, h) = (1000.0_f64, 260.0_f64);
    let (left, right, top, bottom) = (40.0, 10.0, 10.0, 60.0);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"step outcomes over time\" \
         width=\"100%\" viewBox=\"0 0 {w} {h}\">"
    );
    if buckets.is_empty() {
        let _ = writeln!(
            o,
            "<text x=\"{}\" y=\"{}\">no runs</text></svg>",
            w / 2.0 - 20.0,
            h / 2.0
        );
        return o;
    }
    let max = buckets
        .iter()
        .map(|b| b.completed + b.rolled_back + b.failed)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let slot = plot_w / buckets.len() as f64;
    let bar = (slot * 0.7).max(1.0);
    // Axis and a few whole-number gridlines.
    let ticks = max.min(5.0) as usize;
    for i in 0..=ticks {
        let v = (max * i as f64 / ticks as f64).round();
        let y = top + plot_h - v / max * plot_h;
        let _ = writeln!(
            o,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e0e0e0\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            w - right,
            left - 4.0,
            y + 4.0
        );
    }
    let every = (buckets.len() / 15).max(1);
    for (i, b) in buckets.iter().enumerate() {
        let x = left + i as f64 * slot + (slot - bar) / 2.0;
        let mut y = top + plot_h;
        for (n, colour, what) in [
            (b.completed, COMPLETED, "completed"),
            (b.rolled_back, ROLLED_BACK, "rolled back"),
            (b.failed, FAILED, "failed"),
        ] {
            if n == 0 {
                continue;
            }
            let bh = n as f64 / max * plot_h;
            y -= bh;
            let _ = writeln!(
                o,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"{colour}\">\
                 <title>{}: {n} {what}</title></rect>",
                esc(&b.label)
            );
        }
        if i % every == 0 {
            let lx = x + bar / 2.0;
            let ly = top + plot_h + 12.0;
            let _ = writeln!(
                o,
                "<text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"end\" transform=\"rotate(-45 {lx:.1} {ly:.1})\">{}</text>",
                esc(&b.label)
            );
        }
    }
    let _ = writeln!(
        o,
        "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#888\"/></svg>",
        w - right,
        y = top + plot_h
    );
    o
}

/// Horizontal bars: updates applied per component.
fn components_svg(applied: &[ComponentApplied]) -> String {
    let row = 22.0_f64;
    let (label_w, w) = (260.0_f64, 1000.0_f64);
    let h = row * applied.len() as f64 + 10.0;
    let max = applied.iter().map(|a| a.count).max().unwrap_or(1).max(1) as f64;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"updates applied per component\" \
         width=\"100%\" viewBox=\"0 0 {w} {h}\">"
    );
    for (i, a) in applied.iter().enumerate() {
        let y = 5.0 + i as f64 * row;
        let bw = a.count as f64 / max * (w - label_w - 60.0);
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{label_w}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{COMPLETED}\"><title>{}: {}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            label_w - 6.0,
            y + 14.0,
            esc(&a.component),
            row - 6.0,
            esc(&a.component),
            a.count,
            label_w + bw + 6.0,
            y + 14.0,
            a.count
        );
    }
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere_it_lands() {
        assert_eq!(
            esc("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn the_timeline_stacks_each_outcome_in_proportion() {
        let svg = timeline_svg(&[
            Bucket {
                label: "2026-11-01".into(),
                completed: 2,
                rolled_back: 1,
                failed: 1,
            },
            Bucket {
                label: "2026-11-02".into(),
                completed: 0,
                rolled_back: 0,
                failed: 0,
            },
        ]);
        // Plot height 190 for a max of 4 steps: 2 completed = 95, 1 = 47.5.
        assert!(svg.contains("height=\"95.0\" fill=\"#2e7d32\""), "{svg}");
        assert_eq!(svg.matches("height=\"47.5\"").count(), 2, "{svg}");
        assert_eq!(svg.matches("<rect").count(), 3);
    }
}
