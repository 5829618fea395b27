//! PagerDuty's Events API v2: a group's notification triggers an incident, and its resolution
//! resolves it, under one `dedup_key` per group (the SHA-256 of the group key, as Alertmanager
//! derives it), so repeats and updates land on the same incident.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::config::PagerDutyConfig;
use super::email::subject;
use super::retry::SendError;
use super::slack::{against_history, place};
use super::stages::Notification;
use super::webhook::{http_client, post_json};
use super::{SendContext, Sender, Status};

/// Sends notifications as PagerDuty events.
#[derive(Debug, Clone)]
pub struct PagerDutySender {
    cfg: PagerDutyConfig,
    client: reqwest::Client,
}

impl PagerDutySender {
    /// A sender for `cfg`.
    pub fn new(cfg: &PagerDutyConfig, timeout: std::time::Duration) -> Result<Self, super::DestinationError> {
        Ok(PagerDutySender {
            cfg: cfg.clone(),
            client: http_client(timeout)?,
        })
    }
}

/// The incident's key for a group: the SHA-256 of its group key, in hex.
pub fn dedup_key(group_key: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, group_key.as_bytes());
    digest.as_ref().iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// PagerDuty's severity for a vigil severity label.
fn severity(label: Option<&str>) -> &'static str {
    match label {
        Some("critical" | "page") => "critical",
        Some("warning" | "ticket") => "warning",
        Some("info") => "info",
        _ => "error",
    }
}

/// The event for a notification.
pub fn pagerduty_event(n: &Notification, ctx: &SendContext, cfg: &PagerDutyConfig) -> Value {
    let key = dedup_key(&n.group_key);
    if n.ack.is_some() {
        return json!({"routing_key": cfg.routing_key.expose(), "dedup_key": key, "event_action": "acknowledge"});
    }
    if n.status() == Status::Resolved {
        return json!({"routing_key": cfg.routing_key.expose(), "dedup_key": key, "event_action": "resolve"});
    }
    let common = n.common_labels();
    let label = |k: &str| common.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let mut summary = subject(n);
    if summary.len() > 1024 {
        let mut cut = 1021;
        while !summary.is_char_boundary(cut) {
            cut -= 1;
        }
        summary.truncate(cut);
        summary.push_str("...");
    }
    let firing: Vec<String> = n
        .firing()
        .map(|a| format!("{} at {}: {}", a.alertname(), place(a), against_history(a)))
        .collect();
    let mut payload = json!({
        "summary": summary,
        "source": cfg.source.as_deref().or(label("service")).unwrap_or("vigil"),
        "severity": cfg.severity.as_deref().unwrap_or_else(|| severity(label("severity"))),
        "custom_details": {
            "firing": firing,
            "num_firing": n.firing().count(),
            "num_resolved": n.resolved().count(),
            "group_key": n.group_key,
        },
    });
    for (k, v) in [
        ("class", &cfg.class),
        ("component", &cfg.component),
        ("group", &cfg.group),
    ] {
        if let (Some(v), Some(obj)) = (v, payload.as_object_mut()) {
            obj.insert(k.into(), Value::String(v.clone()));
        }
    }
    let links: Vec<Value> = n
        .alerts
        .iter()
        .filter_map(|a| a.annotation("runbook_url"))
        .take(1)
        .map(|u| json!({"href": u, "text": "Runbook"}))
        .collect();
    json!({
        "routing_key": cfg.routing_key.expose(),
        "dedup_key": key,
        "event_action": "trigger",
        "client": cfg.client,
        "client_url": cfg.client_url.clone().unwrap_or_else(|| ctx.external_url.clone()),
        "payload": payload,
        "links": links,
    })
}

impl Sender for PagerDutySender {
    async fn send(&self, n: &Notification, ctx: &SendContext) -> Result<(), SendError> {
        // The incident is the whole group: acknowledge it only once every alert it was told
        // about is acknowledged, so a new alert of the group still pages.
        if n.ack.is_some()
            && !n
                .log
                .firing
                .iter()
                .all(|fp| n.alerts.iter().any(|a| a.fingerprint() == *fp))
        {
            return Ok(());
        }
        let key = self
            .cfg
            .routing_key
            .current()
            .map_err(|e| SendError::Retryable(e.to_string()))?;
        let mut event = pagerduty_event(n, ctx, &self.cfg);
        event["routing_key"] = Value::String(key.into_owned());
        post_json(&self.client, &self.cfg.url, &self.cfg.url, &event).await
    }
}
