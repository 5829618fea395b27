//! Generic webhook: POSTs Alertmanager's webhook payload (version 4), so anything that takes
//! Alertmanager's webhooks takes vigil's.

use std::time::Duration;

use serde_json::{Map, Value, json};
use vigil_tsdb::time::format_rfc3339;

use super::config::WebhookConfig;
use super::retry::{SendError, classify_status};
use super::{Page, Receiver, Status};

/// Alertmanager's zero time, used as `endsAt` of a firing alert.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// POSTs pages to a URL.
#[derive(Debug, Clone)]
pub struct WebhookReceiver {
    url: String,
    client: reqwest::Client,
}

impl WebhookReceiver {
    /// A receiver for `cfg`.
    pub fn new(cfg: &WebhookConfig) -> Result<Self, String> {
        Ok(WebhookReceiver {
            url: cfg.url.clone(),
            client: http_client(cfg.timeout)?,
        })
    }
}

pub(super) fn http_client(timeout_ms: i64) -> Result<reqwest::Client, String> {
    // One TLS stack for the whole binary: rustls with ring. Installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_millis(timeout_ms.max(1) as u64))
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("building an HTTP client: {e}"))
}

/// POSTs `body` as JSON and classifies the answer. Errors name the target as `shown` (the URL,
/// or a description where the URL is a secret).
pub(super) async fn post_json(client: &reqwest::Client, url: &str, shown: &str, body: &Value) -> Result<(), SendError> {
    let resp = client.post(url).json(body).send().await.map_err(|e| {
        let what = if e.is_timeout() { "timed out" } else { "failed" };
        SendError::Retryable(format!("POST {shown} {what}: {}", e.without_url()))
    })?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    classify_status(status, &text)
}

fn map(pairs: impl IntoIterator<Item = (String, String)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect::<Map<_, _>>(),
    )
}

/// The version 4 payload for one page: a group of one alert.
pub fn webhook_payload(page: &Page, receiver: &str) -> Value {
    let a = &page.alert;
    let labels = map(a.labels.iter().map(|l| (l.name.to_string(), l.value.to_string())));
    let annotations = map(a.annotations.iter().cloned());
    let ends_at = match page.status {
        Status::Firing => ZERO_TIME.to_owned(),
        Status::Resolved => format_rfc3339(a.resolved_at.unwrap_or(a.active_at)),
    };
    let alertname = page.alertname().to_owned();
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname={alertname:?}}}/{}", a.fingerprint()),
        "truncatedAlerts": 0,
        "status": page.status.as_str(),
        "receiver": receiver,
        "groupLabels": {"alertname": alertname},
        "commonLabels": labels.clone(),
        "commonAnnotations": annotations.clone(),
        "externalURL": page.external_url,
        "alerts": [{
            "status": page.status.as_str(),
            "labels": labels,
            "annotations": annotations,
            "startsAt": format_rfc3339(a.active_at),
            "endsAt": ends_at,
            "generatorURL": page.generator_url(),
            "fingerprint": a.fingerprint(),
        }],
    })
}

impl Receiver for WebhookReceiver {
    async fn send(&self, page: &Page) -> Result<(), SendError> {
        post_json(
            &self.client,
            &self.url,
            &self.url,
            &webhook_payload(page, &page.receiver),
        )
        .await
    }
}
