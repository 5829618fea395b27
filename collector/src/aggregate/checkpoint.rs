//! The open windows as bytes. A source that can replay its input (Kafka) stores them with its
//! read positions in the same store commit, so that after a crash the windows come back exactly
//! as they were at those positions and the replay counts every event once. The layout is
//! specified in `tsdb/docs/format/collector-checkpoint.md`.

use vigil_tsdb::Timestamp;
use vigil_tsdb::encoding::{Decoder, put_bytes, put_uvarint, put_varint};

use super::series::GroupLabels;
use super::state::METHODS;
use super::{Aggregator, Delta, Window};

/// The layout's version; a checkpoint of another version is refused (the windows it held are
/// then lost, and said so). Version 2 holds latency sums in milliseconds; version 1 (seconds)
/// is still read, its sums scaled.
const VERSION: u64 = 2;

/// Milliseconds per second: version 1's sums to version 2's.
const V1_SUM_SCALE: f64 = 1000.0;

/// What a checkpoint held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Restored {
    /// Open windows brought back.
    pub windows: usize,
    /// Events in them.
    pub events: u64,
}

impl Aggregator {
    /// The open windows, the end of the closed ones and the newest event time, as bytes.
    pub fn checkpoint(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(256);
        put_uvarint(&mut b, VERSION);
        put_opt(&mut b, self.closed_until);
        put_opt(&mut b, self.max_event_t);
        put_uvarint(&mut b, self.kinds.len() as u64);
        put_uvarint(&mut b, self.cfg.buckets.len() as u64 + 1);
        put_uvarint(&mut b, self.open.len() as u64);
        for (start, w) in &self.open {
            put_varint(&mut b, *start);
            put_uvarint(&mut b, w.deltas.len() as u64);
            for d in &w.deltas {
                let g = &self.keys.groups[d.group as usize];
                let r = &self.keys.routes[g.route as usize];
                put_bytes(&mut b, r.service.as_bytes());
                put_bytes(&mut b, r.name.as_bytes());
                put_bytes(&mut b, METHODS[g.method() as usize].as_bytes());
                put_bytes(&mut b, self.keys.paths[g.path() as usize].as_bytes());
                put_uvarint(&mut b, d.statuses.len() as u64);
                for &(status, n) in &d.statuses {
                    put_uvarint(&mut b, u64::from(status));
                    put_uvarint(&mut b, u64::from(n));
                }
                for (buckets, sum, count) in &d.hists {
                    for &n in buckets {
                        put_uvarint(&mut b, u64::from(n));
                    }
                    b.extend_from_slice(&sum.to_le_bytes());
                    put_uvarint(&mut b, u64::from(*count));
                }
                put_uvarint(&mut b, d.bytes);
            }
        }
        b
    }

    /// Brings back the open windows of a [`checkpoint`](Aggregator::checkpoint), after the
    /// cumulative values were restored from the store. Histograms are dropped from the windows
    /// (counts and bytes kept) if the configured histograms or buckets changed since.
    pub fn restore_checkpoint(&mut self, bytes: &[u8]) -> Result<Restored, String> {
        let mut d = Decoder::new(bytes);
        let err = |e: vigil_tsdb::encoding::DecodeError| format!("collector checkpoint: {e}");
        let version = d.uvarint().map_err(err)?;
        let sum_scale = match version {
            VERSION => 1.0,
            1 => V1_SUM_SCALE,
            _ => return Err(format!("collector checkpoint: unknown version {version}")),
        };
        let closed_until = get_opt(&mut d).map_err(err)?;
        let max_event_t = get_opt(&mut d).map_err(err)?;
        let n_hists = d.uvarint().map_err(err)? as usize;
        let n_buckets = d.uvarint().map_err(err)? as usize;
        let same_hists = n_hists == self.kinds.len() && n_buckets == self.cfg.buckets.len() + 1;
        if !same_hists {
            tracing::warn!("histogram settings changed: open windows come back without their latencies");
        }
        let n_windows = d.uvarint().map_err(err)?;
        let mut restored = Restored::default();
        let mut open = std::collections::BTreeMap::new();
        for _ in 0..n_windows {
            let start = d.varint().map_err(err)?;
            let n_deltas = d.uvarint().map_err(err)?;
            let mut window = Window::default();
            for _ in 0..n_deltas {
                let labels = GroupLabels {
                    service: d.len_str().map_err(err)?,
                    route: d.len_str().map_err(err)?,
                    method: d.len_str().map_err(err)?,
                    path: d.len_str().map_err(err)?,
                };
                let group =
                    self.keys
                        .find_or_create_by_labels(&labels, &self.kinds, &self.cfg.buckets, &mut self.table);
                let n_statuses = d.uvarint().map_err(err)?;
                let mut statuses = Vec::new();
                for _ in 0..n_statuses {
                    let status = u16::try_from(d.uvarint().map_err(err)?).map_err(|e| e.to_string())?;
                    let n = u32::try_from(d.uvarint().map_err(err)?).map_err(|e| e.to_string())?;
                    restored.events += u64::from(n);
                    statuses.push((status, n));
                }
                let mut hists = Vec::with_capacity(n_hists);
                for _ in 0..n_hists {
                    let mut buckets = Vec::with_capacity(n_buckets);
                    for _ in 0..n_buckets {
                        buckets.push(u32::try_from(d.uvarint().map_err(err)?).map_err(|e| e.to_string())?);
                    }
                    let sum = f64::from_bits(d.u64_le().map_err(err)?) * sum_scale;
                    let count = u32::try_from(d.uvarint().map_err(err)?).map_err(|e| e.to_string())?;
                    hists.push((buckets, sum, count));
                }
                if !same_hists {
                    hists = vec![(vec![0; self.cfg.buckets.len() + 1], 0.0, 0); self.kinds.len()];
                }
                let bytes = d.uvarint().map_err(err)?;
                window.set_slot(group, window.deltas.len());
                window.deltas.push(Delta {
                    group,
                    statuses,
                    hists,
                    bytes,
                });
            }
            open.insert(start, window);
        }
        if !d.is_empty() {
            return Err("collector checkpoint: trailing bytes".into());
        }
        restored.windows = open.len();
        self.open = open;
        if closed_until.is_some() {
            self.closed_until = closed_until;
        }
        if max_event_t.is_some() {
            self.max_event_t = max_event_t;
        }
        Ok(restored)
    }
}

fn put_opt(b: &mut Vec<u8>, t: Option<Timestamp>) {
    match t {
        Some(t) => {
            b.push(1);
            put_varint(b, t);
        }
        None => b.push(0),
    }
}

fn get_opt(d: &mut Decoder<'_>) -> Result<Option<Timestamp>, vigil_tsdb::encoding::DecodeError> {
    match d.bytes(1)?[0] {
        0 => Ok(None),
        1 => d.varint().map(Some),
        _ => Err(vigil_tsdb::encoding::DecodeError::BadTag),
    }
}
