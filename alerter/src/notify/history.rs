//! The alert history: every transition of an alert (pending, firing, resolved) and what became
//! of every notification (sent, failed, fallback, silenced, inhibited, acknowledged), written to
//! the event store beside the sampled requests (`kept:history`), so that the events API, `vigil
//! events` and the dashboard answer "what paged last night, who acknowledged it, and was it
//! delivered".

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use vigil_tsdb::events::{AlertRecord, Kept, RawEvent};
use vigil_tsdb::{Labels, Timestamp};

use super::plan::label_set_string;
use super::stages::{Muted, Notification};
use crate::alert::Transition;

/// Where history goes (the event store's `offer`).
pub type HistorySink = Arc<dyn Fn(RawEvent) + Send + Sync>;

/// The history writer: does nothing until a sink is set.
#[derive(Clone, Default)]
pub struct History {
    sink: Arc<OnceLock<HistorySink>>,
    /// The last mute recorded per alert, so a muted alert is recorded once, not at every flush.
    muted: Arc<Mutex<HashMap<u64, String>>>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("connected", &self.sink.get().is_some())
            .finish()
    }
}

fn event(time: Timestamp, labels: &Labels, record: AlertRecord) -> RawEvent {
    let label = |k: &str| labels.get(k).unwrap_or_default().to_owned();
    RawEvent {
        time,
        service: label("service"),
        route: label("route"),
        path: label("path"),
        template: label("path"),
        method: label("method"),
        status: 0,
        latency_ms: 0.0,
        upstream_ms: None,
        kong_ms: None,
        consumer: None,
        request_id: None,
        client_ip: None,
        kept: Kept::History,
        alert: Some(AlertRecord {
            alertname: labels.get("alertname").unwrap_or_default().to_owned(),
            labels: label_set_string(labels),
            ..record
        }),
    }
}

impl History {
    /// Connects the history to its store.
    pub fn connect(&self, sink: HistorySink) {
        let _ = self.sink.set(sink);
    }

    fn write(&self, ev: RawEvent) {
        if let Some(sink) = self.sink.get() {
            sink(ev);
        }
    }

    /// An alert's transition.
    pub fn transition(&self, t: &Transition) {
        let (state, a) = match t {
            Transition::Pending(a) => ("pending", a),
            Transition::Fired(a) => ("firing", a),
            Transition::Resolved(a) => ("resolved", a),
        };
        let time = match t {
            Transition::Pending(_) => a.active_at,
            Transition::Fired(_) => a.fired_at.unwrap_or(a.active_at),
            Transition::Resolved(_) => a.resolved_at.unwrap_or(a.active_at),
        };
        if matches!(t, Transition::Resolved(_)) {
            self.muted.lock().remove(&a.labels.stable_hash());
        }
        self.write(event(
            time,
            &a.labels,
            AlertRecord {
                state: state.into(),
                ..Default::default()
            },
        ));
    }

    /// What became of a notification: `sent`, `failed` (with the error), `fallback`, or
    /// `acknowledged` for an acknowledgement notice.
    pub fn notification(&self, n: &Notification, state: &str, detail: &str, now: Timestamp) {
        // The acknowledgement itself is recorded per alert when it is made; its notice's
        // delivery is recorded as such.
        let state = if n.ack.is_some() && state == "sent" {
            "ack-notice-sent"
        } else {
            state
        };
        let (by, comment) = match &n.ack {
            Some(ack) => (ack.by.clone(), ack.comment.clone()),
            None => (String::new(), detail.to_owned()),
        };
        let labels = n.alerts.first().map_or_else(Labels::empty, |a| a.labels.clone());
        let mut ev = event(
            now,
            &labels,
            AlertRecord {
                state: state.into(),
                receiver: n.receiver.clone(),
                by,
                comment,
                group_key: n.group_key.clone(),
                ..Default::default()
            },
        );
        if let Some(a) = &mut ev.alert {
            // The group's labels, and how many alerts it carried.
            a.labels = format!("{} alerts={}", label_set_string(&n.group_labels), n.alerts.len());
        }
        self.write(ev);
    }

    /// Alerts a flush did not notify, once per alert and reason.
    pub fn muted(&self, muted: &[(Labels, Muted)], now: Timestamp) {
        for (labels, m) in muted {
            let (state, by) = match m {
                Muted::Silenced(_, ids) => ("silenced", ids.join(",")),
                Muted::Inhibited(_, by) => ("inhibited", format!("{by:016x}")),
                Muted::TimeMuted(_, why) => ("muted", why.clone()),
            };
            let key = format!("{state}:{by}");
            if self.muted.lock().insert(labels.stable_hash(), key.clone()).as_ref() == Some(&key) {
                continue;
            }
            self.write(event(
                now,
                labels,
                AlertRecord {
                    state: state.into(),
                    by,
                    ..Default::default()
                },
            ));
        }
    }

    /// Firing alerts that resolved because their rule is gone (a reload removed it, or changed
    /// its expression): no rule says they resolved, the notifier does.
    pub fn vanished(&self, labels: &[Labels], now: Timestamp) {
        for l in labels {
            self.muted.lock().remove(&l.stable_hash());
            self.write(event(
                now,
                l,
                AlertRecord {
                    state: "resolved".into(),
                    comment: "its rule was removed or changed".into(),
                    ..Default::default()
                },
            ));
        }
    }

    /// Alerts acknowledged by `by`.
    pub fn acknowledged(&self, labels: &[Labels], by: &str, comment: &str, now: Timestamp) {
        for l in labels {
            self.write(event(
                now,
                l,
                AlertRecord {
                    state: "acknowledged".into(),
                    by: by.into(),
                    comment: comment.into(),
                    ..Default::default()
                },
            ));
        }
    }
}
