//! deploy/monitoring/: the alerting rules pass `promtool check rules` and
//! their unit tests (`promtool test rules`), the PrometheusRule holds the
//! same rules, and every query of the rules and of the Grafana dashboard
//! parses and uses only metrics upkeep exports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/monitoring")
}

/// promtool, from Debian's `prometheus` (scripts/install-test-deps.sh).
fn promtool(dir: &Path, args: &[&str]) -> Output {
    Command::new("promtool")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("promtool (Debian package prometheus; run scripts/install-test-deps.sh)")
}

fn ok(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool failed:\n{text}");
    text
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const ALERTS: &[&str] = &[
    "UpkeepRunFailed",
    "UpkeepRunRolledBack",
    "UpkeepSecurityUpdatePending",
    "UpkeepNoSuccessfulRun",
];

fn rules(doc: &Value) -> Vec<&Value> {
    doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect()
}

#[test]
fn the_rules_pass_promtool_check() {
    let text = ok(&promtool(&monitoring(), &["check", "rules", "rules.yaml"]));
    let doc = yaml(&monitoring().join("rules.yaml"));
    let names: Vec<&str> = rules(&doc)
        .iter()
        .filter_map(|r| r["alert"].as_str())
        .collect();
    for a in ALERTS {
        assert!(names.contains(a), "{a} missing from rules.yaml");
    }
    assert!(
        text.contains(&format!("SUCCESS: {} rules found", names.len())),
        "{text}"
    );
}

#[test]
fn the_rules_unit_tests_pass_and_cover_each_alert_firing_and_not() {
    let dir = monitoring();
    let tests: Vec<PathBuf> = std::fs::read_dir(dir.join("tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    assert!(!tests.is_empty());
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for t in &tests {
        let rel = t.strip_prefix(&dir).unwrap().to_str().unwrap();
        let text = ok(&promtool(&dir, &["test", "rules", rel]));
        assert!(text.contains("SUCCESS"), "{text}");
        for case in yaml(t)["tests"].as_array().unwrap() {
            for a in case["alert_rule_test"].as_array().into_iter().flatten() {
                let name = a["alertname"].as_str().unwrap().to_string();
                match a["exp_alerts"].as_array().map(Vec::len) {
                    Some(0) | None => silent.insert(name),
                    Some(_) => firing.insert(name),
                };
            }
        }
    }
    let alerts: Vec<String> = rules(&yaml(&dir.join("rules.yaml")))
        .iter()
        .filter_map(|r| r["alert"].as_str().map(str::to_string))
        .collect();
    for a in &alerts {
        assert!(firing.contains(a), "no test where {a} fires");
        assert!(silent.contains(a), "no test where {a} stays silent");
    }
}

#[test]
fn the_prometheus_rule_holds_the_same_rules_and_passes_promtool() {
    let pr = yaml(&monitoring().join("prometheus-rule.yaml"));
    assert_eq!(pr["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(pr["kind"], "PrometheusRule");
    assert!(pr["metadata"]["name"].is_string());
    let plain = yaml(&monitoring().join("rules.yaml"));
    assert_eq!(
        pr["spec"]["groups"], plain["groups"],
        "rules.yaml and prometheus-rule.yaml differ"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("spec.yaml"),
        serde_json::to_string(&pr["spec"]).unwrap(),
    )
    .unwrap();
    ok(&promtool(dir.path(), &["check", "rules", "spec.yaml"]));
}

/// The metric names a PromQL expression reads: identifiers that are not
/// functions, keywords, label names (in `{}` or a `by (...)` list),
/// strings, numbers or durations.
fn metric_names(expr: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
        "atan2",
        // Aggregations, which a `by (...)` can separate from their `(`.
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    const LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let mut skip_list = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '{' || c == '[' {
            let close = if c == '{' { '}' } else { ']' };
            while i < chars.len() && chars[i] != close {
                if chars[i] == '"' {
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        if chars[i] == '\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                }
                i += 1;
            }
            i += 1;
        } else if c == '(' && skip_list {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            i += 1;
            skip_list = false;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number or a duration (7d, 1h30m, 1e3, 0x1f).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c == '$' {
            // A Grafana variable ($__range, ${datasource}).
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_{}".contains(chars[i]))
            {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let is_call = chars.get(j) == Some(&'(');
            let lower = word.to_ascii_lowercase();
            if LISTS.contains(&lower.as_str()) {
                skip_list = true;
            } else if !is_call && !KEYWORDS.contains(&lower.as_str()) {
                names.push(word);
            }
        } else {
            if !c.is_whitespace() {
                skip_list = false;
            }
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.9, sum by (le, kind) (rate(upkeep_a_bucket{job=~\"x|y\",le!=\"1\"}[5m]))) > 7 * 86400"
        ),
        ["upkeep_a_bucket"]
    );
    assert_eq!(
        metric_names(
            "time() - upkeep_b > 7 * 86400 or (time() - upkeep_c unless on (instance) upkeep_d)"
        ),
        ["upkeep_b", "upkeep_c", "upkeep_d"]
    );
    assert_eq!(
        metric_names("sum without (instance) (node_textfile_mtime_seconds offset 1h) / $__range_s"),
        ["node_textfile_mtime_seconds"]
    );
    assert_eq!(metric_names("up == bool 1"), ["up"]);
    assert_eq!(
        metric_names("sum by (status) (upkeep_runs_total) / count without (a) (upkeep_x)"),
        ["upkeep_runs_total", "upkeep_x"]
    );
}

fn dashboard() -> Value {
    let path = monitoring().join("grafana-dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: not valid JSON: {e}", path.display()))
}

fn panels(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in v["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(panels(p));
    }
    out
}

fn dashboard_exprs(d: &Value) -> Vec<String> {
    let mut exprs: Vec<String> = panels(d)
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    // Variables backed by a query (label_values(metric, label)) read metrics too.
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = v["query"]
                .as_str()
                .or_else(|| v["query"]["query"].as_str())
                .unwrap_or("");
            exprs.push(q.to_string());
        }
    }
    exprs
}

#[test]
fn the_dashboard_is_a_valid_grafana_dashboard() {
    let d = dashboard();
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(d["uid"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(d["schemaVersion"].as_u64().is_some());
    let all = panels(&d);
    assert!(all.len() >= 10, "{} panels", all.len());
    let mut ids = BTreeSet::new();
    for p in &all {
        let title = p["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate id at {title}"
        );
        assert!(p["type"].is_string(), "{title}: type");
        let g = &p["gridPos"];
        let (x, w, h) = (
            g["x"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24 && w > 0 && h > 0, "{title}: gridPos {g}");
        if p["type"] != "row" {
            let targets = p["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{title}: no targets"));
            assert!(!targets.is_empty(), "{title}: no targets");
            for t in targets {
                assert!(t["refId"].is_string(), "{title}: refId");
                assert!(
                    t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                    "{title}: expr"
                );
                // The datasource is the dashboard's variable, so it imports anywhere.
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            }
        }
    }
    assert!(
        d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "datasource" && v["type"] == "datasource"),
        "a datasource variable"
    );
}

#[test]
fn dashboard_and_rule_queries_parse_and_use_only_exported_metrics() {
    let known = upkeep_metrics::series_names();
    let d = dashboard();
    let mut exprs = dashboard_exprs(&d);
    assert!(exprs.len() >= 10);
    let n_dashboard = exprs.len();
    for r in rules(&yaml(&monitoring().join("rules.yaml"))) {
        exprs.push(r["expr"].as_str().unwrap().to_string());
    }
    let mut used = BTreeSet::new();
    for e in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "{e:?} reads no metric");
        for n in names {
            assert!(
                known.contains(&n),
                "{n} (in {e:?}) is not a metric upkeep exports"
            );
            used.insert(n);
        }
    }
    // The dashboard shows every family but the per-kind histogram buckets.
    for family in upkeep_metrics::DEFS {
        assert!(
            used.iter().any(|u| u.starts_with(family.name)),
            "{} is exported but no panel or rule shows it",
            family.name
        );
    }
    // Every dashboard query parses: promtool checks them as recording rules.
    let dir = tempfile::tempdir().unwrap();
    let rules: Vec<Value> = exprs[..n_dashboard]
        .iter()
        .enumerate()
        .map(|(i, e)| serde_json::json!({"record": format!("dashboard:query:{i}"), "expr": e}))
        .collect();
    std::fs::write(
        dir.path().join("dashboard.yaml"),
        serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string(),
    )
    .unwrap();
    let text = ok(&promtool(dir.path(), &["check", "rules", "dashboard.yaml"]));
    assert!(
        text.contains(&format!("SUCCESS: {n_dashboard} rules found")),
        "{text}"
    );
}
