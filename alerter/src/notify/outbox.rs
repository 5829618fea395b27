//! The outbox: a page is written to disk before it is sent and removed once delivered (or given
//! up), so a crash between an alert's transition and its delivery loses no page.
//!
//! One file per page in `<data_dir>/notify/outbox/`, named by a sequence number so that pages
//! are resent in order after a restart.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::Page;

/// The pages waiting for delivery.
#[derive(Debug)]
pub struct Outbox {
    dir: Option<PathBuf>,
    next: AtomicU64,
}

impl Outbox {
    /// An outbox in `dir` (created if needed), or only in memory when `dir` is `None`.
    pub fn open(dir: Option<&Path>) -> std::io::Result<(Outbox, Vec<Page>)> {
        let Some(dir) = dir else {
            return Ok((
                Outbox {
                    dir: None,
                    next: AtomicU64::new(1),
                },
                Vec::new(),
            ));
        };
        fs::create_dir_all(dir)?;
        let mut pages = Vec::new();
        let mut max = 0;
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for path in entries {
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = fs::remove_file(&path);
                continue;
            }
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Page>(&b).map_err(|e| e.to_string()))
            {
                Ok(p) => {
                    max = max.max(p.seq);
                    pages.push(p);
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "unreadable page in the outbox, left in place");
                }
            }
        }
        pages.sort_by_key(|p| p.seq);
        Ok((
            Outbox {
                dir: Some(dir.to_owned()),
                next: AtomicU64::new(max + 1),
            },
            pages,
        ))
    }

    /// The next sequence number.
    pub fn next_seq(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn path(&self, page: &Page) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{:016}-{}.json", page.seq, sanitize(&page.receiver))))
    }

    /// Writes a page durably (write, sync, rename).
    pub fn put(&self, page: &Page) -> std::io::Result<()> {
        let Some(path) = self.path(page) else { return Ok(()) };
        let tmp = path.with_extension("tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(page).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// Removes a delivered (or abandoned) page.
    pub fn remove(&self, page: &Page) {
        if let Some(path) = self.path(page)
            && let Err(e) = fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(file = %path.display(), error = %e, "cannot remove a delivered page");
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
