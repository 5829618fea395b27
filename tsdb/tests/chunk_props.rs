//! Property tests of the chunk encodings and the bit stream under them, and of start-time runs:
//! whatever goes in comes out, bit for bit, and no input makes a decoder panic.

use proptest::prelude::*;
use vigil_tsdb::chunkenc::{
    BitReader, BitWriter, Encoding, OpenChunk, XorAppender, XorIter, encode_smallest, for_each_sample, int, packed,
    recode,
};

/// Samples as vigil's series have them (a regular grid with jitter, counters that repeat or
/// step) mixed with arbitrary ones (any gap, any float bit pattern).
fn samples() -> impl Strategy<Value = Vec<(i64, f64)>> {
    let step = prop_oneof![
        4 => Just(10_000i64),
        2 => 9_000i64..11_000,
        1 => 0i64..100_000_000,
        1 => 0i64..(1 << 40),
    ];
    let value = prop_oneof![
        3 => (0u32..4).prop_map(f64::from),
        2 => any::<u64>().prop_map(f64::from_bits),
        1 => Just(f64::NAN),
        1 => -1e9f64..1e9,
    ];
    (any::<i32>(), prop::collection::vec((step, value), 0..300)).prop_map(|(start, steps)| {
        let mut t = i64::from(start) * 1_000;
        let mut acc = 0.0;
        steps
            .into_iter()
            .map(|(dt, v)| {
                t += dt;
                // Small values are counter increments; the rest are taken as they are.
                acc = if v.is_finite() && (0.0..4.0).contains(&v) {
                    acc + v
                } else {
                    v
                };
                (t, acc)
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn open_chunks_round_trip_and_recode_losslessly(samples in samples(), cut in 0usize..300) {
        // Integer until the first value that is not a whole number, XOR from there; emptied
        // at `cut` (as the head does when a chunk fills) and filled again.
        let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        let cut = cut.min(samples.len());
        let mut c = OpenChunk::default();
        for (i, part) in [&samples[..cut], &samples[cut..]].into_iter().enumerate() {
            if i == 1 {
                c.reset();
            }
            for &(t, v) in part {
                c.append(t, v);
            }
            let mut got = Vec::new();
            let clean = c.for_each_sample(|t, v| {
                got.push((t, v.to_bits()));
                true
            });
            prop_assert!(clean);
            let part_want = if i == 0 { &want[..cut] } else { &want[cut..] };
            prop_assert_eq!(&got[..], part_want);
            if part.iter().all(|&(_, v)| int::encode([(0, v)]).is_some()) {
                prop_assert_eq!(c.encoding(), Encoding::Int);
                // Streamed or encoded at once, the same bytes.
                prop_assert_eq!(Some(c.bytes().to_vec()), int::encode(part.iter().copied()));
            }
            let (encoding, bytes) = recode(c.encoding(), c.bytes());
            let mut back = Vec::new();
            let clean = for_each_sample(encoding, &bytes, |t, v| {
                back.push((t, v.to_bits()));
                true
            });
            prop_assert!(clean);
            prop_assert_eq!(&back[..], part_want);
            prop_assert!(bytes.len() <= c.bytes().len());
        }
    }

    #[test]
    fn xor_chunks_round_trip(samples in samples()) {
        // A chunk holds at most u16::MAX samples; the head cuts at 120.
        let mut a = XorAppender::new();
        for &(t, v) in &samples {
            a.append(t, v);
        }
        let mut it = XorIter::new(a.bytes());
        let got: Vec<(i64, u64)> = it.by_ref().map(|(t, v)| (t, v.to_bits())).collect();
        prop_assert!(!it.is_corrupt());
        let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        prop_assert_eq!(&got, &want);
        // The register-held decoder reads the same.
        let mut fast = Vec::new();
        let clean = XorIter::new(a.bytes()).for_each_sample(|t, v| {
            fast.push((t, v.to_bits()));
            true
        });
        prop_assert!(clean);
        prop_assert_eq!(fast, want);
    }

    #[test]
    fn the_smallest_encoding_round_trips(samples in samples(), whole in any::<bool>()) {
        // Whole-number counters (the integer chunk's case) or anything (XOR's).
        let samples: Vec<(i64, f64)> = if whole {
            samples.iter().map(|&(t, v)| (t, if v.is_finite() { v.trunc().clamp(-1e15, 1e15) } else { 0.0 })).collect()
        } else {
            samples
        };
        let (encoding, bytes) = encode_smallest(&samples);
        if whole && samples.iter().all(|s| s.1 != 0.0 || s.1.is_sign_positive()) && samples.len() > 2 {
            prop_assert!(int::encode(samples.iter().copied()).is_some());
        }
        let mut got = Vec::new();
        let clean = for_each_sample(encoding, &bytes, |t, v| {
            got.push((t, v.to_bits()));
            true
        });
        prop_assert!(clean);
        let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        prop_assert_eq!(got, want);
        if encoding == Encoding::Int {
            let mut x = XorAppender::new();
            for &(t, v) in &samples {
                x.append(t, v);
            }
            prop_assert!(bytes.len() < x.bytes().len());
        }
    }

    #[test]
    fn bit_streams_round_trip(fields in prop::collection::vec((any::<u64>(), 0u8..=64), 0..200)) {
        let mut w = BitWriter::default();
        for &(v, n) in &fields {
            w.write_bits(v, n);
        }
        let total: usize = fields.iter().map(|&(_, n)| usize::from(n)).sum();
        prop_assert_eq!(w.bytes().len(), total.div_ceil(8));
        let mut r = BitReader::new(w.bytes());
        for &(v, n) in &fields {
            let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            prop_assert_eq!(r.read_bits(n), Ok(v & mask));
        }
    }

    #[test]
    fn any_bytes_decode_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut it = XorIter::new(&bytes);
        let n = it.by_ref().count();
        let claimed = bytes.get(..2).map_or(0, |h| usize::from(u16::from_be_bytes([h[0], h[1]])));
        prop_assert!(n <= claimed);
        prop_assert!(n == claimed || it.is_corrupt());
        let mut fast = 0;
        let clean = XorIter::new(&bytes).for_each_sample(|_, _| {
            fast += 1;
            true
        });
        prop_assert_eq!(fast, n);
        prop_assert_eq!(clean, !it.is_corrupt());
        // The integer decoder, on the same garbage, stops without panicking.
        let mut m = 0;
        int::for_each_sample(&bytes, |_, _| {
            m += 1;
            true
        });
        prop_assert!(m <= claimed);
        let mut k = 0;
        packed::for_each_sample(&bytes, |_, _| {
            k += 1;
            true
        });
        prop_assert!(k <= claimed);
    }

    #[test]
    fn packed_chunks_round_trip(samples in samples(), places in 0u32..5) {
        // Whole numbers, or decimals of a few places (a latency sum of whole milliseconds in
        // seconds), as a collector computes them: an integer divided by a power of ten.
        let p = 10f64.powi(places as i32);
        let samples: Vec<(i64, f64)> = samples
            .iter()
            .map(|&(t, v)| (t, if v.is_finite() { v.trunc().clamp(-1e13, 1e13) / p } else { 0.0 }))
            .collect();
        let chunk = packed::encode(&samples);
        prop_assert!(chunk.is_some() || samples.iter().any(|s| s.1 == 0.0 && s.1.is_sign_negative()));
        let Some(chunk) = chunk else { return Ok(()) };
        let mut got = Vec::new();
        let clean = packed::for_each_sample(&chunk, |t, v| {
            got.push((t, v.to_bits()));
            true
        });
        prop_assert!(clean);
        let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        prop_assert_eq!(got, want);
    }
}

/// Start times as they come: mostly runs of one start (cumulative), runs of a fixed distance
/// (delta), unknowns, and arbitrary ones, at increasing timestamps.
fn starts() -> impl Strategy<Value = Vec<(i64, i64)>> {
    let gap = prop_oneof![3 => Just(10_000i64), 1 => 1i64..100_000];
    let kind = prop_oneof![
        3 => Just(0u8), // same start as before
        2 => Just(1u8), // the previous sample's time
        1 => Just(2u8), // unknown
        1 => Just(3u8), // arbitrary
    ];
    prop::collection::vec((gap, kind, any::<i64>()), 0..300).prop_map(|items| {
        let (mut t, mut prev_t, mut st) = (1_795_392_000_000i64, 0i64, 0i64);
        items
            .into_iter()
            .map(|(gap, kind, x)| {
                t += gap;
                st = match kind {
                    0 => st,
                    1 => prev_t,
                    2 => 0,
                    _ => x,
                };
                prev_t = t;
                (t, st)
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn start_runs_round_trip(pairs in starts()) {
        use vigil_tsdb::starts::StartRuns;
        use vigil_tsdb::Sample;
        let samples: Vec<Sample> = pairs.iter().map(|&(t, _)| Sample { t, v: 0.0 }).collect();
        let want: Vec<i64> = pairs.iter().map(|&(_, st)| st).collect();
        let runs = StartRuns::from_starts(pairs.iter().map(|p| p.0), &want);
        prop_assert_eq!(runs.starts_of(&samples), want.clone());
        let mut buf = Vec::new();
        runs.encode(&mut buf);
        let mut d = vigil_tsdb::encoding::Decoder::new(&buf);
        let back = StartRuns::decode(&mut d).expect("decode");
        prop_assert!(d.is_empty());
        prop_assert_eq!(back.starts_of(&samples), want.clone());
        // Any suffix of the samples reads the same starts (a query from a later time).
        let k = samples.len() / 2;
        prop_assert_eq!(back.starts_of(&samples[k..]), want[k..].to_vec());
    }

    #[test]
    fn start_runs_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut d = vigil_tsdb::encoding::Decoder::new(&bytes);
        if let Ok(runs) = vigil_tsdb::starts::StartRuns::decode(&mut d) {
            let samples: Vec<vigil_tsdb::Sample> = (0..20).map(|i| vigil_tsdb::Sample { t: i * 1000, v: 0.0 }).collect();
            let _ = runs.starts_of(&samples);
        }
    }
}
