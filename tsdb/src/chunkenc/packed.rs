//! The packed chunk: whole-number samples as bit-packed groups of deltas, for blocks.
//!
//! The delta-of-delta codecs ([`super::xor`], [`super::int`]) spend a prefix per sample on which
//! bucket follows, and a decoder has to read each sample's prefix before it knows where the next
//! one starts: one serial chain of branches per sample. Here samples come in groups of
//! [`GROUP`]. A group writes the smallest timestamp delta and the smallest value delta of its
//! samples once (frame of reference), then every sample's distance from them in one width per
//! group, the width of the largest. Every field of a group is at a known bit position, so a
//! decoder unpacks them without branches, each with one unaligned load, independently of the
//! others; and a counter whose increments vary between 0 and 7 costs 3 bits a value, where the
//! delta-of-delta of the same increments costs 6 (`'10'` + 4 bits).
//!
//! Values are whole numbers, or decimals with up to nine places stored as whole numbers and a
//! power of ten: latency sums in seconds made of whole milliseconds (`12.345`) are the
//! integers `12345` with a scale of 3, where XOR spends 40 to 50 bits on each.
//!
//! Layout (`tsdb/docs/format/chunks.md`): a big-endian `u16` sample count, then a bit stream,
//! most significant bit first: the scale, the first sample, then a group per [`GROUP`] later
//! samples.

use super::bstream::BitWriter;
use super::int::as_int;
use crate::encoding::{unzigzag, zigzag};

/// Samples per group. 32 makes the group header (at least 24 bits) under one bit per sample
/// while one outlier widens the fields of at most 31 others; a head chunk's 119 deltas are
/// three full groups and one of 23.
pub const GROUP: usize = 32;

/// Bits of a field width. Widths run 0..=63: a group whose deltas span 2^64 or more (only
/// timestamps or values at the ends of the `i64` range can) is not packed.
const WIDTH_BITS: u8 = 6;

/// The powers of ten values may be scaled by: 10^0 (whole numbers) to 10^9 (nanoseconds in
/// seconds), indexed by the 4-bit scale.
const POW10: [f64; 10] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// Bits of the scale field.
const SCALE_BITS: u8 = 4;

/// Encodes `samples` (at most `u16::MAX`) as a packed chunk, or `None` if a value is not a
/// whole number or a decimal of up to nine places (see [`scaled`]), or the deltas are too wide
/// to pack.
pub fn encode(samples: &[(i64, f64)]) -> Option<Vec<u8>> {
    let n = u16::try_from(samples.len()).ok()?;
    let mut w = BitWriter::from_parts(n.to_be_bytes().to_vec(), 0);
    let Some(&(t0, _)) = samples.first() else {
        return Some(w.bytes().to_vec());
    };
    let (scale, values) = scaled(samples)?;
    w.write_bits(u64::from(scale), SCALE_BITS);
    write_length_prefixed(&mut w, zigzag(t0))?;
    write_length_prefixed(&mut w, zigzag(values[0]))?;
    let (mut base_t, mut base_v) = (0i64, 0i64);
    let mut start = 1;
    while start < samples.len() {
        let end = (start + GROUP).min(samples.len());
        let dt: Vec<i64> = (start..end)
            .map(|i| samples[i].0.wrapping_sub(samples[i - 1].0))
            .collect();
        let dv: Vec<i64> = (start..end).map(|i| values[i].wrapping_sub(values[i - 1])).collect();
        let (min_t, width_t) = frame(&dt)?;
        let (min_v, width_v) = frame(&dv)?;
        w.write_bits(u64::from(width_t), WIDTH_BITS);
        w.write_bits(u64::from(width_v), WIDTH_BITS);
        write_length_prefixed(&mut w, zigzag(min_t.wrapping_sub(base_t)))?;
        write_length_prefixed(&mut w, zigzag(min_v.wrapping_sub(base_v)))?;
        for (deltas, min, width) in [(&dt, min_t, width_t), (&dv, min_v, width_v)] {
            for &d in deltas {
                w.write_bits(d.wrapping_sub(min) as u64, width);
            }
        }
        (base_t, base_v) = (min_t, min_v);
        start = end;
    }
    Some(w.bytes().to_vec())
}

/// The fewest decimal places `d` for which every value is an integer `k` with `k / 10^d` (one
/// IEEE division, as the decoder does it) giving back the value's exact bits, and the `k`s.
fn scaled(samples: &[(i64, f64)]) -> Option<(u8, Vec<i64>)> {
    if let Some(ints) = samples.iter().map(|&(_, v)| as_int(v)).collect::<Option<Vec<_>>>() {
        return Some((0, ints));
    }
    if samples.iter().any(|&(_, v)| !v.is_finite()) {
        return None;
    }
    (1..POW10.len()).find_map(|d| {
        let p = POW10[d];
        let ks = samples.iter().map(|&(_, v)| {
            let k = as_int((v * p).round())?;
            ((k as f64 / p).to_bits() == v.to_bits()).then_some(k)
        });
        Some((d as u8, ks.collect::<Option<Vec<_>>>()?))
    })
}

/// The smallest of `deltas` and the bits their distances from it need, if under 64.
fn frame(deltas: &[i64]) -> Option<(i64, u8)> {
    let min = *deltas.iter().min()?;
    let span = deltas.iter().map(|&d| d.wrapping_sub(min) as u64).max()?;
    let width = (u64::BITS - span.leading_zeros()) as u8;
    (width < 64).then_some((min, width))
}

/// A number as its bit length (6 bits) and that many bits: 6 bits for 0, 20 for ±2^13.
fn write_length_prefixed(w: &mut BitWriter, v: u64) -> Option<()> {
    let len = (u64::BITS - v.leading_zeros()) as u8;
    if len >= 64 {
        return None;
    }
    w.write_bits(u64::from(len), WIDTH_BITS);
    w.write_bits(v, len);
    Some(())
}

/// Zero bytes after a copy of the stream, so that every field is one 8-byte load (and a field
/// of over 57 bits one more byte) without a check for the stream's end.
const PAD: usize = 16;

/// Streams up to this many bytes are copied to the stack to be padded; a chunk of 120 samples
/// takes 70 to 200 bytes.
const STACK_BYTES: usize = 512;

/// Calls `f` with every sample of a packed chunk until it returns `false`; returns whether the
/// chunk decoded cleanly (a stop by `f` counts as clean).
pub fn for_each_sample(chunk: &[u8], f: impl FnMut(i64, f64) -> bool) -> bool {
    let Some((h, body)) = chunk.split_first_chunk::<2>() else {
        return false;
    };
    let total = usize::from(u16::from_be_bytes(*h));
    if total == 0 {
        return true;
    }
    let mut stack = [0u8; STACK_BYTES];
    let heap: Vec<u8>;
    let padded: &[u8] = if body.len() + PAD <= STACK_BYTES {
        stack[..body.len()].copy_from_slice(body);
        &stack[..body.len() + PAD]
    } else {
        heap = [body, &[0; PAD]].concat();
        &heap
    };
    let mut r = Fields {
        bytes: padded,
        end: body.len() * 8,
        pos: 0,
    };
    match r.take(SCALE_BITS).map(|d| d as usize) {
        Some(0) => decode(r, total, |k| k as f64, f),
        Some(d) if d < POW10.len() => decode(r, total, |k| k as f64 / POW10[d], f),
        _ => false,
    }
}

/// Decodes the samples after the scale, the values made floats by `value`.
#[inline(always)]
fn decode(mut r: Fields<'_>, total: usize, value: impl Fn(i64) -> f64, mut f: impl FnMut(i64, f64) -> bool) -> bool {
    let (Some(t0), Some(v0)) = (r.length_prefixed(), r.length_prefixed()) else {
        return false;
    };
    let (mut t, mut v) = (unzigzag(t0), unzigzag(v0));
    if !f(t, value(v)) {
        return true;
    }
    let (mut base_t, mut base_v) = (0i64, 0i64);
    let mut left = total - 1;
    while left > 0 {
        let g = left.min(GROUP);
        let (Some(width_t), Some(width_v)) = (r.take(WIDTH_BITS), r.take(WIDTH_BITS)) else {
            return false;
        };
        let (Some(min_t), Some(min_v)) = (r.length_prefixed(), r.length_prefixed()) else {
            return false;
        };
        base_t = base_t.wrapping_add(unzigzag(min_t));
        base_v = base_v.wrapping_add(unzigzag(min_v));
        let (width_t, width_v) = (width_t as usize, width_v as usize);
        let (at_t, at_v) = (r.pos, r.pos + g * width_t);
        r.pos = at_v + g * width_v;
        if r.pos > r.end {
            return false;
        }
        let field = |at: usize, width: usize| r.field(at, width);
        if width_t == 0 {
            // Timestamps on a grid: every delta is the base.
            for i in 0..g {
                t = t.wrapping_add(base_t);
                v = v.wrapping_add(base_v.wrapping_add(field(at_v + i * width_v, width_v) as i64));
                if !f(t, value(v)) {
                    return true;
                }
            }
        } else {
            for i in 0..g {
                t = t.wrapping_add(base_t.wrapping_add(field(at_t + i * width_t, width_t) as i64));
                v = v.wrapping_add(base_v.wrapping_add(field(at_v + i * width_v, width_v) as i64));
                if !f(t, value(v)) {
                    return true;
                }
            }
        }
        left -= g;
    }
    true
}

/// A read position in a packed chunk's bit stream, copied with [`PAD`] zero bytes after it.
struct Fields<'a> {
    bytes: &'a [u8],
    /// Where the stream ends, in bits.
    end: usize,
    /// The next bit, counted from the first byte's most significant bit.
    pos: usize,
}

impl Fields<'_> {
    /// The `width` (0..=63) bits at `pos`, which the caller has checked are in the stream.
    #[inline(always)]
    fn field(&self, pos: usize, width: usize) -> u64 {
        let (byte, shift) = (pos / 8, pos % 8);
        // In bounds for any `pos` up to the stream's end: the copy has `PAD` bytes after it.
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.bytes[byte..byte + 8]);
        // Up to 7 bits of the word are before `pos`; a field wider than the 57 bits left needs
        // the next byte too.
        let mut bits = u64::from_be_bytes(word) << shift;
        if width + shift > 64 {
            bits |= u64::from(self.bytes[byte + 8]) >> (8 - shift);
        }
        // Two shifts so that a width of 0 gives 0 (a shift by 64 would not).
        (bits >> 1) >> (63 - width)
    }

    /// Reads the next `width` bits, or `None` past the end.
    fn take(&mut self, width: u8) -> Option<u64> {
        let width = usize::from(width);
        if self.pos + width > self.end {
            return None;
        }
        let v = self.field(self.pos, width);
        self.pos += width;
        Some(v)
    }

    /// Reads a number written by [`write_length_prefixed`].
    fn length_prefixed(&mut self) -> Option<u64> {
        let len = self.take(WIDTH_BITS)? as u8;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunk: &[u8]) -> Vec<(i64, f64)> {
        super::super::tests::decode_all(super::super::Encoding::Packed, chunk)
    }

    #[test]
    fn counters_on_a_grid_take_their_increments_width() {
        // Increments 0..=7 on an exact 10 s grid: 3 bits a value, no bits a timestamp.
        let samples: Vec<(i64, f64)> = (0..120)
            .scan(0i64, |v, i| {
                *v += (i * 7 + i / 3) % 8;
                Some((1_795_305_600_000 + i * 10_000, *v as f64))
            })
            .collect();
        let chunk = encode(&samples).expect("integers");
        assert_eq!(decode(&chunk), samples);
        assert!(chunk.len() <= 2 + 7 + 119 * 3 / 8 + 4 * 5, "{} bytes", chunk.len());
    }

    #[test]
    fn extremes_round_trip() {
        let samples = vec![
            (-5, 0.0),
            (0, -9_007_199_254_740_992.0),
            (1, 9_007_199_254_740_992.0),
            (2, 0.0),
            (1_000_000_000_000, 1.0),
            (1_000_000_000_000, 7.0),
            (999_999_999_000, -3.0),
        ];
        let chunk = encode(&samples).expect("integers");
        assert_eq!(decode(&chunk), samples);
        assert_eq!(decode(&encode(&[]).expect("empty")), vec![]);
        assert_eq!(decode(&encode(&samples[..1]).expect("one")), samples[..1]);
    }

    #[test]
    fn too_wide_or_not_decimal_is_refused() {
        assert!(encode(&[(i64::MIN, 1.0), (i64::MAX, 2.0)]).is_none());
        assert!(encode(&[(0, 1.0), (1, 1.0 / 3.0)]).is_none());
        assert!(encode(&[(0, 1.0), (1, 1e-12)]).is_none());
        assert!(encode(&[(0, f64::NAN)]).is_none());
        assert!(encode(&[(0, 1.5), (1, -0.0)]).is_none());
        assert!(encode(&[(0, 1.5), (1, f64::INFINITY)]).is_none());
    }

    #[test]
    fn decimals_take_the_fewest_places() {
        // Latency sums: whole milliseconds in seconds.
        let mut ms = 0i64;
        let samples: Vec<(i64, f64)> = (0..120)
            .map(|i| {
                ms += 37 * i % 501;
                (i * 10_000, ms as f64 / 1000.0)
            })
            .collect();
        let chunk = encode(&samples).expect("decimals");
        assert_eq!(decode(&chunk), samples);
        assert_eq!(scaled(&samples).map(|s| s.0), Some(3));
        assert_eq!(scaled(&[(0, 0.5), (1, 2.25)]).map(|s| s.0), Some(2));
        // 0.30000000000000004 needs seventeen places.
        assert!(scaled(&[(0, 0.1 + 0.2)]).is_none());
        assert!(chunk.len() < 120 * 2, "{} bytes", chunk.len());
    }

    #[test]
    fn a_cut_chunk_is_reported_and_stops_cleanly() {
        let samples: Vec<(i64, f64)> = (0..100).map(|i| (i * 1000 + i % 7, (i * i) as f64)).collect();
        let chunk = encode(&samples).expect("integers");
        for cut in 1..chunk.len() {
            let mut n = 0;
            let clean = for_each_sample(&chunk[..cut], |_, _| {
                n += 1;
                true
            });
            assert!(!clean || n == samples.len(), "cut at {cut}");
        }
        let mut n = 0;
        assert!(for_each_sample(&chunk, |_, _| {
            n += 1;
            n < 10
        }));
        assert_eq!(n, 10);
    }
}
