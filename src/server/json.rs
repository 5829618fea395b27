//! The Prometheus API's JSON: the `success`/`error` envelope and query results. Results are
//! written by hand: times print as Prometheus prints them (`1795305600.538`, no `.0`), values as
//! strings (`"+Inf"`, `"NaN"`), and a large matrix streams into one buffer without a DOM.

use std::fmt::Write;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use vigil_tsdb::promql::{QueryError, Value, format_float};
use vigil_tsdb::{Labels, Timestamp};

/// An API error with Prometheus's `errorType` and status code.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) error_type: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn bad_data(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error_type: "bad_data",
            message: message.into(),
        }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error_type: "internal",
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error_type: "not_found",
            message: message.into(),
        }
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error_type: "unavailable",
            message: message.into(),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let status = match &e {
            QueryError::BadData(_) => StatusCode::BAD_REQUEST,
            QueryError::Execution(_) | QueryError::TooManySamples(_) | QueryError::TooManySeries(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            QueryError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            QueryError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            error_type: e.error_type(),
            message: e.to_string(),
        }
    }
}

impl From<vigil_tsdb::Error> for ApiError {
    fn from(e: vigil_tsdb::Error) -> Self {
        ApiError::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"status": "error", "errorType": self.error_type, "error": self.message});
        json_response(self.status, body.to_string())
    }
}

/// A JSON response with the right content type.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `{"status":"success","data":<data>}` where `data` is already JSON.
pub(crate) fn success(data: &str) -> Response {
    let mut s = String::with_capacity(data.len() + 32);
    s.push_str(r#"{"status":"success","data":"#);
    s.push_str(data);
    s.push('}');
    json_response(StatusCode::OK, s)
}

/// Annotations of each kind an answer lists.
const MAX_ANNOTATIONS: usize = 10;

/// `{"status":"success","data":<data>,"warnings":[...],"infos":[...]}`: the annotations of the
/// answer, those starting `PromQL info:` under `infos` as Prometheus gives them (either field
/// left out when empty).
pub(crate) fn success_warned(data: &str, annotations: &[String]) -> Response {
    if annotations.is_empty() {
        return success(data);
    }
    let (infos, warnings): (Vec<&String>, Vec<&String>) =
        annotations.iter().partition(|m| m.starts_with("PromQL info:"));
    let mut s = String::with_capacity(data.len() + 64);
    s.push_str(r#"{"status":"success","data":"#);
    s.push_str(data);
    for (field, kind, list) in [("warnings", "warning", &warnings), ("infos", "info", &infos)] {
        if list.is_empty() {
            continue;
        }
        s.push_str(&format!(r#","{field}":["#));
        // At most ten of each, as Prometheus.
        for (i, w) in list.iter().take(MAX_ANNOTATIONS).enumerate() {
            if i > 0 {
                s.push(',');
            }
            push_str(&mut s, w);
        }
        if list.len() > MAX_ANNOTATIONS {
            s.push(',');
            push_str(
                &mut s,
                &format!("{} more {kind} annotations omitted", list.len() - MAX_ANNOTATIONS),
            );
        }
        s.push(']');
    }
    s.push('}');
    json_response(StatusCode::OK, s)
}

/// `{"status":"success","data":...}` from a serializable value.
pub(crate) fn success_value<T: serde::Serialize>(data: &T) -> Response {
    match serde_json::to_string(data) {
        Ok(d) => success(&d),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

/// Appends `s` as a JSON string.
pub(crate) fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a label set as a JSON object.
pub(crate) fn push_labels(out: &mut String, l: &Labels) {
    out.push('{');
    for (i, label) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, &label.name);
        out.push(':');
        push_str(out, &label.value);
    }
    out.push('}');
}

/// Appends a timestamp as Prometheus does: seconds with up to three decimals.
pub(crate) fn push_time(out: &mut String, t: Timestamp) {
    let (secs, ms) = (t.div_euclid(1000), t.rem_euclid(1000));
    if ms == 0 {
        let _ = write!(out, "{secs}");
    } else if secs < 0 && ms != 0 {
        // -1.5 s is secs=-2, ms=500: print the float.
        let _ = write!(out, "{}", t as f64 / 1000.0);
    } else {
        let frac = format!("{ms:03}");
        let _ = write!(out, "{secs}.{}", frac.trim_end_matches('0'));
    }
}

fn push_point(out: &mut String, t: Timestamp, v: f64) {
    out.push('[');
    push_time(out, t);
    out.push_str(",\"");
    out.push_str(&format_float(v));
    out.push_str("\"]");
}

/// `{"resultType":...,"result":...}` for a query result.
pub(crate) fn query_data(v: &Value) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(r#"{"resultType":""#);
    out.push_str(v.type_name());
    out.push_str(r#"","result":"#);
    match v {
        Value::Scalar { t, v } => push_point(&mut out, *t, *v),
        Value::String { t, v } => {
            out.push('[');
            push_time(&mut out, *t);
            out.push(',');
            push_str(&mut out, v);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                push_labels(&mut out, &s.metric);
                out.push_str(r#","value":"#);
                push_point(&mut out, s.t, s.v);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                push_labels(&mut out, &s.metric);
                out.push_str(r#","values":["#);
                for (j, p) in s.points.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    push_point(&mut out, p.t, p.v);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_tsdb::promql::Sample;

    #[test]
    fn times_print_like_prometheus() {
        let mut s = String::new();
        push_time(&mut s, 1_795_305_600_000);
        s.push(' ');
        push_time(&mut s, 1_795_305_600_538);
        s.push(' ');
        push_time(&mut s, 1_795_305_600_500);
        assert_eq!(s, "1795305600 1795305600.538 1795305600.5");
    }

    #[test]
    fn vector_shape() {
        let v = Value::Vector(vec![Sample {
            metric: Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]),
            t: 1000,
            v: f64::INFINITY,
        }]);
        assert_eq!(
            query_data(&v),
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\"b"},"value":[1,"+Inf"]}]}"#
        );
    }
}
