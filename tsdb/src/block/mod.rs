//! Blocks: immutable, time-partitioned parts of the store on disk.
//!
//! ```text
//! blocks/<id>/meta.json   what the block covers: time range, counts, compaction level, sources
//!            /chunks      XOR chunks back to back, each with its length and a checksum (mmap)
//!            /index       symbols, series (labels as symbol ids, chunk references), postings
//! ```
//!
//! A block is written once, into a temporary directory renamed into place, and never changed;
//! compaction writes a new block from several and deletes them. Both files are mapped into
//! memory and read in place. At open the index is checked whole; the block then keeps its
//! symbols (each name and value once), where each series' entry starts, and where each label
//! pair's postings list starts. Lists, labels and chunk lists are decoded from the mapped index
//! when a query needs them, and matchers are answered by the same set algebra as the head's
//! ([`crate::head::select_postings`]): an open block costs about 12 bytes per series, not its
//! labels, postings and every chunk's place. The byte layouts are specified in
//! `tsdb/docs/format/block.md`.

pub(crate) mod mmap;
mod writer;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

pub(crate) use writer::{BlockSeries, BlockSpec, write_block};

use crate::chunkenc::{Encoding, for_each_sample};
use crate::encoding::{DecodeError, Decoder};
use crate::error::{Error, Result};
use crate::head::{PostingLists, SeriesRef, merge_lists, select_postings};
use crate::labels::{Label, Labels, Matcher, Symbol};
use crate::starts::StartRuns;
use crate::storage::{Sample, Series, SeriesReader, Timestamp};
use mmap::Mapped;

/// The first bytes of a chunks file.
const CHUNKS_MAGIC: [u8; 4] = *b"VCHK";
/// The first bytes of an index file.
const INDEX_MAGIC: [u8; 4] = *b"VIDX";
/// The format version both files carry after their magic.
const FORMAT_VERSION: u8 = 1;
/// The index version of a block whose series have start times: a fourth section holds them.
/// A block without start times is written as version 1, byte for byte as before.
const INDEX_VERSION_STARTS: u8 = 2;
/// Magic, version and three reserved bytes.
const FILE_HEADER_LEN: usize = 8;

/// What a block holds, as `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// Format version.
    pub version: u8,
    /// The block's id: its directory name.
    pub id: String,
    /// Oldest sample, milliseconds.
    pub min_t: Timestamp,
    /// Newest sample, milliseconds (inclusive).
    pub max_t: Timestamp,
    /// End of the time range the block stands for (exclusive; at least `max_t + 1`): the
    /// head holds nothing before it once the block exists.
    pub end: Timestamp,
    /// Series in the block.
    pub series: u64,
    /// Samples in the block.
    pub samples: u64,
    /// Chunks in the block.
    pub chunks: u64,
    /// 1 for a block cut from the head, one more per compaction.
    pub level: u32,
    /// The blocks this one was compacted from (empty for a block cut from the head); for a
    /// rollup, the raw block it was made from.
    #[serde(default)]
    pub sources: Vec<String>,
    /// 0 for raw samples; for a rollup, its resolution in milliseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resolution_ms: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Where a chunk is and what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkMeta {
    pub(crate) min_t: Timestamp,
    pub(crate) max_t: Timestamp,
    /// Offset of the chunk's length prefix in the chunks file.
    pub(crate) offset: u64,
}

/// A block open for reading.
#[derive(Debug)]
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    chunks: Mapped,
    index: Mapped,
    /// The index's symbols, by id: a series' labels share them.
    symbols: Vec<Symbol>,
    /// Where each series' entry starts in the index, by position.
    series: EntryOffsets,
    /// Label name -> value -> where its postings list (count, then series) starts in the index.
    postings: FxHashMap<Symbol, FxHashMap<Symbol, u64>>,
    /// Start times of the series that have them, by position.
    starts: BTreeMap<usize, StartRuns>,
    /// Bytes on disk (chunks + index + meta).
    size: u64,
}

impl Block {
    /// Opens the block in `dir`, checking both files' headers and the index checksum.
    pub fn open(dir: &Path) -> Result<Block> {
        let meta_path = dir.join("meta.json");
        let meta_bytes = fs::read(&meta_path).map_err(Error::io("read", &meta_path))?;
        let meta: BlockMeta = serde_json::from_slice(&meta_bytes).map_err(|e| Error::Corruption {
            file: meta_path.clone(),
            offset: 0,
            reason: format!("invalid meta.json: {e}"),
        })?;
        if meta.version != FORMAT_VERSION {
            return Err(Error::Corruption {
                file: meta_path,
                offset: 0,
                reason: format!("unsupported block version {}", meta.version),
            });
        }
        let chunks_path = dir.join("chunks");
        let chunks = Mapped::open(&chunks_path)?;
        check_header(&chunks_path, &chunks, CHUNKS_MAGIC, &[FORMAT_VERSION])?;
        let index_path = dir.join("index");
        let index = Mapped::open(&index_path)?;
        check_header(
            &index_path,
            &index,
            INDEX_MAGIC,
            &[FORMAT_VERSION, INDEX_VERSION_STARTS],
        )?;
        let (symbols, series, postings, starts) = read_index(&index).map_err(|(offset, reason)| Error::Corruption {
            file: index_path.clone(),
            offset: offset as u64,
            reason,
        })?;
        let size = (chunks.len() + index.len() + meta_bytes.len()) as u64;
        Ok(Block {
            dir: dir.to_owned(),
            meta,
            chunks,
            index,
            symbols,
            series,
            postings,
            starts,
            size,
        })
    }

    /// What the block holds.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes on disk.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the block has samples in `[mint, maxt]`.
    pub fn overlaps(&self, mint: Timestamp, maxt: Timestamp) -> bool {
        self.meta.min_t <= maxt && self.meta.max_t >= mint
    }

    /// The series matching `matchers`, by position, sorted by labels (the index keeps them
    /// sorted, and postings are positions).
    fn matching(&self, matchers: &[Matcher]) -> Vec<usize> {
        select_postings(self, matchers)
            .into_iter()
            .map(|r| r as usize)
            .collect()
    }

    /// How many series match `matchers` (from the postings; no series decoded).
    pub(crate) fn matching_count(&self, matchers: &[Matcher]) -> usize {
        select_postings(self, matchers).len()
    }

    /// The postings list starting at `at` in the index (checked whole at open).
    fn postings_list(&self, at: u64) -> Vec<SeriesRef> {
        let mut d = Decoder::new(&self.index.bytes()[at as usize..]);
        let n = d.uvarint().unwrap_or_default();
        let mut refs = Vec::with_capacity(n as usize);
        let mut prev = 0;
        for i in 0..n {
            let delta = d.uvarint().unwrap_or_default();
            prev = if i == 0 { delta } else { prev + delta };
            refs.push(prev);
        }
        refs
    }

    /// The encoded chunk at `offset` (its length prefix), or why it cannot be read.
    fn chunk(&self, offset: u64) -> Result<(Encoding, &[u8])> {
        let corrupt = |reason: String| Error::Corruption {
            file: self.dir.join("chunks"),
            offset,
            reason,
        };
        let data = self.chunks.bytes();
        let start = usize::try_from(offset).map_err(|_| corrupt("offset out of range".into()))?;
        let mut d = Decoder::new(data.get(start..).ok_or_else(|| corrupt("offset past the end".into()))?);
        let len = d.uvarint().map_err(|e| corrupt(e.to_string()))?;
        // The body is the encoding byte and `len` bytes of data; a damaged length may be any
        // number (found by fuzzing: u64::MAX overflowed here).
        let body_len = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(1))
            .ok_or_else(|| corrupt("chunk length out of range".into()))?;
        let body = d.bytes(body_len).map_err(|e| corrupt(e.to_string()))?;
        let crc = d.bytes(4).map_err(|e| corrupt(e.to_string()))?;
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err(corrupt("chunk checksum mismatch".into()));
        }
        let encoding =
            Encoding::from_byte(body[0]).ok_or_else(|| corrupt(format!("unknown chunk encoding {}", body[0])))?;
        Ok((encoding, &body[1..]))
    }

    /// Series `i`'s entry in the index, read in place (checked whole at open).
    fn entry(&self, i: usize) -> Entry<'_> {
        let at = self.series.get(i);
        Entry {
            d: Decoder::new(&self.index.bytes()[at..]),
            symbols: &self.symbols,
        }
    }

    /// Where series `i`'s chunks are and what they cover, oldest first.
    fn chunk_metas(&self, i: usize) -> Vec<ChunkMeta> {
        let mut e = self.entry(i);
        e.skip_labels();
        e.chunks()
    }

    /// Decodes the samples of series `i` in `[mint, maxt]` into `out`.
    fn samples_into(&self, i: usize, mint: Timestamp, maxt: Timestamp, out: &mut Vec<Sample>) -> Result<()> {
        self.chunk_samples_into(&self.chunk_metas(i), mint, maxt, out)
    }

    /// Decodes the samples in `[mint, maxt]` of `chunks` (one series' chunks) into `out`.
    fn chunk_samples_into(
        &self,
        chunks: &[ChunkMeta],
        mint: Timestamp,
        maxt: Timestamp,
        out: &mut Vec<Sample>,
    ) -> Result<()> {
        for c in chunks.iter().filter(|c| c.max_t >= mint && c.min_t <= maxt) {
            let (encoding, bytes) = self.chunk(c.offset)?;
            let clean = for_each_sample(encoding, bytes, |t, v| {
                if t >= mint && t <= maxt {
                    out.push(Sample { t, v });
                }
                t <= maxt
            });
            if !clean {
                return Err(Error::Corruption {
                    file: self.dir.join("chunks"),
                    offset: c.offset,
                    reason: "chunk ends early".into(),
                });
            }
        }
        Ok(())
    }

    /// Every series with the time of its newest sample in the block, and its position.
    pub(crate) fn newest_per_series(&self) -> impl Iterator<Item = (usize, Labels, Timestamp)> + '_ {
        (0..self.series.len()).filter_map(|i| {
            let mut e = self.entry(i);
            let labels = e.labels();
            e.chunks().last().map(|c| (i, labels, c.max_t))
        })
    }

    /// The newest sample of series `i`.
    pub(crate) fn last_sample(&self, i: usize) -> Result<Option<Sample>> {
        let chunks = self.chunk_metas(i);
        let Some(last) = chunks.last() else {
            return Ok(None);
        };
        let mut samples = Vec::with_capacity(1);
        self.chunk_samples_into(std::slice::from_ref(last), last.max_t, last.max_t, &mut samples)?;
        Ok(samples.pop())
    }

    /// The timestamps of series `i`'s samples in `[mint, maxt]`.
    pub(crate) fn times_in(&self, i: usize, mint: Timestamp, maxt: Timestamp) -> Result<Vec<Timestamp>> {
        let mut samples = Vec::new();
        self.samples_into(i, mint, maxt, &mut samples)?;
        Ok(samples.into_iter().map(|s| s.t).collect())
    }

    /// Series `i` with its samples in `[mint, maxt]` and their start times.
    fn read_series(&self, i: usize, mint: Timestamp, maxt: Timestamp) -> Result<Series> {
        let mut entry = self.entry(i);
        let labels = entry.labels();
        let mut samples = Vec::new();
        self.chunk_samples_into(&entry.chunks(), mint, maxt, &mut samples)?;
        Ok(Series {
            labels,
            starts: self.starts.get(&i).map(|r| r.starts_of(&samples)),
            samples,
        })
    }

    /// Every series with all its samples, in label order: what compaction reads.
    pub(crate) fn all_series(&self) -> impl Iterator<Item = Result<Series>> + '_ {
        (0..self.series.len()).map(|i| self.read_series(i, i64::MIN, i64::MAX))
    }

    /// Whether `[mint, maxt]` covers the whole block.
    pub fn covered_by(&self, mint: Timestamp, maxt: Timestamp) -> bool {
        mint <= self.meta.min_t && maxt >= self.meta.max_t
    }
}

impl SeriesReader for Block {
    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Result<Vec<Series>> {
        let one = |&i: &usize| -> Result<Option<Series>> {
            let s = self.read_series(i, mint, maxt)?;
            Ok((!s.samples.is_empty()).then_some(s))
        };
        let out = crate::map_series(&self.matching(matchers), one)
            .into_iter()
            .collect::<Result<Vec<Option<Series>>>>()?;
        Ok(out.into_iter().flatten().collect())
    }

    fn series_labels(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<Labels> {
        self.matching(matchers)
            .into_iter()
            .filter_map(|i| {
                let mut e = self.entry(i);
                let labels = e.labels();
                e.chunks()
                    .iter()
                    .any(|c| c.max_t >= mint && c.min_t <= maxt)
                    .then_some(labels)
            })
            .collect()
    }

    fn label_names(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<String> {
        if matchers.is_empty() && self.covered_by(mint, maxt) {
            let mut names: Vec<String> = self.postings.keys().map(ToString::to_string).collect();
            names.sort_unstable();
            return names;
        }
        crate::storage::names_of(&self.series_labels(matchers, mint, maxt))
    }

    fn label_values(&self, name: &str, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<String> {
        if matchers.is_empty() && self.covered_by(mint, maxt) {
            let mut values: Vec<String> = self
                .postings
                .get(name)
                .map(|v| v.keys().map(ToString::to_string).collect())
                .unwrap_or_default();
            values.sort_unstable();
            return values;
        }
        crate::storage::values_of(name, &self.series_labels(matchers, mint, maxt))
    }
}

impl PostingLists for Block {
    fn list(&self, name: &str, value: &str) -> Vec<SeriesRef> {
        self.postings
            .get(name)
            .and_then(|values| values.get(value))
            .map(|&at| self.postings_list(at))
            .unwrap_or_default()
    }

    fn union_where(&self, name: &str, keep: impl Fn(&str) -> bool) -> Vec<SeriesRef> {
        let Some(values) = self.postings.get(name) else {
            return Vec::new();
        };
        let lists: Vec<Vec<SeriesRef>> = values
            .iter()
            .filter(|(v, _)| keep(v))
            .map(|(_, &at)| self.postings_list(at))
            .collect();
        merge_lists(lists.iter().map(Vec::as_slice))
    }

    fn all(&self) -> Vec<SeriesRef> {
        (0..self.series.len() as SeriesRef).collect()
    }
}

fn check_header(path: &Path, file: &Mapped, magic: [u8; 4], versions: &[u8]) -> Result<()> {
    let corrupt = |offset: u64, reason: &str| Error::Corruption {
        file: path.to_owned(),
        offset,
        reason: reason.into(),
    };
    let b = file.bytes();
    if b.len() < FILE_HEADER_LEN || b[..4] != magic {
        return Err(corrupt(0, "bad magic"));
    }
    if !versions.contains(&b[4]) {
        return Err(corrupt(4, "unsupported version"));
    }
    Ok(())
}

/// The checked index: its symbols, where each series' entry starts (in label order), postings
/// by series position, and the start times of the series that have them.
type Index = (
    Vec<Symbol>,
    EntryOffsets,
    FxHashMap<Symbol, FxHashMap<Symbol, u64>>,
    BTreeMap<usize, StartRuns>,
);

/// Where each series' entry starts in the index, by position: 4 bytes a series while the index
/// is under 4 GiB (every index but of tens of millions of series), else 8.
#[derive(Debug)]
enum EntryOffsets {
    Narrow(Vec<u32>),
    Wide(Vec<u64>),
}

impl EntryOffsets {
    /// Room for `n` offsets into an index of `len` bytes.
    fn for_index(len: usize, n: usize) -> Self {
        match u32::try_from(len) {
            Ok(_) => EntryOffsets::Narrow(Vec::with_capacity(n)),
            Err(_) => EntryOffsets::Wide(Vec::with_capacity(n)),
        }
    }

    fn push(&mut self, at: usize) {
        match self {
            // Below the index's length, which fits.
            EntryOffsets::Narrow(v) => v.push(at as u32),
            EntryOffsets::Wide(v) => v.push(at as u64),
        }
    }

    fn get(&self, i: usize) -> usize {
        match self {
            EntryOffsets::Narrow(v) => v[i] as usize,
            EntryOffsets::Wide(v) => v[i] as usize,
        }
    }

    fn len(&self) -> usize {
        match self {
            EntryOffsets::Narrow(v) => v.len(),
            EntryOffsets::Wide(v) => v.len(),
        }
    }

    fn shrink_to_fit(&mut self) {
        match self {
            EntryOffsets::Narrow(v) => v.shrink_to_fit(),
            EntryOffsets::Wide(v) => v.shrink_to_fit(),
        }
    }
}

/// A series' entry in a checked index: its labels (symbol id pairs), then its chunks.
struct Entry<'a> {
    d: Decoder<'a>,
    symbols: &'a [Symbol],
}

impl Entry<'_> {
    // The index was checked whole at open (its CRC, and every entry parsed), so reading an
    // entry cannot fail; a default stands in should it ever.
    fn labels(&mut self) -> Labels {
        let n = self.d.uvarint().unwrap_or_default();
        let mut labels = Vec::with_capacity(n.min(64) as usize);
        for _ in 0..n {
            let mut symbol = || {
                let id = self.d.uvarint().unwrap_or_default();
                self.symbols.get(id as usize).cloned().unwrap_or_default()
            };
            let name = symbol();
            labels.push(Label { name, value: symbol() });
        }
        Labels::from_sorted(labels)
    }

    fn skip_labels(&mut self) {
        let n = self.d.uvarint().unwrap_or_default();
        for _ in 0..n {
            let _ = (self.d.uvarint(), self.d.uvarint());
        }
    }

    /// The chunks; call after the labels were read or skipped.
    fn chunks(&mut self) -> Vec<ChunkMeta> {
        let n = self.d.uvarint().unwrap_or_default();
        let mut chunks = Vec::with_capacity(n.min(1 << 16) as usize);
        let (mut prev_max, mut prev_off) = (0i64, 0u64);
        for _ in 0..n {
            let min_t = prev_max.wrapping_add(self.d.varint().unwrap_or_default());
            let max_t = min_t.wrapping_add(self.d.uvarint().unwrap_or_default() as i64);
            let offset = prev_off.wrapping_add(self.d.uvarint().unwrap_or_default());
            chunks.push(ChunkMeta { min_t, max_t, offset });
            (prev_max, prev_off) = (max_t, offset);
        }
        chunks
    }
}

/// Reads an index file; an error carries the offset where it went wrong.
fn read_index(file: &Mapped) -> std::result::Result<Index, (usize, String)> {
    let b = file.bytes();
    // The index ends with the offsets of its sections (`u64` each: three, or four with start
    // times) and a CRC-32 of everything before it.
    let sections = if b.get(4) == Some(&INDEX_VERSION_STARTS) { 4 } else { 3 };
    let footer_len = sections * 8 + 4;
    if b.len() < FILE_HEADER_LEN + footer_len {
        return Err((0, "index shorter than its header and footer".into()));
    }
    let crc_at = b.len() - 4;
    let crc = u32::from_le_bytes([b[crc_at], b[crc_at + 1], b[crc_at + 2], b[crc_at + 3]]);
    if crc32fast::hash(&b[..crc_at]) != crc {
        return Err((crc_at, "index checksum mismatch".into()));
    }
    let footer = b.len() - footer_len;
    let mut f = Decoder::new(&b[footer..crc_at]);
    let section = |f: &mut Decoder<'_>| -> std::result::Result<usize, (usize, String)> {
        let off = f.u64_le().map_err(|e| (footer, e.to_string()))?;
        usize::try_from(off)
            .ok()
            .filter(|o| (FILE_HEADER_LEN..=footer).contains(o))
            .ok_or((footer, format!("section offset {off} out of range")))
    };
    let (symbols_at, series_at, postings_at) = (section(&mut f)?, section(&mut f)?, section(&mut f)?);
    let starts_at = if sections == 4 { section(&mut f)? } else { footer };
    if !(symbols_at <= series_at && series_at <= postings_at && postings_at <= starts_at) {
        return Err((footer, "index sections out of order".into()));
    }

    // Symbols.
    let mut d = Decoder::new(&b[symbols_at..series_at]);
    let err = |d: &Decoder<'_>, base: usize, e: DecodeError| (base + d.position(), e.to_string());
    let n = d.uvarint().map_err(|e| err(&d, symbols_at, e))?;
    let mut symbols: Vec<Symbol> = Vec::with_capacity(n.min(1 << 20) as usize);
    for _ in 0..n {
        let s = d.len_str().map_err(|e| err(&d, symbols_at, e))?;
        if symbols.last().is_some_and(|last| **last >= *s) {
            return Err((symbols_at + d.position(), "symbols out of order".into()));
        }
        symbols.push(s.into());
    }
    let symbol = |d: &Decoder<'_>, base: usize, id: u64| {
        symbols
            .get(id as usize)
            .ok_or((base + d.position(), format!("unknown symbol {id}")))
    };

    // Series: each entry parsed once to check it and find where the next starts; only where
    // each starts is kept.
    let mut d = Decoder::new(&b[series_at..postings_at]);
    let n = d.uvarint().map_err(|e| err(&d, series_at, e))?;
    let mut series = EntryOffsets::for_index(b.len(), n.min(1 << 24) as usize);
    // The previous entry's and this entry's labels as symbol ids (name, value, name, ...): the
    // symbols are numbered in sorted order, so ids compare as the strings do.
    let (mut prev, mut ids): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
    for _ in 0..n {
        series.push(series_at + d.position());
        let n_labels = d.uvarint().map_err(|e| err(&d, series_at, e))?;
        ids.clear();
        for i in 0..n_labels {
            let name = d.uvarint().map_err(|e| err(&d, series_at, e))?;
            symbol(&d, series_at, name)?;
            if i > 0 && ids[ids.len() - 2] >= name {
                return Err((series_at + d.position(), "label names out of order".into()));
            }
            let value = d.uvarint().map_err(|e| err(&d, series_at, e))?;
            symbol(&d, series_at, value)?;
            ids.extend([name, value]);
        }
        if series.len() > 1 && prev >= ids {
            return Err((series_at + d.position(), "series out of label order".into()));
        }
        std::mem::swap(&mut prev, &mut ids);
        let n_chunks = d.uvarint().map_err(|e| err(&d, series_at, e))?;
        let mut offset = 0u64;
        for _ in 0..n_chunks {
            d.varint().map_err(|e| err(&d, series_at, e))?;
            d.uvarint().map_err(|e| err(&d, series_at, e))?;
            let delta = d.uvarint().map_err(|e| err(&d, series_at, e))?;
            offset = offset
                .checked_add(delta)
                .ok_or((series_at + d.position(), "chunk offset past 2^64".to_owned()))?;
        }
    }
    series.shrink_to_fit();

    // Postings: (name, value, positions) for every label pair, each list checked; where each
    // starts is kept.
    let mut d = Decoder::new(&b[postings_at..starts_at]);
    let n = d.uvarint().map_err(|e| err(&d, postings_at, e))?;
    let mut postings: FxHashMap<Symbol, FxHashMap<Symbol, u64>> = FxHashMap::default();
    for _ in 0..n {
        let name = d.uvarint().map_err(|e| err(&d, postings_at, e))?;
        let value = d.uvarint().map_err(|e| err(&d, postings_at, e))?;
        let (name, value) = (symbol(&d, postings_at, name)?, symbol(&d, postings_at, value)?);
        let at = (postings_at + d.position()) as u64;
        let count = d.uvarint().map_err(|e| err(&d, postings_at, e))?;
        let mut prev = 0u64;
        for i in 0..count {
            let delta = d.uvarint().map_err(|e| err(&d, postings_at, e))?;
            prev = if i == 0 { delta } else { prev.saturating_add(delta) };
            if prev >= series.len() as u64 || (i > 0 && delta == 0) {
                return Err((
                    postings_at + d.position(),
                    format!("posting {prev} past the series or repeated"),
                ));
            }
        }
        postings.entry(name.clone()).or_default().insert(value.clone(), at);
    }

    // Start times: (position, runs) for the series that have them.
    let mut starts = BTreeMap::new();
    if starts_at < footer {
        let mut d = Decoder::new(&b[starts_at..footer]);
        let n = d.uvarint().map_err(|e| err(&d, starts_at, e))?;
        let mut at = 0u64;
        for i in 0..n {
            let delta = d.uvarint().map_err(|e| err(&d, starts_at, e))?;
            let next = if i == 0 {
                Some(delta)
            } else {
                at.checked_add(delta).filter(|_| delta > 0)
            };
            at = match next {
                Some(n) if n < series.len() as u64 => n,
                _ => {
                    return Err((
                        starts_at + d.position(),
                        "start times for a series out of order or past the series".into(),
                    ));
                }
            };
            let runs = StartRuns::decode(&mut d).map_err(|e| err(&d, starts_at, e))?;
            starts.insert(at as usize, runs);
        }
        if !d.is_empty() {
            return Err((starts_at + d.position(), "trailing bytes after the start times".into()));
        }
    }
    Ok((symbols, series, postings, starts))
}

/// The blocks in `dir` (each a subdirectory with a `meta.json`), oldest first. Leftovers of an
/// interrupted write (`*.tmp`) or deletion (`*.deleted`) and blocks that a completed compaction
/// replaced are deleted.
pub(crate) fn open_all(dir: &Path) -> Result<Vec<Block>> {
    fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    let mut blocks = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io("read", dir))? {
        let path = entry.map_err(Error::io("read", dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.ends_with(".tmp") || name.ends_with(".deleted") {
            tracing::info!(dir = %path.display(), "removing an unfinished block or deletion");
            fs::remove_dir_all(&path).map_err(Error::io("remove", &path))?;
            continue;
        }
        if path.is_dir() && !name.ends_with(".corrupt") {
            match Block::open(&path) {
                Ok(b) => blocks.push(b),
                // One damaged block must not keep the store from opening: it is set aside,
                // kept for inspection, and reported.
                Err(e) => {
                    let aside = path.with_extension("corrupt");
                    tracing::error!(block = %path.display(), error = %e, aside = %aside.display(),
                        "block cannot be read; set aside, its samples are missing from queries");
                    fs::rename(&path, &aside).map_err(Error::io("rename", &path))?;
                }
            }
        }
    }
    // A compaction that finished writing but was cut before deleting its sources.
    let replaced: Vec<String> = blocks.iter().flat_map(|b| b.meta.sources.clone()).collect();
    let (gone, mut blocks): (Vec<Block>, Vec<Block>) = blocks.into_iter().partition(|b| replaced.contains(&b.meta.id));
    for b in gone {
        tracing::info!(block = %b.meta.id, "removing a block that compaction replaced");
        let doomed = b.dir.with_extension("deleted");
        fs::rename(&b.dir, &doomed).map_err(Error::io("rename", &b.dir))?;
        fs::remove_dir_all(&doomed).map_err(Error::io("remove", &doomed))?;
    }
    blocks.sort_by_key(|b| (b.meta.min_t, b.meta.max_t));
    Ok(blocks)
}

/// A new block id: the time it was made and a random part, so ids sort by creation.
pub(crate) fn new_id() -> String {
    format!("{:013x}-{:08x}", crate::time::now_ms(), fastrand::u32(..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{put_uvarint, put_varint};

    /// One series entry: (name id, value id) pairs, then (min_t delta, duration, offset delta)
    /// per chunk.
    type RawEntry = (Vec<(u64, u64)>, Vec<(i64, u64, u64)>);

    /// An index written by hand, with a valid CRC: whatever it says is taken as written.
    fn index(symbols: &[&str], series: &[RawEntry], postings: &[(u64, u64, Vec<u64>)]) -> Vec<u8> {
        let mut out = INDEX_MAGIC.to_vec();
        out.extend([FORMAT_VERSION, 0, 0, 0]);
        let symbols_at = out.len() as u64;
        put_uvarint(&mut out, symbols.len() as u64);
        for s in symbols {
            put_uvarint(&mut out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        let series_at = out.len() as u64;
        put_uvarint(&mut out, series.len() as u64);
        for (labels, chunks) in series {
            put_uvarint(&mut out, labels.len() as u64);
            for &(n, v) in labels {
                put_uvarint(&mut out, n);
                put_uvarint(&mut out, v);
            }
            put_uvarint(&mut out, chunks.len() as u64);
            for &(min, dur, off) in chunks {
                put_varint(&mut out, min);
                put_uvarint(&mut out, dur);
                put_uvarint(&mut out, off);
            }
        }
        let postings_at = out.len() as u64;
        put_uvarint(&mut out, postings.len() as u64);
        for (n, v, refs) in postings {
            put_uvarint(&mut out, *n);
            put_uvarint(&mut out, *v);
            writer::put_postings(&mut out, refs);
        }
        for at in [symbols_at, series_at, postings_at] {
            out.extend(at.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend(crc.to_le_bytes());
        out
    }

    fn read(bytes: &[u8]) -> std::result::Result<Index, (usize, String)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index");
        fs::write(&path, bytes).expect("write");
        read_index(&Mapped::open(&path).expect("map"))
    }

    fn reason(bytes: &[u8]) -> String {
        match read(bytes) {
            Ok(_) => panic!("a bad index was taken"),
            Err((_, reason)) => reason,
        }
    }

    const SYMBOLS: [&str; 4] = ["a", "b", "job", "route"];

    #[test]
    fn a_sound_index_reads_in_place() {
        let series = [
            (vec![(2, 0), (3, 1)], vec![(100, 50, 8), (10, 40, 20)]),
            (vec![(2, 1)], vec![(0, 0, 8)]),
        ];
        let postings = [(2, 0, vec![0]), (2, 1, vec![1]), (3, 1, vec![0])];
        let (symbols, offsets, lists, _) = read(&index(&SYMBOLS, &series, &postings)).expect("sound");
        assert_eq!(symbols.len(), 4);
        assert_eq!(offsets.len(), 2);
        assert_eq!(lists.len(), 2, "two names");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index");
        fs::write(&path, index(&SYMBOLS, &series, &postings)).expect("write");
        let map = Mapped::open(&path).expect("map");
        let mut e = Entry {
            d: Decoder::new(&map.bytes()[offsets.get(0)..]),
            symbols: &symbols,
        };
        assert_eq!(e.labels(), Labels::from_pairs([("job", "a"), ("route", "b")]));
        let want = [(100, 150, 8), (160, 200, 28)].map(|(min_t, max_t, offset)| ChunkMeta { min_t, max_t, offset });
        assert_eq!(e.chunks(), want);
    }

    #[test]
    fn an_index_with_a_valid_checksum_is_still_checked_whole() {
        let one = |labels: Vec<(u64, u64)>| (labels, vec![(0, 0, 8)]);
        // A label count that would overflow (or wrap) when doubled: refused, not looped on.
        let huge = index(&SYMBOLS, &[one(vec![(2, 0)])], &[]);
        let mut bytes = huge.clone();
        let at = huge.windows(3).position(|w| w == [1, 1, 2]).expect("the entry") + 1;
        let mut count = Vec::new();
        put_uvarint(&mut count, (1u64 << 63) + 1);
        bytes.splice(at..at + 1, count);
        let crc_at = bytes.len() - 4;
        // The footer's offsets are before the entry's, so only the CRC needs redoing.
        let crc = crc32fast::hash(&bytes[..crc_at]);
        bytes[crc_at..].copy_from_slice(&crc.to_le_bytes());
        assert!(read(&bytes).is_err());

        assert_eq!(reason(&index(&["b", "a"], &[], &[])), "symbols out of order");
        assert_eq!(
            reason(&index(&SYMBOLS, &[one(vec![(3, 0), (2, 1)])], &[])),
            "label names out of order"
        );
        assert_eq!(
            reason(&index(&SYMBOLS, &[one(vec![(2, 1)]), one(vec![(2, 0)])], &[])),
            "series out of label order"
        );
        assert_eq!(
            reason(&index(&SYMBOLS, &[one(vec![(2, 0)]), one(vec![(2, 0)])], &[])),
            "series out of label order"
        );
        assert_eq!(reason(&index(&SYMBOLS, &[one(vec![(2, 9)])], &[])), "unknown symbol 9");
        let chunks = vec![(0, 0, u64::MAX), (0, 0, 1)];
        assert_eq!(
            reason(&index(&SYMBOLS, &[(vec![(2, 0)], chunks)], &[])),
            "chunk offset past 2^64"
        );
        let past = [(2, 0, vec![0, 1])];
        assert!(reason(&index(&SYMBOLS, &[one(vec![(2, 0)])], &past)).contains("past the series"));
    }
}
