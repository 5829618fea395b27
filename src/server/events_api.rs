//! `GET|POST /api/v1/events/search?q=&start=&end=&limit=`: the sampled raw events that match a
//! query (tantivy's syntax: `status:>=500 AND path:"/v2/payments"`), newest first, and how
//! many match in all. vigil's own endpoint; Prometheus has none like it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use vigil_tsdb::Labels;
use vigil_tsdb::events::{EventError, EventStore, RawEvent};
use vigil_tsdb::time::format_rfc3339;

use super::App;
use super::json::ApiError;
use super::params::Params;

/// Events returned when the request names no limit.
const DEFAULT_LIMIT: usize = 100;
/// The most events one request may ask for.
const MAX_LIMIT: usize = 10_000;

pub(crate) async fn search(State(app): State<Arc<App>>, p: Params) -> Response {
    let Some(store) = app.events.clone() else {
        return ApiError::unavailable("the event store is disabled (events.enabled: false)").into_response();
    };
    let run = move || -> Result<Value, ApiError> {
        let query = p.get("q").unwrap_or("").to_owned();
        let start = p.time("start")?;
        let end = p.time("end")?;
        let limit = match p.get("limit").filter(|l| !l.is_empty()) {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_data(format!(
                        "invalid parameter \"limit\": {l:?} is not a number from 1 to {MAX_LIMIT}"
                    ))
                })?,
        };
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            return Err(ApiError::bad_data(
                "invalid parameter \"end\": end timestamp must not be before start time",
            ));
        }
        let r = store.search(&query, start, end, limit).map_err(|e| match e {
            EventError::Query(m) => ApiError::bad_data(format!("invalid parameter \"q\": {m}")),
            other => ApiError::internal(other.to_string()),
        })?;
        Ok(json!({
            "total": r.total,
            "events": r.events.iter().map(event_json).collect::<Vec<_>>(),
        }))
    };
    super::api::answer(app.queries.clone(), move || run().map(|data| data.to_string())).await
}

fn event_json(e: &RawEvent) -> Value {
    let mut v = json!({
        "time": format_rfc3339(e.time),
        "timestamp": e.time,
        "service": e.service,
        "route": e.route,
        "method": e.method,
        "path": e.path,
        "template": e.template,
        "status": e.status,
        "latencyMs": e.latency_ms,
        "upstreamMs": e.upstream_ms,
        "kongMs": e.kong_ms,
        "consumer": e.consumer,
        "requestId": e.request_id,
        "clientIp": e.client_ip,
        "kept": e.kept.as_str(),
    });
    if let (Some(a), Some(obj)) = (&e.alert, v.as_object_mut()) {
        obj.insert(
            "alert".into(),
            json!({
                "alertname": a.alertname,
                "state": a.state,
                "receiver": a.receiver,
                "by": a.by,
                "comment": a.comment,
                "labels": a.labels,
                "groupKey": a.group_key,
            }),
        );
    }
    v
}

/// `vigil_events_*` self-metrics.
pub(crate) fn telemetry(store: &EventStore) -> Vec<(Labels, f64)> {
    let s = store.stats();
    let m = |name: &str, v: &std::sync::atomic::AtomicU64| {
        (
            Labels::from_pairs([("__name__", name)]),
            v.load(Ordering::Relaxed) as f64,
        )
    };
    vec![
        m("vigil_events_stored_total", &s.stored),
        m("vigil_events_dropped_total", &s.dropped),
        m("vigil_events_expired_total", &s.expired),
        m("vigil_events_errors_total", &s.errors),
        m("vigil_events_bytes", &s.bytes),
        m("vigil_events", &s.docs),
    ]
}
