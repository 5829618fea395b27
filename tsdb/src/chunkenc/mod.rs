//! Chunk encodings: how runs of samples of one series are compressed.
//!
//! `bstream` is the bit-level writer and reader; `xor` is the Gorilla-style float codec built on
//! it, `int` the delta-of-delta codec for whole-number values that blocks use when it is
//! smaller. The byte layouts are specified in `tsdb/docs/format/chunks.md`.

mod bstream;
pub mod int;
mod xor;

pub use bstream::{BitReader, BitWriter, EndOfStream};
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
}

impl Encoding {
    /// The encoding a byte names.
    pub fn from_byte(b: u8) -> Option<Encoding> {
        match b {
            1 => Some(Encoding::Xor),
            2 => Some(Encoding::Int),
            _ => None,
        }
    }
}

/// Encodes samples the smaller way: as integers when every value is a whole number and that is
/// smaller, else XOR.
pub fn encode_smallest(samples: &[(i64, f64)]) -> (Encoding, Vec<u8>) {
    let mut x = XorAppender::new();
    for &(t, v) in samples {
        x.append(t, v);
    }
    match int::encode(samples.iter().copied()) {
        Some(i) if i.len() < x.bytes().len() => (Encoding::Int, i),
        _ => (Encoding::Xor, x.bytes().to_vec()),
    }
}

/// Calls `f` with every sample of a chunk in `encoding` until it returns `false`; returns
/// whether it decoded cleanly.
pub fn for_each_sample(encoding: Encoding, chunk: &[u8], f: impl FnMut(i64, f64) -> bool) -> bool {
    match encoding {
        Encoding::Xor => XorIter::new(chunk).for_each_sample(f),
        Encoding::Int => int::for_each_sample(chunk, f),
    }
}
