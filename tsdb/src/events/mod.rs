//! The event store: a sample of raw Kong events (every 5xx up to a rate per route, a small
//! uniform share of the rest), searchable with tantivy's query language, newest first, kept
//! by age and by size. It answers what series cannot: *which* requests failed on a route, and
//! for which consumers.
//!
//! ```text
//!  collector ──offer(RawEvent)──> bounded queue ──> writer thread ──> tantivy index (events/)
//!   (never waits; a full queue       │ upsert by event key, commit every second,
//!    drops and counts)                │ retention by age and size (delete + merge)
//!                                     ▼
//!  search(query, start, end, limit) <── reader (reloaded after each commit)
//! ```
//!
//! Samples are not exact counts (the series are): a crash loses at most the last second of
//! samples, and an event stored again after a replay replaces itself (its key is its request
//! id). The on-disk layout is tantivy's, pinned by version; `tsdb/docs/format/events.md`
//! describes the schema.

mod query_check;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::indexer::{IndexWriterOptions, LogMergePolicy};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery};
use tantivy::schema::Value;
use tantivy::{Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term};

use crate::Timestamp;
use query_check::check_search_query;
pub use query_check::{MAX_SEARCH_NESTING, MAX_SEARCH_TERMS};
use schema::Fields;

/// What `vigil-events.version` holds: the schema's version. An index of another version is
/// moved aside and a new one started (samples are expendable).
const SCHEMA_VERSION: &str = "2";

/// The writer's memory budget: tantivy's minimum, so memory stays flat.
const WRITER_MEMORY: usize = 15_000_000;

/// Why an event was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// A 5xx (every one, up to a rate per route).
    Error,
    /// Part of the uniform sample.
    Sample,
    /// Not a request: an alert's transition or a notification (alert history).
    History,
}

impl Kept {
    /// The `kept` field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kept::Error => "error",
            Kept::Sample => "sample",
            Kept::History => "history",
        }
    }
}

/// One sampled request.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    /// Request start, epoch milliseconds.
    pub time: Timestamp,
    pub service: String,
    pub route: String,
    /// The URI as sent (query string included).
    pub path: String,
    /// The path template of its series.
    pub template: String,
    pub method: String,
    pub status: u16,
    /// `latencies.request`, ms.
    pub latency_ms: f64,
    /// `latencies.proxy`, ms.
    pub upstream_ms: Option<f64>,
    /// `latencies.kong`, ms.
    pub kong_ms: Option<f64>,
    pub consumer: Option<String>,
    pub request_id: Option<String>,
    pub client_ip: Option<String>,
    pub kept: Kept,
    /// Set on alert history: what happened to which alert.
    pub alert: Option<AlertRecord>,
}

/// One entry of the alert history: an alert's transition (`pending`, `firing`, `resolved`) or
/// what became of a notification (`sent`, `failed`, `silenced`, `inhibited`, `acknowledged`,
/// `fallback`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertRecord {
    pub alertname: String,
    /// `pending`, `firing`, `resolved`, `sent`, `failed`, `silenced`, `inhibited`,
    /// `acknowledged` or `fallback`.
    pub state: String,
    /// The receiver of a notification.
    pub receiver: String,
    /// Who acknowledged or silenced.
    pub by: String,
    /// Their comment, or the error of a failed notification.
    pub comment: String,
    /// The alert's labels as `name="value"` pairs.
    pub labels: String,
    /// The notification's group.
    pub group_key: String,
}

impl RawEvent {
    /// The event's identity: its request id (with its time, in case ids repeat), or a hash of
    /// its fields.
    fn key(&self) -> String {
        if let Some(a) = &self.alert {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (
                self.time,
                &a.alertname,
                &a.state,
                &a.receiver,
                &a.labels,
                &a.group_key,
                &a.by,
            )
                .hash(&mut h);
            return format!("a:{:016x}", h.finish());
        }
        match &self.request_id {
            Some(id) if !id.is_empty() => format!("r:{id}:{}", self.time),
            _ => {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (
                    self.time,
                    &self.path,
                    &self.method,
                    self.status,
                    &self.client_ip,
                    &self.service,
                )
                    .hash(&mut h);
                format!("h:{:016x}", h.finish())
            }
        }
    }
}

/// How the store keeps events.
#[derive(Debug, Clone, PartialEq)]
pub struct EventStoreConfig {
    /// Events older than this (by event time) are deleted.
    pub max_age_ms: i64,
    /// Above this many bytes on disk the oldest events are deleted.
    pub max_bytes: u64,
    /// How often what was offered is committed (becomes searchable).
    pub commit_every: Duration,
    /// Events that may wait for the writer before new ones are dropped.
    pub queue: usize,
    /// How often retention runs.
    pub retention_every: Duration,
}

impl Default for EventStoreConfig {
    fn default() -> Self {
        EventStoreConfig {
            max_age_ms: 7 * 86_400_000,
            max_bytes: 1 << 30,
            commit_every: Duration::from_secs(1),
            queue: 10_000,
            retention_every: Duration::from_secs(60),
        }
    }
}

/// Why the event store failed.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The search query does not parse.
    #[error("bad query: {0}")]
    Query(String),
    /// tantivy failed.
    #[error("event index {path}: {source}")]
    Index {
        /// The index directory.
        path: PathBuf,
        /// What tantivy said.
        #[source]
        source: tantivy::TantivyError,
    },
    /// A file of the index directory could not be read or written.
    #[error("event index {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The writer thread is gone.
    #[error("the event store is closed")]
    Closed,
}

/// What [`EventStore::search`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// Every event that matches (the returned ones are the newest of them).
    pub total: usize,
    /// The newest matching events, newest first.
    pub events: Vec<RawEvent>,
}

/// Counters for self-telemetry.
#[derive(Debug, Default)]
pub struct EventStoreStats {
    /// Events written to the index.
    pub stored: AtomicU64,
    /// Events dropped because the writer was behind.
    pub dropped: AtomicU64,
    /// Events deleted by retention.
    pub expired: AtomicU64,
    /// Commits that failed.
    pub errors: AtomicU64,
    /// Bytes on disk at the last retention pass.
    pub bytes: AtomicU64,
    /// Live events at the last commit.
    pub docs: AtomicU64,
}

enum Cmd {
    Event(Box<RawEvent>),
    /// Commit now and say when done.
    Flush(SyncSender<Result<(), String>>),
    /// Run retention now (at this wall-clock time) and say when done.
    Retain(Timestamp, SyncSender<()>),
}

/// The event store.
pub struct EventStore {
    tx: Mutex<Option<SyncSender<Cmd>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    reader: IndexReader,
    index: Index,
    fields: Fields,
    dir: PathBuf,
    stats: Arc<EventStoreStats>,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl EventStore {
    /// Opens (or creates) the store in `dir` and starts its writer thread.
    pub fn open(dir: &Path, cfg: EventStoreConfig) -> Result<EventStore, EventError> {
        let io = |source| EventError::Io {
            path: dir.to_owned(),
            source,
        };
        let ix = |source| EventError::Index {
            path: dir.to_owned(),
            source,
        };
        let fields = Fields::new();
        std::fs::create_dir_all(dir).map_err(io)?;
        let version_file = dir.join("vigil-events.version");
        let version = std::fs::read_to_string(&version_file).ok();
        let mmap = MmapDirectory::open(dir).map_err(|e| ix(e.into()))?;
        let exists = Index::exists(&mmap).map_err(|e| ix(e.into()))?;
        if exists && (version.as_deref().map(str::trim) != Some(SCHEMA_VERSION)) {
            drop(mmap);
            let aside = dir.with_extension(format!("old-{}", crate::time::now_ms()));
            tracing::warn!(dir = %dir.display(), aside = %aside.display(), "the event index has another schema version: moved aside, starting a new one");
            std::fs::rename(dir, &aside).map_err(io)?;
            return EventStore::open(dir, cfg);
        }
        let index = if exists {
            let index = Index::open(mmap).map_err(ix)?;
            if index.schema() != fields.schema {
                return Err(ix(tantivy::TantivyError::SchemaError(
                    "the event index's schema is not this version's".into(),
                )));
            }
            index
        } else {
            let index = Index::create(mmap, fields.schema.clone(), Default::default()).map_err(ix)?;
            std::fs::write(&version_file, SCHEMA_VERSION).map_err(io)?;
            index
        };
        remove_leftover_files(dir, &index);
        let opts = IndexWriterOptions::builder()
            .memory_budget_per_thread(WRITER_MEMORY)
            .num_worker_threads(1)
            .num_merge_threads(1)
            .build();
        let writer: IndexWriter = index.writer_with_options(opts).map_err(ix)?;
        let mut merge = LogMergePolicy::default();
        // Deleted events hold their space until their segment is merged.
        merge.set_del_docs_ratio_before_merge(0.3);
        writer.set_merge_policy(Box::new(merge));
        let reader: IndexReader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(ix)?;
        let stats = Arc::new(EventStoreStats::default());
        stats.docs.store(reader.searcher().num_docs(), Ordering::Relaxed);
        stats.bytes.store(dir_size(dir), Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::sync_channel(cfg.queue);
        let thread = {
            let (reader, fields, stats, dir) = (reader.clone(), fields.clone(), stats.clone(), dir.to_owned());
            std::thread::Builder::new()
                .name("events-writer".into())
                .spawn(move || {
                    Writer {
                        writer,
                        reader,
                        fields,
                        stats,
                        dir,
                        cfg,
                    }
                    .run(&rx);
                })
                .map_err(io)?
        };
        Ok(EventStore {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(thread)),
            reader,
            index,
            fields,
            dir: dir.to_owned(),
            stats,
        })
    }

    /// Hands an event to the writer without waiting; returns false (and counts it) if the
    /// writer is behind and the event was dropped.
    pub fn offer(&self, ev: RawEvent) -> bool {
        let sent = match self.tx.lock().as_ref() {
            Some(tx) => !matches!(
                tx.try_send(Cmd::Event(Box::new(ev))),
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
            ),
            None => false,
        };
        if !sent {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// Commits everything offered so far and makes it searchable.
    pub fn flush(&self) -> Result<(), EventError> {
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        self.send(Cmd::Flush(ack))?;
        done.recv()
            .map_err(|_| EventError::Closed)?
            .map_err(|e| EventError::Index {
                path: self.dir.clone(),
                source: tantivy::TantivyError::SystemError(e),
            })
    }

    /// Runs retention now, as if the wall clock said `now` (for tests and tools).
    pub fn enforce_retention(&self, now: Timestamp) -> Result<(), EventError> {
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        self.send(Cmd::Retain(now, ack))?;
        done.recv().map_err(|_| EventError::Closed)
    }

    fn send(&self, cmd: Cmd) -> Result<(), EventError> {
        let tx = self.tx.lock().clone().ok_or(EventError::Closed)?;
        tx.send(cmd).map_err(|_| EventError::Closed)
    }

    /// The newest `limit` events matching `query` (tantivy's query syntax; empty: every
    /// event) that started in `[start, end)`, and how many match in all.
    pub fn search(
        &self,
        query: &str,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
        limit: usize,
    ) -> Result<SearchResult, EventError> {
        let f = &self.fields;
        let user: Box<dyn Query> = if query.trim().is_empty() {
            Box::new(AllQuery)
        } else {
            check_search_query(query)?;
            let mut parser = QueryParser::for_index(&self.index, f.defaults());
            parser.set_conjunction_by_default();
            parser
                .parse_query(query)
                .map_err(|e| EventError::Query(e.to_string()))?
        };
        let lower = start.map_or(std::ops::Bound::Unbounded, |s| {
            std::ops::Bound::Included(Term::from_field_i64(f.time, s))
        });
        let upper = end.map_or(std::ops::Bound::Unbounded, |e| {
            std::ops::Bound::Excluded(Term::from_field_i64(f.time, e))
        });
        let mut clauses = vec![(Occur::Must, user)];
        if start.is_some() || end.is_some() {
            clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper)) as Box<dyn Query>));
        }
        let q = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(limit.max(1)).order_by_fast_field::<i64>("time", Order::Desc);
        let ix = |source| EventError::Index {
            path: self.dir.clone(),
            source,
        };
        let (hits, total) = searcher.search(&q, &(top, Count)).map_err(|e| match e {
            // What the query asks of the schema is found out only as it runs (`nofield:*`,
            // `path:*` of a field that is not a fast field): the query's fault, not the index's.
            tantivy::TantivyError::FieldNotFound(_)
            | tantivy::TantivyError::SchemaError(_)
            | tantivy::TantivyError::InvalidArgument(_) => EventError::Query(e.to_string()),
            e => ix(e),
        })?;
        let mut events = Vec::with_capacity(hits.len().min(limit));
        for (_, addr) in hits.into_iter().take(limit) {
            let doc: TantivyDocument = searcher.doc(addr).map_err(ix)?;
            events.push(from_doc(f, &doc));
        }
        Ok(SearchResult { total, events })
    }

    /// Counters for self-telemetry.
    pub fn stats(&self) -> &EventStoreStats {
        &self.stats
    }

    /// Commits what is queued and stops the writer.
    pub fn close(&self) {
        let tx = self.tx.lock().take();
        drop(tx);
        if let Some(t) = self.writer.lock().take()
            && t.join().is_err()
        {
            tracing::error!("the event writer thread panicked");
        }
    }
}

impl Drop for EventStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn from_doc(f: &Fields, doc: &TantivyDocument) -> RawEvent {
    let text = |field| doc.get_first(field).and_then(|v| v.as_str()).map(str::to_owned);
    let float = |field| doc.get_first(field).and_then(|v| v.as_f64());
    RawEvent {
        time: doc.get_first(f.time).and_then(|v| v.as_i64()).unwrap_or(0),
        service: text(f.service).unwrap_or_default(),
        route: text(f.route).unwrap_or_default(),
        path: text(f.path).unwrap_or_default(),
        template: text(f.template).unwrap_or_default(),
        method: text(f.method).unwrap_or_default(),
        status: doc
            .get_first(f.status)
            .and_then(|v| v.as_u64())
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(0),
        latency_ms: float(f.latency).unwrap_or(0.0),
        upstream_ms: float(f.upstream),
        kong_ms: float(f.kong),
        consumer: text(f.consumer),
        request_id: text(f.request_id),
        client_ip: text(f.client_ip),
        kept: match text(f.kept).as_deref() {
            Some("error") => Kept::Error,
            Some("history") => Kept::History,
            _ => Kept::Sample,
        },
        alert: (text(f.kept).as_deref() == Some("history")).then(|| AlertRecord {
            alertname: text(f.alertname).unwrap_or_default(),
            state: text(f.state).unwrap_or_default(),
            receiver: text(f.receiver).unwrap_or_default(),
            by: text(f.by).unwrap_or_default(),
            comment: text(f.comment).unwrap_or_default(),
            labels: text(f.labels).unwrap_or_default(),
            group_key: text(f.group_key).unwrap_or_default(),
        }),
    }
}

/// Removes what interrupted writes leave behind and tantivy never collects: `.tmp*` files, and
/// the files of segments that no commit refers to (a merge cut short by a crash or a close). Runs
/// before the writer starts, so no merge of this process is under way. Left alone, such files
/// would count against `max_bytes` for ever and size retention would delete events for them.
fn remove_leftover_files(dir: &Path, index: &Index) {
    let Ok(live) = index.searchable_segment_ids() else {
        return;
    };
    let live: std::collections::HashSet<String> = live.iter().map(tantivy::index::SegmentId::uuid_string).collect();
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let orphan = match name.split_once('.') {
            Some((id, _)) => is_segment_id(id) && !live.contains(id),
            None => false,
        };
        if orphan || name.starts_with(".tmp") {
            tracing::info!(file = %name, "removing a file no commit of the event index refers to");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Whether `s` is a segment id as tantivy names files: 32 lowercase hexadecimal digits.
fn is_segment_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Bytes of the files in `dir`.
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The writer thread's state.
struct Writer {
    writer: IndexWriter,
    reader: IndexReader,
    fields: Fields,
    stats: Arc<EventStoreStats>,
    dir: PathBuf,
    cfg: EventStoreConfig,
}

impl Writer {
    fn run(mut self, rx: &Receiver<Cmd>) {
        let mut pending = 0u64;
        let mut last_commit = Instant::now();
        let mut last_retention = Instant::now();
        loop {
            let wait = self.cfg.commit_every.saturating_sub(last_commit.elapsed());
            match rx.recv_timeout(wait.max(Duration::from_millis(10))) {
                Ok(Cmd::Event(ev)) => {
                    self.add(&ev);
                    pending += 1;
                }
                Ok(Cmd::Flush(ack)) => {
                    let r = self.commit(&mut pending);
                    let _ = ack.send(r);
                    last_commit = Instant::now();
                }
                Ok(Cmd::Retain(now, ack)) => {
                    let _ = self.commit(&mut pending);
                    self.retain(now);
                    let _ = ack.send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if pending > 0 && last_commit.elapsed() >= self.cfg.commit_every {
                let _ = self.commit(&mut pending);
                last_commit = Instant::now();
            }
            if last_retention.elapsed() >= self.cfg.retention_every {
                self.retain(crate::time::now_ms());
                last_retention = Instant::now();
            }
        }
        let _ = self.commit(&mut pending);
        // A merge cut off by dropping the writer would leave a half-written segment behind.
        if let Err(e) = self.writer.wait_merging_threads() {
            tracing::warn!(error = %e, "waiting for the event index's merges failed");
        }
    }

    /// Adds an event, replacing one with the same key.
    fn add(&mut self, ev: &RawEvent) {
        let f = &self.fields;
        let key = ev.key();
        let mut doc = TantivyDocument::default();
        doc.add_i64(f.time, ev.time);
        doc.add_text(f.service, &ev.service);
        doc.add_text(f.route, &ev.route);
        doc.add_text(f.path, &ev.path);
        doc.add_text(f.template, &ev.template);
        doc.add_text(f.method, &ev.method);
        doc.add_u64(f.status, u64::from(ev.status));
        doc.add_f64(f.latency, ev.latency_ms);
        if let Some(u) = ev.upstream_ms {
            doc.add_f64(f.upstream, u);
        }
        if let Some(k) = ev.kong_ms {
            doc.add_f64(f.kong, k);
        }
        for (field, v) in [
            (f.consumer, &ev.consumer),
            (f.request_id, &ev.request_id),
            (f.client_ip, &ev.client_ip),
        ] {
            if let Some(v) = v {
                doc.add_text(field, v);
            }
        }
        doc.add_text(f.kept, ev.kept.as_str());
        if let Some(a) = &ev.alert {
            for (field, v) in [
                (f.alertname, &a.alertname),
                (f.state, &a.state),
                (f.receiver, &a.receiver),
                (f.by, &a.by),
                (f.comment, &a.comment),
                (f.labels, &a.labels),
                (f.group_key, &a.group_key),
            ] {
                if !v.is_empty() {
                    doc.add_text(field, v);
                }
            }
        }
        doc.add_text(f.key, &key);
        self.writer.delete_term(Term::from_field_text(f.key, &key));
        if let Err(e) = self.writer.add_document(doc) {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "adding an event to the index failed");
        }
    }

    fn commit(&mut self, pending: &mut u64) -> Result<(), String> {
        if *pending == 0 {
            return Ok(());
        }
        let n = std::mem::take(pending);
        match self.writer.commit() {
            Ok(_) => {
                self.stats.stored.fetch_add(n, Ordering::Relaxed);
                if let Err(e) = self.reader.reload() {
                    tracing::warn!(error = %e, "reloading the event index failed");
                }
                self.stats
                    .docs
                    .store(self.reader.searcher().num_docs(), Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                // A failed commit leaves the writer unusable: start a new one. The events of
                // this commit are lost (counted).
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::error!(error = %e, events = n, "committing the event index failed");
                let _ = self.writer.rollback();
                Err(e.to_string())
            }
        }
    }

    /// Deletes events older than the maximum age, then the oldest ones while the index is over
    /// its size, and merges so that the space comes back.
    fn retain(&mut self, now: Timestamp) {
        let f = self.fields.clone();
        let before = self.reader.searcher().num_docs();
        let cutoff = Term::from_field_i64(f.time, now - self.cfg.max_age_ms);
        let old = RangeQuery::new(std::ops::Bound::Unbounded, std::ops::Bound::Excluded(cutoff));
        let mut changed = self.delete(Box::new(old));
        let mut size = dir_size(&self.dir);
        // Over the size: drop the oldest fifth of what is left, until under it (a few rounds
        // at most).
        for _ in 0..8 {
            if size <= self.cfg.max_bytes {
                break;
            }
            // The searcher is dropped before the merge: while it lives, the merged segments'
            // files cannot be collected and the size would not come down.
            let oldest_fifth = {
                let searcher = self.reader.searcher();
                let n = searcher.num_docs() as usize;
                let oldest = TopDocs::with_limit((n / 5).max(1)).order_by_fast_field::<i64>("time", Order::Asc);
                match searcher.search(&AllQuery, &oldest) {
                    Ok(hits) if n > 0 => hits.last().and_then(|(t, _)| *t),
                    _ => None,
                }
            };
            let Some(t) = oldest_fifth else {
                break;
            };
            let q = RangeQuery::new(
                std::ops::Bound::Unbounded,
                std::ops::Bound::Included(Term::from_field_i64(f.time, t)),
            );
            changed |= self.delete(Box::new(q));
            let merged = self.merge_all();
            size = dir_size(&self.dir);
            if !merged {
                // The space did not come back (a background merge holds the segments): deleting
                // more now would delete events for nothing. The next round measures again.
                break;
            }
        }
        if changed {
            let after = self.reader.searcher().num_docs();
            let gone = before.saturating_sub(after);
            self.stats.expired.fetch_add(gone, Ordering::Relaxed);
            self.stats.docs.store(after, Ordering::Relaxed);
            if gone > 0 {
                tracing::info!(events = gone, bytes = size, "event retention deleted old events");
            }
        }
        self.stats.bytes.store(size, Ordering::Relaxed);
    }

    /// Deletes what `q` matches and commits; whether anything was deleted.
    fn delete(&mut self, q: Box<dyn Query>) -> bool {
        let before = self.reader.searcher().num_docs();
        if let Err(e) = self.writer.delete_query(q) {
            tracing::warn!(error = %e, "deleting old events failed");
            return false;
        }
        if let Err(e) = self.writer.commit() {
            tracing::warn!(error = %e, "committing the deletion of old events failed");
            let _ = self.writer.rollback();
            return false;
        }
        let _ = self.reader.reload();
        self.reader.searcher().num_docs() < before
    }

    /// Merges every segment into one, which drops deleted events from disk; whether that
    /// happened (or nothing needed it).
    fn merge_all(&mut self) -> bool {
        let Ok(ids) = self.reader.searcher().index().searchable_segment_ids() else {
            return false;
        };
        if ids.len() > 1
            || self
                .reader
                .searcher()
                .segment_readers()
                .iter()
                .any(|s| s.num_deleted_docs() > 0)
        {
            if let Err(e) = self.writer.merge(&ids).wait() {
                tracing::warn!(error = %e, "merging the event index failed");
                return false;
            }
            // Searchers of the old segments keep their files alive: move the reader on first,
            // so that the collection removes them now rather than at some later one.
            let _ = self.reader.reload();
            let _ = self.writer.garbage_collect_files().wait();
        }
        true
    }
}

#[cfg(test)]
mod tests;
