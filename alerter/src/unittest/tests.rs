//! Whole test files run against rule files in a scratch directory: what passes, and what each
//! kind of failure reports.

use super::*;

const RULES: &str = r#"
groups:
  - name: example
    rules:
      - alert: InstanceDown
        expr: up == 0
        for: 5m
        labels:
          severity: page
        annotations:
          summary: "Instance {{ $labels.instance }} down"
          where: "{{ $externalLabels.region }} {{ $externalURL }}"
      - record: job:up:sum
        expr: sum by (job) (up)
  - name: second
    rules:
      - record: job:up:sum_doubled
        expr: job:up:sum * 2
"#;

/// Runs `test` (a test file) next to `rules.yml` holding `rules`.
fn run(rules: &str, test: &str) -> FileReport {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rules.yml"), rules).expect("write rules");
    let path = dir.path().join("test.yml");
    std::fs::write(&path, test).expect("write test");
    run_file(&path)
}

fn test_file(alert_tests: &str, expr_tests: &str) -> String {
    format!(
        r#"
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    external_labels: {{ region: eu }}
    external_url: https://vigil.example.com
    input_series:
      - series: 'up{{job="prometheus", instance="localhost:9090"}}'
        values: '0x14'
      - series: 'up{{job="node", instance="localhost:9100"}}'
        values: '1x6 0x7'
    alert_rule_test:
{alert_tests}
    promql_expr_test:
{expr_tests}
"#
    )
}

const GOOD_ALERTS: &str = r#"
      - eval_time: 4m
        alertname: InstanceDown
      - eval_time: 10m
        alertname: InstanceDown
        exp_alerts:
          - exp_labels: { severity: page, instance: "localhost:9090", job: prometheus }
            exp_annotations:
              summary: "Instance localhost:9090 down"
              where: "eu https://vigil.example.com"
"#;

const GOOD_EXPRS: &str = r#"
      - expr: job:up:sum
        eval_time: 4m
        exp_samples:
          - labels: 'job:up:sum{job="node"}'
            value: 1
          - labels: '{__name__="job:up:sum", job="prometheus"}'
            value: 0
      - expr: sum(job:up:sum_doubled)
        eval_time: 4m
        exp_samples:
          - labels: '{}'
            value: 2
"#;

#[test]
fn a_good_file_passes() {
    let report = run(RULES, &test_file(GOOD_ALERTS, GOOD_EXPRS));
    assert!(report.passed(), "{:#?}", report.failures);
    assert!(report.warnings.is_empty());
}

#[test]
fn wrong_labels_and_a_silent_alert_fail_with_both_lists() {
    let wrong = GOOD_ALERTS.replace("job: prometheus", "job: node");
    let report = run(RULES, &test_file(&wrong, GOOD_EXPRS));
    let [Failure::Alerts { alertname, got, .. }] = report.failures.as_slice() else {
        panic!("one alert failure expected: {:#?}", report.failures)
    };
    assert_eq!(alertname, "InstanceDown");
    assert_eq!(got[0].labels[2], ("job".to_owned(), "prometheus".to_owned()));
    let text = report.failures[0].to_string();
    assert!(text.contains("alertname: InstanceDown, time: 10m"), "{text}");
    assert!(text.contains(
        r#"got:[
            0:
              Labels:{alertname="InstanceDown", instance="localhost:9090", job="prometheus", severity="page"}"#
    ));

    // At 4m the alert is pending (for: 5m), so expecting it firing fails with an empty list.
    let early = GOOD_ALERTS.replace("eval_time: 10m", "eval_time: 4m");
    let report = run(RULES, &test_file(&early, GOOD_EXPRS));
    let [Failure::Alerts { got, eval_time_ms, .. }] = report.failures.as_slice() else {
        panic!("one alert failure expected: {:#?}", report.failures)
    };
    assert_eq!((got.len(), *eval_time_ms), (0, 240_000));
}

#[test]
fn an_alert_test_between_steps_sees_the_earlier_step() {
    // 4m59s is checked against the evaluation at 4m, where the alert is still pending; 5m30s
    // against the one at 5m, where it fires.
    let between = GOOD_ALERTS.replace("eval_time: 10m", "eval_time: 4m59s");
    assert!(!run(RULES, &test_file(&between, GOOD_EXPRS)).passed());
    let between = GOOD_ALERTS.replace("eval_time: 10m", "eval_time: 5m30s");
    assert!(run(RULES, &test_file(&between, GOOD_EXPRS)).passed());
}

#[test]
fn wrong_values_fail_with_both_lists() {
    let wrong = GOOD_EXPRS.replace("value: 2", "value: 3");
    let report = run(RULES, &test_file(GOOD_ALERTS, &wrong));
    let [failure @ Failure::Samples { .. }] = report.failures.as_slice() else {
        panic!("one sample failure expected: {:#?}", report.failures)
    };
    assert_eq!(
        failure.to_string(),
        "    expr: \"sum(job:up:sum_doubled)\", time: 4m,\n        exp: {} 3E+00\n        got: {} 2E+00"
    );
    let bad_labels = GOOD_EXPRS.replace("'{}'", "'{a=}'");
    let report = run(RULES, &test_file(GOOD_ALERTS, &bad_labels));
    assert!(matches!(
        report.failures.as_slice(),
        [Failure::ExprError {
            error: ExprTestError::Labels { .. },
            ..
        }]
    ));
    let bad_expr = GOOD_EXPRS.replace("sum(job:up:sum_doubled)", "sum(");
    let report = run(RULES, &test_file(GOOD_ALERTS, &bad_expr));
    assert!(matches!(
        report.failures.as_slice(),
        [Failure::ExprError {
            error: ExprTestError::Eval(_),
            ..
        }]
    ));
}

#[test]
fn group_eval_order_decides_what_a_step_sees() {
    // `second` reads what `example` records: evaluated first, it sees nothing at step 0.
    let expr = "      - expr: job:up:sum_doubled\n        eval_time: 0m\n        exp_samples:\n          - labels: 'job:up:sum_doubled{job=\"node\"}'\n            value: 2\n          - labels: 'job:up:sum_doubled{job=\"prometheus\"}'\n            value: 0\n";
    let test = test_file("", expr);
    assert!(run(RULES, &test).passed());
    let reversed = test.replace(
        "evaluation_interval: 1m",
        "evaluation_interval: 1m\ngroup_eval_order: [second, example]",
    );
    assert!(!run(RULES, &reversed).passed());
    let repeated = test.replace(
        "evaluation_interval: 1m",
        "evaluation_interval: 1m\ngroup_eval_order: [a, a]",
    );
    let report = run(RULES, &repeated);
    assert!(matches!(
        report.failures.as_slice(),
        [Failure::Setup(UnitTestError::RepeatedGroup(g))] if g == "a"
    ));
}

#[test]
fn rule_file_errors_are_reported_with_positions() {
    let broken = RULES.replace("up == 0", "up ==");
    let report = run(&broken, &test_file(GOOD_ALERTS, GOOD_EXPRS));
    let [Failure::Setup(UnitTestError::RuleFile(e))] = report.failures.as_slice() else {
        panic!("one rule-file error expected: {:#?}", report.failures)
    };
    let text = report.failures[0].to_string();
    assert!(text.starts_with("  ") && text.contains("rules.yml:6:15:"), "{text}");
    assert!(e.message.contains("could not parse expression"));
}

#[test]
fn missing_rule_files_warn() {
    let test = test_file("", "").replace("[rules.yml]", "[rules.yml, nothing/*.yml, absent.yml]");
    let report = run(RULES, &test);
    assert!(report.passed());
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    assert!(report.warnings[1].starts_with("no file match pattern") && report.warnings[1].ends_with("absent.yml"));
}

#[test]
fn rule_evaluation_errors_stop_the_group() {
    let rules = "groups:\n  - name: g\n    rules:\n      - record: collide\n        expr: up\n        labels: { job: same, instance: same }\n";
    let report = run(rules, &test_file("", GOOD_EXPRS));
    let [failure @ Failure::RuleEval { rule, time_ms, .. }] = report.failures.as_slice() else {
        panic!("one rule failure expected: {:#?}", report.failures)
    };
    assert_eq!((rule.as_str(), *time_ms), ("collide", 0));
    assert!(
        failure
            .to_string()
            .starts_with("    rule: collide, time: 0s, err: vector contains metrics with the same labelset")
    );
}

#[test]
fn bad_test_files_are_refused() {
    let report = run(RULES, "tests:\n  - intervall: 1m\n");
    assert!(matches!(
        report.failures.as_slice(),
        [Failure::Setup(UnitTestError::Yaml { .. })]
    ));
    let no_name = test_file("      - eval_time: 1m\n", "");
    let report = run(RULES, &no_name);
    assert_eq!(
        report.failures[0].to_string(),
        "an item under alert_rule_test misses required attribute alertname at eval_time 1m"
    );
    let histogram = test_file("", "").replace("'0x14'", "'{{schema:0 sum:1 count:1}}'");
    let report = run(RULES, &histogram);
    assert!(
        report.failures[0].to_string().contains("native histogram"),
        "{:?}",
        report.failures
    );
}

#[test]
fn keep_firing_for_stale_and_missing_samples() {
    let rules = r#"
groups:
  - name: g
    rules:
      - alert: Hot
        expr: temp > 50
        keep_firing_for: 3m
        annotations:
          value: "{{ $value }}"
"#;
    let test = r#"
rule_files: [rules.yml]
tests:
  - input_series:
      - series: temp
        values: '60 70 stale _x4 80'
    alert_rule_test:
      - eval_time: 1m
        alertname: Hot
        exp_alerts:
          - exp_annotations: { value: "70" }
      - eval_time: 4m
        alertname: Hot
        exp_alerts:
          - exp_annotations: { value: "70" }
      - eval_time: 5m
        alertname: Hot
      - eval_time: 7m
        alertname: Hot
        exp_alerts:
          - exp_annotations: { value: "80" }
    promql_expr_test:
      - expr: temp
        eval_time: 3m
      - expr: count_over_time(temp[10m])
        eval_time: 7m
        exp_samples:
          - labels: '{}'
            value: 3
"#;
    let report = run(rules, test);
    assert!(report.passed(), "{:#?}", report.failures);
    // Without keep_firing_for the alert resolves with the stale marker at 2m.
    let report = run(&rules.replace("keep_firing_for: 3m", "for: 0s"), test);
    let times: Vec<i64> = report
        .failures
        .iter()
        .filter_map(|f| match f {
            Failure::Alerts { eval_time_ms, .. } => Some(*eval_time_ms),
            _ => None,
        })
        .collect();
    assert_eq!(times, [240_000]);
}

#[test]
fn start_timestamp_moves_time_zero() {
    let rules = "groups:\n  - name: g\n    rules:\n      - record: now\n        expr: time()\n";
    let test = r#"
rule_files: [rules.yml]
tests:
  - interval: 1m
    start_timestamp: 2021-01-01T00:00:00Z
    input_series:
      - series: x
        values: '1 2 3'
    promql_expr_test:
      - expr: x
        eval_time: 2m
        exp_samples:
          - labels: x
            value: 3
      - expr: now
        eval_time: 2m
        exp_samples:
          - labels: now
            value: 1609459320
"#;
    let report = run(rules, test);
    assert!(report.passed(), "{:#?}", report.failures);
    let report = run(rules, &test.replace("2021-01-01T00:00:00Z", "1609459260"));
    let [Failure::Samples { got, .. }] = report.failures.as_slice() else {
        panic!("the recorded time moves with the start: {:#?}", report.failures)
    };
    assert_eq!(got[0].value, 1609459380.0);
}
