//! Forwarding to Alertmanager clusters (`alerting.alertmanagers`): vigil's alerts are POSTed to
//! each one's `/api/v2/alerts` as Prometheus sends them: after an evaluation that changed them,
//! and again every minute while they fire (Prometheus's resend delay), a firing alert with
//! `endsAt` four resend delays ahead, a resolved one with the time it resolved (for 15 minutes).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use vigil_tsdb::Timestamp;
use vigil_tsdb::time::format_rfc3339;

use super::SendContext;
use super::alerts::PipelineAlert;
use super::webhook::{http_client, map};

/// Prometheus's `--rules.alert.resend-delay`.
const RESEND_DELAY_MS: i64 = 60_000;

/// Sends alerts to Alertmanagers: one task per Alertmanager, each sending the latest set (a
/// set not yet sent when a newer one comes is skipped), so an older set never lands after a
/// newer one.
#[derive(Debug)]
pub(super) struct Forwarder {
    urls: Vec<String>,
    senders: Vec<watch::Sender<Option<Value>>>,
    last_sent: Timestamp,
}

/// The body Alertmanager's `POST /api/v2/alerts` takes.
pub fn postable_alerts(alerts: &[PipelineAlert], ctx: &SendContext, now: Timestamp) -> Value {
    Value::Array(
        alerts
            .iter()
            .map(|a| {
                json!({
                    "labels": map(a.labels.iter().map(|l| (l.name.to_string(), l.value.to_string()))),
                    "annotations": map(a.annotations.iter().cloned()),
                    "startsAt": format_rfc3339(a.fired_at),
                    "endsAt": format_rfc3339(a.ends_at.unwrap_or(now + 4 * RESEND_DELAY_MS)),
                    "generatorURL": ctx.generator_url(&a.expr),
                })
            })
            .collect(),
    )
}

impl Forwarder {
    /// A forwarder to the Alertmanagers at `urls` (their base URLs); starts a task for each
    /// (needs a tokio runtime).
    pub(super) fn new(urls: &[String]) -> Result<Forwarder, super::DestinationError> {
        for u in urls {
            super::config::check_url(u, "alerting.alertmanagers")?;
        }
        let client = http_client(Duration::from_secs(10))?;
        let senders = urls
            .iter()
            .map(|u| {
                let url = format!("{}/api/v2/alerts", u.trim_end_matches('/'));
                let (tx, rx) = watch::channel(None);
                tokio::spawn(post_latest(client.clone(), url, rx));
                tx
            })
            .collect();
        Ok(Forwarder {
            urls: urls.to_vec(),
            senders,
            last_sent: i64::MIN,
        })
    }

    /// The Alertmanagers it sends to.
    pub(super) fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Whether alerts are due to be sent at `now`: when they changed, or a resend delay after
    /// the last send.
    pub(super) fn due(&mut self, changed: bool, now: Timestamp) -> bool {
        if self.senders.is_empty() || (!changed && now.saturating_sub(self.last_sent) < RESEND_DELAY_MS) {
            return false;
        }
        self.last_sent = now;
        true
    }

    /// Hands `alerts` to every Alertmanager's task; a failed send is logged, and the next one
    /// (a minute later at most) carries the alerts again.
    pub(super) fn send(&self, alerts: &[PipelineAlert], ctx: &SendContext, now: Timestamp) {
        if alerts.is_empty() {
            return;
        }
        let body = postable_alerts(alerts, ctx, now);
        for tx in &self.senders {
            tx.send_replace(Some(body.clone()));
        }
    }
}

/// POSTs the latest set of alerts to one Alertmanager, one request at a time.
async fn post_latest(client: reqwest::Client, url: String, mut rx: watch::Receiver<Option<Value>>) {
    while rx.changed().await.is_ok() {
        let Some(body) = rx.borrow_and_update().clone() else {
            continue;
        };
        match client.post(&url).json(&body).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(url, status = %r.status(), "an Alertmanager refused the alerts"),
            Err(e) => tracing::warn!(url, error = %e.without_url(), "sending alerts to an Alertmanager failed"),
        }
    }
}
