//! Writes a block from series in label order.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use rustc_hash::FxHashMap;

use super::{BlockMeta, CHUNKS_MAGIC, FILE_HEADER_LEN, FORMAT_VERSION, INDEX_MAGIC, INDEX_VERSION_STARTS};
use crate::chunkenc::{SAMPLES_PER_CHUNK, encode_smallest};
use crate::encoding::{put_uvarint, put_varint};
use crate::error::{Error, Result};
use crate::labels::Labels;
use crate::starts::StartRuns;
use crate::storage::{Series, Timestamp};

/// A series as the index lists it: labels, (min_t, max_t, offset) per chunk, start times.
type Indexed = (Labels, Vec<(Timestamp, Timestamp, u64)>, Option<StartRuns>);

/// One series to write: labels and samples in time order, with their start times if any.
pub(crate) type BlockSeries = Series;

/// What a new block stands for, beyond its samples.
#[derive(Debug, Clone, Default)]
pub(crate) struct BlockSpec {
    /// End of the time range the block stands for (raised to its newest sample + 1).
    pub(crate) end: Timestamp,
    /// Compaction level.
    pub(crate) level: u32,
    /// The blocks it was made from.
    pub(crate) sources: Vec<String>,
    /// 0 for raw samples, else the rollup resolution.
    pub(crate) resolution_ms: i64,
}

/// Writes the series (sorted by labels, each with samples in time order; series without
/// samples are skipped) as a new block under `parent`, returning its meta. The block appears
/// whole or not at all: it is written to `<id>.tmp`, synced, and renamed.
pub(crate) fn write_block(
    parent: &Path,
    series: impl IntoIterator<Item = Result<BlockSeries>>,
    spec: BlockSpec,
) -> Result<Option<BlockMeta>> {
    let id = super::new_id();
    let tmp = parent.join(format!("{id}.tmp"));
    fs::create_dir_all(&tmp).map_err(Error::io("create", &tmp))?;
    let result = write_files(&tmp, &id, series, spec);
    let meta = match result {
        Ok(Some(meta)) => meta,
        other => {
            let _ = fs::remove_dir_all(&tmp);
            return other;
        }
    };
    // The files' directory entries are durable before the block appears under its name.
    fs::File::open(&tmp)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("sync", &tmp))?;
    let dir = parent.join(&id);
    fs::rename(&tmp, &dir).map_err(Error::io("rename", &dir))?;
    fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("sync", parent))?;
    Ok(Some(meta))
}

fn write_files(
    dir: &Path,
    id: &str,
    series: impl IntoIterator<Item = Result<BlockSeries>>,
    spec: BlockSpec,
) -> Result<Option<BlockMeta>> {
    let chunks_path = dir.join("chunks");
    let file = fs::File::create(&chunks_path).map_err(Error::io("create", &chunks_path))?;
    let mut chunks = BufWriter::with_capacity(1 << 20, file);
    let header = |magic: [u8; 4]| {
        let mut h = [0u8; FILE_HEADER_LEN];
        h[..4].copy_from_slice(&magic);
        h[4] = FORMAT_VERSION;
        h
    };
    chunks
        .write_all(&header(CHUNKS_MAGIC))
        .map_err(Error::io("write", &chunks_path))?;
    let mut offset = FILE_HEADER_LEN as u64;
    let mut meta = BlockMeta {
        version: FORMAT_VERSION,
        id: id.to_owned(),
        min_t: i64::MAX,
        max_t: i64::MIN,
        end: spec.end,
        series: 0,
        samples: 0,
        chunks: 0,
        level: spec.level,
        sources: spec.sources,
        resolution_ms: spec.resolution_ms,
    };
    // Series as they go into the index: labels and (min_t, max_t, offset) per chunk.
    let mut written: Vec<Indexed> = Vec::new();
    let mut buf = Vec::new();
    for s in series {
        let Series {
            labels,
            samples,
            starts,
        } = s?;
        if samples.is_empty() {
            continue;
        }
        debug_assert!(
            written.last().is_none_or(|(l, ..)| *l < labels),
            "series in label order"
        );
        let mut metas = Vec::with_capacity(samples.len().div_ceil(SAMPLES_PER_CHUNK));
        let mut pairs = Vec::with_capacity(SAMPLES_PER_CHUNK);
        for part in samples.chunks(SAMPLES_PER_CHUNK) {
            pairs.clear();
            pairs.extend(part.iter().map(|s| (s.t, s.v)));
            let (encoding, bytes) = encode_smallest(&pairs);
            // Length, encoding, bits, and a CRC-32 of encoding and bits.
            buf.clear();
            put_uvarint(&mut buf, bytes.len() as u64);
            let body = buf.len();
            buf.push(encoding as u8);
            buf.extend_from_slice(&bytes);
            let crc = crc32fast::hash(&buf[body..]);
            buf.extend_from_slice(&crc.to_le_bytes());
            chunks.write_all(&buf).map_err(Error::io("write", &chunks_path))?;
            metas.push((part[0].t, part[part.len() - 1].t, offset));
            offset += buf.len() as u64;
        }
        meta.min_t = meta.min_t.min(samples[0].t);
        meta.max_t = meta.max_t.max(samples[samples.len() - 1].t);
        meta.series += 1;
        meta.samples += samples.len() as u64;
        meta.chunks += metas.len() as u64;
        let starts = starts
            .map(|st| StartRuns::from_starts(samples.iter().map(|s| s.t), &st))
            .filter(|r| !r.is_empty());
        written.push((labels, metas, starts));
    }
    if written.is_empty() {
        return Ok(None);
    }
    meta.end = meta.end.max(meta.max_t + 1);
    let file = chunks
        .into_inner()
        .map_err(|e| Error::io("write", &chunks_path)(e.into_error()))?;
    file.sync_all().map_err(Error::io("sync", &chunks_path))?;

    let mut index_header = header(INDEX_MAGIC);
    if written.iter().any(|(.., st)| st.is_some()) {
        index_header[4] = INDEX_VERSION_STARTS;
    }
    let index = encode_index(&written, index_header);
    let index_path = dir.join("index");
    write_synced(&index_path, &index)?;
    let meta_path = dir.join("meta.json");
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::io("encode", &meta_path)(e.into()))?;
    write_synced(&meta_path, &json)?;
    Ok(Some(meta))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(Error::io("create", path))?;
    f.write_all(bytes).map_err(Error::io("write", path))?;
    f.sync_all().map_err(Error::io("sync", path))
}

/// The index file: header, symbols, series, postings, footer (section offsets, CRC-32).
fn encode_index(series: &[Indexed], header: [u8; FILE_HEADER_LEN]) -> Vec<u8> {
    let mut out = header.to_vec();
    // Symbols: every label name and value, sorted, numbered by position (found by hash: a
    // million series make six million lookups).
    let mut symbols: FxHashMap<&str, u64> = FxHashMap::default();
    for (labels, ..) in series {
        for l in labels {
            symbols.entry(&l.name).or_default();
            symbols.entry(&l.value).or_default();
        }
    }
    let mut sorted: Vec<&str> = symbols.keys().copied().collect();
    sorted.sort_unstable();
    let symbols_at = out.len() as u64;
    put_uvarint(&mut out, sorted.len() as u64);
    for (i, s) in sorted.iter().enumerate() {
        symbols.insert(s, i as u64);
        put_uvarint(&mut out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    // Series, in label order; their position is their id in the postings.
    let series_at = out.len() as u64;
    put_uvarint(&mut out, series.len() as u64);
    let mut postings: FxHashMap<(u64, u64), Vec<u64>> = FxHashMap::default();
    for (i, (labels, chunks, _)) in series.iter().enumerate() {
        put_uvarint(&mut out, labels.len() as u64);
        for l in labels {
            let (n, v) = (symbols[l.name.as_str()], symbols[l.value.as_str()]);
            put_uvarint(&mut out, n);
            put_uvarint(&mut out, v);
            postings.entry((n, v)).or_default().push(i as u64);
        }
        put_uvarint(&mut out, chunks.len() as u64);
        let (mut prev_max, mut prev_off) = (0i64, 0u64);
        for &(min_t, max_t, offset) in chunks {
            put_varint(&mut out, min_t.wrapping_sub(prev_max));
            put_uvarint(&mut out, max_t.wrapping_sub(min_t) as u64);
            put_uvarint(&mut out, offset - prev_off);
            (prev_max, prev_off) = (max_t, offset);
        }
    }
    // Postings: per (name, value) symbol pair, in order, the ascending series positions,
    // delta-coded.
    let mut postings: Vec<((u64, u64), Vec<u64>)> = postings.into_iter().collect();
    postings.sort_unstable_by_key(|(pair, _)| *pair);
    let postings_at = out.len() as u64;
    put_uvarint(&mut out, postings.len() as u64);
    for ((n, v), refs) in &postings {
        put_uvarint(&mut out, *n);
        put_uvarint(&mut out, *v);
        put_postings(&mut out, refs);
    }
    let mut sections = vec![symbols_at, series_at, postings_at];
    // Start times (version 2 only): the series that have them, by position, and their runs.
    if header[4] == INDEX_VERSION_STARTS {
        sections.push(out.len() as u64);
        let with: Vec<(usize, &StartRuns)> = series
            .iter()
            .enumerate()
            .filter_map(|(i, (.., st))| st.as_ref().map(|st| (i, st)))
            .collect();
        put_uvarint(&mut out, with.len() as u64);
        let mut prev = 0;
        for (k, &(i, runs)) in with.iter().enumerate() {
            put_uvarint(&mut out, if k == 0 { i as u64 } else { (i - prev) as u64 });
            prev = i;
            runs.encode(&mut out);
        }
    }
    for at in sections {
        out.extend_from_slice(&at.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A postings list: its count, then the first series position and the gap to each next.
pub(super) fn put_postings(out: &mut Vec<u8>, refs: &[u64]) {
    put_uvarint(out, refs.len() as u64);
    let mut prev = 0;
    for (i, &r) in refs.iter().enumerate() {
        put_uvarint(out, if i == 0 { r } else { r - prev });
        prev = r;
    }
}
