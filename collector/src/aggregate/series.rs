//! The series vigil writes, their names and labels (a contract: dashboards, rules and tests
//! query these names), and the table that numbers them.

use vigil_tsdb::promql::format_float;
use vigil_tsdb::{Label, Labels};

/// Requests counter: `{service, route, method, path, status}`.
pub const REQUESTS_TOTAL: &str = "vigil_http_requests_total";
/// Total latency histogram (`latencies.request`), seconds.
pub const REQUEST_DURATION: &str = "vigil_http_request_duration_seconds";
/// Upstream latency histogram (`latencies.proxy`), seconds.
pub const UPSTREAM_DURATION: &str = "vigil_http_upstream_duration_seconds";
/// Kong's own latency histogram (`latencies.kong`), seconds.
pub const KONG_DURATION: &str = "vigil_http_kong_duration_seconds";
/// Response bytes counter: `{service, route, method, path}`.
pub const RESPONSE_BYTES_TOTAL: &str = "vigil_http_response_bytes_total";

/// Default latency buckets in seconds: Prometheus's defaults, which span fast cache hits to
/// timeouts of typical APIs.
pub const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Numbers series in the order they are first seen; an id indexes [`SeriesTable::labels`].
pub type SeriesId = u32;

/// Labels of every series the aggregator has created.
#[derive(Debug, Default)]
pub struct SeriesTable {
    labels: Vec<Labels>,
}

impl SeriesTable {
    /// Registers a series and returns its id.
    pub(crate) fn add(&mut self, labels: Labels) -> SeriesId {
        self.labels.push(labels);
        (self.labels.len() - 1) as SeriesId
    }

    /// The labels of a series.
    pub fn labels(&self, id: SeriesId) -> &Labels {
        &self.labels[id as usize]
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// The identifying labels shared by the series of one (service, route, method, path).
#[derive(Debug, Clone)]
pub(crate) struct GroupLabels<'a> {
    pub(crate) service: &'a str,
    pub(crate) route: &'a str,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
}

impl GroupLabels<'_> {
    /// Labels of series `name` of this group, with `extra` (`status` or `le`) if given.
    pub(crate) fn series(&self, name: &str, extra: Option<(&str, String)>) -> Labels {
        let mut v = vec![
            Label {
                name: "__name__".into(),
                value: name.into(),
            },
            Label {
                name: "method".into(),
                value: self.method.into(),
            },
            Label {
                name: "path".into(),
                value: self.path.into(),
            },
            Label {
                name: "route".into(),
                value: self.route.into(),
            },
            Label {
                name: "service".into(),
                value: self.service.into(),
            },
        ];
        if let Some((n, value)) = extra {
            v.push(Label {
                name: n.into(),
                value: value.into(),
            });
        }
        v.sort();
        Labels::from_sorted(v)
    }
}

/// The `le` label value of a bucket bound, formatted as Prometheus does (`0.005`, `1`, `+Inf`).
pub(crate) fn le_label(bound: f64) -> String {
    format_float(bound)
}
