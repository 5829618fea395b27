//! Delivery to one destination: a queue, up to `max_concurrent` sends at once (one at a time
//! per group, so a group's notifications arrive in order), a timeout per request, retries with
//! backoff and jitter, a circuit breaker, and copies for the fallback receiver while the circuit
//! is open or the retries take too long.
//!
//! A newer notification of a group replaces an older one still queued or retrying: it carries
//! the group's current state. A notification leaves the outbox once delivered, replaced, or
//! given up; a given-up one is handed back so the notification log forgets it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot};
use vigil_tsdb::time::now_ms;

use super::breaker::{Breaker, BreakerState};
use super::history::History;
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
    superseded: AtomicU64,
    fallbacks: AtomicU64,
    breaker_opened: AtomicU64,
}

impl DestinationStats {
    /// `(metric, value)` pairs.
    pub(super) fn values(&self) -> [(&'static str, f64); 7] {
        let v = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        [
            ("vigil_notify_sent_total", v(&self.sent)),
            ("vigil_notify_failed_total", v(&self.failed)),
            ("vigil_notify_retries_total", v(&self.retries)),
            ("vigil_notify_queue_length", v(&self.queued)),
            ("vigil_notify_superseded_total", v(&self.superseded)),
            ("vigil_notify_fallbacks_total", v(&self.fallbacks)),
            ("vigil_notify_breaker_opened_total", v(&self.breaker_opened)),
        ]
    }
}

/// Queues of every destination by receiver, for fallback copies (filled once all are started,
/// replaced by a reload).
pub(super) type Fallbacks = Arc<RwLock<BTreeMap<String, Vec<Destination>>>>;

/// Where given-up notifications go (the notifier, to correct its log).
pub(super) type GivenUp = mpsc::UnboundedSender<Notification>;

/// A running destination.
#[derive(Debug, Clone)]
pub(super) struct Destination {
    tx: mpsc::UnboundedSender<Notification>,
    stats: Arc<DestinationStats>,
    breaker: Arc<Mutex<Breaker>>,
    kind: &'static str,
    retired: Arc<AtomicBool>,
}

/// What the workers of every destination share.
pub(super) struct Shared<'a> {
    pub(super) outbox: &'a Arc<Outbox>,
    pub(super) ctx: &'a SendContext,
    pub(super) fallbacks: &'a Fallbacks,
    pub(super) given_up: &'a GivenUp,
    pub(super) history: &'a History,
}

/// What a destination's worker shares with its delivery tasks.
struct Worker<S> {
    sender: S,
    delivery: Delivery,
    outbox: Arc<Outbox>,
    stats: Arc<DestinationStats>,
    breaker: Arc<Mutex<Breaker>>,
    ctx: SendContext,
    fallback: Option<String>,
    fallbacks: Fallbacks,
    given_up: GivenUp,
    history: History,
    retired: Arc<AtomicBool>,
}

/// How a delivery ended.
enum Outcome {
    Delivered,
    /// With the last error.
    GivenUp(String),
    /// A newer notification of the group replaced it.
    Superseded,
}

impl Destination {
    /// Starts the worker of destination `index` of `receiver`.
    pub(super) fn start<S: Sender>(
        sender: S,
        receiver: &ReceiverPlan,
        index: usize,
        shared: &Shared<'_>,
    ) -> Destination {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(DestinationStats::default());
        let breaker = Arc::new(Mutex::new(Breaker::new(receiver.delivery.breaker)));
        let retired = Arc::new(AtomicBool::new(false));
        let worker = Arc::new(Worker {
            sender,
            delivery: receiver.delivery.clone(),
            outbox: shared.outbox.clone(),
            stats: stats.clone(),
            breaker: breaker.clone(),
            ctx: shared.ctx.clone(),
            fallback: receiver.fallback.clone(),
            fallbacks: shared.fallbacks.clone(),
            given_up: shared.given_up.clone(),
            history: shared.history.clone(),
            retired: retired.clone(),
        });
        tokio::spawn(worker.run(rx));
        Destination {
            tx,
            stats,
            breaker,
            kind: receiver.integrations[index].kind.name(),
            retired,
        }
    }

    /// Marks the destination as replaced by a reload: once every handle is gone, its worker
    /// gives back what it has not started, so that the new configuration notifies those groups
    /// again; deliveries under way finish with the old settings.
    pub(super) fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    /// Whether both handles lead to the same worker.
    pub(super) fn same_worker(&self, other: &Destination) -> bool {
        Arc::ptr_eq(&self.retired, &other.retired)
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

/// The queue of one destination: waiting notifications and the groups being delivered.
#[derive(Default)]
struct Queue {
    pending: VecDeque<Notification>,
    /// Groups in delivery: the notification's sequence number and the means to stop it (taken
    /// once used: the group stays busy until that delivery has stopped).
    busy: HashMap<String, (u64, Option<oneshot::Sender<()>>)>,
}

impl<S: Sender> Worker<S> {
    /// Takes notifications from the queue and delivers them, several groups at once.
    async fn run(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Notification>) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, u64)>();
        let mut q = Queue::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                n = rx.recv() => match n {
                    Some(n) => self.accept(&mut q, n),
                    None => {
                        self.give_back(&mut q);
                        return;
                    }
                },
                Some((group, seq)) = done_rx.recv() => {
                    if q.busy.get(&group).is_some_and(|(s, _)| *s == seq) {
                        q.busy.remove(&group);
                    }
                }
                _ = tick.tick() => {}
            }
            self.fall_back_while_open(&mut q);
            self.start_what_can_start(&mut q, &done_tx);
        }
    }

    /// When the destination was replaced by a reload, hands its waiting notifications back to
    /// the notifier, which forgets them (log and outbox) so that the new configuration notifies
    /// their groups again; deliveries under way stop at their next wait and are handed back the
    /// same way (a retry against a receiver the reload replaced would only delay the page).
    fn give_back(&self, q: &mut Queue) {
        if !self.retired.load(Ordering::Relaxed) {
            return;
        }
        for n in q.pending.drain(..) {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            let _ = self.given_up.send(n);
        }
        for (_, stop) in q.busy.values_mut() {
            if let Some(stop) = stop.take() {
                let _ = stop.send(());
            }
        }
    }

    /// Queues a notification, replacing older ones of its group (queued or in delivery).
    fn accept(&self, q: &mut Queue, n: Notification) {
        let key = n.queue_key();
        let same = |o: &Notification| o.queue_key() == key;
        let before = q.pending.len();
        q.pending.retain(|o| {
            if same(o) {
                self.outbox.remove(o);
            }
            !same(o)
        });
        let replaced = before - q.pending.len();
        // A delivery under way of an older state stops at its next wait (never mid-request, so
        // the receiver sees the states in order); the new one starts once it has.
        if let Some((_, stop)) = q.busy.get_mut(&key)
            && let Some(stop) = stop.take()
        {
            let _ = stop.send(());
        }
        if replaced > 0 {
            self.stats.superseded.fetch_add(replaced as u64, Ordering::Relaxed);
            self.stats.queued.fetch_sub(replaced as u64, Ordering::Relaxed);
        }
        q.pending.push_back(n);
    }

    /// While the circuit is open, waiting notifications go to the fallback at once.
    fn fall_back_while_open(&self, q: &mut Queue) {
        if self.breaker.lock().state(now_ms()) != BreakerState::Open {
            return;
        }
        for n in q.pending.iter_mut().filter(|n| !n.fell_back) {
            self.fall_back(n, "its circuit is open");
        }
    }

    fn start_what_can_start(self: &Arc<Self>, q: &mut Queue, done: &mpsc::UnboundedSender<(String, u64)>) {
        let max = self.delivery.max_concurrent.max(1);
        while q.busy.len() < max {
            let Some(i) = q.pending.iter().position(|n| !q.busy.contains_key(&n.queue_key())) else {
                break;
            };
            let Some(n) = q.pending.remove(i) else { break };
            let (stop_tx, stop_rx) = oneshot::channel();
            q.busy.insert(n.queue_key(), (n.seq, Some(stop_tx)));
            let (me, done) = (self.clone(), done.clone());
            tokio::spawn(async move {
                let key = (n.queue_key(), n.seq);
                me.deliver_or_stop(n, stop_rx).await;
                let _ = done.send(key);
            });
        }
    }

    /// Delivers one notification unless a newer one of its group replaces it first.
    async fn deliver_or_stop(&self, mut n: Notification, mut stop: oneshot::Receiver<()>) {
        let outcome = self.deliver(&mut n, &mut stop).await;
        self.stats.queued.fetch_sub(1, Ordering::Relaxed);
        match outcome {
            Outcome::Delivered => {
                // Out of the outbox first: until then a crash sends it again.
                self.outbox.remove(&n);
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(receiver = %n.receiver, group = %n.group_key, alerts = n.alerts.len(),
                    status = n.status().as_str(), "notification sent");
                self.history.notification(&n, "sent", "", now_ms());
            }
            Outcome::GivenUp(why) => {
                self.history.notification(&n, "failed", &why, now_ms());
                // The notifier makes the log forget it, then removes its file: a crash in
                // between leaves it to be tried again, not forgotten.
                let _ = self.given_up.send(n);
            }
            Outcome::Superseded if self.retired.load(Ordering::Relaxed) => {
                // Stopped by a reload that replaced this destination: handed back.
                let _ = self.given_up.send(n);
            }
            Outcome::Superseded => {
                self.stats.superseded.fetch_add(1, Ordering::Relaxed);
                self.outbox.remove(&n);
            }
        }
    }

    /// Sleeps for `d`, or less if a newer notification replaces this one (then `true`).
    async fn sleep_or_stop(d: Duration, stop: &mut oneshot::Receiver<()>) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => false,
            r = stop => r.is_ok(),
        }
    }

    /// Tries until the notification is delivered, refused, too old, or replaced (checked only
    /// between attempts).
    async fn deliver(&self, n: &mut Notification, stop: &mut oneshot::Receiver<()>) -> Outcome {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let allowed = self.breaker.lock().allow(now_ms());
            let permit = match allowed {
                Ok(p) => p,
                Err(until) => {
                    self.fall_back(n, "its circuit is open");
                    let left = self.delivery.retry.give_up_after.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        return self.give_up(n, "the circuit stayed open");
                    }
                    if Self::sleep_or_stop(vigil_tsdb::time::ms_to_duration(until - now_ms()).min(left), stop).await {
                        return Outcome::Superseded;
                    }
                    continue;
                }
            };
            let result = match tokio::time::timeout(self.delivery.timeout, self.sender.send(n, &self.ctx)).await {
                Ok(r) => r,
                Err(_) => Err(SendError::Retryable(format!(
                    "timed out after {:?}",
                    self.delivery.timeout
                ))),
            };
            self.record(permit, result.is_ok());
            match result {
                Ok(()) => return Outcome::Delivered,
                Err(SendError::Permanent(e)) => {
                    self.fall_back(n, "it was refused");
                    return self.give_up(n, &format!("refused: {e}"));
                }
                Err(SendError::Retryable(e)) => {
                    attempt += 1;
                    let waited = started.elapsed();
                    if waited >= self.delivery.retry.give_up_after {
                        self.fall_back(n, "its retries are exhausted");
                        return self.give_up(n, &format!("{e} after {attempt} attempts"));
                    }
                    if waited >= self.delivery.retry.fallback_after {
                        self.fall_back(n, "its retries are taking too long");
                    }
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff(&self.delivery.retry, attempt, fastrand::f64());
                    tracing::warn!(receiver = %n.receiver, group = %n.group_key, error = %e, retry_in = ?wait, "notification not delivered");
                    if Self::sleep_or_stop(wait, stop).await {
                        return Outcome::Superseded;
                    }
                }
            }
        }
    }

    fn give_up(&self, n: &Notification, why: &str) -> Outcome {
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        tracing::error!(receiver = %n.receiver, group = %n.group_key, "notification given up: {why}");
        Outcome::GivenUp(why.to_owned())
    }

    fn record(&self, permit: super::breaker::Attempt, ok: bool) {
        let mut b = self.breaker.lock();
        let before = b.opened;
        b.record(permit, ok, now_ms());
        if b.opened > before {
            self.stats.breaker_opened.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "a receiver's circuit opened: no requests for {:?}",
                self.delivery.breaker.sleep_window
            );
        }
    }

    /// Sends copies to the fallback receiver's destinations, once per notification (not for
    /// copies themselves), and remembers in the outbox that it did.
    fn fall_back(&self, n: &mut Notification, why: &str) {
        if n.fell_back || n.fallback_for.is_some() || n.ack.is_some() {
            return;
        }
        let Some(fallback) = &self.fallback else { return };
        let Some(dests) = self.fallbacks.read().get(fallback).cloned() else {
            return;
        };
        tracing::warn!(receiver = %n.receiver, fallback = %fallback, group = %n.group_key, "{why}: sending to the fallback receiver");
        self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.history
            .notification(n, "fallback", &format!("{why}: sent to {fallback}"), now_ms());
        n.fell_back = true;
        let copies: Vec<Notification> = (0..dests.len())
            .map(|i| {
                let mut copy = n.clone();
                copy.receiver.clone_from(fallback);
                copy.integration = i;
                copy.fallback_for = Some(n.receiver.clone());
                copy
            })
            .collect();
        // The copies and the original marked as fallen back, durable together before any copy
        // is sent: a crash cannot send the copies twice.
        let mut files = copies.clone();
        files.push(n.clone());
        if let Err(e) = self.outbox.put_all(&files) {
            tracing::error!(error = %e, "cannot write fallback notifications to the outbox; sending them anyway");
        }
        for (copy, d) in copies.into_iter().zip(dests) {
            d.push(copy);
        }
    }
}
