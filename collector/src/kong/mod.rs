//! Kong 3.x log events: the fields vigil needs, decoded on demand from one JSON object, an
//! http-log batch (a JSON array), or NDJSON.
//!
//! A malformed line or element is counted under a [`Reject`] reason and skipped; decoding goes
//! on with the next one.

mod classify;
mod decode;
mod scan;

use std::borrow::Cow;
use std::fmt;

pub use decode::{BodyFormat, decode_body, decode_event, decode_line};
pub use scan::{Number, ScanError, Scanner};

/// The longest request URI accepted, in bytes. Kong's default `large_client_header_buffers`
/// (8 KiB) rejects longer request lines before they reach a route, so a longer one is not a
/// real request.
pub const MAX_URI_LEN: usize = 8 * 1024;

/// The longest latency accepted: a day. Kong's own timeouts are minutes; anything longer is a
/// unit mistake or garbage, and would poison the histogram's `_sum` for good.
pub const MAX_LATENCY_MS: f64 = 86_400_000.0;

/// The largest response size accepted: 1 TB.
pub const MAX_RESPONSE_BYTES: f64 = 1e12;

/// Earliest and latest event times accepted: 2000-01-01 and 2200-01-01 (milliseconds). Outside
/// this, `started_at` is a unit mistake or garbage.
pub const MIN_STARTED_AT_MS: i64 = 946_684_800_000;
/// See [`MIN_STARTED_AT_MS`].
pub const MAX_STARTED_AT_MS: i64 = 7_258_118_400_000;

/// One proxied request as Kong logged it, borrowing from the input where it can.
#[derive(Debug, Clone, PartialEq)]
pub struct KongEvent<'a> {
    /// Request start, epoch milliseconds: the event time.
    pub started_at: i64,
    /// HTTP method as sent.
    pub method: Cow<'a, str>,
    /// Request URI as sent, query string included.
    pub uri: Cow<'a, str>,
    /// Status sent to the client.
    pub status: u16,
    /// `latencies.request`: total time in Kong, milliseconds.
    pub latency_request_ms: f64,
    /// `latencies.proxy`: upstream time, milliseconds; `None` when no upstream answered (-1).
    pub latency_proxy_ms: Option<f64>,
    /// `latencies.kong`: time in Kong's plugins, milliseconds.
    pub latency_kong_ms: Option<f64>,
    /// `service.name`, if the request matched a service.
    pub service: Option<Cow<'a, str>>,
    /// `route.name`, if the request matched a route.
    pub route: Option<Cow<'a, str>>,
    /// `route.paths` as raw JSON (an array of strings), empty when absent.
    pub route_paths: &'a [u8],
    /// `consumer.username`, or `consumer.id` when there is no username.
    pub consumer: Option<Cow<'a, str>>,
    /// `request.id`.
    pub request_id: Option<Cow<'a, str>>,
    /// `client_ip`.
    pub client_ip: Option<Cow<'a, str>>,
    /// `response.size` in bytes.
    pub response_size: u64,
}

impl<'a> KongEvent<'a> {
    /// The route's path prefixes (`route.paths`), skipping regex paths and malformed entries.
    pub fn route_prefixes(&self) -> impl Iterator<Item = Cow<'a, str>> + 'a {
        let raw = self.route_paths;
        let mut s = Scanner::new(raw);
        let mut ok = !raw.is_empty() && s.begin_array().is_ok();
        let mut first = true;
        std::iter::from_fn(move || {
            while ok {
                match s.next_element(&mut first) {
                    Ok(true) => match s.string() {
                        Ok(p) if !p.starts_with('~') => return Some(p),
                        Ok(_) => {}
                        Err(_) => ok = false,
                    },
                    _ => ok = false,
                }
            }
            None
        })
    }
}

/// Why an input was rejected. The names are the `reason` label of
/// `vigil_collector_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reject {
    /// Not JSON, or JSON cut short.
    InvalidJson,
    /// JSON, but not an object (or an array of objects).
    NotAnObject,
    /// An http-log batch with no events.
    EmptyBatch,
    /// `request.method`, `request.uri`, `response.status`, `started_at` or `latencies.request`
    /// is missing.
    MissingField,
    /// `response.status` is not an integer from 100 to 599.
    BadStatus,
    /// `started_at` is not epoch milliseconds between 2000 and 2200.
    BadTimestamp,
    /// The request URI is longer than [`MAX_URI_LEN`].
    UriTooLong,
    /// A latency is negative (other than `latencies.proxy` = -1), not a number, or longer than
    /// [`MAX_LATENCY_MS`].
    BadLatency,
    /// `response.size` is larger than [`MAX_RESPONSE_BYTES`].
    BadSize,
    /// The event is more than the allowed lateness behind the windows already written (and, from
    /// Kafka, behind its own partition's newest event).
    Late,
    /// The event starts further in the future than clocks can plausibly disagree.
    Future,
}

impl Reject {
    /// Every reason, for exporting zero-valued counters.
    pub const ALL: [Reject; 11] = [
        Reject::InvalidJson,
        Reject::NotAnObject,
        Reject::EmptyBatch,
        Reject::MissingField,
        Reject::BadStatus,
        Reject::BadTimestamp,
        Reject::UriTooLong,
        Reject::BadLatency,
        Reject::BadSize,
        Reject::Late,
        Reject::Future,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::InvalidJson => "invalid_json",
            Reject::NotAnObject => "not_an_object",
            Reject::EmptyBatch => "empty_batch",
            Reject::MissingField => "missing_field",
            Reject::BadStatus => "bad_status",
            Reject::BadTimestamp => "bad_timestamp",
            Reject::UriTooLong => "uri_too_long",
            Reject::BadLatency => "bad_latency",
            Reject::BadSize => "bad_size",
            Reject::Late => "late",
            Reject::Future => "future",
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts of rejected inputs by reason.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RejectCounts([u64; Reject::ALL.len()]);

impl RejectCounts {
    /// Counts one rejection.
    pub fn add(&mut self, r: Reject) {
        self.0[r as usize] += 1;
    }

    /// Counts `n` rejections.
    pub fn add_n(&mut self, r: Reject, n: u64) {
        self.0[r as usize] += n;
    }

    /// The count for one reason.
    pub fn get(&self, r: Reject) -> u64 {
        self.0[r as usize]
    }

    /// All rejections.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &RejectCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// Non-zero counts by reason.
    pub fn iter(&self) -> impl Iterator<Item = (Reject, u64)> + '_ {
        Reject::ALL.iter().map(|r| (*r, self.get(*r))).filter(|(_, n)| *n > 0)
    }
}
