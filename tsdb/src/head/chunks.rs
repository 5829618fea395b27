//! Where the head keeps its closed chunks: append-only segments, out of the series.
//!
//! A chunk that fills is immutable; the series keeps a 16-byte reference to it (its first
//! timestamp and a [`ChunkRef`]) and the bytes go to the store's active segment. A full segment
//! is sealed: with a data directory it is written to `chunks_head/` and memory-mapped, so the
//! bytes live in the page cache (read back on demand, dropped by the kernel under pressure)
//! rather than on the heap; without one it stays on the heap, still without an allocation per
//! chunk. A segment goes when no series refers to it any more ([`ChunkStore::sweep`], after
//! each cut).
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

/// Where a closed chunk is: segment sequence number (24 bits), byte offset of its record in the
/// segment (32 bits), and its sample count (8 bits), so that counting samples reads no chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkRef(u64);

impl ChunkRef {
    fn new(segment: u32, offset: u32, samples: u8) -> Self {
        debug_assert!(segment < 1 << 24);
        ChunkRef(u64::from(segment) << 40 | u64::from(offset) << 8 | u64::from(samples))
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
    /// The file, deleted when the segment is dropped (the last reader let go of it).
    path: Option<PathBuf>,
}

#[derive(Debug)]
enum SegmentBytes {
    Heap(Box<[u8]>),
    Mapped(memmap2::Mmap),
}

impl Segment {
    fn bytes(&self) -> &[u8] {
        match &self.bytes {
            SegmentBytes::Heap(b) => b,
            SegmentBytes::Mapped(m) => m,
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
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
    /// Records that failed their checksum when read (decoded as no samples).
    pub damaged: u64,
}

/// The head's closed chunks.
#[derive(Debug)]
pub(crate) struct ChunkStore {
    /// `chunks_head/` of the data directory; `None` keeps sealed segments on the heap.
    dir: Option<PathBuf>,
    segment_size: usize,
    active: Mutex<Active>,
    /// The active segment's sequence number, readable without its lock: a reference to an
    /// older segment is read from `sealed`, which got the segment before this moved past it.
    active_seq: AtomicU32,
    sealed: RwLock<FxHashMap<u32, Arc<Segment>>>,
    /// Bytes of sealed segments, on the heap and in files.
    heap_bytes: AtomicU64,
    file_bytes: AtomicU64,
    /// Records that failed their checksum when read.
    damaged: AtomicU64,
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
            active: Mutex::new(Active {
                seq: 1,
                buf: new_segment(segment_size),
            }),
            active_seq: AtomicU32::new(1),
            sealed: RwLock::default(),
            heap_bytes: AtomicU64::new(0),
            file_bytes: AtomicU64::new(0),
            damaged: AtomicU64::new(0),
        }
    }

    /// Stores a closed chunk of `samples` samples (at most [`SAMPLES_PER_CHUNK`]).
    pub(crate) fn put(&self, encoding: Encoding, chunk: &[u8], samples: usize) -> ChunkRef {
        let len = u16::try_from(chunk.len()).expect("a closed chunk of 120 samples is under 3 KB");
        let mut a = self.active.lock();
        // A record larger than a whole segment gets one of its own.
        if a.buf.len() > HEADER_LEN && a.buf.len() + RECORD_HEAD + chunk.len() + RECORD_TAIL > self.segment_size {
            self.seal(&mut a);
        }
        let offset = a.buf.len();
        a.buf.extend_from_slice(&len.to_be_bytes());
        a.buf.push(encoding as u8);
        a.buf.extend_from_slice(chunk);
        let crc = checksum(encoding as u8, chunk);
        a.buf.extend_from_slice(&crc.to_be_bytes());
        ChunkRef::new(a.seq, offset as u32, samples as u8)
    }

    /// The chunk `r` names. Damage on disk is reported here and reads as no samples.
    pub(crate) fn get(&self, r: ChunkRef) -> ChunkBytes {
        if r.segment() >= self.active_seq.load(Ordering::Acquire) {
            let a = self.active.lock();
            if a.seq == r.segment() {
                let (encoding, chunk) = record(&a.buf, r.offset()).expect("the active segment is written whole");
                return ChunkBytes::Owned {
                    bytes: Arc::from(chunk),
                    encoding,
                };
            }
        }
        // Sealed before the active sequence moved past it, kept while a series refers to it.
        let Some(segment) = self.sealed.read().get(&r.segment()).cloned() else {
            tracing::error!(segment = r.segment(), "a head chunk refers to a segment that is gone");
            self.damaged.fetch_add(1, Ordering::Relaxed);
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
                let path = segment.path.as_deref().unwrap_or(Path::new("(memory)"));
                tracing::error!(file = %path.display(), offset = r.offset(), "head chunk fails its checksum");
                self.damaged.fetch_add(1, Ordering::Relaxed);
                ChunkBytes::Damaged
            }
        }
    }

    /// Drops the sealed segments no series refers to. `live` are the segments the series'
    /// chunks named when the caller looked, and `before` the active sequence number read
    /// before it looked: later segments may hold chunks closed meanwhile.
    pub(crate) fn sweep(&self, live: &FxHashSet<u32>, before: u32) -> usize {
        let mut sealed = self.sealed.write();
        let gone: Vec<u32> = sealed
            .keys()
            .copied()
            .filter(|s| *s < before && !live.contains(s))
            .collect();
        for s in &gone {
            if let Some(seg) = sealed.remove(s) {
                let n = seg.bytes().len() as u64;
                match seg.bytes {
                    SegmentBytes::Heap(_) => self.heap_bytes.fetch_sub(n, Ordering::Relaxed),
                    SegmentBytes::Mapped(_) => self.file_bytes.fetch_sub(n, Ordering::Relaxed),
                };
            }
        }
        gone.len()
    }

    /// The active segment's sequence number.
    pub(crate) fn active_seq(&self) -> u32 {
        self.active_seq.load(Ordering::Acquire)
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
        self.damaged.load(Ordering::Relaxed)
    }

    /// Seals the active segment and starts the next one.
    fn seal(&self, a: &mut Active) {
        let buf = std::mem::replace(&mut a.buf, new_segment(self.segment_size));
        let n = buf.len() as u64;
        let segment = match self.dir.as_deref().map(|d| write_and_map(d, a.seq, &buf)) {
            Some(Ok((path, map))) => {
                self.file_bytes.fetch_add(n, Ordering::Relaxed);
                Segment {
                    bytes: SegmentBytes::Mapped(map),
                    path: Some(path),
                }
            }
            other => {
                if let Some(Err(e)) = other {
                    tracing::warn!(error = %e, "head chunks stay in memory: cannot write their segment");
                }
                self.heap_bytes.fetch_add(n, Ordering::Relaxed);
                Segment {
                    bytes: SegmentBytes::Heap(buf.into_boxed_slice()),
                    path: None,
                }
            }
        };
        self.sealed.write().insert(a.seq, Arc::new(segment));
        a.seq += 1;
        self.active_seq.store(a.seq, Ordering::Release);
    }
}

fn new_segment(size: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(size);
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&[VERSION, 0, 0, 0]);
    buf
}

/// Writes a sealed segment to `dir` and maps it.
fn write_and_map(dir: &Path, seq: u32, buf: &[u8]) -> Result<(PathBuf, memmap2::Mmap)> {
    let path = dir.join(format!("{seq:08}"));
    fs::write(&path, buf).map_err(Error::io("write", &path))?;
    let file = fs::File::open(&path).map_err(Error::io("open", &path))?;
    // SAFETY: the file is written whole before it is mapped and never modified; only this
    // store deletes it, once no reader holds the map (deleting keeps a mapping valid on Unix).
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(Error::io("mmap", &path))?;
    Ok((path, map))
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
