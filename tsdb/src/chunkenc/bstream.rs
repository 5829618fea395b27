//! A bit stream: write and read values of any width from 1 to 64 bits, most significant bit first.
//!
//! The XOR codec ([`super::xor`]) is written on top of this; keeping the bit plumbing apart keeps
//! the codec readable.

/// Appends bits to a byte vector, most significant bit first.
#[derive(Debug, Clone, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Bits still free in the last byte of `bytes` (0 when it is full or there is none).
    free: u8,
}

impl BitWriter {
    /// A writer that continues after `bytes`, whose last byte has `free` unused low bits.
    pub fn from_parts(bytes: Vec<u8>, free: u8) -> Self {
        debug_assert!(free < 8);
        BitWriter { bytes, free }
    }

    /// The bytes written so far; unused low bits of the last byte are zero.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Mutable access to the bytes, for headers written in place.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Free bits in the last byte.
    pub fn free_bits(&self) -> u8 {
        self.free
    }

    /// Starts a new byte. The vector grows by an eighth (at least 32 bytes), not by doubling:
    /// a head holds a million open chunks at once, and doubling would leave a third of their
    /// bytes spare on average.
    #[inline(always)]
    fn new_byte(&mut self) {
        if self.bytes.len() == self.bytes.capacity() {
            self.grow();
        }
        self.bytes.push(0);
        self.free = 8;
    }

    #[cold]
    fn grow(&mut self) {
        self.bytes.reserve_exact((self.bytes.len() / 8).max(32));
    }

    /// Writes one bit.
    #[inline(always)]
    pub fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.new_byte();
        }
        self.free -= 1;
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 1 << self.free;
        }
    }

    /// Writes the low `n` bits of `value`, most significant first (`n` in 0..=64).
    #[inline(always)]
    pub fn write_bits(&mut self, value: u64, mut n: u8) {
        debug_assert!(n <= 64);
        while n > 0 {
            if self.free == 0 {
                self.new_byte();
            }
            // Take as many of the remaining high bits as fit in the current byte.
            let take = n.min(self.free);
            let chunk = ((value >> (n - take)) & ((1u64 << take) - 1)) as u8;
            self.free -= take;
            let last = self.bytes.len() - 1;
            self.bytes[last] |= chunk << self.free;
            n -= take;
        }
    }

    /// Writes a whole byte.
    #[inline(always)]
    pub fn write_byte(&mut self, b: u8) {
        self.write_bits(u64::from(b), 8);
    }
}

/// Reads bits written by [`BitWriter`].
///
/// The next bits of the stream wait left-aligned in a 64-bit buffer, refilled eight bytes at a
/// time with one big-endian load: a read is a shift and a subtraction, and a refill happens
/// about once per 56 bits.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    /// The next byte to load into `buf`.
    next: usize,
    /// Unread bits, most significant first; only the high `avail` bits are meaningful (the
    /// bits below them are either zero or the stream's next bits, which the next load ORs in
    /// again at the same place).
    buf: u64,
    avail: u32,
}

/// The stream ended before the value did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndOfStream;

/// After a refill with at least eight bytes left, at least this many bits are buffered: whole
/// bytes are added while they fit below the 64-bit top, so up to 7 bits stay unused.
const REFILLED: u32 = 57;

impl<'a> BitReader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader {
            bytes,
            next: 0,
            buf: 0,
            avail: 0,
        }
    }

    /// Tops the buffer up to at least [`REFILLED`] bits, or to the end of the stream.
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(word) = self.bytes.get(self.next..self.next + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            self.buf |= u64::from_be_bytes(w) >> self.avail;
            // Whole bytes that fit: (64 - avail) rounded down to a multiple of 8.
            let added = (64 - self.avail) & !7;
            self.next += (added / 8) as usize;
            self.avail += added;
        } else {
            while self.avail <= 56 && self.next < self.bytes.len() {
                self.buf |= u64::from(self.bytes[self.next]) << (56 - self.avail);
                self.next += 1;
                self.avail += 8;
            }
        }
    }

    /// Refills if fewer than [`REFILLED`] bits are buffered; returns how many are, with the
    /// buffer (its high bits are the next ones): for decoders that look at several fields at
    /// once and then [`BitReader::consume`] them.
    #[inline(always)]
    pub(crate) fn fill(&mut self) -> (u64, u32) {
        if self.avail < REFILLED {
            self.refill();
        }
        (self.buf, self.avail)
    }

    /// Consumes `n` bits (1..=63) known to be buffered (see [`BitReader::fill`]).
    #[inline(always)]
    pub(crate) fn consume(&mut self, n: u32) {
        debug_assert!((1..64).contains(&n) && n <= self.avail);
        self.buf <<= n;
        self.avail -= n;
    }

    /// Makes sure `n` (at most [`REFILLED`]) bits are buffered.
    #[inline(always)]
    fn ensure(&mut self, n: u32) -> Result<(), EndOfStream> {
        if self.avail < n {
            self.refill();
            if self.avail < n {
                return Err(EndOfStream);
            }
        }
        Ok(())
    }

    /// The next `n` bits (1..=57) as the low bits of the result, without consuming them; bits
    /// past the end of the stream read as zeros.
    #[inline(always)]
    pub fn peek(&mut self, n: u8) -> u64 {
        debug_assert!((1..=REFILLED as u8).contains(&n));
        if self.avail < u32::from(n) {
            self.refill();
        }
        let live = if self.avail == 0 {
            0
        } else {
            self.buf & (u64::MAX << (64 - self.avail))
        };
        live >> (64 - u32::from(n))
    }

    /// Moves on by `n` bits (at most [`REFILLED`]).
    #[inline(always)]
    pub fn skip(&mut self, n: u8) -> Result<(), EndOfStream> {
        let n = u32::from(n);
        self.ensure(n)?;
        self.buf = self.buf.checked_shl(n).unwrap_or(0);
        self.avail -= n;
        Ok(())
    }

    /// Reads one bit.
    #[inline(always)]
    pub fn read_bit(&mut self) -> Result<bool, EndOfStream> {
        self.ensure(1)?;
        let bit = self.buf >> 63 == 1;
        self.buf <<= 1;
        self.avail -= 1;
        Ok(bit)
    }

    /// Reads `n` bits (0..=64) as the low bits of the result.
    #[inline(always)]
    pub fn read_bits(&mut self, n: u8) -> Result<u64, EndOfStream> {
        debug_assert!(n <= 64);
        if n == 0 {
            return Ok(0);
        }
        if u32::from(n) > REFILLED {
            // Wider than one refill guarantees: the high 32 bits, then the rest.
            let hi = self.read_bits(32)?;
            let lo = self.read_bits(n - 32)?;
            return Ok(hi << (n - 32) | lo);
        }
        let n = u32::from(n);
        self.ensure(n)?;
        let v = self.buf >> (64 - n);
        self.buf = self.buf.checked_shl(n).unwrap_or(0);
        self.avail -= n;
        Ok(v)
    }

    /// Reads a whole byte.
    #[inline(always)]
    pub fn read_byte(&mut self) -> Result<u8, EndOfStream> {
        Ok(self.read_bits(8)? as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_mixed_widths() {
        let mut w = BitWriter::default();
        let values: Vec<(u64, u8)> = vec![
            (1, 1),
            (0, 1),
            (0b101, 3),
            (0xdead_beef, 32),
            (u64::MAX, 64),
            (0, 64),
            (0x3fff, 14),
            (7, 5),
        ];
        for &(v, n) in &values {
            w.write_bits(v, n);
        }
        let mut r = BitReader::new(w.bytes());
        for &(v, n) in &values {
            assert_eq!(r.read_bits(n), Ok(v), "width {n}");
        }
    }

    #[test]
    fn read_past_end_fails() {
        let mut w = BitWriter::default();
        w.write_bits(0b11, 2);
        let mut r = BitReader::new(w.bytes());
        assert_eq!(r.read_bits(8), Ok(0b1100_0000));
        assert_eq!(r.read_bit(), Err(EndOfStream));
    }
}
