//! Chunk encodings: how runs of samples of one series are compressed.
//!
//! `bstream` is the bit-level writer and reader; `xor` is the Gorilla-style float codec built on
//! it; `int` (delta-of-delta) and `packed` (bit-packed groups of deltas) are the codecs for
//! whole-number values that blocks use when they are smaller. The byte layouts are specified in
//! `tsdb/docs/format/chunks.md`.

mod bstream;
pub mod int;
mod open;
pub mod packed;
mod xor;

pub use bstream::{BitReader, BitWriter, EndOfStream};
pub use int::IntAppender;
pub use open::OpenChunk;
pub use xor::{XorAppender, XorIter};

/// Samples per chunk before the head cuts a new one. 120 samples of vigil's 10 s windows span
/// 20 minutes: long enough to amortise the first sample's 8-byte value, short enough that a query
/// for the last minutes decodes little.
pub const SAMPLES_PER_CHUNK: usize = 120;

/// How a chunk in a block is encoded (the byte before its bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Encoding {
    /// [`XorAppender`]'s Gorilla scheme, for any float.
    Xor = 1,
    /// [`int`]'s delta-of-delta scheme, for whole numbers.
    Int = 2,
    /// [`packed`]'s groups of bit-packed deltas, for whole numbers.
    Packed = 3,
}

impl Encoding {
    /// The encoding a byte names.
    pub fn from_byte(b: u8) -> Option<Encoding> {
        match b {
            1 => Some(Encoding::Xor),
            2 => Some(Encoding::Int),
            3 => Some(Encoding::Packed),
            _ => None,
        }
    }
}

/// Encodes samples the smallest way: packed, or delta-of-delta integers, when every value is a
/// whole number (packed: or a short decimal), else XOR. Packed wins ties: it decodes fastest.
pub fn encode_smallest(samples: &[(i64, f64)]) -> (Encoding, Vec<u8>) {
    smallest(samples, (Encoding::Xor, xor_encode(samples)))
}

fn xor_encode(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut x = XorAppender::new();
    for &(t, v) in samples {
        x.append(t, v);
    }
    x.into_buffer()
}

/// Re-encodes a full chunk for the head when it closes it: packed if that is no larger (it
/// decodes fastest; counters come out at about two thirds of XOR), else the smallest of the
/// encodings the values allow. Reads of all but the head's open chunks then decode at block
/// speed.
pub fn recode(encoding: Encoding, chunk: &[u8]) -> (Encoding, Vec<u8>) {
    let mut samples = Vec::with_capacity(sample_count(chunk));
    if !for_each_sample(encoding, chunk, |t, v| {
        samples.push((t, v));
        true
    }) {
        return (encoding, chunk.to_vec());
    }
    smallest(&samples, (encoding, chunk.to_vec()))
}

/// `samples` the smallest way, given one encoding of them.
fn smallest(samples: &[(i64, f64)], given: (Encoding, Vec<u8>)) -> (Encoding, Vec<u8>) {
    let mut best = given;
    if best.0 != Encoding::Int
        && let Some(i) = int::encode(samples.iter().copied()).filter(|i| i.len() < best.1.len())
    {
        best = (Encoding::Int, i);
    }
    // Whole numbers that swing widely (a gauge of bytes, say) cost the integer scheme up to 64
    // bits of delta-of-delta a sample, where XOR keeps only the bits that changed. Trying XOR
    // costs an encode per chunk, so only for integer chunks over four bytes a sample, which a
    // counter never reaches.
    if best.0 == Encoding::Int && best.1.len() > 4 * samples.len() {
        let x = xor_encode(samples);
        if x.len() < best.1.len() {
            best = (Encoding::Xor, x);
        }
    }
    if let Some(p) = packed::encode(samples).filter(|p| p.len() <= best.1.len()) {
        best = (Encoding::Packed, p);
    }
    best
}

/// Samples in a chunk of any encoding: each starts with the count as a big-endian `u16`.
pub fn sample_count(chunk: &[u8]) -> usize {
    chunk
        .get(..2)
        .map_or(0, |h| usize::from(u16::from_be_bytes([h[0], h[1]])))
}

/// Calls `f` with every sample of a chunk in `encoding` until it returns `false`; returns
/// whether it decoded cleanly.
pub fn for_each_sample(encoding: Encoding, chunk: &[u8], f: impl FnMut(i64, f64) -> bool) -> bool {
    match encoding {
        Encoding::Xor => XorIter::new(chunk).for_each_sample(f),
        Encoding::Int => int::for_each_sample(chunk, f),
        Encoding::Packed => packed::for_each_sample(chunk, f),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every sample of a chunk that must decode cleanly.
    pub(crate) fn decode_all(encoding: Encoding, chunk: &[u8]) -> Vec<(i64, f64)> {
        let mut out = Vec::new();
        assert!(for_each_sample(encoding, chunk, |t, v| {
            out.push((t, v));
            true
        }));
        out
    }

    #[test]
    fn recode_picks_xor_for_whole_numbers_that_swing_widely() {
        // A gauge of byte counts in whole tebibytes: deltas of 40 bits and more that no
        // pattern packs, values whose bits differ in a few places.
        let mut rng = fastrand::Rng::with_seed(3);
        let samples: Vec<(i64, f64)> = (0..120i64)
            .map(|i| (i * 10_000, (rng.u64(1..64) << 40) as f64))
            .collect();
        let int = int::encode(samples.iter().copied()).expect("whole numbers");
        let (encoding, bytes) = recode(Encoding::Int, &int);
        assert_eq!(encoding, Encoding::Xor);
        assert!(bytes.len() < int.len(), "{} >= {}", bytes.len(), int.len());
        assert_eq!(decode_all(encoding, &bytes), samples);
        // A steady counter stays an integer chunk (or a packed one).
        let counter: Vec<(i64, f64)> = (0..120i64).map(|i| (i * 10_000, (i * 7) as f64)).collect();
        let int = int::encode(counter.iter().copied()).expect("whole numbers");
        assert_ne!(recode(Encoding::Int, &int).0, Encoding::Xor);
    }
}
