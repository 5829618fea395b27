//! Interned keys and the cumulative state of every (service, route, method, path) group.

use rustc_hash::FxHashMap;
use vigil_tsdb::Timestamp;

use super::series::{
    GroupLabels, KONG_DURATION, REQUEST_DURATION, REQUESTS_TOTAL, RESPONSE_BYTES_TOTAL, SeriesId, SeriesTable,
    UPSTREAM_DURATION, le_label,
};
use crate::template::OTHER;

/// Index of a route in [`Keys::routes`].
pub(crate) type RouteId = u32;
/// Index of a group in [`Keys::groups`].
pub(crate) type GroupId = u32;

/// HTTP methods get their own label value; anything else is `OTHER`, so a client cannot invent
/// series by inventing methods.
pub(crate) const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];

/// The method's index in [`METHODS`], case-insensitively.
pub(crate) fn method_index(m: &str) -> u8 {
    // As Kong logs them: upper case.
    match m {
        "GET" => return 0,
        "POST" => return 1,
        "PUT" => return 2,
        "DELETE" => return 3,
        "PATCH" => return 4,
        _ => {}
    }
    METHODS[..METHODS.len() - 1]
        .iter()
        .position(|known| known.eq_ignore_ascii_case(m))
        .unwrap_or(METHODS.len() - 1) as u8
}

/// The latency histograms kept per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HistKind {
    Request,
    Upstream,
    Kong,
}

impl HistKind {
    pub(crate) fn metric(self) -> &'static str {
        match self {
            HistKind::Request => REQUEST_DURATION,
            HistKind::Upstream => UPSTREAM_DURATION,
            HistKind::Kong => KONG_DURATION,
        }
    }
}

/// A route and the paths seen on it.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) service: Box<str>,
    pub(crate) name: Box<str>,
    /// Path template -> path index in `Keys::paths`.
    pub(crate) paths: FxHashMap<Box<str>, u32>,
    /// Path index of `{other}` on this route, created on first overflow.
    pub(crate) other: Option<u32>,
    /// Requests sent to `{other}` because the route had too many paths.
    pub(crate) overflowed: u64,
    /// `route.paths` as last seen (raw JSON) and the prefixes parsed from it.
    pub(crate) prefixes_raw: Box<[u8]>,
    pub(crate) prefixes: Vec<String>,
}

/// A counter series with its own idleness (a status of a group).
#[derive(Debug, Clone)]
pub(crate) struct Counter {
    pub(crate) series: SeriesId,
    pub(crate) value: f64,
    pub(crate) last_inc: Timestamp,
    pub(crate) active: bool,
    /// When the series last got a sample (value or staleness marker), if ever.
    pub(crate) last_emit: Option<Timestamp>,
}

/// Cumulative histogram: counts per `le` bound (already cumulative), sum and count.
#[derive(Debug, Clone)]
pub(crate) struct Hist {
    pub(crate) kind: HistKind,
    /// First series id: buckets in bound order (+Inf last), then `_sum`, then `_count`.
    pub(crate) first_series: SeriesId,
    pub(crate) le: Vec<f64>,
    /// The sum of latencies in milliseconds: Kong reports whole milliseconds, so this stays a
    /// whole number, exact up to 2^53 ms, and the seconds written (one division) are the
    /// nearest double to a decimal with three places, which blocks store as scaled integers.
    pub(crate) sum_ms: f64,
    pub(crate) count: f64,
}

impl Hist {
    /// The values of the histogram's series in id order: buckets, `_sum` (seconds), `_count`.
    pub(crate) fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.le.iter().copied().chain([self.sum_ms / 1000.0, self.count])
    }

    /// Takes the `_sum` series' value (seconds) back, as milliseconds: the whole number of
    /// milliseconds that [`Hist::values`] turns into exactly these bits, if there is one (a
    /// sum written by this collector), else the product (a sum of fractional milliseconds).
    pub(crate) fn restore_sum(&mut self, seconds: f64) {
        let ms = (seconds * 1000.0).round();
        self.sum_ms = if (ms / 1000.0).to_bits() == seconds.to_bits() {
            ms
        } else {
            seconds * 1000.0
        };
    }
}

/// Everything about one (service, route, method, path).
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) route: RouteId,
    pub(crate) hists: Vec<Hist>,
    pub(crate) bytes_series: SeriesId,
    pub(crate) bytes: f64,
    /// Status code -> counter.
    pub(crate) statuses: Vec<(u16, Counter)>,
    pub(crate) last_inc: Timestamp,
    pub(crate) active: bool,
    pub(crate) last_emit: Option<Timestamp>,
    path: u32,
    method: u8,
}

impl Group {
    /// Index of its path template in [`Keys::paths`].
    pub(crate) fn path(&self) -> u32 {
        self.path
    }

    /// Index of its method in [`METHODS`].
    pub(crate) fn method(&self) -> u8 {
        self.method
    }
}

/// Interning of services, routes, paths and groups, plus the cumulative state per group.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    /// Service name -> (route name -> route id).
    services: FxHashMap<Box<str>, FxHashMap<Box<str>, RouteId>>,
    pub(crate) routes: Vec<Route>,
    /// Path templates by index.
    pub(crate) paths: Vec<Box<str>>,
    /// (path index, method) -> group.
    by_path_method: FxHashMap<(u32, u8), GroupId>,
    pub(crate) groups: Vec<Group>,
    /// Events counted under the route `{other}` because there were too many routes.
    pub(crate) routes_overflowed: u64,
}

impl Keys {
    /// The route id of (service, route), created if new; once there are `cap` routes, new ones
    /// are counted under the service and route `{other}`.
    pub(crate) fn route(&mut self, service: &str, route: &str, cap: usize) -> RouteId {
        if let Some(r) = self.services.get(service).and_then(|m| m.get(route)) {
            return *r;
        }
        let (service, route) = if self.routes.len() >= cap {
            self.routes_overflowed += 1;
            (OTHER, OTHER)
        } else {
            (service, route)
        };
        if let Some(r) = self.services.get(service).and_then(|m| m.get(route)) {
            return *r;
        }
        let id = self.routes.len() as RouteId;
        self.routes.push(Route {
            service: service.into(),
            name: route.into(),
            paths: FxHashMap::default(),
            other: None,
            overflowed: 0,
            prefixes_raw: Box::default(),
            prefixes: Vec::new(),
        });
        self.services
            .entry(service.into())
            .or_default()
            .insert(route.into(), id);
        id
    }

    /// The path index of `template` on `route`, or of `{other}` once the route has `cap` paths
    /// (counted in the route's `overflowed`).
    pub(crate) fn path(&mut self, route: RouteId, template: &str, cap: usize) -> u32 {
        let r = &mut self.routes[route as usize];
        if let Some(p) = r.paths.get(template) {
            return *p;
        }
        let other = template == OTHER;
        if other || r.paths.len() >= cap {
            if !other {
                r.overflowed += 1;
            }
            if let Some(p) = r.other {
                return p;
            }
            let p = self.paths.len() as u32;
            self.paths.push(OTHER.into());
            self.routes[route as usize].other = Some(p);
            return p;
        }
        let p = self.paths.len() as u32;
        self.paths.push(template.into());
        r.paths.insert(template.into(), p);
        p
    }

    /// The group of (path, method), created with its series if new.
    pub(crate) fn group(
        &mut self,
        route: RouteId,
        path: u32,
        method: u8,
        kinds: &[HistKind],
        bounds: &[f64],
        table: &mut SeriesTable,
    ) -> GroupId {
        if let Some(g) = self.by_path_method.get(&(path, method)) {
            return *g;
        }
        let id = self.groups.len() as GroupId;
        let r = &self.routes[route as usize];
        let labels = GroupLabels {
            service: &r.service,
            route: &r.name,
            method: METHODS[method as usize],
            path: &self.paths[path as usize],
        };
        let mut hists = Vec::with_capacity(kinds.len());
        for &kind in kinds {
            let name = kind.metric();
            let mut first = None;
            for &b in bounds.iter().chain(std::iter::once(&f64::INFINITY)) {
                let s = table.add(labels.series(&format!("{name}_bucket"), Some(("le", le_label(b)))));
                first.get_or_insert(s);
            }
            table.add(labels.series(&format!("{name}_sum"), None));
            let last = table.add(labels.series(&format!("{name}_count"), None));
            hists.push(Hist {
                kind,
                first_series: first.unwrap_or(last),
                le: vec![0.0; bounds.len() + 1],
                sum_ms: 0.0,
                count: 0.0,
            });
        }
        let bytes_series = table.add(labels.series(RESPONSE_BYTES_TOTAL, None));
        self.groups.push(Group {
            route,
            hists,
            bytes_series,
            bytes: 0.0,
            statuses: Vec::new(),
            last_inc: i64::MIN,
            active: false,
            last_emit: None,
            path,
            method,
        });
        self.by_path_method.insert((path, method), id);
        id
    }

    /// The counter of `status` in group `g`, created with its series if new.
    pub(crate) fn status(&mut self, g: GroupId, status: u16, table: &mut SeriesTable) -> usize {
        let group = &self.groups[g as usize];
        if let Some(i) = group.statuses.iter().position(|(s, _)| *s == status) {
            return i;
        }
        let r = &self.routes[group.route as usize];
        let labels = GroupLabels {
            service: &r.service,
            route: &r.name,
            method: METHODS[group.method as usize],
            path: &self.paths[group.path as usize],
        };
        let series = table.add(labels.series(REQUESTS_TOTAL, Some(("status", status.to_string()))));
        let group = &mut self.groups[g as usize];
        group.statuses.push((
            status,
            Counter {
                series,
                value: 0.0,
                last_inc: i64::MIN,
                active: false,
                last_emit: None,
            },
        ));
        group.statuses.len() - 1
    }

    /// Finds a group by its label values (for restoring state from the store).
    pub(crate) fn find_or_create_by_labels(
        &mut self,
        labels: &GroupLabels<'_>,
        kinds: &[HistKind],
        bounds: &[f64],
        table: &mut SeriesTable,
    ) -> GroupId {
        // Restored routes and paths are known ones: they count toward the caps but are never
        // refused.
        let route = self.route(labels.service, labels.route, usize::MAX);
        let path = self.path(route, labels.path, usize::MAX);
        self.group(route, path, method_index(labels.method), kinds, bounds, table)
    }
}
