//! Runs Prometheus's own PromQL test scripts through vigil's engine and guards the pass counts
//! recorded in `tests/promql/conformance.txt`: a change that makes fewer evals pass fails here,
//! and so does a failing eval that `tests/promql/known-failures.txt` does not list with its
//! reason. vigil's own scripts, in the same language (`tests/promql/vigil/*.test`), must pass
//! whole.
//!
//! Prometheus's scripts are not part of this repository: they are read from
//! `VIGIL_PROMQL_TESTDATA`, by default `../shared/promql-testdata` beside it. Where they are
//! missing the test says so and passes, unless `VIGIL_REQUIRE_EXTERNAL=1` (as `.ci/run` sets)
//! makes it fail. vigil's own scripts are always run. Set `VIGIL_PROMQL_VERBOSE=1` to print
//! every failing and skipped eval.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vigil_tsdb::promql::EngineOptions;
use vigil_tsdb::promql::script::{ScriptReport, run_script};

/// Where Prometheus's scripts are, if they are there.
fn testdata_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("VIGIL_PROMQL_TESTDATA") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/promql-testdata"),
    };
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("VIGIL_REQUIRE_EXTERNAL").is_none(),
        "Prometheus's PromQL test scripts are required (VIGIL_REQUIRE_EXTERNAL is set) and are not at {} \
         (set VIGIL_PROMQL_TESTDATA)",
        dir.display()
    );
    eprintln!(
        "SKIPPED: Prometheus's PromQL test scripts are not at {} (set VIGIL_PROMQL_TESTDATA to run them)",
        dir.display()
    );
    None
}

fn baseline() -> BTreeMap<String, usize> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promql/conformance.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (set, n) = l.split_once(char::is_whitespace).expect("`<set> <passed>` lines");
            (set.to_owned(), n.trim().parse().expect("a pass count"))
        })
        .collect()
}

/// The listed failures: (`set/file`, line or `None` for the whole file) and the reason.
fn known_failures() -> Vec<(String, Option<usize>, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promql/known-failures.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (at, reason) = l
                .split_once(char::is_whitespace)
                .expect("`<set>/<file>:<line> <reason>` lines");
            let (file, line) = at.rsplit_once(':').expect("a `:<line>` or `:*`");
            let line = (line != "*").then(|| line.parse().expect("a line number"));
            (file.to_owned(), line, reason.trim().to_owned())
        })
        .collect()
}

/// Runs every script of `set`; returns (passed, failed, skipped) and the failures that
/// `known-failures.txt` does not explain.
fn run_set(testdata: &Path, set: &str, opts: &EngineOptions) -> ((usize, usize, usize), Vec<String>) {
    let known = known_failures();
    let mut unexplained = Vec::new();
    let dir = testdata.join(set);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "PromQL test data not found at {}: {e} (set VIGIL_PROMQL_TESTDATA)",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let verbose = std::env::var_os("VIGIL_PROMQL_VERBOSE").is_some();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    println!("{set}:");
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable test file");
        let r: ScriptReport = run_script(&text, opts.clone());
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "  {name:<28} {:>4} passed {:>4} failed {:>4} skipped",
            r.passed,
            r.failed.len(),
            r.skipped.len()
        );
        let file = format!("{set}/{name}");
        for i in &r.failed {
            let listed = known
                .iter()
                .any(|(f, l, _)| *f == file && l.is_none_or(|l| l == i.line));
            if !listed {
                unexplained.push(format!("{file}: {i}"));
            }
        }
        if verbose {
            for i in &r.failed {
                println!("    FAIL {i}");
            }
            for i in &r.skipped {
                println!("    SKIP {i}");
            }
        }
        passed += r.passed;
        failed += r.failed.len();
        skipped += r.skipped.len();
    }
    println!(
        "  {:<28} {passed:>4} passed {failed:>4} failed {skipped:>4} skipped",
        "total"
    );
    for (file, line, reason) in known.iter().filter(|k| k.0.starts_with(&format!("{set}/"))) {
        let at = line.map_or("*".to_owned(), |l| l.to_string());
        println!("  known failure {file}:{at}: {reason}");
    }
    ((passed, failed, skipped), unexplained)
}

#[test]
fn prometheus_test_scripts_do_not_regress() {
    let Some(testdata) = testdata_dir() else { return };
    let base = baseline();
    let v2 = EngineOptions {
        prometheus_v2: true,
        ..EngineOptions::default()
    };
    let sets = [("v2.42", v2), ("head", EngineOptions::default())];
    let mut regressions = Vec::new();
    let mut unexplained = Vec::new();
    for (set, opts) in sets {
        let ((passed, _, _), unknown) = run_set(&testdata, set, &opts);
        let want = base.get(set).copied().unwrap_or(0);
        if passed < want {
            regressions.push(format!("{set}: {passed} evals pass, {want} recorded"));
        }
        unexplained.extend(unknown);
    }
    assert!(regressions.is_empty(), "conformance regressed: {regressions:?}");
    assert!(
        unexplained.is_empty(),
        "failing evals not listed in tests/promql/known-failures.txt:\n{}",
        unexplained.join("\n")
    );
}

/// vigil's own scripts: every eval passes, none is skipped.
#[test]
fn vigil_test_scripts_pass_whole() {
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promql/vigil");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&own)
        .expect("tests/promql/vigil")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        let r = run_script(
            &std::fs::read_to_string(&f).expect("readable"),
            EngineOptions::default(),
        );
        println!(
            "vigil/{}: {} passed",
            f.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
            r.passed
        );
        assert!(
            r.failed.is_empty() && r.skipped.is_empty() && r.passed > 0,
            "{}: failed {:?}, skipped {:?}",
            f.display(),
            r.failed,
            r.skipped
        );
    }
}
