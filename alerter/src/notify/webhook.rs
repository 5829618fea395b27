//! Generic webhook: POSTs Alertmanager's webhook payload (version 4), so anything that takes
//! Alertmanager's webhooks takes vigil's.

use std::time::Duration;

use serde_json::{Map, Value, json};
use vigil_tsdb::time::format_rfc3339;

use super::alerts::PipelineAlert;
use super::config::WebhookConfig;
use super::retry::{SendError, classify_status};
use super::stages::Notification;
use super::{DestinationError, SendContext, Sender};

/// Alertmanager's zero time, used as `endsAt` of a firing alert.
pub(super) const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// POSTs notifications to a URL.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    url: crate::Secret,
    max_alerts: usize,
    client: reqwest::Client,
}

impl WebhookSender {
    /// A sender for `cfg`.
    pub fn new(cfg: &WebhookConfig) -> Result<Self, DestinationError> {
        Ok(WebhookSender {
            url: cfg.url.clone(),
            max_alerts: cfg.max_alerts,
            client: http_client(cfg.timeout)?,
        })
    }
}

pub(super) fn http_client(timeout: Duration) -> Result<reqwest::Client, DestinationError> {
    // One TLS stack for the whole binary: rustls with ring. Installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout.max(Duration::from_millis(1)))
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(DestinationError::HttpClient)
}

/// POSTs `body` as JSON and classifies the answer. Errors name the target as `shown` (the URL,
/// or a description where the URL is a secret).
pub(super) async fn post_json(client: &reqwest::Client, url: &str, shown: &str, body: &Value) -> Result<(), SendError> {
    post_json_with(client.post(url), shown, body).await
}

/// [`post_json`] of a prepared request (with headers of its own).
pub(super) async fn post_json_with(req: reqwest::RequestBuilder, shown: &str, body: &Value) -> Result<(), SendError> {
    let resp = req.json(body).send().await.map_err(|e| {
        let what = if e.is_timeout() { "timed out" } else { "failed" };
        SendError::Retryable(format!("POST {shown} {what}: {}", e.without_url()))
    })?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    classify_status(status, &text)
}

pub(super) fn map(pairs: impl IntoIterator<Item = (String, String)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect::<Map<_, _>>(),
    )
}

/// One alert as Alertmanager's webhook and API write it.
pub(super) fn alert_json(a: &PipelineAlert, ctx: &SendContext) -> Value {
    let status = if a.ends_at.is_some() { "resolved" } else { "firing" };
    let mut v = json!({
        "status": status,
        "labels": map(a.labels.iter().map(|l| (l.name.to_string(), l.value.to_string()))),
        "annotations": map(a.annotations.iter().cloned()),
        "startsAt": format_rfc3339(a.starts_at),
        "endsAt": a.ends_at.map_or_else(|| ZERO_TIME.to_owned(), format_rfc3339),
        "generatorURL": ctx.generator_url(&a.expr),
        "fingerprint": a.fingerprint_hex(),
    });
    if let (Some(ack), Some(obj)) = (&a.ack, v.as_object_mut()) {
        obj.insert("acknowledged".into(), ack_json(ack));
    }
    v
}

/// Who acknowledged, in vigil's addition to the payload.
pub(super) fn ack_json(ack: &super::AckInfo) -> Value {
    json!({"by": ack.by, "comment": ack.comment, "at": format_rfc3339(ack.at)})
}

/// Alertmanager's webhook payload (version 4) for a notification, with at most `max_alerts`
/// alerts (0: all) and the rest counted in `truncatedAlerts`.
pub fn webhook_payload(n: &Notification, ctx: &SendContext, max_alerts: usize) -> Value {
    let keep = if max_alerts == 0 {
        n.alerts.len()
    } else {
        max_alerts.min(n.alerts.len())
    };
    let mut v = json!({
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": n.alerts.len() - keep,
        "status": n.status().as_str(),
        "receiver": n.receiver,
        "groupLabels": map(n.group_labels.iter().map(|l| (l.name.to_string(), l.value.to_string()))),
        "commonLabels": map(n.common_labels()),
        "commonAnnotations": map(n.common_annotations()),
        "externalURL": ctx.external_url,
        "alerts": n.alerts[..keep].iter().map(|a| alert_json(a, ctx)).collect::<Vec<_>>(),
    });
    // An acknowledgement notice: the payload of the group's acknowledged alerts, marked.
    if let (Some(ack), Some(obj)) = (&n.ack, v.as_object_mut()) {
        obj.insert("acknowledgement".into(), ack_json(ack));
    }
    v
}

impl Sender for WebhookSender {
    async fn send(&self, n: &Notification, ctx: &SendContext) -> Result<(), SendError> {
        let url = self.url.current().map_err(|e| SendError::Retryable(e.to_string()))?;
        // A notification sent again after a crash (between the receiver's answer and the outbox
        // forgetting it) carries the same key, so a receiver can drop the copy.
        let req = self.client.post(url.as_ref()).header("Idempotency-Key", n.id());
        // The URL may be a secret: errors name the receiver's webhook instead.
        let shown = format!("the webhook of {}", n.receiver);
        post_json_with(req, &shown, &webhook_payload(n, ctx, self.max_alerts)).await
    }
}
