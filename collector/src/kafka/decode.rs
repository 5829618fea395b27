//! Decoding a batch of messages on every core, in order.

use vigil_tsdb::Timestamp;

use super::Batch;
use crate::kong::{KongEvent, Reject, RejectCounts, decode_body};

/// Below this many messages a batch is decoded on this thread alone.
const PARALLEL_MIN: usize = 512;

/// What decoding one message gave.
#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    /// End of its events in its chunk's event list.
    pub(crate) end: usize,
    /// Its newest event time (not counting events from the future).
    pub(crate) max_t: Option<Timestamp>,
    /// What was wrong with it, if anything.
    pub(crate) rejects: Option<Box<RejectCounts>>,
}

/// Decodes the batch's messages in order, on up to `threads` threads: per chunk of messages,
/// their events and what each message gave.
/// Events starting after `future` are to be rejected: they do not move a partition's time.
pub(crate) fn decode(batch: &Batch, threads: usize, future: Timestamp) -> Vec<(Vec<KongEvent<'_>>, Vec<Decoded>)> {
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
