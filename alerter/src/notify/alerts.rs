//! The alerts the pipeline knows: what the rules say is firing now, and what resolved recently,
//! as Prometheus hands alerts to Alertmanager (the whole set after every evaluation; an alert that
//! stops being sent is resolved).
//!
//! Kept on disk (`<data_dir>/notify/alerts.json`, rewritten when an alert starts, fires anew or
//! resolves; not when only its value changes), so that an alert whose rule was removed while
//! vigil was down still resolves, and its receivers hear it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vigil_tsdb::{Labels, Timestamp};

/// How long a resolved alert is kept after it resolved.
const RESOLVED_KEPT_MS: i64 = 15 * 60_000;

/// One alert with what a notification says about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineAlert {
    /// Identity.
    #[serde(with = "crate::alert::labels_serde")]
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: Vec<(String, String)>,
    /// When the condition started (ms).
    pub starts_at: Timestamp,
    /// When it fired (ms).
    pub fired_at: Timestamp,
    /// When it resolved, if it did.
    pub ends_at: Option<Timestamp>,
    /// The expression's latest value.
    #[serde(with = "crate::alert::float_serde")]
    pub value: f64,
    /// The value a day before (D-1), if known.
    pub d1: Option<f64>,
    /// ... and a week before (D-7).
    pub d7: Option<f64>,
    /// The rule's group.
    pub rule_group: String,
    /// The rule's expression.
    pub expr: String,
    /// Who acknowledged this firing, if anyone (set on the alerts of a notification).
    #[serde(default)]
    pub ack: Option<super::ack::AckInfo>,
}

impl PipelineAlert {
    /// The label fingerprint.
    pub fn fingerprint(&self) -> u64 {
        self.labels.stable_hash()
    }

    /// The fingerprint as 16 hex digits, as the APIs show it.
    pub fn fingerprint_hex(&self) -> String {
        format!("{:016x}", self.fingerprint())
    }

    /// Whether it has resolved by `now`.
    pub fn resolved(&self, now: Timestamp) -> bool {
        self.ends_at.is_some_and(|e| e <= now)
    }

    /// The alert's name.
    pub fn alertname(&self) -> &str {
        self.labels.get("alertname").unwrap_or("")
    }

    /// An annotation, if set and not empty.
    pub fn annotation(&self, name: &str) -> Option<&str> {
        self.annotations
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// The current alerts by fingerprint.
#[derive(Debug, Default)]
pub struct AlertStore {
    alerts: BTreeMap<u64, PipelineAlert>,
    path: Option<std::path::PathBuf>,
    /// What was last written: each alert's fingerprint, firing and end.
    saved: Vec<(u64, Timestamp, Option<Timestamp>)>,
}

impl AlertStore {
    /// The alerts saved at `path` (or none, in memory only).
    pub fn open(path: Option<&std::path::Path>) -> std::io::Result<AlertStore> {
        let mut s = AlertStore {
            path: path.map(std::path::Path::to_owned),
            ..Default::default()
        };
        let Some(path) = path else { return Ok(s) };
        match std::fs::read(path) {
            Ok(bytes) => {
                let list: Vec<PipelineAlert> = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
                s.alerts = list.into_iter().map(|a| (a.fingerprint(), a)).collect();
                s.saved = s.signature();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(s)
    }

    fn signature(&self) -> Vec<(u64, Timestamp, Option<Timestamp>)> {
        self.alerts.iter().map(|(fp, a)| (*fp, a.fired_at, a.ends_at)).collect()
    }

    /// Writes the alerts if an alert started, fired anew, resolved or was forgotten since the
    /// last write.
    pub fn save_if_changed(&mut self) -> std::io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let signature = self.signature();
        if signature == self.saved {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let list: Vec<&PipelineAlert> = self.alerts.values().collect();
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, &serde_json::to_vec(&list).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        self.saved = signature;
        Ok(())
    }
    /// Replaces the set with what the rules say now. An alert that was firing and is no longer
    /// in `current` (its rule was removed) resolves at `now`; resolved alerts are forgotten 15
    /// minutes after they resolved. Returns the alerts that changed.
    pub fn sync(&mut self, current: Vec<PipelineAlert>, now: Timestamp) -> Vec<PipelineAlert> {
        let mut next: BTreeMap<u64, PipelineAlert> = current.into_iter().map(|a| (a.fingerprint(), a)).collect();
        for (fp, old) in &self.alerts {
            if next.contains_key(fp) {
                continue;
            }
            let mut a = old.clone();
            a.ends_at.get_or_insert(now);
            next.insert(*fp, a);
        }
        // Changes go to the groups even for alerts resolved long ago (they are then forgotten
        // here, but their groups still say they resolved).
        let changed = next
            .iter()
            .filter(|(fp, a)| self.alerts.get(fp) != Some(a))
            .map(|(_, a)| a.clone())
            .collect();
        next.retain(|_, a| a.ends_at.is_none_or(|e| now - e <= RESOLVED_KEPT_MS));
        self.alerts = next;
        changed
    }

    /// Every alert.
    pub fn all(&self) -> impl Iterator<Item = &PipelineAlert> {
        self.alerts.values()
    }

    /// One alert.
    pub fn get(&self, fingerprint: u64) -> Option<&PipelineAlert> {
        self.alerts.get(&fingerprint)
    }

    /// Firing (not resolved) alerts.
    pub fn firing(&self, now: Timestamp) -> impl Iterator<Item = &PipelineAlert> {
        self.alerts.values().filter(move |a| !a.resolved(now))
    }
}
