//! Wide queries take the parallel paths (selection and range functions spread over the cores):
//! their answers must be those of the one-thread paths, series for series, in order.

use vigil_tsdb::promql::{Engine, Value};
use vigil_tsdb::{Db, Labels};

const SERIES: i64 = 300;
const SAMPLES: i64 = 1_000;
const STEP: i64 = 15_000;

/// Counters whose slope is their number (per second), sampled every 15 s; half in the head,
/// half cut into a block.
fn store(dir: &std::path::Path) -> Db {
    let db = Db::open(dir, vigil_tsdb::Options::default()).expect("open");
    for i in 0..SAMPLES {
        let mut app = db.appender();
        for s in 0..SERIES {
            let labels = Labels::from_pairs([
                ("__name__", "c_total".to_owned()),
                ("g", format!("g{}", s % 7)),
                ("s", format!("{s:03}")),
            ]);
            app.append(&labels, i * STEP, (s * i * STEP / 1000) as f64)
                .expect("append");
        }
        app.commit().expect("commit");
        if i == SAMPLES / 2 {
            db.flush_to_blocks().expect("flush");
        }
    }
    db
}

#[test]
fn wide_rate_matches_every_series_slope() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = store(dir.path());
    let engine = Engine::default();
    let (start, end) = (10 * 60_000, (SAMPLES - 1) * STEP);
    let Value::Matrix(m) = engine
        .range_query(&db, "rate(c_total[2m])", start, end, 60_000)
        .expect("query")
    else {
        panic!("a matrix");
    };
    assert_eq!(m.len(), SERIES as usize);
    assert!(m.windows(2).all(|w| w[0].metric < w[1].metric), "in label order");
    for series in &m {
        let s: i64 = series.metric.get("s").and_then(|v| v.parse().ok()).expect("an s label");
        assert_eq!(series.points.len() as i64, (end - start) / 60_000 + 1);
        for p in &series.points {
            assert!((p.v - s as f64).abs() < 1e-9, "series {s} at {}: {}", p.t, p.v);
        }
    }
    let Value::Vector(v) = engine.instant_query(&db, "sum(rate(c_total[5m]))", end).expect("query") else {
        panic!("a vector");
    };
    let want = (SERIES * (SERIES - 1) / 2) as f64;
    assert!((v[0].v - want).abs() < 1e-6, "{} against {want}", v[0].v);
}

#[test]
fn folded_aggregations_answer_as_the_step_by_step_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = store(dir.path());
    let engine = Engine::default();
    let (start, end) = (10 * 60_000, (SAMPLES - 1) * STEP);
    let matrix = |q: &str| match engine.range_query(&db, q, start, end, 45_000).expect("query") {
        Value::Matrix(m) => m,
        other => panic!("a matrix, got {other:?}"),
    };
    for agg in ["sum", "avg", "count", "min", "max", "group", "stddev", "stdvar"] {
        // `+ 0` keeps the aggregation from folding the range function: the reference path.
        let folded = matrix(&format!("{agg} by (g) (rate(c_total[2m]))"));
        let stepwise = matrix(&format!("{agg} by (g) (rate(c_total[2m]) + 0)"));
        assert_eq!(folded.len(), 7, "{agg}");
        assert_eq!(folded, stepwise, "{agg}");
        let folded = matrix(&format!("{agg} without (s) (increase(c_total[5m]))"));
        let stepwise = matrix(&format!("{agg} without (s) (increase(c_total[5m]) + 0)"));
        assert_eq!(folded, stepwise, "{agg} without");
        // Scaled by a number on either side first.
        for scaled in [
            "rate(c_total[2m]) * 60",
            "increase(c_total[1h]) / 3600",
            "2 ^ (c_total % 7)",
            "(c_total - 5)",
        ] {
            let folded = matrix(&format!("{agg} by (g) ({scaled})"));
            let stepwise = matrix(&format!("{agg} by (g) (({scaled}) + 0)"));
            assert!(!folded.is_empty(), "{agg} {scaled}");
            assert_eq!(folded, stepwise, "{agg} over {scaled}");
        }
        // Over a selector (on every core: 300 series x 1,000 samples), with an offset too.
        for sel in ["c_total", "c_total offset 7m", "c_total{g!=\"g3\"}"] {
            let folded = matrix(&format!("{agg} by (g) ({sel})"));
            let stepwise = matrix(&format!("{agg} by (g) ({sel} + 0)"));
            assert!(!folded.is_empty(), "{agg} {sel}");
            // `+ 0` drops the name, which `by (g)` drops anyway.
            assert_eq!(folded, stepwise, "{agg} over {sel}");
        }
    }
    let Value::Matrix(by_name) = engine
        .range_query(&db, "count by (__name__) (c_total)", start, end, 45_000)
        .expect("query")
    else {
        panic!("a matrix");
    };
    assert_eq!(by_name[0].metric.get("__name__"), Some("c_total"));
    assert!(by_name[0].points.iter().all(|p| p.v == SERIES as f64));
}

#[test]
fn wide_step_by_step_operations_answer_as_instant_queries() {
    // 300 series over 480 steps: the step-by-step operations (selection by rank, quantiles,
    // one-to-one and many-to-one matching, functions of instant vectors) take the parallel
    // path, a batch of steps at a time; at each step the answer must be the instant query's.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = store(dir.path());
    let engine = Engine::default();
    let (start, end, step) = (10 * 60_000, (SAMPLES - 1) * STEP, 30_000);
    for q in [
        "topk(3, rate(c_total[2m]))",
        "bottomk by (g) (2, rate(c_total[2m]))",
        "quantile by (g) (0.9, rate(c_total[2m]))",
        "count_values without (s) (\"v\", round(rate(c_total[2m]) / 50))",
        "rate(c_total[2m]) / on (s) group_left rate(c_total[5m])",
        "rate(c_total[2m]) > on (g) group_left max by (g) (rate(c_total[2m])) / 2",
        "clamp_max(rate(c_total[2m]), 100)",
    ] {
        let Value::Matrix(m) = engine.range_query(&db, q, start, end, step).expect(q) else {
            panic!("{q}: a matrix");
        };
        assert!(!m.is_empty(), "{q}");
        for t in (start..=end).step_by(5 * step as usize) {
            let Value::Vector(mut want) = engine.instant_query(&db, q, t).expect(q) else {
                panic!("{q}: a vector");
            };
            // Bits, so that NaN (0/0) equals NaN.
            let mut got: Vec<(Labels, u64)> = m
                .iter()
                .filter_map(|s| {
                    s.points
                        .iter()
                        .find(|p| p.t == t)
                        .map(|p| (s.metric.clone(), p.v.to_bits()))
                })
                .collect();
            got.sort_by(|a, b| a.0.cmp(&b.0));
            want.sort_by(|a, b| a.metric.cmp(&b.metric));
            let want: Vec<(Labels, u64)> = want.into_iter().map(|s| (s.metric, s.v.to_bits())).collect();
            assert_eq!(got.len(), want.len(), "{q} at {t}");
            if let Some((g, w)) = got.iter().zip(&want).find(|(g, w)| g != w) {
                panic!("{q} at {t}: {g:?} against the instant query's {w:?}");
            }
        }
    }
}
