//! `POST /ingest/kong`: Kong's http-log plugin (or anything else) posts one event, a batch array
//! or NDJSON; the reply says how many were accepted and why the others were not.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use vigil_tsdb::time::now_ms;

use super::App;
use super::json::{ApiError, json_response};

/// Handles an ingest request. Malformed events are counted and skipped, and the reply is 200 so
/// that http-log does not retry a batch that can never succeed. When the store has been failing
/// for a while the request is refused with 503 before anything is counted, so a retry is safe.
pub(crate) async fn kong(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let collector = app.collector.clone();
    let result = tokio::task::spawn_blocking(move || collector.ingest_body(&body, now_ms())).await;
    match result {
        Ok(Ok(report)) => {
            let mut reasons = serde_json::Map::new();
            for (r, n) in report.rejected.iter() {
                reasons.insert(r.as_str().to_owned(), n.into());
            }
            let body = serde_json::json!({
                "accepted": report.accepted,
                "rejected": report.rejected.total(),
                "rejected_by_reason": reasons,
            });
            json_response(StatusCode::OK, body.to_string())
        }
        Ok(Err(e)) => ApiError::unavailable(e.to_string()).into_response(),
        Err(e) => ApiError::internal(format!("ingest task failed: {e}")).into_response(),
    }
}
