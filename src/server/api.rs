//! Prometheus-compatible query endpoints: `/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values` (these three with
//! `limit`), `/api/v1/status/buildinfo`, `/api/v1/admin/tsdb/delete_series`. The status and
//! metadata endpoints are in `status_api.rs`.
//! Each accepts GET and POST (form-encoded) as Prometheus does.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use vigil_tsdb::promql::{MAX_POINTS_PER_SERIES, SourceResolution, parse_selector};
use vigil_tsdb::time::now_ms;
use vigil_tsdb::{Labels, Matcher, Queryable};

use super::App;
use super::gate::QueryGate;
use super::json::{self, ApiError, push_labels, push_str};
use super::params::{MAX_TIME, MIN_TIME, Params};
use super::status_api::apply_limit;

/// Runs CPU-bound work that produces the response's `data` off the async runtime's worker
/// threads, once the query gate admits it, and wraps it in the API's envelope.
pub(crate) async fn answer(
    gate: Arc<QueryGate>,
    f: impl FnOnce() -> Result<String, ApiError> + Send + 'static,
) -> Response {
    answer_warned(gate, move || f().map(|data| (data, Vec::new()))).await
}

/// [`answer`], with the warnings for the envelope that the work gives.
pub(crate) async fn answer_warned(
    gate: Arc<QueryGate>,
    f: impl FnOnce() -> Result<(String, Vec<String>), ApiError> + Send + 'static,
) -> Response {
    let admitted = match gate.enter().await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    // The slot is held by the work itself: a client that goes away does not free it early.
    let work = move || {
        let r = f();
        drop(admitted);
        r
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok((data, warnings))) => json::success_warned(&data, &warnings),
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::internal(format!("query task failed: {e}")).into_response(),
    }
}

fn engine_for(app: &App, p: &Params) -> Result<vigil_tsdb::promql::Engine, ApiError> {
    let mut opts = app.engine.options().clone();
    if let Some(t) = p.duration("timeout")? {
        opts.timeout = opts.timeout.min(vigil_tsdb::time::ms_to_duration(t));
    }
    // As Thanos names it: `raw` (or `0s`), `auto`, or the coarsest rollup to read where the
    // step allows (`1m`, `5m`). Without it, raw samples wherever they exist.
    if let Some(r) = p.get("max_source_resolution") {
        opts.source_resolution = match r {
            "" => SourceResolution::Exact,
            "auto" => SourceResolution::UpTo(i64::MAX),
            "raw" => SourceResolution::Raw,
            other => match vigil_tsdb::time::parse_duration_or_seconds(other) {
                Ok(0) => SourceResolution::Raw,
                Ok(ms) if ms > 0 => SourceResolution::UpTo(ms),
                Ok(_) => {
                    return Err(ApiError::bad_data(
                        "invalid parameter \"max_source_resolution\": must not be negative",
                    ));
                }
                Err(e) => {
                    return Err(ApiError::bad_data(format!(
                        "invalid parameter \"max_source_resolution\": {e}"
                    )));
                }
            },
        };
    }
    Ok(vigil_tsdb::promql::Engine::new(opts))
}

/// `/api/v1/query`
pub(crate) async fn query(State(app): State<Arc<App>>, p: Params) -> Response {
    answer_warned(app.queries.clone(), move || {
        let expr = p.required("query")?.to_owned();
        let t = p.time_or("time", now_ms())?;
        let engine = engine_for(&app, &p)?;
        let (v, warnings) = engine.instant_query_warned(&*app.db, &expr, t)?;
        Ok((json::query_data(&v), warnings))
    })
    .await
}

/// `/api/v1/query_range`
pub(crate) async fn query_range(State(app): State<Arc<App>>, p: Params) -> Response {
    answer_warned(app.queries.clone(), move || {
        let expr = p.required("query")?.to_owned();
        let start = p.required_time("start")?;
        let end = p.required_time("end")?;
        if end < start {
            return Err(ApiError::bad_data(
                "invalid parameter \"end\": end timestamp must not be before start time",
            ));
        }
        let step = p
            .duration("step")?
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"step\": parameter is missing"))?;
        if step <= 0 {
            return Err(ApiError::bad_data(
                "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if (i128::from(end) - i128::from(start)) / i128::from(step) > i128::from(MAX_POINTS_PER_SERIES) {
            return Err(ApiError::bad_data(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
            ));
        }
        let engine = engine_for(&app, &p)?;
        let (v, warnings) = engine.range_query_warned(&*app.db, &expr, start, end, step)?;
        Ok((json::query_data(&v), warnings))
    })
    .await
}

/// The matcher sets of every `match[]` parameter.
fn match_sets(p: &Params, required: bool) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let selectors = p.all("match[]");
    if selectors.is_empty() && required {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let mut sets = Vec::new();
    for s in selectors {
        sets.extend(parse_selector(s).map_err(|e| ApiError::bad_data(e.to_string()))?);
    }
    Ok(sets)
}

pub(crate) fn time_range(p: &Params) -> Result<(i64, i64), ApiError> {
    let start = p.time_or("start", MIN_TIME)?;
    let end = p.time_or("end", MAX_TIME)?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    Ok((start, end))
}

/// `/api/v1/series`
pub(crate) async fn series(State(app): State<Arc<App>>, p: Params) -> Response {
    answer_warned(app.queries.clone(), move || {
        let sets = match_sets(&p, true)?;
        let (start, end) = time_range(&p)?;
        let mut all: Vec<Labels> = Vec::new();
        for set in &sets {
            all.extend(app.db.series(set, start, end)?);
        }
        all.sort();
        all.dedup();
        let warning = apply_limit(&p, &mut all)?;
        let mut out = String::from("[");
        for (i, l) in all.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_labels(&mut out, l);
        }
        out.push(']');
        Ok((out, warning.into_iter().collect()))
    })
    .await
}

fn string_array(values: &[String]) -> String {
    let mut out = String::from("[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(&mut out, v);
    }
    out.push(']');
    out
}

/// Union of `f` over the match sets (or over all series when there are none), sorted.
fn collect_strings(
    sets: &[Vec<Matcher>],
    mut f: impl FnMut(&[Matcher]) -> vigil_tsdb::Result<Vec<String>>,
) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    if sets.is_empty() {
        out = f(&[])?;
    }
    for set in sets {
        out.extend(f(set)?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `/api/v1/labels`
pub(crate) async fn labels(State(app): State<Arc<App>>, p: Params) -> Response {
    answer_warned(app.queries.clone(), move || {
        let sets = match_sets(&p, false)?;
        let (start, end) = time_range(&p)?;
        let mut names = collect_strings(&sets, |m| app.db.label_names(m, start, end))?;
        let warning = apply_limit(&p, &mut names)?;
        Ok((string_array(&names), warning.into_iter().collect()))
    })
    .await
}

/// `/api/v1/label/<name>/values`
pub(crate) async fn label_values(State(app): State<Arc<App>>, Path(name): Path<String>, p: Params) -> Response {
    answer_warned(app.queries.clone(), move || {
        if !vigil_tsdb::labels::is_valid_name(&name) {
            return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
        }
        let sets = match_sets(&p, false)?;
        let (start, end) = time_range(&p)?;
        let mut values = collect_strings(&sets, |m| app.db.label_values(&name, m, start, end))?;
        let warning = apply_limit(&p, &mut values)?;
        Ok((string_array(&values), warning.into_iter().collect()))
    })
    .await
}

/// `/api/v1/status/buildinfo`
pub(crate) async fn buildinfo() -> Response {
    json::success_value(&serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": option_env!("VIGIL_GIT_REVISION").unwrap_or("unknown"),
        "branch": "main",
        "buildUser": "vigil",
        "buildDate": "",
        "goVersion": concat!("rust (vigil ", env!("CARGO_PKG_VERSION"), ")"),
    }))
}

/// `/api/v1/admin/tsdb/delete_series` (POST or PUT): deletes every sample of the series matching
/// any `match[]`, in the head and in the blocks. Whole series only: `start` and `end`, when
/// given, must cover all time. Answers 204. Off unless `server.enable_admin_api` is set.
pub(crate) async fn delete_series(State(app): State<Arc<App>>, p: Params) -> Response {
    if !app.admin_api {
        return ApiError::unavailable("admin APIs disabled (server.enable_admin_api)").into_response();
    }
    let run = move || -> Result<u64, ApiError> {
        let sets = match_sets(&p, true)?;
        let (start, end) = time_range(&p)?;
        if start > MIN_TIME || end < MAX_TIME {
            return Err(ApiError::bad_data(
                "vigil deletes whole series only: leave out start and end",
            ));
        }
        app.db
            .delete_series(&sets)
            .map_err(|e| ApiError::internal(e.to_string()))
    };
    match tokio::task::spawn_blocking(run).await {
        Ok(Ok(_)) => axum::http::StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::internal(format!("delete task failed: {e}")).into_response(),
    }
}
