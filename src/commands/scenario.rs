//! `vigil scenario --data-dir DIR [--weeks 3] [--copies 3] [--seed 1]`: a labelled history for
//! backtests. Weeks of simulated traffic (daily and weekly shape, a busy day or two, quiet
//! routes) with incidents of five kinds, written into a data directory through the collector as
//! live traffic would be, and the incidents as a JSON list (`DIR/incidents.json`) for `vigil
//! backtest --incidents`.
//!
//! A week more than asked is generated before the scored weeks, so that rules comparing with
//! the day and the week before have a baseline from the first scored minute.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use vigil_collector::Collector;
use vigil_collector::sim::{Incident, IncidentKind, Route, Simulator, Topology, traffic_multiplier};
use vigil_tsdb::time::{format_rfc3339, now_ms};
use vigil_tsdb::{Db, Timestamp};

use super::demo::backfill_range;
use crate::ConfigArgs;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

#[derive(Debug, clap::Args)]
pub(crate) struct ScenarioArgs {
    /// Scored weeks (a week of baseline comes before them).
    #[arg(long, default_value_t = 3)]
    weeks: u32,
    /// Copies of the simulated estate (ten routes each, rates spread by the seed).
    #[arg(long, default_value_t = 3)]
    copies: usize,
    /// Scales every route's rate.
    #[arg(long, default_value_t = 0.3)]
    rate_scale: f64,
    /// Incidents go where the route serves at least this many requests/s (after
    /// `--rate-scale`) all through the time the targets give to catch them (at most two
    /// hours); 0 places them on any route at any hour.
    #[arg(long, value_name = "RPS", default_value_t = 0.5)]
    incident_floor: f64,
    /// Seed of the estate, the incidents and the traffic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// End of the history (midnight UTC of that day; RFC 3339 or unix seconds). By default the
    /// last midnight; give it to make a scenario repeat exactly on another day.
    #[arg(long, value_name = "T")]
    end: Option<String>,
    /// Where the incidents go (default: incidents.json in the data directory).
    #[arg(long, value_name = "FILE")]
    incidents_out: Option<PathBuf>,
    /// The data directory (must be new or empty) and the collector's settings.
    #[command(flatten)]
    config: ConfigArgs,
}

/// One scheduled incident with its label for scoring.
struct Labelled {
    kind: &'static str,
    incident: Incident,
}

pub(crate) fn run(args: &ScenarioArgs) -> Result<()> {
    let cfg = args.config.load()?;
    let dir = cfg.storage.data_dir.clone();
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!(
            "{} is not empty: a scenario is written into a new data directory",
            dir.display()
        );
    }
    if args.weeks == 0 || args.copies == 0 {
        bail!("--weeks and --copies must be at least 1");
    }
    if !(args.rate_scale > 0.0 && args.rate_scale.is_finite()) {
        bail!("--rate-scale must be a positive number");
    }
    if !(args.incident_floor >= 0.0 && args.incident_floor.is_finite()) {
        bail!("--incident-floor must be a number of requests/s, 0 or more");
    }
    let topology = Topology::estate(args.copies, args.seed);
    // Whole days, ending at a midnight (UTC) in the past.
    let end = match &args.end {
        Some(t) => vigil_tsdb::time::parse_timestamp(t).map_err(anyhow::Error::msg)?,
        None => now_ms(),
    }
    .div_euclid(DAY)
        * DAY;
    if end > now_ms() {
        bail!("--end is in the future: a scenario is history");
    }
    let scored_start = end - i64::from(args.weeks) * 7 * DAY;
    let start = scored_start - 7 * DAY;
    let mut rng = fastrand::Rng::with_seed(args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let floor = Floor {
        rps: args.incident_floor,
        rate_scale: args.rate_scale,
    };
    let labelled = incidents(&topology, floor, &mut rng, scored_start, end)?;
    let mut all: Vec<Incident> = labelled.iter().map(|l| l.incident.clone()).collect();
    // A busy day or two: a quarter more traffic everywhere, all day. Not an incident.
    let busy_days = 1 + rng.usize(..2);
    for _ in 0..busy_days {
        let day = scored_start + rng.i64(0..i64::from(args.weeks) * 7) * DAY;
        all.push(Incident {
            service: None,
            route: None,
            start: day,
            end: day + DAY,
            kind: IncidentKind::TrafficSurge { factor: 1.25 },
        });
    }

    let incidents_path = args.incidents_out.clone().unwrap_or_else(|| dir.join("incidents.json"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let db = Arc::new(Db::open(&dir, cfg.storage.options()).with_context(|| format!("opening {}", dir.display()))?);
    let collector = Collector::new(db.clone(), cfg.collector.aggregator());
    let mut sim = Simulator::new(topology.clone(), all, args.seed);
    sim.rate_scale = args.rate_scale;
    let started = Instant::now();
    let hours = ((end - start) / HOUR) as u64;
    let bar = ProgressBar::new(hours);
    bar.set_style(
        ProgressStyle::with_template("{spinner} simulating [{bar:40}] {pos}/{len} h ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    // A day at a time, cutting blocks in between as a running vigil would: the head stays
    // small, and the directory opens without replaying weeks of WAL.
    let mut events = 0;
    let mut day = start;
    while day < end {
        events += backfill_range(&collector, &mut sim, day, (day + DAY).min(end), &bar)?;
        db.maintain().context("cutting blocks")?;
        day += DAY;
    }
    collector.flush().context("writing the last windows")?;
    db.flush_to_blocks().context("cutting the last blocks")?;
    db.sync()?;
    bar.finish_and_clear();

    let list: Vec<_> = labelled
        .iter()
        .map(|l| {
            json!({
                "kind": l.kind,
                "service": l.incident.service,
                "route": l.incident.route,
                "start": l.incident.start / 1000,
                "end": l.incident.end / 1000,
            })
        })
        .collect();
    std::fs::write(&incidents_path, serde_json::to_vec_pretty(&list)?)
        .with_context(|| format!("writing {}", incidents_path.display()))?;
    let routes = topology.routes().count();
    eprintln!(
        "{} routes of {} services, {} requests from {} to {} in {:.0} s; {} incidents in {} ({} busy days)",
        routes,
        topology.services.len(),
        events,
        format_rfc3339(start),
        format_rfc3339(end),
        started.elapsed().as_secs_f64(),
        labelled.len(),
        incidents_path.display(),
        busy_days
    );
    println!(
        "vigil backtest --data-dir {} --start {} --end {} --incidents {} --rules RULES",
        dir.display(),
        scored_start / 1000,
        end / 1000,
        incidents_path.display()
    );
    Ok(())
}

/// One kind of incident in the scenario: its label, how many a week, how long (minutes), and
/// what it does given a uniform draw in `[0, 1)`.
struct Planned {
    kind: &'static str,
    per_week: usize,
    minutes: std::ops::RangeInclusive<i64>,
    make: fn(f64) -> IncidentKind,
}

/// The five kinds with their ranges.
const PLAN: [Planned; 5] = [
    Planned {
        kind: "outage",
        per_week: 2,
        minutes: 5..=20,
        make: |u| IncidentKind::ErrorBurst {
            error_rate: 0.6 + 0.4 * u,
        },
    },
    Planned {
        kind: "error_burst",
        per_week: 2,
        minutes: 10..=40,
        make: |u| IncidentKind::ErrorBurst {
            error_rate: 0.05 + 0.10 * u,
        },
    },
    Planned {
        kind: "slow_burn",
        per_week: 1,
        minutes: 360..=600,
        make: |u| IncidentKind::ErrorBurst {
            error_rate: 0.004 + 0.004 * u,
        },
    },
    Planned {
        kind: "latency_rise",
        per_week: 2,
        minutes: 15..=45,
        make: |u| IncidentKind::LatencyRise { factor: 4.0 + 6.0 * u },
    },
    Planned {
        kind: "traffic_drop",
        per_week: 2,
        minutes: 20..=60,
        make: |u| IncidentKind::TrafficDrop {
            factor: 0.05 + 0.15 * u,
        },
    },
];

/// Where incidents may go: routes serving at least `rps` requests/s (their peak rate times
/// `rate_scale` and the time of day and week) while an incident must be caught.
///
/// Below some rate an incident of the sizes is not there to be seen in the time the
/// targets allow: a slow burn of 0.4 % on a route serving 0.1 requests/s fails 3 requests in
/// two hours, where a healthy one fails 0.3 and one in a few hundred healthy two-hour spans
/// fails 3 as well. The default, 0.5 requests/s (30 a minute), gives every kind at its mildest
/// several times the errors (or missing requests) its alert needs: an outage 36 failed
/// requests in two minutes, a burst 7.5 in five, a slow burn 14 in two hours. Quiet routes
/// still serve their traffic all along, for the false pages; `--incident-floor 0` puts
/// incidents on them too, to see how the rules fare there.
#[derive(Debug, Clone, Copy)]
struct Floor {
    rps: f64,
    rate_scale: f64,
}

impl Floor {
    /// Whether `route` serves at least the floor from `start` for `minutes` (at most the two
    /// hours a slow burn is given), checked every five minutes.
    fn holds(self, route: &Route, start: Timestamp, minutes: i64) -> bool {
        let span = minutes.min(120);
        (0..=span / 5)
            .all(|i| route.peak_rps * self.rate_scale * traffic_multiplier(start + i * 5 * MINUTE) >= self.rps)
    }
}

/// Incidents of the five kinds spread over `[from, to)`: per week two outages, two error
/// bursts, one slow burn, two latency rises and two traffic drops, each on a route busy enough
/// to tell at its time ([`Floor`]), never two on one service the same day.
fn incidents(
    topology: &Topology,
    floor: Floor,
    rng: &mut fastrand::Rng,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<Labelled>> {
    let routes: Vec<(&'static str, &Route)> = topology
        .routes()
        .filter(|(_, r)| r.peak_rps * floor.rate_scale >= floor.rps)
        .map(|(s, r)| (s.name, r))
        .collect();
    if routes.is_empty() {
        bail!(
            "no route of the estate serves {} requests/s at peak: add --copies, or lower --incident-floor",
            floor.rps
        );
    }
    let weeks = ((to - from) / (7 * DAY)).max(1) as usize;
    let mut out: Vec<Labelled> = Vec::new();
    for p in &PLAN {
        for _ in 0..p.per_week * weeks {
            let (kind, minutes) = (p.kind, rng.i64(p.minutes.clone()));
            let incident_kind = (p.make)(rng.f64());
            // Up to 500 tries for a slot busy enough that keeps incidents on one service a day
            // apart.
            let mut placed = false;
            for _ in 0..500 {
                let (service, route) = routes[rng.usize(..routes.len())];
                let start = from + rng.i64(0..(to - from - minutes * MINUTE - DAY).max(1));
                let start = start - start % MINUTE;
                let end = start + minutes * MINUTE;
                if !floor.holds(route, start, minutes) {
                    continue;
                }
                let route = route.name;
                let clash = out.iter().any(|l| {
                    l.incident.service.as_deref() == Some(service)
                        && l.incident.start < end + DAY
                        && start < l.incident.end + DAY
                });
                if clash {
                    continue;
                }
                out.push(Labelled {
                    kind,
                    incident: Incident {
                        service: Some(service.to_owned()),
                        route: Some(route.to_owned()),
                        start,
                        end,
                        kind: incident_kind,
                    },
                });
                placed = true;
                break;
            }
            if !placed {
                eprintln!(
                    "warning: no free slot for a {kind} incident (too few services for the weeks, or too few busy enough): left out"
                );
            }
        }
    }
    out.sort_by_key(|l| l.incident.start);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-16, a Monday, 00:00 UTC.
    const FROM: Timestamp = 1_795_219_200_000;

    fn placed(seed: u64, rps: f64) -> (Topology, Vec<Labelled>) {
        let topology = Topology::estate(3, seed);
        let floor = Floor { rps, rate_scale: 0.3 };
        let mut rng = fastrand::Rng::with_seed(seed);
        let list = incidents(&topology, floor, &mut rng, FROM, FROM + 21 * DAY).expect("incidents");
        (topology, list)
    }

    fn rate_at(topology: &Topology, l: &Labelled, t: Timestamp) -> f64 {
        let (_, route) = topology
            .routes()
            .find(|(s, r)| Some(s.name) == l.incident.service.as_deref() && Some(r.name) == l.incident.route.as_deref())
            .expect("the incident's route");
        route.peak_rps * 0.3 * traffic_multiplier(t)
    }

    #[test]
    fn incidents_go_where_there_is_traffic_to_see_them() {
        for seed in [1, 2, 3, 11] {
            let (topology, list) = placed(seed, 0.5);
            // Three weeks: 6 outages, 6 bursts, 3 slow burns, 6 latency rises, 6 drops.
            assert_eq!(list.len(), 27, "seed {seed}");
            for l in &list {
                let minutes = (l.incident.end - l.incident.start) / MINUTE;
                for m in (0..=minutes.min(120)).step_by(5) {
                    let rps = rate_at(&topology, l, l.incident.start + m * MINUTE);
                    assert!(rps >= 0.5, "seed {seed}: {} at +{m} min serves {rps:.2}/s", l.kind);
                }
                // Never two on one service within a day of each other.
                for o in &list {
                    if !std::ptr::eq(l, o) && o.incident.service == l.incident.service {
                        assert!(o.incident.start >= l.incident.end + DAY || l.incident.start >= o.incident.end + DAY);
                    }
                }
            }
        }
    }

    #[test]
    fn without_a_floor_incidents_also_land_in_quiet_hours() {
        let quiet = [1, 2, 3, 11]
            .into_iter()
            .flat_map(|seed| {
                let (topology, list) = placed(seed, 0.0);
                list.iter()
                    .map(|l| rate_at(&topology, l, l.incident.start))
                    .collect::<Vec<_>>()
            })
            .filter(|&rps| rps < 0.5)
            .count();
        assert!(quiet > 0);
    }
}
