//! Console: one JSON line per page, for logs and for `vigil demo --no-tui`.

use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::json;
use vigil_tsdb::time::format_rfc3339;

use super::retry::SendError;
use super::{Page, Receiver};

/// Writes pages as JSON lines.
#[derive(Clone)]
pub struct ConsoleReceiver {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for ConsoleReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleReceiver").finish_non_exhaustive()
    }
}

impl ConsoleReceiver {
    /// A receiver writing to `out`.
    pub fn new(out: Arc<Mutex<Box<dyn Write + Send>>>) -> Self {
        ConsoleReceiver { out }
    }
}

/// The JSON line of a page.
pub fn console_line(page: &Page) -> String {
    let a = &page.alert;
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
    json!({
        "at": format_rfc3339(page.at()),
        "status": page.status.as_str(),
        "alertname": page.alertname(),
        "labels": labels,
        "annotations": annotations,
        "value": if a.value.is_finite() { json!(a.value) } else { json!(vigil_tsdb::promql::format_float(a.value)) },
        "d1": page.d1,
        "d7": page.d7,
        "activeAt": format_rfc3339(a.active_at),
        "group": page.group,
    })
    .to_string()
}

impl Receiver for ConsoleReceiver {
    async fn send(&self, page: &Page) -> Result<(), SendError> {
        let line = console_line(page);
        let mut out = self.out.lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| SendError::Retryable(e.to_string()))
    }
}
