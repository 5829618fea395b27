//! Console: one JSON line per alert of a notification, for logs and for `vigil demo --no-tui`.

use std::io::Write;

use serde_json::json;
use vigil_tsdb::time::format_rfc3339;

use super::retry::SendError;
use super::stages::Notification;
use super::{ConsoleOut, SendContext, Sender};

/// Writes notifications as JSON lines.
#[derive(Clone)]
pub struct ConsoleSender {
    out: ConsoleOut,
}

impl std::fmt::Debug for ConsoleSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSender").finish_non_exhaustive()
    }
}

impl ConsoleSender {
    /// A sender writing to `out`.
    pub fn new(out: ConsoleOut) -> Self {
        ConsoleSender { out }
    }
}

/// The JSON lines of a notification, one per alert.
pub fn console_line(n: &Notification) -> String {
    let mut out = String::new();
    for a in &n.alerts {
        let labels: serde_json::Map<String, serde_json::Value> = a
            .labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string().into()))
            .collect();
        let annotations: serde_json::Map<String, serde_json::Value> = a
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        let (status, at) = match (a.ends_at, &n.ack) {
            (_, Some(ack)) => ("acknowledged", ack.at),
            (Some(t), None) => ("resolved", t),
            (None, None) => ("firing", a.fired_at),
        };
        let line = json!({
            "at": format_rfc3339(at),
            "status": status,
            "alertname": a.alertname(),
            "labels": labels,
            "annotations": annotations,
            "value": if a.value.is_finite() { json!(a.value) } else { json!(vigil_tsdb::promql::format_float(a.value)) },
            "d1": a.d1,
            "d7": a.d7,
            "activeAt": format_rfc3339(a.starts_at),
            "group": a.rule_group,
            "groupKey": n.group_key,
            "acknowledged": a.ack.as_ref().map(|k| json!({"by": k.by, "comment": k.comment})),
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

impl Sender for ConsoleSender {
    async fn send(&self, n: &Notification, _ctx: &SendContext) -> Result<(), SendError> {
        let lines = console_line(n);
        let mut out = self.out.lock();
        out.write_all(lines.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| SendError::Retryable(e.to_string()))
    }
}
