//! The notification log: for each group and destination, which alerts the last notification
//! carried as firing and as resolved, and when. It decides whether a flush is worth a
//! notification (Alertmanager's dedup stage) and is kept on disk, so that a restart or a reload
//! never sends the same group state twice.
//!
//! On disk, `<data_dir>/notify/nflog` is a file of JSON lines, one entry each, appended and
//! synced as entries are written; the latest line of a key wins. It is rewritten with only the
//! live entries when it is opened. Entries older than the retention are dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_tsdb::Timestamp;

/// How long entries are kept (Alertmanager's default data retention: 120 h).
pub const RETENTION_MS: i64 = 120 * 3600 * 1000;

/// Which destination of which receiver, for which group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogKey {
    /// The group key.
    pub group: String,
    /// The receiver.
    pub receiver: String,
    /// The destination's position in the receiver.
    pub integration: usize,
}

/// What the last notification of a group to one destination carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Its key.
    pub key: LogKey,
    /// Fingerprints of the firing alerts.
    pub firing: BTreeSet<u64>,
    /// Fingerprints of the resolved alerts.
    pub resolved: BTreeSet<u64>,
    /// When (ms).
    pub at: Timestamp,
}

/// Whether a flush with these `firing` and `resolved` alerts is worth a notification, as
/// Alertmanager's dedup stage decides: the first one with firing alerts, any new firing alert,
/// everything resolved, newly resolved alerts (when they are sent), or `repeat_ms` since the
/// last one.
pub fn needs_update(
    last: Option<&LogEntry>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    send_resolved: bool,
    repeat_ms: i64,
    now: Timestamp,
) -> bool {
    let Some(last) = last else { return !firing.is_empty() };
    if !firing.is_subset(&last.firing) {
        return true;
    }
    if firing.is_empty() {
        // Alerts that fired and resolved within one interval were never told; nothing to say.
        return !last.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&last.resolved) {
        return true;
    }
    last.at.saturating_add(repeat_ms) <= now
}

/// The log, in memory and on disk.
#[derive(Debug)]
pub struct NotificationLog {
    entries: BTreeMap<LogKey, LogEntry>,
    file: Option<(PathBuf, File)>,
    /// Lines in the file (compacted when they are far more than the entries).
    lines: usize,
}

/// Writes `entries` to a new file at `path` (write, sync, rename) and opens it for appending.
fn rewrite(path: &Path, entries: &BTreeMap<LogKey, LogEntry>) -> std::io::Result<File> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp)?;
    for e in entries.values() {
        f.write_all(&line(e)?)?;
    }
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    OpenOptions::new().append(true).open(path)
}

impl NotificationLog {
    /// Opens (and compacts) the log at `path`, or keeps it in memory only.
    pub fn open(path: Option<&Path>, now: Timestamp) -> std::io::Result<NotificationLog> {
        let Some(path) = path else {
            return Ok(NotificationLog {
                entries: BTreeMap::new(),
                file: None,
                lines: 0,
            });
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut entries = BTreeMap::new();
        match File::open(path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    let line = line?;
                    // A torn last line (a crash mid-write) is skipped.
                    if let Ok(e) = serde_json::from_str::<LogEntry>(&line) {
                        entries.insert(e.key.clone(), e);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        entries.retain(|_, e: &mut LogEntry| now - e.at <= RETENTION_MS);
        let file = rewrite(path, &entries)?;
        Ok(NotificationLog {
            lines: entries.len(),
            entries,
            file: Some((path.to_owned(), file)),
        })
    }

    /// The last entry for `key`.
    pub fn get(&self, key: &LogKey) -> Option<&LogEntry> {
        self.entries.get(key)
    }

    /// Records an entry durably (unless it is older than the one held).
    pub fn record(&mut self, entry: LogEntry) -> std::io::Result<()> {
        self.record_all(vec![entry])
    }

    /// Records entries durably with one sync (each unless older than the one held).
    pub fn record_all(&mut self, entries: Vec<LogEntry>) -> std::io::Result<()> {
        let fresh: Vec<LogEntry> = entries
            .into_iter()
            .filter(|e| self.entries.get(&e.key).is_none_or(|held| held.at <= e.at))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        if let Some((_, f)) = &mut self.file {
            let mut buf = Vec::new();
            for e in &fresh {
                buf.extend(line(e)?);
            }
            f.write_all(&buf)?;
            f.sync_data()?;
            self.lines += fresh.len();
        }
        for e in fresh {
            self.entries.insert(e.key.clone(), e);
        }
        Ok(())
    }

    /// Puts an earlier entry back (durably), whatever the entry held now.
    pub fn restore(&mut self, entry: LogEntry) -> std::io::Result<()> {
        if let Some((_, f)) = &mut self.file {
            f.write_all(&line(&entry)?)?;
            f.sync_data()?;
            self.lines += 1;
        }
        self.entries.insert(entry.key.clone(), entry);
        Ok(())
    }

    /// Drops entries older than the retention, and rewrites the file when it holds far more
    /// lines than live entries.
    pub fn gc(&mut self, now: Timestamp) -> std::io::Result<()> {
        self.entries.retain(|_, e| now - e.at <= RETENTION_MS);
        if let Some((path, file)) = &mut self.file
            && self.lines > 2 * self.entries.len() + 1_000
        {
            *file = rewrite(path, &self.entries)?;
            self.lines = self.entries.len();
        }
        Ok(())
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn line(e: &LogEntry) -> std::io::Result<Vec<u8>> {
    let mut v = serde_json::to_vec(e).map_err(std::io::Error::other)?;
    v.push(b'\n');
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    fn entry(firing: &[u64], resolved: &[u64], at: Timestamp) -> LogEntry {
        LogEntry {
            key: LogKey {
                group: "{}:{}".into(),
                receiver: "r".into(),
                integration: 0,
            },
            firing: set(firing),
            resolved: set(resolved),
            at,
        }
    }

    #[test]
    fn dedup_decisions_follow_alertmanager() {
        let h = 3_600_000;
        // Nothing sent yet: only firing alerts are worth it.
        assert!(needs_update(None, &set(&[1]), &set(&[]), true, h, 0));
        assert!(!needs_update(None, &set(&[]), &set(&[1]), true, h, 0));
        let last = entry(&[1, 2], &[], 0);
        assert!(
            !needs_update(Some(&last), &set(&[1, 2]), &set(&[]), true, h, 10),
            "unchanged"
        );
        assert!(
            needs_update(Some(&last), &set(&[1, 2]), &set(&[]), true, h, h),
            "repeat"
        );
        assert!(
            needs_update(Some(&last), &set(&[1, 2, 3]), &set(&[]), true, h, 10),
            "new alert"
        );
        assert!(
            needs_update(Some(&last), &set(&[1]), &set(&[2]), true, h, 10),
            "one resolved"
        );
        assert!(
            !needs_update(Some(&last), &set(&[1]), &set(&[2]), false, h, 10),
            "not sent"
        );
        assert!(
            needs_update(Some(&last), &set(&[]), &set(&[1, 2]), false, h, 10),
            "all resolved"
        );
        let quiet = entry(&[], &[1], 0);
        assert!(!needs_update(Some(&quiet), &set(&[]), &set(&[1, 3]), true, h, 10));
    }

    #[test]
    fn the_log_survives_a_reopen_and_a_torn_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nflog");
        let mut log = NotificationLog::open(Some(&path), 0).expect("open");
        log.record(entry(&[1], &[], 5)).expect("record");
        log.record(entry(&[1, 2], &[], 10)).expect("record");
        log.record(entry(&[1], &[], 7)).expect("an older entry is ignored");
        drop(log);
        let mut f = OpenOptions::new().append(true).open(&path).expect("append");
        f.write_all(b"{\"key\":{\"gro").expect("torn");
        drop(f);
        let log = NotificationLog::open(Some(&path), 20).expect("reopen");
        assert_eq!(log.len(), 1);
        assert_eq!(log.get(&entry(&[], &[], 0).key).map(|e| e.at), Some(10));
        let log = NotificationLog::open(Some(&path), 10 + RETENTION_MS + 1).expect("reopen");
        assert!(log.is_empty(), "entries past retention are dropped");
    }

    #[test]
    fn the_file_is_compacted_while_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nflog");
        let mut log = NotificationLog::open(Some(&path), 0).expect("open");
        for at in 0..1_500 {
            log.record(entry(&[1], &[], at)).expect("record");
        }
        let lines = |p: &Path| std::fs::read_to_string(p).expect("read").lines().count();
        assert_eq!(lines(&path), 1_500);
        log.gc(1_500).expect("gc");
        assert_eq!(lines(&path), 1, "one live entry");
        log.record(entry(&[1, 2], &[], 2_000))
            .expect("record after the rewrite");
        let log = NotificationLog::open(Some(&path), 2_000).expect("reopen");
        assert_eq!(log.get(&entry(&[], &[], 0).key).map(|e| e.at), Some(2_000));
    }
}
