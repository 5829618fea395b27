//! Delivery to one destination: a queue, up to `max_concurrent` sends at once (one at a time
//! per group, so a group's notifications arrive in order), a timeout per request, retries with
//! backoff and jitter, a circuit breaker, and copies for the fallback receiver while the circuit
//! is open or the retries take too long. A notification leaves the outbox once delivered or given
//! up.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use vigil_tsdb::time::now_ms;

use super::breaker::{Breaker, BreakerState};
use super::outbox::Outbox;
use super::plan::{Delivery, ReceiverPlan};
use super::retry::{SendError, backoff};
use super::stages::Notification;
use super::{SendContext, Sender};

/// Counts of one destination.
#[derive(Debug, Default)]
pub(super) struct DestinationStats {
    sent: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    queued: AtomicU64,
    fallbacks: AtomicU64,
    breaker_opened: AtomicU64,
}

impl DestinationStats {
    /// `(metric, value)` pairs.
    pub(super) fn values(&self) -> [(&'static str, f64); 6] {
        let v = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        [
            ("vigil_notify_sent_total", v(&self.sent)),
            ("vigil_notify_failed_total", v(&self.failed)),
            ("vigil_notify_retries_total", v(&self.retries)),
            ("vigil_notify_queue_length", v(&self.queued)),
            ("vigil_notify_fallbacks_total", v(&self.fallbacks)),
            ("vigil_notify_breaker_opened_total", v(&self.breaker_opened)),
        ]
    }
}

/// Queues of every destination by receiver, for fallback copies (set once all are started).
pub(super) type Fallbacks = Arc<OnceLock<BTreeMap<String, Vec<Destination>>>>;

/// A running destination.
#[derive(Debug, Clone)]
pub(super) struct Destination {
    tx: mpsc::UnboundedSender<Notification>,
    stats: Arc<DestinationStats>,
    breaker: Arc<Mutex<Breaker>>,
    kind: &'static str,
}

struct Worker<S> {
    sender: S,
    delivery: Delivery,
    outbox: Arc<Outbox>,
    stats: Arc<DestinationStats>,
    breaker: Arc<Mutex<Breaker>>,
    ctx: SendContext,
    fallback: Option<String>,
    fallbacks: Fallbacks,
}

impl Destination {
    /// Starts the worker of destination `index` of `receiver`.
    pub(super) fn start<S: Sender>(
        sender: S,
        receiver: &ReceiverPlan,
        index: usize,
        outbox: &Arc<Outbox>,
        ctx: &SendContext,
        fallbacks: &Fallbacks,
    ) -> Destination {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(DestinationStats::default());
        let breaker = Arc::new(Mutex::new(Breaker::new(receiver.delivery.breaker)));
        let worker = Arc::new(Worker {
            sender,
            delivery: receiver.delivery.clone(),
            outbox: outbox.clone(),
            stats: stats.clone(),
            breaker: breaker.clone(),
            ctx: ctx.clone(),
            fallback: receiver.fallback.clone(),
            fallbacks: fallbacks.clone(),
        });
        tokio::spawn(worker.run(rx));
        Destination {
            tx,
            stats,
            breaker,
            kind: receiver.integrations[index].kind.name(),
        }
    }

    /// Queues a notification.
    pub(super) fn push(&self, n: Notification) {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(n).is_err() {
            tracing::error!("a delivery worker has stopped");
        }
    }

    pub(super) fn stats(&self) -> &DestinationStats {
        &self.stats
    }

    pub(super) fn kind(&self) -> &'static str {
        self.kind
    }

    pub(super) fn breaker_state(&self, now: vigil_tsdb::Timestamp) -> BreakerState {
        self.breaker.lock().state(now)
    }
}

impl<S: Sender> Worker<S> {
    /// Takes notifications from the queue and delivers them, several groups at once.
    async fn run(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Notification>) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
        let mut pending: VecDeque<Notification> = VecDeque::new();
        let mut busy: HashSet<String> = HashSet::new();
        let max = self.delivery.max_concurrent.max(1);
        loop {
            tokio::select! {
                n = rx.recv() => match n {
                    Some(n) => pending.push_back(n),
                    None if busy.is_empty() => return,
                    None => {}
                },
                Some(group) = done_rx.recv() => { busy.remove(&group); }
            }
            while busy.len() < max {
                let Some(i) = pending.iter().position(|n| !busy.contains(&n.group_key)) else {
                    break;
                };
                let Some(n) = pending.remove(i) else { break };
                busy.insert(n.group_key.clone());
                let (me, done) = (self.clone(), done_tx.clone());
                tokio::spawn(async move {
                    let group = n.group_key.clone();
                    me.deliver(n).await;
                    let _ = done.send(group);
                });
            }
        }
    }

    /// Delivers one notification: retries until it is delivered, refused, or too old.
    async fn deliver(&self, n: Notification) {
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut fell_back = false;
        loop {
            let allowed = self.breaker.lock().allow(now_ms());
            if let Err(until) = allowed {
                if !fell_back {
                    fell_back = self.fall_back(&n, "its circuit is open");
                }
                let left = self.delivery.retry.give_up_after.saturating_sub(started.elapsed());
                if left.is_zero() {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(receiver = %n.receiver, group = %n.group_key, "notification given up: the circuit stayed open");
                    break;
                }
                tokio::time::sleep(vigil_tsdb::time::ms_to_duration(until - now_ms()).min(left)).await;
                continue;
            }
            let result = match tokio::time::timeout(self.delivery.timeout, self.sender.send(&n, &self.ctx)).await {
                Ok(r) => r,
                Err(_) => Err(SendError::Retryable(format!(
                    "timed out after {:?}",
                    self.delivery.timeout
                ))),
            };
            self.record(result.is_ok());
            match result {
                Ok(()) => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(receiver = %n.receiver, group = %n.group_key, alerts = n.alerts.len(),
                        status = n.status().as_str(), "notification sent");
                    break;
                }
                Err(SendError::Permanent(e)) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(receiver = %n.receiver, group = %n.group_key, error = %e, "notification refused; not retried");
                    if !fell_back {
                        self.fall_back(&n, "it was refused");
                    }
                    break;
                }
                Err(SendError::Retryable(e)) => {
                    attempt += 1;
                    let waited = started.elapsed();
                    if waited >= self.delivery.retry.give_up_after {
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(receiver = %n.receiver, group = %n.group_key, error = %e, attempts = attempt,
                            "notification given up after retrying");
                        if !fell_back {
                            self.fall_back(&n, "its retries are exhausted");
                        }
                        break;
                    }
                    if !fell_back && waited >= self.delivery.retry.fallback_after {
                        fell_back = self.fall_back(&n, "its retries are taking too long");
                    }
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff(&self.delivery.retry, attempt, fastrand::f64());
                    tracing::warn!(receiver = %n.receiver, group = %n.group_key, error = %e, retry_in = ?wait, "notification not delivered");
                    tokio::time::sleep(wait).await;
                }
            }
        }
        self.stats.queued.fetch_sub(1, Ordering::Relaxed);
        self.outbox.remove(&n);
    }

    fn record(&self, ok: bool) {
        let mut b = self.breaker.lock();
        let before = b.opened;
        b.record(ok, now_ms());
        if b.opened > before {
            self.stats.breaker_opened.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "a receiver's circuit opened: no requests for {:?}",
                self.delivery.breaker.sleep_window
            );
        }
    }

    /// Sends copies to the fallback receiver's destinations (not for copies themselves).
    /// Returns whether there was a fallback to send to.
    fn fall_back(&self, n: &Notification, why: &str) -> bool {
        let (Some(fallback), None) = (&self.fallback, &n.fallback_for) else {
            return false;
        };
        let Some(dests) = self.fallbacks.get().and_then(|f| f.get(fallback)) else {
            return false;
        };
        tracing::warn!(receiver = %n.receiver, fallback = %fallback, group = %n.group_key, "{why}: sending to the fallback receiver");
        self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
        for (i, d) in dests.iter().enumerate() {
            let mut copy = n.clone();
            copy.receiver.clone_from(fallback);
            copy.integration = i;
            copy.fallback_for = Some(n.receiver.clone());
            if let Err(e) = self.outbox.put(&copy) {
                tracing::error!(error = %e, "cannot write a fallback notification to the outbox; sending it anyway");
            }
            d.push(copy);
        }
        true
    }
}
