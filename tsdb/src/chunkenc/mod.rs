//! Chunk encodings: how runs of samples of one series are compressed.
//!
//! `bstream` is the bit-level writer and reader; `xor` is the Gorilla-style float codec built on
//! it. The byte layout is specified in `tsdb/docs/format/chunks.md`.

mod bstream;
mod xor;

pub use bstream::{BitReader, BitWriter, EndOfStream};
pub use xor::{XorAppender, XorIter};

/// Samples per chunk before the head cuts a new one. 120 samples of vigil's 10 s windows span
/// 20 minutes: long enough to amortise the first sample's 8-byte value, short enough that a query
/// for the last minutes decodes little.
pub const SAMPLES_PER_CHUNK: usize = 120;
