//! Pages: alert transitions routed to receivers and delivered with retries.
//!
//! ```text
//! Notice (fired / resolved) ─ route ─> Page per receiver ─ outbox (on disk) ─> worker per receiver
//!                                                                              send, retry with
//!                                                                              backoff, remove
//! ```
//!
//! Each receiver has its own worker, so one that never answers delays only its own pages.
//! Receivers are one module each behind the [`Receiver`] trait.

pub mod config;
mod console;
mod outbox;
mod retry;
pub mod route;
mod slack;
mod webhook;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use vigil_tsdb::{Labels, Timestamp};

use crate::alert::{Alert, Transition};
use crate::group::Notice;
pub use config::AlertingConfig;
pub use console::{ConsoleReceiver, console_line};
pub use outbox::Outbox;
pub use retry::{SendError, backoff, classify_status};
use route::Route;
pub use slack::{SlackReceiver, slack_message};
pub use webhook::{WebhookReceiver, webhook_payload};

/// What happened to the alert of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The alert started firing.
    Firing,
    /// The alert stopped firing.
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

/// One alert transition for one receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// Order of creation.
    pub seq: u64,
    /// Who gets it.
    pub receiver: String,
    /// Firing or resolved.
    pub status: Status,
    /// The alert after the transition.
    pub alert: Alert,
    /// The rule's group.
    pub group: String,
    /// The rule's expression.
    pub expr: String,
    /// The expression's value for this series a day before (D-1).
    pub d1: Option<f64>,
    /// ... and a week before (D-7).
    pub d7: Option<f64>,
    /// Base URL of links.
    pub external_url: String,
}

impl Page {
    /// The alert's name.
    pub fn alertname(&self) -> &str {
        self.alert.labels.get("alertname").unwrap_or("")
    }

    /// A link to the rule's expression in the query UI (Prometheus's `generatorURL`).
    pub fn generator_url(&self) -> String {
        let q: String = form_urlencode(&self.expr);
        format!("{}/graph?g0.expr={q}&g0.tab=1", self.external_url.trim_end_matches('/'))
    }

    /// When the transition happened: firing since `fired_at`, resolved at `resolved_at`.
    pub fn at(&self) -> Timestamp {
        match self.status {
            Status::Firing => self.alert.fired_at.unwrap_or(self.alert.active_at),
            Status::Resolved => self.alert.resolved_at.unwrap_or(self.alert.active_at),
        }
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

/// Delivers pages somewhere.
pub trait Receiver: Send + Sync + 'static {
    /// Sends one page; the error says whether trying again could help.
    fn send(&self, page: &Page) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// Counts per receiver.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    /// Pages delivered.
    pub sent: AtomicU64,
    /// Pages given up on.
    pub failed: AtomicU64,
    /// Attempts that were retried.
    pub retries: AtomicU64,
    /// Pages waiting.
    pub queued: AtomicU64,
}

/// Routes notices to receivers and runs their delivery workers.
#[derive(Debug)]
pub struct Notifier {
    route: Route,
    queues: BTreeMap<String, mpsc::UnboundedSender<Page>>,
    outbox: Arc<Outbox>,
    external_url: String,
    stats: BTreeMap<String, Arc<ReceiverStats>>,
}

impl Notifier {
    /// Starts a worker per receiver (needs a tokio runtime) and resends what the outbox in
    /// `outbox_dir` still holds. `console` is where a console receiver writes.
    pub fn start(
        cfg: &AlertingConfig,
        outbox_dir: Option<&Path>,
        external_url: String,
        console: &Arc<Mutex<Box<dyn std::io::Write + Send>>>,
    ) -> Result<Notifier, String> {
        cfg.validate()?;
        let names: Vec<String> = cfg.receivers.iter().map(|r| r.name.clone()).collect();
        let route = match &cfg.route {
            Some(r) => Route::new(r, "")?,
            None => Route::fan_out(&names),
        };
        let (outbox, backlog) = Outbox::open(outbox_dir).map_err(|e| format!("opening the outbox: {e}"))?;
        let outbox = Arc::new(outbox);
        let mut queues = BTreeMap::new();
        let mut stats = BTreeMap::new();
        for r in &cfg.receivers {
            let (tx, rx) = mpsc::unbounded_channel();
            let st = Arc::new(ReceiverStats::default());
            let ob = outbox.clone();
            let retry = r.retry;
            let name = r.name.clone();
            if let Some(w) = &r.webhook {
                tokio::spawn(worker(name, WebhookReceiver::new(w)?, rx, ob, retry, st.clone()));
            } else if let Some(s) = &r.slack {
                tokio::spawn(worker(name, SlackReceiver::new(s)?, rx, ob, retry, st.clone()));
            } else {
                tokio::spawn(worker(
                    name,
                    ConsoleReceiver::new(console.clone()),
                    rx,
                    ob,
                    retry,
                    st.clone(),
                ));
            }
            queues.insert(r.name.clone(), tx);
            stats.insert(r.name.clone(), st);
        }
        let n = Notifier {
            route,
            queues,
            outbox,
            external_url,
            stats,
        };
        for page in backlog {
            tracing::info!(receiver = %page.receiver, alert = page.alertname(), "resending a page from the outbox");
            n.enqueue(page);
        }
        Ok(n)
    }

    fn enqueue(&self, page: Page) {
        match self.queues.get(&page.receiver) {
            Some(q) => {
                if let Some(s) = self.stats.get(&page.receiver) {
                    s.queued.fetch_add(1, Ordering::Relaxed);
                }
                if q.send(page).is_err() {
                    tracing::error!("a receiver worker has stopped");
                }
            }
            None => {
                tracing::warn!(receiver = %page.receiver, "page for a receiver that no longer exists dropped");
                self.outbox.remove(&page);
            }
        }
    }

    /// Routes each notice and queues a page per receiver, writing it to the outbox first.
    pub fn deliver(&self, notices: Vec<Notice>) {
        for n in notices {
            let (status, alert) = match n.transition {
                Transition::Fired(a) => (Status::Firing, a),
                Transition::Resolved(a) => (Status::Resolved, a),
            };
            for receiver in self.route.receivers(&alert.labels) {
                let page = Page {
                    seq: self.outbox.next_seq(),
                    receiver,
                    status,
                    alert: alert.clone(),
                    group: n.group.clone(),
                    expr: n.expr.clone(),
                    d1: n.d1.filter(|v| v.is_finite()),
                    d7: n.d7.filter(|v| v.is_finite()),
                    external_url: self.external_url.clone(),
                };
                if let Err(e) = self.outbox.put(&page) {
                    tracing::error!(error = %e, "cannot write a page to the outbox; sending it anyway");
                }
                self.enqueue(page);
            }
        }
    }

    /// `vigil_notify_*` self-metrics.
    pub fn telemetry(&self) -> Vec<(Labels, f64)> {
        let mut out = Vec::new();
        for (name, s) in &self.stats {
            let m = |metric: &str, v: &AtomicU64| {
                (
                    Labels::from_pairs([("__name__", metric), ("receiver", name.as_str())]),
                    v.load(Ordering::Relaxed) as f64,
                )
            };
            out.push(m("vigil_notify_sent_total", &s.sent));
            out.push(m("vigil_notify_failed_total", &s.failed));
            out.push(m("vigil_notify_retries_total", &s.retries));
            out.push(m("vigil_notify_queue_length", &s.queued));
        }
        out
    }
}

/// Delivers one receiver's pages in order, retrying each with backoff until it is delivered,
/// refused for good, or too old.
async fn worker<R: Receiver>(
    name: String,
    receiver: R,
    mut rx: mpsc::UnboundedReceiver<Page>,
    outbox: Arc<Outbox>,
    retry: config::RetryConfig,
    stats: Arc<ReceiverStats>,
) {
    while let Some(page) = rx.recv().await {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            match receiver.send(&page).await {
                Ok(()) => {
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(receiver = %name, alert = page.alertname(), status = page.status.as_str(), "page sent");
                    break;
                }
                Err(SendError::Permanent(e)) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(receiver = %name, alert = page.alertname(), error = %e, "page refused; not retried");
                    break;
                }
                Err(SendError::Retryable(e)) => {
                    attempt += 1;
                    let waited = started.elapsed().as_millis() as i64;
                    if waited >= retry.give_up_after {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(receiver = %name, alert = page.alertname(), error = %e, attempts = attempt,
                            "page given up after retrying");
                        break;
                    }
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff(&retry, attempt, fastrand::f64());
                    tracing::warn!(receiver = %name, alert = page.alertname(), error = %e, retry_in = ?wait, "page not delivered");
                    tokio::time::sleep(wait).await;
                }
            }
        }
        stats.queued.fetch_sub(1, Ordering::Relaxed);
        outbox.remove(&page);
    }
}
