//! A small client of the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/alerts`), which vigil serves and so does Prometheus.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::{Error, time};

/// Labels of a series.
pub type Labels = BTreeMap<String, String>;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its labels.
    pub labels: Labels,
    /// Its value.
    pub value: f64,
}

/// One series of a range query: (unix seconds, value) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its labels.
    pub labels: Labels,
    /// Time-ordered points.
    pub points: Vec<(f64, f64)>,
}

/// Whether an alert is waiting out its `for` or firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    /// Firing: a page went out.
    Firing,
    /// Pending: the condition holds, not yet for long enough.
    Pending,
}

/// An active alert, from `/api/v1/alerts`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Labels, `alertname` among them.
    pub labels: Labels,
    /// Annotations (`summary`, `description`, `runbook_url`, ...).
    pub annotations: Labels,
    /// Pending or firing.
    pub state: AlertState,
    /// When it became active (RFC 3339, as the API says it).
    pub active_at: String,
    /// The value of the expression when last evaluated.
    pub value: f64,
    /// Who acknowledged it and why (`bob: rolling back`), as vigil says.
    pub ack: Option<String>,
    /// Whether a silence mutes it, as vigil says.
    pub silenced: bool,
}

impl Alert {
    /// `alertname`.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
}

/// A silence, from Alertmanager's `GET /api/v2/silences` (which vigil serves too).
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    /// Its id.
    pub id: String,
    /// Its matchers as Alertmanager writes them: `service="payments", route=~"r.*"`.
    pub matchers: String,
    /// `active`, `pending` or `expired`.
    pub state: String,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// When it starts (unix seconds).
    pub starts_at: f64,
    /// When it ends (unix seconds).
    pub ends_at: f64,
}

/// One SLO of vigil's `GET /api/v1/slos`, with its figures per label set.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// Its name.
    pub name: String,
    /// The objective, in percent (99.9).
    pub objective: f64,
    /// `30d` or `28d`.
    pub period: String,
    /// What a good request is: `availability`, or `latency under 0.5s`.
    pub sli: String,
    /// Per label set of its `by` labels, worst budget first.
    pub series: Vec<SloSeries>,
}

/// One label set of an SLO.
#[derive(Debug, Clone, PartialEq)]
pub struct SloSeries {
    /// Its `by` labels, `name="value"` pairs.
    pub labels: String,
    /// The error budget left over the period, as a share of it (negative when spent); `None`
    /// until the rules recorded it.
    pub budget_left: Option<f64>,
    /// How fast the budget burnt over the last hour (1: as fast as the period allows).
    pub burn_rate_1h: Option<f64>,
}

/// One entry of vigil's alert history (`kept:history` events): a transition or what became of
/// a notification.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// When (unix seconds).
    pub time: f64,
    /// The alert's name.
    pub alertname: String,
    /// `pending`, `firing`, `resolved`, `sent`, `failed`, `silenced`, `inhibited`,
    /// `acknowledged` or `fallback`.
    pub state: String,
    /// The notification's receiver.
    pub receiver: String,
    /// Who acknowledged.
    pub by: String,
    /// Their comment, or why a notification failed.
    pub comment: String,
    /// The alert's labels, `name="value"` pairs.
    pub labels: String,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Value,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// The API of one server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    timeout: Duration,
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:9464`), with a per-request timeout.
    pub fn new(base: &str, timeout: Duration) -> Result<Client, Error> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::Http(e.to_string()))?;
        Ok(Client::with_http(base, http, timeout))
    }

    /// [`Client::new`] calling through `http` (which carries credentials and trusted CAs).
    pub fn with_http(base: &str, http: reqwest::Client, timeout: Duration) -> Client {
        Client {
            base: base.trim_end_matches('/').to_owned(),
            http,
            timeout,
        }
    }

    /// The server's address.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn call(&self, path: &str, params: &[(&str, String)]) -> Result<Value, Error> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .post(&url)
            .timeout(self.timeout)
            .form(params)
            .send()
            .await
            .map_err(|e| Error::Http(format!("{url}: {e}")))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| Error::Http(format!("{url}: {e}")))?;
        if !status.is_success() && serde_json::from_slice::<Envelope>(&body).is_err() {
            return Err(Error::Http(format!("{url}: HTTP {status}")));
        }
        parse_envelope(&body)
    }

    /// `query` at the server's present time.
    pub async fn query(&self, query: &str) -> Result<Vec<Sample>, Error> {
        parse_vector(&self.call("/api/v1/query", &[("query", query.to_owned())]).await?)
    }

    /// `query` over `[start, end]` (unix seconds) every `step` seconds.
    pub async fn query_range(&self, query: &str, start: f64, end: f64, step: f64) -> Result<Vec<Series>, Error> {
        let params = [
            ("query", query.to_owned()),
            ("start", format!("{start:.3}")),
            ("end", format!("{end:.3}")),
            ("step", format!("{step}")),
        ];
        parse_matrix(&self.call("/api/v1/query_range", &params).await?)
    }

    /// Acknowledges the firing alerts matching `matchers` (label, value) as `author`; returns
    /// how many were acknowledged.
    pub async fn ack(&self, matchers: &[(String, String)], author: &str, comment: &str) -> Result<usize, Error> {
        let mut params: Vec<(&str, String)> = vec![("author", author.to_owned()), ("comment", comment.to_owned())];
        params.extend(matchers.iter().map(|(k, v)| ("matcher", format!("{k}={v:?}"))));
        let data = self.call("/api/v1/alerts/ack", &params).await?;
        Ok(data.get("acknowledged").and_then(Value::as_array).map_or(0, Vec::len))
    }

    /// Pending and firing alerts.
    pub async fn alerts(&self) -> Result<Vec<Alert>, Error> {
        let (_, body) = self.get("/api/v1/alerts", &[]).await?;
        parse_alerts(&parse_envelope(&body)?)
    }

    /// Every silence the server keeps (Alertmanager's API; a Prometheus has none).
    pub async fn silences(&self) -> Result<Vec<Silence>, Error> {
        let (status, body) = self.get("/api/v2/silences", &[]).await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(Error::Api("this server keeps no silences".into()));
        }
        if !status.is_success() {
            return Err(Error::Api(format!("silences: HTTP {status}")));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| Error::Api(format!("silences: {e}")))?;
        parse_silences(&v)
    }

    /// The SLOs of the spec files the server loaded (vigil's API; a Prometheus has none).
    pub async fn slos(&self) -> Result<Vec<Slo>, Error> {
        let (status, body) = self.get("/api/v1/slos", &[]).await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(Error::Api("this server keeps no SLOs".into()));
        }
        parse_slos(&parse_envelope(&body)?)
    }

    /// The newest `limit` entries of the alert history (vigil's events API).
    pub async fn history(&self, limit: usize) -> Result<Vec<HistoryEntry>, Error> {
        let params = [("q", "kept:history".to_owned()), ("limit", limit.to_string())];
        let (status, body) = self.get("/api/v1/events/search", &params).await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(Error::Api("this server keeps no alert history".into()));
        }
        parse_history(&parse_envelope(&body)?)
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<(reqwest::StatusCode, Vec<u8>), Error> {
        let url = format!("{}{path}", self.base);
        let target = reqwest::Url::parse_with_params(&url, params).map_err(|e| Error::Http(format!("{url}: {e}")))?;
        let resp = self
            .http
            .get(target)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| Error::Http(format!("{url}: {e}")))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| Error::Http(format!("{url}: {e}")))?;
        Ok((status, body.to_vec()))
    }
}

/// The `data` of a successful answer, or the API's error.
pub fn parse_envelope(body: &[u8]) -> Result<Value, Error> {
    let env: Envelope =
        serde_json::from_slice(body).map_err(|e| Error::Api(format!("not a Prometheus API answer: {e}")))?;
    if env.status == "success" {
        Ok(env.data)
    } else {
        Err(Error::Api(format!(
            "{}: {}",
            env.error_type.unwrap_or_else(|| "error".into()),
            env.error.unwrap_or_default()
        )))
    }
}

fn labels(v: &Value) -> Labels {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn point(v: &Value) -> Option<(f64, f64)> {
    let pair = v.as_array()?;
    let t = pair.first()?.as_f64()?;
    let v = number(pair.get(1)?.as_str()?)?;
    Some((t, v))
}

/// Prometheus writes values as strings, with `NaN`, `+Inf` and `-Inf`.
fn number(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

fn result<'a>(data: &'a Value, want: &str) -> Result<&'a Vec<Value>, Error> {
    let kind = data.get("resultType").and_then(Value::as_str).unwrap_or("");
    if kind != want {
        return Err(Error::Api(format!("expected a {want}, the server answered a {kind:?}")));
    }
    data.get("result")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Api("answer without a result".into()))
}

/// The samples of a `vector` answer (a `scalar` answer is one sample without labels).
pub fn parse_vector(data: &Value) -> Result<Vec<Sample>, Error> {
    if data.get("resultType").and_then(Value::as_str) == Some("scalar") {
        let (_, value) = data
            .get("result")
            .and_then(point)
            .ok_or_else(|| Error::Api("bad scalar".into()))?;
        return Ok(vec![Sample {
            labels: Labels::new(),
            value,
        }]);
    }
    Ok(result(data, "vector")?
        .iter()
        .filter_map(|s| {
            let (_, value) = point(s.get("value")?)?;
            Some(Sample {
                labels: labels(s.get("metric")?),
                value,
            })
        })
        .collect())
}

/// The series of a `matrix` answer.
pub fn parse_matrix(data: &Value) -> Result<Vec<Series>, Error> {
    Ok(result(data, "matrix")?
        .iter()
        .filter_map(|s| {
            Some(Series {
                labels: labels(s.get("metric")?),
                points: s.get("values")?.as_array()?.iter().filter_map(point).collect(),
            })
        })
        .collect())
}

/// The alerts of an `/api/v1/alerts` answer, firing first, then by name.
pub fn parse_alerts(data: &Value) -> Result<Vec<Alert>, Error> {
    let list = data
        .get("alerts")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Api("answer without alerts".into()))?;
    let mut alerts: Vec<Alert> = list
        .iter()
        .filter_map(|a| {
            let state = match a.get("state")?.as_str()? {
                "firing" => AlertState::Firing,
                "pending" => AlertState::Pending,
                _ => return None,
            };
            Some(Alert {
                labels: labels(a.get("labels")?),
                annotations: a.get("annotations").map(labels).unwrap_or_default(),
                state,
                active_at: a.get("activeAt").and_then(Value::as_str).unwrap_or("").to_owned(),
                value: a
                    .get("value")
                    .and_then(Value::as_str)
                    .and_then(number)
                    .unwrap_or(f64::NAN),
                ack: a.get("acknowledgement").map(|k| {
                    format!(
                        "{}: {}",
                        k.get("by").and_then(Value::as_str).unwrap_or("?"),
                        k.get("comment").and_then(Value::as_str).unwrap_or("")
                    )
                }),
                silenced: a
                    .get("silencedBy")
                    .and_then(Value::as_array)
                    .is_some_and(|s| !s.is_empty()),
            })
        })
        .collect();
    alerts.sort_by(|a, b| (a.state, a.name(), &a.labels).cmp(&(b.state, b.name(), &b.labels)));
    Ok(alerts)
}

/// Alertmanager's silences, newest end first within active, then pending, then expired.
pub fn parse_silences(v: &Value) -> Result<Vec<Silence>, Error> {
    let list = v
        .as_array()
        .ok_or_else(|| Error::Api("silences: expected a list".into()))?;
    let text = |s: &Value, k: &str| s.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let time = |s: &Value, k: &str| {
        s.get(k)
            .and_then(Value::as_str)
            .and_then(time::parse_rfc3339)
            .unwrap_or(0.0)
    };
    let mut out: Vec<Silence> = list
        .iter()
        .map(|s| Silence {
            id: text(s, "id"),
            matchers: s
                .get("matchers")
                .and_then(Value::as_array)
                .map(|ms| ms.iter().map(matcher).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            state: s
                .get("status")
                .and_then(|st| st.get("state"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            created_by: text(s, "createdBy"),
            comment: text(s, "comment"),
            starts_at: time(s, "startsAt"),
            ends_at: time(s, "endsAt"),
        })
        .collect();
    let rank = |state: &str| match state {
        "active" => 0,
        "pending" => 1,
        _ => 2,
    };
    out.sort_by(|a, b| {
        rank(&a.state)
            .cmp(&rank(&b.state))
            .then(b.ends_at.total_cmp(&a.ends_at))
    });
    Ok(out)
}

fn matcher(m: &Value) -> String {
    let flag = |k: &str, default: bool| m.get(k).and_then(Value::as_bool).unwrap_or(default);
    let op = match (flag("isEqual", true), flag("isRegex", false)) {
        (true, false) => "=",
        (false, false) => "!=",
        (true, true) => "=~",
        (false, true) => "!~",
    };
    let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default();
    format!("{}{op}{:?}", s("name"), s("value"))
}

/// The `slos` of vigil's SLO API, each label set's figures with it, the label sets with the
/// least budget left first (those without a figure yet last).
pub fn parse_slos(data: &Value) -> Result<Vec<Slo>, Error> {
    let list = data
        .get("slos")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Api("answer without slos".into()))?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    Ok(list
        .iter()
        .map(|s| {
            let sli = s.get("sli");
            let sli = match sli.and_then(|v| v.get("threshold")).and_then(Value::as_f64) {
                Some(t) => format!("latency under {t}s"),
                None => sli.map(|v| text(v, "kind")).unwrap_or_default(),
            };
            let mut series: Vec<SloSeries> = s
                .get("series")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .map(|x| SloSeries {
                            labels: x
                                .get("labels")
                                .and_then(Value::as_object)
                                .map(|m| {
                                    m.iter()
                                        .map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or_default()))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                })
                                .unwrap_or_default(),
                            budget_left: x.get("errorBudgetRemaining").and_then(Value::as_f64),
                            burn_rate_1h: x.get("burnRate1h").and_then(Value::as_f64),
                        })
                        .collect()
                })
                .unwrap_or_default();
            series.sort_by(|a, b| {
                let left = |x: &SloSeries| x.budget_left.unwrap_or(f64::INFINITY);
                left(a).total_cmp(&left(b)).then_with(|| a.labels.cmp(&b.labels))
            });
            Slo {
                name: text(s, "name"),
                objective: s.get("objective").and_then(Value::as_f64).unwrap_or(f64::NAN),
                period: text(s, "period"),
                sli,
                series,
            }
        })
        .collect())
}

/// The `events` of an events-API answer, as history entries (newest first, as the API sends
/// them); events without an alert record are skipped.
pub fn parse_history(data: &Value) -> Result<Vec<HistoryEntry>, Error> {
    let events = data
        .get("events")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Api("answer without events".into()))?;
    Ok(events
        .iter()
        .filter_map(|e| {
            let a = e.get("alert")?;
            let text = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            Some(HistoryEntry {
                time: e.get("timestamp").and_then(Value::as_f64).unwrap_or(0.0) / 1000.0,
                alertname: text("alertname"),
                state: text("state"),
                receiver: text("receiver"),
                by: text("by"),
                comment: text("comment"),
                labels: text("labels"),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(body: &str) -> Value {
        parse_envelope(body.as_bytes()).expect("success")
    }

    #[test]
    fn slos_with_the_least_budget_first() {
        let d = data(
            r#"{"status":"success","data":{"slos":[
              {"name":"api-latency","objective":99,"period":"30d","sli":{"kind":"latency","threshold":2.5},
               "by":["service"],"series":[]},
              {"name":"api-availability","objective":99.9,"period":"28d","sli":{"kind":"availability"},
               "by":["service","route"],"series":[
                 {"labels":{"service":"orders","route":"orders-route"},"errorBudgetRemaining":0.93,"burnRate1h":0.4},
                 {"labels":{"service":"new","route":"new-route"},"errorBudgetRemaining":null,"burnRate1h":2.0},
                 {"labels":{"service":"payments","route":"payments-route"},"errorBudgetRemaining":-0.5,"burnRate1h":31.5}]}]}}"#,
        );
        let s = parse_slos(&d).expect("slos");
        assert_eq!(s[0].sli, "latency under 2.5s");
        assert!(s[0].series.is_empty());
        let a = &s[1];
        assert_eq!(
            (a.name.as_str(), a.objective, a.period.as_str()),
            ("api-availability", 99.9, "28d")
        );
        let order: Vec<_> = a.series.iter().map(|x| x.labels.as_str()).collect();
        assert_eq!(
            order,
            [
                r#"route="payments-route", service="payments""#,
                r#"route="orders-route", service="orders""#,
                r#"route="new-route", service="new""#
            ]
        );
        assert_eq!(a.series[0].burn_rate_1h, Some(31.5));
        assert_eq!(a.series[2].budget_left, None);
        assert!(parse_slos(&Value::Null).is_err());
    }

    #[test]
    fn vectors_matrices_and_scalars() {
        let v = data(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"service":"a"},"value":[1700000000.5,"1.5"]},
                {"metric":{"service":"b"},"value":[1700000000.5,"NaN"]}]}}"#,
        );
        let s = parse_vector(&v).expect("vector");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].labels["service"], "a");
        assert_eq!(s[0].value, 1.5);
        assert!(s[1].value.is_nan());

        let m = data(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{},"values":[[1,"1"],[2,"+Inf"]]}]}}"#,
        );
        let s = parse_matrix(&m).expect("matrix");
        assert_eq!(s[0].points, [(1.0, 1.0), (2.0, f64::INFINITY)]);

        let sc = data(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}"#);
        assert_eq!(parse_vector(&sc).expect("scalar")[0].value, 3.0);
        assert!(parse_matrix(&v).is_err());
    }

    #[test]
    fn api_errors_are_reported() {
        let e = parse_envelope(br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#);
        assert_eq!(e.expect_err("error").to_string(), "bad_data: parse error");
        assert!(parse_envelope(b"<html>").is_err());
    }

    #[test]
    fn alerts_firing_first() {
        let v = data(
            r#"{"status":"success","data":{"alerts":[
              {"labels":{"alertname":"B"},"annotations":{},"state":"pending","activeAt":"t","value":"1e+00"},
              {"labels":{"alertname":"A"},"annotations":{"summary":"s"},"state":"firing","activeAt":"t","value":"2e+00"},
              {"labels":{"alertname":"C"},"state":"inactive","value":"0"}]}}"#,
        );
        let a = parse_alerts(&v).expect("alerts");
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].name(), a[0].state, a[0].value), ("A", AlertState::Firing, 2.0));
        assert_eq!(a[0].annotations["summary"], "s");
        assert_eq!(a[1].state, AlertState::Pending);
    }

    #[test]
    fn silences_active_first_with_alertmanager_matchers() {
        let v: Value = serde_json::from_str(
            r#"[
              {"id":"a","status":{"state":"expired"},"matchers":[{"name":"x","value":"1","isRegex":false}],
               "startsAt":"2026-11-22T05:00:00Z","endsAt":"2026-11-22T06:00:00Z","createdBy":"c","comment":"old"},
              {"id":"b","status":{"state":"active"},"matchers":[{"name":"service","value":"pay.*","isRegex":true,"isEqual":true},
               {"name":"env","value":"dev","isRegex":false,"isEqual":false}],
               "startsAt":"2026-11-22T06:00:00Z","endsAt":"2026-11-22T08:00:00Z","createdBy":"alice","comment":"deploy"}
            ]"#,
        )
        .expect("JSON");
        let s = parse_silences(&v).expect("parsed");
        assert_eq!(s[0].id, "b");
        assert_eq!(s[0].matchers, r#"service=~"pay.*", env!="dev""#);
        assert_eq!(s[0].created_by, "alice");
        assert_eq!(s[0].ends_at, s[0].starts_at + 7200.0);
        assert_eq!(s[1].state, "expired");
        assert!(parse_silences(&Value::Null).is_err());
    }

    #[test]
    fn history_entries_from_events() {
        let d = data(
            r#"{"status":"success","data":{"total":2,"events":[
              {"timestamp":1795330170000,"kept":"history","alert":{"alertname":"A","state":"acknowledged","receiver":"",
               "by":"bob","comment":"on it","labels":"{service=\"p\"}","groupKey":"g"}},
              {"timestamp":1795330100000,"kept":"slow"}
            ]}}"#,
        );
        let h = parse_history(&d).expect("parsed");
        assert_eq!(h.len(), 1, "events without an alert record are skipped");
        assert_eq!(h[0].time, 1_795_330_170.0);
        assert_eq!((h[0].state.as_str(), h[0].by.as_str()), ("acknowledged", "bob"));
    }
}
