//! `cargo +nightly fuzz run promql`: any text as a PromQL query is parsed and, when it parses,
//! evaluated as an instant and as a range query over a small store of counters, gauges and
//! histogram buckets, on a thread with a 128 KiB stack. Every outcome is an answer or an error,
//! never a panic or a stack overflow; answers keep to the range query's points per series.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vigil_tsdb::promql::{Engine, EngineOptions, Value};
use vigil_tsdb::{Db, Labels};

/// 2026-11-23 00:00 UTC.
const T0: i64 = 1_795_392_000_000;
const HOUR: i64 = 3_600_000;

fn store() -> &'static Db {
    static DB: OnceLock<Db> = OnceLock::new();
    DB.get_or_init(|| {
        let db = Db::in_memory();
        let buckets = ["0.05", "0.1", "0.5", "1", "+Inf"];
        for i in 0..240i64 {
            let t = T0 + i * 15_000;
            let mut app = db.appender();
            for (s, status) in ["200", "200", "500", "404"].iter().enumerate() {
                let l = Labels::from_pairs([
                    ("__name__", "http_requests_total".to_owned()),
                    ("service", format!("svc-{}", s % 2)),
                    ("route", format!("r{s}")),
                    ("status", (*status).to_owned()),
                ]);
                // A counter that resets once.
                let v = if i < 120 { i * (s as i64 + 1) } else { (i - 120) * 2 } as f64;
                app.append(&l, t, v).expect("append");
            }
            for (b, le) in buckets.iter().enumerate() {
                let l = Labels::from_pairs([
                    ("__name__", "http_request_duration_seconds_bucket".to_owned()),
                    ("service", "svc-0".to_owned()),
                    ("le", (*le).to_owned()),
                ]);
                app.append(&l, t, (i * (b as i64 + 1)) as f64).expect("append");
            }
            let gauge = match i % 50 {
                7 => f64::NAN,
                13 => f64::INFINITY,
                21 => -0.0,
                _ => (i as f64).sin() * 100.0,
            };
            let l = Labels::from_pairs([("__name__", "temperature".to_owned()), ("room", "a".to_owned())]);
            app.append(&l, t, gauge).expect("append");
            app.commit().expect("commit");
        }
        db
    })
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::new(EngineOptions {
            max_samples: 2_000_000,
            timeout: Duration::from_secs(2),
            ..EngineOptions::default()
        })
    })
}

fuzz_target!(|data: &[u8]| {
    // The parser is quadratic in the length of a binary chain (as Prometheus's is); 4 KiB keeps
    // each run short without hiding depth (4 KiB is 2,000 nested parentheses).
    if data.len() > 4096 {
        return;
    }
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    let q = q.to_owned();
    // On a small stack, as a query thread might have: depth must be handled by the engine's
    // own stack growth, not by libFuzzer's 8 MiB main thread.
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || {
            let (db, engine) = (store(), engine());
            let _ = engine.instant_query(db, &q, T0 + HOUR / 2 + 7_000);
            if let Ok(Value::Matrix(series)) = engine.range_query(db, &q, T0, T0 + HOUR, 60_000) {
                for s in &series {
                    assert!(s.points.len() <= 61, "{} points for {q:?}", s.points.len());
                }
            }
        })
        .expect("thread")
        .join()
        .expect("no panic");
});
