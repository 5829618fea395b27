//! The `alerting:` section of `vigil.yaml`: receivers and the route that picks them.
//!
//! ```yaml
//! alerting:
//!   receivers:
//!     - name: oncall
//!       slack: { url: "https://hooks.slack.com/services/T000/B000/XXXX" }
//!     - name: ops
//!       webhook: { url: "http://127.0.0.1:5001/alerts", timeout: 10s }
//!     - name: log
//!       console: {}
//!   route:
//!     receiver: ops                      # the default
//!     routes:
//!       - match: { severity: page }
//!         receiver: oncall
//!         continue: true                 # also try the next sibling routes
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// `alerting:`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Where pages can go.
    pub receivers: Vec<ReceiverConfig>,
    /// Which receiver gets which alert. Without a route every alert goes to every receiver.
    pub route: Option<RouteConfig>,
}

/// One receiver: a name and exactly one kind.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Referenced by routes.
    pub name: String,
    /// Alertmanager-compatible webhook (payload version 4).
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    /// Slack incoming webhook.
    #[serde(default)]
    pub slack: Option<SlackConfig>,
    /// One JSON line per page on standard output.
    #[serde(default)]
    pub console: Option<ConsoleConfig>,
    /// How sends are retried.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// `webhook:`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST.
    pub url: String,
    /// Per-request timeout. Default `10s`.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: i64,
}

/// `slack:`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming-webhook URL (a secret: written here, or `{file: PATH}`, or `{env: NAME}`).
    pub url: crate::Secret,
    /// Channel override (incoming webhooks post to their own channel otherwise).
    #[serde(default)]
    pub channel: Option<String>,
    /// Per-request timeout. Default `10s`.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: i64,
}

/// `console:`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {}

/// `retry:` of a receiver: exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// First wait. Default `500ms`.
    #[serde(deserialize_with = "duration")]
    pub initial_backoff: i64,
    /// Longest wait. Default `1m`.
    #[serde(deserialize_with = "duration")]
    pub max_backoff: i64,
    /// A page still not delivered after this long is dropped (and logged). Default `1h`.
    #[serde(deserialize_with = "duration")]
    pub give_up_after: i64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff: 500,
            max_backoff: 60_000,
            give_up_after: 3_600_000,
        }
    }
}

/// `route:` and its children.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Receiver of alerts this route matches (inherited from the parent when empty).
    #[serde(default)]
    pub receiver: Option<String>,
    /// Label equalities the alert must have.
    #[serde(default, rename = "match")]
    pub matches: BTreeMap<String, String>,
    /// Label regexes (anchored) the alert must match.
    #[serde(default)]
    pub match_re: BTreeMap<String, String>,
    /// Keep trying the following sibling routes after this one matched.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Child routes, tried in order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

fn default_timeout() -> i64 {
    10_000
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let s = String::deserialize(d)?;
    vigil_tsdb::time::parse_duration_ms(&s).map_err(serde::de::Error::custom)
}

impl AlertingConfig {
    /// Checks names and references: unique receiver names with exactly one kind each, and
    /// routes that name existing receivers with valid regexes.
    pub fn validate(&self) -> Result<(), String> {
        let mut names: Vec<&str> = Vec::new();
        for r in &self.receivers {
            if r.name.is_empty() {
                return Err("alerting.receivers: a receiver has no name".into());
            }
            if names.contains(&r.name.as_str()) {
                return Err(format!("alerting.receivers: receiver {:?} is defined twice", r.name));
            }
            names.push(&r.name);
            let kinds =
                usize::from(r.webhook.is_some()) + usize::from(r.slack.is_some()) + usize::from(r.console.is_some());
            if kinds != 1 {
                return Err(format!(
                    "alerting.receivers: {:?} must have exactly one of webhook, slack, console",
                    r.name
                ));
            }
            if let Some(w) = &r.webhook
                && !(w.url.starts_with("http://") || w.url.starts_with("https://"))
            {
                return Err(format!(
                    "alerting.receivers: {:?} has an invalid URL {:?}",
                    r.name, w.url
                ));
            }
            if let Some(s) = &r.slack
                && !(s.url.expose().starts_with("https://") || s.url.expose().starts_with("http://"))
            {
                // The URL itself is a secret and is not repeated.
                return Err(format!("alerting.receivers: {:?} has an invalid Slack URL", r.name));
            }
        }
        if let Some(route) = &self.route {
            if route.receiver.is_none() {
                return Err("alerting.route: the top route needs a receiver (the default)".into());
            }
            check_route(route, &names)?;
        }
        Ok(())
    }
}

fn check_route(r: &RouteConfig, names: &[&str]) -> Result<(), String> {
    if let Some(name) = &r.receiver
        && !names.contains(&name.as_str())
    {
        return Err(format!("alerting.route: receiver {name:?} is not defined"));
    }
    for (k, re) in &r.match_re {
        regex::Regex::new(&format!("^(?:{re})$")).map_err(|e| format!("alerting.route: match_re {k}: {e}"))?;
    }
    r.routes.iter().try_for_each(|c| check_route(c, names))
}
