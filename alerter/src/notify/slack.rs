//! Slack incoming webhook: a Block Kit message per notification that says what is wrong,
//! where, how bad it is against yesterday and last week, and links the runbook when the rule
//! has one. A group of many alerts lists the first ten and counts the rest.

use serde_json::{Value, json};
use vigil_tsdb::time::format_rfc3339;

use super::alerts::PipelineAlert;
use super::config::SlackConfig;
use super::retry::SendError;
use super::stages::Notification;
use super::webhook::{http_client, post_json};
use super::{SendContext, Sender, Status};
use crate::template::humanize_value;

/// Alerts listed one by one in a message.
const LISTED: usize = 10;

/// Posts notifications to a Slack incoming webhook.
#[derive(Debug, Clone)]
pub struct SlackSender {
    url: crate::Secret,
    channel: Option<String>,
    client: reqwest::Client,
}

impl SlackSender {
    /// A sender for `cfg`.
    pub fn new(cfg: &SlackConfig) -> Result<Self, super::DestinationError> {
        Ok(SlackSender {
            url: cfg.url.clone(),
            channel: cfg.channel.clone(),
            client: http_client(cfg.timeout)?,
        })
    }
}

fn mrkdwn(text: &str) -> Value {
    json!({"type": "mrkdwn", "text": text})
}

/// Where an alert is: service, route, method and path, or its labels.
pub(super) fn place(a: &PipelineAlert) -> String {
    let label = |n: &str| a.labels.get(n).filter(|v| !v.is_empty());
    let parts: Vec<&str> = ["service", "route", "method", "path"]
        .iter()
        .filter_map(|n| label(n))
        .collect();
    if parts.is_empty() {
        a.labels
            .iter()
            .filter(|l| l.name != "alertname")
            .map(|l| format!("{}={}", l.name, l.value))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        parts.join(" ")
    }
}

/// The value against D-1 and D-7, in words.
pub(super) fn against_history(a: &PipelineAlert) -> String {
    let or_dash = |v: Option<f64>| v.filter(|v| v.is_finite()).map_or("–".to_owned(), humanize_value);
    format!(
        "{} (yesterday {}, last week {})",
        humanize_value(a.value),
        or_dash(a.d1),
        or_dash(a.d7)
    )
}

/// The short notice that alerts were acknowledged.
fn ack_message(n: &Notification, ack: &super::AckInfo, channel: Option<&str>) -> Value {
    let name = n.alerts.first().map_or("", PipelineAlert::alertname);
    let places: Vec<String> = n
        .alerts
        .iter()
        .take(LISTED)
        .map(|a| format!("`{}`", place(a)))
        .collect();
    let text = format!(
        "👀 {name} ({} alert{}) acknowledged by *{}*: {}\n{}",
        n.alerts.len(),
        if n.alerts.len() == 1 { "" } else { "s" },
        ack.by,
        ack.comment,
        places.join(" ")
    );
    let mut msg = json!({"text": text, "blocks": [{"type": "section", "text": mrkdwn(&text)}]});
    if let (Some(c), Some(obj)) = (channel, msg.as_object_mut()) {
        obj.insert("channel".into(), Value::String(c.to_owned()));
    }
    msg
}

/// The message for a notification.
pub fn slack_message(n: &Notification, ctx: &SendContext, channel: Option<&str>) -> Value {
    let Some(first) = n.alerts.first() else {
        return json!({"text": "(no alerts)"});
    };
    if let Some(ack) = &n.ack {
        return ack_message(n, ack, channel);
    }
    let name = first.alertname();
    let (icon, word) = match n.status() {
        Status::Firing => ("🔥", "FIRING"),
        Status::Resolved => ("✅", "RESOLVED"),
    };
    let firing = n.firing().count();
    let count = if n.alerts.len() > 1 {
        format!(" ({firing} firing, {} resolved)", n.alerts.len() - firing)
    } else {
        String::new()
    };
    let common = n.common_annotations();
    let common_annotation = |k: &str| common.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let summary = common_annotation("summary")
        .or(first.annotation("summary").filter(|_| n.alerts.len() == 1))
        .map_or_else(|| format!("{name} is {word}"), str::to_owned);
    let mut text = format!("*{summary}*");
    if let Some(d) = common_annotation("description") {
        text.push('\n');
        text.push_str(d);
    }
    let mut lines: Vec<String> = n
        .alerts
        .iter()
        .take(LISTED)
        .map(|a| {
            let state = if a.ends_at.is_some() { "resolved" } else { "firing" };
            let ack = a
                .ack
                .as_ref()
                .map_or(String::new(), |k| format!(" · acknowledged by {}: {}", k.by, k.comment));
            format!(
                "• `{}` {state}: {} · since {}{ack}",
                place(a),
                against_history(a),
                format_rfc3339(a.fired_at)
            )
        })
        .collect();
    if n.alerts.len() > LISTED {
        lines.push(format!("… and {} more", n.alerts.len() - LISTED));
    }
    let severity = n
        .common_labels()
        .into_iter()
        .find(|(k, _)| k == "severity")
        .map(|(_, v)| v);
    let mut context = format!(
        "group {} · <{}|expression>",
        n.group_key,
        ctx.generator_url(&first.expr)
    );
    if let Some(sev) = &severity {
        context = format!("severity {sev} · {context}");
    }
    if let Some(r) = &n.fallback_for {
        context = format!("fallback for {r} · {context}");
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": format!("{icon} {word}: {name}{count}"), "emoji": true}}),
        json!({"type": "section", "text": mrkdwn(&text)}),
        json!({"type": "section", "text": mrkdwn(&lines.join("\n"))}),
        json!({"type": "context", "elements": [mrkdwn(&context)]}),
    ];
    if let Some(url) = common_annotation("runbook_url").or_else(|| common_annotation("runbook")) {
        blocks.push(json!({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Runbook"}, "url": url}
        ]}));
    }
    let mut msg = json!({
        "text": format!("[{word}] {name}{count}: {summary} ({})", place(first)),
        "blocks": blocks,
    });
    if let (Some(c), Some(obj)) = (channel, msg.as_object_mut()) {
        obj.insert("channel".into(), Value::String(c.to_owned()));
    }
    msg
}

impl Sender for SlackSender {
    async fn send(&self, n: &Notification, ctx: &SendContext) -> Result<(), SendError> {
        let url = self.url.current().map_err(|e| SendError::Retryable(e.to_string()))?;
        post_json(
            &self.client,
            &url,
            "the Slack webhook",
            &slack_message(n, ctx, self.channel.as_deref()),
        )
        .await
    }
}
