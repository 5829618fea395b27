//! Request parameters as Prometheus's API takes them: from the query string and, for POST, from
//! a form-encoded body, with repeated keys such as `match[]`.

use axum::http::{HeaderMap, header};
use bytes::Bytes;
use vigil_tsdb::Timestamp;
use vigil_tsdb::time::{parse_duration_or_seconds, parse_timestamp};

use super::json::ApiError;

/// All parameters of one request.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Parameters from a form body (if the request has one) and the query string; as with Go's
    /// `FormValue`, which Prometheus uses, body values come first.
    pub(crate) fn from_request(query: Option<&str>, headers: &HeaderMap, body: &Bytes) -> Params {
        let mut v: Vec<(String, String)> = Vec::new();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        if is_form && !body.is_empty() {
            v.extend(form_urlencoded::parse(body).into_owned());
        }
        if let Some(q) = query {
            v.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Params(v)
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A required parameter.
    pub(crate) fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::bad_data(format!("invalid parameter \"{name}\": parameter is missing")))
    }

    /// A timestamp parameter, if present.
    pub(crate) fn time(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        match self.get(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse_time_param(v)
                .map(Some)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}"))),
        }
    }

    /// A timestamp parameter, or `default` when absent.
    pub(crate) fn time_or(&self, name: &str, default: Timestamp) -> Result<Timestamp, ApiError> {
        Ok(self.time(name)?.unwrap_or(default))
    }

    /// A required timestamp parameter.
    pub(crate) fn required_time(&self, name: &str) -> Result<Timestamp, ApiError> {
        self.time(name)?
            .ok_or_else(|| ApiError::bad_data(format!("invalid parameter \"{name}\": parameter is missing")))
    }

    /// A duration parameter (Prometheus notation or seconds), if present.
    pub(crate) fn duration(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse_duration_or_seconds(v)
                .map(Some)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}"))),
        }
    }
}

/// Prometheus's API also accepts its minimum and maximum time strings for open ranges.
fn parse_time_param(v: &str) -> Result<Timestamp, String> {
    match v {
        "-292273086-05-16T16:47:06Z" => Ok(MIN_TIME),
        "292277025-08-18T07:12:54.999999999Z" => Ok(MAX_TIME),
        _ => parse_timestamp(v),
    }
}

/// Earliest time a range parameter can mean (open start).
pub(crate) const MIN_TIME: Timestamp = i64::MIN / 2;
/// Latest time a range parameter can mean (open end).
pub(crate) const MAX_TIME: Timestamp = i64::MAX / 2;

/// Handlers take their parameters as an extractor: query string and form body together.
impl<S: Send + Sync> axum::extract::FromRequest<S> for Params {
    type Rejection = axum::response::Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let query = req.uri().query().map(str::to_owned);
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Params::from_request(query.as_deref(), &headers, &body))
    }
}
