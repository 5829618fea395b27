//! The scanner's first pass: for every 64 bytes of a document, bit masks of the bytes that
//! matter for finding one's way through it (bit `i` of a block stands for byte `64 * block + i`).
//!
//! ```text
//!  bytes      {"uri":"/a\"{b","x":[1,{"y":2}]}
//!  quote      .x...x.x......x.x.x.....x.x.....   unescaped `"` only
//!  in string  .xxxx..xxxxxxx..xx......xx......   from an opening quote up to its closer
//!  open       x...................x..x........   `{` `[` outside strings
//!  close      .............................xxx   `}` `]` outside strings
//! ```
//!
//! With these, the scanner finds a string's end and a nested value's end with a few bit
//! operations per 64 bytes instead of a look at every byte: skipping what vigil does not need
//! (headers, tries, workspace and service details) is most of the work of decoding a Kong event.
//!
//! On x86_64 the raw byte classes come from SSE2 compares (16 bytes at a time, part of every
//! x86_64 CPU); elsewhere from a plain loop.

/// The masks of one 64-byte block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Block {
    /// Unescaped quotes: where strings start and end.
    pub(crate) quote: u64,
    /// Backslashes: a string that holds one needs unescaping.
    pub(crate) backslash: u64,
    /// `{` and `[` outside strings.
    pub(crate) open: u64,
    /// `}` and `]` outside strings.
    pub(crate) close: u64,
    /// Bytes of 0x80 and above: a string without any is valid UTF-8 as it is.
    pub(crate) non_ascii: u64,
}

/// The raw byte classes of a block, before strings are taken into account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Raw {
    quote: u64,
    backslash: u64,
    open: u64,
    close: u64,
    non_ascii: u64,
}

/// Classifies `buf` into `out` (cleared first), one [`Block`] per 64 bytes (the last one
/// padded).
pub(crate) fn classify(buf: &[u8], out: &mut Vec<Block>) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        #[allow(unsafe_code)]
        // SAFETY: the CPU has AVX2 (checked just above), all `classify_avx2` requires.
        unsafe {
            classify_avx2(buf, out);
        }
        return;
    }
    each_block(buf, out, raw);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn classify_avx2(buf: &[u8], out: &mut Vec<Block>) {
    each_block(buf, out, |b| raw_avx2(b));
}

/// Runs `raw` over every 64 bytes of `buf` and turns its classes into [`Block`]s.
#[inline(always)]
fn each_block(buf: &[u8], out: &mut Vec<Block>, raw: impl Fn(&[u8; 64]) -> Raw) {
    out.clear();
    out.reserve(buf.len().div_ceil(64));
    // All ones when the previous block ended inside a string.
    let mut in_string = 0u64;
    // Whether the previous block ended with a backslash that escapes this block's first byte.
    let mut escape_next = false;
    let mut chunks = buf.chunks_exact(64);
    for chunk in chunks.by_ref() {
        if let Ok(block) = <&[u8; 64]>::try_from(chunk) {
            out.push(finish(raw(block), &mut in_string, &mut escape_next));
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // The padding byte is in no class.
        let mut block = [b'_'; 64];
        block[..rest.len()].copy_from_slice(rest);
        out.push(finish(raw(&block), &mut in_string, &mut escape_next));
    }
}

/// Applies escapes and strings to a block's raw classes.
#[inline]
fn finish(r: Raw, in_string: &mut u64, escape_next: &mut bool) -> Block {
    let escaped = escaped(r.backslash, escape_next);
    let quote = r.quote & !escaped;
    let inside = prefix_xor(quote) ^ *in_string;
    // Broadcast the last byte's state to the next block.
    *in_string = ((inside as i64) >> 63) as u64;
    Block {
        quote,
        backslash: r.backslash,
        open: r.open & !inside,
        close: r.close & !inside,
        non_ascii: r.non_ascii,
    }
}

/// The bytes escaped by a backslash (the byte after each backslash that is not itself escaped).
/// `carry` says whether the first byte is escaped by the previous block, and is set for the
/// next one. Backslashes are rare outside URIs, so they are walked one by one.
#[inline]
fn escaped(backslash: u64, carry: &mut bool) -> u64 {
    let mut escaped = u64::from(*carry);
    *carry = false;
    let mut b = backslash;
    while b != 0 {
        let i = b.trailing_zeros();
        b &= b - 1;
        if escaped >> i & 1 == 1 {
            continue;
        }
        if i == 63 {
            *carry = true;
        } else {
            escaped |= 1 << (i + 1);
        }
    }
    escaped
}

/// Bit `i` of the result is the XOR of bits `0..=i` of `x`: between an opening quote and its
/// closer, the bits are set. (Six shift-and-XOR steps, each doubling the span covered.)
#[inline]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
fn raw(block: &[u8; 64]) -> Raw {
    #[allow(unsafe_code)]
    // SAFETY: SSE2 is enabled for this build (the `cfg` above; every x86_64 CPU has it), which
    // is all `raw_sse2` requires.
    unsafe {
        raw_sse2(block)
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline]
fn raw(block: &[u8; 64]) -> Raw {
    raw_scalar(block)
}

/// `{` is 0x7B and `[` 0x5B, `}` 0x7D and `]` 0x5D: setting bit 5 (0x20) maps each pair onto
/// one value, and no other byte onto either, so two compares find all four.
const CASE_BIT: u8 = 0x20;

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
#[allow(unsafe_code)]
fn raw_sse2(block: &[u8; 64]) -> Raw {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};
    let splat = |b: u8| _mm_set1_epi8(b as i8);
    let (quote, backslash, open, close, case) = (splat(b'"'), splat(b'\\'), splat(b'{'), splat(b'}'), splat(CASE_BIT));
    // `movemask` gives one bit per byte of 16: the low 16 bits of an i32.
    let bits = |v: __m128i, c: __m128i| u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, c)) as u16);
    let mut r = Raw::default();
    for (k, lane) in block.chunks_exact(16).enumerate() {
        // SAFETY: `lane` is 16 readable bytes; the load is unaligned.
        let v = unsafe { _mm_loadu_si128(lane.as_ptr().cast::<__m128i>()) };
        let folded = _mm_or_si128(v, case);
        let shift = 16 * k;
        r.quote |= bits(v, quote) << shift;
        r.backslash |= bits(v, backslash) << shift;
        r.open |= bits(folded, open) << shift;
        r.close |= bits(folded, close) << shift;
        r.non_ascii |= u64::from(_mm_movemask_epi8(v) as u16) << shift;
    }
    r
}

/// The byte classes of 64 bytes, 32 at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
fn raw_avx2(block: &[u8; 64]) -> Raw {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
    };
    let splat = |b: u8| _mm256_set1_epi8(b as i8);
    let (quote, backslash, open, close, case) = (splat(b'"'), splat(b'\\'), splat(b'{'), splat(b'}'), splat(CASE_BIT));
    // One bit per byte of 32: all of the i32.
    let bits = |v: __m256i, c: __m256i| u64::from(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, c)) as u32);
    let mut r = Raw::default();
    for (k, lane) in block.chunks_exact(32).enumerate() {
        // SAFETY: `lane` is 32 readable bytes; the load is unaligned.
        let v = unsafe { _mm256_loadu_si256(lane.as_ptr().cast::<__m256i>()) };
        let folded = _mm256_or_si256(v, case);
        let shift = 32 * k;
        r.quote |= bits(v, quote) << shift;
        r.backslash |= bits(v, backslash) << shift;
        r.open |= bits(folded, open) << shift;
        r.close |= bits(folded, close) << shift;
        r.non_ascii |= u64::from(_mm256_movemask_epi8(v) as u32) << shift;
    }
    r
}

/// The byte classes one byte at a time: the fallback, and the reference for tests.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn raw_scalar(block: &[u8; 64]) -> Raw {
    let mut r = Raw::default();
    for (i, &b) in block.iter().enumerate() {
        let bit = 1u64 << i;
        if b >= 0x80 {
            r.non_ascii |= bit;
        }
        match b {
            b'"' => r.quote |= bit,
            b'\\' => r.backslash |= bit,
            _ => {}
        }
        match b | CASE_BIT {
            b'{' => r.open |= bit,
            b'}' => r.close |= bit,
            _ => {}
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Masks computed one byte at a time with an explicit state machine.
    fn reference(buf: &[u8]) -> Vec<Block> {
        let mut out = vec![Block::default(); buf.len().div_ceil(64)];
        let (mut in_string, mut escaped) = (false, false);
        for (i, &b) in buf.iter().enumerate() {
            let (blk, bit) = (&mut out[i / 64], 1u64 << (i % 64));
            if b == b'\\' {
                blk.backslash |= bit;
            }
            if b >= 0x80 {
                blk.non_ascii |= bit;
            }
            // An escape only matters to a quote (a bracket is never escaped in valid JSON).
            let was_escaped = std::mem::replace(&mut escaped, false);
            match b {
                b'\\' if !was_escaped => escaped = true,
                b'"' if !was_escaped => {
                    blk.quote |= bit;
                    in_string = !in_string;
                }
                b'{' | b'[' if !in_string => blk.open |= bit,
                b'}' | b']' if !in_string => blk.close |= bit,
                _ => {}
            }
        }
        out
    }

    #[test]
    fn the_documented_example() {
        let doc = br#"{"uri":"/a\"{b","x":[1,{"y":2}]}"#;
        let mut out = Vec::new();
        classify(doc, &mut out);
        let bits = |m: u64| -> String {
            (0..doc.len())
                .map(|i| if m >> i & 1 == 1 { 'x' } else { '.' })
                .collect()
        };
        assert_eq!(bits(out[0].quote), ".x...x.x......x.x.x.....x.x.....");
        assert_eq!(bits(out[0].open), "x...................x..x........");
        assert_eq!(bits(out[0].close), ".............................xxx");
    }

    #[test]
    fn agrees_with_a_byte_at_a_time_state_machine() {
        // Random documents over the bytes that matter, across block boundaries, with runs of
        // backslashes (escaped backslashes before quotes are the tricky case).
        let alphabet = b"\"\\{}[]:,a \\\\\"\xc3\xa9\n\t";
        let mut rng = fastrand::Rng::with_seed(7);
        let mut out = Vec::new();
        for len in (0..400).chain([4096]) {
            for _ in 0..20 {
                let doc: Vec<u8> = (0..len).map(|_| alphabet[rng.usize(..alphabet.len())]).collect();
                classify(&doc, &mut out);
                assert_eq!(out, reference(&doc), "{}", String::from_utf8_lossy(&doc));
            }
        }
    }

    #[test]
    fn the_vector_classes_match_the_scalar_ones() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..2000 {
            let mut block = [0u8; 64];
            block.iter_mut().for_each(|b| *b = rng.u8(..));
            assert_eq!(raw(&block), raw_scalar(&block));
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                #[allow(unsafe_code)]
                // SAFETY: AVX2 checked just above.
                let avx2 = unsafe { raw_avx2(&block) };
                assert_eq!(avx2, raw_scalar(&block));
            }
        }
    }

    #[test]
    fn every_path_classifies_alike() {
        let mut rng = fastrand::Rng::with_seed(5);
        let alphabet = b"\"\\{}[]:,a ";
        for len in [0, 1, 63, 64, 65, 200, 1000] {
            let doc: Vec<u8> = (0..len).map(|_| alphabet[rng.usize(..alphabet.len())]).collect();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            classify(&doc, &mut a);
            each_block(&doc, &mut b, raw_scalar);
            assert_eq!(a, b);
        }
    }
}
