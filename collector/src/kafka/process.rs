//! The aggregator thread: judges each batch's messages (stale, already read, new, or past
//! records the broker skipped), decodes them on every core, adds their events tentatively,
//! moves the watermark, and commits (Kafka, then the store: [`super::commit`]) whenever
//! windows close.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::TopicPartitionList;
use vigil_tsdb::Timestamp;
use vigil_tsdb::time::now_ms;

use super::commit::{self, CommitError};
use super::deadletter::{DeadLetters, dead_letter, first_reason};
use super::decode::{Decoded, decode};
use super::gaps::{self, Verdict};
use super::partitions::Partitions;
use super::position::Position;
use super::watermark::{self, Settings};
use super::{Batch, KafkaConsumer, Msg, Refetch, Shared};
use crate::error::Error;
use crate::kong::{KongEvent, Reject, RejectCounts};

/// How long to wait before retrying a batch the store did not take.
const RETRY: Duration = Duration::from_millis(500);

/// How long to wait for a batch before moving the watermark anyway.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// How long asking a broker where a partition's log starts may take.
const LOG_START_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs until the consumer thread hangs up, then commits what was read (and, when every
/// partition is caught up, writes the open windows).
pub(crate) fn run(
    shared: &Shared,
    consumer: &KafkaConsumer,
    rx: &Receiver<Batch>,
    recycle: &SyncSender<Batch>,
    dead: Option<&DeadLetters>,
    stop: &AtomicBool,
) {
    let threads = std::thread::available_parallelism().map_or(1, usize::from).min(8);
    let mut waiting: Option<Batch> = None;
    let mut last_message: Option<Timestamp> = None;
    let mut unassigned_since: Option<Timestamp> = None;
    let settings = settings(shared);
    loop {
        let batch = match waiting.take() {
            Some(b) => b,
            None => match rx.recv_timeout(IDLE_WAIT) {
                Ok(b) => b,
                Err(RecvTimeoutError::Timeout) => Batch::default(),
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        if apply(shared, consumer, &batch, threads, dead, &settings, &mut last_message) {
            if !batch.msgs.is_empty() {
                let _ = recycle.try_send(batch);
            }
        } else if stop.load(Ordering::Relaxed) {
            // Stopping: a batch the store still refuses is read again at the next start (its
            // offsets are neither stored nor committed).
            tracing::warn!(
                messages = batch.msgs.len(),
                "stopping with a batch the store did not take"
            );
            break;
        } else {
            waiting = Some(batch);
            std::thread::sleep(RETRY);
            // Waiting for the store is not a partition stalling.
            let now = now_ms();
            for (_, _, part) in shared.parts.lock().iter_mut() {
                part.last_progress = now;
            }
        }
        close_when_unassigned(shared, &mut unassigned_since, &settings);
    }
    finish(shared, consumer);
}

/// A member left without partitions (more members than partitions, say) writes its open
/// windows once it has had none for `idle_partition`: nothing it holds can be completed by
/// it, and what it counted must become visible. Should the group give it partitions with
/// older events later, those count in the next open window.
fn close_when_unassigned(shared: &Shared, since: &mut Option<Timestamp>, s: &Settings) {
    let now = now_ms();
    if !shared.status.joined.load(Ordering::Relaxed) || !shared.parts.lock().is_empty() {
        *since = None;
        return;
    }
    let since = *since.get_or_insert(now);
    if now - since > s.idle
        && shared.collector.has_open_windows()
        && let Err(e) = shared.collector.flush()
    {
        tracing::warn!(error = %e, "writing the open windows of a member without partitions failed");
    }
}

/// At a graceful stop: what was read is committed (the open windows stored with it); when
/// every partition is caught up nothing older can come, so the open windows are written
/// instead of kept. If the commit fails, what was read since the last one is read again at
/// the next start.
fn finish(shared: &Shared, consumer: &KafkaConsumer) {
    let mut parts = shared.parts.lock();
    let caught_up = !parts.is_empty() && parts.iter().all(|(_, _, p)| p.caught_up());
    match commit::commit(shared, consumer, &mut parts, None) {
        Ok(()) => {
            if caught_up && let Err(e) = shared.collector.flush() {
                tracing::error!(error = %e, "writing the open windows at the stop failed (they are stored)");
            }
        }
        Err(e) if e.nothing_committed() => {
            tracing::warn!(error = %e, "the final commit failed: what was read since the last one is read again");
            commit::roll_back(shared, &mut parts);
        }
        Err(e) => tracing::error!(error = %e, "the final commit reached Kafka but not the store"),
    }
}

fn settings(shared: &Shared) -> Settings {
    let agg = shared.collector.config();
    Settings {
        window: agg.window_ms,
        delay: agg.watermark_delay_ms,
        lateness: agg.allowed_lateness_ms,
        idle: shared.cfg.idle_partition,
        skew: shared.cfg.max_partition_skew,
        clock_skew: agg.max_clock_skew_ms,
    }
}

/// The end of each partition's log, from librdkafka's cache (the latest fetch response).
fn refresh_highs(consumer: &KafkaConsumer, parts: &mut Partitions) {
    for (t, p, part) in parts.iter_mut() {
        if let Some(high) = cached_high_watermark(consumer, t, p) {
            part.high = Some(high);
        }
    }
}

/// librdkafka's cached high watermark of a partition (no request to the broker), which
/// rust-rdkafka does not wrap.
#[allow(unsafe_code)]
fn cached_high_watermark(consumer: &KafkaConsumer, topic: &str, partition: i32) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle lives as long as `consumer`; the topic is a NUL-terminated
    // string that outlives the call; `low` and `high` are valid for writes. The function only
    // reads librdkafka's cache under its own locks.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &raw mut low,
            &raw mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}

/// A batch judged: each message's verdict, and the partitions as they will be once it is
/// taken.
struct Judged {
    verdicts: Vec<Verdict>,
    parts: Partitions,
    /// Fetches to send back before the records the broker skipped.
    seeks: Vec<Refetch>,
}

/// Judges every message of the batch ([`gaps::judge`]) against a copy of the partitions, and
/// sends back the fetches of partitions that deliver nothing though they are behind
/// ([`gaps::unstick`]).
fn judge(shared: &Shared, consumer: &KafkaConsumer, parts: &Partitions, batch: &Batch, now: Timestamp) -> Judged {
    let mut next = parts.clone();
    let mut seeks = Vec::new();
    let verdicts = batch
        .msgs
        .iter()
        .map(|m| {
            let topic = batch.topic(m);
            let Some(part) = next.get_mut(topic, m.partition) else {
                return Verdict::Stale;
            };
            let mut log_start = || {
                consumer
                    .fetch_watermarks(topic, m.partition, LOG_START_TIMEOUT)
                    .ok()
                    .map(|(low, _)| low)
            };
            let v = gaps::judge(part, m.offset, m.epoch, now, &mut log_start);
            if part.stored.next < 0 && part.next >= 0 {
                // Where a partition new to the group starts, known from its first message.
                part.stored = Position {
                    next: m.offset,
                    max_t: None,
                };
                part.start_unstored = true;
            }
            if let Verdict::SeekBack(offset) = v {
                seeks.push(Refetch::Seek {
                    topic: topic.to_owned(),
                    partition: m.partition,
                    offset,
                });
            }
            v
        })
        .collect();
    let paused = shared.status.paused.load(Ordering::Relaxed);
    for (topic, partition, part) in next.iter_mut() {
        if let Some(offset) = gaps::unstick(part, now, paused) {
            seeks.push(Refetch::Seek {
                topic: topic.to_owned(),
                partition,
                offset,
            });
        }
    }
    Judged {
        verdicts,
        parts: next,
        seeks,
    }
}

/// The events of a batch to add, with what was rejected and what to dead-letter.
#[derive(Default)]
struct Aggregated<'a> {
    events: Vec<KongEvent<'a>>,
    rejected: RejectCounts,
    bad_messages: Vec<(&'a Msg, Reject)>,
    fresh: u64,
    skipped: u64,
    gaps: u64,
}

/// Takes the fresh messages' events, judging lateness per partition, and moves each
/// partition's progress and event time on.
fn aggregate<'a>(
    batch: &'a Batch,
    chunks: &'a [(Vec<KongEvent<'a>>, Vec<Decoded>)],
    verdicts: &[Verdict],
    parts: &mut Partitions,
    closed: Option<Timestamp>,
    lateness: i64,
    now: Timestamp,
) -> Aggregated<'a> {
    let mut out = Aggregated::default();
    let mut msgs = batch.msgs.iter().zip(verdicts);
    for (chunk_events, infos) in chunks {
        let mut start = 0;
        for info in infos {
            let Some((m, verdict)) = msgs.next() else { break };
            let range = start..info.end;
            start = info.end;
            let fresh = matches!(verdict, Verdict::Fresh | Verdict::FreshAfterGap);
            let part = parts.get_mut(batch.topic(m), m.partition).filter(|_| fresh);
            let Some(part) = part else {
                out.skipped += 1;
                continue;
            };
            out.fresh += 1;
            out.gaps += u64::from(*verdict == Verdict::FreshAfterGap);
            part.messages += 1;
            part.last_progress = now;
            part.last_msg = Some(now);
            // Late means out of order within its own partition (and behind the closed windows)
            // by more than the allowed lateness. A partition that is merely behind the others
            // (taken over from another member, say) delivers in order: its events count.
            match part.max_t.zip(closed) {
                Some((newest, closed)) => {
                    let floor = newest.min(closed) - lateness;
                    for ev in &chunk_events[range] {
                        if ev.started_at < floor {
                            out.rejected.add(Reject::Late);
                        } else {
                            out.events.push(ev.clone());
                        }
                    }
                }
                None => out.events.extend_from_slice(&chunk_events[range]),
            }
            if let Some(t) = info.max_t {
                part.max_t = Some(part.max_t.map_or(t, |m| m.max(t)));
            }
            if let Some(r) = &info.rejects {
                out.rejected.merge(r);
                out.bad_messages.push((m, first_reason(r)));
            }
        }
    }
    out
}

/// Judges, decodes and adds one batch (an empty one just moves the watermark), committing when
/// windows close. Returns false if the store did not take it: nothing changed, and the batch
/// is to be tried again.
fn apply(
    shared: &Shared,
    consumer: &KafkaConsumer,
    batch: &Batch,
    threads: usize,
    dead: Option<&DeadLetters>,
    settings: &Settings,
    last_message: &mut Option<Timestamp>,
) -> bool {
    let now = now_ms();
    let mut parts = shared.parts.lock();
    refresh_highs(consumer, &mut parts);
    let Judged {
        verdicts,
        parts: mut next,
        seeks,
    } = judge(shared, consumer, &parts, batch, now);
    if let Err(e) = commit::store_starts(shared, &mut next) {
        tracing::warn!(error = %e, "holding the batch");
        return false;
    }
    if let Err(e) = shared.collector.ready_for_more() {
        tracing::warn!(error = %e, "the store is not taking writes; holding the batch");
        return false;
    }
    let chunks = decode(batch, threads, now + settings.clock_skew);
    let closed = shared.collector.closed_until();
    let agg = aggregate(batch, &chunks, &verdicts, &mut next, closed, settings.lateness, now);
    match shared.collector.add_from_source(&agg.events, agg.rejected, now) {
        Ok(_) => {}
        Err(Error::Backpressure { pending, last_error }) => {
            tracing::warn!(pending, %last_error, "the store is not taking writes; holding the batch");
            return false;
        }
        Err(e) => {
            tracing::error!(error = %e, "aggregating a batch failed; holding it");
            return false;
        }
    }
    *parts = next;
    if !seeks.is_empty() {
        for s in &seeks {
            if let Refetch::Seek {
                topic,
                partition,
                offset,
            } = s
            {
                tracing::info!(%topic, partition, offset, "the broker skipped records or delivers none: fetching again from before them");
            }
        }
        shared
            .status
            .gap_searches
            .fetch_add(seeks.len() as u64, Ordering::Relaxed);
        shared.request(seeks);
    }
    if agg.gaps > 0 {
        tracing::info!(gaps = agg.gaps, "stepped over gaps in the partitions' offsets");
        shared.status.offset_gaps.fetch_add(agg.gaps, Ordering::Relaxed);
    }
    let newest_message = if agg.fresh > 0 { Some(now) } else { *last_message };
    *last_message = newest_message;
    let wm = watermark::watermark(&parts, newest_message, now, closed, settings);
    let due = wm.is_some_and(|wm| shared.collector.closes_at(wm)) || shared.commit_due.load(Ordering::Relaxed);
    if due {
        commit_now(shared, consumer, &mut parts, wm);
    }
    hold_back_the_fast(shared, consumer, &mut parts, now, settings);
    report(shared, batch, &parts, agg.skipped);
    drop(parts);
    if let (Some(producer), Some(topic)) = (dead, &shared.cfg.dead_letter_topic) {
        for (m, reason) in agg.bad_messages {
            dead_letter(shared, producer, topic, batch, m, reason);
        }
    }
    true
}

/// Commits now; on failure the windows wait for the next batch (and the events for the next
/// commit).
fn commit_now(shared: &Shared, consumer: &KafkaConsumer, parts: &mut Partitions, watermark: Option<Timestamp>) {
    match commit::commit(shared, consumer, parts, watermark) {
        Ok(()) => shared.commit_due.store(false, Ordering::Relaxed),
        Err(CommitError::Kafka(e)) => {
            tracing::info!(error = %e, "Kafka did not take the offsets; committing with the next batch");
        }
        Err(e) => tracing::warn!(error = %e, "committing failed; retried with the next batch"),
    }
}

/// Pauses partitions far ahead of the slowest one and resumes those it has caught up with
/// (see [`watermark::hold_back`]).
fn hold_back_the_fast(shared: &Shared, consumer: &KafkaConsumer, parts: &mut Partitions, now: Timestamp, s: &Settings) {
    let (hold, release) = watermark::hold_back(parts, now, s);
    if hold.is_empty() && release.is_empty() {
        return;
    }
    let mut hold_tpl = TopicPartitionList::new();
    for (t, p) in &hold {
        if let Some(part) = parts.get_mut(t, *p) {
            part.held = true;
        }
        hold_tpl.add_partition(t, *p);
    }
    for (t, p) in &release {
        if let Some(part) = parts.get_mut(t, *p) {
            part.held = false;
            part.last_progress = now;
        }
    }
    if hold_tpl.count() > 0 {
        tracing::info!(
            partitions = hold_tpl.count(),
            "partitions far ahead of the slowest one paused"
        );
        if let Err(e) = consumer.pause(&hold_tpl) {
            tracing::warn!(error = %e, "pausing partitions failed");
        }
    }
    // While everything is paused for backpressure, resuming happens there. The consumer
    // thread resumes them, at the offsets to fetch from.
    if !release.is_empty() && !shared.status.paused.load(Ordering::Relaxed) {
        tracing::info!(partitions = release.len(), "the slowest partition caught up: resumed");
        shared.request(
            release
                .into_iter()
                .map(|(topic, partition)| Refetch::Resume { topic, partition }),
        );
    }
}

fn report(shared: &Shared, batch: &Batch, parts: &Partitions, skipped: u64) {
    let st = &shared.status;
    st.messages
        .fetch_add(batch.msgs.len() as u64 - skipped, Ordering::Relaxed);
    st.bytes.fetch_add(batch.data.len() as u64, Ordering::Relaxed);
    st.duplicates_skipped.fetch_add(skipped, Ordering::Relaxed);
    if !batch.msgs.is_empty() {
        *st.last_error.lock() = None;
    }
    let mut status = st.partitions.lock();
    for (t, p, part) in parts.iter() {
        if let Some(s) = status.get_mut(&(t.to_owned(), p)) {
            s.next_offset = part.next;
            s.lag = part.lag();
            s.messages = part.messages;
            s.max_event_t = part.max_t;
            s.held_back = part.held;
            s.fetching_from = part.search.map(|x| (x.target, x.epoch.is_some()));
        }
    }
}
