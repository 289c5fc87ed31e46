//! The report as markdown (for a wiki, an issue, or `less`).

use std::fmt::Write;

use super::{Report, human_duration, percent};

/// Table cells cannot hold `|` or line breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn opt_rate(r: Option<f64>) -> String {
    r.map(percent).unwrap_or_else(|| "n/a".into())
}

pub fn render_markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# upkeep report: {}\n", r.period);
    let _ = writeln!(o, "| figure | value |\n|---|---|");
    let _ = writeln!(o, "| runs | {} |", r.runs);
    for (status, n) in &r.runs_by_status {
        let _ = writeln!(o, "| runs {status} | {n} |");
    }
    let _ = writeln!(o, "| run success rate | {} |", opt_rate(r.run_success_rate));
    let _ = writeln!(o, "| steps attempted | {} |", r.steps_attempted);
    let _ = writeln!(o, "| steps completed | {} |", r.steps_completed);
    let _ = writeln!(o, "| steps rolled back | {} |", r.steps_rolled_back);
    let _ = writeln!(o, "| steps failed | {} |", r.steps_failed);
    let _ = writeln!(
        o,
        "| step success rate | {} |",
        opt_rate(r.step_success_rate)
    );
    let _ = writeln!(
        o,
        "| mean run duration | {} |",
        r.mean_run_seconds
            .map(|s| format!(
                "{} (over {} finished runs)",
                human_duration(s),
                r.runs_timed
            ))
            .unwrap_or_else(|| "n/a".into())
    );
    let _ = writeln!(
        o,
        "| mean time from release to applied | {} |",
        match &r.release_to_applied {
            Some(l) => format!(
                "{:.1} days (longest {:.1}, over {} updates)",
                l.mean_days,
                l.max_days,
                l.updates.len()
            ),
            None => "n/a".into(),
        }
    );
    if let Some(n) = &r.release_to_applied_note {
        let _ = writeln!(o, "\nRelease to applied: {n}.");
    }

    let _ = writeln!(o, "\n## Updates applied per component\n");
    if r.applied.is_empty() {
        let _ = writeln!(o, "None.");
    } else {
        let _ = writeln!(
            o,
            "| component | kind | updates | versions |\n|---|---|---|---|"
        );
        for a in &r.applied {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                cell(&a.component),
                a.kind,
                a.count,
                cell(&a.updates.join(", "))
            );
        }
    }

    let _ = writeln!(o, "\n## Rollbacks\n");
    if r.rollbacks.is_empty() {
        let _ = writeln!(o, "None.");
    } else {
        let _ = writeln!(
            o,
            "| run | component | update | cause | revert commit |\n|---|---|---|---|---|"
        );
        for b in &r.rollbacks {
            let _ = writeln!(
                o,
                "| {} | {} | {} → {} | {} | {} |",
                cell(&b.run_id),
                cell(&b.component),
                b.from,
                b.to,
                cell(&b.cause),
                b.revert_commit.as_deref().unwrap_or("-")
            );
        }
    }

    let _ = writeln!(o, "\n## Failures by cause\n");
    if r.failures.is_empty() {
        let _ = writeln!(o, "None.");
    }
    for g in &r.failures {
        let _ = writeln!(o, "### {} ({})\n", cell(&g.cause), g.count);
        let _ = writeln!(
            o,
            "| run | component | update | status | error | resolution |\n|---|---|---|---|---|---|"
        );
        for f in &g.failures {
            let _ = writeln!(
                o,
                "| {} | {} | {} → {} | {} | {} | {} |",
                cell(&f.run_id),
                cell(&f.component),
                f.from,
                f.to,
                f.status,
                cell(&f.error),
                cell(&f.resolution)
            );
        }
        o.push('\n');
    }

    let _ = writeln!(o, "\n## Release to applied\n");
    match &r.release_to_applied {
        Some(l) => {
            let _ = writeln!(
                o,
                "| component | version | released | applied | days |\n|---|---|---|---|---|"
            );
            for u in &l.updates {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {:.1} |",
                    cell(&u.component),
                    u.version,
                    u.released,
                    u.applied,
                    u.days
                );
            }
        }
        None => {
            let _ = writeln!(o, "Not known.");
        }
    }

    let _ = writeln!(o, "\n## Falling behind\n");
    match &r.behind {
        Some(b) if b.is_empty() => {
            let _ = writeln!(
                o,
                "None: every component upkeep applied is at the newest version."
            );
        }
        Some(b) => {
            let _ = writeln!(o, "| component | applied | newest |\n|---|---|---|");
            for x in b {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} |",
                    cell(&x.component),
                    x.applied,
                    x.newest
                );
            }
        }
        None => {
            let _ = writeln!(o, "Not known.");
        }
    }
    if let Some(n) = &r.behind_note {
        let _ = writeln!(o, "\n({n})");
    }
    if !r.notes.is_empty() {
        let _ = writeln!(o, "\n## Notes\n");
        for n in &r.notes {
            let _ = writeln!(o, "- {}", cell(n));
        }
    }
    o
}
