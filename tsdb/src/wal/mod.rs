//! The write-ahead log: every commit is framed, checksummed and appended to numbered segment
//! files before it is acknowledged; on start the log is replayed to rebuild the head.
//!
//! A record cut short by a crash at the end of the newest segment (a torn tail) is truncated and
//! logged. Any other damage stops the open with the file and byte offset, never skipped silently.
//! The byte layout is specified in `tsdb/docs/format/wal.md`.

pub mod record;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
pub use record::{Mark, Record};

/// First bytes of every segment: magic and format version.
pub const SEGMENT_MAGIC: [u8; 4] = *b"VWAL";
/// Current segment format version.
pub const SEGMENT_VERSION: u8 = 1;
/// Segment header: magic (4), version (1), reserved (3).
pub const SEGMENT_HEADER_LEN: usize = 8;
/// Record header: type (1), payload length (4, little-endian), CRC-32 of type and payload (4).
pub const RECORD_HEADER_LEN: usize = 9;
/// Default segment size before the log moves on to a new file.
pub const DEFAULT_SEGMENT_SIZE: u64 = 128 << 20;

/// Appends records to the newest segment.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segment: u64,
    file: File,
    written: u64,
    segment_size: u64,
    buf: Vec<u8>,
    /// Test hook: the next `log` fails as a full disk would.
    #[cfg(test)]
    pub(crate) fail_next_write: bool,
}

/// What replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    /// Segments read.
    pub segments: usize,
    /// Records applied.
    pub records: u64,
    /// Bytes cut from a torn tail, if there was one.
    pub torn_bytes: u64,
    /// The checkpoint replayed first, if there was one.
    pub checkpoint: Option<u64>,
}

impl Wal {
    /// Replays every segment in `dir` in order through `apply`, repairs a torn tail, and opens the
    /// newest segment for appending. Creates `dir` if needed.
    pub fn open(
        dir: &Path,
        segment_size: u64,
        mut apply: impl FnMut(Record) -> std::result::Result<(), String>,
    ) -> Result<(Wal, ReplayStats)> {
        fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        let mut stats = ReplayStats::default();
        // The newest checkpoint stands for every segment up to its number.
        let checkpoint = last_checkpoint(dir)?;
        if let Some(n) = checkpoint {
            let path = checkpoint_path(dir, n).join(segment_name(0));
            let data = fs::read(&path).map_err(Error::io("read", &path))?;
            replay_segment(&path, &data, false, &mut stats, &mut apply)?;
            stats.checkpoint = Some(n);
        }
        let mut segments = list_segments(dir)?;
        if let Some(n) = checkpoint {
            // Segments a checkpoint replaced but a crash left behind.
            for &seg in segments.iter().filter(|&&s| s <= n) {
                let path = segment_path(dir, seg);
                fs::remove_file(&path).map_err(Error::io("remove", &path))?;
            }
            segments.retain(|&s| s > n);
            if segments.first().is_some_and(|&first| first != n + 1) {
                return Err(Error::Corruption {
                    file: segment_path(dir, n + 1),
                    offset: 0,
                    reason: format!("segment missing after checkpoint {n:08}"),
                });
            }
        }
        stats.segments = segments.len();
        let mut tail: Option<(u64, u64)> = None;
        for (i, &seg) in segments.iter().enumerate() {
            let path = segment_path(dir, seg);
            let data = fs::read(&path).map_err(Error::io("read", &path))?;
            let is_last = i + 1 == segments.len();
            let valid_len = replay_segment(&path, &data, is_last, &mut stats, &mut apply)?;
            if is_last {
                tail = Some((seg, valid_len));
            }
        }
        let wal = match tail {
            // The newest segment lost (part of) its header in a crash right after it was created:
            // it holds no records, so start it again.
            Some((seg, valid_len)) if valid_len < SEGMENT_HEADER_LEN as u64 => {
                let path = segment_path(dir, seg);
                tracing::warn!(file = %path.display(), "WAL: recreating a segment whose header was cut short");
                fs::remove_file(&path).map_err(Error::io("remove", &path))?;
                Wal::create_segment(dir, seg, segment_size)?
            }
            Some((seg, valid_len)) => {
                let path = segment_path(dir, seg);
                let file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(Error::io("open", &path))?;
                let on_disk = file.metadata().map_err(Error::io("stat", &path))?.len();
                if on_disk != valid_len {
                    tracing::warn!(file = %path.display(), offset = valid_len, cut = on_disk - valid_len,
                        "WAL: truncating torn tail");
                    stats.torn_bytes = on_disk - valid_len;
                    file.set_len(valid_len).map_err(Error::io("truncate", &path))?;
                    file.sync_all().map_err(Error::io("sync", &path))?;
                }
                Wal {
                    dir: dir.to_owned(),
                    segment: seg,
                    file,
                    written: valid_len,
                    segment_size,
                    buf: Vec::new(),
                    #[cfg(test)]
                    fail_next_write: false,
                }
            }
            None => Wal::create_segment(dir, checkpoint.map_or(0, |n| n + 1), segment_size)?,
        };
        Ok((wal, stats))
    }

    /// Replaces every segment written so far with a checkpoint: the log moves on to a new
    /// segment, `write` logs the records that stand for everything before it (the live series,
    /// their samples and the source marks), and once that is durable the old segments and
    /// checkpoints are deleted. Commits must not run meanwhile (the caller holds the WAL).
    pub fn checkpoint(&mut self, write: impl FnOnce(&mut CheckpointWriter<'_>) -> Result<()>) -> Result<u64> {
        let n = self.segment;
        self.rotate()?;
        let tmp = self.dir.join(format!("{}.tmp", checkpoint_name(n)));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(Error::io("remove", &tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(Error::io("create", &tmp))?;
        let mut w = Wal::create_segment(&tmp, 0, u64::MAX)?;
        let mut cw = CheckpointWriter { wal: &mut w };
        write(&mut cw)?;
        w.sync()?;
        drop(w);
        let done = checkpoint_path(&self.dir, n);
        fs::rename(&tmp, &done).map_err(Error::io("rename", &done))?;
        sync_dir(&self.dir)?;
        for seg in list_segments(&self.dir)?.into_iter().filter(|&s| s <= n) {
            let path = segment_path(&self.dir, seg);
            fs::remove_file(&path).map_err(Error::io("remove", &path))?;
        }
        for old in checkpoints(&self.dir)?.into_iter().filter(|&c| c < n) {
            let path = checkpoint_path(&self.dir, old);
            fs::remove_dir_all(&path).map_err(Error::io("remove", &path))?;
        }
        sync_dir(&self.dir)?;
        Ok(n)
    }

    fn create_segment(dir: &Path, segment: u64, segment_size: u64) -> Result<Wal> {
        let path = segment_path(dir, segment);
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(Error::io("create", &path))?;
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        header[..4].copy_from_slice(&SEGMENT_MAGIC);
        header[4] = SEGMENT_VERSION;
        file.write_all(&header).map_err(Error::io("write", &path))?;
        file.sync_all().map_err(Error::io("sync", &path))?;
        sync_dir(dir)?;
        Ok(Wal {
            dir: dir.to_owned(),
            segment,
            file,
            written: SEGMENT_HEADER_LEN as u64,
            segment_size,
            buf: Vec::new(),
            #[cfg(test)]
            fail_next_write: false,
        })
    }

    /// Appends records as one write: `records` is a list of (type, payload). Either all of them
    /// reach the file or, after a crash, replay sees a torn tail and drops the incomplete ones.
    pub fn log(&mut self, records: &[(u8, &[u8])]) -> Result<()> {
        self.buf.clear();
        for &(typ, payload) in records {
            if u32::try_from(payload.len()).is_err() {
                let path = segment_path(&self.dir, self.segment);
                let err = std::io::Error::new(std::io::ErrorKind::InvalidInput, "WAL record over 4 GiB");
                return Err(Error::io("write", path)(err));
            }
            frame(typ, payload, &mut self.buf);
        }
        if self.written > SEGMENT_HEADER_LEN as u64 && self.written + self.buf.len() as u64 > self.segment_size {
            self.rotate()?;
        }
        let path = segment_path(&self.dir, self.segment);
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next_write) {
            return Err(Error::io("write", &path)(std::io::Error::other(
                "injected: no space left on device",
            )));
        }
        if let Err(e) = self.file.write_all(&self.buf) {
            // Part of the records may have reached the file. Cut them off, so that a later write
            // does not follow a fragment (which replay would rightly call corruption).
            if let Err(t) = self.file.set_len(self.written) {
                tracing::error!(file = %path.display(), error = %t, "WAL: cannot remove a partial write");
            }
            return Err(Error::io("write", &path)(e));
        }
        self.written += self.buf.len() as u64;
        Ok(())
    }

    /// Forces written records to stable storage.
    pub fn sync(&mut self) -> Result<()> {
        let path = segment_path(&self.dir, self.segment);
        self.file.sync_data().map_err(Error::io("sync", &path))
    }

    fn rotate(&mut self) -> Result<()> {
        self.sync()?;
        let mut next = Wal::create_segment(&self.dir, self.segment + 1, self.segment_size)?;
        // The caller's framed records are in `buf`; carry them over.
        std::mem::swap(&mut next.buf, &mut self.buf);
        *self = next;
        Ok(())
    }

    /// Number of the segment being written.
    pub fn current_segment(&self) -> u64 {
        self.segment
    }
}

/// Frames one record: header then payload (whose length the caller checked fits in 32 bits).
fn frame(typ: u8, payload: &[u8], out: &mut Vec<u8>) {
    let len = payload.len() as u32;
    let mut h = crc32fast::Hasher::new();
    h.update(&[typ]);
    h.update(payload);
    out.push(typ);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// Replays one segment and returns the length of its valid prefix.
fn replay_segment(
    path: &Path,
    data: &[u8],
    is_last: bool,
    stats: &mut ReplayStats,
    apply: &mut impl FnMut(Record) -> std::result::Result<(), String>,
) -> Result<u64> {
    let corrupt = |offset: usize, reason: String| Error::Corruption {
        file: path.to_owned(),
        offset: offset as u64,
        reason,
    };
    if data.len() < SEGMENT_HEADER_LEN {
        // A crash right after creating the newest segment can leave a short header.
        if is_last && SEGMENT_MAGIC.starts_with(&data[..data.len().min(4)]) {
            return Ok(0);
        }
        return Err(corrupt(0, "segment shorter than its header".into()));
    }
    if data[..4] != SEGMENT_MAGIC {
        return Err(corrupt(0, "bad segment magic".into()));
    }
    if data[4] != SEGMENT_VERSION {
        return Err(corrupt(4, format!("unsupported segment version {}", data[4])));
    }
    let mut pos = SEGMENT_HEADER_LEN;
    while pos < data.len() {
        match next_record(data, pos) {
            Ok((typ, payload, end)) => {
                let rec = record::decode(typ, payload).map_err(|e| corrupt(pos, e))?;
                apply(rec).map_err(|e| corrupt(pos, e))?;
                stats.records += 1;
                pos = end;
            }
            Err(reason) if is_last && is_torn_tail(data, pos) => {
                tracing::debug!(offset = pos, %reason, "WAL: torn tail");
                return Ok(pos as u64);
            }
            Err(reason) => return Err(corrupt(pos, reason)),
        }
    }
    Ok(pos as u64)
}

/// Splits off the record at `pos`: (type, payload, end offset), or why it is invalid.
fn next_record(data: &[u8], pos: usize) -> std::result::Result<(u8, &[u8], usize), String> {
    let header = data
        .get(pos..pos + RECORD_HEADER_LEN)
        .ok_or("incomplete record header")?;
    let typ = header[0];
    let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let crc = u32::from_le_bytes([header[5], header[6], header[7], header[8]]);
    let start = pos + RECORD_HEADER_LEN;
    let payload = data
        .get(start..start + len)
        .ok_or("record extends past end of segment")?;
    let mut h = crc32fast::Hasher::new();
    h.update(&[typ]);
    h.update(payload);
    if h.finalize() != crc {
        return Err("record checksum mismatch".into());
    }
    Ok((typ, payload, start + len))
}

/// Whether the invalid record at `pos` is the last thing in the segment: a header or payload
/// that runs to the end of the file, or a zero-filled end, with no intact record after it. A
/// crash can only cut the last write short; an intact record further on means the bytes at
/// `pos` were damaged (a flipped bit in a length, say), which is corruption, not a torn write.
fn is_torn_tail(data: &[u8], pos: usize) -> bool {
    let rest = &data[pos..];
    let reaches_end = rest.iter().all(|&b| b == 0) || rest.len() < RECORD_HEADER_LEN || {
        let len = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        RECORD_HEADER_LEN + len >= rest.len()
    };
    reaches_end && intact_record_after(data, pos).is_none()
}

/// The offset of the first intact record (a known type, a payload that fits, a matching
/// checksum) after `pos`, if any.
fn intact_record_after(data: &[u8], pos: usize) -> Option<usize> {
    (pos + 1..data.len().saturating_sub(RECORD_HEADER_LEN)).find(|&q| {
        matches!(
            data[q],
            record::TYPE_SERIES | record::TYPE_SAMPLES | record::TYPE_SAMPLES_STARTS
        ) && next_record(data, q).is_ok_and(|(_, payload, _)| !payload.is_empty())
    })
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(segment_name(segment))
}

/// Writes the records of a checkpoint.
#[derive(Debug)]
pub struct CheckpointWriter<'a> {
    wal: &'a mut Wal,
}

impl CheckpointWriter<'_> {
    /// Appends one record.
    pub fn log(&mut self, typ: u8, payload: &[u8]) -> Result<()> {
        self.wal.log(&[(typ, payload)])
    }
}

fn segment_name(n: u64) -> String {
    format!("{n:08}")
}

fn checkpoint_name(n: u64) -> String {
    format!("checkpoint.{n:08}")
}

fn checkpoint_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(checkpoint_name(n))
}

/// Complete checkpoints in `dir`, ascending.
fn checkpoints(dir: &Path) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let name = entry.map_err(Error::io("list", dir))?.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|s| s.strip_prefix("checkpoint."))
            .filter(|s| s.len() == 8)
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The newest complete checkpoint; unfinished ones (`.tmp`) are removed.
fn last_checkpoint(dir: &Path) -> Result<Option<u64>> {
    for entry in fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let path = entry.map_err(Error::io("list", dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("checkpoint.") && name.ends_with(".tmp") {
            tracing::info!(dir = %path.display(), "WAL: removing an unfinished checkpoint");
            fs::remove_dir_all(&path).map_err(Error::io("remove", &path))?;
        }
    }
    Ok(checkpoints(dir)?.pop())
}

/// Segment numbers in `dir`, ascending; fails on a gap, which means a segment went missing.
fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut segs = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        let name = entry.file_name();
        if let Some(n) = name
            .to_str()
            .filter(|s| s.len() == 8)
            .and_then(|s| s.parse::<u64>().ok())
        {
            segs.push(n);
        }
    }
    segs.sort_unstable();
    for w in segs.windows(2) {
        if w[1] != w[0] + 1 {
            return Err(Error::Corruption {
                file: segment_path(dir, w[0] + 1),
                offset: 0,
                reason: format!("segment missing between {:08} and {:08}", w[0], w[1]),
            });
        }
    }
    Ok(segs)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;

    fn write_some(dir: &Path, n: u64) {
        let (mut wal, _) = Wal::open(dir, DEFAULT_SEGMENT_SIZE, |_| Ok(())).expect("open");
        for i in 0..n {
            let mut p = Vec::new();
            record::encode_samples(&[], &[(1, i as i64, i as f64)], &mut p);
            wal.log(&[(record::TYPE_SAMPLES, &p)]).expect("log");
        }
    }

    fn replay(dir: &Path) -> Result<(Vec<Record>, ReplayStats)> {
        let mut recs = Vec::new();
        let (_, stats) = Wal::open(dir, DEFAULT_SEGMENT_SIZE, |r| {
            recs.push(r);
            Ok(())
        })?;
        Ok((recs, stats))
    }

    #[test]
    fn round_trip_and_append_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_some(dir.path(), 3);
        write_some(dir.path(), 2);
        let (recs, stats) = replay(dir.path()).expect("replay");
        assert_eq!(recs.len(), 5);
        assert_eq!(stats.torn_bytes, 0);
    }

    #[test]
    fn torn_tail_is_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_some(dir.path(), 3);
        let seg = segment_path(dir.path(), 0);
        let len = fs::metadata(&seg).expect("stat").len();
        let f = OpenOptions::new().write(true).open(&seg).expect("open");
        f.set_len(len - 5).expect("truncate");
        let (recs, stats) = replay(dir.path()).expect("replay");
        assert_eq!(recs.len(), 2);
        assert!(stats.torn_bytes > 0);
        // The repaired log takes appends again.
        write_some(dir.path(), 1);
        assert_eq!(replay(dir.path()).expect("replay").0.len(), 3);
    }

    #[test]
    fn corruption_in_the_middle_is_reported_with_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_some(dir.path(), 3);
        let seg = segment_path(dir.path(), 0);
        let mut data = fs::read(&seg).expect("read");
        let second_record = SEGMENT_HEADER_LEN + (data.len() - SEGMENT_HEADER_LEN) / 3;
        data[second_record + RECORD_HEADER_LEN + 2] ^= 0xff;
        fs::write(&seg, &data).expect("write");
        match replay(dir.path()) {
            Err(Error::Corruption { offset, reason, .. }) => {
                assert_eq!(offset as usize, second_record);
                assert!(reason.contains("checksum"), "{reason}");
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn a_damaged_length_before_intact_records_is_corruption_not_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_some(dir.path(), 3);
        let seg = segment_path(dir.path(), 0);
        let mut data = fs::read(&seg).expect("read");
        let second_record = SEGMENT_HEADER_LEN + (data.len() - SEGMENT_HEADER_LEN) / 3;
        // The length now reaches past the end of the file, as a torn record's would.
        data[second_record + 4] = 0x7f;
        fs::write(&seg, &data).expect("write");
        match replay(dir.path()) {
            Err(Error::Corruption { offset, .. }) => assert_eq!(offset as usize, second_record),
            other => panic!("expected corruption, got {other:?}"),
        }
        // Nothing was cut.
        assert_eq!(fs::read(&seg).expect("read"), data);
    }

    #[test]
    fn a_segment_with_a_cut_header_is_started_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_some(dir.path(), 2);
        let (mut wal, _) = Wal::open(dir.path(), DEFAULT_SEGMENT_SIZE, |_| Ok(())).expect("open");
        wal.rotate().expect("rotate");
        drop(wal);
        // A crash left the new segment with half a header.
        let seg = segment_path(dir.path(), 1);
        fs::write(&seg, &SEGMENT_MAGIC[..3]).expect("write");
        write_some(dir.path(), 1);
        assert_eq!(replay(dir.path()).expect("replay").0.len(), 3);
    }

    #[test]
    fn rotates_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, _) = Wal::open(dir.path(), 64, |_| Ok(())).expect("open");
        let labels = Labels::from_pairs([("__name__", "x")]);
        for r in 0..10 {
            let mut p = Vec::new();
            record::encode_series(&[(r, &labels)], &mut p);
            wal.log(&[(record::TYPE_SERIES, &p)]).expect("log");
        }
        assert!(wal.current_segment() > 2);
        drop(wal);
        let (recs, stats) = replay(dir.path()).expect("replay");
        assert_eq!(recs.len(), 10);
        assert!(stats.segments > 2);
    }
}
