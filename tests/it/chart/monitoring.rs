//! The chart's alert rules and Grafana dashboard, checked with a real promtool: the rules
//! as `helm template` renders them pass `promtool check rules` and their unit tests
//! (`alerts_test.yaml`); every dashboard query is valid PromQL; every metric either
//! reads is one the operator serves; every runbook link is a section of the operations
//! page.

use std::{collections::BTreeSet, path::PathBuf, process::Command, time::Duration};

use serde_json::Value as Json;
use serde_yaml_ng::Value;

use super::{chart, render::render};
use crate::harness::{go_tool, process};

/// The one object `template` renders with `values` (`--set-json`: `--set` makes 0.9 a
/// string) into roster-system.
fn rendered(template: &str, values: &[&str]) -> Value {
    let mut args = vec!["--show-only", template];
    for v in values {
        args.extend(["--set-json", v]);
    }
    let mut docs = render(None, &args);
    assert_eq!(docs.len(), 1, "{template} renders one object");
    docs.remove(0)
}

/// The chart's rules as a Prometheus rule file (the PrometheusRule's `spec`).
fn rule_file(values: &[&str]) -> String {
    let mut all = vec!["metrics.prometheusRule.enabled=true"];
    all.extend(values);
    let rule = rendered("templates/prometheusrule.yaml", &all);
    serde_yaml_ng::to_string(&rule["spec"]).expect("yaml")
}

/// `promtool ARGS…` in `dir`; panics with its output unless it succeeds.
fn promtool(dir: &PathBuf, args: &[&str]) -> String {
    let out = Command::new(go_tool("promtool"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {}:\n{text}", args.join(" "));
    text
}

/// Every sample name `/metrics` can carry: gauges as named, counters with `_total`,
/// histograms with `_bucket`, `_sum` and `_count`. A family is served once it has a
/// sample, so every one is given one first; a metric added to the operator and queried
/// before it is added here fails as not served.
fn served() -> BTreeSet<String> {
    use roster::governance::{Accuracy, ConnectorHealth, Figures};
    let m = roster::telemetry::Metrics::new();
    let mut f = Figures::default();
    f.accuracy.insert("ns/c".into(), Accuracy::default());
    f.accuracy.insert(
        "ns/d".into(),
        Accuracy {
            in_sync: 1,
            drifted: 0,
            failing: 0,
        },
    );
    f.exceptions.insert("conflict".into(), 1);
    f.connectors
        .insert("ns/c".into(), ConnectorHealth::default());
    f.deprovisioning.pending = 1;
    m.set_governance(&f);
    m.lane("general");
    m.observe_reconcile("Identity", Duration::ZERO, true);
    m.observe_status_write("Identity");
    m.observe_leaver_wave("ns/c");
    m.observe_breaker_trip("ns/c", "removals");
    m.observe_downstream_change("ns/c", "Revoked", true);
    m.observe_downstream_request("ns/c", "observe", "ok", Duration::ZERO);
    m.observe_leaver_verified("ns/c", 1.0);
    let text = m.encode().expect("encode");
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').expect("a TYPE line");
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// The `roster_…` metric names in a PromQL expression.
fn metrics_in(expr: &str) -> Vec<&str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("roster_"))
        .collect()
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = process::temp_dir("roster-alerts-");
    std::fs::write(dir.join("rules.yaml"), rule_file(&[])).expect("write rules");
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/chart/alerts_test.yaml");
    std::fs::copy(tests, dir.join("alerts_test.yaml")).expect("copy the rule tests");
    let checked = promtool(&dir, &["check", "rules", "rules.yaml"]);
    assert!(checked.contains("SUCCESS: 6 rules found"), "{checked}");
    let tested = promtool(&dir, &["test", "rules", "alerts_test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn the_thresholds_come_from_the_values() {
    let rules = rule_file(&[
        "metrics.prometheusRule.leaverPendingSeconds=60",
        "metrics.prometheusRule.accuracyBelow=0.9",
        r#"metrics.prometheusRule.exceptionsFor="2h""#,
    ]);
    for part in [
        "roster_leaver_oldest_pending_seconds{namespace=\"roster-system\"}) > 60",
        "roster_entitlement_accuracy_ratio{namespace=\"roster-system\"}) < 0.9",
        "for: 2h",
    ] {
        assert!(rules.contains(part), "{part} missing from\n{rules}");
    }
}

#[test]
fn the_alerts_read_only_served_metrics_and_link_to_sections_of_the_operations_page() {
    let served = served();
    let rules: Value = serde_yaml_ng::from_str(&rule_file(&[
        r#"metrics.prometheusRule.runbookBase="https://docs.example.com/operations.md""#,
    ]))
    .expect("rules");
    let ops = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"),
    )
    .expect("docs/operations.md");
    let anchors: BTreeSet<String> = ops
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(anchor)
        .collect();
    let alerts = rules["groups"][0]["rules"].as_sequence().expect("rules");
    for rule in alerts {
        let name = rule["alert"].as_str().expect("an alert");
        for metric in metrics_in(rule["expr"].as_str().expect("expr")) {
            assert!(served.contains(metric), "{name} reads {metric}, not served");
        }
        let url = rule["annotations"]["runbook_url"].as_str().expect("url");
        let section = url.split_once('#').map(|(_, a)| a).unwrap_or_default();
        assert!(
            anchors.contains(section),
            "{name} links to #{section}, not a section of docs/operations.md: {anchors:?}"
        );
    }
}

/// The anchor GitHub gives a heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_dashboard_query_is_valid_promql_over_served_metrics() {
    let path = chart().join("files/dashboard.json");
    let dashboard: Json =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("JSON");
    let served = served();
    let mut records = Vec::new();
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let id = panel["id"].as_u64().expect("a panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            let used = metrics_in(expr);
            assert!(
                !used.is_empty(),
                "panel {id} reads no Roster metric: {expr}"
            );
            for metric in used {
                assert!(
                    served.contains(metric),
                    "panel {id} reads {metric}, not served"
                );
            }
            // Grafana's variables, as Grafana fills them in.
            let promql = expr
                .replace("$namespace", ".*")
                .replace("$__rate_interval", "2m")
                .replace("$__range", "6h");
            records.push(serde_json::json!({
                "record": format!("dashboard:panel_{id}_{}", target["refId"].as_str().unwrap_or("A")),
                "expr": promql,
            }));
        }
    }
    assert!(records.len() >= 20, "{} queries", records.len());
    let dir = process::temp_dir("roster-dashboard-");
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": records}]});
    std::fs::write(dir.join("queries.yaml"), file.to_string()).expect("write queries");
    promtool(&dir, &["check", "rules", "--lint=none", "queries.yaml"]);
}
