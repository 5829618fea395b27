//! The aggregator thread: decodes batches on every core, drops messages already aggregated,
//! moves the watermark, and hands the events to the collector with the new positions.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rdkafka::consumer::CommitMode;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::TopicPartitionList;
use vigil_tsdb::Timestamp;
use vigil_tsdb::time::now_ms;

use super::context::Partitions;
use super::{Batch, KafkaConsumer, Shared};
use crate::error::Error;
use crate::kong::{KongEvent, Reject, RejectCounts, decode_body};

/// Below this many messages a batch is decoded on this thread alone.
const PARALLEL_MIN: usize = 512;

/// How long to wait before retrying a batch the store did not take.
const RETRY: Duration = Duration::from_millis(500);

type DeadLetters = ThreadedProducer<DefaultProducerContext>;

/// What decoding one message gave.
#[derive(Debug, Clone)]
struct Decoded {
    /// End of its events in its chunk's event list.
    end: usize,
    max_t: Option<Timestamp>,
    rejects: Option<Box<RejectCounts>>,
}

/// Runs until the consumer thread hangs up, then stores the final positions.
pub(crate) fn run(shared: &Shared, consumer: &KafkaConsumer, rx: &Receiver<Batch>, dead: Option<&DeadLetters>) {
    let threads = std::thread::available_parallelism().map_or(1, usize::from).min(8);
    let mut waiting: Option<Batch> = None;
    loop {
        let batch = match waiting.take() {
            Some(b) => Some(b),
            None => match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(b) => Some(b),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        let batch = batch.unwrap_or_default();
        if !apply(shared, consumer, &batch, threads, dead) {
            waiting = Some(batch);
            std::thread::sleep(RETRY);
        }
    }
    let parts = shared.parts.lock();
    match shared.collector.checkpoint(parts.positions()) {
        Ok(()) => commit(shared, consumer, &parts, CommitMode::Sync),
        Err(e) => tracing::error!(error = %e, "storing the final positions failed"),
    }
}

/// Decodes and aggregates one batch (an empty one just moves the watermark). Returns false if
/// the store did not take it: nothing changed, and the batch is to be tried again.
fn apply(shared: &Shared, consumer: &KafkaConsumer, batch: &Batch, threads: usize, dead: Option<&DeadLetters>) -> bool {
    let chunks = decode(batch, threads);
    let now = now_ms();
    let delay = shared.collector.watermark_delay();
    let mut parts = shared.parts.lock();
    let before = parts.clone();
    let mut events: Vec<KongEvent<'_>> = Vec::new();
    let mut rejected = RejectCounts::default();
    let mut bad_messages = Vec::new();
    let mut duplicates = 0u64;
    let mut msgs = batch.msgs.iter();
    for (chunk_events, infos) in &chunks {
        let mut start = 0;
        for info in infos {
            let Some(m) = msgs.next() else { break };
            let range = start..info.end;
            start = info.end;
            let Some(part) = parts.get_mut(&m.topic, m.partition) else {
                duplicates += 1;
                continue;
            };
            if m.offset < part.next {
                duplicates += 1;
                continue;
            }
            part.next = m.offset + 1;
            part.messages += 1;
            part.last_msg = now;
            if let Some(t) = info.max_t {
                part.max_t = Some(part.max_t.map_or(t, |m| m.max(t)));
            }
            events.extend_from_slice(&chunk_events[range]);
            if let Some(r) = &info.rejects {
                rejected.merge(r);
                bad_messages.push((m, first_reason(r)));
            }
        }
    }
    let watermark = watermark(&parts, now, shared.cfg.idle_partition).map(|t| t - delay);
    let positions = parts.positions();
    let stored = match shared
        .collector
        .ingest_from_source(&events, rejected, now, positions, watermark)
    {
        Ok((_, stored)) => stored,
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
    };
    if stored {
        commit(shared, consumer, &parts, CommitMode::Async);
    }
    hold_back_the_fast(shared, consumer, &mut parts, delay);
    report(shared, batch, &parts, duplicates);
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
fn decode(batch: &Batch, threads: usize) -> Vec<(Vec<KongEvent<'_>>, Vec<Decoded>)> {
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
            decode_body(batch.payload(m), &mut events, &mut rejects);
            let max_t = events[first..].iter().map(|e: &KongEvent<'_>| e.started_at).max();
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
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    })
}

/// The event time every partition that still has data to deliver has reached: the slowest
/// active partition's newest event. A partition is not active when it has had no message for
/// `idle` or has no lag left. `None` while an active partition has delivered nothing yet (its
/// events could be older than everyone's) or no partition is active.
fn watermark(parts: &Partitions, now: Timestamp, idle: i64) -> Option<Timestamp> {
    let mut slowest: Option<Timestamp> = None;
    for (_, _, p) in parts.iter() {
        let caught_up = p.lag.is_some_and(|(lag, at)| lag == 0 && at >= p.last_msg);
        if caught_up || now - p.last_msg > idle {
            continue;
        }
        let t = p.max_t?;
        slowest = Some(slowest.map_or(t, |s| s.min(t)));
    }
    slowest
}

/// Pauses partitions whose events run more than `max_partition_skew` ahead of the slowest
/// active one, and resumes them once it has caught up.
fn hold_back_the_fast(shared: &Shared, consumer: &KafkaConsumer, parts: &mut Partitions, delay: i64) {
    let Some(slowest) = watermark(parts, now_ms(), shared.cfg.idle_partition) else {
        return;
    };
    let limit = slowest + shared.cfg.max_partition_skew + delay;
    let (mut hold, mut release) = (TopicPartitionList::new(), TopicPartitionList::new());
    for (t, p, part) in parts.iter_mut() {
        let ahead = part.max_t.is_some_and(|m| m > limit);
        if ahead != part.held {
            part.held = ahead;
            if ahead {
                hold.add_partition(t, p)
            } else {
                release.add_partition(t, p)
            };
        }
    }
    let paused = shared.status.paused.load(Ordering::Relaxed);
    if hold.count() > 0 {
        tracing::info!(partitions = hold.count(), "partitions ahead of the slowest one paused");
        let _ = consumer.pause(&hold);
    }
    if release.count() > 0 && !paused {
        let _ = consumer.resume(&release);
    }
}

fn commit(shared: &Shared, consumer: &KafkaConsumer, parts: &Partitions, mode: CommitMode) {
    let offsets = parts.offsets(None);
    if offsets.count() == 0 {
        return;
    }
    if let Err(e) = consumer.commit(&offsets, mode) {
        shared.status.commit_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "committing offsets to Kafka failed (the store has them)");
    }
}

fn report(shared: &Shared, batch: &Batch, parts: &Partitions, duplicates: u64) {
    let st = &shared.status;
    st.messages
        .fetch_add(batch.msgs.len() as u64 - duplicates, Ordering::Relaxed);
    st.bytes.fetch_add(batch.data.len() as u64, Ordering::Relaxed);
    st.duplicates_skipped.fetch_add(duplicates, Ordering::Relaxed);
    if !batch.msgs.is_empty() {
        *st.last_error.lock() = None;
    }
    let mut status = st.partitions.lock();
    for (t, p, part) in parts.iter() {
        if let Some(s) = status.get_mut(&(t.to_owned(), p)) {
            s.next_offset = part.next;
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
    let source = format!("{}/{}/{}", m.topic, m.partition, m.offset);
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
