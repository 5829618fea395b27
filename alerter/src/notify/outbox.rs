//! The outbox: a notification is written to disk before it is sent and removed once delivered
//! (or given up), so a crash between a flush and its delivery loses nothing. Each file also
//! holds the notification-log entry of its notification, so a crash between writing it and
//! writing the log does not send the group state again.
//!
//! One JSON file per notification in `<data_dir>/notify/outbox/`, named by its sequence number,
//! receiver and destination, so that notifications are resent in order after a restart.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::stages::Notification;

/// The notifications waiting for delivery.
#[derive(Debug)]
pub struct Outbox {
    dir: Option<PathBuf>,
}

impl Outbox {
    /// An outbox in `dir` (created if needed), or only in memory when `dir` is `None`.
    pub fn open(dir: Option<&Path>) -> std::io::Result<(Outbox, Vec<Notification>)> {
        let Some(dir) = dir else {
            return Ok((Outbox { dir: None }, Vec::new()));
        };
        fs::create_dir_all(dir)?;
        let mut pages = Vec::new();
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for path in entries {
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = fs::remove_file(&path);
                continue;
            }
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Notification>(&b).map_err(|e| e.to_string()))
            {
                Ok(p) => {
                    pages.push(p);
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "unreadable notification in the outbox, left in place");
                }
            }
        }
        pages.sort_by_key(|n| (n.seq, n.fallback_for.is_some()));
        Ok((
            Outbox {
                dir: Some(dir.to_owned()),
            },
            pages,
        ))
    }

    fn path(&self, n: &Notification) -> Option<PathBuf> {
        let copy = if n.fallback_for.is_some() { "-fallback" } else { "" };
        self.dir.as_ref().map(|d| {
            d.join(format!(
                "{:016}-{}-{}{copy}.json",
                n.seq,
                sanitize(&n.receiver),
                n.integration
            ))
        })
    }

    /// Writes a notification durably (write, sync, rename).
    pub fn put(&self, page: &Notification) -> std::io::Result<()> {
        self.put_all(std::slice::from_ref(page))
    }

    /// Writes notifications durably: each file written and synced, renamed into place, then
    /// the directory synced once for all of them (a rename is durable only once its directory
    /// is).
    pub fn put_all(&self, notifications: &[Notification]) -> std::io::Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        for n in notifications {
            let Some(path) = self.path(n) else { continue };
            let tmp = path.with_extension("tmp");
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(n).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
        }
        if !notifications.is_empty() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Removes a delivered (or abandoned) notification.
    pub fn remove(&self, page: &Notification) {
        if let Some(path) = self.path(page)
            && let Err(e) = fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(file = %path.display(), error = %e, "cannot remove a delivered notification");
        }
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
