//! The aggregator thread: commits each batch's offsets to Kafka while decoding it on every
//! core, drops stale and already-aggregated messages, moves the watermark, and hands the events
//! to the collector with the new positions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use vigil_tsdb::Timestamp;
use vigil_tsdb::time::now_ms;

use super::partitions::Partitions;
use super::position::{Committed, committed_key};
use super::watermark::{self, Settings};
use super::{Batch, KafkaConsumer, Shared};
use crate::error::Error;
use crate::kong::{KongEvent, Reject, RejectCounts, decode_body};

/// Below this many messages a batch is decoded on this thread alone.
const PARALLEL_MIN: usize = 512;

/// How long to wait before retrying a batch the store did not take.
const RETRY: Duration = Duration::from_millis(500);

/// How long to wait for a batch before moving the watermark anyway.
const IDLE_WAIT: Duration = Duration::from_millis(250);

type DeadLetters = ThreadedProducer<DefaultProducerContext>;

/// What decoding one message gave.
#[derive(Debug, Clone)]
struct Decoded {
    /// End of its events in its chunk's event list.
    end: usize,
    max_t: Option<Timestamp>,
    rejects: Option<Box<RejectCounts>>,
}

/// Runs until the consumer thread hangs up, then stores the final positions (and, when every
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
    finish(shared);
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

/// At a graceful stop: the positions and open windows go to the store; when every partition
/// is caught up nothing older can come, so the open windows are written instead of kept.
fn finish(shared: &Shared) {
    let parts = shared.parts.lock();
    let caught_up = !parts.is_empty() && parts.iter().all(|(_, _, p)| p.caught_up());
    let mut r = shared.collector.checkpoint(parts.positions());
    if r.is_ok() && caught_up {
        r = shared.collector.flush();
    }
    if let Err(e) = r {
        tracing::error!(error = %e, "storing the final positions failed");
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

/// What becomes of one message of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// New: aggregate it.
    Fresh,
    /// Polled before its partition was revoked or assigned again: it is read again from the
    /// assigned offset, or by the partition's new owner.
    Stale,
    /// At an offset already aggregated (delivered again after a seek).
    Duplicate,
}

/// Sorts the batch's messages and works out the offsets to commit (each partition's next
/// offset after its fresh messages, tagged with this instance's id) and the partitions read for
/// the first time (their first offset) whose start the store does not know yet.
fn plan(parts: &Partitions, batch: &Batch, instance: &str) -> (Vec<Verdict>, TopicPartitionList, Partitions) {
    let mut next = parts.clone();
    let mut starts = parts.clone();
    let mut new_starts = false;
    let verdicts = batch
        .msgs
        .iter()
        .map(|m| {
            let Some(part) = next.get_mut(batch.topic(m), m.partition).filter(|p| m.epoch >= p.epoch) else {
                return Verdict::Stale;
            };
            if m.offset < part.next {
                return Verdict::Duplicate;
            }
            if (part.next < 0 || part.start_unstored)
                && let Some(s) = starts.get_mut(batch.topic(m), m.partition)
            {
                if s.next < 0 {
                    s.next = m.offset;
                }
                new_starts = true;
            }
            part.next = m.offset + 1;
            Verdict::Fresh
        })
        .collect();
    let mut offsets = TopicPartitionList::new();
    for (t, p, part) in next.iter() {
        if parts.get(t, p).is_some_and(|old| old.next != part.next) {
            let mut e = offsets.add_partition(t, p);
            let _ = e.set_offset(Offset::Offset(part.next));
            e.set_metadata(instance);
        }
    }
    if !new_starts {
        starts = Partitions::default();
    }
    (verdicts, offsets, starts)
}

/// Decodes and aggregates one batch (an empty one just moves the watermark). Returns false if
/// Kafka or the store did not take it: nothing changed, and the batch is to be tried again.
///
/// The batch's offsets are committed to Kafka (synchronously, while it is decoded) before it
/// is aggregated, all under the partitions' lock: a rebalance cannot hand a partition on
/// between the two, so its next owner starts exactly after what this process aggregated.
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
    let (verdicts, offsets, starts) = plan(&parts, batch, &shared.instance);
    // The store must know where a partition starts before Kafka hears of this instance's first
    // offset on it: after a crash, an offset committed by this instance sends it back to its
    // stored position.
    if !starts.is_empty() {
        if let Err(e) = shared.collector.checkpoint(starts.positions()) {
            tracing::warn!(error = %e, "storing where partitions start failed; holding the batch");
            return false;
        }
        for (_, _, part) in parts.iter_mut() {
            part.start_unstored = false;
        }
    }
    // A batch the store cannot take now must not reach Kafka's offsets either: if a rebalance
    // hands its partitions on meanwhile, the next owner starts after what was committed.
    if let Err(e) = shared.collector.ready_for_more() {
        tracing::warn!(error = %e, "the store is not taking writes; holding the batch");
        return false;
    }
    // The offsets about to be committed are stored first: a broker that drops commit metadata
    // still lets this store recognise its own offsets after a crash.
    if offsets.count() > 0 {
        let marks: Vec<(String, Vec<u8>)> = offsets
            .elements()
            .iter()
            .filter_map(|e| {
                let Offset::Offset(n) = e.offset() else { return None };
                let part = parts.get_mut(e.topic(), e.partition())?;
                if part.committed.last != n {
                    part.committed = Committed {
                        last: n,
                        previous: part.committed.last,
                    };
                }
                Some((committed_key(e.topic(), e.partition()), part.committed.encode()))
            })
            .collect();
        if let Err(e) = shared.collector.store_marks(marks) {
            tracing::warn!(error = %e, "storing the offsets to commit failed; holding the batch");
            return false;
        }
    }
    let (chunks, committed) = std::thread::scope(|s| {
        let commit = (offsets.count() > 0).then(|| s.spawn(|| consumer.commit(&offsets, CommitMode::Sync)));
        let chunks = decode(batch, threads, now + settings.clock_skew);
        (chunks, commit.map(std::thread::ScopedJoinHandle::join))
    });
    match committed {
        None | Some(Ok(Ok(()))) => {}
        Some(Ok(Err(e))) => {
            shared.status.commit_errors.fetch_add(1, Ordering::Relaxed);
            tracing::info!(error = %e, "committing offsets to Kafka failed; holding the batch");
            return false;
        }
        Some(Err(_)) => {
            tracing::error!("the offset commit panicked; holding the batch");
            return false;
        }
    }
    let before = parts.clone();
    let closed = shared.collector.closed_until();
    let mut events: Vec<KongEvent<'_>> = Vec::new();
    let mut rejected = RejectCounts::default();
    let mut bad_messages = Vec::new();
    let (mut skipped, mut fresh) = (0u64, 0u64);
    let mut msgs = batch.msgs.iter().zip(&verdicts);
    for (chunk_events, infos) in &chunks {
        let mut start = 0;
        for info in infos {
            let Some((m, verdict)) = msgs.next() else { break };
            let range = start..info.end;
            start = info.end;
            let (Verdict::Fresh, Some(part)) = (verdict, parts.get_mut(batch.topic(m), m.partition)) else {
                skipped += 1;
                continue;
            };
            fresh += 1;
            part.next = m.offset + 1;
            part.messages += 1;
            part.last_progress = now;
            part.last_msg = Some(now);
            // Late means out of order within its own partition (and behind the closed windows)
            // by more than the allowed lateness. A partition that is merely behind the others
            // (taken over from another member, say) delivers in order: its events count.
            match part.max_t.zip(closed) {
                Some((newest, closed)) => {
                    let floor = newest.min(closed) - settings.lateness;
                    for ev in &chunk_events[range] {
                        if ev.started_at < floor {
                            rejected.add(Reject::Late);
                        } else {
                            events.push(ev.clone());
                        }
                    }
                }
                None => events.extend_from_slice(&chunk_events[range]),
            }
            if let Some(t) = info.max_t {
                part.max_t = Some(part.max_t.map_or(t, |m| m.max(t)));
            }
            if let Some(r) = &info.rejects {
                rejected.merge(r);
                bad_messages.push((m, first_reason(r)));
            }
        }
    }
    let newest_message = if fresh > 0 { Some(now) } else { *last_message };
    let wm = watermark::watermark(&parts, newest_message, now, closed, settings);
    match shared
        .collector
        .ingest_from_source(&events, rejected, now, parts.positions(), wm)
    {
        Ok(_) => {}
        Err(Error::Backpressure { pending, last_error }) => {
            tracing::warn!(pending, %last_error, "the store is not taking writes; holding the batch");
            *parts = before;
            return false;
        }
        Err(e) => {
            tracing::error!(error = %e, "aggregating a batch failed; holding it");
            *parts = before;
            return false;
        }
    }
    *last_message = newest_message;
    hold_back_the_fast(shared, consumer, &mut parts, now, settings);
    report(shared, batch, &parts, skipped);
    drop(parts);
    if let (Some(producer), Some(topic)) = (dead, &shared.cfg.dead_letter_topic) {
        for (m, reason) in bad_messages {
            dead_letter(shared, producer, topic, batch, m, reason);
        }
    }
    true
}

/// Decodes the batch's messages in order, on up to `threads` threads: per chunk of messages,
/// their events and what each message gave.
/// Events starting after `future` are to be rejected: they do not move a partition's time.
fn decode(batch: &Batch, threads: usize, future: Timestamp) -> Vec<(Vec<KongEvent<'_>>, Vec<Decoded>)> {
    let n = batch.msgs.len();
    if n == 0 {
        return Vec::new();
    }
    let parts = if n < PARALLEL_MIN { 1 } else { threads.max(1) };
    let per = n.div_ceil(parts);
    let decode_chunk = |msgs: &[super::Msg]| {
        let mut events = Vec::with_capacity(msgs.len());
        let mut infos = Vec::with_capacity(msgs.len());
        for m in msgs {
            let first = events.len();
            let mut rejects = RejectCounts::default();
            // A message that trips a bug in the decoder is a bad message, not the end of the
            // source (the panic is logged by the panic hook).
            let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                decode_body(batch.payload(m), &mut events, &mut rejects);
            }));
            if decoded.is_err() {
                events.truncate(first);
                rejects = RejectCounts::default();
                rejects.add(Reject::InvalidJson);
            }
            let max_t = events[first..]
                .iter()
                .map(|e: &KongEvent<'_>| e.started_at)
                .filter(|t| *t <= future)
                .max();
            infos.push(Decoded {
                end: events.len(),
                max_t,
                rejects: (rejects.total() > 0).then(|| Box::new(rejects)),
            });
        }
        (events, infos)
    };
    if parts == 1 {
        return vec![decode_chunk(&batch.msgs)];
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = batch
            .msgs
            .chunks(per)
            .map(|c| s.spawn(move || decode_chunk(c)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Pauses partitions far ahead of the slowest one and resumes those it has caught up with
/// (see [`watermark::hold_back`]).
fn hold_back_the_fast(shared: &Shared, consumer: &KafkaConsumer, parts: &mut Partitions, now: Timestamp, s: &Settings) {
    let (hold, release) = watermark::hold_back(parts, now, s);
    if hold.is_empty() && release.is_empty() {
        return;
    }
    let (mut hold_tpl, mut release_tpl) = (TopicPartitionList::new(), TopicPartitionList::new());
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
        release_tpl.add_partition(t, *p);
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
    // While everything is paused for backpressure, resuming happens there.
    if release_tpl.count() > 0 && !shared.status.paused.load(Ordering::Relaxed) {
        tracing::info!(
            partitions = release_tpl.count(),
            "the slowest partition caught up: resumed"
        );
        let at = parts.resume_points(&release_tpl);
        super::resume(consumer, &release_tpl, at);
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
        }
    }
}

fn first_reason(r: &RejectCounts) -> Reject {
    r.iter().find(|(_, n)| *n > 0).map_or(Reject::InvalidJson, |(r, _)| r)
}

/// Produces a message with undecodable events, as it is, to the dead-letter topic.
fn dead_letter(shared: &Shared, producer: &DeadLetters, topic: &str, batch: &Batch, m: &super::Msg, reason: Reject) {
    let source = format!("{}/{}/{}", batch.topic(m), m.partition, m.offset);
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "vigil-reason",
            value: Some(reason.as_str()),
        })
        .insert(Header {
            key: "vigil-source",
            value: Some(source.as_str()),
        });
    let record: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic).payload(batch.payload(m)).headers(headers);
    match producer.send(record) {
        Ok(()) => {
            shared.status.dead_letters.fetch_add(1, Ordering::Relaxed);
        }
        Err((e, _)) => {
            shared.status.dead_letter_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, %source, "producing to the dead-letter topic failed");
        }
    }
}
