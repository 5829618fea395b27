//! Time in Prometheus's notations: durations like `1h30m`, and API timestamps given as RFC 3339 or
//! as (fractional) Unix seconds.

use std::fmt;
use std::time::Duration;

use crate::storage::Timestamp;

/// Units of a Prometheus duration, longest first, in milliseconds.
const UNITS: [(&str, i64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a Prometheus duration (`10s`, `1h30m`, `7d`, `250ms`) into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid duration {s:?}: expected e.g. 10s, 5m, 1h30m, 7d");
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        // "ms" must win over "m".
        let (unit, ms) = UNITS
            .iter()
            .find(|(u, _)| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))
            .ok_or_else(bad)?;
        rest = &rest[unit.len()..];
        total = n.checked_mul(*ms).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
    }
    Ok(total)
}

/// Parses a duration given either in Prometheus notation or as (fractional) seconds, as the HTTP
/// API accepts for `step` and `timeout`.
pub fn parse_duration_or_seconds(s: &str) -> Result<i64, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() || secs.abs() > (i64::MAX / 1000) as f64 {
            return Err(format!("cannot parse {s:?} to a valid duration: out of range"));
        }
        return Ok((secs * 1000.0).round() as i64);
    }
    parse_duration_ms(s).map_err(|_| format!("cannot parse {s:?} to a valid duration"))
}

/// Formats milliseconds the way Prometheus prints durations (`1h30m`, `10s`, `0s`).
pub fn format_duration_ms(ms: i64) -> String {
    DurationDisplay(ms).to_string()
}

struct DurationDisplay(i64);

impl fmt::Display for DurationDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0;
        if ms == 0 {
            return f.write_str("0s");
        }
        if ms < 0 {
            f.write_str("-")?;
            ms = -ms;
        }
        for (unit, size) in UNITS {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

/// A `std::time::Duration` from milliseconds (negative becomes zero).
pub fn ms_to_duration(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

/// Parses an API timestamp: RFC 3339 or Unix seconds with an optional fraction.
pub fn parse_timestamp(s: &str) -> Result<Timestamp, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() || secs.abs() > 9.2e15 {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        return Ok((secs * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp_millis())
        .map_err(|_| format!("cannot parse {s:?} to a valid timestamp"))
}

/// Milliseconds as Unix seconds, the way the API prints sample times.
pub fn ms_to_seconds(t: Timestamp) -> f64 {
    t as f64 / 1000.0
}

/// Formats a timestamp as RFC 3339 in UTC with milliseconds.
pub fn format_rfc3339(t: Timestamp) -> String {
    match chrono::DateTime::from_timestamp_millis(t) {
        Some(d) => d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => t.to_string(),
    }
}

/// The current wall-clock time in milliseconds.
pub fn now_ms() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("10s"), Ok(10_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_duration_ms("1m5ms"), Ok(60_005));
        assert_eq!(parse_duration_ms("7d"), Ok(604_800_000));
        assert!(parse_duration_ms("10").is_err());
        assert!(parse_duration_ms("h").is_err());
        assert!(parse_duration_ms("").is_err());
        assert_eq!(format_duration_ms(5_400_000), "1h30m");
        assert_eq!(format_duration_ms(86_400_000), "1d");
        assert_eq!(format_duration_ms(1_500), "1s500ms");
        assert_eq!(parse_duration_or_seconds("15"), Ok(15_000));
        assert_eq!(parse_duration_or_seconds("0.5"), Ok(500));
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1795305600.538"), Ok(1_795_305_600_538));
        assert_eq!(parse_timestamp("2026-11-22T00:00:00Z"), Ok(1_795_305_600_000));
        assert_eq!(format_rfc3339(1_795_305_600_538), "2026-11-22T00:00:00.538Z");
        assert!(parse_timestamp("yesterday").is_err());
    }
}
