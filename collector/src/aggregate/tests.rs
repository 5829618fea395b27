use std::borrow::Cow;

use super::*;
use vigil_tsdb::is_stale_nan;

const T0: Timestamp = 1_795_305_600_000;

fn ev(t: Timestamp, route: &'static str, uri: &'static str, status: u16, ms: f64) -> KongEvent<'static> {
    KongEvent {
        started_at: t,
        method: Cow::Borrowed("GET"),
        uri: Cow::Borrowed(uri),
        status,
        latency_request_ms: ms,
        latency_proxy_ms: Some(ms - 1.0),
        latency_kong_ms: Some(1.0),
        service: Some(Cow::Borrowed("orders")),
        route: Some(Cow::Borrowed(route)),
        route_paths: br#"["/v1/orders"]"#,
        consumer: None,
        request_id: None,
        client_ip: None,
        response_size: 100,
    }
}

fn small() -> AggregatorConfig {
    AggregatorConfig {
        buckets: vec![0.1, 1.0],
        upstream_histogram: false,
        kong_histogram: false,
        ..AggregatorConfig::default()
    }
}

/// The value of the series whose labels render as `want` in `out`, at time `t`.
fn value(agg: &Aggregator, out: &[WindowOutput], t: Timestamp, want: &str) -> Option<f64> {
    out.iter()
        .filter(|w| w.t == t)
        .flat_map(|w| &w.samples)
        .find(|(id, _)| agg.series().labels(*id).to_string() == want)
        .map(|(_, v)| *v)
}

const OK: &str = r#"vigil_http_requests_total{method="GET", path="/v1/orders/{id}", route="orders-route", service="orders", status="200"}"#;
const ERR: &str = r#"vigil_http_requests_total{method="GET", path="/v1/orders/{id}", route="orders-route", service="orders", status="500"}"#;
const COUNT: &str = r#"vigil_http_request_duration_seconds_count{method="GET", path="/v1/orders/{id}", route="orders-route", service="orders"}"#;
const LE_01: &str = r#"vigil_http_request_duration_seconds_bucket{le="0.1", method="GET", path="/v1/orders/{id}", route="orders-route", service="orders"}"#;
const SUM: &str = r#"vigil_http_request_duration_seconds_sum{method="GET", path="/v1/orders/{id}", route="orders-route", service="orders"}"#;
const LE_INF: &str = r#"vigil_http_request_duration_seconds_bucket{le="+Inf", method="GET", path="/v1/orders/{id}", route="orders-route", service="orders"}"#;

#[test]
fn a_window_closes_when_the_watermark_passes_it() {
    let mut agg = Aggregator::new(small());
    let mut out = Vec::new();
    let apply = |agg: &mut Aggregator, out: &mut Vec<WindowOutput>, t: Timestamp, uri: &'static str, status, ms| {
        agg.apply(&ev(t, "orders-route", uri, status, ms), T0, out)
            .expect("accepted");
    };
    apply(&mut agg, &mut out, T0 + 1_000, "/v1/orders/1", 200, 50.0);
    apply(&mut agg, &mut out, T0 + 2_000, "/v1/orders/2?x=1", 200, 500.0);
    apply(&mut agg, &mut out, T0 + 9_999, "/v1/orders/3", 500, 5_000.0);
    apply(&mut agg, &mut out, T0 + 14_999, "/v1/orders/4", 200, 5.0);
    assert!(out.is_empty(), "nothing closes before the watermark");
    // 15 s in, the watermark (newest - 5 s) reaches the first window's end.
    apply(&mut agg, &mut out, T0 + 15_000, "/v1/orders/4", 200, 5.0);
    let end = T0 + 10_000;
    assert_eq!(value(&agg, &out, end, OK), Some(2.0));
    assert_eq!(value(&agg, &out, end, ERR), Some(1.0));
    assert_eq!(value(&agg, &out, end, COUNT), Some(3.0));
    assert_eq!(value(&agg, &out, end, LE_01), Some(1.0));
    assert_eq!(value(&agg, &out, end, LE_INF), Some(3.0));
    // New series start from zero one window earlier, so `increase` sees their first window.
    assert_eq!(value(&agg, &out, T0, OK), Some(0.0));
    assert_eq!(value(&agg, &out, T0, COUNT), Some(0.0));
    // Empty windows keep the cumulative values.
    apply(&mut agg, &mut out, T0 + 40_000, "/v1/orders/5", 200, 5.0);
    assert_eq!(value(&agg, &out, T0 + 20_000, OK), Some(4.0));
    assert_eq!(value(&agg, &out, T0 + 30_000, ERR), Some(1.0));
    assert_eq!(agg.stats().accepted, 6);
}

#[test]
fn late_events_are_counted_not_added() {
    let mut agg = Aggregator::new(small());
    let mut out = Vec::new();
    agg.apply(&ev(T0, "orders-route", "/v1/orders/1", 200, 1.0), T0, &mut out)
        .expect("accepted");
    agg.apply(&ev(T0 + 60_000, "orders-route", "/v1/orders/1", 200, 1.0), T0, &mut out)
        .expect("accepted");
    // Within the allowed lateness: still counted.
    agg.apply(&ev(T0 + 35_000, "orders-route", "/v1/orders/1", 200, 1.0), T0, &mut out)
        .expect("accepted");
    assert_eq!(
        agg.apply(&ev(T0 + 5_000, "orders-route", "/v1/orders/1", 200, 1.0), T0, &mut out),
        Err(Reject::Late)
    );
    assert_eq!(agg.stats().late, 1);
}

#[test]
fn a_source_that_judges_lateness_itself_gets_every_event_counted() {
    let mut agg = Aggregator::new(small());
    let mut out = Vec::new();
    agg.add(&ev(T0 + 60_000, "orders-route", "/v1/orders/1", 200, 1.0), T0)
        .expect("accepted");
    agg.advance_watermark(T0 + 75_000, &mut out);
    assert_eq!(value(&agg, &out, T0 + 70_000, OK), Some(1.0));
    // Far behind the written windows (a partition taken over from another member): it counts,
    // in the first open window.
    agg.add(&ev(T0, "orders-route", "/v1/orders/1", 200, 1.0), T0)
        .expect("accepted");
    assert_eq!(agg.stats().late_accepted, 1);
    agg.flush(&mut out);
    assert_eq!(value(&agg, &out, T0 + 80_000, OK), Some(2.0));
}

#[test]
fn tentative_events_count_once_committed_and_not_at_all_once_discarded() {
    let mut agg = Aggregator::new(small());
    let mut out = Vec::new();
    // Another source's event, in the open windows; a replayable source's two, tentatively.
    agg.add(&ev(T0 + 1_000, "orders-route", "/v1/orders/1", 200, 1.0), T0)
        .expect("accepted");
    for t in [T0 + 2_000, T0 + 12_000] {
        agg.add_tentative(&ev(t, "orders-route", "/v1/orders/1", 200, 1.0), T0)
            .expect("accepted");
    }
    assert!(agg.closes_at(T0 + 10_000));
    assert!(!agg.closes_at(T0 + 9_999));
    // Given back: only the other source's event is left.
    agg.discard_tentative();
    agg.add_tentative(&ev(T0 + 3_000, "orders-route", "/v1/orders/1", 200, 1.0), T0)
        .expect("accepted");
    agg.commit_tentative();
    agg.advance_watermark(T0 + 10_000, &mut out);
    assert_eq!(value(&agg, &out, T0 + 10_000, OK), Some(2.0));
    assert!(!agg.has_open_windows());
    // A tentative event in a window the open ones lack, and one in a window they have.
    agg.add(&ev(T0 + 21_000, "orders-route", "/v1/orders/1", 200, 1.0), T0)
        .expect("accepted");
    for t in [T0 + 22_000, T0 + 35_000] {
        agg.add_tentative(&ev(t, "orders-route", "/v1/orders/1", 500, 1.0), T0)
            .expect("accepted");
    }
    agg.commit_tentative();
    agg.flush(&mut out);
    assert_eq!(value(&agg, &out, T0 + 30_000, OK), Some(3.0));
    let failed = OK.replace("\"200\"", "\"500\"");
    assert_eq!(value(&agg, &out, T0 + 40_000, &failed), Some(2.0));
}

#[test]
fn idle_series_get_a_staleness_marker_then_nothing() {
    let cfg = AggregatorConfig {
        idle_timeout_ms: 60_000,
        ..small()
    };
    let mut agg = Aggregator::new(cfg);
    let mut out = Vec::new();
    agg.apply(&ev(T0, "orders-route", "/v1/orders/1", 200, 1.0), T0, &mut out)
        .expect("accepted");
    agg.apply(&ev(T0 + 300_000, "orders-route", "/v1/other", 200, 1.0), T0, &mut out)
        .expect("accepted");
    let ok_times: Vec<(Timestamp, bool)> = out
        .iter()
        .flat_map(|w| w.samples.iter().map(move |s| (w.t, s)))
        .filter(|(_, (id, _))| agg.series().labels(*id).to_string() == OK)
        .map(|(t, (_, v))| (t, is_stale_nan(*v)))
        .collect();
    // Zero baseline, then a value every 10 s for the 60 s idle timeout, then one marker.
    let expected: Vec<(Timestamp, bool)> = (0..=7)
        .map(|i| (T0 + i * 10_000, false))
        .chain([(T0 + 80_000, true)])
        .collect();
    assert_eq!(ok_times, expected);
}

#[test]
fn a_quiet_stream_is_flushed_by_the_wall_clock() {
    let mut agg = Aggregator::new(small());
    let mut out = Vec::new();
    // A live stream: the event arrives as it happens.
    let wall = T0 + 3_000;
    agg.apply(
        &ev(T0 + 3_000, "orders-route", "/v1/orders/1", 200, 1.0),
        wall,
        &mut out,
    )
    .expect("accepted");
    agg.tick(wall + 19_999, &mut out);
    assert!(out.is_empty(), "not idle for two windows yet");
    agg.tick(wall + 20_000, &mut out);
    assert_eq!(value(&agg, &out, T0 + 10_000, OK), Some(1.0));
    // Event time keeps pace with the wall clock while the stream is quiet.
    agg.tick(wall + 40_000, &mut out);
    assert_eq!(value(&agg, &out, T0 + 30_000, OK), Some(1.0));
}

#[test]
fn a_quiet_replay_of_old_events_only_flushes_its_windows() {
    let mut agg = Aggregator::new(small());
    let mut out = Vec::new();
    let wall = T0 + 86_400_000;
    agg.apply(
        &ev(T0 + 3_000, "orders-route", "/v1/orders/1", 200, 1.0),
        wall,
        &mut out,
    )
    .expect("accepted");
    agg.tick(wall + 60_000, &mut out);
    assert_eq!(value(&agg, &out, T0 + 10_000, OK), Some(1.0));
    assert_eq!(
        agg.closed_until(),
        Some(T0 + 10_000),
        "event time does not run ahead of a replay"
    );
    // The next batch of the replay, a minute of event time later, still counts.
    agg.apply(
        &ev(T0 + 60_000, "orders-route", "/v1/orders/1", 200, 1.0),
        wall + 60_000,
        &mut out,
    )
    .expect("accepted");
}

#[test]
fn events_from_the_future_are_rejected() {
    let mut agg = Aggregator::new(small());
    let mut out = Vec::new();
    let r = agg.apply(
        &ev(T0 + 86_400_000, "orders-route", "/v1/orders/1", 200, 1.0),
        T0,
        &mut out,
    );
    assert_eq!(r, Err(Reject::Future));
    agg.apply(&ev(T0, "orders-route", "/v1/orders/1", 200, 1.0), T0, &mut out)
        .expect("accepted");
}

#[test]
fn flush_closes_everything_open() {
    let mut agg = Aggregator::new(small());
    let mut out = Vec::new();
    agg.apply(&ev(T0 + 3_000, "orders-route", "/v1/orders/1", 200, 1.0), T0, &mut out)
        .expect("accepted");
    agg.apply(&ev(T0 + 13_000, "orders-route", "/v1/orders/1", 500, 1.0), T0, &mut out)
        .expect("accepted");
    agg.flush(&mut out);
    assert_eq!(value(&agg, &out, T0 + 10_000, OK), Some(1.0));
    assert_eq!(value(&agg, &out, T0 + 20_000, ERR), Some(1.0));
    assert_eq!(agg.closed_until(), Some(T0 + 20_000));
}

#[test]
fn path_cap_sends_the_rest_to_other() {
    let cfg = AggregatorConfig {
        max_paths_per_route: 2,
        ..small()
    };
    let mut agg = Aggregator::new(cfg);
    let mut out = Vec::new();
    for uri in [
        "/v1/orders/a/x",
        "/v1/orders/b/x",
        "/v1/orders/c/x",
        "/v1/orders/d/x",
        "/v1/orders/a/x",
    ] {
        agg.apply(&ev(T0, "orders-route", uri, 200, 1.0), T0, &mut out)
            .expect("accepted");
    }
    agg.flush(&mut out);
    let other = r#"vigil_http_requests_total{method="GET", path="{other}", route="orders-route", service="orders", status="200"}"#;
    assert_eq!(value(&agg, &out, T0 + 10_000, other), Some(2.0));
    assert_eq!(
        agg.path_overflows().collect::<Vec<_>>(),
        vec![("orders", "orders-route", 2)]
    );
}

#[test]
fn restored_counters_continue() {
    let mut agg = Aggregator::new(small());
    let mut out = Vec::new();
    agg.apply(&ev(T0 + 1_000, "orders-route", "/v1/orders/1", 200, 1.0), T0, &mut out)
        .expect("accepted");
    agg.flush(&mut out);
    // Feed the last samples of the first aggregator to a fresh one.
    let last: Vec<(Labels, Timestamp, f64, bool)> = out
        .iter()
        .filter(|w| w.t == T0 + 10_000)
        .flat_map(|w| {
            w.samples
                .iter()
                .map(|(id, v)| (agg.series().labels(*id).clone(), w.t, *v, false))
        })
        .collect();
    let mut next = Aggregator::new(small());
    next.restore(last.iter().map(|(l, t, v, s)| (l, *t, *v, *s)), T0);
    assert_eq!(next.closed_until(), Some(T0 + 10_000));
    let mut out2 = Vec::new();
    // More than the allowed 30 s behind the restored windows.
    assert_eq!(
        next.apply(
            &ev(T0 - 25_000, "orders-route", "/v1/orders/1", 200, 1.0),
            T0,
            &mut out2
        ),
        Err(Reject::Late)
    );
    next.apply(
        &ev(T0 + 11_000, "orders-route", "/v1/orders/1", 200, 1.0),
        T0,
        &mut out2,
    )
    .expect("accepted");
    next.flush(&mut out2);
    assert_eq!(value(&next, &out2, T0 + 20_000, OK), Some(2.0));
    assert_eq!(value(&next, &out2, T0 + 20_000, COUNT), Some(2.0));
    assert_eq!(
        value(&next, &out2, T0 + 10_000, OK),
        None,
        "no baseline over a live series"
    );
}

#[test]
fn a_restored_other_path_stays_one_series() {
    let cfg = AggregatorConfig {
        max_paths_per_route: 1,
        ..small()
    };
    let mut agg = Aggregator::new(cfg.clone());
    let mut out = Vec::new();
    for uri in ["/v1/orders/a/x", "/v1/orders/b/x"] {
        agg.apply(&ev(T0, "orders-route", uri, 200, 1.0), T0, &mut out)
            .expect("accepted");
    }
    agg.flush(&mut out);
    let last: Vec<(Labels, Timestamp, f64, bool)> = out
        .iter()
        .filter(|w| w.t == T0 + 10_000)
        .flat_map(|w| {
            w.samples
                .iter()
                .map(|(id, v)| (agg.series().labels(*id).clone(), w.t, *v, false))
        })
        .collect();
    let mut next = Aggregator::new(cfg);
    next.restore(last.iter().map(|(l, t, v, s)| (l, *t, *v, *s)), T0);
    let before = next.series().len();
    let mut out2 = Vec::new();
    next.apply(
        &ev(T0 + 11_000, "orders-route", "/v1/orders/c/x", 200, 1.0),
        T0,
        &mut out2,
    )
    .expect("accepted");
    next.flush(&mut out2);
    assert_eq!(next.series().len(), before, "no second {{other}} series");
    let other = r#"vigil_http_requests_total{method="GET", path="{other}", route="orders-route", service="orders", status="200"}"#;
    assert_eq!(value(&next, &out2, T0 + 20_000, other), Some(2.0));
}

#[test]
fn too_many_routes_go_to_other() {
    let cfg = AggregatorConfig {
        max_routes: 1,
        ..small()
    };
    let mut agg = Aggregator::new(cfg);
    let mut out = Vec::new();
    agg.apply(&ev(T0, "orders-route", "/v1/orders/1", 200, 1.0), T0, &mut out)
        .expect("accepted");
    agg.apply(&ev(T0, "route-b", "/v1/orders/1", 200, 1.0), T0, &mut out)
        .expect("accepted");
    agg.apply(&ev(T0, "route-c", "/v1/orders/1", 200, 1.0), T0, &mut out)
        .expect("accepted");
    agg.flush(&mut out);
    let other = r#"vigil_http_requests_total{method="GET", path="/v1/orders/{id}", route="{other}", service="{other}", status="200"}"#;
    assert_eq!(value(&agg, &out, T0 + 10_000, other), Some(2.0));
}

#[test]
fn latency_sums_are_whole_milliseconds_in_seconds() {
    // Adding 0.1 s three times in floating point gives 0.30000000000000004; the sum is kept in
    // milliseconds, so the seconds written are the double nearest to 0.3, which blocks store as
    // the integer 300 and a scale of 3. A restored sum continues from whole milliseconds.
    let mut agg = Aggregator::new(small());
    let mut out = Vec::new();
    for i in 0..3 {
        agg.apply(
            &ev(T0 + 1_000 + i, "orders-route", "/v1/orders/1", 200, 100.0),
            T0,
            &mut out,
        )
        .expect("accepted");
    }
    agg.flush(&mut out);
    assert_eq!(
        value(&agg, &out, T0 + 10_000, SUM).map(f64::to_bits),
        Some(0.3f64.to_bits())
    );
    let mut next = Aggregator::new(small());
    let labels = agg
        .series()
        .labels(
            out.iter()
                .flat_map(|w| &w.samples)
                .find(|(id, _)| agg.series().labels(*id).to_string() == SUM)
                .expect("sum")
                .0,
        )
        .clone();
    next.restore([(&labels, T0 + 10_000, 0.3, false)], T0);
    next.apply(&ev(T0 + 11_000, "orders-route", "/v1/orders/1", 200, 7.0), T0, &mut out)
        .expect("accepted");
    next.flush(&mut out);
    assert_eq!(
        value(&next, &out, T0 + 20_000, SUM).map(f64::to_bits),
        Some(0.307f64.to_bits())
    );
}

#[test]
fn checkpoints_carry_sums_in_milliseconds_and_read_version_1_in_seconds() {
    let mut agg = Aggregator::new(small());
    let mut out = Vec::new();
    agg.apply(
        &ev(T0 + 1_000, "orders-route", "/v1/orders/1", 200, 250.0),
        T0,
        &mut out,
    )
    .expect("accepted");
    let cp = agg.checkpoint();
    assert_eq!(cp[0], 2, "version 2");
    let sum_after = |bytes: &[u8]| {
        let mut next = Aggregator::new(small());
        next.restore_checkpoint(bytes).expect("restored");
        let mut out = Vec::new();
        next.flush(&mut out);
        value(&next, &out, T0 + 10_000, SUM)
    };
    assert_eq!(sum_after(&cp), Some(0.25));
    // The same bytes as version 1 hold 250 seconds: 250,000 ms.
    let mut v1 = cp.clone();
    v1[0] = 1;
    assert_eq!(sum_after(&v1), Some(250.0));
    let mut v3 = cp;
    v3[0] = 3;
    assert!(Aggregator::new(small()).restore_checkpoint(&v3).is_err());
}
