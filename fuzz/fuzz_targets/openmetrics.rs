//! `cargo +nightly fuzz run openmetrics`: any text read as an OpenMetrics file, line by line as
//! `vigil import openmetrics` reads it, gives samples or line-numbered errors, never a panic;
//! every sample it gives has a metric name and a line it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_tsdb::openmetrics::Points;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut points = Points::default();
    let mut samples = Vec::new();
    let lines = text.split('\n').count();
    for (i, line) in text.split('\n').enumerate() {
        match points.push(line.strip_suffix('\r').unwrap_or(line), i + 1) {
            Ok(out) => samples.extend(out),
            Err(e) => assert!(e.line >= 1 && e.line <= lines, "{e}"),
        }
    }
    samples.extend(points.finish());
    for s in &samples {
        assert!(s.labels.metric_name().is_some_and(|n| !n.is_empty()));
    }
});
