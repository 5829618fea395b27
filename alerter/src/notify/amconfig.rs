//! Alertmanager's configuration file, read as it is: `global`, `route`, `inhibit_rules`,
//! `time_intervals` (and the older `mute_time_intervals`), `receivers` with `webhook_configs`,
//! `slack_configs`, `email_configs` and `pagerduty_configs`. `templates` and the template fields
//! of receivers are read and ignored with a warning: vigil writes its own messages. Any other
//! receiver type is refused with its name and line.
//!
//! The route, inhibition and time-interval types here are also the keys of vigil's own
//! `alerting:` form.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::config::{
    EmailConfig, PagerDutyConfig, SlackConfig, SmtpTls, WebhookConfig, check_email, check_secret_url, check_url,
    default_client, default_pagerduty_url, opt_duration, split_addresses,
};
use super::error::ConfigError;
use super::matcher::{Matcher, Matchers, parse_matchers};
use super::plan::{Delivery, GroupBy, InhibitRule, Integration, IntegrationKind, Plan, ReceiverPlan, Route, RouteOpts};
use super::timeinterval::{TimeInterval, TimeIntervalSpec};
use crate::Secret;

/// A route as Alertmanager writes it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteConfig {
    /// The receiver (inherited when unset).
    pub receiver: Option<String>,
    /// Labels that make a group; `['...']` for all of them (inherited when unset).
    pub group_by: Option<Vec<String>>,
    /// Whether later siblings are tried after this route matched.
    #[serde(rename = "continue")]
    pub continue_matching: bool,
    /// Matchers in Alertmanager's text form.
    pub matchers: Vec<String>,
    /// Deprecated equality matchers.
    #[serde(rename = "match")]
    pub match_equal: BTreeMap<String, String>,
    /// Deprecated regex matchers.
    pub match_re: BTreeMap<String, String>,
    /// See [`RouteOpts`].
    #[serde(deserialize_with = "opt_duration")]
    pub group_wait: Option<Duration>,
    /// See [`RouteOpts`].
    #[serde(deserialize_with = "opt_duration")]
    pub group_interval: Option<Duration>,
    /// See [`RouteOpts`].
    #[serde(deserialize_with = "opt_duration")]
    pub repeat_interval: Option<Duration>,
    /// Named time intervals that mute this route.
    pub mute_time_intervals: Vec<String>,
    /// Named time intervals outside of which this route is muted.
    pub active_time_intervals: Vec<String>,
    /// Child routes.
    pub routes: Vec<RouteConfig>,
}

/// An inhibition rule as Alertmanager writes it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InhibitRuleConfig {
    /// What the muting alert matches.
    pub source_matchers: Vec<String>,
    /// What the muted alerts match.
    pub target_matchers: Vec<String>,
    /// Deprecated forms of the above.
    pub source_match: BTreeMap<String, String>,
    /// See `source_match`.
    pub source_match_re: BTreeMap<String, String>,
    /// See `source_match`.
    pub target_match: BTreeMap<String, String>,
    /// See `source_match`.
    pub target_match_re: BTreeMap<String, String>,
    /// Labels whose values must be equal.
    pub equal: Vec<String>,
}

/// `- name: ...; time_intervals: [...]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedTimeInterval {
    /// Referenced by routes.
    pub name: String,
    /// Any of these.
    #[serde(default)]
    pub time_intervals: Vec<TimeIntervalSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AmFile {
    global: Global,
    route: Option<RouteConfig>,
    receivers: Vec<AmReceiver>,
    inhibit_rules: Vec<InhibitRuleConfig>,
    templates: Vec<String>,
    time_intervals: Vec<NamedTimeInterval>,
    mute_time_intervals: Vec<NamedTimeInterval>,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Global {
    smtp_from: Option<String>,
    smtp_hello: Option<String>,
    smtp_smarthost: Option<String>,
    smtp_auth_username: Option<String>,
    smtp_auth_password: Option<String>,
    smtp_auth_password_file: Option<String>,
    smtp_require_tls: bool,
    slack_api_url: Option<String>,
    slack_api_url_file: Option<String>,
    pagerduty_url: Option<String>,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            smtp_from: None,
            smtp_hello: None,
            smtp_smarthost: None,
            smtp_auth_username: None,
            smtp_auth_password: None,
            smtp_auth_password_file: None,
            smtp_require_tls: true,
            slack_api_url: None,
            slack_api_url_file: None,
            pagerduty_url: None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct AmReceiver {
    name: String,
    #[serde(default)]
    webhook_configs: Vec<AmWebhook>,
    #[serde(default)]
    slack_configs: Vec<AmSlack>,
    #[serde(default)]
    email_configs: Vec<AmEmail>,
    #[serde(default)]
    pagerduty_configs: Vec<AmPagerDuty>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
struct AmWebhook {
    url: Option<String>,
    url_file: Option<String>,
    #[serde(default = "yes")]
    send_resolved: bool,
    #[serde(default)]
    max_alerts: usize,
    #[serde(default, deserialize_with = "opt_duration")]
    timeout: Option<Duration>,
}

#[derive(Debug, Deserialize)]
struct AmSlack {
    api_url: Option<String>,
    api_url_file: Option<String>,
    channel: Option<String>,
    #[serde(default)]
    send_resolved: bool,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
struct AmEmail {
    to: Option<String>,
    from: Option<String>,
    smarthost: Option<String>,
    hello: Option<String>,
    auth_username: Option<String>,
    auth_password: Option<String>,
    auth_password_file: Option<String>,
    require_tls: Option<bool>,
    #[serde(default)]
    tls_config: AmTls,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    send_resolved: bool,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AmTls {
    ca_file: Option<std::path::PathBuf>,
    insecure_skip_verify: bool,
}

#[derive(Debug, Deserialize)]
struct AmPagerDuty {
    routing_key: Option<String>,
    routing_key_file: Option<String>,
    service_key: Option<String>,
    service_key_file: Option<String>,
    url: Option<String>,
    client: Option<String>,
    client_url: Option<String>,
    severity: Option<String>,
    source: Option<String>,
    class: Option<String>,
    component: Option<String>,
    group: Option<String>,
    #[serde(default = "yes")]
    send_resolved: bool,
}

fn yes() -> bool {
    true
}

/// Keys of receivers that vigil reads but does not use (templates and HTTP client settings).
const IGNORED_KEYS: &[&str] = &[
    "http_config",
    "title",
    "title_link",
    "pretext",
    "text",
    "html",
    "fields",
    "short_fields",
    "footer",
    "fallback",
    "callback_id",
    "icon_emoji",
    "icon_url",
    "image_url",
    "thumb_url",
    "link_names",
    "mrkdwn_in",
    "actions",
    "username",
    "color",
    "auth_identity",
    "auth_secret",
];

/// Reads an `alertmanager.yml`.
pub fn compile(text: &str) -> Result<Plan, ConfigError> {
    let file: AmFile = serde_yaml_ng::from_str(text)?;
    let mut warnings = Vec::new();
    if !file.templates.is_empty() {
        warnings.push("templates are ignored: vigil writes its own messages".to_owned());
    }
    let mut receivers = BTreeMap::new();
    for (i, r) in file.receivers.iter().enumerate() {
        if let Some(kind) = r.other.keys().next() {
            return Err(ConfigError::UnsupportedReceiver {
                receiver: r.name.clone(),
                kind: kind.clone(),
                line: receiver_key_line(text, i, kind),
            });
        }
        let plan = receiver(r, &file.global, &mut warnings)?;
        if receivers.insert(r.name.clone(), plan).is_some() {
            return Err(ConfigError::Duplicate {
                what: "receiver",
                name: r.name.clone(),
            });
        }
    }
    let route = file.route.ok_or(ConfigError::Route("no routes provided"))?;
    if !route.matchers.is_empty() || !route.match_equal.is_empty() || !route.match_re.is_empty() {
        return Err(ConfigError::Route("root route must not have any matchers"));
    }
    let mut intervals = file.time_intervals;
    intervals.extend(file.mute_time_intervals);
    let mut plan = assemble(&route, receivers, &file.inhibit_rules, &intervals, warnings, "route")?;
    plan.original = redacted(text);
    Ok(plan)
}

/// Keys whose values are secrets in an `alertmanager.yml`.
const SECRET_KEYS: &[&str] = &[
    "api_url",
    "slack_api_url",
    "url",
    "auth_password",
    "smtp_auth_password",
    "auth_secret",
    "smtp_auth_secret",
    "routing_key",
    "service_key",
    "password",
    "credentials",
    "bearer_token",
    "api_key",
];

/// The file as YAML again with every secret replaced by `<secret>`.
pub fn redacted(text: &str) -> String {
    fn walk(v: &mut serde_yaml_ng::Value) {
        match v {
            serde_yaml_ng::Value::Mapping(m) => {
                for (k, v) in m.iter_mut() {
                    if k.as_str().is_some_and(|k| SECRET_KEYS.contains(&k)) && v.is_string() {
                        *v = serde_yaml_ng::Value::String("<secret>".into());
                    } else {
                        walk(v);
                    }
                }
            }
            serde_yaml_ng::Value::Sequence(s) => s.iter_mut().for_each(walk),
            _ => {}
        }
    }
    match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
        Ok(mut v) => {
            walk(&mut v);
            serde_yaml_ng::to_string(&v).unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

/// The line of `key` in the `index`th receiver, for error messages.
fn receiver_key_line(text: &str, index: usize, key: &str) -> Option<usize> {
    let root = crate::yaml::parse(text).ok()?;
    let receivers = crate::yaml::get(root.as_map("").ok()?, "receivers")?;
    let r = receivers.as_seq("").ok()?.get(index)?;
    r.as_map("")
        .ok()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(k, _)| k.pos.line)
}

fn read_secret(
    inline: Option<&String>,
    file: Option<&String>,
    what: &str,
    warnings: &mut Vec<String>,
) -> Option<Secret> {
    if let Some(v) = inline {
        return Some(Secret::new(v.clone()));
    }
    let path = std::path::Path::new(file?);
    let secret = Secret::from_file(path);
    if let Err(e) = secret.current() {
        warnings.push(format!("{what}: {e}; sends that need it fail until it can be read"));
    }
    Some(secret)
}

fn receiver(r: &AmReceiver, g: &Global, warnings: &mut Vec<String>) -> Result<ReceiverPlan, ConfigError> {
    let what = format!("receiver {:?}", r.name);
    let mut integrations = Vec::new();
    for w in &r.webhook_configs {
        let url = read_secret(w.url.as_ref(), w.url_file.as_ref(), &what, warnings)
            .ok_or_else(|| ConfigError::receiver(&what, "one of url or url_file must be configured"))?;
        if w.url.is_some() {
            check_secret_url(&url, &what)?;
        }
        integrations.push(Integration {
            send_resolved: w.send_resolved,
            kind: IntegrationKind::Webhook(WebhookConfig {
                url,
                timeout: w.timeout.unwrap_or(Duration::from_secs(10)),
                max_alerts: w.max_alerts,
                send_resolved: w.send_resolved,
            }),
        });
    }
    for s in &r.slack_configs {
        note_ignored(&s.other, &what, warnings);
        let url = match read_secret(s.api_url.as_ref(), s.api_url_file.as_ref(), &what, warnings) {
            Some(u) => u,
            None => read_secret(
                g.slack_api_url.as_ref(),
                g.slack_api_url_file.as_ref(),
                "global",
                warnings,
            )
            .ok_or_else(|| ConfigError::receiver(&what, "no global Slack API URL set either inline or in a file"))?,
        };
        integrations.push(Integration {
            send_resolved: s.send_resolved,
            kind: IntegrationKind::Slack(SlackConfig {
                url,
                channel: s.channel.clone(),
                timeout: Duration::from_secs(10),
                send_resolved: s.send_resolved,
            }),
        });
    }
    for e in &r.email_configs {
        note_ignored(&e.other, &what, warnings);
        let email = email(e, g, &what, warnings)?;
        check_email(&email, &what)?;
        integrations.push(Integration {
            send_resolved: e.send_resolved,
            kind: IntegrationKind::Email(Box::new(email)),
        });
    }
    for p in &r.pagerduty_configs {
        if p.service_key.is_some() || p.service_key_file.is_some() {
            return Err(ConfigError::receiver(
                &what,
                "pagerduty_configs with service_key (Events API v1) are not supported; use routing_key (Events API v2)",
            ));
        }
        let key = read_secret(p.routing_key.as_ref(), p.routing_key_file.as_ref(), &what, warnings)
            .ok_or_else(|| ConfigError::receiver(&what, "missing routing_key in PagerDuty config"))?;
        let url = p
            .url
            .clone()
            .or_else(|| g.pagerduty_url.clone())
            .unwrap_or_else(default_pagerduty_url);
        check_url(&url, &what)?;
        integrations.push(Integration {
            send_resolved: p.send_resolved,
            kind: IntegrationKind::PagerDuty(PagerDutyConfig {
                routing_key: key,
                url,
                client: p.client.clone().unwrap_or_else(default_client),
                client_url: p.client_url.clone(),
                severity: p.severity.clone(),
                source: p.source.clone(),
                class: p.class.clone(),
                component: p.component.clone(),
                group: p.group.clone(),
                send_resolved: p.send_resolved,
            }),
        });
    }
    Ok(ReceiverPlan {
        name: r.name.clone(),
        integrations,
        fallback: None,
        delivery: Delivery::default(),
    })
}

fn email(e: &AmEmail, g: &Global, what: &str, warnings: &mut Vec<String>) -> Result<EmailConfig, ConfigError> {
    let smarthost = e
        .smarthost
        .clone()
        .or_else(|| g.smtp_smarthost.clone())
        .ok_or_else(|| ConfigError::receiver(what, "no global SMTP smarthost set"))?;
    let from = e
        .from
        .clone()
        .or_else(|| g.smtp_from.clone())
        .ok_or_else(|| ConfigError::receiver(what, "no global SMTP from set"))?;
    let to = split_addresses(e.to.as_deref().unwrap_or_default());
    let password = match read_secret(e.auth_password.as_ref(), e.auth_password_file.as_ref(), what, warnings) {
        Some(p) => Some(p),
        None => read_secret(
            g.smtp_auth_password.as_ref(),
            g.smtp_auth_password_file.as_ref(),
            "global",
            warnings,
        ),
    };
    let require_tls = e.require_tls.unwrap_or(g.smtp_require_tls);
    let tls = if smarthost.ends_with(":465") {
        SmtpTls::Implicit
    } else if require_tls {
        SmtpTls::Starttls
    } else {
        SmtpTls::None
    };
    Ok(EmailConfig {
        to,
        from,
        smarthost,
        hello: e
            .hello
            .clone()
            .or_else(|| g.smtp_hello.clone())
            .unwrap_or_else(|| "localhost".into()),
        auth_username: e.auth_username.clone().or_else(|| g.smtp_auth_username.clone()),
        auth_password: password,
        tls: Some(tls),
        ca_file: e.tls_config.ca_file.clone(),
        insecure_skip_verify: e.tls_config.insecure_skip_verify,
        headers: e.headers.clone(),
        send_resolved: e.send_resolved,
    })
}

fn note_ignored(other: &BTreeMap<String, serde_yaml_ng::Value>, what: &str, warnings: &mut Vec<String>) {
    for k in other.keys() {
        let known = IGNORED_KEYS.contains(&k.as_str());
        warnings.push(if known {
            format!("{what}: {k} is ignored (vigil writes its own messages)")
        } else {
            format!("{what}: unknown field {k} ignored")
        });
    }
}

/// Compiles routes, inhibition rules and time intervals around `receivers`, checking every
/// reference. `what` names the route's place in error messages.
pub(super) fn assemble(
    route: &RouteConfig,
    receivers: BTreeMap<String, ReceiverPlan>,
    inhibit_rules: &[InhibitRuleConfig],
    intervals: &[NamedTimeInterval],
    warnings: Vec<String>,
    what: &str,
) -> Result<Plan, ConfigError> {
    let mut time_intervals = BTreeMap::new();
    for ti in intervals {
        let compiled = ti
            .time_intervals
            .iter()
            .map(TimeInterval::compile)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| ConfigError::TimeInterval {
                name: ti.name.clone(),
                source,
            })?;
        if time_intervals.insert(ti.name.clone(), compiled).is_some() {
            return Err(ConfigError::Duplicate {
                what: "time interval",
                name: ti.name.clone(),
            });
        }
    }
    let root_receiver = route
        .receiver
        .clone()
        .ok_or(ConfigError::Route("the root route needs a receiver"))?;
    let base = RouteOpts {
        receiver: root_receiver,
        ..RouteOpts::default()
    };
    let mut root = build_route(route, &base, true)?;
    root.assign_keys(None, 0);
    for r in root.all() {
        let name = &r.opts.receiver;
        // The fan-out root of vigil's own form names no receiver: all its children continue.
        let fan_out_root = name.is_empty() && r.children.iter().all(|c| c.continue_matching);
        if !fan_out_root && !receivers.contains_key(name) {
            return Err(ConfigError::Undefined {
                place: what.to_owned(),
                what: "receiver",
                name: name.clone(),
            });
        }
        for ti in r.opts.mute_time_intervals.iter().chain(&r.opts.active_time_intervals) {
            if !time_intervals.contains_key(ti) {
                return Err(ConfigError::Undefined {
                    place: what.to_owned(),
                    what: "time interval",
                    name: ti.clone(),
                });
            }
        }
    }
    let inhibit_rules = inhibit_rules.iter().map(inhibit_rule).collect::<Result<_, _>>()?;
    Ok(Plan {
        route: root,
        receivers,
        inhibit_rules,
        time_intervals,
        warnings,
        original: String::new(),
    })
}

fn build_route(cfg: &RouteConfig, parent: &RouteOpts, root: bool) -> Result<Route, ConfigError> {
    let group_by = match &cfg.group_by {
        None => parent.group_by.clone(),
        Some(names) if names.iter().any(|n| n == "...") => {
            if names.len() > 1 {
                return Err(ConfigError::Route(
                    "cannot have wildcard group_by (`...`) and other labels at the same time",
                ));
            }
            GroupBy::All
        }
        Some(names) => {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            GroupBy::Labels(names)
        }
    };
    let opts = RouteOpts {
        receiver: cfg.receiver.clone().unwrap_or_else(|| parent.receiver.clone()),
        group_by,
        group_wait: cfg.group_wait.unwrap_or(parent.group_wait),
        group_interval: cfg.group_interval.unwrap_or(parent.group_interval),
        repeat_interval: cfg.repeat_interval.unwrap_or(parent.repeat_interval),
        mute_time_intervals: cfg.mute_time_intervals.clone(),
        active_time_intervals: cfg.active_time_intervals.clone(),
    };
    if opts.group_interval.is_zero() {
        return Err(ConfigError::Route("group_interval cannot be zero"));
    }
    if opts.repeat_interval.is_zero() {
        return Err(ConfigError::Route("repeat_interval cannot be zero"));
    }
    if root && !cfg.mute_time_intervals.is_empty() {
        return Err(ConfigError::Route("root route must not have any mute time intervals"));
    }
    if root && !cfg.active_time_intervals.is_empty() {
        return Err(ConfigError::Route("root route must not have any active time intervals"));
    }
    if root && cfg.continue_matching {
        return Err(ConfigError::Route("cannot have continue in root route"));
    }
    let matchers = matchers(&cfg.matchers, &cfg.match_equal, &cfg.match_re)?;
    let children = cfg
        .routes
        .iter()
        .map(|c| build_route(c, &opts, false))
        .collect::<Result<_, _>>()?;
    Ok(Route {
        id: String::new(),
        key: String::new(),
        matchers,
        continue_matching: cfg.continue_matching,
        opts,
        children,
    })
}

/// `matchers:` and the deprecated `match:`/`match_re:` as one sorted list.
fn matchers(
    text: &[String],
    equal: &BTreeMap<String, String>,
    regex: &BTreeMap<String, String>,
) -> Result<Matchers, ConfigError> {
    let mut out = Vec::new();
    for t in text {
        out.extend(parse_matchers(t).map_err(|source| ConfigError::Matchers {
            text: t.clone(),
            source,
        })?);
    }
    for (k, v) in equal {
        out.push(Matcher::equal(k.clone(), v.clone()));
    }
    for (k, v) in regex {
        out.push(
            Matcher::new(k.clone(), super::matcher::MatchType::Regex, v.clone()).map_err(|source| {
                ConfigError::Matchers {
                    text: format!("{k}: {v}"),
                    source,
                }
            })?,
        );
    }
    Ok(Matchers(out).sorted())
}

fn inhibit_rule(c: &InhibitRuleConfig) -> Result<InhibitRule, ConfigError> {
    Ok(InhibitRule {
        source: matchers(&c.source_matchers, &c.source_match, &c.source_match_re)?,
        target: matchers(&c.target_matchers, &c.target_match, &c.target_match_re)?,
        equal: c.equal.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REALISTIC: &str = r#"
global:
  resolve_timeout: 5m
  smtp_smarthost: 'smtp.example.com:587'
  smtp_from: 'alertmanager@example.com'
  smtp_auth_username: 'alertmanager'
  smtp_auth_password: 'password'
  slack_api_url: 'https://hooks.slack.com/services/T000/B000/XXX'
templates:
  - '/etc/alertmanager/template/*.tmpl'
route:
  group_by: ['alertname', 'cluster', 'service']
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 3h
  receiver: team-X-mails
  routes:
    - matchers:
        - service=~"foo1|foo2|baz"
      receiver: team-X-mails
      routes:
        - matchers:
            - severity="critical"
          receiver: team-X-pager
    - match:
        service: files
      receiver: team-Y-mails
      routes:
        - match_re:
            severity: critical|page
          receiver: team-Y-pager
    - matchers: [ service="database" ]
      receiver: team-DB-pager
      group_by: [alertname, cluster, database]
      continue: true
      mute_time_intervals: [offhours]
    - receiver: 'all'
      group_by: ['...']
      active_time_intervals: [offhours]
inhibit_rules:
  - source_matchers: [ severity="critical" ]
    target_matchers: [ severity="warning" ]
    equal: [ alertname, cluster, service ]
  - source_match: { alertname: ApiDown }
    target_match_re: { alertname: 'Api.+Latency' }
    equal: [ service ]
time_intervals:
  - name: offhours
    time_intervals:
      - times: [{ start_time: '17:00', end_time: '24:00' }]
        weekdays: ['monday:friday']
receivers:
  - name: 'team-X-mails'
    email_configs:
      - to: 'team-X+alerts@example.org, team-X+backup@example.org'
        html: '{{ template "email.default.html" . }}'
  - name: 'team-X-pager'
    email_configs:
      - to: 'team-X+alerts-critical@example.org'
    pagerduty_configs:
      - routing_key: <team-X-key>
  - name: 'team-Y-mails'
    email_configs:
      - to: 'team-Y+alerts@example.org'
        require_tls: false
        smarthost: 'relay.local:25'
  - name: 'team-Y-pager'
    pagerduty_configs:
      - routing_key: <team-Y-key>
        severity: critical
  - name: 'team-DB-pager'
    slack_configs:
      - channel: '#db'
        title: '{{ .CommonLabels.alertname }}'
        send_resolved: true
  - name: 'all'
    webhook_configs:
      - url: 'http://127.0.0.1:5001/'
        max_alerts: 20
"#;

    #[test]
    fn a_realistic_file_loads() {
        let plan = compile(REALISTIC).expect("loads");
        assert_eq!(plan.receivers.len(), 6);
        assert!(plan.warnings.iter().any(|w| w.contains("templates")));
        assert!(plan.warnings.iter().any(|w| w.contains("title is ignored")));
        let db = &plan.route.children[2];
        assert_eq!(db.opts.receiver, "team-DB-pager");
        assert_eq!(
            db.opts.group_by,
            GroupBy::Labels(vec!["alertname".into(), "cluster".into(), "database".into()])
        );
        assert_eq!(db.opts.repeat_interval, Duration::from_secs(3 * 3600), "inherited");
        assert_eq!(plan.route.children[3].opts.group_by, GroupBy::All);
        let IntegrationKind::Email(e) = &plan.receivers["team-X-mails"].integrations[0].kind else {
            panic!("email")
        };
        assert_eq!(e.to.len(), 2);
        assert_eq!(e.smarthost, "smtp.example.com:587");
        assert_eq!(e.tls, Some(SmtpTls::Starttls));
        assert!(!e.send_resolved, "Alertmanager's default for email");
        let IntegrationKind::Email(e) = &plan.receivers["team-Y-mails"].integrations[0].kind else {
            panic!("email")
        };
        assert_eq!(e.tls, Some(SmtpTls::None));
        assert_eq!(plan.inhibit_rules.len(), 2);
        assert_eq!(
            plan.inhibit_rules[1].target.to_string(),
            r#"{alertname=~"Api.+Latency"}"#
        );
        let labels = vigil_tsdb::Labels::from_pairs([("service", "foo1"), ("severity", "critical")]);
        let routes: Vec<&str> = plan
            .route
            .routes_for(&labels)
            .iter()
            .map(|r| r.opts.receiver.as_str())
            .collect();
        assert_eq!(routes, ["team-X-pager"]);
    }

    #[test]
    fn the_original_is_shown_without_secrets() {
        let plan = compile(REALISTIC).expect("loads");
        assert!(plan.original.contains("team-X-mails"));
        for secret in ["hooks.slack.com", "<team-X-key>", "password'", ": password"] {
            assert!(!plan.original.contains(secret), "{secret} shown:\n{}", plan.original);
        }
    }

    #[test]
    fn other_receiver_types_are_refused_with_name_and_line() {
        let text = "route: {receiver: a}\nreceivers:\n  - name: a\n    opsgenie_configs:\n      - api_key: x\n";
        let e = compile(text).expect_err("refused");
        assert!(
            matches!(&e, ConfigError::UnsupportedReceiver { receiver, kind, line: Some(4) }
                if receiver == "a" && kind == "opsgenie_configs"),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("line 4: receiver \"a\": opsgenie_configs is not supported"),
            "{e}"
        );
    }

    #[test]
    fn broken_references_are_refused() {
        for (text, want) in [
            ("route: {receiver: b}\nreceivers: [{name: a}]", "undefined receiver"),
            ("receivers: [{name: a}]", "no routes"),
            (
                "route: {receiver: a, routes: [{mute_time_intervals: [x]}]}\nreceivers: [{name: a}]",
                "undefined time interval",
            ),
            (
                "route: {receiver: a, matchers: [x=y]}\nreceivers: [{name: a}]",
                "root route",
            ),
            (
                "route: {receiver: a, group_by: ['...', x]}\nreceivers: [{name: a}]",
                "wildcard",
            ),
            (
                "route: {receiver: a}\nreceivers: [{name: a}, {name: a}]",
                "defined twice",
            ),
            (
                "route: {receiver: a}\nreceivers: [{name: a, pagerduty_configs: [{service_key: x}]}]",
                "routing_key",
            ),
        ] {
            let e = compile(text).expect_err(text).to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
