//! A partition's read position as stored in the store's marks (`kafka/<topic>/<partition>`,
//! specified in `tsdb/docs/format/collector-checkpoint.md`).

use vigil_tsdb::Timestamp;
use vigil_tsdb::encoding::{Decoder, put_uvarint, put_varint};

const VERSION: u64 = 1;

/// The mark key of a partition.
pub fn mark_key(topic: &str, partition: i32) -> String {
    format!("kafka/{topic}/{partition}")
}

/// The mark key of the offsets this store last committed to Kafka for a partition.
pub fn committed_key(topic: &str, partition: i32) -> String {
    format!("kafka/{topic}/{partition}/committed")
}

/// The last two offsets this store committed to Kafka for a partition (the newer may not have
/// reached the broker). A group offset equal to either is this store's own, which brokers that
/// drop commit metadata cannot otherwise tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The newest offset committed (or being committed).
    pub last: i64,
    /// The one before it.
    pub previous: i64,
}

impl Committed {
    /// As bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16);
        put_uvarint(&mut b, VERSION);
        put_varint(&mut b, self.last);
        put_varint(&mut b, self.previous);
        b
    }

    /// From bytes; `None` if they are not of a known version.
    pub fn decode(bytes: &[u8]) -> Option<Committed> {
        let mut d = Decoder::new(bytes);
        if d.uvarint().ok()? != VERSION {
            return None;
        }
        let last = d.varint().ok()?;
        let previous = d.varint().ok()?;
        d.is_empty().then_some(Committed { last, previous })
    }

    /// Whether `offset` is one of these.
    pub fn contains(&self, offset: i64) -> bool {
        offset == self.last || offset == self.previous
    }
}

/// Where a partition has been read to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The first offset not yet read.
    pub next: i64,
    /// The newest event time seen on the partition.
    pub max_t: Option<Timestamp>,
}

impl Position {
    /// As bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(24);
        put_uvarint(&mut b, VERSION);
        put_varint(&mut b, self.next);
        match self.max_t {
            Some(t) => {
                b.push(1);
                put_varint(&mut b, t);
            }
            None => b.push(0),
        }
        b
    }

    /// From bytes; `None` if they are not a position of a known version.
    pub fn decode(bytes: &[u8]) -> Option<Position> {
        let mut d = Decoder::new(bytes);
        if d.uvarint().ok()? != VERSION {
            return None;
        }
        let next = d.varint().ok()?;
        let max_t = match d.bytes(1).ok()?[0] {
            0 => None,
            1 => Some(d.varint().ok()?),
            _ => return None,
        };
        d.is_empty().then_some(Position { next, max_t })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for p in [
            Position { next: 0, max_t: None },
            Position {
                next: 1 << 40,
                max_t: Some(1_795_150_800_000),
            },
        ] {
            assert_eq!(Position::decode(&p.encode()), Some(p));
        }
        assert_eq!(Position::decode(b""), None);
        let c = Committed { last: 9, previous: -1 };
        assert_eq!(Committed::decode(&c.encode()), Some(c));
        assert_eq!(committed_key("kong-logs", 3), "kafka/kong-logs/3/committed");
        assert_eq!(Position::decode(&[2, 0, 0]), None);
        assert_eq!(mark_key("kong-logs", 3), "kafka/kong-logs/3");
    }
}
