//! The integer chunk: for runs of samples whose values are all whole numbers, as vigil's
//! counters (requests, histogram buckets, bytes) are.
//!
//! Timestamps are encoded exactly as in the XOR chunk. Values are integers, so they can be
//! delta-of-delta encoded like timestamps: a counter that grows at a steady rate costs one bit
//! per sample, one whose increments wobble by a few a handful. The XOR scheme needs a new
//! window for most increments of an integer counter (the changed mantissa bits move), about
//! 10 to 20 bits. Blocks use this encoding for a chunk when every value qualifies
//! ([`encode`] says) and it comes out smaller. Layout: `tsdb/docs/format/chunks.md`.

use super::bstream::{BitReader, BitWriter};
use super::xor::{read_dod_field, read_uvarint_bits, write_dod_field, write_uvarint_bits, write_varint_bits};

/// Value delta-of-delta buckets: (prefix, prefix width, payload width). Counters that move by
/// up to ±8 more or less than last time take 6 bits; ±512 13; ±2^19 24; the rest 68.
const VALUE_BUCKETS: [(u64, u8, u8); 3] = [(0b10, 2, 4), (0b110, 3, 10), (0b1110, 4, 20)];

/// Values with a magnitude up to 2^53 are exact integers in an `f64`.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// The value as an integer, if it is one that converts back to the same bits.
pub(super) fn as_int(v: f64) -> Option<i64> {
    let exact = v.fract() == 0.0 && v.abs() <= MAX_EXACT && !(v == 0.0 && v.is_sign_negative());
    exact.then_some(v as i64)
}

/// Encodes `samples` (timestamps not decreasing, at most `u16::MAX`) as an integer chunk, or
/// `None` if a value is not a whole number (a fraction, NaN, a staleness marker, -0.0, or
/// beyond 2^53).
pub fn encode(samples: impl IntoIterator<Item = (i64, f64)>) -> Option<Vec<u8>> {
    let mut a = IntAppender::new();
    for (t, v) in samples {
        if a.len() == usize::from(u16::MAX) || !a.append(t, v) {
            return None;
        }
    }
    Some(a.w.into_bytes())
}

/// Appends samples to an integer chunk while their values are whole numbers: the head's open
/// chunk starts as one (see [`super::OpenChunk`]).
#[derive(Debug, Clone)]
pub struct IntAppender {
    w: BitWriter,
    n: u16,
    t: i64,
    t_delta: i64,
    v: i64,
    v_delta: i64,
}

impl Default for IntAppender {
    fn default() -> Self {
        Self::new()
    }
}

impl IntAppender {
    /// An empty chunk.
    pub fn new() -> Self {
        Self::with_buffer(Vec::new())
    }

    /// An empty chunk written into `buf` (cleared; its allocation is kept).
    pub fn with_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        buf.extend_from_slice(&[0; 2]);
        IntAppender {
            w: BitWriter::from_parts(buf, 0),
            n: 0,
            t: 0,
            t_delta: 0,
            v: 0,
            v_delta: 0,
        }
    }

    /// Samples in the chunk.
    pub fn len(&self) -> usize {
        usize::from(self.n)
    }

    /// Whether the chunk has no samples.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The encoded chunk, header included.
    pub fn bytes(&self) -> &[u8] {
        self.w.bytes()
    }

    /// The chunk's byte vector, to start another chunk in without allocating.
    pub fn into_buffer(self) -> Vec<u8> {
        self.w.into_bytes()
    }

    /// Appends a sample if its value is a whole number (timestamps must not decrease, and the
    /// chunk must hold fewer than `u16::MAX`); returns `false`, writing nothing, if it is not.
    pub fn append(&mut self, ts: i64, value: f64) -> bool {
        let Some(x) = as_int(value) else { return false };
        let w = &mut self.w;
        match self.n {
            0 => {
                write_varint_bits(w, ts);
                write_varint_bits(w, x);
            }
            1 => {
                self.t_delta = ts.wrapping_sub(self.t);
                write_uvarint_bits(w, self.t_delta as u64);
                self.v_delta = x.wrapping_sub(self.v);
                write_varint_bits(w, self.v_delta);
            }
            _ => {
                let d = ts.wrapping_sub(self.t);
                write_dod_field(w, d.wrapping_sub(self.t_delta), &super::xor::DOD_BUCKETS);
                self.t_delta = d;
                let vd = x.wrapping_sub(self.v);
                write_dod_field(w, vd.wrapping_sub(self.v_delta), &VALUE_BUCKETS);
                self.v_delta = vd;
            }
        }
        (self.t, self.v) = (ts, x);
        self.n += 1;
        w.bytes_mut()[..2].copy_from_slice(&self.n.to_be_bytes());
        true
    }
}

/// Calls `f` with every sample of an integer chunk until it returns `false`; returns whether
/// the chunk decoded cleanly (a stop by `f` counts as clean).
pub fn for_each_sample(chunk: &[u8], mut f: impl FnMut(i64, f64) -> bool) -> bool {
    let Some(h) = chunk.get(..2) else { return false };
    let total = u16::from_be_bytes([h[0], h[1]]);
    let mut r = BitReader::new(&chunk[2..]);
    let (mut t, mut t_delta, mut v, mut v_delta) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..total {
        match i {
            0 => {
                let (Ok(a), Ok(b)) = (read_uvarint_bits(&mut r), read_uvarint_bits(&mut r)) else {
                    return false;
                };
                (t, v) = (crate::encoding::unzigzag(a), crate::encoding::unzigzag(b));
            }
            1 => {
                let (Ok(a), Ok(b)) = (read_uvarint_bits(&mut r), read_uvarint_bits(&mut r)) else {
                    return false;
                };
                t_delta = a as i64;
                v_delta = crate::encoding::unzigzag(b);
                t = t.wrapping_add(t_delta);
                v = v.wrapping_add(v_delta);
            }
            _ => {
                // The common sample of a counter on a grid: a `0` timestamp delta-of-delta and
                // a value one that is `0` or `10` + 4 bits, read from the buffer in one look.
                let (buf, avail) = r.fill();
                let fast = if buf >> 63 == 0 && avail >= FAST_BITS {
                    if (buf >> 62) & 1 == 0 {
                        r.consume(2);
                        Some(0)
                    } else if (buf >> 61) & 1 == 0 {
                        r.consume(3 + 4);
                        Some(((buf << 3) as i64) >> 60)
                    } else {
                        None
                    }
                } else {
                    None
                };
                let dod_v = match fast {
                    Some(d) => d,
                    None => {
                        let Ok(dod_t) = read_dod_field(&mut r, &super::xor::DOD_BUCKETS) else {
                            return false;
                        };
                        t_delta = t_delta.wrapping_add(dod_t);
                        let Ok(d) = read_dod_field(&mut r, &VALUE_BUCKETS) else {
                            return false;
                        };
                        d
                    }
                };
                t = t.wrapping_add(t_delta);
                v_delta = v_delta.wrapping_add(dod_v);
                v = v.wrapping_add(v_delta);
            }
        }
        if !f(t, v as f64) {
            return true;
        }
    }
    true
}

/// Bits the fast path may read at once: `0` + `10` + 4 bits.
const FAST_BITS: u32 = 7;

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunk: &[u8]) -> Vec<(i64, f64)> {
        super::super::tests::decode_all(super::super::Encoding::Int, chunk)
    }

    #[test]
    fn counters_round_trip_small() {
        let samples: Vec<(i64, f64)> = (0..120)
            .map(|i| (1_795_305_600_000 + i * 10_000, (i * 37 + (i % 3) * 2) as f64))
            .collect();
        let chunk = encode(samples.iter().copied()).expect("integers");
        assert_eq!(decode(&chunk), samples);
        assert!(chunk.len() < 120, "{} bytes", chunk.len());
    }

    #[test]
    fn extremes_round_trip() {
        let samples = vec![
            (-5, 0.0),
            (0, -MAX_EXACT),
            (1, MAX_EXACT),
            (2, 0.0),
            (1_000_000_000_000, 1.0),
            (1_000_000_000_000, 7.0),
        ];
        let chunk = encode(samples.iter().copied()).expect("integers");
        assert_eq!(decode(&chunk), samples);
    }

    #[test]
    fn non_integers_are_refused() {
        for v in [
            0.5,
            f64::NAN,
            -0.0,
            f64::INFINITY,
            1e300,
            f64::from_bits(crate::STALE_NAN),
        ] {
            assert!(encode([(0, 1.0), (1, v)]).is_none(), "{v}");
        }
    }

    #[test]
    fn a_cut_chunk_is_reported() {
        let samples: Vec<(i64, f64)> = (0..50).map(|i| (i * 1000, (i * i) as f64)).collect();
        let chunk = encode(samples).expect("integers");
        assert!(!for_each_sample(&chunk[..chunk.len() - 4], |_, _| true));
    }
}
