//! The `alerting:` section of `vigil.yaml`: vigil's concise form of receivers and routes, or an
//! `alertmanager.yml` read as it is (`alertmanager_config:`), compiled to one [`Plan`].
//!
//! ```yaml
//! alerting:
//!   receivers:
//!     - name: oncall
//!       slack: { url: { env: SLACK_URL } }
//!       email: { to: [oncall@example.com], from: vigil@example.com, smarthost: smtp.example.com:587 }
//!       fallback: ops                    # gets what oncall cannot take
//!     - name: ops
//!       webhook: { url: "http://127.0.0.1:5001/alerts" }
//!   route:
//!     receiver: ops                      # the default
//!     group_by: [alertname, service]
//!     group_wait: 30s
//!     routes:
//!       - matchers: ['severity="page"']
//!         receiver: oncall
//!   inhibit_rules:
//!     - source_matchers: [severity="page"]
//!       target_matchers: [severity="ticket"]
//!       equal: [service]
//! ```
//!
//! Route, inhibition and time-interval keys are Alertmanager's (see [`super::amconfig`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::amconfig::{self, InhibitRuleConfig, NamedTimeInterval, RouteConfig};
use super::error::ConfigError;
use super::plan::{Delivery, Integration, IntegrationKind, Plan, ReceiverPlan};
use crate::Secret;

/// `alerting:`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// An `alertmanager.yml`, read unchanged; it then defines the receivers, routes, inhibition
    /// rules and time intervals, and `receivers` and `route` here must be empty.
    pub alertmanager_config: Option<PathBuf>,
    /// Fallback receivers for receivers of the `alertmanager.yml`: `{RECEIVER: FALLBACK}`.
    pub fallbacks: BTreeMap<String, String>,
    /// Alertmanagers (base URLs) that get every alert as Prometheus sends them, besides vigil's
    /// own notifications.
    pub alertmanagers: Vec<String>,
    /// Where pages can go.
    pub receivers: Vec<ReceiverConfig>,
    /// Which receiver gets which alert, and how alerts are grouped. Without a route every alert
    /// goes to every receiver.
    pub route: Option<RouteConfig>,
    /// Alerts that mute others.
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Named time intervals for routes.
    pub time_intervals: Vec<NamedTimeInterval>,
}

/// One receiver: a name and one or more destinations.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
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
    /// Mail over SMTP.
    #[serde(default)]
    pub email: Option<EmailConfig>,
    /// PagerDuty's Events API v2.
    #[serde(default)]
    pub pagerduty: Option<PagerDutyConfig>,
    /// One JSON line per notification on standard output.
    #[serde(default)]
    pub console: Option<ConsoleConfig>,
    /// A receiver that gets this one's notifications while its circuit is open or its retries
    /// are exhausted.
    #[serde(default)]
    pub fallback: Option<String>,
    /// Per-request timeout of the email and PagerDuty destinations. Default `10s`.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Requests in flight at once per destination. Default 4.
    #[serde(default = "default_concurrency")]
    pub max_concurrent: usize,
    /// How sends are retried.
    #[serde(default)]
    pub retry: RetryConfig,
    /// When a failing receiver is left alone for a while.
    #[serde(default)]
    pub breaker: BreakerConfig,
}

/// `webhook:`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST (a secret: written here, or `{file: PATH}`, or `{env: NAME}`).
    pub url: Secret,
    /// Per-request timeout. Default `10s`.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// At most this many alerts per notification (0: all); the rest are counted in
    /// `truncatedAlerts`.
    #[serde(default)]
    pub max_alerts: usize,
    /// Whether resolved alerts are sent. Default true.
    #[serde(default = "yes")]
    pub send_resolved: bool,
}

/// `slack:`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming-webhook URL (a secret: written here, or `{file: PATH}`, or `{env: NAME}`).
    pub url: Secret,
    /// Channel override (incoming webhooks post to their own channel otherwise).
    #[serde(default)]
    pub channel: Option<String>,
    /// Per-request timeout. Default `10s`.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Whether resolved alerts are sent. Default true.
    #[serde(default = "yes")]
    pub send_resolved: bool,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// STARTTLS, required (Alertmanager's `require_tls: true`, the default).
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: a local relay (Alertmanager's `require_tls: false` without STARTTLS offered).
    None,
    /// STARTTLS when the server offers it (Alertmanager's `require_tls: false`).
    Opportunistic,
}

/// `email:`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Recipients.
    #[serde(deserialize_with = "one_or_many")]
    pub to: Vec<String>,
    /// The sender.
    pub from: String,
    /// `host:port` of the SMTP server.
    pub smarthost: String,
    /// The name given in EHLO. Default `localhost`.
    #[serde(default = "default_hello")]
    pub hello: String,
    /// For AUTH PLAIN or LOGIN.
    #[serde(default)]
    pub auth_username: Option<String>,
    /// See `auth_username`.
    #[serde(default)]
    pub auth_password: Option<Secret>,
    /// How the connection is secured. Default `starttls`, or `implicit` on port 465.
    #[serde(default)]
    pub tls: Option<SmtpTls>,
    /// A CA bundle (PEM) to trust besides the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Skips verifying the server's certificate (tests only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Whether resolved alerts are sent. Default true.
    #[serde(default = "yes")]
    pub send_resolved: bool,
}

impl EmailConfig {
    /// The TLS mode in effect.
    pub fn tls_mode(&self) -> SmtpTls {
        self.tls.unwrap_or_else(|| {
            if self.smarthost.ends_with(":465") {
                SmtpTls::Implicit
            } else {
                SmtpTls::Starttls
            }
        })
    }
}

/// `pagerduty:`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// The integration's routing key (a secret).
    pub routing_key: Secret,
    /// The Events API v2 endpoint.
    #[serde(default = "default_pagerduty_url")]
    pub url: String,
    /// Shown as the event's client.
    #[serde(default = "default_client")]
    pub client: String,
    /// A link back.
    #[serde(default)]
    pub client_url: Option<String>,
    /// `critical`, `error`, `warning` or `info`; default: the group's `severity` label mapped
    /// onto those, else `error`.
    #[serde(default)]
    pub severity: Option<String>,
    /// `payload.source`; default: the group's service, else `vigil`.
    #[serde(default)]
    pub source: Option<String>,
    /// `payload.class`.
    #[serde(default)]
    pub class: Option<String>,
    /// `payload.component`.
    #[serde(default)]
    pub component: Option<String>,
    /// `payload.group`.
    #[serde(default)]
    pub group: Option<String>,
    /// Whether resolves are sent. Default true.
    #[serde(default = "yes")]
    pub send_resolved: bool,
}

/// `console:`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Whether resolved alerts are written. Default true.
    #[serde(default = "yes")]
    pub send_resolved: bool,
}

/// `retry:`
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Wait before the first retry. Default `500ms`.
    #[serde(deserialize_with = "duration")]
    pub initial_backoff: Duration,
    /// The longest wait between retries. Default `1m`.
    #[serde(deserialize_with = "duration")]
    pub max_backoff: Duration,
    /// After this long the fallback receiver (if any) gets a copy. Default `1m`.
    #[serde(deserialize_with = "duration")]
    pub fallback_after: Duration,
    /// Give up on a notification after trying for this long. Default `24h`.
    #[serde(deserialize_with = "duration")]
    pub give_up_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            fallback_after: Duration::from_secs(60),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// `breaker:` a circuit breaker with hystrix's semantics.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Attempts in the window before the error share is judged. Default 5.
    pub request_volume_threshold: u32,
    /// Error share (percent) that opens the circuit. Default 50.
    pub error_percent_threshold: u32,
    /// The rolling window. Default `60s`.
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
    /// How long the circuit stays open before one probe is let through. Default `30s`.
    #[serde(deserialize_with = "duration")]
    pub sleep_window: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            request_volume_threshold: 5,
            error_percent_threshold: 50,
            window: Duration::from_secs(60),
            sleep_window: Duration::from_secs(30),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_concurrency() -> usize {
    4
}

fn default_hello() -> String {
    "localhost".into()
}

pub(super) fn default_pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".into()
}

pub(super) fn default_client() -> String {
    "vigil".into()
}

/// A Prometheus duration (`30s`, `5m`, `1h30m`).
pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    vigil_tsdb::time::parse_duration_ms(&s)
        .map(vigil_tsdb::time::ms_to_duration)
        .map_err(serde::de::Error::custom)
}

/// An optional Prometheus duration.
pub(super) fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => split_addresses(&s),
        OneOrMany::Many(v) => v,
    })
}

/// Alertmanager's `to:` is one string of comma-separated addresses.
pub(super) fn split_addresses(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

impl AlertingConfig {
    /// Checks names, references, matchers and intervals without reading other files.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for u in &self.alertmanagers {
            check_url(u, "alerting.alertmanagers")?;
        }
        if self.alertmanager_config.is_some() {
            if !self.receivers.is_empty() || self.route.is_some() {
                return Err(ConfigError::Route(
                    "alerting: with alertmanager_config, receivers and the route come from that file; remove `receivers` and `route` here",
                ));
            }
            return Ok(());
        }
        self.compile().map(|_| ())
    }

    /// The plan: from the `alertmanager.yml` if one is named, else from this section.
    pub fn compile(&self) -> Result<Plan, ConfigError> {
        let mut plan = match &self.alertmanager_config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    what: "alerting.alertmanager_config",
                    path: path.clone(),
                    source,
                })?;
                amconfig::compile(&text).map_err(|e| ConfigError::InFile {
                    path: path.clone(),
                    source: Box::new(e),
                })?
            }
            None => self.compile_own()?,
        };
        for (receiver, fallback) in &self.fallbacks {
            let Some(r) = plan.receivers.get_mut(receiver) else {
                return Err(ConfigError::Undefined {
                    place: "alerting.fallbacks".into(),
                    what: "receiver",
                    name: receiver.clone(),
                });
            };
            r.fallback = Some(fallback.clone());
        }
        check_fallbacks(&plan)?;
        Ok(plan)
    }

    fn compile_own(&self) -> Result<Plan, ConfigError> {
        let mut receivers = BTreeMap::new();
        for r in &self.receivers {
            if r.name.is_empty() {
                return Err(ConfigError::Route("alerting.receivers: a receiver has no name"));
            }
            let plan = r.compile()?;
            if receivers.insert(r.name.clone(), plan).is_some() {
                return Err(ConfigError::Duplicate {
                    what: "alerting.receivers: receiver",
                    name: r.name.clone(),
                });
            }
        }
        let route = match &self.route {
            Some(route) => route.clone(),
            None => fan_out(&self.receivers),
        };
        amconfig::assemble(
            &route,
            receivers,
            &self.inhibit_rules,
            &self.time_intervals,
            Vec::new(),
            "alerting",
        )
    }
}

/// Without a route, every alert goes to every receiver, one alert per group, at once.
fn fan_out(receivers: &[ReceiverConfig]) -> RouteConfig {
    RouteConfig {
        receiver: Some(String::new()),
        group_by: Some(vec!["...".into()]),
        group_wait: Some(Duration::ZERO),
        routes: receivers
            .iter()
            .map(|r| RouteConfig {
                receiver: Some(r.name.clone()),
                continue_matching: true,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

impl ReceiverConfig {
    fn compile(&self) -> Result<ReceiverPlan, ConfigError> {
        let what = format!("alerting.receivers: {:?}", self.name);
        let mut integrations = Vec::new();
        if let Some(w) = &self.webhook {
            check_secret_url(&w.url, &what)?;
            integrations.push(Integration {
                send_resolved: w.send_resolved,
                kind: IntegrationKind::Webhook(w.clone()),
            });
        }
        if let Some(s) = &self.slack {
            if !(s.url.expose().starts_with("https://") || s.url.expose().starts_with("http://")) {
                // The URL itself is a secret and is not repeated.
                return Err(ConfigError::Url {
                    place: format!("{what} slack"),
                    url: None,
                });
            }
            integrations.push(Integration {
                send_resolved: s.send_resolved,
                kind: IntegrationKind::Slack(s.clone()),
            });
        }
        if let Some(e) = &self.email {
            check_email(e, &what)?;
            integrations.push(Integration {
                send_resolved: e.send_resolved,
                kind: IntegrationKind::Email(Box::new(e.clone())),
            });
        }
        if let Some(p) = &self.pagerduty {
            check_url(&p.url, &what)?;
            integrations.push(Integration {
                send_resolved: p.send_resolved,
                kind: IntegrationKind::PagerDuty(p.clone()),
            });
        }
        if let Some(c) = &self.console {
            integrations.push(Integration {
                send_resolved: c.send_resolved,
                kind: IntegrationKind::Console,
            });
        }
        if integrations.is_empty() {
            return Err(ConfigError::receiver(
                &what,
                "needs at least one of webhook, slack, email, pagerduty, console",
            ));
        }
        Ok(ReceiverPlan {
            name: self.name.clone(),
            integrations,
            fallback: self.fallback.clone(),
            delivery: Delivery {
                timeout: self.timeout,
                max_concurrent: self.max_concurrent.max(1),
                retry: self.retry,
                breaker: self.breaker,
            },
        })
    }
}

/// [`check_url`] for a URL that is a secret (a webhook's carries its token): an error does not
/// repeat it.
pub(super) fn check_secret_url(url: &Secret, what: &str) -> Result<(), ConfigError> {
    check_url(url.expose(), what).map_err(|_| ConfigError::Url {
        place: what.to_owned(),
        url: None,
    })
}

pub(super) fn check_url(url: &str, what: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::Url {
            place: what.to_owned(),
            url: Some(url.to_owned()),
        })
    }
}

pub(super) fn check_email(e: &EmailConfig, what: &str) -> Result<(), ConfigError> {
    if e.to.is_empty() {
        return Err(ConfigError::receiver(what, "email needs at least one address in `to`"));
    }
    if e.from.is_empty() {
        return Err(ConfigError::receiver(what, "email needs `from`"));
    }
    match e.smarthost.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(ConfigError::receiver(
            what,
            format!("email smarthost {:?} must be host:port", e.smarthost),
        )),
    }
}

fn check_fallbacks(plan: &Plan) -> Result<(), ConfigError> {
    for r in plan.receivers.values() {
        if let Some(f) = &r.fallback {
            if f == &r.name {
                return Err(ConfigError::receiver(
                    &format!("receiver {:?}", r.name),
                    "cannot be its own fallback",
                ));
            }
            if !plan.receivers.contains_key(f) {
                return Err(ConfigError::Undefined {
                    place: format!("receiver {:?}", r.name),
                    what: "fallback",
                    name: f.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Plan, String> {
        let cfg: AlertingConfig = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        cfg.compile().map_err(|e| e.to_string())
    }

    #[test]
    fn the_concise_form_compiles() {
        let plan = parse(
            r#"
receivers:
  - name: oncall
    slack: { url: "https://hooks.example.com/x" }
    email: { to: "a@example.com, b@example.com", from: vigil@example.com, smarthost: "smtp.example.com:587" }
    fallback: ops
  - name: ops
    webhook: { url: "http://127.0.0.1:5001/alerts", max_alerts: 10 }
route:
  receiver: ops
  group_by: [alertname, service]
  group_wait: 10s
  routes:
    - matchers: ['severity="page"']
      receiver: oncall
      group_interval: 1m
inhibit_rules:
  - source_matchers: [severity="page"]
    target_matchers: [severity="ticket"]
    equal: [service]
"#,
        )
        .expect("valid");
        let oncall = &plan.receivers["oncall"];
        assert_eq!(oncall.integrations.len(), 2);
        assert_eq!(oncall.fallback.as_deref(), Some("ops"));
        let IntegrationKind::Email(e) = &oncall.integrations[1].kind else {
            panic!("an email integration")
        };
        assert_eq!(e.to, ["a@example.com", "b@example.com"]);
        assert_eq!(e.tls_mode(), SmtpTls::Starttls);
        let child = &plan.route.children[0];
        assert_eq!(child.opts.group_wait, Duration::from_secs(10), "inherited");
        assert_eq!(child.opts.group_interval, Duration::from_secs(60));
        assert_eq!(plan.inhibit_rules.len(), 1);
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            ("receivers: [{name: a}]", "at least one of"),
            ("receivers: [{name: a, console: {}, fallback: b}]", "fallback \"b\""),
            ("receivers: [{name: a, console: {}, fallback: a}]", "its own fallback"),
            (
                "receivers: [{name: a, console: {}}, {name: a, console: {}}]",
                "defined twice",
            ),
            ("receivers: [{name: a, console: {}}]\nroute: {receiver: b}", "\"b\""),
            ("receivers: [{name: a, webhook: {url: ftp://x}}]", "invalid URL"),
            (
                "receivers: [{name: a, email: {to: x@y, from: v@y, smarthost: nohost}}]",
                "host:port",
            ),
            ("receivers: [{name: a, console: {}}]\nfallbacks: {zz: a}", "\"zz\""),
        ];
        for (yaml, want) in cases {
            let e = parse(yaml).expect_err(yaml);
            assert!(e.contains(want), "{yaml}: {e}");
        }
        // A webhook URL carries its token: the error names the receiver, not the URL.
        let e = parse("receivers: [{name: a, webhook: {url: 'hooks.example.com/T0K3N'}}]").expect_err("refused");
        assert!(e.contains("invalid URL") && !e.contains("T0K3N"), "{e}");
    }
}
