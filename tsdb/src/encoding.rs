//! Byte-level helpers shared by the on-disk formats: LEB128 varints, zigzag, and a bounds-checked
//! decoder over a byte slice.

/// Appends `v` as an unsigned LEB128 varint (7 bits per byte, low groups first).
#[inline]
pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends `v` zigzag-encoded, so small negative numbers stay short.
#[inline]
pub fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, zigzag(v));
}

/// Appends a length-prefixed byte string.
#[inline]
pub fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// Maps signed to unsigned: 0, -1, 1, -2, 2 ... -> 0, 1, 2, 3, 4 ...
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Why a [`Decoder`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("unexpected end of data")]
    Eof,
    /// A varint longer than 10 bytes.
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    /// A string that is not UTF-8.
    #[error("invalid UTF-8 in string")]
    Utf8,
    /// A tag byte with no meaning.
    #[error("unknown tag")]
    BadTag,
}

/// Reads values from a byte slice, checking bounds on every read.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether all input was consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads an unsigned varint.
    #[inline]
    pub fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or(DecodeError::Eof)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    /// Reads a zigzag varint.
    #[inline]
    pub fn varint(&mut self) -> Result<i64, DecodeError> {
        self.uvarint().map(unzigzag)
    }

    /// Reads `n` raw bytes.
    #[inline]
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Eof)?;
        let out = self.buf.get(self.pos..end).ok_or(DecodeError::Eof)?;
        self.pos = end;
        Ok(out)
    }

    /// Reads a length-prefixed byte string.
    #[inline]
    pub fn len_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.uvarint()?;
        self.bytes(usize::try_from(n).map_err(|_| DecodeError::Eof)?)
    }

    /// Reads a length-prefixed UTF-8 string.
    #[inline]
    pub fn len_str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.len_bytes()?).map_err(|_| DecodeError::Utf8)
    }

    /// Reads a little-endian `u64`.
    #[inline]
    pub fn u64_le(&mut self) -> Result<u64, DecodeError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        let mut buf = Vec::new();
        let vals = [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, 1_795_305_600_538];
        for v in vals {
            put_varint(&mut buf, v);
        }
        put_uvarint(&mut buf, u64::MAX);
        let mut d = Decoder::new(&buf);
        for v in vals {
            assert_eq!(d.varint(), Ok(v));
        }
        assert_eq!(d.uvarint(), Ok(u64::MAX));
        assert!(d.is_empty());
        assert_eq!(d.uvarint(), Err(DecodeError::Eof));
    }

    #[test]
    fn truncated_string_is_eof() {
        let mut buf = Vec::new();
        put_bytes(&mut buf, b"hello");
        buf.truncate(4);
        assert_eq!(Decoder::new(&buf).len_str(), Err(DecodeError::Eof));
    }
}
