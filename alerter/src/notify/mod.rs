//! Notifications: from the rules' alerts to people, Alertmanager's way.
//!
//! ```text
//! rules' alerts ─ sync ─> stages::Pipeline (route, group, inhibit, time intervals, silence, dedup)
//!   ─> Notification ─ outbox (on disk) + notification log ─> delivery worker per destination
//!   ─> timeout, concurrency cap, retries with backoff, circuit breaker ─> webhook / Slack / email /
//!      PagerDuty / console; the fallback receiver gets a copy of what cannot be delivered
//! ```
//!
//! The decisions ([`stages`]) are pure and take the time; this module is the thin async shell
//! that runs them on the wall clock, writes what they decide to disk and sends it.

pub mod ack;
pub mod alerts;
pub mod amconfig;
mod breaker;
pub mod config;
mod console;
mod delivery;
pub mod dispatch;
mod email;
mod forward;
pub mod history;
pub mod inhibit;
pub mod matcher;
pub mod nflog;
mod outbox;
mod pagerduty;
pub mod plan;
mod retry;
pub mod silence;
mod slack;
pub mod stages;
pub mod timeinterval;
mod webhook;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use vigil_tsdb::time::now_ms;
use vigil_tsdb::{Labels, Timestamp};

pub use ack::AckInfo;
pub use alerts::PipelineAlert;
pub use breaker::{Breaker, BreakerState};
pub use config::AlertingConfig;
pub use console::{ConsoleSender, console_line};
use delivery::{Destination, DestinationStats};
pub use email::{EmailSender, html_body, subject as email_subject, text_body};
pub use forward::postable_alerts;
pub use history::{History, HistorySink};
pub use outbox::Outbox;
pub use pagerduty::{PagerDutySender, dedup_key, pagerduty_event};
pub use retry::{SendError, backoff, classify_status};
pub use silence::{Silence, SilenceError, SilenceMatcher, SilenceState};
pub use slack::{SlackSender, slack_message};
pub use stages::{Notification, Pipeline};
pub use webhook::{WebhookSender, webhook_payload};

use self::plan::{IntegrationKind, Plan};

/// Whether a notification is about firing or resolved alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Some alert fires.
    Firing,
    /// All alerts resolved.
    Resolved,
}

impl Status {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// What every destination needs besides the notification.
#[derive(Debug, Clone)]
pub struct SendContext {
    /// Base URL of links back to vigil.
    pub external_url: String,
}

impl SendContext {
    /// A link to an alert's expression in the query UI (Prometheus's `generatorURL`).
    pub fn generator_url(&self, expr: &str) -> String {
        let q: String = form_urlencode(expr);
        format!("{}/graph?g0.expr={q}&g0.tab=1", self.external_url.trim_end_matches('/'))
    }
}

fn form_urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Sends notifications to one destination.
pub trait Sender: Send + Sync + 'static {
    /// Sends one notification; the error says whether trying again could help.
    fn send(&self, n: &Notification, ctx: &SendContext) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// Why the notifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The configuration is wrong.
    #[error("{0}")]
    Config(String),
    /// Its files could not be opened.
    #[error("{what}: {source}")]
    Io {
        /// Which file.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// How one destination is doing.
#[derive(Debug, Clone)]
pub struct DestinationStatus {
    /// Its receiver.
    pub receiver: String,
    /// Its position in the receiver.
    pub index: usize,
    /// `webhook`, `slack`, `email`, `pagerduty` or `console`.
    pub kind: &'static str,
    /// Its circuit breaker.
    pub breaker: BreakerState,
    /// `vigil_notify_*` counters by metric name.
    pub counts: Vec<(&'static str, f64)>,
    /// The receiver's fallback.
    pub fallback: Option<String>,
}

/// Where a console destination writes.
pub type ConsoleOut = Arc<Mutex<Box<dyn std::io::Write + Send>>>;

/// The running pipeline: state, outbox and one delivery worker per destination.
#[derive(Debug)]
pub struct Notifier {
    pipeline: Mutex<Pipeline>,
    outbox: Arc<Outbox>,
    destinations: BTreeMap<(String, usize), Destination>,
    fallbacks: BTreeMap<String, String>,
    ctx: SendContext,
    history: History,
    forwarder: Mutex<forward::Forwarder>,
    flush_lock: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
}

impl Notifier {
    /// Compiles the configuration, opens the silences, the notification log and the outbox in
    /// `dir` (or keeps everything in memory), starts the delivery workers and the flush loop
    /// (needs a tokio runtime), and resends what the outbox still holds.
    pub fn start(
        cfg: &AlertingConfig,
        dir: Option<&Path>,
        external_url: String,
        console: &ConsoleOut,
    ) -> Result<Arc<Notifier>, NotifyError> {
        let plan = cfg.compile().map_err(NotifyError::Config)?;
        for w in &plan.warnings {
            tracing::warn!("alerting: {w}");
        }
        let now = now_ms();
        let io = |what| move |source| NotifyError::Io { what, source };
        let silences =
            silence::Silences::open(dir.map(|d| d.join("silences.json")).as_deref()).map_err(io("silences"))?;
        let acks = ack::Acks::open(dir.map(|d| d.join("acks.json")).as_deref()).map_err(io("acknowledgements"))?;
        let nflog = nflog::NotificationLog::open(dir.map(|d| d.join("nflog")).as_deref(), now)
            .map_err(io("notification log"))?;
        let (outbox, backlog) = Outbox::open(dir.map(|d| d.join("outbox")).as_deref()).map_err(io("outbox"))?;
        let outbox = Arc::new(outbox);
        let ctx = SendContext { external_url };
        let (given_up, mut given_up_rx) = tokio::sync::mpsc::unbounded_channel();
        let history = History::default();
        let destinations = start_destinations(&plan, &outbox, &ctx, console, (&given_up, &history))?;
        let fallbacks = plan
            .receivers
            .values()
            .filter_map(|r| r.fallback.clone().map(|f| (r.name.clone(), f)))
            .collect();
        let alerts = alerts::AlertStore::open(dir.map(|d| d.join("alerts.json")).as_deref()).map_err(io("alerts"))?;
        let mut pipeline = Pipeline::new(plan, silences, acks, nflog, 0);
        pipeline.restore_alerts(alerts, now);
        for n in &backlog {
            pipeline.seen_seq(n.seq);
            if let Err(e) = pipeline.record(n) {
                tracing::error!(error = %e, "writing the notification log failed");
            }
        }
        let notifier = Arc::new(Notifier {
            pipeline: Mutex::new(pipeline),
            outbox,
            destinations,
            fallbacks,
            ctx,
            history,
            forwarder: Mutex::new(forward::Forwarder::new(&cfg.alertmanagers).map_err(NotifyError::Config)?),
            flush_lock: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
        });
        for n in backlog {
            tracing::info!(receiver = %n.receiver, group = %n.group_key, "resending a notification from the outbox");
            notifier.enqueue(n);
        }
        tokio::spawn(notifier.clone().flush_loop());
        let me = notifier.clone();
        tokio::spawn(async move {
            while let Some(n) = given_up_rx.recv().await {
                let forgotten = me.pipeline.lock().forget(&n);
                match forgotten {
                    Ok(()) => me.outbox.remove(&n),
                    // Kept in the outbox: sent again after a restart rather than forgotten.
                    Err(e) => tracing::error!(error = %e, "writing the notification log failed"),
                }
            }
        });
        Ok(notifier)
    }

    /// Hands over the rules' current alerts (all firing ones, and those resolved in the last
    /// minutes), as Prometheus sends them to Alertmanager after each evaluation.
    pub fn sync(&self, alerts: Vec<PipelineAlert>, now: Timestamp) {
        let changed = self.pipeline.lock().sync(alerts, now);
        let mut f = self.forwarder.lock();
        if f.due(changed, now) {
            let all: Vec<PipelineAlert> = self.pipeline.lock().alerts().all().cloned().collect();
            f.send(&all, &self.ctx, now);
        }
        drop(f);
        self.wake.notify_one();
    }

    /// Runs the flushes due at `now`: notifications are written to the outbox, then to the
    /// notification log, then queued.
    pub async fn flush(&self, now: Timestamp) {
        let _one_at_a_time = self.flush_lock.lock().await;
        let (flushed, muted) = {
            let p = &mut *self.pipeline.lock();
            let flushed = p.flush_due(now);
            let muted: Vec<(Labels, stages::Muted)> = flushed
                .muted
                .iter()
                .filter_map(|m| {
                    let labels = match m {
                        stages::Muted::Silenced(fp, _) | stages::Muted::Inhibited(fp, _) => {
                            p.alerts().get(*fp)?.labels.clone()
                        }
                        stages::Muted::TimeMuted(group, _) => group.clone(),
                    };
                    Some((labels, m.clone()))
                })
                .collect();
            (flushed, muted)
        };
        self.history.muted(&muted, now);
        // The outbox first, then the log (each file carries its log entry: a crash between the
        // two sends nothing twice), then the queues.
        if let Err(e) = self.outbox.put_all(&flushed.notifications) {
            tracing::error!(error = %e, "cannot write notifications to the outbox; sending them anyway");
        }
        if let Err(e) = self.pipeline.lock().record_all(&flushed.notifications) {
            tracing::error!(error = %e, "writing the notification log failed");
        }
        for n in flushed.notifications {
            self.enqueue(n);
        }
    }

    async fn flush_loop(self: Arc<Self>) {
        let mut last_gc = 0;
        loop {
            let now = now_ms();
            self.flush(now).await;
            if now - last_gc >= 60_000 {
                self.pipeline.lock().gc(now);
                last_gc = now;
            }
            let wait = self
                .pipeline
                .lock()
                .next_due()
                .map_or(1_000, |t| (t - now_ms()).clamp(10, 1_000));
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_millis(wait as u64)) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    fn enqueue(&self, n: Notification) {
        match self.destinations.get(&(n.receiver.clone(), n.integration)) {
            Some(d) => d.push(n),
            None => {
                tracing::warn!(receiver = %n.receiver, "notification for a destination that no longer exists dropped");
                self.outbox.remove(&n);
            }
        }
    }

    /// Acknowledges the firing alerts among `fingerprints` and sends the short notices. Returns
    /// the fingerprints of the alerts acknowledged.
    pub fn acknowledge(&self, fingerprints: &[u64], info: &AckInfo, now: Timestamp) -> std::io::Result<Vec<u64>> {
        let (acked, notices) = {
            let mut p = self.pipeline.lock();
            let notices = p.acknowledge(fingerprints, info, now)?;
            let acked: Vec<u64> = fingerprints
                .iter()
                .copied()
                .filter(|fp| p.alerts().get(*fp).and_then(|a| p.ack_of(a, now)).is_some())
                .collect();
            (acked, notices)
        };
        tracing::info!(by = %info.by, alerts = ?acked, "alerts acknowledged");
        let labels: Vec<Labels> = self.with_pipeline(|p| {
            acked
                .iter()
                .filter_map(|fp| p.alerts().get(*fp).map(|a| a.labels.clone()))
                .collect()
        });
        self.history.acknowledged(&labels, &info.by, &info.comment, now);
        for n in notices {
            if let Err(e) = self.outbox.put(&n) {
                tracing::error!(error = %e, "cannot write an acknowledgement notice to the outbox; sending it anyway");
            }
            self.enqueue(n);
        }
        Ok(acked)
    }

    /// Reads or changes the pipeline's state (silences, alerts, groups).
    pub fn with_pipeline<T>(&self, f: impl FnOnce(&mut Pipeline) -> T) -> T {
        f(&mut self.pipeline.lock())
    }

    /// Names of the receivers an alert with `labels` is routed to.
    pub fn receivers_for(&self, labels: &Labels) -> Vec<String> {
        let p = self.pipeline.lock();
        let mut names: Vec<String> = p
            .plan()
            .route
            .routes_for(labels)
            .iter()
            .map(|r| r.opts.receiver.clone())
            .filter(|r| !r.is_empty())
            .collect();
        names.dedup();
        names
    }

    /// The alert history (connect it to the event store).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// A link to an expression in the query UI.
    pub fn generator_url(&self, expr: &str) -> String {
        self.ctx.generator_url(expr)
    }

    /// The fallback of a receiver, if it has one.
    pub fn fallback_of(&self, receiver: &str) -> Option<&str> {
        self.fallbacks.get(receiver).map(String::as_str)
    }

    /// Each destination's delivery: receiver, kind, circuit state and counts (for `vigil
    /// status`).
    pub fn destinations(&self) -> Vec<DestinationStatus> {
        let now = now_ms();
        self.destinations
            .iter()
            .map(|((receiver, index), d)| DestinationStatus {
                receiver: receiver.clone(),
                index: *index,
                kind: d.kind(),
                breaker: d.breaker_state(now),
                counts: d.stats().values().iter().map(|(k, v)| (*k, *v)).collect(),
                fallback: self.fallbacks.get(receiver).cloned(),
            })
            .collect()
    }

    /// `vigil_notify_*` self-metrics.
    pub fn telemetry(&self) -> Vec<(Labels, f64)> {
        let mut out = Vec::new();
        let now = now_ms();
        for ((receiver, i), d) in &self.destinations {
            // The kind names the destination; a second one of a kind in a receiver gets its
            // position too.
            let twin = (0..*i).any(|j| {
                self.destinations
                    .get(&(receiver.clone(), j))
                    .is_some_and(|o| o.kind() == d.kind())
            });
            let integration = if twin {
                format!("{}-{i}", d.kind())
            } else {
                d.kind().to_owned()
            };
            let labels = |metric: &str| {
                Labels::from_pairs([
                    ("__name__", metric),
                    ("integration", integration.as_str()),
                    ("receiver", receiver.as_str()),
                ])
            };
            let s: &DestinationStats = d.stats();
            for (metric, v) in s.values() {
                out.push((labels(metric), v));
            }
            out.push((labels("vigil_notify_breaker_state"), d.breaker_state(now).code()));
        }
        let p = self.pipeline.lock();
        let (groups, alerts, log) = p.sizes();
        let metric = |name: &str, v: usize| (Labels::from_pairs([("__name__", name)]), v as f64);
        out.push(metric("vigil_notify_groups", groups));
        out.push(metric("vigil_notify_group_alerts", alerts));
        out.push(metric("vigil_notify_log_entries", log));
        for (state, n) in p.silences().counts(now) {
            out.push((
                Labels::from_pairs([("__name__", "vigil_notify_silences"), ("state", state.as_str())]),
                n as f64,
            ));
        }
        out
    }
}

fn start_destinations(
    plan: &Plan,
    outbox: &Arc<Outbox>,
    ctx: &SendContext,
    console: &ConsoleOut,
    (given_up, history): (&delivery::GivenUp, &History),
) -> Result<BTreeMap<(String, usize), Destination>, NotifyError> {
    let fallbacks: delivery::Fallbacks = Arc::default();
    let mut out = BTreeMap::new();
    let mut by_receiver: BTreeMap<String, Vec<Destination>> = BTreeMap::new();
    for r in plan.receivers.values() {
        for (i, integration) in r.integrations.iter().enumerate() {
            let cfg = NotifyError::Config;
            let dest = match &integration.kind {
                IntegrationKind::Webhook(w) => Destination::start(
                    WebhookSender::new(w).map_err(cfg)?,
                    r,
                    i,
                    outbox,
                    ctx,
                    (&fallbacks, given_up, history),
                ),
                IntegrationKind::Slack(s) => Destination::start(
                    SlackSender::new(s).map_err(cfg)?,
                    r,
                    i,
                    outbox,
                    ctx,
                    (&fallbacks, given_up, history),
                ),
                IntegrationKind::Console => Destination::start(
                    ConsoleSender::new(console.clone()),
                    r,
                    i,
                    outbox,
                    ctx,
                    (&fallbacks, given_up, history),
                ),
                IntegrationKind::Email(e) => Destination::start(
                    EmailSender::new(e, r.delivery.timeout).map_err(cfg)?,
                    r,
                    i,
                    outbox,
                    ctx,
                    (&fallbacks, given_up, history),
                ),
                IntegrationKind::PagerDuty(p) => Destination::start(
                    PagerDutySender::new(p, r.delivery.timeout).map_err(cfg)?,
                    r,
                    i,
                    outbox,
                    ctx,
                    (&fallbacks, given_up, history),
                ),
            };
            by_receiver.entry(r.name.clone()).or_default().push(dest.clone());
            out.insert((r.name.clone(), i), dest);
        }
    }
    let _ = fallbacks.set(by_receiver);
    Ok(out)
}
