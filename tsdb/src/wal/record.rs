//! WAL record payloads: what a commit writes, and how replay reads it back.
//! The byte layout is specified in `tsdb/docs/format/wal.md`.

use crate::encoding::{DecodeError, Decoder, put_bytes, put_uvarint, put_varint};
use crate::head::SeriesRef;
use crate::labels::{Label, Labels, MatchOp, Matcher};
use crate::storage::Timestamp;

/// Record type byte: new series.
pub const TYPE_SERIES: u8 = 1;
/// Record type byte: samples plus source marks.
pub const TYPE_SAMPLES: u8 = 2;
/// Record type byte: samples plus source marks, then each sample's start time.
pub const TYPE_SAMPLES_STARTS: u8 = 3;
/// Record type byte: a delete of series by matchers, and the blocks it must rewrite.
pub const TYPE_DELETE: u8 = 4;

/// A source position committed atomically with samples (for example a Kafka partition offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// What the position belongs to, e.g. `kafka/kong-logs/3`.
    pub key: String,
    /// The position, opaque to the store.
    pub value: Vec<u8>,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Series created by a commit, each with the reference its samples use.
    Series(Vec<(SeriesRef, Labels)>),
    /// Samples of a commit and the source marks committed with them.
    Samples {
        /// Marks, applied only together with the samples.
        marks: Vec<Mark>,
        /// (series, timestamp, value) triples.
        samples: Vec<(SeriesRef, Timestamp, f64)>,
        /// Each sample's start time (0: unknown); empty when no sample has one.
        starts: Vec<Timestamp>,
    },
    /// A delete: every sample logged before it of the series it matches is gone.
    Delete(Deletion),
}

/// A delete of whole series, logged before anything is removed so that a crash midway is
/// finished at the next open: the head drops the matching series where replay meets the
/// record, and the blocks it names are rewritten without them.
#[derive(Debug, Clone)]
pub struct Deletion {
    /// Matcher sets; a series matching every matcher of any set is deleted.
    pub sets: Vec<Vec<Matcher>>,
    /// Ids of the blocks (raw and rollups) that stood when the delete began: the only ones that
    /// can hold what it deletes.
    pub blocks: Vec<String>,
}

impl PartialEq for Deletion {
    fn eq(&self, other: &Self) -> bool {
        let key = |d: &Deletion| -> Vec<Vec<String>> {
            d.sets
                .iter()
                .map(|set| set.iter().map(Matcher::to_string).collect())
                .collect()
        };
        key(self) == key(other) && self.blocks == other.blocks
    }
}

/// Operator bytes of a logged matcher.
const OPS: [MatchOp; 4] = [MatchOp::Equal, MatchOp::NotEqual, MatchOp::Regex, MatchOp::NotRegex];

/// Encodes a delete record payload: the matcher sets, then the block ids.
pub fn encode_deletion(d: &Deletion, out: &mut Vec<u8>) {
    put_uvarint(out, d.sets.len() as u64);
    for set in &d.sets {
        put_uvarint(out, set.len() as u64);
        for m in set {
            let op = OPS
                .iter()
                .position(|&o| o == m.op())
                .unwrap_or_else(|| unreachable!("four operators"));
            out.push(op as u8);
            put_bytes(out, m.name.as_bytes());
            put_bytes(out, m.value.as_bytes());
        }
    }
    put_uvarint(out, d.blocks.len() as u64);
    for id in &d.blocks {
        put_bytes(out, id.as_bytes());
    }
}

fn decode_deletion(d: &mut Decoder<'_>) -> Result<Record, String> {
    let err = |e: DecodeError| e.to_string();
    let n_sets = d.uvarint().map_err(err)?;
    let mut sets = Vec::with_capacity(n_sets.min(64) as usize);
    for _ in 0..n_sets {
        let n = d.uvarint().map_err(err)?;
        let mut set = Vec::with_capacity(n.min(64) as usize);
        for _ in 0..n {
            let op = *OPS
                .get(usize::from(d.bytes(1).map_err(err)?[0]))
                .ok_or("unknown matcher operator")?;
            let name = d.len_str().map_err(err)?;
            let value = d.len_str().map_err(err)?;
            set.push(Matcher::new(op, name, value).map_err(|e| format!("matcher regex: {e}"))?);
        }
        sets.push(set);
    }
    let n_blocks = d.uvarint().map_err(err)?;
    let mut blocks = Vec::with_capacity(n_blocks.min(1024) as usize);
    for _ in 0..n_blocks {
        blocks.push(d.len_str().map_err(err)?.to_owned());
    }
    Ok(Record::Delete(Deletion { sets, blocks }))
}

/// Encodes a series record payload.
pub fn encode_series(series: &[(SeriesRef, &Labels)], out: &mut Vec<u8>) {
    for (r, labels) in series {
        put_uvarint(out, *r);
        put_uvarint(out, labels.len() as u64);
        for l in labels.iter() {
            put_bytes(out, l.name.as_bytes());
            put_bytes(out, l.value.as_bytes());
        }
    }
}

/// Value tag: eight raw bytes of an IEEE 754 double follow.
const VALUE_RAW: u8 = 0;
/// Value tag: a non-negative integer below 2^53 follows as a varint (counters are mostly these).
const VALUE_UINT: u8 = 1;
/// Value tag: a staleness marker, nothing follows.
const VALUE_STALE: u8 = 2;
/// Largest integer a double holds exactly.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Encodes a samples record payload. Timestamps are written relative to the first sample's and
/// references relative to the previous sample's, because a commit usually carries one window:
/// one timestamp and ascending references, which then cost a byte or two each. Values that are
/// small whole numbers (counters) are written as varints.
pub fn encode_samples(marks: &[Mark], samples: &[(SeriesRef, Timestamp, f64)], out: &mut Vec<u8>) {
    put_uvarint(out, marks.len() as u64);
    for m in marks {
        put_bytes(out, m.key.as_bytes());
        put_bytes(out, &m.value);
    }
    put_uvarint(out, samples.len() as u64);
    let base_t = samples.first().map_or(0, |s| s.1);
    put_varint(out, base_t);
    let mut prev_ref: i64 = 0;
    for &(r, t, v) in samples {
        put_varint(out, (r as i64).wrapping_sub(prev_ref));
        prev_ref = r as i64;
        put_varint(out, t.wrapping_sub(base_t));
        put_value(out, v);
    }
}

/// Encodes a samples record payload whose samples have start times (`starts`, one per
/// sample, 0 for unknown): the payload of [`encode_samples`], then each start time relative to
/// its sample's timestamp. Written as [`TYPE_SAMPLES_STARTS`].
pub fn encode_samples_with_starts(
    marks: &[Mark],
    samples: &[(SeriesRef, Timestamp, f64)],
    starts: &[Timestamp],
    out: &mut Vec<u8>,
) {
    debug_assert_eq!(samples.len(), starts.len());
    encode_samples(marks, samples, out);
    for (&(_, t, _), &st) in samples.iter().zip(starts) {
        crate::starts::put_start(out, t, st);
    }
}

fn put_value(out: &mut Vec<u8>, v: f64) {
    if v.to_bits() == crate::storage::STALE_NAN {
        out.push(VALUE_STALE);
    } else if (0.0..MAX_EXACT_INT).contains(&v) && v.fract() == 0.0 && v.to_bits() != (-0.0f64).to_bits() {
        out.push(VALUE_UINT);
        put_uvarint(out, v as u64);
    } else {
        out.push(VALUE_RAW);
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
}

fn get_value(d: &mut Decoder<'_>) -> Result<f64, DecodeError> {
    match d.bytes(1)?[0] {
        VALUE_STALE => Ok(f64::from_bits(crate::storage::STALE_NAN)),
        VALUE_UINT => Ok(d.uvarint()? as f64),
        VALUE_RAW => Ok(f64::from_bits(d.u64_le()?)),
        _ => Err(DecodeError::BadTag),
    }
}

/// Decodes a record payload of the given type.
pub fn decode(typ: u8, payload: &[u8]) -> Result<Record, String> {
    let mut d = Decoder::new(payload);
    let rec = match typ {
        TYPE_SERIES => decode_series(&mut d).map_err(|e| format!("series record: {e}"))?,
        TYPE_SAMPLES => decode_samples(&mut d, false).map_err(|e| format!("samples record: {e}"))?,
        TYPE_SAMPLES_STARTS => decode_samples(&mut d, true).map_err(|e| format!("samples record: {e}"))?,
        TYPE_DELETE => decode_deletion(&mut d).map_err(|e| format!("delete record: {e}"))?,
        other => return Err(format!("unknown record type {other}")),
    };
    if !d.is_empty() {
        return Err(format!("{} trailing bytes after record", payload.len() - d.position()));
    }
    Ok(rec)
}

fn decode_series(d: &mut Decoder<'_>) -> Result<Record, String> {
    let mut out = Vec::new();
    while !d.is_empty() {
        let r = d.uvarint().map_err(|e| e.to_string())?;
        let n = d.uvarint().map_err(|e| e.to_string())?;
        let mut labels = Vec::with_capacity(n.min(64) as usize);
        for _ in 0..n {
            let name = d.len_str().map_err(|e| e.to_string())?.into();
            let value = d.len_str().map_err(|e| e.to_string())?.into();
            labels.push(Label { name, value });
        }
        labels.sort();
        if labels.windows(2).any(|w| w[0].name == w[1].name) {
            return Err(format!("series {r} repeats a label name"));
        }
        out.push((r, Labels::from_sorted(labels)));
    }
    Ok(Record::Series(out))
}

fn decode_samples(d: &mut Decoder<'_>, with_starts: bool) -> Result<Record, DecodeError> {
    let n_marks = d.uvarint()?;
    let mut marks = Vec::with_capacity(n_marks.min(1024) as usize);
    for _ in 0..n_marks {
        let key = d.len_str()?.to_owned();
        let value = d.len_bytes()?.to_vec();
        marks.push(Mark { key, value });
    }
    let n = d.uvarint()?;
    let base_t = d.varint()?;
    // `n` comes from the input: reserve at most a million up front and let a larger batch grow.
    let mut samples = Vec::with_capacity((n as usize).min(1 << 20));
    let mut prev_ref: i64 = 0;
    for _ in 0..n {
        let r = prev_ref.wrapping_add(d.varint()?);
        prev_ref = r;
        let t = base_t.wrapping_add(d.varint()?);
        let v = get_value(d)?;
        samples.push((r as SeriesRef, t, v));
    }
    let mut starts = Vec::new();
    if with_starts {
        starts.reserve(samples.len());
        for &(_, t, _) in &samples {
            starts.push(crate::starts::get_start(d, t)?);
        }
    }
    Ok(Record::Samples { marks, samples, starts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_round_trip() {
        let a = Labels::from_pairs([("__name__", "x"), ("svc", "orders")]);
        let b = Labels::from_pairs([("__name__", "y")]);
        let mut buf = Vec::new();
        encode_series(&[(1, &a), (7, &b)], &mut buf);
        assert_eq!(decode(TYPE_SERIES, &buf), Ok(Record::Series(vec![(1, a), (7, b)])));
    }

    #[test]
    fn deletion_round_trip() {
        let d = Deletion {
            sets: vec![
                vec![
                    Matcher::equal("__name__", "x"),
                    Matcher::new(MatchOp::Regex, "route", "/a|/b").expect("regex"),
                ],
                vec![
                    Matcher::not_equal("svc", ""),
                    Matcher::new(MatchOp::NotRegex, "le", "\\+Inf").expect("regex"),
                ],
            ],
            blocks: vec!["01JD0000000000000000000000".into(), "01JD0000000000000000000001".into()],
        };
        let mut buf = Vec::new();
        encode_deletion(&d, &mut buf);
        let Ok(Record::Delete(got)) = decode(TYPE_DELETE, &buf) else {
            panic!("decode failed")
        };
        assert_eq!(got, d);
        assert!(got.sets[0][1].matches("/b") && !got.sets[0][1].matches("/c"));
        // An unknown operator byte and a bad regex are errors, not panics.
        let mut bad = buf.clone();
        bad[2] = 9;
        assert!(decode(TYPE_DELETE, &bad).expect_err("bad op").contains("operator"));
        let mut re = Vec::new();
        let broken = Deletion {
            sets: vec![vec![Matcher::equal("a", "(")]],
            blocks: vec![],
        };
        encode_deletion(&broken, &mut re);
        re[2] = 2; // `=` becomes `=~` over "(".
        assert!(decode(TYPE_DELETE, &re).expect_err("bad regex").contains("regex"));
    }

    #[test]
    fn samples_round_trip() {
        let marks = vec![Mark {
            key: "kafka/t/0".into(),
            value: 42u64.to_le_bytes().to_vec(),
        }];
        let stale = f64::from_bits(crate::storage::STALE_NAN);
        let samples = vec![
            (5, 1000, 1.5),
            (3, 1000, f64::NAN),
            (9, 990, -2.0),
            (10, 990, 42.0),
            (11, 990, -0.0),
            (12, 990, stale),
        ];
        let mut buf = Vec::new();
        encode_samples(&marks, &samples, &mut buf);
        let Ok(Record::Samples {
            marks: m,
            samples: s,
            starts,
        }) = decode(TYPE_SAMPLES, &buf)
        else {
            panic!("decode failed")
        };
        assert_eq!(m, marks);
        assert!(starts.is_empty());
        assert_eq!(s.len(), samples.len());
        for (got, want) in s.iter().zip(&samples) {
            assert_eq!((got.0, got.1, got.2.to_bits()), (want.0, want.1, want.2.to_bits()));
        }
        // A counter sample costs a few bytes: ref delta, time delta, tag, varint.
        let mut small = Vec::new();
        encode_samples(&[], &[(1, 10_000, 1.0), (2, 10_000, 250.0)], &mut small);
        assert!(small.len() <= 14, "{}", small.len());
    }

    #[test]
    fn samples_with_starts_round_trip() {
        let samples = vec![(1, 60_000, 5.0), (2, 60_000, 1.0), (1, 120_000, 7.0)];
        let starts = vec![30_000, 0, 120_001];
        let mut buf = Vec::new();
        encode_samples_with_starts(&[], &samples, &starts, &mut buf);
        let Ok(Record::Samples {
            samples: s, starts: st, ..
        }) = decode(TYPE_SAMPLES_STARTS, &buf)
        else {
            panic!("decode failed")
        };
        assert_eq!((s, st), (samples, starts));
        buf.pop();
        assert!(decode(TYPE_SAMPLES_STARTS, &buf).is_err());
    }

    #[test]
    fn truncated_payload_is_an_error() {
        let mut buf = Vec::new();
        encode_samples(&[], &[(1, 1, 1.0)], &mut buf);
        buf.pop();
        assert!(decode(TYPE_SAMPLES, &buf).is_err());
        assert!(decode(99, &buf).is_err());
    }
}
