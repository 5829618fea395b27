//! The rest of Prometheus's read API: `/api/v1/metadata`, `/api/v1/format_query`,
//! `/api/v1/query_exemplars`, `/api/v1/status/runtimeinfo`, `/api/v1/status/flags` and
//! `/api/v1/status/tsdb`, answered the way Grafana and promtool expect.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};
use vigil_collector::aggregate as collected;
use vigil_tsdb::Queryable;
use vigil_tsdb::time::{format_duration_ms, format_rfc3339, now_ms};

use super::App;
use super::api::answer;
use super::json::{self, ApiError};
use super::params::{MAX_TIME, MIN_TIME, Params};
use crate::config::Config;

/// What the server was started with, for the status endpoints.
#[derive(Debug)]
pub(crate) struct Runtime {
    /// When the server started (ms since the epoch).
    pub(crate) started: i64,
    /// Prometheus's flag names with vigil's settings for them, and vigil's own.
    pub(crate) flags: BTreeMap<String, String>,
    /// `storage.retention`, and `storage.max_size` when set, as Prometheus prints retention.
    pub(crate) retention: String,
    /// Whether the last rule reload succeeded, and when it was (ms).
    pub(crate) last_reload: parking_lot::Mutex<(bool, i64)>,
}

impl Runtime {
    pub(crate) fn new(cfg: &Config, config_path: Option<&std::path::Path>) -> Runtime {
        let s = &cfg.storage;
        let size = if s.max_size > 0 {
            format!("{}B", s.max_size)
        } else {
            "0B".into()
        };
        let flags: BTreeMap<String, String> = [
            (
                "config.file",
                config_path.map(|p| p.display().to_string()).unwrap_or_default(),
            ),
            ("storage.tsdb.path", s.data_dir.display().to_string()),
            ("storage.tsdb.retention.time", format_duration_ms(s.retention)),
            ("storage.tsdb.retention.size", size),
            ("storage.tsdb.min-block-duration", format_duration_ms(s.block_range)),
            ("web.listen-address", cfg.server.listen.to_string()),
            ("web.enable-admin-api", cfg.server.enable_admin_api.to_string()),
            ("query.lookback-delta", format_duration_ms(cfg.query.lookback_delta)),
            ("query.timeout", format_duration_ms(cfg.query.timeout)),
            ("query.max-samples", cfg.query.max_samples.to_string()),
            ("vigil.query.max-series", cfg.query.max_series.to_string()),
            ("vigil.storage.rollups", s.rollups.enabled.to_string()),
            (
                "vigil.storage.rollups.retention-1m",
                format_duration_ms(s.rollups.retention_1m),
            ),
            (
                "vigil.storage.rollups.retention-5m",
                format_duration_ms(s.rollups.retention_5m),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut retention = format_duration_ms(s.retention);
        if s.max_size > 0 {
            retention.push_str(&format!(" or {}B", s.max_size));
        }
        let started = now_ms();
        Runtime {
            started,
            flags,
            retention,
            last_reload: parking_lot::Mutex::new((true, started)),
        }
    }
}

/// `/api/v1/status/runtimeinfo`
pub(crate) async fn runtimeinfo(State(app): State<Arc<App>>) -> Response {
    let r = &app.runtime;
    let (ok, at) = *r.last_reload.lock();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    json::success_value(&json!({
        "startTime": format_rfc3339(r.started),
        "CWD": std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
        "reloadConfigSuccess": ok,
        "lastConfigTime": format_rfc3339(at),
        "corruptionCount": 0,
        "goroutineCount": threads(),
        "GOMAXPROCS": cores,
        "GOMEMLIMIT": 0,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": r.retention,
    }))
}

/// Threads of this process (what `goroutineCount` stands for here).
fn threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok()))
        .unwrap_or(0)
}

/// `/api/v1/status/flags`
pub(crate) async fn flags(State(app): State<Arc<App>>) -> Response {
    json::success_value(&app.runtime.flags)
}

/// `/api/v1/status/tsdb?limit=N`: the head's cardinality, the `N` (default 10) largest of each
/// list.
pub(crate) async fn tsdb(State(app): State<Arc<App>>, p: Params) -> Response {
    answer(app.queries.clone(), move || {
        let limit = positive(&p, "limit")?.unwrap_or(10);
        let c = app.db.head().cardinality(limit);
        let stats = app.db.stats();
        let list =
            |v: &[(String, u64)]| -> Vec<Value> { v.iter().map(|(k, n)| json!({"name": k, "value": n})).collect() };
        let mut head = json!({
            "numSeries": c.series,
            "numLabelPairs": c.label_pairs,
            "chunkCount": c.chunks,
            "minTime": 0,
            "maxTime": 0,
        });
        if stats.max_t >= stats.min_t {
            head["minTime"] = json!(stats.min_t);
            head["maxTime"] = json!(stats.max_t);
        }
        Ok(json!({
            "headStats": head,
            "seriesCountByMetricName": list(&c.series_by_metric),
            "labelValueCountByLabelName": list(&c.values_by_label_name),
            "memoryInBytesByLabelName": list(&c.bytes_by_label_name),
            "seriesCountByLabelValuePair": list(&c.series_by_label_pair),
        })
        .to_string())
    })
    .await
}

/// A positive integer parameter; 0 or absent is `None` (no limit).
fn positive(p: &Params, name: &str) -> Result<Option<usize>, ApiError> {
    match p.get(name) {
        None | Some("") => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 => Ok(Some(n as usize)),
            Ok(_) => Ok(None),
            Err(_) => Err(ApiError::bad_data(format!(
                "invalid parameter \"{name}\": {v:?} is not a number"
            ))),
        },
    }
}

/// The deepest expression `/api/v1/format_query` prints: each level of the printed form is
/// indented and checked for width (its whole subtree printed again), so output and time grow
/// with the depth times the length.
pub(crate) const MAX_FORMAT_DEPTH: usize = 1_000;

/// The most work `/api/v1/format_query` takes on: the query's length times its depth (a
/// 100 KB query 500 levels deep).
const MAX_FORMAT_WORK: usize = 50_000_000;

/// `/api/v1/format_query?query=...`: the expression, pretty-printed.
pub(crate) async fn format_query(State(app): State<Arc<App>>, p: Params) -> Response {
    answer(app.queries.clone(), move || {
        let query = p.required("query")?;
        let expr = app.engine.parse(query)?;
        let depth = vigil_tsdb::promql::deep::tree_depth(&expr);
        if depth > MAX_FORMAT_DEPTH || query.len().saturating_mul(depth) > MAX_FORMAT_WORK {
            return Err(ApiError::bad_data(format!(
                "the expression is {depth} levels deep and {} bytes long; format_query prints at most {MAX_FORMAT_DEPTH} levels and {MAX_FORMAT_WORK} bytes times levels (it can still be evaluated)",
                query.len()
            )));
        }
        let pretty = vigil_tsdb::promql::deep::on_stack_for(expr.depth(), || expr.prettify());
        Ok(json!(pretty).to_string())
    })
    .await
}

/// `/api/v1/query_exemplars`: vigil keeps no exemplars, so every valid request gets none.
pub(crate) async fn query_exemplars(State(app): State<Arc<App>>, p: Params) -> Response {
    answer(app.queries.clone(), move || {
        app.engine.parse(p.required("query")?)?;
        super::api::time_range(&p)?;
        Ok("[]".into())
    })
    .await
}

/// A metric family vigil writes itself, with its type and help.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
}

/// The families the collector writes (see DESIGN.md's series names).
const COLLECTED: [Family; 5] = [
    Family {
        name: collected::REQUESTS_TOTAL,
        kind: "counter",
        help: "Requests through the gateway, by service, route, method, path template and status.",
    },
    Family {
        name: collected::REQUEST_DURATION,
        kind: "histogram",
        help: "Total request latency as the gateway saw it (latencies.request), in seconds.",
    },
    Family {
        name: collected::UPSTREAM_DURATION,
        kind: "histogram",
        help: "Time the upstream service took (latencies.proxy), in seconds.",
    },
    Family {
        name: collected::KONG_DURATION,
        kind: "histogram",
        help: "Time spent in the gateway itself (latencies.kong), in seconds.",
    },
    Family {
        name: collected::RESPONSE_BYTES_TOTAL,
        kind: "counter",
        help: "Response bytes sent to clients.",
    },
];

/// The family a stored metric name belongs to, with its type: vigil's own families by name,
/// others by Prometheus's naming conventions.
fn family_of(name: &str, names: &std::collections::BTreeSet<&str>) -> (String, &'static str, String) {
    for f in &COLLECTED {
        if name == f.name
            || name
                .strip_prefix(f.name)
                .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
        {
            return (f.name.to_owned(), f.kind, f.help.to_owned());
        }
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && names.contains(format!("{base}_bucket").as_str())
        {
            return (base.to_owned(), "histogram", String::new());
        }
    }
    let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
    let help = if name.starts_with("vigil_") {
        "vigil self-telemetry (see /metrics).".to_owned()
    } else {
        String::new()
    };
    (name.to_owned(), kind, help)
}

/// `/api/v1/metadata?metric=&limit=&limit_per_metric=`: type, help and unit per metric family
/// in the store.
pub(crate) async fn metadata(State(app): State<Arc<App>>, p: Params) -> Response {
    answer(app.queries.clone(), move || {
        let limit = positive(&p, "limit")?;
        positive(&p, "limit_per_metric")?;
        let metric = p.get("metric").filter(|m| !m.is_empty());
        let stored = app
            .db
            .label_values(vigil_tsdb::labels::METRIC_NAME, &[], MIN_TIME, MAX_TIME)?;
        let names: std::collections::BTreeSet<&str> = stored.iter().map(String::as_str).collect();
        let mut out: BTreeMap<String, Value> = BTreeMap::new();
        for name in &names {
            let (family, kind, help) = family_of(name, &names);
            if metric.is_some_and(|m| m != family) {
                continue;
            }
            if limit.is_some_and(|l| out.len() >= l) && !out.contains_key(&family) {
                break;
            }
            out.entry(family)
                .or_insert_with(|| json!([{"type": kind, "help": help, "unit": ""}]));
        }
        serde_json::to_string(&out).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await
}

/// Truncates `values` to the request's `limit` (Prometheus 2.49+), with the warning
/// Prometheus gives when it does.
pub(crate) fn apply_limit<T>(p: &Params, values: &mut Vec<T>) -> Result<Option<String>, ApiError> {
    match positive(p, "limit")? {
        Some(l) if values.len() > l => {
            values.truncate(l);
            Ok(Some("results truncated due to limit".into()))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_by_name_and_convention() {
        let names: std::collections::BTreeSet<&str> = [
            "rpc_seconds_bucket",
            "rpc_seconds_sum",
            "rpc_seconds_count",
            "jobs_count",
            "up",
        ]
        .into();
        let f = |n| {
            let (family, kind, _) = family_of(n, &names);
            (family, kind)
        };
        assert_eq!(f("rpc_seconds_sum"), ("rpc_seconds".into(), "histogram"));
        assert_eq!(f("jobs_count"), ("jobs_count".into(), "gauge"));
        assert_eq!(f("http_total"), ("http_total".into(), "counter"));
        assert_eq!(
            f("vigil_http_request_duration_seconds_bucket"),
            ("vigil_http_request_duration_seconds".into(), "histogram")
        );
    }
}
