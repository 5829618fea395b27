//! Messages with events that cannot be decoded, produced as they are to the dead-letter topic.

use std::sync::atomic::Ordering;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};

use super::{Batch, Msg, Shared};
use crate::kong::{Reject, RejectCounts};

/// The dead-letter producer.
pub(crate) type DeadLetters = ThreadedProducer<DefaultProducerContext>;

/// The first reason a message's events were rejected for.
pub(crate) fn first_reason(r: &RejectCounts) -> Reject {
    r.iter().find(|(_, n)| *n > 0).map_or(Reject::InvalidJson, |(r, _)| r)
}

/// Produces a message with undecodable events, as it is, to the dead-letter topic.
pub(crate) fn dead_letter(
    shared: &Shared,
    producer: &DeadLetters,
    topic: &str,
    batch: &Batch,
    m: &Msg,
    reason: Reject,
) {
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
