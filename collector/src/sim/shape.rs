//! The daily and weekly shape of traffic.

use vigil_tsdb::Timestamp;

/// Offset of the simulated users' local time from UTC: Jakarta (UTC+7), where GO-JEK's
/// traffic peaked.
const LOCAL_OFFSET_MS: i64 = 7 * 3_600_000;

/// Traffic relative to the daily peak at time `t`: about 0.15 at 4 am, a lunch peak at 12:30 and
/// an evening peak at 19:00 local time; Saturdays carry 85% and Sundays 75% of a weekday.
pub fn traffic_multiplier(t: Timestamp) -> f64 {
    let local = t + LOCAL_OFFSET_MS;
    let hour = local.rem_euclid(86_400_000) as f64 / 3_600_000.0;
    // Days since the epoch; 1970-01-01 was a Thursday, so day 2 (mod 7) is a Saturday.
    let weekday = local.div_euclid(86_400_000).rem_euclid(7);
    let week = match weekday {
        2 => 0.85,
        3 => 0.75,
        _ => 1.0,
    };
    let bump = |center: f64, width: f64| {
        let d = (hour - center).abs().min(24.0 - (hour - center).abs());
        (-(d * d) / (2.0 * width * width)).exp()
    };
    let day = 0.15 + 0.75 * bump(12.5, 3.5).max(bump(19.0, 2.5)) + 0.1 * bump(9.0, 1.5);
    (day * week).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Friday 2026-11-20, 00:00 in Jakarta.
    const FRIDAY: Timestamp = 1_795_107_600_000;

    #[test]
    fn nights_are_quiet_and_peaks_are_busy() {
        let at = |h: i64| traffic_multiplier(FRIDAY + h * 3_600_000);
        assert!(at(4) < 0.25, "{}", at(4));
        assert!(at(13) > 0.85, "{}", at(13));
        assert!(at(19) > 0.85, "{}", at(19));
        // Saturday and Sunday lunch are lighter than Friday's.
        assert!(at(24 + 13) < at(13) && at(48 + 13) < at(24 + 13));
    }
}
