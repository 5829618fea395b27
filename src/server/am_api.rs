//! Alertmanager's v2 API for alerts and silences, in its JSON shapes, so that `amtool` and other
//! Alertmanager clients work against vigil unchanged: `GET /api/v2/status`, `/api/v2/receivers`,
//! `/api/v2/alerts`, `/api/v2/alerts/groups`, `GET|POST /api/v2/silences`, and
//! `GET|DELETE /api/v2/silence/{id}`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use vigil_alerter::Notifier;
use vigil_alerter::notify::matcher::{MatchType, Matcher, Matchers, parse_matcher};
use vigil_alerter::notify::{AckInfo, PipelineAlert, Silence, SilenceError, SilenceMatcher, SilenceState};
use vigil_tsdb::Labels;
use vigil_tsdb::time::{format_rfc3339, now_ms, parse_timestamp};

use super::App;
use super::json::{self, ApiError};
use super::params::Params;

/// How long a firing alert is said to last without news (Prometheus's 4 × resend delay).
const ENDS_AFTER_MS: i64 = 4 * 60_000;

/// An error in Alertmanager's shape: a status and a JSON string.
#[derive(Debug)]
pub(crate) struct AmError(StatusCode, String);

impl IntoResponse for AmError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(Value::String(self.1))).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> AmError {
    AmError(status, message.into())
}

type AmResult = Result<Response, AmError>;

fn notifier(app: &App) -> Result<&Arc<Notifier>, AmError> {
    app.notifier
        .get()
        .ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "the notifier is not running"))
}

fn labels_json(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|l| (l.name.to_string(), Value::String(l.value.to_string())))
            .collect::<Map<_, _>>(),
    )
}

/// The query's `key=value` pairs in order (repeated keys kept).
fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The `filter=` matchers, one per parameter, as Alertmanager parses them.
fn filters(pairs: &[(String, String)]) -> Result<Matchers, AmError> {
    pairs
        .iter()
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| parse_matcher(v).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string())))
        .collect::<Result<_, _>>()
        .map(Matchers)
}

fn flag(pairs: &[(String, String)], name: &str, default: bool) -> Result<bool, AmError> {
    match pairs.iter().rev().find(|(k, _)| k == name) {
        None => Ok(default),
        Some((_, v)) => v
            .parse()
            .map_err(|_| error(StatusCode::BAD_REQUEST, format!("{name}: {v:?} is not a boolean"))),
    }
}

/// `GET /api/v2/status`
pub(crate) async fn status(State(app): State<Arc<App>>) -> AmResult {
    let original = app
        .notifier
        .get()
        .map(|n| n.with_pipeline(|p| p.plan().original.clone()))
        .unwrap_or_default();
    Ok(axum::Json(json!({
        "cluster": {"name": "", "peers": [], "status": "disabled"},
        "config": {"original": original},
        "uptime": format_rfc3339(app.runtime.started),
        "versionInfo": {
            "branch": "",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": "",
            "version": env!("CARGO_PKG_VERSION"),
        },
    }))
    .into_response())
}

/// `GET /api/v2/receivers`
pub(crate) async fn receivers(State(app): State<Arc<App>>) -> AmResult {
    let n = notifier(&app)?;
    let names: Vec<Value> = n.with_pipeline(|p| p.plan().receivers.keys().map(|name| json!({"name": name})).collect());
    Ok(axum::Json(names).into_response())
}

/// One alert in the API's shape, with its receivers and whether it is muted.
fn gettable_alert(n: &Notifier, a: &PipelineAlert, now: i64) -> (Value, bool, bool) {
    let (silenced_by, inhibited_by, ack) = n.with_pipeline(|p| {
        let (s, i) = p.status_of(&a.labels, now);
        (s, i, p.ack_of(a, now).cloned())
    });
    let inhibited_by: Vec<String> = inhibited_by.map(|fp| format!("{fp:016x}")).into_iter().collect();
    let (silenced, inhibited) = (!silenced_by.is_empty(), !inhibited_by.is_empty());
    let receivers: Vec<Value> = n
        .receivers_for(&a.labels)
        .into_iter()
        .map(|name| json!({"name": name}))
        .collect();
    let ends_at = a.ends_at.unwrap_or(now + ENDS_AFTER_MS);
    let v = json!({
        "labels": labels_json(&a.labels),
        "annotations": Value::Object(a.annotations.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()),
        "startsAt": format_rfc3339(a.starts_at),
        "endsAt": format_rfc3339(ends_at),
        "updatedAt": format_rfc3339(now),
        "fingerprint": a.fingerprint_hex(),
        "generatorURL": n.generator_url(&a.expr),
        "receivers": receivers,
        "status": {
            "state": if silenced || inhibited { "suppressed" } else { "active" },
            "silencedBy": silenced_by,
            "inhibitedBy": inhibited_by,
        },
    });
    let mut v = v;
    if let (Some(ack), Some(obj)) = (ack, v.as_object_mut()) {
        // vigil's addition: who is on it (Alertmanager's clients ignore the field).
        obj.insert(
            "acknowledgement".into(),
            json!({"by": ack.by, "comment": ack.comment, "at": format_rfc3339(ack.at)}),
        );
    }
    (v, silenced, inhibited)
}

/// `GET /api/v2/alerts`: the firing alerts, filtered as Alertmanager filters them.
pub(crate) async fn alerts(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> AmResult {
    let n = notifier(&app)?;
    let pairs = query_pairs(q.as_deref());
    let matchers = filters(&pairs)?;
    let (active, silenced, inhibited) = (
        flag(&pairs, "active", true)?,
        flag(&pairs, "silenced", true)?,
        flag(&pairs, "inhibited", true)?,
    );
    let receiver = pairs
        .iter()
        .find(|(k, _)| k == "receiver")
        .map(|(_, re)| Matcher::new("receiver", MatchType::Regex, re.clone()))
        .transpose()
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    let now = now_ms();
    let firing: Vec<PipelineAlert> = n.with_pipeline(|p| p.alerts().firing(now).cloned().collect());
    let mut out = Vec::new();
    for a in firing.iter().filter(|a| matchers.matches(&a.labels)) {
        let (v, is_silenced, is_inhibited) = gettable_alert(n, a, now);
        if (is_silenced && !silenced) || (is_inhibited && !inhibited) || (!is_silenced && !is_inhibited && !active) {
            continue;
        }
        if let Some(m) = &receiver
            && !v["receivers"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| m.matches_value(r["name"].as_str().unwrap_or(""))))
        {
            continue;
        }
        out.push(v);
    }
    out.sort_by(|a, b| a["fingerprint"].as_str().cmp(&b["fingerprint"].as_str()));
    Ok(axum::Json(out).into_response())
}

/// `GET /api/v2/alerts/groups`: the aggregation groups and their alerts.
pub(crate) async fn alert_groups(State(app): State<Arc<App>>) -> AmResult {
    let n = notifier(&app)?;
    let now = now_ms();
    let groups: Vec<(String, String, Labels, Vec<PipelineAlert>)> = n.with_pipeline(|p| {
        let routes = p.plan().route.all();
        p.dispatcher()
            .groups()
            .map(|(route, key, labels, alerts)| {
                let receiver = routes
                    .iter()
                    .find(|r| r.id == route)
                    .map(|r| r.opts.receiver.clone())
                    .unwrap_or_default();
                (
                    receiver,
                    key.to_owned(),
                    labels.clone(),
                    alerts.into_iter().cloned().collect(),
                )
            })
            .collect()
    });
    let out: Vec<Value> = groups
        .iter()
        .map(|(receiver, key, labels, alerts)| {
            let alerts: Vec<Value> = alerts.iter().map(|a| gettable_alert(n, a, now).0).collect();
            json!({"labels": labels_json(labels), "receiver": {"name": receiver}, "alerts": alerts, "groupKey": key})
        })
        .collect();
    Ok(axum::Json(out).into_response())
}

fn silence_json(s: &Silence, now: i64) -> Value {
    json!({
        "id": s.id,
        "status": {"state": s.state(now).as_str()},
        "updatedAt": format_rfc3339(s.updated_at),
        "matchers": s.matchers,
        "startsAt": format_rfc3339(s.starts_at),
        "endsAt": format_rfc3339(s.ends_at),
        "createdBy": s.created_by,
        "comment": s.comment,
    })
}

/// `GET /api/v2/silences`: all silences (filtered by `filter=` matchers against their own
/// matchers), active first, then pending, then expired.
pub(crate) async fn silences(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> AmResult {
    let n = notifier(&app)?;
    let matchers = filters(&query_pairs(q.as_deref()))?;
    let now = now_ms();
    let mut list: Vec<Silence> = n.with_pipeline(|p| p.silences().all().cloned().collect());
    list.retain(|s| {
        let labels = Labels::from_pairs(s.matchers.iter().map(|m| (m.name.clone(), m.value.clone())));
        matchers.matches(&labels)
    });
    list.sort_by_key(|s| match s.state(now) {
        SilenceState::Active => (0, s.ends_at),
        SilenceState::Pending => (1, s.starts_at),
        SilenceState::Expired => (2, -s.ends_at),
    });
    let out: Vec<Value> = list.iter().map(|s| silence_json(s, now)).collect();
    Ok(axum::Json(out).into_response())
}

/// The body of `POST /api/v2/silences`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<SilenceMatcher>,
    starts_at: String,
    ends_at: String,
    created_by: String,
    comment: String,
}

/// `POST /api/v2/silences`: creates or updates a silence; answers `{"silenceID": ...}`.
pub(crate) async fn post_silence(State(app): State<Arc<App>>, body: axum::body::Bytes) -> AmResult {
    let n = notifier(&app)?;
    let p: PostableSilence =
        serde_json::from_slice(&body).map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid silence: {e}")))?;
    let bad = |e: String| error(StatusCode::BAD_REQUEST, e);
    let (starts_at, ends_at) = (
        parse_timestamp(&p.starts_at).map_err(bad)?,
        parse_timestamp(&p.ends_at).map_err(bad)?,
    );
    let silence = Silence {
        id: p.id.unwrap_or_default(),
        matchers: p.matchers,
        starts_at,
        ends_at,
        updated_at: 0,
        created_by: p.created_by,
        comment: p.comment,
    };
    let now = now_ms();
    match n.with_pipeline(|pl| pl.silences_mut().set(silence, now)) {
        Ok(id) => {
            tracing::info!(id = %id, "silence set");
            Ok(axum::Json(json!({"silenceID": id})).into_response())
        }
        Err(e @ SilenceError::NotFound(_)) => Err(error(StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ SilenceError::Io(_)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, format!("failed to create silence: {e}"))),
    }
}

/// `GET /api/v2/silence/{id}`
pub(crate) async fn get_silence(State(app): State<Arc<App>>, Path(id): Path<String>) -> AmResult {
    let n = notifier(&app)?;
    let now = now_ms();
    match n.with_pipeline(|p| p.silences().get(&id).cloned()) {
        Some(s) => Ok(axum::Json(silence_json(&s, now)).into_response()),
        None => Err(error(StatusCode::NOT_FOUND, format!("silence {id} not found"))),
    }
}

/// `DELETE /api/v2/silence/{id}`: expires it now.
pub(crate) async fn delete_silence(State(app): State<Arc<App>>, Path(id): Path<String>) -> AmResult {
    let n = notifier(&app)?;
    let now = now_ms();
    match n.with_pipeline(|p| p.silences_mut().expire(&id, now)) {
        Ok(()) => {
            tracing::info!(id = %id, "silence expired");
            Ok(StatusCode::OK.into_response())
        }
        Err(e @ SilenceError::NotFound(_)) => Err(error(StatusCode::NOT_FOUND, e.to_string())),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// `POST /api/v1/alerts/ack` (vigil's own): acknowledges the firing alerts that match every
/// `matcher` (or the one with `fingerprint`), as `author` with `comment`, until they resolve or
/// `expires` (a duration) has passed. Answers in Prometheus's envelope with the fingerprints
/// acknowledged; 404 when no firing alert matches.
pub(crate) async fn ack(State(app): State<Arc<App>>, p: Params) -> Response {
    match ack_inner(&app, &p) {
        Ok(acked) => json::success_value(&json!({"acknowledged": acked})),
        Err(e) => e.into_response(),
    }
}

fn ack_inner(app: &App, p: &Params) -> Result<Vec<String>, ApiError> {
    let n = app
        .notifier
        .get()
        .ok_or_else(|| ApiError::unavailable("the notifier is not running"))?;
    let author = p.required("author")?.trim().to_owned();
    let comment = p.get("comment").unwrap_or_default().trim().to_owned();
    if author.is_empty() {
        return Err(ApiError::bad_data("author may not be empty"));
    }
    let matchers = p
        .all("matcher")
        .into_iter()
        .map(|m| parse_matcher(m).map_err(|e| ApiError::bad_data(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let fingerprint = p
        .get("fingerprint")
        .map(|f| u64::from_str_radix(f, 16).map_err(|_| ApiError::bad_data(format!("invalid fingerprint {f:?}"))))
        .transpose()?;
    if matchers.is_empty() && fingerprint.is_none() {
        return Err(ApiError::bad_data("give matchers (matcher=...) or a fingerprint"));
    }
    let now = now_ms();
    let expires_at = match p.duration("expires")? {
        Some(d) if d <= 0 => return Err(ApiError::bad_data("expires must be a positive duration")),
        d => d.map(|d| now + d),
    };
    let matchers = Matchers(matchers);
    let chosen: Vec<u64> = n.with_pipeline(|pl| {
        pl.alerts()
            .firing(now)
            .filter(|a| fingerprint.is_none_or(|f| a.fingerprint() == f) && matchers.matches(&a.labels))
            .map(PipelineAlert::fingerprint)
            .collect()
    });
    if chosen.is_empty() {
        return Err(ApiError::not_found("no firing alert matches"));
    }
    let info = AckInfo {
        by: author,
        comment,
        at: now,
        expires_at,
    };
    let acked = n
        .acknowledge(&chosen, &info, now)
        .map_err(|e| ApiError::internal(format!("saving the acknowledgement: {e}")))?;
    Ok(acked.iter().map(|fp| format!("{fp:016x}")).collect())
}
