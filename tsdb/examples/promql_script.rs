//! Runs one PromQL test script and prints failures: `cargo run -p vigil-tsdb --example promql_script FILE [v2]`.

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: promql_script FILE [v2]");
        std::process::exit(2);
    };
    let v2 = args.next().is_some_and(|a| a == "v2");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let opts = vigil_tsdb::promql::EngineOptions {
        prometheus_v2: v2,
        ..Default::default()
    };
    let r = vigil_tsdb::promql::script::run_script(&text, opts);
    for f in &r.failed {
        println!("FAIL {f}");
    }
    for s in &r.skipped {
        println!("SKIP {s}");
    }
    println!(
        "{} passed, {} failed, {} skipped",
        r.passed,
        r.failed.len(),
        r.skipped.len()
    );
}
