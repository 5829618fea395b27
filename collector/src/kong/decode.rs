//! From bytes to [`KongEvent`]s: one event object, a batch array, or NDJSON lines.

use std::borrow::Cow;

use super::scan::{Number, ScanError, Scanner};
use super::{
    KongEvent, MAX_LATENCY_MS, MAX_RESPONSE_BYTES, MAX_STARTED_AT_MS, MAX_URI_LEN, MIN_STARTED_AT_MS, Reject,
    RejectCounts,
};

/// How a request body was laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// Nothing but whitespace.
    Empty,
    /// One JSON object.
    Object,
    /// One JSON array of objects (an http-log batch).
    Array,
    /// Newline-delimited values, each an object or an array.
    Ndjson,
    /// One value that does not parse, and no sign of NDJSON.
    Invalid,
}

/// Decodes an HTTP body: one event, a batch, or NDJSON. Decoded events are appended to `out`,
/// rejects counted in `rejects`.
pub fn decode_body<'a>(body: &'a [u8], out: &mut Vec<KongEvent<'a>>, rejects: &mut RejectCounts) -> BodyFormat {
    let mut s = Scanner::new(body);
    let Some(first) = s.peek() else {
        return BodyFormat::Empty;
    };
    // One value filling the whole body is the common case (http-log sends exactly that).
    let mark = out.len();
    let mut counted = RejectCounts::default();
    if decode_value(&mut s, out, &mut counted) && s.at_end() {
        rejects.merge(&counted);
        return if first == b'[' {
            BodyFormat::Array
        } else {
            BodyFormat::Object
        };
    }
    out.truncate(mark);
    // Several lines that each start a value: NDJSON. Anything else is one broken document,
    // counted once rather than once per line of a pretty-printed object.
    let lines_start_values = body
        .split(|&b| b == b'\n')
        .skip(1)
        .any(|l| matches!(l.first(), Some(b'{' | b'[')));
    if !lines_start_values {
        rejects.add(Reject::InvalidJson);
        return BodyFormat::Invalid;
    }
    for line in body.split(|&b| b == b'\n') {
        decode_line(line, out, rejects);
    }
    BodyFormat::Ndjson
}

/// Decodes one NDJSON line (an object or an array of objects). Blank lines are ignored; a line
/// whose JSON is broken is rejected whole, as one `invalid_json`.
pub fn decode_line<'a>(line: &'a [u8], out: &mut Vec<KongEvent<'a>>, rejects: &mut RejectCounts) {
    let mut s = Scanner::new(line);
    if s.peek().is_none() {
        return;
    }
    let mark = out.len();
    let mut counted = RejectCounts::default();
    if decode_value(&mut s, out, &mut counted) && s.at_end() {
        rejects.merge(&counted);
    } else {
        out.truncate(mark);
        rejects.add(Reject::InvalidJson);
    }
}

/// Decodes the value at the scanner: an event, a batch of events, or anything else (rejected as
/// not an object). Returns false if the JSON is broken, leaving what was decoded so far to the
/// caller to discard.
fn decode_value<'a>(s: &mut Scanner<'a>, out: &mut Vec<KongEvent<'a>>, rejects: &mut RejectCounts) -> bool {
    match s.peek() {
        None => true,
        Some(b'{') => match decode_event(s) {
            Ok(Ok(ev)) => {
                out.push(ev);
                true
            }
            Ok(Err(r)) => {
                rejects.add(r);
                true
            }
            Err(_) => false,
        },
        Some(b'[') => decode_array(s, out, rejects),
        Some(_) => {
            let ok = s.skip_value().is_ok();
            if ok {
                rejects.add(Reject::NotAnObject);
            }
            ok
        }
    }
}

fn decode_array<'a>(s: &mut Scanner<'a>, out: &mut Vec<KongEvent<'a>>, rejects: &mut RejectCounts) -> bool {
    if s.begin_array().is_err() {
        return false;
    }
    let mut first = true;
    let mut n = 0usize;
    loop {
        match s.next_element(&mut first) {
            Ok(true) => {}
            Ok(false) => break,
            Err(_) => return false,
        }
        n += 1;
        if s.peek() == Some(b'{') {
            match decode_event(s) {
                Ok(Ok(ev)) => out.push(ev),
                Ok(Err(r)) => rejects.add(r),
                Err(_) => return false,
            }
        } else if s.skip_value().is_ok() {
            rejects.add(Reject::NotAnObject);
        } else {
            return false;
        }
    }
    if n == 0 {
        rejects.add(Reject::EmptyBatch);
    }
    true
}

/// Fields collected while walking an event object.
#[derive(Default)]
struct Fields<'a> {
    started_at: Option<Number>,
    method: Option<Cow<'a, str>>,
    uri: Option<Cow<'a, str>>,
    request_id: Option<Cow<'a, str>>,
    status: Option<Result<Number, ()>>,
    response_size: Option<Number>,
    latency_request: Option<Number>,
    latency_proxy: Option<Number>,
    latency_kong: Option<Number>,
    service: Option<Cow<'a, str>>,
    route: Option<Cow<'a, str>>,
    route_paths: &'a [u8],
    consumer_name: Option<Cow<'a, str>>,
    consumer_id: Option<Cow<'a, str>>,
    client_ip: Option<Cow<'a, str>>,
}

/// Decodes one event object at the scanner's position. The outer error means the JSON is broken
/// (the caller cannot find where the next value starts); the inner one that the object was read
/// whole but is not a usable event.
pub fn decode_event<'a>(s: &mut Scanner<'a>) -> Result<Result<KongEvent<'a>, Reject>, ScanError> {
    let mut f = Fields::default();
    s.begin_object()?;
    let mut first = true;
    while let Some(key) = s.next_key(&mut first)? {
        match key {
            b"started_at" => f.started_at = number_or_skip(s)?,
            b"request" => object(s, |s, k| {
                match k {
                    b"method" => f.method = string_or_skip(s)?,
                    b"uri" => f.uri = string_or_skip(s)?,
                    b"id" => f.request_id = string_or_skip(s)?,
                    _ => s.skip_value()?,
                }
                Ok(f.method.is_some() && f.uri.is_some() && f.request_id.is_some())
            })?,
            b"response" => object(s, |s, k| {
                match k {
                    b"status" => f.status = Some(number_or_skip(s)?.ok_or(())),
                    b"size" => f.response_size = number_or_skip(s)?,
                    _ => s.skip_value()?,
                }
                Ok(f.status.is_some() && f.response_size.is_some())
            })?,
            b"latencies" => object(s, |s, k| {
                match k {
                    b"request" => f.latency_request = number_or_skip(s)?,
                    b"proxy" => f.latency_proxy = number_or_skip(s)?,
                    b"kong" => f.latency_kong = number_or_skip(s)?,
                    _ => s.skip_value()?,
                }
                Ok(f.latency_request.is_some() && f.latency_proxy.is_some() && f.latency_kong.is_some())
            })?,
            b"service" => object(s, |s, k| {
                match k {
                    b"name" => f.service = string_or_skip(s)?,
                    _ => s.skip_value()?,
                }
                Ok(f.service.is_some())
            })?,
            b"route" => object(s, |s, k| {
                match k {
                    b"name" => f.route = string_or_skip(s)?,
                    b"paths" if s.peek() == Some(b'[') => f.route_paths = s.raw_value()?,
                    _ => s.skip_value()?,
                }
                Ok(f.route.is_some() && !f.route_paths.is_empty())
            })?,
            b"consumer" => object(s, |s, k| {
                match k {
                    b"username" => f.consumer_name = string_or_skip(s)?,
                    b"id" => f.consumer_id = string_or_skip(s)?,
                    _ => s.skip_value()?,
                }
                Ok(f.consumer_name.is_some() && f.consumer_id.is_some())
            })?,
            b"client_ip" => f.client_ip = string_or_skip(s)?,
            _ => s.skip_value()?,
        }
    }
    Ok(f.into_event())
}

/// Walks an object value calling `field` for each key until it says it has all it wants (the
/// rest of the object is then skipped whole); `null` and non-objects are skipped.
#[inline]
fn object<'a>(
    s: &mut Scanner<'a>,
    mut field: impl FnMut(&mut Scanner<'a>, &'a [u8]) -> Result<bool, ScanError>,
) -> Result<(), ScanError> {
    if s.peek() != Some(b'{') {
        return s.skip_value();
    }
    s.begin_object()?;
    let mut first = true;
    while let Some(k) = s.next_key(&mut first)? {
        if field(s, k)? {
            return s.skip_rest_of_object();
        }
    }
    Ok(())
}

/// A string value, or `None` (after skipping it) when the value is not a string.
#[inline]
fn string_or_skip<'a>(s: &mut Scanner<'a>) -> Result<Option<Cow<'a, str>>, ScanError> {
    if s.peek() == Some(b'"') {
        s.string().map(Some)
    } else {
        s.skip_value().map(|()| None)
    }
}

/// A number value, or `None` (after skipping it) when the value is not a number.
#[inline]
fn number_or_skip(s: &mut Scanner<'_>) -> Result<Option<Number>, ScanError> {
    match s.peek() {
        Some(b'-' | b'0'..=b'9') => s.number().map(Some),
        _ => s.skip_value().map(|()| None),
    }
}

impl<'a> Fields<'a> {
    fn into_event(self) -> Result<KongEvent<'a>, Reject> {
        let (Some(method), Some(uri), Some(status), Some(started_at), Some(latency)) = (
            self.method,
            self.uri,
            self.status,
            self.started_at,
            self.latency_request,
        ) else {
            // A status that is present but not a number is a bad status, not a missing one.
            return Err(if matches!(self.status, Some(Err(()))) {
                Reject::BadStatus
            } else {
                Reject::MissingField
            });
        };
        let status = match status {
            Ok(Number::Int(s)) if (100..=599).contains(&s) => s as u16,
            _ => return Err(Reject::BadStatus),
        };
        let started_at = match started_at {
            Number::Int(t) if (MIN_STARTED_AT_MS..MAX_STARTED_AT_MS).contains(&t) => t,
            _ => return Err(Reject::BadTimestamp),
        };
        if uri.len() > MAX_URI_LEN {
            return Err(Reject::UriTooLong);
        }
        let plausible = |ms: f64| (0.0..=MAX_LATENCY_MS).contains(&ms);
        let latency_request_ms = latency.as_f64();
        // -1 in `latencies.proxy` means "no upstream answered"; other optional latencies that are
        // missing or implausible are left out rather than failing the event.
        let optional = |n: Option<Number>| n.map(Number::as_f64).filter(|v| plausible(*v));
        if !plausible(latency_request_ms) {
            return Err(Reject::BadLatency);
        }
        let response_size = self.response_size.map_or(0.0, |n| n.as_f64().max(0.0));
        if response_size > MAX_RESPONSE_BYTES {
            return Err(Reject::BadSize);
        }
        // Empty names are as good as none: they cannot be label values.
        let named = |s: Option<Cow<'a, str>>| s.filter(|s| !s.is_empty());
        Ok(KongEvent {
            started_at,
            method,
            uri,
            status,
            latency_request_ms,
            latency_proxy_ms: optional(self.latency_proxy),
            latency_kong_ms: optional(self.latency_kong),
            service: named(self.service),
            route: named(self.route),
            route_paths: self.route_paths,
            consumer: named(self.consumer_name).or(named(self.consumer_id)),
            request_id: self.request_id,
            client_ip: self.client_ip,
            response_size: response_size as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Kong fixture of the repository (`testdata/kong/`).
    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/kong")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn decodes_the_sample_event() {
        let body = fixture("event.json");
        let (mut out, mut rej) = (Vec::new(), RejectCounts::default());
        assert_eq!(decode_body(&body, &mut out, &mut rej), BodyFormat::Object);
        assert_eq!(rej.total(), 0);
        let ev = &out[0];
        assert_eq!(ev.started_at, 1_795_305_600_538);
        assert_eq!(
            (ev.method.as_ref(), ev.uri.as_ref(), ev.status),
            ("GET", "/v1/orders/81723?expand=items", 200)
        );
        assert_eq!(
            (ev.latency_request_ms, ev.latency_proxy_ms, ev.latency_kong_ms),
            (173.0, Some(171.0), Some(1.0))
        );
        assert_eq!(ev.service.as_deref(), Some("orders"));
        assert_eq!(ev.route.as_deref(), Some("orders-route"));
        assert_eq!(ev.route_prefixes().collect::<Vec<_>>(), vec!["/v1/orders"]);
        assert_eq!(ev.consumer.as_deref(), Some("mobile-app"));
        assert_eq!(ev.client_ip.as_deref(), Some("192.168.65.1"));
        assert_eq!(ev.response_size, 9982);
    }

    #[test]
    fn decodes_the_sample_batch() {
        let body = fixture("batch.json");
        let (mut out, mut rej) = (Vec::new(), RejectCounts::default());
        assert_eq!(decode_body(&body, &mut out, &mut rej), BodyFormat::Array);
        assert_eq!(rej.total(), 0);
        let got: Vec<(u16, Option<f64>, bool)> = out
            .iter()
            .map(|e| (e.status, e.latency_proxy_ms, e.consumer.is_some()))
            .collect();
        assert_eq!(
            got,
            vec![(201, Some(171.0), false), (503, None, true), (404, Some(171.0), true)]
        );
    }

    #[test]
    fn counts_every_malformed_line_once() {
        let body = fixture("malformed.ndjson");
        let (mut out, mut rej) = (Vec::new(), RejectCounts::default());
        assert_eq!(decode_body(&body, &mut out, &mut rej), BodyFormat::Ndjson);
        assert!(out.is_empty());
        let got: Vec<(Reject, u64)> = rej.iter().collect();
        assert_eq!(
            got,
            vec![
                (Reject::InvalidJson, 2),
                (Reject::EmptyBatch, 1),
                (Reject::MissingField, 1),
                (Reject::BadStatus, 1),
                (Reject::BadTimestamp, 1),
                (Reject::UriTooLong, 1),
            ]
        );
    }

    #[test]
    fn a_bad_element_does_not_lose_the_rest_of_the_batch() {
        let body = br#"[{"request":{"method":"GET","uri":"/a"},"response":{"status":200},"started_at":1795305600000,"latencies":{"request":1}},
            {"request":{"method":"GET"}},
            42,
            {"request":{"method":"GET","uri":"/b"},"response":{"status":500},"started_at":1795305600001,"latencies":{"request":2}}]"#;
        let (mut out, mut rej) = (Vec::new(), RejectCounts::default());
        decode_body(body, &mut out, &mut rej);
        assert_eq!(out.len(), 2);
        assert_eq!((rej.get(Reject::MissingField), rej.get(Reject::NotAnObject)), (1, 1));
    }

    #[test]
    fn implausible_values_are_rejected_and_empty_names_are_absent() {
        let ev = |extra: &str| {
            format!(
                r#"{{"request":{{"method":"GET","uri":"/a"}},"response":{{"status":200{extra}}},"started_at":1795305600000,"latencies":{{"request":5}},"service":{{"name":""}},"route":{{"name":""}}}}"#
            )
        };
        let plain = ev("");
        let huge_size = ev(r#","size":1e30"#);
        let huge_latency = ev("").replace(r#""request":5"#, r#""request":1e307"#);
        // A number beyond 64 bits in a field vigil skips is still JSON.
        let big = ev("").replace(r#""started_at""#, r#""x":123456789012345678901234,"started_at""#);
        let (mut out, mut rej) = (Vec::new(), RejectCounts::default());
        for line in [&plain, &huge_size, &huge_latency, &big] {
            decode_line(line.as_bytes(), &mut out, &mut rej);
        }
        assert_eq!((out[0].service.as_deref(), out[0].route.as_deref()), (None, None));
        assert_eq!(out.len(), 2);
        assert_eq!((rej.get(Reject::BadSize), rej.get(Reject::BadLatency)), (1, 1));
    }

    #[test]
    fn a_broken_pretty_printed_object_counts_once() {
        let body = b"{\n  \"request\": {\n    \"method\": \"GET\",\n";
        let (mut out, mut rej) = (Vec::new(), RejectCounts::default());
        assert_eq!(decode_body(body, &mut out, &mut rej), BodyFormat::Invalid);
        assert_eq!(rej.total(), 1);
    }
}
