//! Acknowledgements: "I'm on it". An acknowledged alert stops repeat notifications, shows who is
//! on it and why wherever it is shown, and its receivers get one short notice. An ack belongs to
//! one firing of one alert: it ends when the alert resolves (a new firing pages again), when it
//! expires, or when it is withdrawn. Durable: `<data_dir>/notify/acks.json`, rewritten (write,
//! sync, rename) on every change.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_tsdb::Timestamp;

use super::alerts::AlertStore;

/// Who acknowledged an alert, why, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckInfo {
    /// Who.
    pub by: String,
    /// What they said.
    pub comment: String,
    /// When (ms).
    pub at: Timestamp,
    /// Until when, if not until the alert resolves.
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    fingerprint: u64,
    /// The firing it belongs to.
    fired_at: Timestamp,
    info: AckInfo,
}

/// The acks of firing alerts.
#[derive(Debug, Default)]
pub struct Acks {
    entries: BTreeMap<u64, Entry>,
    path: Option<PathBuf>,
}

impl Acks {
    /// Reads the acks at `path` (or keeps them in memory only).
    pub fn open(path: Option<&Path>) -> std::io::Result<Acks> {
        let mut acks = Acks {
            entries: BTreeMap::new(),
            path: path.map(Path::to_owned),
        };
        let Some(path) = path else { return Ok(acks) };
        match std::fs::read(path) {
            Ok(bytes) => {
                let list: Vec<Entry> = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
                acks.entries = list.into_iter().map(|e| (e.fingerprint, e)).collect();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(acks)
    }

    /// Acknowledges the current firing of each alert in `fingerprints` (all firing in `alerts`).
    pub fn ack(
        &mut self,
        alerts: &AlertStore,
        fingerprints: &[u64],
        info: &AckInfo,
        now: Timestamp,
    ) -> std::io::Result<()> {
        for fp in fingerprints {
            if let Some(a) = alerts.get(*fp).filter(|a| !a.resolved(now)) {
                self.entries.insert(
                    *fp,
                    Entry {
                        fingerprint: *fp,
                        fired_at: a.fired_at,
                        info: info.clone(),
                    },
                );
            }
        }
        self.save()
    }

    /// Withdraws the acks of `fingerprints`; returns how many there were.
    pub fn withdraw(&mut self, fingerprints: &[u64]) -> std::io::Result<usize> {
        let n = fingerprints
            .iter()
            .filter(|fp| self.entries.remove(fp).is_some())
            .count();
        if n > 0 {
            self.save()?;
        }
        Ok(n)
    }

    /// The ack of an alert's current firing, if any.
    pub fn of(&self, fingerprint: u64, fired_at: Timestamp, now: Timestamp) -> Option<&AckInfo> {
        self.entries
            .get(&fingerprint)
            .filter(|e| e.fired_at == fired_at && e.info.expires_at.is_none_or(|t| now < t))
            .map(|e| &e.info)
    }

    /// Drops acks whose alert resolved, fired anew, or whose time is up.
    pub fn prune(&mut self, alerts: &AlertStore, now: Timestamp) {
        let before = self.entries.len();
        self.entries.retain(|fp, e| {
            e.info.expires_at.is_none_or(|t| now < t)
                && alerts
                    .get(*fp)
                    .is_some_and(|a| !a.resolved(now) && a.fired_at == e.fired_at)
        });
        if self.entries.len() != before
            && let Err(e) = self.save()
        {
            tracing::error!(error = %e, "saving acks failed");
        }
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let list: Vec<&Entry> = self.entries.values().collect();
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&list).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}
