//! Every query in `dashboards/*.yaml` must parse and evaluate to a non-empty answer on simulated
//! traffic, so the shipped dashboards never show a broken panel.

use std::sync::Arc;

use serde_yaml_ng::Value;
use vigil_collector::sim::{Simulator, Topology};
use vigil_collector::{AggregatorConfig, Collector};
use vigil_tsdb::Db;
use vigil_tsdb::promql::{Engine, Value as Result};

/// Friday 2026-11-20, 12:00 in Jakarta.
const NOON: i64 = 1_795_150_800_000;

/// Every PromQL string: the value of a `query` key, and each value of a `queries` mapping.
fn queries(v: &Value, key: Option<&str>, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let inner = match (key, k.as_str()) {
                    (Some("queries"), _) => Some("query"),
                    (_, k) => k,
                };
                queries(v, inner, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|v| queries(v, key, out)),
        Value::String(s) if key == Some("query") => out.push(s.clone()),
        _ => {}
    }
}

#[test]
fn dashboard_queries_answer_on_simulated_traffic() {
    let db = Arc::new(Db::in_memory());
    let collector = Collector::new(db.clone(), AggregatorConfig::default());
    let mut sim = Simulator::new(Topology::default(), Vec::new(), 9);
    let from = NOON - 20 * 60_000;
    collector
        .with_aggregator(|agg, out| {
            let mut t = from;
            while t < NOON {
                sim.generate(t, t + 10_000, |e| {
                    let _ = agg.apply(&e.as_kong(), NOON, out);
                });
                t += 10_000;
            }
            agg.flush(out);
        })
        .expect("store");

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dashboards/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    assert!(files.len() >= 2);
    let engine = Engine::default();
    for file in files {
        let doc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&file).expect("read")).expect("valid YAML");
        let mut qs = Vec::new();
        queries(&doc, None, &mut qs);
        assert!(!qs.is_empty(), "{} has no queries", file.display());
        for q in qs {
            let q = q
                .replace("$range", "5m")
                .replace("$service", "payments")
                .replace("$route", "payments-route")
                .replace("$path", "/v2/payments");
            // D-1 and D-7 panels have no history here; they must still evaluate.
            let v = engine
                .instant_query(&*db, &q, NOON)
                .unwrap_or_else(|e| panic!("{}: {q}: {e}", file.display()));
            let compares_history = q.contains("offset");
            if !compares_history {
                let empty = match &v {
                    Result::Vector(s) => s.is_empty(),
                    Result::Matrix(s) => s.is_empty(),
                    _ => false,
                };
                assert!(!empty, "{}: {q} returned nothing", file.display());
            }
        }
    }
}
