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

    /// Mutable access to the bytes, for headers written in place.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Free bits in the last byte.
    pub fn free_bits(&self) -> u8 {
        self.free
    }

    /// Writes one bit.
    #[inline]
    pub fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        self.free -= 1;
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 1 << self.free;
        }
    }

    /// Writes the low `n` bits of `value`, most significant first (`n` in 0..=64).
    #[inline]
    pub fn write_bits(&mut self, value: u64, mut n: u8) {
        debug_assert!(n <= 64);
        while n > 0 {
            if self.free == 0 {
                self.bytes.push(0);
                self.free = 8;
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
    #[inline]
    pub fn write_byte(&mut self, b: u8) {
        self.write_bits(u64::from(b), 8);
    }
}

/// Reads bits written by [`BitWriter`].
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    /// Position in bits from the start of `bytes`.
    pos: usize,
}

/// The stream ended before the value did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndOfStream;

impl<'a> BitReader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, pos: 0 }
    }

    /// Reads one bit.
    #[inline]
    pub fn read_bit(&mut self) -> Result<bool, EndOfStream> {
        let byte = *self.bytes.get(self.pos / 8).ok_or(EndOfStream)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1 == 1;
        self.pos += 1;
        Ok(bit)
    }

    /// Reads `n` bits (0..=64) as the low bits of the result.
    #[inline]
    pub fn read_bits(&mut self, n: u8) -> Result<u64, EndOfStream> {
        debug_assert!(n <= 64);
        let n = usize::from(n);
        if self.pos + n > self.bytes.len() * 8 {
            return Err(EndOfStream);
        }
        // Fast path: load up to 8 bytes big-endian and shift the wanted bits out.
        let mut out: u64 = 0;
        let mut remaining = n;
        while remaining > 0 {
            let byte = self.bytes[self.pos / 8];
            let offset = self.pos % 8;
            let avail = 8 - offset;
            let take = remaining.min(avail);
            let bits = (u64::from(byte) >> (avail - take)) & ((1u64 << take) - 1);
            out = if take == 64 { bits } else { (out << take) | bits };
            self.pos += take;
            remaining -= take;
        }
        Ok(out)
    }

    /// Reads a whole byte.
    #[inline]
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
