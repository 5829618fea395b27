//! Which raw events go to the event store: every 5xx, up to a rate per route (so that an
//! outage on one route cannot flood the store), and a small uniform sample of the rest.
//!
//! The decisions depend on the events alone (event time, request id), not on the wall clock or
//! on arrival order within a minute, so a replay after a crash keeps the same events (and the
//! store replaces each with itself).

use rustc_hash::FxHashMap;
use vigil_tsdb::events::Kept;

use crate::kong::KongEvent;

/// How events are sampled.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleConfig {
    /// 5xx kept per (service, route) per minute of event time; the rest are counted.
    pub errors_per_route_per_minute: u32,
    /// Share of the other events kept (0 to 1).
    pub sample_rate: f64,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            errors_per_route_per_minute: 600,
            sample_rate: 0.001,
        }
    }
}

/// The sampler's state: 5xx kept per route in the current minute.
#[derive(Debug, Default)]
pub struct Sampler {
    cfg: SampleConfig,
    minute: i64,
    /// 5xx kept this minute, by a hash of (service, route) (64 bits: two routes sharing a
    /// budget is not a practical concern).
    errors: FxHashMap<u64, u32>,
    /// 5xx not kept because their route was over its rate.
    pub overflow: u64,
    /// Events kept, by reason.
    pub kept_errors: u64,
    /// Events kept for the uniform sample.
    pub kept_samples: u64,
}

impl Sampler {
    /// A sampler.
    pub fn new(cfg: SampleConfig) -> Sampler {
        Sampler {
            cfg,
            ..Sampler::default()
        }
    }

    /// Whether to keep `ev`, and why.
    pub fn keep(&mut self, ev: &KongEvent<'_>) -> Option<Kept> {
        if ev.status >= 500 {
            let minute = ev.started_at.div_euclid(60_000);
            if minute > self.minute {
                self.minute = minute;
                self.errors.clear();
            }
            let key = {
                use std::hash::{BuildHasher, Hash, Hasher};
                let mut h = rustc_hash::FxBuildHasher.build_hasher();
                ev.service.as_deref().unwrap_or("unknown").hash(&mut h);
                ev.route.as_deref().unwrap_or("unknown").hash(&mut h);
                h.finish()
            };
            let n = self.errors.entry(key).or_insert(0);
            if *n >= self.cfg.errors_per_route_per_minute {
                self.overflow += 1;
                return None;
            }
            *n += 1;
            self.kept_errors += 1;
            return Some(Kept::Error);
        }
        if self.cfg.sample_rate > 0.0 && uniform(ev) < self.cfg.sample_rate {
            self.kept_samples += 1;
            return Some(Kept::Sample);
        }
        None
    }
}

/// A number in [0, 1) that depends only on the event: its request id, or its time and URI.
fn uniform(ev: &KongEvent<'_>) -> f64 {
    // FNV-1a, then the top 53 bits as a fraction.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    match ev.request_id.as_deref() {
        Some(id) if !id.is_empty() => eat(id.as_bytes()),
        _ => {
            eat(&ev.started_at.to_le_bytes());
            eat(ev.uri.as_bytes());
        }
    }
    // A final mix, so that similar ids spread over the whole range.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use vigil_tsdb::Timestamp;

    use super::*;

    fn ev(status: u16, route: &str, id: &str, t: Timestamp) -> KongEvent<'static> {
        KongEvent {
            started_at: t,
            method: Cow::Borrowed("GET"),
            uri: Cow::Borrowed("/a"),
            status,
            latency_request_ms: 1.0,
            latency_proxy_ms: None,
            latency_kong_ms: None,
            service: Some(Cow::Borrowed("svc")),
            route: Some(Cow::Owned(route.to_owned())),
            route_paths: b"",
            consumer: None,
            request_id: Some(Cow::Owned(id.to_owned())),
            client_ip: None,
            response_size: 0,
        }
    }

    #[test]
    fn every_error_up_to_the_rate_per_route_and_minute() {
        let mut s = Sampler::new(SampleConfig {
            errors_per_route_per_minute: 3,
            sample_rate: 0.0,
        });
        let t = 1_795_150_800_000;
        let kept: Vec<bool> = (0..5)
            .map(|i| s.keep(&ev(503, "a", &i.to_string(), t)).is_some())
            .collect();
        assert_eq!(kept, [true, true, true, false, false]);
        // Another route has its own budget; the next minute starts again.
        assert_eq!(s.keep(&ev(500, "b", "x", t)), Some(Kept::Error));
        assert_eq!(s.keep(&ev(500, "a", "y", t + 60_000)), Some(Kept::Error));
        assert_eq!((s.overflow, s.kept_errors), (2, 5));
        assert_eq!(s.keep(&ev(200, "a", "z", t)), None);
    }

    #[test]
    fn the_uniform_sample_is_about_the_rate_and_the_same_every_time() {
        let mut s = Sampler::new(SampleConfig {
            errors_per_route_per_minute: 0,
            sample_rate: 0.01,
        });
        let t = 1_795_150_800_000;
        let picks: Vec<usize> = (0..100_000)
            .filter(|i| s.keep(&ev(200, "a", &format!("{i:032x}"), t)).is_some())
            .collect();
        assert!((800..1200).contains(&picks.len()), "{}", picks.len());
        let mut again = Sampler::new(s.cfg.clone());
        let repeat: Vec<usize> = (0..100_000)
            .filter(|i| again.keep(&ev(200, "a", &format!("{i:032x}"), t)).is_some())
            .collect();
        assert_eq!(picks, repeat);
    }
}
