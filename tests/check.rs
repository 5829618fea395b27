//! `vigil check rules` and `vigil check config`: OK for good files, every error with its file,
//! line and column for bad ones, and a failing exit status.

mod common;

use common::run;

#[test]
fn check_rules_reports_positions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.yml");
    std::fs::write(
        &good,
        "groups:\n  - name: g\n    rules:\n      - record: a:b\n        expr: sum(up)\n      - alert: Down\n        expr: up == 0\n        for: 1m\n",
    )
    .expect("write");
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m]\n      - alert: B\n        expr: up\n        for: soon\n",
    )
    .expect("write");

    let out = run(&["check", "rules", good.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("good.yml: OK: 1 groups, 1 alerting and 1 recording rules"),
        "{stdout}"
    );

    let out = run(&[
        "check",
        "rules",
        good.to_str().expect("utf-8"),
        bad.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("bad.yml: FAILED"), "{stdout}");
    // Both errors, each with line and column.
    assert!(stdout.contains("bad.yml:5:"), "{stdout}");
    assert!(stdout.contains("bad.yml:8:"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 2 files failed"));
}

#[test]
fn check_config_rejects_unknown_receivers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("vigil.yaml");
    std::fs::write(
        &cfg,
        "alerting:\n  receivers:\n    - name: a\n      console: {}\n  route:\n    receiver: nobody\n",
    )
    .expect("write");
    let out = run(&["check", "config", cfg.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("undefined receiver \"nobody\""), "{stdout}");
}

/// The example alertmanager.yml in the repository loads as it is (its secret files need not
/// exist yet: they are read when a notification is sent, as Alertmanager reads them).
#[test]
fn check_config_reads_the_example_alertmanager_yml() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("vigil.yaml");
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/alertmanager.yml");
    std::fs::write(
        &cfg,
        format!("alerting:\n  alertmanager_config: {}\n", example.display()),
    )
    .expect("write");
    let out = run(&["check", "config", cfg.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(": OK"), "{stdout}");
    assert!(
        stdout.contains("warning: receiver \"oncall\": reading the secret in /etc/vigil/"),
        "{stdout}"
    );
}
