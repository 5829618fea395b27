//! `vigil test rules` against `promtool test rules`: every test file of
//! `testdata/rule-tests/` gets the same verdict from both (`pass-*` files pass, `fail-*` files
//! fail), a failing file's report names what failed, in the very words promtool uses, and the
//! demo rules' own tests (`rules/demo/tests.yaml`) and the api-health rules' own tests
//! (`rules/api-health/tests.yml`) pass in both.
//!
//! The comparison with promtool needs it (Debian's `prometheus` package, 2.42); without it
//! that part says so and passes, unless `VIGIL_REQUIRE_EXTERNAL=1`. vigil's own verdicts are
//! checked either way.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Each test file, and what the failure report of a failing one must say.
const CASES: &[(&str, &[&str])] = &[
    ("pass-alerts.yml", &[]),
    ("pass-exprs.yml", &[]),
    ("pass-keep-firing.yml", &[]),
    (
        "fail-wrong-labels.yml",
        &[
            "    alertname: HighErrorRatio, time: 16m, ",
            r#"Labels:{alertname="HighErrorRatio", job="api", severity="warning"}"#,
            r#"Labels:{alertname="HighErrorRatio", job="api", severity="page"}"#,
        ],
    ),
    (
        "fail-wrong-value.yml",
        &[
            r#"    expr: "job:http_errors:ratio_rate5m", time: 16m,"#,
            r#"exp: {__name__="job:http_errors:ratio_rate5m", job="api"} 2.5E-01"#,
            r#"got: {__name__="job:http_errors:ratio_rate5m", job="api"} 2E-01"#,
        ],
    ),
    (
        "fail-not-firing.yml",
        &["    alertname: InstanceDown, time: 10m, ", "        got:[]"],
    ),
    (
        "fail-broken-rules.yml",
        &["rules/broken.yml:6:15: group \"broken\", rule 1, \"Broken\": could not parse expression"],
    ),
];

fn test_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/rule-tests")
}

/// Exit status (0 or 1), stdout and stderr of `program test rules FILES`.
fn test_rules(mut program: Command, files: &[&Path]) -> (i32, String, String) {
    let out = program
        .args(["test", "rules"])
        .args(files)
        .env("VIGIL_LOG", "warn")
        .output()
        .expect("runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// The lines of the failure reports (promtool and vigil indent them by four spaces).
fn report_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("    ")).collect()
}

#[test]
fn every_test_file_is_a_case() {
    let mut files: Vec<String> = std::fs::read_dir(test_dir())
        .expect("testdata/rule-tests")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    files.sort();
    let mut cases: Vec<String> = CASES.iter().map(|(f, _)| (*f).to_owned()).collect();
    cases.sort();
    assert_eq!(files, cases, "every test file needs a verdict in CASES");
}

#[test]
fn vigil_gives_each_file_its_verdict() {
    for (name, names) in CASES {
        let path = test_dir().join(name);
        let (status, stdout, stderr) = test_rules(common::vigil(), &[&path]);
        assert!(
            stdout.starts_with(&format!("Unit Testing:  {}\n", path.display())),
            "{name}: {stdout}"
        );
        if name.starts_with("pass-") {
            assert_eq!(status, 0, "{name} should pass:\n{stdout}{stderr}");
            assert!(stdout.contains("\n  SUCCESS\n"), "{name}: {stdout}");
        } else {
            assert_eq!(status, 1, "{name} should fail:\n{stdout}{stderr}");
            assert!(stderr.starts_with("  FAILED:\n"), "{name}: {stderr}");
            for n in *names {
                assert!(stderr.contains(n), "{name}: the report should say {n:?}:\n{stderr}");
            }
        }
    }
}

#[test]
fn promtool_gives_the_same_verdicts_and_reports() {
    if !common::external_tool("promtool", "prometheus") {
        return;
    }
    for (name, _) in CASES {
        let path = test_dir().join(name);
        let (vigil_status, _, vigil_err) = test_rules(common::vigil(), &[&path]);
        let (promtool_status, promtool_out, promtool_err) = test_rules(Command::new("promtool"), &[&path]);
        assert_eq!(
            vigil_status, promtool_status,
            "{name}: vigil and promtool disagree; promtool says:\n{promtool_out}{promtool_err}\nvigil says:\n{vigil_err}"
        );
        // The rule-file error comes from two different parsers; every other report reads the
        // same.
        if *name != "fail-broken-rules.yml" {
            assert_eq!(report_lines(&vigil_err), report_lines(&promtool_err), "{name}");
        }
    }
}

#[test]
fn the_demo_rules_pass_their_tests_in_both() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/demo/tests.yaml");
    let (status, stdout, stderr) = test_rules(common::vigil(), &[&path]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    if common::external_tool("promtool", "prometheus") {
        let (status, stdout, stderr) = test_rules(Command::new("promtool"), &[&path]);
        assert_eq!(status, 0, "{stdout}{stderr}");
    }
}

/// The signals (outage, burst, slow burn): two and a half hours of 30s evaluations.
#[test]
fn the_api_health_rules_pass_their_tests_in_both() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/api-health/tests.yml");
    let (status, stdout, stderr) = test_rules(common::vigil(), &[&path]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    if common::external_tool("promtool", "prometheus") {
        let (status, stdout, stderr) = test_rules(Command::new("promtool"), &[&path]);
        assert_eq!(status, 0, "{stdout}{stderr}");
    }
}

/// The tests of a spec (`kind`: anomaly or slo): vigil reads the spec itself; promtool reads,
/// beside a copy of the test file, the rules `vigil <kind> generate` prints for it under the
/// spec's name, which `promtool check rules` accepts too.
fn spec_tests_pass_in_both(kind: &str, dir: &Path, spec: &str, tests: &str) {
    let tests = dir.join(tests);
    let (status, stdout, stderr) = test_rules(common::vigil(), &[&tests]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    if !common::external_tool("promtool", "prometheus") {
        return;
    }
    let out = common::vigil()
        .args([kind, "generate"])
        .arg(dir.join(spec))
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let scratch = tempfile::tempdir().expect("tempdir");
    let generated = scratch.path().join(spec);
    std::fs::write(&generated, &out.stdout).expect("write");
    let copy = scratch.path().join(tests.file_name().expect("a file"));
    std::fs::copy(&tests, &copy).expect("copy");
    let check = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&generated)
        .output()
        .expect("runs");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let (status, stdout, stderr) = test_rules(Command::new("promtool"), &[&copy]);
    assert_eq!(status, 0, "{stdout}{stderr}");
}

/// The shipped anomalies: fourteen days and 45 minutes of 1m evaluations.
#[test]
fn the_api_health_anomalies_pass_their_tests_in_both() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/api-health");
    spec_tests_pass_in_both("anomaly", &dir, "anomalies.yml", "anomaly-tests.yml");
}

/// A baseline scaled by the weekly trend: three weeks of 10m evaluations.
#[test]
fn a_trend_scaled_baseline_passes_its_tests_in_both() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/anomaly-tests");
    spec_tests_pass_in_both("anomaly", &dir, "trend.yml", "trend-tests.yml");
}

/// The SLO alerts' traffic guard on their short window: a day of traffic with an incident, then
/// a quiet night.
#[test]
fn a_quiet_short_window_opens_no_slo_ticket_in_both() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/slo-tests");
    spec_tests_pass_in_both("slo", &dir, "night.yml", "night-tests.yml");
}

#[test]
fn one_failing_file_of_several_fails_the_run() {
    let (pass, fail) = (
        test_dir().join("pass-keep-firing.yml"),
        test_dir().join("fail-wrong-value.yml"),
    );
    let (status, stdout, stderr) = test_rules(common::vigil(), &[&pass, &fail]);
    assert_eq!(status, 1, "{stdout}{stderr}");
    assert_eq!(stdout.matches("Unit Testing:  ").count(), 2, "{stdout}");
    assert_eq!(stdout.matches("  SUCCESS").count(), 1, "{stdout}");
    assert_eq!(stderr.matches("  FAILED:").count(), 1, "{stderr}");
    assert!(stderr.contains("1 of 2 test files failed"), "{stderr}");
}
