//! A traffic simulator: realistic Kong events from a simulated estate, for the demo, tests and
//! benchmarks.
//!
//! Traffic follows a daily and weekly shape (quiet nights, lunch and evening peaks, lighter
//! weekends); each route gets Poisson arrivals at its rate; statuses follow a per-operation mix;
//! latencies are log-normal. Scripted incidents change one route for a while: an error burst, a
//! latency rise, or a traffic drop.

mod incident;
mod kong_json;
mod shape;
mod topology;

use std::borrow::Cow;
use std::sync::Arc;

use vigil_tsdb::Timestamp;

pub use incident::{Incident, IncidentKind, IncidentSpec};
pub use shape::traffic_multiplier;
pub use topology::{Endpoint, IdKind, Route, Service, Topology};

use crate::kong::KongEvent;

/// The demo's scripted incidents (relative to the start of live traffic), with the alerts of the
/// demo rules (`rules/demo/`) each sets off:
/// - an error burst on payments: `APIErrorBudgetBurn` fires within two minutes (the fast-burn
///   window needs about a minute of it) and resolves about five minutes after the burst, once
///   the 5-minute window is clean again (the burst is short enough that the slow-burn window,
///   6 h, stays under its threshold); `APIErrorRatioAnomaly` fires with it, and the upstream
///   timeouts among the errors push payments' p99 over `APIHighLatencyP99`'s threshold;
/// - a latency rise on search: `APIHighLatencyP99`;
/// - a traffic drop on orders: `APITrafficDrop` (against both D-1 and D-7).
pub const DEMO_SCENARIO: [&str; 3] = [
    "error_burst:payments/payments-route@0s+80s:0.9",
    "latency_rise:search/search-route@3m+4m:8",
    "traffic_drop:orders/orders-route@8m+5m:0.05",
];

/// The share of the simulated estate's peak rates the demo runs at (about 115 requests/s at the
/// daily peak): busy enough to show real rates and rare statuses, light enough that eight days
/// of history backfill in well under half a minute.
pub const DEMO_RATE: f64 = 0.6;

/// Consumers (authenticated callers) and their shares of authenticated traffic.
const CONSUMERS: [(&str, f64); 4] = [
    ("mobile-app", 0.62),
    ("web-app", 0.25),
    ("partner-api", 0.1),
    ("internal-batch", 0.03),
];

/// One simulated request. It owns or shares everything it refers to, so batches of events can
/// be generated on one thread and aggregated on another.
#[derive(Debug, Clone)]
pub struct SimEvent {
    /// Request start, epoch milliseconds.
    pub t: Timestamp,
    /// Service name.
    pub service: &'static str,
    /// Route name.
    pub route: &'static str,
    /// HTTP method.
    pub method: &'static str,
    /// Request URI (with identifiers, sometimes a query string).
    pub uri: String,
    /// Response status.
    pub status: u16,
    /// `latencies.request`, ms.
    pub latency_ms: f64,
    /// `latencies.proxy`, ms (`None`: Kong answered itself).
    pub upstream_ms: Option<f64>,
    /// `latencies.kong`, ms.
    pub kong_ms: f64,
    /// Response size.
    pub size: u64,
    /// Consumer, for authenticated routes.
    pub consumer: Option<&'static str>,
    /// A request id.
    pub request_id: u128,
    /// Client address.
    pub client_ip: [u8; 4],
    /// `route.paths` as JSON.
    pub route_paths: Arc<[u8]>,
}

impl SimEvent {
    /// The event as the decoder would return it (for synthesizing history without JSON).
    pub fn as_kong(&self) -> KongEvent<'_> {
        KongEvent {
            started_at: self.t,
            method: Cow::Borrowed(self.method),
            uri: Cow::Borrowed(&self.uri),
            status: self.status,
            latency_request_ms: self.latency_ms,
            latency_proxy_ms: self.upstream_ms,
            latency_kong_ms: Some(self.kong_ms),
            service: Some(Cow::Borrowed(self.service)),
            route: Some(Cow::Borrowed(self.route)),
            route_paths: &self.route_paths,
            consumer: self.consumer.map(Cow::Borrowed),
            request_id: None,
            client_ip: None,
            response_size: self.size,
        }
    }

    /// Appends the event as Kong's log plugins write it (about 1.3 KB of JSON, no newline).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        kong_json::write(self, out);
    }
}

/// Generates traffic for a topology.
#[derive(Debug)]
pub struct Simulator {
    topology: Topology,
    incidents: Vec<Incident>,
    rng: fastrand::Rng,
    /// Scales every route's rate.
    pub rate_scale: f64,
    /// `route.paths` JSON per route, in `Topology::routes` order.
    route_paths: Vec<Arc<[u8]>>,
    /// Each endpoint's pattern split at its `{id}` placeholders, per route and endpoint.
    pattern_parts: Vec<Vec<Vec<&'static str>>>,
}

impl Simulator {
    /// A simulator with a fixed seed, so that runs repeat.
    pub fn new(topology: Topology, incidents: Vec<Incident>, seed: u64) -> Self {
        let route_paths = topology
            .routes()
            .map(|(_, r)| Arc::from(format!("[\"{}\"]", r.prefix).into_bytes()))
            .collect();
        let pattern_parts = topology
            .routes()
            .map(|(_, r)| r.endpoints.iter().map(|e| e.pattern.split("{id}").collect()).collect())
            .collect();
        Simulator {
            topology,
            incidents,
            rng: fastrand::Rng::with_seed(seed),
            rate_scale: 1.0,
            route_paths,
            pattern_parts,
        }
    }

    /// The estate.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The scripted incidents.
    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// Expected requests per second of a route at time `t`, incidents included.
    pub fn rate(&self, service: &str, route: &Route, t: Timestamp) -> f64 {
        let mut r = route.peak_rps * self.rate_scale * traffic_multiplier(t);
        for inc in self.active_incidents(service, route.name, t) {
            if let IncidentKind::TrafficDrop { factor } | IncidentKind::TrafficSurge { factor } = inc.kind {
                r *= factor;
            }
        }
        r
    }

    fn active_incidents<'s>(
        &'s self,
        service: &'s str,
        route: &'s str,
        t: Timestamp,
    ) -> impl Iterator<Item = &'s Incident> {
        self.incidents.iter().filter(move |i| i.applies(service, route, t))
    }

    /// Generates every request that starts in `[from, to)` in time order, as a real log has
    /// them: a second at a time, sorted.
    pub fn generate_in_order(&mut self, from: Timestamp, to: Timestamp, mut f: impl FnMut(SimEvent)) {
        let mut batch = Vec::new();
        let mut t = from;
        while t < to {
            let end = (t + 1_000).min(to);
            self.generate(t, end, |e| batch.push(e));
            batch.sort_by_key(|e| e.t);
            batch.drain(..).for_each(&mut f);
            t = end;
        }
    }

    /// Generates every request that starts in `[from, to)` and passes each to `f`, route by
    /// route (not in time order).
    pub fn generate(&mut self, from: Timestamp, to: Timestamp, mut f: impl FnMut(SimEvent)) {
        if to <= from {
            return;
        }
        let secs = (to - from) as f64 / 1000.0;
        let routes: Vec<(usize, usize)> = self
            .topology
            .services
            .iter()
            .enumerate()
            .flat_map(|(si, s)| (0..s.routes.len()).map(move |ri| (si, ri)))
            .collect();
        let mid = from + (to - from) / 2;
        for (k, (si, ri)) in routes.into_iter().enumerate() {
            let service = &self.topology.services[si];
            let route = &service.routes[ri];
            let lambda = self.rate(service.name, route, mid) * secs;
            let n = poisson(&mut self.rng, lambda);
            for _ in 0..n {
                let t = from + (self.rng.f64() * (to - from) as f64) as i64;
                f(self.request(si, ri, k, t));
            }
        }
    }

    fn request(&mut self, si: usize, ri: usize, k: usize, t: Timestamp) -> SimEvent {
        let service = &self.topology.services[si];
        let route = &service.routes[ri];
        let rng = &mut self.rng;
        let total: f64 = route.endpoints.iter().map(|e| e.weight).sum();
        let mut pick = rng.f64() * total;
        let e = route
            .endpoints
            .iter()
            .position(|e| {
                pick -= e.weight;
                pick <= 0.0
            })
            .unwrap_or(0);
        let ep = &route.endpoints[e];
        let mut uri = String::with_capacity(ep.pattern.len() + 40);
        for (i, part) in self.pattern_parts[k][e].iter().enumerate() {
            if i > 0 {
                push_id(rng, ep.id, &mut uri);
            }
            uri.push_str(part);
        }
        if ep.method == "GET" && rng.f64() < 0.3 {
            uri.push_str(if rng.bool() {
                "?expand=items"
            } else {
                "?page=2&limit=50"
            });
        }

        let mut latency_factor = 1.0;
        let mut error_rate = 0.0;
        for inc in self.incidents.iter().filter(|i| i.applies(service.name, route.name, t)) {
            match inc.kind {
                IncidentKind::ErrorBurst { error_rate: e } => error_rate = f64::max(error_rate, e),
                IncidentKind::LatencyRise { factor } => latency_factor *= factor,
                IncidentKind::TrafficDrop { .. } | IncidentKind::TrafficSurge { .. } => {}
            }
        }
        let mut status = ep.ok_status;
        let mut roll = rng.f64();
        if roll < error_rate {
            // Incident errors: mostly upstream unavailability, some timeouts and crashes.
            status = match rng.u8(0..10) {
                0..=5 => 503,
                6..=7 => 500,
                8 => 502,
                _ => 504,
            };
        } else {
            roll = rng.f64();
            for &(s, p) in ep.errors {
                if roll < p {
                    status = s;
                    break;
                }
                roll -= p;
            }
        }
        let kong_ms = (1.0 + rng.f64() * 2.0).round();
        let normal = standard_normal(rng);
        let mut latency_ms = (ep.median_ms * latency_factor * (ep.sigma * normal).exp()).max(1.0);
        let mut upstream_ms = Some((latency_ms - kong_ms).max(0.0).round());
        match status {
            // Kong answered itself after the upstream timed out: no upstream latency.
            503 if rng.f64() < 0.5 => {
                upstream_ms = None;
                latency_ms = 60_000.0 + rng.f64() * 50.0;
            }
            504 => latency_ms = 5_000.0 + rng.f64() * 5_000.0,
            401 | 429 => {
                upstream_ms = None;
                latency_ms = kong_ms + rng.f64() * 2.0;
            }
            _ => {}
        }
        let latency_ms = latency_ms.round();
        let size = if status >= 400 {
            120 + rng.u64(0..200)
        } else {
            ep.bytes / 2 + rng.u64(0..ep.bytes)
        };
        let consumer = route.authenticated.then(|| {
            let mut roll = rng.f64();
            CONSUMERS
                .iter()
                .find(|(_, p)| {
                    roll -= p;
                    roll <= 0.0
                })
                .map_or(CONSUMERS[0].0, |(c, _)| *c)
        });
        SimEvent {
            t,
            service: service.name,
            route: route.name,
            method: ep.method,
            uri,
            status,
            latency_ms,
            upstream_ms,
            kong_ms,
            size,
            consumer,
            request_id: rng.u128(..),
            client_ip: [10, rng.u8(0..=255), rng.u8(0..=255), rng.u8(1..=254)],
            route_paths: self.route_paths[k].clone(),
        }
    }
}

fn push_id(rng: &mut fastrand::Rng, kind: IdKind, out: &mut String) {
    use std::fmt::Write;
    match kind {
        IdKind::Numeric => {
            let _ = write!(out, "{}", rng.u32(10_000..100_000_000));
        }
        IdKind::Uuid => {
            let v = rng.u128(..);
            let h = format!("{v:032x}");
            let _ = write!(
                out,
                "{}-{}-4{}-a{}-{}",
                &h[..8],
                &h[8..12],
                &h[13..16],
                &h[17..20],
                &h[20..32]
            );
        }
        IdKind::Hex24 => {
            let _ = write!(out, "{:024x}", rng.u128(..) >> 32);
        }
    }
}

/// A standard normal variate (Box-Muller).
fn standard_normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = rng.f64().max(f64::MIN_POSITIVE);
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A Poisson variate: Knuth's method for small means, a normal approximation for large ones.
fn poisson(rng: &mut fastrand::Rng, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda < 30.0 {
        let limit = (-lambda).exp();
        let mut k = 0;
        let mut p = rng.f64();
        while p > limit {
            k += 1;
            p *= rng.f64();
        }
        return k;
    }
    (lambda + lambda.sqrt() * standard_normal(rng)).round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kong::{RejectCounts, decode_body};

    const FRIDAY_NOON_JAKARTA: Timestamp = 1_795_150_800_000;

    #[test]
    fn generates_decodable_kong_json() {
        let mut sim = Simulator::new(Topology::default(), Vec::new(), 7);
        let mut body = Vec::new();
        let mut n = 0;
        sim.generate(FRIDAY_NOON_JAKARTA, FRIDAY_NOON_JAKARTA + 10_000, |e| {
            e.write_json(&mut body);
            body.push(b'\n');
            n += 1;
        });
        assert!(n > 500, "about 190 req/s at peak, got {n} in 10 s");
        let (mut out, mut rej) = (Vec::new(), RejectCounts::default());
        decode_body(&body, &mut out, &mut rej);
        assert_eq!(rej.total(), 0);
        assert_eq!(out.len(), n);
        let avg = body.len() / n;
        assert!(
            (900..2000).contains(&avg),
            "events should look like Kong's (~1.3 KB), got {avg} B"
        );
    }

    #[test]
    fn incidents_change_their_route_only() {
        let inc = Incident {
            service: Some("payments".into()),
            route: Some("payments-route".into()),
            start: FRIDAY_NOON_JAKARTA,
            end: FRIDAY_NOON_JAKARTA + 60_000,
            kind: IncidentKind::ErrorBurst { error_rate: 0.5 },
        };
        let mut sim = Simulator::new(Topology::default(), vec![inc], 1);
        let (mut pay_err, mut pay, mut other_err) = (0, 0, 0);
        sim.generate(FRIDAY_NOON_JAKARTA, FRIDAY_NOON_JAKARTA + 60_000, |e| {
            let err = e.status >= 500;
            if e.route == "payments-route" {
                pay += 1;
                pay_err += usize::from(err);
            } else {
                other_err += usize::from(err);
            }
        });
        assert!(pay_err * 3 > pay, "{pay_err} of {pay}");
        assert!(other_err < 30, "{other_err}");
    }
}
