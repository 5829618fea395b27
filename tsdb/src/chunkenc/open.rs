//! The head's open chunk: the one a series appends to.
//!
//! Most of vigil's series are counters, whose values are whole numbers. The open chunk starts
//! in the integer encoding ([`super::int`]), where a counter on a steady rate costs about two
//! bits a sample against the XOR scheme's 10 to 20, and turns into an XOR chunk at the first
//! value that is not a whole number (a fraction, a staleness marker). A million series hold a
//! million open chunks, so this is most of the head's sample memory.

use super::int::IntAppender;
use super::xor::XorAppender;
use super::{Encoding, for_each_sample};

/// An appendable chunk: integer while every value is a whole number, XOR from then on.
#[derive(Debug, Clone)]
pub enum OpenChunk {
    /// Every value so far is a whole number.
    Int(IntAppender),
    /// Some value was not.
    Xor(XorAppender),
}

impl Default for OpenChunk {
    fn default() -> Self {
        OpenChunk::Int(IntAppender::new())
    }
}

impl OpenChunk {
    /// Appends a sample; timestamps must not decrease (the head checks order first).
    pub fn append(&mut self, t: i64, v: f64) {
        match self {
            OpenChunk::Int(a) => {
                if !a.append(t, v) {
                    let mut x = XorAppender::new();
                    for_each_sample(Encoding::Int, a.bytes(), |t, v| {
                        x.append(t, v);
                        true
                    });
                    x.append(t, v);
                    *self = OpenChunk::Xor(x);
                }
            }
            OpenChunk::Xor(x) => x.append(t, v),
        }
    }

    /// Empties the chunk for the next one, keeping its allocation: a series' open chunk then
    /// stays one allocation of about a full chunk's size, where growing a new one from nothing
    /// every 120 samples would, with a million series growing in step, leave the allocator a
    /// page of each size it passed through.
    pub fn reset(&mut self) {
        let buf = match std::mem::take(self) {
            OpenChunk::Int(a) => a.into_buffer(),
            OpenChunk::Xor(x) => x.into_buffer(),
        };
        *self = OpenChunk::Int(IntAppender::with_buffer(buf));
    }

    /// How the bytes are encoded.
    pub fn encoding(&self) -> Encoding {
        match self {
            OpenChunk::Int(_) => Encoding::Int,
            OpenChunk::Xor(_) => Encoding::Xor,
        }
    }

    /// The encoded chunk, header included.
    pub fn bytes(&self) -> &[u8] {
        match self {
            OpenChunk::Int(a) => a.bytes(),
            OpenChunk::Xor(x) => x.bytes(),
        }
    }

    /// Samples in the chunk.
    pub fn len(&self) -> usize {
        match self {
            OpenChunk::Int(a) => a.len(),
            OpenChunk::Xor(x) => x.len(),
        }
    }

    /// Whether the chunk has no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with every sample until it returns `false`.
    pub fn for_each_sample(&self, f: impl FnMut(i64, f64) -> bool) -> bool {
        for_each_sample(self.encoding(), self.bytes(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(c: &OpenChunk) -> Vec<(i64, u64)> {
        let mut out = Vec::new();
        assert!(c.for_each_sample(|t, v| {
            out.push((t, v.to_bits()));
            true
        }));
        out
    }

    #[test]
    fn counters_stay_integer_and_small() {
        let mut c = OpenChunk::default();
        for i in 0..120i64 {
            c.append(1_795_305_600_000 + i * 10_000, (i * 7) as f64);
        }
        assert_eq!(c.encoding(), Encoding::Int);
        assert!(c.bytes().len() < 50, "{} bytes", c.bytes().len());
        assert_eq!(all(&c).len(), 120);
    }

    #[test]
    fn the_first_fraction_turns_it_into_xor_and_loses_nothing() {
        for first_fraction in [0, 1, 2, 50] {
            let mut c = OpenChunk::default();
            let mut want = Vec::new();
            for i in 0..60i64 {
                let v = if i == first_fraction { 0.5 } else { i as f64 };
                let v = if i == 55 { crate::storage::stale_nan() } else { v };
                c.append(i * 1000, v);
                want.push((i * 1000, v.to_bits()));
            }
            assert_eq!(c.encoding(), Encoding::Xor);
            assert_eq!(all(&c), want);
            // Emptied for the next chunk: integer again, nothing left of the last one.
            c.reset();
            assert!(c.is_empty() && c.encoding() == Encoding::Int);
            c.append(5, 1.0);
            assert_eq!(all(&c), vec![(5, 1f64.to_bits())]);
        }
    }
}
