//! The notification pipeline's decisions, as Alertmanager's notify stages make them, each a
//! small function of its inputs and the time:
//!
//! ```text
//! alerts ─ sync ─> store ─ route + group ─> aggregation groups ── due at `now` ──> flush
//! flush ─ inhibit ─> time intervals ─> silence ─> per destination: dedup (notification log)
//!       ─> Notification (to the outbox and a delivery worker)
//! ```
//!
//! [`Pipeline`] holds the state (alerts, groups, silences, the log) and runs the stages; it
//! neither sleeps nor sends, so tests and `vigil backtest` drive it with any clock.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use vigil_tsdb::{Labels, Timestamp};

use super::ack::{AckInfo, Acks};
use super::alerts::{AlertStore, PipelineAlert};
use super::dispatch::{Dispatcher, GroupFlush};
use super::inhibit::InhibitIndex;
use super::nflog::{LogEntry, LogKey, NotificationLog, needs_update};
use super::plan::{Plan, Route};
use super::silence::Silences;
use super::timeinterval::any_contains;

/// One notification for one destination of one receiver: a group's alerts at a flush.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Order of creation.
    pub seq: u64,
    /// The receiver.
    pub receiver: String,
    /// The destination's position in the receiver.
    pub integration: usize,
    /// The group key.
    pub group_key: String,
    /// The group's labels.
    #[serde(with = "crate::alert::labels_serde")]
    pub group_labels: Labels,
    /// The alerts to send (resolved ones only where the destination sends them).
    pub alerts: Vec<PipelineAlert>,
    /// What the notification log records once this is queued.
    pub log: LogEntry,
    /// When the flush happened (ms).
    pub created_at: Timestamp,
    /// Set on a copy for a fallback receiver: the receiver that could not take it.
    #[serde(default)]
    pub fallback_for: Option<String>,
    /// Whether copies already went to the fallback receiver.
    #[serde(default)]
    pub fell_back: bool,
    /// What the log held for this group and destination before; put back if this notification
    /// is given up, so that the next flush tells the receiver again.
    #[serde(default)]
    pub previous_log: Option<LogEntry>,
    /// Set on the short notice that alerts of the group were acknowledged (its alerts are the
    /// acknowledged ones).
    #[serde(default)]
    pub ack: Option<AckInfo>,
}

impl Notification {
    /// What orders and replaces notifications in a destination's queue: the group, and whether
    /// this is a fallback copy or an acknowledgement notice.
    pub fn queue_key(&self) -> String {
        let mut k = self.group_key.clone();
        if let Some(r) = &self.fallback_for {
            k.push_str("#fallback-for:");
            k.push_str(r);
        }
        if self.ack.is_some() {
            // Each acknowledgement notice stands alone: none replaces another.
            k.push_str(&format!("#ack-{}", self.seq));
        }
        k
    }

    /// An id that is the same each time this notification is sent (after a restart too) and
    /// differs between notifications: creation time, sequence, destination.
    pub fn id(&self) -> String {
        let copy = self
            .fallback_for
            .as_deref()
            .map_or(String::new(), |r| format!("-for-{r}"));
        format!(
            "{}-{}-{}-{}{copy}",
            self.created_at, self.seq, self.receiver, self.integration
        )
    }

    /// Firing when any alert fires, else resolved.
    pub fn status(&self) -> super::Status {
        if self.alerts.iter().any(|a| a.ends_at.is_none()) {
            super::Status::Firing
        } else {
            super::Status::Resolved
        }
    }

    /// The firing alerts.
    pub fn firing(&self) -> impl Iterator<Item = &PipelineAlert> {
        self.alerts.iter().filter(|a| a.ends_at.is_none())
    }

    /// The resolved alerts.
    pub fn resolved(&self) -> impl Iterator<Item = &PipelineAlert> {
        self.alerts.iter().filter(|a| a.ends_at.is_some())
    }

    /// The group's common labels: those every alert has with the same value.
    pub fn common_labels(&self) -> Vec<(String, String)> {
        let Some(first) = self.alerts.first() else {
            return Vec::new();
        };
        first
            .labels
            .iter()
            .filter(|l| {
                self.alerts
                    .iter()
                    .all(|a| a.labels.get(&l.name) == Some(l.value.as_str()))
            })
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect()
    }

    /// The annotations every alert has with the same value.
    pub fn common_annotations(&self) -> Vec<(String, String)> {
        let Some(first) = self.alerts.first() else {
            return Vec::new();
        };
        first
            .annotations
            .iter()
            .filter(|(k, v)| self.alerts.iter().all(|a| a.annotation(k) == Some(v.as_str())))
            .cloned()
            .collect()
    }
}

/// Why alerts of a flush were not notified (for history and the API).
#[derive(Debug, Clone, PartialEq)]
pub enum Muted {
    /// Muted by the firing alert with this fingerprint.
    Inhibited(u64, u64),
    /// Muted by these silences.
    Silenced(u64, Vec<String>),
    /// The route's time intervals mute it now.
    TimeMuted(Labels, String),
}

/// The pipeline's state.
#[derive(Debug)]
pub struct Pipeline {
    plan: Plan,
    alerts: AlertStore,
    dispatcher: Dispatcher,
    silences: Silences,
    acks: Acks,
    nflog: NotificationLog,
    next_seq: u64,
    /// The inhibition index of the current alerts (rebuilt after they change, or after a
    /// minute, as alerts' ends pass).
    inhibit_index: Option<(Timestamp, InhibitIndex)>,
}

/// What one round of flushes produced.
#[derive(Debug, Default)]
pub struct Flushed {
    /// To queue, in order.
    pub notifications: Vec<Notification>,
    /// What was muted and why.
    pub muted: Vec<Muted>,
}

impl Pipeline {
    /// A pipeline for `plan` with its silences and log.
    pub fn new(plan: Plan, silences: Silences, acks: Acks, nflog: NotificationLog, next_seq: u64) -> Pipeline {
        Pipeline {
            plan,
            alerts: AlertStore::default(),
            dispatcher: Dispatcher::default(),
            silences,
            acks,
            nflog,
            next_seq,
            inhibit_index: None,
        }
    }

    /// Builds the inhibition index if the alerts changed since it was built.
    fn refresh_inhibit_index(&mut self, now: Timestamp) {
        let stale = self
            .inhibit_index
            .as_ref()
            .is_none_or(|(at, _)| now < *at || now - *at >= 60_000);
        if stale {
            self.inhibit_index = Some((now, InhibitIndex::build(&self.plan.inhibit_rules, &self.alerts, now)));
        }
    }

    /// The firing alert that inhibits `labels` (after [`Pipeline::refresh_inhibit_index`]).
    fn inhibitor(&self, labels: &Labels) -> Option<u64> {
        let (_, index) = self.inhibit_index.as_ref()?;
        index.inhibited_by(&self.plan.inhibit_rules, labels)
    }

    /// Takes the alerts saved before a restart: they are grouped again (the log knows what was
    /// sent), and the next [`Pipeline::sync`] resolves those the rules no longer have.
    pub fn restore_alerts(&mut self, alerts: AlertStore, now: Timestamp) {
        self.alerts = alerts;
        self.inhibit_index = None;
        let all: Vec<PipelineAlert> = self.alerts.all().cloned().collect();
        for a in &all {
            self.route(a, now);
        }
    }

    /// Who acknowledged an alert's current firing, if anyone.
    pub fn ack_of(&self, a: &PipelineAlert, now: Timestamp) -> Option<&AckInfo> {
        self.acks.of(a.fingerprint(), a.fired_at, now)
    }

    /// Acknowledges the firing alerts among `fingerprints` and returns the short notices for
    /// the destinations that were told about them (not yet queued; they do not enter the log).
    pub fn acknowledge(
        &mut self,
        fingerprints: &[u64],
        info: &AckInfo,
        now: Timestamp,
    ) -> std::io::Result<Vec<Notification>> {
        self.acks.ack(&self.alerts, fingerprints, info, now)?;
        let routes = self.plan.route.all();
        let mut notices = Vec::new();
        for (route_id, key, labels, alerts) in self.dispatcher.groups() {
            let acked: Vec<PipelineAlert> = alerts
                .into_iter()
                .filter(|a| fingerprints.contains(&a.fingerprint()) && !a.resolved(now))
                .map(|a| PipelineAlert {
                    ack: Some(info.clone()),
                    ..a.clone()
                })
                .collect();
            let Some(route) = routes.iter().find(|r| r.id == route_id) else {
                continue;
            };
            let Some(receiver) = self.plan.receivers.get(&route.opts.receiver) else {
                continue;
            };
            for i in 0..receiver.integrations.len() {
                let log_key = LogKey {
                    group: key.to_owned(),
                    receiver: receiver.name.clone(),
                    integration: i,
                };
                // Only destinations that were told about these alerts hear of the ack.
                let Some(log) = self.nflog.get(&log_key) else { continue };
                let told: Vec<PipelineAlert> = acked
                    .iter()
                    .filter(|a| log.firing.contains(&a.fingerprint()))
                    .cloned()
                    .collect();
                if told.is_empty() {
                    continue;
                }
                self.next_seq += 1;
                notices.push(Notification {
                    seq: self.next_seq,
                    receiver: receiver.name.clone(),
                    integration: i,
                    group_key: key.to_owned(),
                    group_labels: labels.clone(),
                    alerts: told,
                    log: log.clone(),
                    created_at: now,
                    fallback_for: None,
                    fell_back: false,
                    previous_log: None,
                    ack: Some(info.clone()),
                });
            }
        }
        Ok(notices)
    }

    /// Withdraws acks.
    pub fn withdraw_acks(&mut self, fingerprints: &[u64]) -> std::io::Result<usize> {
        self.acks.withdraw(fingerprints)
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The alerts.
    pub fn alerts(&self) -> &AlertStore {
        &self.alerts
    }

    /// The silences.
    pub fn silences(&self) -> &Silences {
        &self.silences
    }

    /// The silences, to change.
    pub fn silences_mut(&mut self) -> &mut Silences {
        &mut self.silences
    }

    /// The groups.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// Takes a new plan (a reload): groups are rebuilt from the current alerts; the log and
    /// silences stay, so nothing already notified is notified again.
    pub fn replace_plan(&mut self, plan: Plan, now: Timestamp) {
        self.plan = plan;
        self.inhibit_index = None;
        self.dispatcher = Dispatcher::default();
        let all: Vec<PipelineAlert> = self.alerts.all().cloned().collect();
        for a in &all {
            self.route(a, now);
        }
    }

    /// The rules' current alerts (firing, and resolved within the last minutes); returns
    /// whether any changed.
    pub fn sync(&mut self, current: Vec<PipelineAlert>, now: Timestamp) -> bool {
        let changed = self.alerts.sync(current, now);
        if !changed.is_empty() {
            self.inhibit_index = None;
        }
        for a in &changed {
            self.route(a, now);
        }
        self.acks.prune(&self.alerts, now);
        if let Err(e) = self.alerts.save_if_changed() {
            tracing::error!(error = %e, "saving the alerts failed");
        }
        !changed.is_empty()
    }

    fn route(&mut self, alert: &PipelineAlert, now: Timestamp) {
        for r in self.plan.route.routes_for(&alert.labels) {
            self.dispatcher.insert(r, alert.clone(), now);
        }
    }

    /// Which active silences mute `labels`, and which firing alert inhibits it.
    pub fn status_of(&mut self, labels: &Labels, now: Timestamp) -> (Vec<String>, Option<u64>) {
        self.refresh_inhibit_index(now);
        (self.silences.silenced_by(labels, now), self.inhibitor(labels))
    }

    /// When the next group is due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.dispatcher.next_due()
    }

    /// Flushes the groups due at `now` through the stages. The notifications returned are
    /// not yet in the log: [`Pipeline::record`] them once they are safely queued.
    pub fn flush_due(&mut self, now: Timestamp) -> Flushed {
        let mut out = Flushed::default();
        for flush in self.dispatcher.due(now) {
            self.flush_one(&flush, now, &mut out);
            self.dispatcher.flushed(&flush, now);
        }
        out
    }

    fn flush_one(&mut self, flush: &GroupFlush, now: Timestamp, out: &mut Flushed) {
        let Some(route) = self
            .plan
            .route
            .all()
            .into_iter()
            .find(|r| r.id == flush.route_id)
            .cloned()
        else {
            return;
        };
        let alerts = self.inhibit(&flush.alerts, now, &mut out.muted);
        if alerts.is_empty() {
            return;
        }
        if let Some(why) = self.time_muted(&route, now) {
            out.muted.push(Muted::TimeMuted(flush.labels.clone(), why));
            return;
        }
        let alerts = self.silence(alerts, now, &mut out.muted);
        if alerts.is_empty() {
            return;
        }
        self.dedup(&route, flush, &alerts, now, &mut out.notifications);
    }

    /// Stage: drops alerts a firing alert inhibits.
    fn inhibit(&mut self, alerts: &[PipelineAlert], now: Timestamp, muted: &mut Vec<Muted>) -> Vec<PipelineAlert> {
        self.refresh_inhibit_index(now);
        alerts
            .iter()
            .filter(|a| match self.inhibitor(&a.labels) {
                Some(by) => {
                    muted.push(Muted::Inhibited(a.fingerprint(), by));
                    false
                }
                None => true,
            })
            .cloned()
            .collect()
    }

    /// Stage: whether the route's time intervals mute it at `now`, and why.
    fn time_muted(&self, route: &Route, now: Timestamp) -> Option<String> {
        let named = |n: &String| self.plan.time_intervals.get(n).map(Vec::as_slice).unwrap_or_default();
        if let Some(n) = route
            .opts
            .mute_time_intervals
            .iter()
            .find(|n| any_contains(named(n), now))
        {
            return Some(format!("inside mute time interval {n}"));
        }
        let active = &route.opts.active_time_intervals;
        if !active.is_empty() && !active.iter().any(|n| any_contains(named(n), now)) {
            return Some("outside its active time intervals".into());
        }
        None
    }

    /// Stage: drops silenced alerts.
    fn silence(&self, alerts: Vec<PipelineAlert>, now: Timestamp, muted: &mut Vec<Muted>) -> Vec<PipelineAlert> {
        alerts
            .into_iter()
            .filter(|a| {
                let by = self.silences.silenced_by(&a.labels, now);
                if by.is_empty() {
                    return true;
                }
                muted.push(Muted::Silenced(a.fingerprint(), by));
                false
            })
            .collect()
    }

    /// Stage: one notification per destination whose last notification of this group is out
    /// of date.
    fn dedup(
        &mut self,
        route: &Route,
        flush: &GroupFlush,
        alerts: &[PipelineAlert],
        now: Timestamp,
        out: &mut Vec<Notification>,
    ) {
        let Some(receiver) = self.plan.receivers.get(&route.opts.receiver) else {
            return;
        };
        let firing: BTreeSet<u64> = alerts
            .iter()
            .filter(|a| !a.resolved(now))
            .map(PipelineAlert::fingerprint)
            .collect();
        let resolved: BTreeSet<u64> = alerts
            .iter()
            .filter(|a| a.resolved(now))
            .map(PipelineAlert::fingerprint)
            .collect();
        // Acknowledged alerts are not repeated: someone is on them.
        let all_acked = alerts
            .iter()
            .filter(|a| !a.resolved(now))
            .all(|a| self.acks.of(a.fingerprint(), a.fired_at, now).is_some());
        let repeat = if all_acked {
            i64::MAX
        } else {
            i64::try_from(route.opts.repeat_interval.as_millis()).unwrap_or(i64::MAX)
        };
        for (i, integration) in receiver.integrations.iter().enumerate() {
            let key = LogKey {
                group: flush.key.clone(),
                receiver: receiver.name.clone(),
                integration: i,
            };
            let previous_log = self.nflog.get(&key).cloned();
            if !needs_update(
                previous_log.as_ref(),
                &firing,
                &resolved,
                integration.send_resolved,
                repeat,
                now,
            ) {
                continue;
            }
            let log = LogEntry {
                key,
                firing: firing.clone(),
                resolved: resolved.clone(),
                at: now,
            };
            let to_send: Vec<PipelineAlert> = alerts
                .iter()
                .filter(|a| integration.send_resolved || !a.resolved(now))
                .map(|a| {
                    let mut a = a.clone();
                    // An alert resolving later than the flush is firing in this notification.
                    a.ends_at = a.ends_at.filter(|e| *e <= now);
                    a.ack = self.acks.of(a.fingerprint(), a.fired_at, now).cloned();
                    a
                })
                .collect();
            if to_send.is_empty() {
                // Nothing this destination takes: only the log learns that all is resolved.
                if let Err(e) = self.nflog.record(log) {
                    tracing::error!(error = %e, "writing the notification log failed");
                }
                continue;
            }
            self.next_seq += 1;
            out.push(Notification {
                seq: self.next_seq,
                receiver: receiver.name.clone(),
                integration: i,
                group_key: flush.key.clone(),
                group_labels: flush.labels.clone(),
                alerts: to_send,
                log,
                created_at: now,
                fallback_for: None,
                fell_back: false,
                previous_log,
                ack: None,
            });
        }
    }

    /// Records a queued notification in the log (durably).
    pub fn record(&mut self, n: &Notification) -> std::io::Result<()> {
        self.record_all(std::slice::from_ref(n))
    }

    /// Records queued notifications in the log, with one sync.
    pub fn record_all(&mut self, ns: &[Notification]) -> std::io::Result<()> {
        let entries = ns
            .iter()
            .filter(|n| n.fallback_for.is_none() && n.ack.is_none())
            .map(|n| n.log.clone())
            .collect();
        self.nflog.record_all(entries)
    }

    /// Forgets a notification that was given up: the log goes back to what it held before, if
    /// nothing newer was logged since, so the next flush notifies again.
    pub fn forget(&mut self, n: &Notification) -> std::io::Result<()> {
        if n.fallback_for.is_some() || n.ack.is_some() || self.nflog.get(&n.log.key) != Some(&n.log) {
            return Ok(());
        }
        let previous = n.previous_log.clone().unwrap_or_else(|| LogEntry {
            key: n.log.key.clone(),
            firing: BTreeSet::new(),
            resolved: BTreeSet::new(),
            at: 0,
        });
        self.nflog.restore(previous)
    }

    /// Drops what is past retention: expired silences and old log entries.
    pub fn gc(&mut self, now: Timestamp) {
        self.silences.gc(now);
        if let Err(e) = self.nflog.gc(now) {
            tracing::error!(error = %e, "compacting the notification log failed");
        }
    }

    /// Makes sure later sequence numbers follow `seq` (after reading the outbox back).
    pub fn seen_seq(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq);
    }

    /// Counts for self-metrics: groups, alerts in groups, log entries.
    pub fn sizes(&self) -> (usize, usize, usize) {
        let (groups, alerts) = self.dispatcher.size();
        (groups, alerts, self.nflog.len())
    }
}

#[cfg(test)]
mod tests;
