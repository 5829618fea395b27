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
mod error;
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

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use vigil_tsdb::time::now_ms;
use vigil_tsdb::{Labels, Timestamp};

pub use ack::AckInfo;
pub use alerts::PipelineAlert;
pub use breaker::{Breaker, BreakerState};
pub use config::AlertingConfig;
pub use console::{ConsoleSender, console_line};
use delivery::{Destination, DestinationStats, Shared};
pub use email::{EmailSender, html_body, subject as email_subject, text_body};
pub use error::{ConfigError, DestinationError};
pub use forward::postable_alerts;
pub use history::{History, HistorySink};
pub use outbox::Outbox;
pub use pagerduty::{PagerDutySender, dedup_key, pagerduty_event};
pub use retry::{SendError, backoff, classify_status};
pub use silence::{Silence, SilenceError, SilenceMatcher, SilenceState};
pub use slack::{SlackSender, slack_message};
pub use stages::{Notification, Pipeline};
pub use webhook::{WebhookSender, webhook_payload};

use self::plan::{IntegrationKind, Plan, ReceiverPlan};

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
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A destination could not be built.
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// Its files could not be opened.
    #[error("{what}: {source}")]
    Io {
        /// Which file.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// A checked alerting configuration, ready for [`Notifier::apply`]; dropping it stops the
/// destinations it started.
#[derive(Debug)]
pub struct Reloaded {
    plan: Plan,
    destinations: Destinations,
    forwarder: Option<forward::Forwarder>,
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

struct Console(ConsoleOut);

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Console")
    }
}

/// The running pipeline: state, outbox and one delivery worker per destination.
#[derive(Debug)]
pub struct Notifier {
    pipeline: Mutex<Pipeline>,
    outbox: Arc<Outbox>,
    destinations: RwLock<Destinations>,
    /// Every destination by receiver, for the workers' fallback copies.
    fallback_queues: delivery::Fallbacks,
    ctx: SendContext,
    history: History,
    /// Where console destinations write (kept for the destinations a reload starts).
    console: Console,
    given_up: delivery::GivenUp,
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
        let plan = cfg.compile()?;
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
        let fallback_queues = delivery::Fallbacks::default();
        let shared = Shared {
            outbox: &outbox,
            ctx: &ctx,
            fallbacks: &fallback_queues,
            given_up: &given_up,
            history: &history,
        };
        let destinations = Destinations::default().next(&plan, &shared, console)?;
        fallback_queues.write().clone_from(&destinations.by_receiver());
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
            destinations: RwLock::new(destinations),
            fallback_queues,
            ctx,
            history,
            console: Console(console.clone()),
            given_up,
            forwarder: Mutex::new(forward::Forwarder::new(&cfg.alertmanagers)?),
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
        let (changed, vanished) = {
            let mut p = self.pipeline.lock();
            let current: std::collections::HashSet<u64> = alerts.iter().map(PipelineAlert::fingerprint).collect();
            let vanished: Vec<Labels> = p
                .alerts()
                .firing(now)
                .filter(|a| !current.contains(&a.fingerprint()))
                .map(|a| a.labels.clone())
                .collect();
            (p.sync(alerts, now), vanished)
        };
        self.history.vanished(&vanished, now);
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
        match self.destinations.read().map.get(&(n.receiver.clone(), n.integration)) {
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

    /// Reads and checks a new alerting configuration and starts the destinations it adds or
    /// changes, without applying it yet: a reload checks everything before it applies anything.
    pub fn prepare(&self, cfg: &AlertingConfig) -> Result<Reloaded, NotifyError> {
        let plan = cfg.compile()?;
        let shared = Shared {
            outbox: &self.outbox,
            ctx: &self.ctx,
            fallbacks: &self.fallback_queues,
            given_up: &self.given_up,
            history: &self.history,
        };
        let destinations = self.destinations.read().next(&plan, &shared, &self.console.0)?;
        let forwarder = if self.forwarder.lock().urls() == cfg.alertmanagers.as_slice() {
            None
        } else {
            Some(forward::Forwarder::new(&cfg.alertmanagers)?)
        };
        Ok(Reloaded {
            plan,
            destinations,
            forwarder,
        })
    }

    /// Puts a prepared configuration in place. Groups are rebuilt from the current alerts;
    /// silences, acknowledgements and the notification log stay, so no group state already
    /// notified is notified again. Destinations of unchanged receivers keep their queue and
    /// breaker; a replaced one finishes the deliveries it has started and gives back the rest,
    /// which the new configuration notifies again.
    pub fn apply(&self, next: Reloaded) {
        for w in &next.plan.warnings {
            tracing::warn!("alerting: {w}");
        }
        let by_receiver = next.destinations.by_receiver();
        let old = std::mem::replace(&mut *self.destinations.write(), next.destinations);
        for (key, d) in &old.map {
            let kept = self.destinations.read().map.get(key).is_some_and(|n| n.same_worker(d));
            if !kept {
                d.retire();
            }
        }
        *self.fallback_queues.write() = by_receiver;
        drop(old);
        self.pipeline.lock().replace_plan(next.plan, now_ms());
        if let Some(f) = next.forwarder {
            *self.forwarder.lock() = f;
        }
        self.wake.notify_one();
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
    pub fn fallback_of(&self, receiver: &str) -> Option<String> {
        self.destinations.read().fallback_of(receiver)
    }

    /// Each destination's delivery: receiver, kind, circuit state and counts (for `vigil
    /// status`).
    pub fn destinations(&self) -> Vec<DestinationStatus> {
        let now = now_ms();
        let dests = self.destinations.read();
        dests
            .map
            .iter()
            .map(|((receiver, index), d)| DestinationStatus {
                receiver: receiver.clone(),
                index: *index,
                kind: d.kind(),
                breaker: d.breaker_state(now),
                counts: d.stats().values().iter().map(|(k, v)| (*k, *v)).collect(),
                fallback: dests.fallback_of(receiver),
            })
            .collect()
    }

    /// `vigil_notify_*` self-metrics.
    pub fn telemetry(&self) -> Vec<(Labels, f64)> {
        let mut out = Vec::new();
        let now = now_ms();
        let dests = self.destinations.read();
        for ((receiver, i), d) in &dests.map {
            // The kind names the destination; a second one of a kind in a receiver gets its
            // position too.
            let twin = (0..*i).any(|j| {
                dests
                    .map
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

/// The running destinations of one configuration.
#[derive(Debug, Default)]
struct Destinations {
    map: BTreeMap<(String, usize), Destination>,
    receivers: BTreeMap<String, ReceiverPlan>,
}

impl Destinations {
    /// The destinations of `plan`: those of receivers that did not change are kept, with their
    /// queue, breaker and counts; the others are started.
    fn next(&self, plan: &Plan, shared: &Shared<'_>, console: &ConsoleOut) -> Result<Destinations, NotifyError> {
        let mut map = BTreeMap::new();
        for r in plan.receivers.values() {
            let unchanged = self.receivers.get(&r.name) == Some(r);
            for i in 0..r.integrations.len() {
                let key = (r.name.clone(), i);
                let dest = match self.map.get(&key) {
                    Some(d) if unchanged => d.clone(),
                    _ => start_destination(r, i, shared, console)?,
                };
                map.insert(key, dest);
            }
        }
        Ok(Destinations {
            map,
            receivers: plan.receivers.clone(),
        })
    }

    /// Every destination by receiver, in integration order.
    fn by_receiver(&self) -> BTreeMap<String, Vec<Destination>> {
        let mut out: BTreeMap<String, Vec<Destination>> = BTreeMap::new();
        for ((receiver, _), d) in &self.map {
            out.entry(receiver.clone()).or_default().push(d.clone());
        }
        out
    }

    fn fallback_of(&self, receiver: &str) -> Option<String> {
        self.receivers.get(receiver)?.fallback.clone()
    }
}

fn start_destination(
    r: &ReceiverPlan,
    i: usize,
    shared: &Shared<'_>,
    console: &ConsoleOut,
) -> Result<Destination, NotifyError> {
    Ok(match &r.integrations[i].kind {
        IntegrationKind::Webhook(w) => Destination::start(WebhookSender::new(w)?, r, i, shared),
        IntegrationKind::Slack(s) => Destination::start(SlackSender::new(s)?, r, i, shared),
        IntegrationKind::Console => Destination::start(ConsoleSender::new(console.clone()), r, i, shared),
        IntegrationKind::Email(e) => Destination::start(EmailSender::new(e, r.delivery.timeout)?, r, i, shared),
        IntegrationKind::PagerDuty(p) => Destination::start(PagerDutySender::new(p, r.delivery.timeout)?, r, i, shared),
    })
}
