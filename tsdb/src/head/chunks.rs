//! Where the head keeps its closed chunks: append-only segments, out of the series.
//!
//! A chunk that fills is immutable; the series keeps a 16-byte reference to it (its first
//! timestamp and a [`ChunkRef`]) and the bytes go to the store's active segment. A full segment
//! is sealed: with a data directory it is written to `chunks_head/` and memory-mapped, so the
//! bytes live in the page cache (read back on demand, dropped by the kernel under pressure)
//! rather than on the heap; without one it stays on the heap, still without an allocation per
//! chunk. A segment goes when no series refers to it any more ([`ChunkStore::sweep`], after
//! each cut and each delete). Sealing takes the active segment's lock only to swap buffers: the
//! file is written and mapped after it is released, the bytes readable from the heap meanwhile.
//!
//! The files are a spill area, not a durable format: the WAL holds every sample, so at open
//! the store deletes what a previous process left and replay writes the chunks again. Each
//! record carries a CRC-32 so a chunk damaged on disk is reported (file and offset) and not
//! decoded. Byte layout: `tsdb/docs/format/chunks_head.md`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::block::mmap::Mapped;
use crate::chunkenc::{self, Encoding, SAMPLES_PER_CHUNK};
use crate::error::{Error, Result};

/// Segment file header: magic, then a version byte and three reserved zero bytes.
const MAGIC: [u8; 4] = *b"VGHC";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 8;
/// Before each chunk: its length (`u16`, big-endian) and its encoding byte.
const RECORD_HEAD: usize = 3;
/// After each chunk: CRC-32 (IEEE) of the encoding byte and the chunk.
const RECORD_TAIL: usize = 4;
/// 16 MiB: a million counters close about 70 MB of chunks every 20 minutes, so a few segments
/// a wave, each written in one call; small enough that the active one (on the heap) is a
/// small share of the head.
pub const DEFAULT_SEGMENT_SIZE: usize = 16 << 20;

// A reference keeps a chunk's sample count in 8 bits.
const _: () = assert!(SAMPLES_PER_CHUNK <= u8::MAX as usize);

/// Segment numbers are 24 bits. They wrap, skipping 0 and the numbers of segments still held,
/// so a store with tiny segments can run for ever; number 0 names no segment (a reference to
/// it reads as damaged).
const SEQ_MASK: u32 = (1 << 24) - 1;

/// Where a closed chunk is: segment number (24 bits), byte offset of its record in the segment
/// (32 bits), and its sample count (8 bits), so that counting samples reads no chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkRef(u64);

impl ChunkRef {
    fn new(segment: u32, offset: u32, samples: u8) -> Self {
        ChunkRef(u64::from(segment & SEQ_MASK) << 40 | u64::from(offset) << 8 | u64::from(samples))
    }

    pub(crate) fn segment(self) -> u32 {
        (self.0 >> 40) as u32
    }

    pub(crate) fn offset(self) -> usize {
        (self.0 >> 8) as u32 as usize
    }

    /// Samples in the chunk.
    pub(crate) fn samples(self) -> u64 {
        self.0 & 0xff
    }
}

/// A sealed segment: its bytes on the heap, or a file mapped read-only.
#[derive(Debug)]
pub(crate) struct Segment {
    bytes: SegmentBytes,
    /// The file, deleted when the segment is swept.
    path: Option<PathBuf>,
    /// How many segments the store had sealed before this one: orders seals (numbers wrap).
    sealed_after: u64,
}

#[derive(Debug)]
enum SegmentBytes {
    Heap(Vec<u8>),
    Mapped(Mapped),
}

impl Segment {
    fn bytes(&self) -> &[u8] {
        match &self.bytes {
            SegmentBytes::Heap(b) => b,
            SegmentBytes::Mapped(m) => m.bytes(),
        }
    }
}

impl Segment {
    /// Deletes the segment's file, if it has one. Readers that still hold the segment keep
    /// reading its mapping (an unlinked file stays mapped on Unix).
    fn unlink(&self) {
        if let Some(path) = &self.path
            && let Err(e) = fs::remove_file(path)
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a head chunk segment");
        }
    }
}

#[derive(Debug)]
struct Active {
    seq: u32,
    buf: Vec<u8>,
}

/// A closed chunk's bytes, readable without any lock: a range of a sealed segment, or a copy
/// of a chunk in the active one.
#[derive(Debug, Clone)]
pub(crate) enum ChunkBytes {
    Shared {
        segment: Arc<Segment>,
        start: usize,
        len: usize,
        encoding: Encoding,
    },
    Owned {
        bytes: Arc<[u8]>,
        encoding: Encoding,
    },
    /// A record that failed its checksum (reported when read): decodes as no samples.
    Damaged,
}

impl ChunkBytes {
    /// Calls `f` with every sample until it returns `false`.
    pub(crate) fn for_each_sample(&self, f: impl FnMut(i64, f64) -> bool) -> bool {
        match self {
            ChunkBytes::Shared {
                segment,
                start,
                len,
                encoding,
            } => chunkenc::for_each_sample(*encoding, &segment.bytes()[*start..*start + *len], f),
            ChunkBytes::Owned { bytes, encoding } => chunkenc::for_each_sample(*encoding, bytes, f),
            ChunkBytes::Damaged => false,
        }
    }
}

/// Closed head chunks: where their bytes are, and how many could not be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkStats {
    /// Bytes on the heap: the active segment, and sealed ones of a store without files.
    pub memory_bytes: u64,
    /// Bytes in segment files (in the page cache as they are read).
    pub file_bytes: u64,
    /// Records found failing their checksum, each counted once (decoded as no samples).
    pub damaged: u64,
}

/// The head's closed chunks.
#[derive(Debug)]
pub(crate) struct ChunkStore {
    /// `chunks_head/` of the data directory; `None` keeps sealed segments on the heap.
    dir: Option<PathBuf>,
    segment_size: usize,
    /// The highest segment number before they wrap to 1 ([`SEQ_MASK`]; lower in tests).
    max_seq: u32,
    active: Mutex<Active>,
    /// The active segment's number, readable without its lock: a reference to another segment
    /// is read from `sealed`, which got the segment before this moved past it.
    active_seq: AtomicU32,
    sealed: RwLock<FxHashMap<u32, Arc<Segment>>>,
    /// Segments sealed so far.
    seals: AtomicU64,
    /// Bytes of sealed segments, on the heap and in files.
    heap_bytes: AtomicU64,
    file_bytes: AtomicU64,
    /// The references found damaged, so each is reported and counted once.
    damaged: Mutex<FxHashSet<u64>>,
}

impl Default for ChunkStore {
    fn default() -> Self {
        ChunkStore::with_segment_size(None, DEFAULT_SEGMENT_SIZE)
    }
}

impl ChunkStore {
    /// A store whose sealed segments of `segment_size` bytes go to `dir` (created; whatever a
    /// previous process left in it is deleted: replay writes those chunks again).
    pub(crate) fn open(dir: &Path, segment_size: usize) -> Result<ChunkStore> {
        fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        for entry in fs::read_dir(dir).map_err(Error::io("list", dir))? {
            let path = entry.map_err(Error::io("list", dir))?.path();
            fs::remove_file(&path).map_err(Error::io("remove", &path))?;
        }
        Ok(ChunkStore::with_segment_size(Some(dir.to_path_buf()), segment_size))
    }

    fn with_segment_size(dir: Option<PathBuf>, segment_size: usize) -> ChunkStore {
        let segment_size = segment_size.clamp(HEADER_LEN + 1, u32::MAX as usize);
        ChunkStore {
            dir,
            segment_size,
            max_seq: SEQ_MASK,
            active: Mutex::new(Active {
                seq: 1,
                buf: new_segment(segment_size),
            }),
            active_seq: AtomicU32::new(1),
            sealed: RwLock::default(),
            seals: AtomicU64::new(0),
            heap_bytes: AtomicU64::new(0),
            file_bytes: AtomicU64::new(0),
            damaged: Mutex::default(),
        }
    }

    /// Stores a closed chunk of `samples` samples (at most [`SAMPLES_PER_CHUNK`]).
    pub(crate) fn put(&self, encoding: Encoding, chunk: &[u8], samples: usize) -> ChunkRef {
        let len = u16::try_from(chunk.len()).expect("a closed chunk of 120 samples is under 3 KB");
        let mut a = self.active.lock();
        // A record larger than a whole segment gets one of its own.
        let full =
            a.buf.len() > HEADER_LEN && a.buf.len() + RECORD_HEAD + chunk.len() + RECORD_TAIL > self.segment_size;
        let sealed = if full { self.seal(&mut a) } else { None };
        let offset = a.buf.len();
        a.buf.extend_from_slice(&len.to_be_bytes());
        a.buf.push(encoding as u8);
        a.buf.extend_from_slice(chunk);
        let crc = checksum(encoding as u8, chunk);
        a.buf.extend_from_slice(&crc.to_be_bytes());
        // Within the segment size (at most `u32::MAX`) unless every segment number is held
        // and the active one could not be sealed; then the chunk is lost, and reported.
        let r = match u32::try_from(offset) {
            Ok(offset) => ChunkRef::new(a.seq, offset, samples as u8),
            Err(_) => ChunkRef::new(0, 0, samples as u8),
        };
        drop(a);
        if let Some((seq, segment)) = sealed {
            self.spill(seq, &segment);
        }
        r
    }

    /// The chunk `r` names. Damage on disk is reported here and reads as no samples.
    pub(crate) fn get(&self, r: ChunkRef) -> ChunkBytes {
        if r.segment() == self.active_seq.load(Ordering::Acquire) {
            let a = self.active.lock();
            if a.seq == r.segment() {
                let (encoding, chunk) = record(&a.buf, r.offset()).expect("the active segment is written whole");
                return ChunkBytes::Owned {
                    bytes: Arc::from(chunk),
                    encoding,
                };
            }
        }
        // Sealed before the active number moved past it, kept while a series refers to it.
        let Some(segment) = self.sealed.read().get(&r.segment()).cloned() else {
            self.report_damaged(r, || {
                tracing::error!(segment = r.segment(), "a head chunk refers to a segment that is gone");
            });
            return ChunkBytes::Damaged;
        };
        match record(segment.bytes(), r.offset()) {
            Some((encoding, chunk)) => ChunkBytes::Shared {
                start: r.offset() + RECORD_HEAD,
                len: chunk.len(),
                encoding,
                segment,
            },
            None => {
                self.report_damaged(r, || {
                    let path = segment.path.as_deref().unwrap_or(Path::new("(memory)"));
                    tracing::error!(file = %path.display(), offset = r.offset(), "head chunk fails its checksum");
                });
                ChunkBytes::Damaged
            }
        }
    }

    /// Counts and reports a damaged record the first time it is read.
    fn report_damaged(&self, r: ChunkRef, report: impl FnOnce()) {
        if self.damaged.lock().insert(r.0) {
            report();
        }
    }

    /// Drops the sealed segments no series refers to. `live` are the segments the series'
    /// chunks named when the caller looked, and `before` the [`ChunkStore::seals`] read before
    /// it looked: segments sealed since may hold chunks closed meanwhile.
    pub(crate) fn sweep(&self, live: &FxHashSet<u32>, before: u64) -> usize {
        let gone: Vec<Arc<Segment>> = {
            let mut sealed = self.sealed.write();
            let doomed: Vec<u32> = sealed
                .iter()
                .filter(|(seq, s)| s.sealed_after < before && !live.contains(seq))
                .map(|(seq, _)| *seq)
                .collect();
            doomed.iter().filter_map(|seq| sealed.remove(seq)).collect()
        };
        for seg in &gone {
            self.count_bytes(seg, false);
            seg.unlink();
        }
        gone.len()
    }

    /// Segments sealed so far.
    pub(crate) fn seals(&self) -> u64 {
        self.seals.load(Ordering::Acquire)
    }

    /// The active segment's number.
    #[cfg(test)]
    pub(crate) fn active_seq(&self) -> u32 {
        self.active_seq.load(Ordering::Acquire)
    }

    /// Adds or removes a sealed segment's bytes to or from the figures.
    fn count_bytes(&self, seg: &Segment, add: bool) {
        let counter = match seg.bytes {
            SegmentBytes::Heap(_) => &self.heap_bytes,
            SegmentBytes::Mapped(_) => &self.file_bytes,
        };
        let n = seg.bytes().len() as u64;
        if add {
            counter.fetch_add(n, Ordering::Relaxed);
        } else {
            counter.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// What the store holds, and what it could not read.
    pub(crate) fn stats(&self) -> ChunkStats {
        let active = self.active.lock().buf.len() as u64;
        ChunkStats {
            memory_bytes: active + self.heap_bytes.load(Ordering::Relaxed),
            file_bytes: self.file_bytes.load(Ordering::Relaxed),
            damaged: self.damaged(),
        }
    }

    /// Records that failed their checksum (or named a segment that is gone) when read.
    pub(crate) fn damaged(&self) -> u64 {
        self.damaged.lock().len() as u64
    }

    /// Seals the active segment, on the heap, and starts the next one. Returns the sealed
    /// segment to spill to a file once the caller has released the active one's lock; `None`
    /// if there is nothing to spill, or no segment number is free (the active segment then
    /// grows).
    fn seal(&self, a: &mut Active) -> Option<(u32, Arc<Segment>)> {
        let next = {
            let sealed = self.sealed.read();
            // Wrapping past numbers still held: 2^24 of them held at once is not reachable
            // (16 million segments of even a kilobyte are 16 GB of closed chunks).
            std::iter::successors(Some(a.seq), |&s| Some(if s >= self.max_seq { 1 } else { s + 1 }))
                .skip(1)
                .take(self.max_seq as usize)
                .find(|s| *s != a.seq && !sealed.contains_key(s))
        };
        let Some(next) = next else {
            tracing::error!("every head chunk segment number is in use; the active segment grows");
            return None;
        };
        let buf = std::mem::replace(&mut a.buf, new_segment(self.segment_size));
        let segment = Arc::new(Segment {
            bytes: SegmentBytes::Heap(buf),
            path: None,
            sealed_after: self.seals.load(Ordering::Relaxed),
        });
        self.count_bytes(&segment, true);
        self.sealed.write().insert(a.seq, segment.clone());
        self.seals.fetch_add(1, Ordering::Release);
        let seq = std::mem::replace(&mut a.seq, next);
        self.active_seq.store(next, Ordering::Release);
        self.dir.is_some().then_some((seq, segment))
    }

    /// Writes a segment sealed on the heap to a file and maps it in the heap copy's place,
    /// unless a sweep dropped it meanwhile. If the file cannot be written the segment stays on
    /// the heap.
    fn spill(&self, seq: u32, heap: &Arc<Segment>) {
        let Some(dir) = self.dir.as_deref() else { return };
        let mapped = match write_and_map(dir, seq, heap.bytes()) {
            Ok((path, map)) => Segment {
                bytes: SegmentBytes::Mapped(map),
                path: Some(path),
                sealed_after: heap.sealed_after,
            },
            Err(e) => {
                tracing::warn!(error = %e, "head chunks stay in memory: cannot write their segment");
                return;
            }
        };
        let mapped = Arc::new(mapped);
        let replaced = {
            let mut sealed = self.sealed.write();
            match sealed.get_mut(&seq) {
                Some(s) if Arc::ptr_eq(s, heap) => Some(std::mem::replace(s, mapped.clone())),
                _ => None,
            }
        };
        if replaced.is_none() {
            // Swept while it was written.
            mapped.unlink();
        }
        if let Some(old) = replaced {
            self.count_bytes(&old, false);
            self.file_bytes.fetch_add(old.bytes().len() as u64, Ordering::Relaxed);
        }
    }
}

impl Drop for ChunkStore {
    /// The spill files go with the store (the next open would delete them anyway).
    fn drop(&mut self) {
        for segment in self.sealed.get_mut().values() {
            segment.unlink();
        }
    }
}

fn new_segment(size: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(size);
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&[VERSION, 0, 0, 0]);
    buf
}

/// Writes a sealed segment to `dir` and maps it. The file is written under a temporary name
/// and renamed into place, so a reader still mapping an older file of the same number (the
/// numbers wrap) keeps its bytes; a file that could not be written whole is removed.
fn write_and_map(dir: &Path, seq: u32, buf: &[u8]) -> Result<(PathBuf, Mapped)> {
    let path = dir.join(format!("{seq:08}"));
    let tmp = path.with_extension("tmp");
    let written = fs::write(&tmp, buf)
        .map_err(Error::io("write", &tmp))
        .and_then(|()| fs::rename(&tmp, &path).map_err(Error::io("rename", &tmp)));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    match Mapped::open(&path) {
        Ok(map) => Ok((path, map)),
        Err(e) => {
            let _ = fs::remove_file(&path);
            Err(e)
        }
    }
}

/// The record at `offset`: its encoding and chunk, if it is whole and its checksum matches.
fn record(bytes: &[u8], offset: usize) -> Option<(Encoding, &[u8])> {
    let head = bytes.get(offset..offset + RECORD_HEAD)?;
    let len = usize::from(u16::from_be_bytes([head[0], head[1]]));
    let encoding = Encoding::from_byte(head[2])?;
    let start = offset + RECORD_HEAD;
    let chunk = bytes.get(start..start + len)?;
    let crc = bytes.get(start + len..start + len + RECORD_TAIL)?;
    (u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) == checksum(head[2], chunk)).then_some((encoding, chunk))
}

fn checksum(encoding: u8, chunk: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&[encoding]);
    h.update(chunk);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunkenc::int;

    #[test]
    fn segment_numbers_wrap_past_the_ones_still_held() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = ChunkStore::open(dir.path(), 64).expect("open");
        // Numbers 1..=7, so that they wrap every few seals.
        c.max_seq = 7;
        let samples = |i: i64| -> Vec<(i64, f64)> { (0..3).map(|k| (i * 100 + k, (i * 3 + k) as f64)).collect() };
        // Chunks a series still holds: every fifth, for the next 25 puts.
        let mut held: Vec<(i64, ChunkRef)> = Vec::new();
        let mut numbers = FxHashSet::default();
        for i in 0..400 {
            let chunk = int::encode(samples(i)).expect("whole numbers");
            let r = c.put(Encoding::Int, &chunk, 3);
            numbers.insert(r.segment());
            if i % 5 == 0 {
                held.push((i, r));
            }
            held.retain(|(j, _)| i - j < 25);
            let before = c.seals();
            let live: FxHashSet<u32> = held.iter().map(|(_, r)| r.segment()).collect();
            c.sweep(&live, before);
            for (j, r) in &held {
                let mut got = Vec::new();
                assert!(c.get(*r).for_each_sample(|t, v| {
                    got.push((t, v));
                    true
                }));
                assert_eq!(got, samples(*j), "chunk {j} in segment {} at put {i}", r.segment());
            }
        }
        assert!(c.seals() > 100, "{} seals", c.seals());
        assert_eq!(numbers, (1..=7).collect(), "every number used, 0 never");
        assert_eq!(c.damaged(), 0);
        assert!(std::fs::read_dir(dir.path()).expect("list").count() <= 7);
    }
}
