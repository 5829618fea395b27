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
                    self.turn_into_xor(t, v);
                }
            }
            OpenChunk::Xor(x) => x.append(t, v),
        }
    }

    /// Re-encodes the samples so far and `(t, v)` as XOR, in the same allocation: a gauge's
    /// chunks each start as integers and turn at their first fraction, without a new buffer
    /// each time.
    fn turn_into_xor(&mut self, t: i64, v: f64) {
        let mut samples = Vec::with_capacity(self.len() + 1);
        self.for_each_sample(|t, v| {
            samples.push((t, v));
            true
        });
        samples.push((t, v));
        let mut x = XorAppender::with_buffer(std::mem::take(self).into_buffer());
        for (t, v) in samples {
            x.append(t, v);
        }
        *self = OpenChunk::Xor(x);
    }

    /// Empties the chunk for the next one, keeping its allocation: a series' open chunk then
    /// stays one allocation of about a full chunk's size, where growing a new one from nothing
    /// every 120 samples would, with a million series growing in step, leave the allocator a
    /// page of each size it passed through.
    pub fn reset(&mut self) {
        *self = OpenChunk::Int(IntAppender::with_buffer(std::mem::take(self).into_buffer()));
    }

    fn into_buffer(self) -> Vec<u8> {
        match self {
            OpenChunk::Int(a) => a.into_buffer(),
            OpenChunk::Xor(x) => x.into_buffer(),
        }
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

    #[test]
    fn a_gauge_keeps_one_buffer_from_chunk_to_chunk() {
        let mut c = OpenChunk::default();
        // The same gauge shape each chunk (so each needs the same bytes): whole numbers first,
        // as a gauge's chunk often starts, then fractions.
        let gauge_chunk = |c: &mut OpenChunk, from: i64| {
            for i in 0..120 {
                let v = if i < 3 { 40.0 } else { 40.0 + (i % 17) as f64 / 8.0 };
                c.append(1_795_305_600_000 + (from + i) * 10_000, v);
            }
        };
        gauge_chunk(&mut c, 0);
        c.reset();
        let start = c.bytes().as_ptr();
        gauge_chunk(&mut c, 120);
        assert_eq!(c.encoding(), Encoding::Xor);
        assert_eq!(
            c.bytes().as_ptr(),
            start,
            "the second chunk reused the first one's allocation"
        );
        assert_eq!(all(&c).len(), 120);
    }
}
