//! `GET /api/v1/status/collector`: what the collector and its sources are doing, for
//! `vigil status` (vigil's own endpoint; Prometheus has none like it).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::response::Response;
use serde_json::{Map, Value, json};
use vigil_tsdb::time::format_rfc3339;

use super::App;
use super::json;

pub(crate) async fn collector(State(app): State<Arc<App>>) -> Response {
    let app2 = app.clone();
    let stats = tokio::task::spawn_blocking(move || app2.collector.stats())
        .await
        .unwrap_or_default();
    let rejected: Map<String, Value> = stats
        .rejected
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| (r.as_str().to_owned(), json!(n)))
        .collect();
    let mut data = json!({
        "ready": app.readiness().err(),
        "collector": {
            "accepted": stats.accepted,
            "rejected": rejected,
            "lateAccepted": stats.late_accepted,
            "windowsCommitted": stats.windows_committed,
            "pendingWindows": stats.pending_windows,
            "series": stats.series,
            "storeErrors": stats.store_errors,
        },
    });
    if let (Some(k), Some(obj)) = (app.kafka_status.get(), data.as_object_mut()) {
        let partitions: Vec<Value> = k
            .partitions
            .lock()
            .iter()
            .map(|((topic, p), s)| {
                json!({
                    "topic": topic,
                    "partition": p,
                    "nextOffset": s.next_offset,
                    "lag": s.lag,
                    "messages": s.messages,
                    "eventTime": s.max_event_t.map(format_rfc3339),
                    "heldBack": s.held_back,
                    "fetchingFrom": s.fetching_from,
                })
            })
            .collect();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        obj.insert(
            "kafka".into(),
            json!({
                "messages": load(&k.messages),
                "duplicatesSkipped": load(&k.duplicates_skipped),
                "commitErrors": load(&k.commit_errors),
                "bytes": load(&k.bytes),
                "paused": k.paused.load(Ordering::Relaxed),
                "rebalances": load(&k.rebalances),
                "deadLetters": load(&k.dead_letters),
                "brokersUp": load(&k.brokers_up),
                "missingTopics": *k.missing_topics.lock(),
                "lastError": k.last_error.lock().as_ref().map(|(t, e)| json!({"at": format_rfc3339(*t), "error": e})),
                "partitions": partitions,
            }),
        );
    }
    if let (Some(n), Some(obj)) = (app.notifier.get(), data.as_object_mut()) {
        let destinations: Vec<Value> = n
            .destinations()
            .iter()
            .map(|d| {
                let count = |name: &str| d.counts.iter().find(|(k, _)| *k == name).map_or(0.0, |(_, v)| *v);
                json!({
                    "receiver": d.receiver,
                    "index": d.index,
                    "integration": d.kind,
                    "breaker": d.breaker.as_str(),
                    "fallback": d.fallback,
                    "sent": count("vigil_notify_sent_total"),
                    "failed": count("vigil_notify_failed_total"),
                    "retries": count("vigil_notify_retries_total"),
                    "queued": count("vigil_notify_queue_length"),
                    "fallbacks": count("vigil_notify_fallbacks_total"),
                    "breakerOpened": count("vigil_notify_breaker_opened_total"),
                })
            })
            .collect();
        obj.insert("notify".into(), json!({ "destinations": destinations }));
    }
    json::success_value(&data)
}
