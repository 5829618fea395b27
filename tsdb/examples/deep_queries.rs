//! Time to parse and evaluate deep and long PromQL expressions on an empty store, each on a
//! thread with a 2 MiB stack (as the server's blocking pool has), and the peak resident memory
//! while each ran (the stack segments the walks grew included):
//!
//!     cargo run --release -p vigil-tsdb --example deep_queries

use std::time::Instant;

use vigil_tsdb::promql::Engine;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let nest = |open: &str, inner: &str, close: &str, n: usize| format!("{}{inner}{}", open.repeat(n), close.repeat(n));
    let cases = [
        ("100,000 parentheses", nest("(", "1", ")", 100_000)),
        ("200,000 parentheses", nest("(", "1", ")", 200_000)),
        ("100,000 parentheses + 1", format!("{}+1", nest("(", "1", ")", 100_000))),
        ("a 20,000-term chain", vec!["1"; 20_000].join("+")),
        ("10,000 nested abs()", nest("abs(", "up", ")", 10_000)),
        ("20,000 nested abs()", nest("abs(", "up", ")", 20_000)),
        ("10,000 nested sum()", nest("sum(", "up", ")", 10_000)),
        ("20,001 nested abs(): refused", nest("abs(", "up", ")", 20_001)),
    ];
    let dir = tempfile::tempdir()?;
    let db = std::sync::Arc::new(vigil_tsdb::Db::open(dir.path(), vigil_tsdb::Options::default())?);
    let engine = Engine::default();
    println!("| expression | parse ms | parse and evaluate ms | peak RSS MiB |\n|---|---:|---:|---:|");
    for (name, text) in cases {
        // Resets the peak resident set size (VmHWM) to the current one.
        std::fs::write("/proc/self/clear_refs", "5")?;
        let (engine, db) = (engine.clone(), db.clone());
        let row = std::thread::Builder::new().stack_size(2 << 20).spawn(move || {
            let t = Instant::now();
            let parsed = engine.parse(&text).map(drop);
            let parse = t.elapsed();
            let t = Instant::now();
            let answer = engine.instant_query(&*db, &text, 1_000);
            (parsed.is_ok() && answer.is_ok(), parse, t.elapsed())
        })?;
        let (ok, parse, total) = row.join().map_err(|_| "a query thread panicked")?;
        assert!(ok != name.ends_with("refused"), "{name}: not as expected");
        println!(
            "| {name} | {:.1} | {:.1} | {} |",
            parse.as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3,
            peak_rss_kib()? / 1024
        );
    }
    Ok(())
}

fn peak_rss_kib() -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).ok_or("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).ok_or("VmHWM")?.parse()?)
}
