//! `/api/v1/rules` and `/api/v1/alerts` in Prometheus's JSON shapes, and `/-/reload`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use vigil_alerter::alert::{Alert, AlertState};
use vigil_alerter::group::{GroupRuntime, Health};
use vigil_alerter::rules::Rule;
use vigil_tsdb::time::format_rfc3339;

use super::App;
use super::json::{self, ApiError};
use super::params::Params;

/// A float as Go's `strconv.FormatFloat(v, 'e', -1, 64)`: shortest digits, `1e+00`.
fn format_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let s = format!("{v:e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

fn pairs<'a>(it: impl Iterator<Item = (&'a str, &'a str)>) -> Value {
    Value::Object(
        it.map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect::<Map<_, _>>(),
    )
}

fn alert_json(a: &Alert) -> Value {
    let mut v = json!({
        "labels": pairs(a.labels.iter().map(|l| (l.name.as_str(), l.value.as_str()))),
        "annotations": pairs(a.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        "state": a.state.as_str(),
        "activeAt": format_rfc3339(a.active_at),
        "value": format_e(a.value),
    });
    if let (Some(since), Some(obj)) = (a.keep_firing_since, v.as_object_mut()) {
        obj.insert("keepFiringSince".into(), Value::String(format_rfc3339(since)));
    }
    v
}

fn health(h: &Health) -> (&'static str, String) {
    match h {
        Health::Unknown => ("unknown", String::new()),
        Health::Ok => ("ok", String::new()),
        Health::Err(e) => ("err", e.clone()),
    }
}

fn last_eval(t: Option<i64>) -> String {
    t.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), format_rfc3339)
}

fn group_json(g: &GroupRuntime, interval_ms: i64, only: Option<&str>, with_alerts: bool) -> Option<Value> {
    let mut rules = Vec::new();
    for rr in &g.rules {
        let (h, err) = health(&rr.health);
        let eval_time = rr.eval_duration.as_secs_f64();
        match &rr.rule {
            Rule::Alerting(a) if only != Some("record") => {
                let alerts: Vec<Value> = if with_alerts {
                    rr.alerts.active().map(alert_json).collect()
                } else {
                    Vec::new()
                };
                let state = match rr.alerts.state() {
                    AlertState::Firing => "firing",
                    AlertState::Pending => "pending",
                    AlertState::Inactive => "inactive",
                };
                rules.push(json!({
                    "state": state,
                    "name": a.alert,
                    "query": a.expr_text,
                    "duration": a.for_ms as f64 / 1000.0,
                    "keepFiringFor": a.keep_firing_for_ms as f64 / 1000.0,
                    "labels": pairs(a.labels_text.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                    "annotations": pairs(a.annotations_text.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                    "alerts": alerts,
                    "health": h,
                    "lastError": err,
                    "evaluationTime": eval_time,
                    "lastEvaluation": last_eval(rr.last_eval),
                    "type": "alerting",
                }));
            }
            Rule::Recording(r) if only != Some("alert") => rules.push(json!({
                "name": r.record,
                "query": r.expr_text,
                "labels": pairs(r.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                "health": h,
                "lastError": err,
                "evaluationTime": eval_time,
                "lastEvaluation": last_eval(rr.last_eval),
                "type": "recording",
            })),
            _ => {}
        }
    }
    if only.is_some() && rules.is_empty() {
        return None;
    }
    Some(json!({
        "name": g.group.name,
        "file": g.group.file,
        "rules": rules,
        "interval": interval_ms as f64 / 1000.0,
        "limit": g.group.limit,
        "evaluationTime": g.eval_duration.as_secs_f64(),
        "lastEvaluation": last_eval(g.last_eval),
    }))
}

/// `GET /api/v1/rules[?type=alert|record][&exclude_alerts=true]`
pub(crate) async fn rules(State(app): State<Arc<App>>, p: Params) -> Response {
    let only = match p.get("type") {
        None | Some("") => None,
        Some("alert") => Some("alert"),
        Some("record") => Some("record"),
        Some(other) => return ApiError::bad_data(format!("invalid query parameter type='{other}'")).into_response(),
    };
    let with_alerts = p.get("exclude_alerts") != Some("true");
    let settings = app.rules.settings();
    let groups: Vec<Value> = app
        .rules
        .groups()
        .iter()
        .filter_map(|g| group_json(g, g.interval_ms(settings), only, with_alerts))
        .collect();
    json::success_value(&json!({ "groups": groups }))
}

/// `GET /api/v1/alerts`: pending and firing alerts.
pub(crate) async fn alerts(State(app): State<Arc<App>>) -> Response {
    let mut alerts: Vec<(u64, Value)> = app
        .rules
        .groups()
        .iter()
        .flat_map(|g| g.rules.iter())
        .flat_map(|r| r.alerts.active().map(|a| (a.labels.stable_hash(), alert_json(a))))
        .collect();
    if let Some(n) = app.notifier.get() {
        annotate_with_pipeline(n, &mut alerts);
    }
    let alerts: Vec<Value> = alerts.into_iter().map(|(_, v)| v).collect();
    json::success_value(&json!({ "alerts": alerts }))
}

/// vigil's additions to Prometheus's alert shape: who acknowledged an alert and which silences
/// mute it (clients that do not know the fields ignore them).
fn annotate_with_pipeline(n: &vigil_alerter::Notifier, alerts: &mut [(u64, Value)]) {
    let now = vigil_tsdb::time::now_ms();
    n.with_pipeline(|p| {
        for (fp, v) in alerts.iter_mut() {
            let Some(a) = p.alerts().get(*fp).cloned() else {
                continue;
            };
            let Some(obj) = v.as_object_mut() else { continue };
            if let Some(ack) = p.ack_of(&a, now) {
                obj.insert(
                    "acknowledgement".into(),
                    json!({"by": ack.by, "comment": ack.comment, "at": format_rfc3339(ack.at)}),
                );
            }
            let (silenced_by, _) = p.status_of(&a.labels, now);
            if !silenced_by.is_empty() {
                obj.insert("silencedBy".into(), json!(silenced_by));
            }
        }
    });
}

/// `POST /-/reload`: reloads the rule files, the web configuration file and the tokens; a
/// broken file keeps the current settings.
pub(crate) async fn reload(State(app): State<Arc<App>>) -> Response {
    let result = tokio::task::spawn_blocking(move || app.reload()).await;
    match result {
        Ok(Ok(msg)) => (StatusCode::OK, msg).into_response(),
        Ok(Err(msg)) => (StatusCode::INTERNAL_SERVER_ERROR, msg).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_like_prometheus() {
        assert_eq!(format_e(1.0), "1e+00");
        assert_eq!(format_e(0.35), "3.5e-01");
        assert_eq!(format_e(1234.5), "1.2345e+03");
        assert_eq!(format_e(f64::NAN), "NaN");
    }
}
