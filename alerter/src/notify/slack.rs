//! Slack incoming webhook: a Block Kit message that says what is wrong, where, how bad it is
//! against yesterday and last week, and links the runbook when the rule has one.

use serde_json::{Value, json};
use vigil_tsdb::time::format_rfc3339;

use super::config::SlackConfig;
use super::retry::SendError;
use super::webhook::{http_client, post_json};
use super::{Page, Receiver, Status};
use crate::template::humanize_value;

/// Posts pages to a Slack incoming webhook.
#[derive(Debug, Clone)]
pub struct SlackReceiver {
    url: crate::Secret,
    channel: Option<String>,
    client: reqwest::Client,
}

impl SlackReceiver {
    /// A receiver for `cfg`.
    pub fn new(cfg: &SlackConfig) -> Result<Self, String> {
        Ok(SlackReceiver {
            url: cfg.url.clone(),
            channel: cfg.channel.clone(),
            client: http_client(cfg.timeout)?,
        })
    }
}

fn annotation<'a>(page: &'a Page, name: &str) -> Option<&'a str> {
    page.alert
        .annotations
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn mrkdwn(text: &str) -> Value {
    json!({"type": "mrkdwn", "text": text})
}

/// The message for one page.
pub fn slack_message(page: &Page, channel: Option<&str>) -> Value {
    let a = &page.alert;
    let name = page.alertname();
    let (icon, word) = match page.status {
        Status::Firing => ("🔥", "FIRING"),
        Status::Resolved => ("✅", "RESOLVED"),
    };
    let label = |n: &str| a.labels.get(n).filter(|v| !v.is_empty());
    let place: Vec<&str> = ["service", "route", "method", "path"]
        .iter()
        .filter_map(|n| label(n))
        .collect();
    let where_ = if place.is_empty() {
        a.labels
            .iter()
            .filter(|l| l.name != "alertname")
            .map(|l| format!("{}={}", l.name, l.value))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        place.join(" ")
    };
    let summary = annotation(page, "summary").map_or_else(|| format!("{name} is {word}"), str::to_owned);
    let mut text = format!("*{summary}*");
    if let Some(d) = annotation(page, "description") {
        text.push('\n');
        text.push_str(d);
    }
    let or_dash = |v: Option<f64>| v.map_or("–".to_owned(), humanize_value);
    let mut fields = vec![
        mrkdwn(&format!(
            "*Where*\n{}",
            if where_.is_empty() {
                "–".into()
            } else {
                where_.clone()
            }
        )),
        mrkdwn(&format!("*Value*\n{}", humanize_value(a.value))),
        mrkdwn(&format!("*Yesterday (D-1)*\n{}", or_dash(page.d1))),
        mrkdwn(&format!("*Last week (D-7)*\n{}", or_dash(page.d7))),
    ];
    if let Some(sev) = label("severity") {
        fields.push(mrkdwn(&format!("*Severity*\n{sev}")));
    }
    let since = match page.status {
        Status::Firing => format!("firing since {}", format_rfc3339(page.at())),
        Status::Resolved => format!(
            "resolved at {} (active since {})",
            format_rfc3339(page.at()),
            format_rfc3339(a.active_at)
        ),
    };
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": format!("{icon} {word}: {name}"), "emoji": true}}),
        json!({"type": "section", "text": mrkdwn(&text)}),
        json!({"type": "section", "fields": fields}),
        json!({"type": "context", "elements": [mrkdwn(&format!("{since} · group {} · <{}|expression>", page.group, page.generator_url()))]}),
    ];
    if let Some(url) = annotation(page, "runbook_url").or_else(|| annotation(page, "runbook")) {
        blocks.push(json!({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Runbook"}, "url": url}
        ]}));
    }
    let mut msg = json!({
        "text": format!("[{word}] {name}: {summary} ({where_})"),
        "blocks": blocks,
    });
    if let (Some(c), Some(obj)) = (channel, msg.as_object_mut()) {
        obj.insert("channel".into(), Value::String(c.to_owned()));
    }
    msg
}

impl Receiver for SlackReceiver {
    async fn send(&self, page: &Page) -> Result<(), SendError> {
        post_json(
            &self.client,
            self.url.expose(),
            "the Slack webhook",
            &slack_message(page, self.channel.as_deref()),
        )
        .await
    }
}
