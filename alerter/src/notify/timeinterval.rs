//! Alertmanager's time intervals: `times`, `weekdays`, `days_of_month`, `months` and `years`,
//! in a `location`, for `mute_time_intervals` and `active_time_intervals` of routes.
//!
//! ```yaml
//! time_intervals:
//!   - name: business-hours
//!     time_intervals:
//!       - weekdays: ['monday:friday']
//!         times: [{ start_time: '09:00', end_time: '17:00' }]
//!         location: Europe/Berlin
//! ```
//!
//! An interval holds a time when every field it sets holds; a named interval is a list of
//! intervals and holds when any of them does.

use jiff::tz::TimeZone;
use serde::Deserialize;
use vigil_tsdb::Timestamp;

/// One interval as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeIntervalSpec {
    /// Times of day, `HH:MM` to `HH:MM` (end exclusive, `24:00` allowed).
    pub times: Option<Vec<TimeRangeSpec>>,
    /// `monday`, `monday:friday`.
    pub weekdays: Option<Vec<String>>,
    /// `1`, `1:5`, `-1` (the last day).
    pub days_of_month: Option<Vec<String>>,
    /// `january`, `1:3`.
    pub months: Option<Vec<String>>,
    /// `2026`, `2026:2027`.
    pub years: Option<Vec<String>>,
    /// `UTC` (the default), `Local`, or a zone of the tz database.
    pub location: Option<String>,
}

/// `start_time` and `end_time`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRangeSpec {
    /// `HH:MM`.
    pub start_time: String,
    /// `HH:MM`, after the start.
    pub end_time: String,
}

type RangeParser<'a> = dyn Fn(&str) -> Result<(i32, i32), TimeIntervalError> + 'a;

/// Why a time interval is refused.
#[derive(Debug, thiserror::Error)]
pub enum TimeIntervalError {
    /// `location:` names no time zone this machine knows.
    #[error("unknown location {name:?}: {source}")]
    Location {
        /// The name given.
        name: String,
        /// What the time zone database said.
        source: jiff::Error,
    },
    /// A time of day is not `HH:MM`.
    #[error("invalid time {0:?}: expected HH:MM between 00:00 and 24:00")]
    Time(String),
    /// A time range ends before it starts.
    #[error("start_time {start} must be before end_time {end}")]
    TimeOrder {
        /// `start_time`.
        start: String,
        /// `end_time`.
        end: String,
    },
    /// A value is not a number.
    #[error("invalid {what} {text:?}")]
    Number {
        /// What was expected.
        what: &'static str,
        /// What was given.
        text: String,
    },
    /// A value is neither a name nor a number.
    #[error("{text:?} is not one of {names}")]
    Name {
        /// What was given.
        text: String,
        /// The names it may be.
        names: String,
    },
    /// A range is out of bounds or backwards.
    #[error("invalid {what} range {text:?}")]
    Range {
        /// What kind of range.
        what: &'static str,
        /// The range as given.
        text: String,
    },
}

/// A compiled interval.
#[derive(Debug, Clone)]
pub struct TimeInterval {
    /// `None`: any time of day; an explicit empty list matches no time, as in Alertmanager.
    times: Option<Vec<(u32, u32)>>,
    weekdays: Vec<(i32, i32)>,
    days_of_month: Vec<(i32, i32)>,
    months: Vec<(i32, i32)>,
    years: Vec<(i32, i32)>,
    tz: TimeZone,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

impl TimeInterval {
    /// Checks and compiles a spec.
    pub fn compile(spec: &TimeIntervalSpec) -> Result<TimeInterval, TimeIntervalError> {
        let list = |v: &Option<Vec<String>>, f: &RangeParser<'_>| {
            v.iter().flatten().map(|s| f(s)).collect::<Result<Vec<_>, _>>()
        };
        let tz = match spec.location.as_deref() {
            None | Some("" | "UTC") => TimeZone::UTC,
            Some("Local") => TimeZone::system(),
            Some(name) => TimeZone::get(name).map_err(|source| TimeIntervalError::Location {
                name: name.to_owned(),
                source,
            })?,
        };
        Ok(TimeInterval {
            times: spec
                .times
                .as_ref()
                .map(|t| t.iter().map(time_range).collect::<Result<_, _>>())
                .transpose()?,
            weekdays: list(&spec.weekdays, &|s| {
                range(s, "weekday", |p| named(p, &WEEKDAYS, 0), 0, 6)
            })?,
            days_of_month: list(&spec.days_of_month, &days_range)?,
            months: list(&spec.months, &|s| range(s, "month", |p| named(p, &MONTHS, 1), 1, 12))?,
            years: list(&spec.years, &|s| range(s, "year", |p| number(p, "year"), 1, 9999))?,
            tz,
        })
    }

    /// Whether `t` (ms since the epoch) is inside the interval.
    pub fn contains(&self, t: Timestamp) -> bool {
        let Ok(ts) = jiff::Timestamp::from_millisecond(t) else {
            return false;
        };
        let z = ts.to_zoned(self.tz.clone());
        let minute = z.hour() as u32 * 60 + z.minute() as u32;
        let weekday = i32::from(z.weekday().to_sunday_zero_offset());
        let days_in_month = i32::from(z.days_in_month());
        let day = i32::from(z.day());
        let any = |ranges: &[(i32, i32)], v: i32| ranges.is_empty() || ranges.iter().any(|&(b, e)| b <= v && v <= e);
        self.times
            .as_ref()
            .is_none_or(|t| t.iter().any(|&(b, e)| b <= minute && minute < e))
            && any(&self.weekdays, weekday)
            && any(&self.months, i32::from(z.month()))
            && any(&self.years, i32::from(z.year()))
            && (self.days_of_month.is_empty()
                || self.days_of_month.iter().any(|&(b, e)| {
                    let abs = |d: i32| if d < 0 { days_in_month + d + 1 } else { d };
                    let (b, e) = (abs(b).max(1), abs(e).min(days_in_month));
                    b <= day && day <= e
                }))
    }
}

/// Whether any interval of a named list holds at `t`.
pub fn any_contains(intervals: &[TimeInterval], t: Timestamp) -> bool {
    intervals.iter().any(|i| i.contains(t))
}

fn time_range(r: &TimeRangeSpec) -> Result<(u32, u32), TimeIntervalError> {
    let minutes = |s: &str| -> Result<u32, TimeIntervalError> {
        let bad = || TimeIntervalError::Time(s.to_owned());
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h > 24 || m > 59 || (h == 24 && m > 0) || s.len() != 5 {
            return Err(bad());
        }
        Ok(h * 60 + m)
    };
    let (b, e) = (minutes(&r.start_time)?, minutes(&r.end_time)?);
    if b >= e {
        return Err(TimeIntervalError::TimeOrder {
            start: r.start_time.clone(),
            end: r.end_time.clone(),
        });
    }
    Ok((b, e))
}

fn number(s: &str, what: &'static str) -> Result<i32, TimeIntervalError> {
    s.trim().parse().map_err(|_| TimeIntervalError::Number {
        what,
        text: s.to_owned(),
    })
}

fn named(s: &str, names: &[&str], first: i32) -> Result<i32, TimeIntervalError> {
    let lower = s.trim().to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        return Ok(i as i32 + first);
    }
    number(s, "value").map_err(|_| TimeIntervalError::Name {
        text: s.to_owned(),
        names: names.join(", "),
    })
}

fn range(
    s: &str,
    what: &'static str,
    parse: impl Fn(&str) -> Result<i32, TimeIntervalError>,
    min: i32,
    max: i32,
) -> Result<(i32, i32), TimeIntervalError> {
    let (b, e) = match s.split_once(':') {
        Some((b, e)) => (parse(b)?, parse(e)?),
        None => {
            let v = parse(s)?;
            (v, v)
        }
    };
    if b < min || e > max || b > e {
        return Err(TimeIntervalError::Range {
            what,
            text: s.to_owned(),
        });
    }
    Ok((b, e))
}

fn days_range(s: &str) -> Result<(i32, i32), TimeIntervalError> {
    let (b, e) = match s.split_once(':') {
        Some((b, e)) => (number(b, "day of month")?, number(e, "day of month")?),
        None => {
            let d = number(s, "day of month")?;
            (d, d)
        }
    };
    let ok = |d: i32| (-31..=31).contains(&d) && d != 0;
    // As Alertmanager checks: a negative start needs a negative end, and the start may not be
    // after the end in a 28-day month.
    let in_short_month = |d: i32| if d < 0 { 28 + d } else { d };
    if !ok(b) || !ok(e) || (b < 0 && e > 0) || in_short_month(b) > in_short_month(e) {
        return Err(TimeIntervalError::Range {
            what: "day of month",
            text: s.to_owned(),
        });
    }
    Ok((b, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(yaml: &str) -> TimeInterval {
        let spec: TimeIntervalSpec = serde_yaml_ng::from_str(yaml).expect("valid YAML");
        TimeInterval::compile(&spec).expect("valid interval")
    }

    fn at(rfc3339: &str) -> Timestamp {
        vigil_tsdb::time::parse_timestamp(rfc3339).expect("valid time")
    }

    #[test]
    fn business_hours_in_a_zone() {
        let i = interval(
            "weekdays: ['monday:friday']\ntimes: [{start_time: '09:00', end_time: '17:00'}]\nlocation: Europe/Berlin",
        );
        // 2026-12-07 is a Monday; Berlin is UTC+1 in December.
        assert!(i.contains(at("2026-12-07T08:00:00Z")));
        assert!(!i.contains(at("2026-12-07T07:59:00Z")));
        assert!(!i.contains(at("2026-12-07T16:00:00Z")), "the end is exclusive");
        assert!(!i.contains(at("2026-12-05T10:00:00Z")), "a Saturday");
    }

    #[test]
    fn days_months_and_years() {
        let last_days = interval("days_of_month: ['-2:-1']");
        assert!(last_days.contains(at("2026-02-28T12:00:00Z")));
        assert!(last_days.contains(at("2026-02-27T12:00:00Z")));
        assert!(!last_days.contains(at("2026-02-26T12:00:00Z")));
        assert!(last_days.contains(at("2026-12-31T00:00:00Z")));
        let i =
            interval("months: ['december', '1:2']\nyears: ['2026']\ntimes: [{start_time: '22:00', end_time: '24:00'}]");
        assert!(i.contains(at("2026-12-07T23:59:00Z")));
        assert!(i.contains(at("2026-01-07T22:00:00Z")));
        assert!(!i.contains(at("2026-03-07T23:00:00Z")));
        assert!(!i.contains(at("2027-12-07T23:00:00Z")));
    }

    #[test]
    fn bad_intervals_are_refused() {
        for bad in [
            "weekdays: ['funday']",
            "weekdays: ['friday:monday']",
            "times: [{start_time: '10:00', end_time: '09:00'}]",
            "times: [{start_time: '10:00', end_time: '24:01'}]",
            "days_of_month: ['0']",
            "days_of_month: ['-1:5']",
            "days_of_month: ['20:-20']",
            "months: ['13']",
            "location: Mars/Olympus",
        ] {
            let spec: TimeIntervalSpec = serde_yaml_ng::from_str(bad).expect("valid YAML");
            assert!(TimeInterval::compile(&spec).is_err(), "{bad} should be refused");
        }
    }
}
