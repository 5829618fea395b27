//! `GET /api/v1/slos`: the SLOs of the loaded spec files and, per `by` label set, the error
//! budget left and the burn rate over the last hour, read with the query engine from the
//! series their rules record (`slo:error_budget:remaining`, `slo:burn_rate:ratio_rate1h`).
//!
//! ```json
//! {"slos": [{"name": "api-availability", "file": "rules/api-health/slos.yml",
//!            "description": "...", "objective": 99.9, "period": "30d",
//!            "sli": {"kind": "availability"}, "by": ["service", "route"], "minTraffic": 0.1,
//!            "series": [{"labels": {"service": "orders", "route": "orders-route"},
//!                        "errorBudgetRemaining": 0.93, "burnRate1h": 0.4}]}]}
//! ```
//!
//! A label set that has one figure and not (yet) the other has `null` for it, as has a figure
//! that is not a number (no requests in the period).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value as Json, json};
use vigil_alerter::slo::{LoadedSlo, Sli};
use vigil_tsdb::promql::Value;
use vigil_tsdb::time::now_ms;

use super::App;
use super::api;
use super::json::ApiError;

/// A `by` label set, as names to values.
type LabelSet = BTreeMap<String, String>;

/// `GET /api/v1/slos`
pub(crate) async fn slos(State(app): State<Arc<App>>) -> Response {
    api::answer(app.queries.clone(), move || {
        let now = now_ms();
        let slos: Vec<Json> = app
            .rules
            .slos()
            .iter()
            .map(|s| slo_json(&app, s, now))
            .collect::<Result<_, _>>()?;
        serde_json::to_string(&json!({ "slos": slos })).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await
}

fn slo_json(app: &App, loaded: &LoadedSlo, now: i64) -> Result<Json, ApiError> {
    let s = &loaded.slo;
    let remaining = recorded(app, "slo:error_budget:remaining", &s.name, now)?;
    let burn = recorded(app, "slo:burn_rate:ratio_rate1h", &s.name, now)?;
    let mut sets: BTreeMap<LabelSet, (Option<f64>, Option<f64>)> = BTreeMap::new();
    for (labels, v) in remaining {
        sets.entry(labels).or_default().0 = Some(v);
    }
    for (labels, v) in burn {
        sets.entry(labels).or_default().1 = Some(v);
    }
    let series: Vec<Json> = sets
        .into_iter()
        .map(|(labels, (remaining, burn))| {
            json!({
                "labels": labels,
                "errorBudgetRemaining": number(remaining),
                "burnRate1h": number(burn),
            })
        })
        .collect();
    let sli = match &s.sli {
        Sli::Availability => json!({ "kind": "availability" }),
        Sli::Latency { threshold, .. } => json!({ "kind": "latency", "threshold": threshold }),
    };
    Ok(json!({
        "name": s.name,
        "file": loaded.file,
        "description": s.description,
        "objective": s.objective.percent,
        "period": s.period.as_str(),
        "sli": sli,
        "by": s.by,
        "minTraffic": s.min_traffic,
        "series": series,
    }))
}

/// A recorded series of SLO `slo` at `now`, by its `by` labels.
fn recorded(app: &App, metric: &str, slo: &str, now: i64) -> Result<Vec<(LabelSet, f64)>, ApiError> {
    // SLO names are identifiers (letters, digits, '_' and '-'): nothing to escape.
    let query = format!("{metric}{{slo=\"{slo}\"}}");
    let Value::Vector(samples) = app.engine.instant_query(&*app.db, &query, now)? else {
        return Ok(Vec::new());
    };
    Ok(samples
        .into_iter()
        .map(|s| {
            let labels = s
                .metric
                .iter()
                .filter(|l| l.name.as_str() != "__name__" && l.name.as_str() != "slo")
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect();
            (labels, s.v)
        })
        .collect())
}

/// JSON has no NaN: a figure that is not a number is `null`.
fn number(v: Option<f64>) -> Json {
    v.filter(|v| v.is_finite()).map_or(Json::Null, |v| json!(v))
}
