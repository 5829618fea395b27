//! `cargo +nightly fuzz run xor_chunk`: arbitrary bytes decoded as an XOR, an
//! integer or a packed chunk must not panic, and the same bytes read as samples must round-trip through the encoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_tsdb::chunkenc::{XorAppender, XorIter, int, packed};

fuzz_target!(|data: &[u8]| {
    let mut it = XorIter::new(data);
    let decoded = it.by_ref().count();
    let claimed = data
        .get(..2)
        .map_or(0, |h| usize::from(u16::from_be_bytes([h[0], h[1]])));
    assert!(decoded == claimed || it.is_corrupt());
    let mut n = 0;
    int::for_each_sample(data, |_, _| {
        n += 1;
        true
    });
    assert!(n <= claimed);
    let mut k = 0;
    packed::for_each_sample(data, |_, _| {
        k += 1;
        true
    });
    assert!(k <= claimed);

    // Each 16 bytes: a timestamp step (kept non-negative) and a value's bits.
    let mut a = XorAppender::new();
    let mut want = Vec::new();
    let mut t = 0i64;
    for c in data.chunks_exact(16) {
        let step = i64::from_le_bytes(c[..8].try_into().unwrap()) & 0x0000_ffff_ffff_ffff;
        t = t.wrapping_add(step);
        let v = f64::from_le_bytes(c[8..].try_into().unwrap());
        a.append(t, v);
        want.push((t, v.to_bits()));
    }
    let got: Vec<(i64, u64)> = XorIter::new(a.bytes()).map(|(t, v)| (t, v.to_bits())).collect();
    assert_eq!(got, want);
});
