//! The XOR chunk: Gorilla-style compression of (timestamp, float) samples.
//!
//! Timestamps are stored as delta-of-delta, values as the XOR with the previous value (Pelkonen et
//! al., "Gorilla: A Fast, Scalable, In-Memory Time Series Database", VLDB 2015). vigil's series
//! arrive on a fixed window grid and counters often repeat, so most samples cost a few bits. The
//! byte layout is specified in `tsdb/docs/format/chunks.md`.

use super::bstream::{BitReader, BitWriter, EndOfStream};

/// Bits a refilled reader holds (see `bstream`): enough for a `0` delta-of-delta, a `10` value
/// control and up to 54 bits of a value in one look.
const REFILLED_BITS: u32 = 57;

/// Size of the chunk header: the sample count as a big-endian `u16`.
const HEADER_LEN: usize = 2;

/// Delta-of-delta buckets: (prefix, prefix width, payload width). A regular grid gives a dod of
/// 0 (one bit). 14 bits hold +-8 s of jitter at millisecond resolution, 17 bits +-65 s, 20 bits
/// +-524 s; anything larger is written in full.
pub(super) const DOD_BUCKETS: [(u64, u8, u8); 3] = [(0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)];
/// Prefix of a full 64-bit delta-of-delta.
const DOD_FULL_PREFIX: (u64, u8) = (0b1111, 4);

/// Leading-zero counts are written in 5 bits, so they are capped at 31; the few extra
/// "significant" bits that costs are cheaper than a wider field on every sample.
const MAX_LEADING: u32 = 31;
/// Width of the leading-zero field.
const LEADING_BITS: u8 = 5;
/// Width of the significant-bit count: 6 bits hold 1..=63, and 64 is written as 0 (a count of 0
/// never occurs because an XOR of 0 is encoded as a single `0` bit).
const SIGBITS_BITS: u8 = 6;

/// Appends samples to an XOR chunk.
#[derive(Debug, Clone)]
pub struct XorAppender {
    w: BitWriter,
    num: u16,
    t: i64,
    t_delta: i64,
    v: f64,
    /// Leading and trailing zeros of the current XOR window; `leading == u8::MAX` until the first
    /// window exists.
    leading: u8,
    trailing: u8,
}

impl Default for XorAppender {
    fn default() -> Self {
        Self::new()
    }
}

impl XorAppender {
    /// An empty chunk.
    pub fn new() -> Self {
        Self::with_buffer(Vec::new())
    }

    /// An empty chunk written into `buf` (cleared; its allocation is kept).
    pub fn with_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        buf.resize(HEADER_LEN, 0);
        XorAppender {
            w: BitWriter::from_parts(buf, 0),
            num: 0,
            t: 0,
            t_delta: 0,
            v: 0.0,
            leading: u8::MAX,
            trailing: 0,
        }
    }

    /// Samples in the chunk.
    pub fn len(&self) -> usize {
        usize::from(self.num)
    }

    /// The chunk's byte vector, to start another chunk in without allocating.
    pub fn into_buffer(self) -> Vec<u8> {
        self.w.into_bytes()
    }

    /// Whether the chunk has no samples.
    pub fn is_empty(&self) -> bool {
        self.num == 0
    }

    /// The encoded chunk, header included.
    pub fn bytes(&self) -> &[u8] {
        self.w.bytes()
    }

    /// Appends a sample. Timestamps must not decrease (the head checks order before it appends).
    pub fn append(&mut self, t: i64, v: f64) {
        match self.num {
            0 => {
                write_varint_bits(&mut self.w, t);
                self.w.write_bits(v.to_bits(), 64);
            }
            1 => {
                self.t_delta = t.wrapping_sub(self.t);
                write_uvarint_bits(&mut self.w, self.t_delta as u64);
                self.write_value(v);
            }
            _ => {
                let delta = t.wrapping_sub(self.t);
                let dod = delta.wrapping_sub(self.t_delta);
                self.write_dod(dod);
                self.t_delta = delta;
                self.write_value(v);
            }
        }
        self.t = t;
        self.v = v;
        self.num += 1;
        let header = self.num.to_be_bytes();
        self.w.bytes_mut()[..HEADER_LEN].copy_from_slice(&header);
    }

    fn write_dod(&mut self, dod: i64) {
        write_dod_field(&mut self.w, dod, &DOD_BUCKETS);
    }

    fn write_value(&mut self, v: f64) {
        let xor = v.to_bits() ^ self.v.to_bits();
        if xor == 0 {
            self.w.write_bit(false);
            return;
        }
        self.w.write_bit(true);
        let leading = xor.leading_zeros().min(MAX_LEADING) as u8;
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != u8::MAX && leading >= self.leading && trailing >= self.trailing {
            // The meaningful bits fit in the previous window: reuse it.
            self.w.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            self.w.write_bits(xor >> self.trailing, sig);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        self.w.write_bit(true);
        self.w.write_bits(u64::from(leading), LEADING_BITS);
        let sig = 64 - leading - trailing;
        // 64 significant bits are written as 0; see SIGBITS_BITS.
        self.w.write_bits(u64::from(sig % 64), SIGBITS_BITS);
        self.w.write_bits(xor >> trailing, sig);
    }
}

/// Writes a signed value that is usually 0 or small: `0` for 0, else the prefix of the first
/// of `buckets` whose payload width holds it and the value in that width, else `1111` and all
/// 64 bits.
pub(super) fn write_dod_field(w: &mut BitWriter, dod: i64, buckets: &[(u64, u8, u8); 3]) {
    if dod == 0 {
        w.write_bit(false);
        return;
    }
    for &(prefix, prefix_len, width) in buckets {
        if fits_signed(dod, width) {
            w.write_bits(prefix, prefix_len);
            w.write_bits(dod as u64, width);
            return;
        }
    }
    w.write_bits(DOD_FULL_PREFIX.0, DOD_FULL_PREFIX.1);
    w.write_bits(dod as u64, 64);
}

/// Reads a value written by [`write_dod_field`] with the same buckets.
#[inline(always)]
pub(super) fn read_dod_field(r: &mut BitReader<'_>, buckets: &[(u64, u8, u8); 3]) -> Result<i64, EndOfStream> {
    // The prefix is up to four 1 bits ended by a 0 (no 0 after four): peek all four at once.
    let prefix = r.peek(4) as u8;
    let ones = (prefix << 4).leading_ones() as u8;
    if ones == 0 {
        r.skip(1)?;
        return Ok(0);
    }
    if ones == 4 {
        r.skip(4)?;
        return Ok(r.read_bits(64)? as i64);
    }
    r.skip(ones + 1)?;
    let width = buckets[usize::from(ones) - 1].2;
    Ok(sign_extend(r.read_bits(width)?, width))
}

/// Whether `v` fits in a two's-complement field of `width` bits.
fn fits_signed(v: i64, width: u8) -> bool {
    let half = 1i64 << (width - 1);
    -half <= v && v < half
}

/// Sign-extends the low `width` bits of `bits`.
fn sign_extend(bits: u64, width: u8) -> i64 {
    let shift = 64 - u32::from(width);
    ((bits << shift) as i64) >> shift
}

pub(super) fn write_uvarint_bits(w: &mut BitWriter, mut v: u64) {
    while v >= 0x80 {
        w.write_byte((v as u8) | 0x80);
        v >>= 7;
    }
    w.write_byte(v as u8);
}

pub(super) fn write_varint_bits(w: &mut BitWriter, v: i64) {
    write_uvarint_bits(w, crate::encoding::zigzag(v));
}

pub(super) fn read_uvarint_bits(r: &mut BitReader<'_>) -> Result<u64, EndOfStream> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = r.read_byte()?;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(EndOfStream)
}

/// Iterates the samples of an encoded XOR chunk.
#[derive(Debug, Clone)]
pub struct XorIter<'a> {
    r: BitReader<'a>,
    total: u16,
    read: u16,
    t: i64,
    t_delta: i64,
    v: f64,
    leading: u8,
    trailing: u8,
    corrupt: bool,
}

impl<'a> XorIter<'a> {
    /// Iterates `chunk` (header included). A chunk too short for its header yields nothing and
    /// reports [`XorIter::is_corrupt`].
    pub fn new(chunk: &'a [u8]) -> Self {
        let (total, corrupt) = match chunk.get(..HEADER_LEN) {
            Some(h) => (u16::from_be_bytes([h[0], h[1]]), false),
            None => (0, true),
        };
        XorIter {
            r: BitReader::new(chunk.get(HEADER_LEN..).unwrap_or_default()),
            total,
            read: 0,
            t: 0,
            t_delta: 0,
            v: 0.0,
            leading: 0,
            trailing: 0,
            corrupt,
        }
    }

    /// Whether decoding stopped early because the chunk is malformed.
    pub fn is_corrupt(&self) -> bool {
        self.corrupt
    }

    #[inline(always)]
    fn step(&mut self) -> Result<(i64, f64), EndOfStream> {
        match self.read {
            0 => {
                self.t = crate::encoding::unzigzag(read_uvarint_bits(&mut self.r)?);
                self.v = f64::from_bits(self.r.read_bits(64)?);
            }
            1 => {
                self.t_delta = read_uvarint_bits(&mut self.r)? as i64;
                self.t = self.t.wrapping_add(self.t_delta);
                self.read_value()?;
            }
            _ => {
                let dod = self.read_dod()?;
                self.t_delta = self.t_delta.wrapping_add(dod);
                self.t = self.t.wrapping_add(self.t_delta);
                self.read_value()?;
            }
        }
        Ok((self.t, self.v))
    }

    #[inline(always)]
    fn read_dod(&mut self) -> Result<i64, EndOfStream> {
        read_dod_field(&mut self.r, &DOD_BUCKETS)
    }

    #[inline(always)]
    fn read_value(&mut self) -> Result<(), EndOfStream> {
        // `0`: unchanged; `10`: the previous window; `11`: a new window.
        let control = self.r.peek(2);
        if control & 0b10 == 0 {
            self.r.skip(1)?;
            return Ok(());
        }
        self.r.skip(2)?;
        if control == 0b11 {
            let header = self.r.read_bits(LEADING_BITS + SIGBITS_BITS)?;
            self.leading = (header >> SIGBITS_BITS) as u8;
            let mut sig = (header & ((1 << SIGBITS_BITS) - 1)) as u8;
            if sig == 0 {
                sig = 64;
            }
            if u32::from(self.leading) + u32::from(sig) > 64 {
                return Err(EndOfStream);
            }
            self.trailing = 64 - self.leading - sig;
        }
        let sig = 64 - self.leading - self.trailing;
        let bits = self.r.read_bits(sig)?;
        self.v = f64::from_bits(self.v.to_bits() ^ (bits << self.trailing));
        Ok(())
    }
}

impl XorIter<'_> {
    /// Calls `f` with every remaining sample until it returns `false`; returns whether the
    /// chunk decoded cleanly (a stop by `f` counts as clean). The fast way to read a whole
    /// chunk: the decoder's state stays in registers for the loop.
    #[inline]
    pub fn for_each_sample(mut self, mut f: impl FnMut(i64, f64) -> bool) -> bool {
        // The first two samples have their own encodings.
        while self.read < self.total.min(2) {
            match self.next() {
                Some((t, v)) => {
                    if !f(t, v) {
                        return true;
                    }
                }
                None => return !self.corrupt,
            }
        }
        if self.corrupt {
            return false;
        }
        let XorIter {
            mut r,
            total,
            read,
            mut t,
            mut t_delta,
            v,
            mut leading,
            mut trailing,
            ..
        } = self;
        let mut bits = v.to_bits();
        for _ in read..total {
            // The common sample on a regular grid: a `0` delta-of-delta and a value that is
            // unchanged (`0`) or fits the previous window (`10` + its bits), read straight from
            // the buffer with one bounds check.
            let (buf, avail) = r.fill();
            if buf >> 63 == 0 && avail >= REFILLED_BITS {
                if (buf >> 62) & 1 == 0 {
                    r.consume(2);
                    t = t.wrapping_add(t_delta);
                    if !f(t, f64::from_bits(bits)) {
                        return true;
                    }
                    continue;
                }
                let sig = u32::from(64 - leading - trailing);
                if (buf >> 61) & 1 == 0 && 3 + sig <= avail.min(63) {
                    r.consume(3 + sig);
                    bits ^= ((buf << 3) >> (64 - sig)) << trailing;
                    t = t.wrapping_add(t_delta);
                    if !f(t, f64::from_bits(bits)) {
                        return true;
                    }
                    continue;
                }
            }
            // Timestamp: the delta-of-delta prefix, up to four 1 bits ended by a 0.
            let prefix = r.peek(4) as u8;
            let ones = (prefix << 4).leading_ones() as u8;
            let dod = if ones == 0 {
                if r.skip(1).is_err() {
                    return false;
                }
                0
            } else if ones == 4 {
                if r.skip(4).is_err() {
                    return false;
                }
                match r.read_bits(64) {
                    Ok(d) => d as i64,
                    Err(EndOfStream) => return false,
                }
            } else {
                let width = DOD_BUCKETS[usize::from(ones) - 1].2;
                if r.skip(ones + 1).is_err() {
                    return false;
                }
                match r.read_bits(width) {
                    Ok(d) => sign_extend(d, width),
                    Err(EndOfStream) => return false,
                }
            };
            t_delta = t_delta.wrapping_add(dod);
            t = t.wrapping_add(t_delta);
            // Value: `0` unchanged, `10` the previous window, `11` a new window.
            let control = r.peek(2);
            if control & 0b10 == 0 {
                if r.skip(1).is_err() {
                    return false;
                }
            } else {
                if r.skip(2).is_err() {
                    return false;
                }
                if control == 0b11 {
                    let Ok(header) = r.read_bits(LEADING_BITS + SIGBITS_BITS) else {
                        return false;
                    };
                    leading = (header >> SIGBITS_BITS) as u8;
                    let sig = match (header & ((1 << SIGBITS_BITS) - 1)) as u8 {
                        0 => 64,
                        s => s,
                    };
                    if u32::from(leading) + u32::from(sig) > 64 {
                        return false;
                    }
                    trailing = 64 - leading - sig;
                }
                let Ok(x) = r.read_bits(64 - leading - trailing) else {
                    return false;
                };
                bits ^= x << trailing;
            }
            if !f(t, f64::from_bits(bits)) {
                return true;
            }
        }
        true
    }
}

impl Iterator for XorIter<'_> {
    type Item = (i64, f64);

    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        if self.corrupt || self.read >= self.total {
            return None;
        }
        match self.step() {
            Ok(s) => {
                self.read += 1;
                Some(s)
            }
            Err(EndOfStream) => {
                self.corrupt = true;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::from(self.total.saturating_sub(self.read));
        (0, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::STALE_NAN;

    fn round_trip(samples: &[(i64, f64)]) -> usize {
        let mut a = XorAppender::new();
        for &(t, v) in samples {
            a.append(t, v);
        }
        let mut it = XorIter::new(a.bytes());
        let got: Vec<(i64, f64)> = it.by_ref().collect();
        assert!(!it.is_corrupt());
        let mut fast = Vec::new();
        assert!(XorIter::new(a.bytes()).for_each_sample(|t, v| {
            fast.push((t, v));
            true
        }));
        assert_eq!(
            fast.iter().map(|s| (s.0, s.1.to_bits())).collect::<Vec<_>>(),
            got.iter().map(|s| (s.0, s.1.to_bits())).collect::<Vec<_>>()
        );
        assert_eq!(got.len(), samples.len());
        for (g, w) in got.iter().zip(samples) {
            assert_eq!(g.0, w.0);
            assert_eq!(g.1.to_bits(), w.1.to_bits(), "value bits at t={}", w.0);
        }
        a.bytes().len()
    }

    #[test]
    fn regular_counter_is_small() {
        let samples: Vec<(i64, f64)> = (0..120)
            .map(|i| (1_795_305_600_000 + i * 10_000, (i / 3 * 7) as f64))
            .collect();
        let size = round_trip(&samples);
        assert!(size < 120 * 2, "120 regular counter samples took {size} bytes");
    }

    #[test]
    fn irregular_times_and_special_values() {
        let samples = vec![
            (-5, 0.0),
            (0, -0.0),
            (1, f64::NAN),
            (3, f64::from_bits(STALE_NAN)),
            (100_000, f64::INFINITY),
            (100_001, f64::NEG_INFINITY),
            (10_000_000_000, 1e-300),
            (10_000_000_001, 1.5),
            (10_000_000_001, 1.5),
            (i64::MAX / 2, f64::MAX),
            (i64::MAX / 2 + 8191, f64::MIN_POSITIVE),
            (i64::MAX / 2 + 8191 + 131_071 * 2, 42.0),
        ];
        round_trip(&samples);
    }

    #[test]
    fn truncated_chunk_is_reported() {
        let mut a = XorAppender::new();
        for i in 0..10 {
            a.append(i * 1000, i as f64 * 1.1);
        }
        let bytes = &a.bytes()[..a.bytes().len() - 3];
        let mut it = XorIter::new(bytes);
        let n = it.by_ref().count();
        assert!(n < 10);
        assert!(it.is_corrupt());
    }
}
