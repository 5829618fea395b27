//! A circuit breaker with hystrix's semantics: attempts are counted in a rolling window; once
//! the window holds at least `request_volume_threshold` attempts and at least
//! `error_percent_threshold` percent of them failed, the circuit opens and no request is made for
//! `sleep_window`; then a single probe is let through, which closes the circuit if it succeeds
//! and opens it again if it fails. Time is an argument.

use std::collections::VecDeque;

use vigil_tsdb::Timestamp;

use super::config::BreakerConfig;

/// Closed, open or half open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// No requests until the sleep window has passed.
    Open,
    /// One probe is in flight.
    HalfOpen,
}

impl BreakerState {
    /// 0 closed, 1 open, 2 half open (for `vigil_notify_breaker_state`).
    pub fn code(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }

    /// `closed`, `open` or `half-open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// A request the breaker let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Whether it is the single probe of a half-open circuit.
    pub probe: bool,
}

/// One breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: BreakerState,
    opened_at: Timestamp,
    /// Attempts in the window: (time, succeeded).
    window: VecDeque<(Timestamp, bool)>,
    /// Times the circuit opened.
    pub opened: u64,
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Breaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig) -> Breaker {
        Breaker {
            cfg,
            state: BreakerState::Closed,
            opened_at: 0,
            window: VecDeque::new(),
            opened: 0,
        }
    }

    /// The state at `now` (an open circuit whose sleep window has passed shows as half open).
    pub fn state(&self, now: Timestamp) -> BreakerState {
        match self.state {
            BreakerState::Open if now >= self.opened_at + ms(self.cfg.sleep_window) => BreakerState::HalfOpen,
            s => s,
        }
    }

    /// Whether a request may go now (and whether it is the half-open probe); if not, when to
    /// ask again.
    pub fn allow(&mut self, now: Timestamp) -> Result<Attempt, Timestamp> {
        match self.state {
            BreakerState::Closed => Ok(Attempt { probe: false }),
            BreakerState::Open => {
                let until = self.opened_at + ms(self.cfg.sleep_window);
                if now >= until {
                    self.state = BreakerState::HalfOpen;
                    Ok(Attempt { probe: true })
                } else {
                    Err(until)
                }
            }
            // The probe is out; the others wait for its answer.
            BreakerState::HalfOpen => Err(now + 100),
        }
    }

    /// Records an attempt's outcome. While half open only the probe's outcome counts: a request
    /// that started before the circuit opened decides nothing.
    pub fn record(&mut self, attempt: Attempt, ok: bool, now: Timestamp) {
        match self.state {
            BreakerState::HalfOpen if !attempt.probe => {}
            BreakerState::HalfOpen => {
                if ok {
                    self.state = BreakerState::Closed;
                    self.window.clear();
                } else {
                    self.open(now);
                }
            }
            BreakerState::Open => {}
            BreakerState::Closed if attempt.probe => {}
            BreakerState::Closed => {
                self.window.push_back((now, ok));
                let from = now - ms(self.cfg.window);
                while self.window.front().is_some_and(|(t, _)| *t <= from) {
                    self.window.pop_front();
                }
                let total = self.window.len() as u64;
                let failed = self.window.iter().filter(|(_, ok)| !ok).count() as u64;
                if total >= u64::from(self.cfg.request_volume_threshold)
                    && failed * 100 >= u64::from(self.cfg.error_percent_threshold) * total
                {
                    self.open(now);
                }
            }
        }
    }

    fn open(&mut self, now: Timestamp) {
        self.state = BreakerState::Open;
        self.opened_at = now;
        self.window.clear();
        self.opened += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            request_volume_threshold: 4,
            error_percent_threshold: 50,
            window: Duration::from_secs(10),
            sleep_window: Duration::from_secs(5),
        })
    }

    const PLAIN: Attempt = Attempt { probe: false };
    const PROBE: Attempt = Attempt { probe: true };

    #[test]
    fn opens_on_volume_and_error_share_then_probes_once() {
        let mut b = breaker();
        b.record(PLAIN, false, 0);
        b.record(PLAIN, false, 1);
        b.record(PLAIN, false, 2);
        assert_eq!(b.state(2), BreakerState::Closed, "below the volume threshold");
        b.record(PLAIN, true, 3);
        assert_eq!(b.state(3), BreakerState::Open, "3 of 4 failed");
        assert_eq!(b.allow(1_000), Err(5_003));
        assert_eq!(b.allow(5_003), Ok(PROBE), "the probe");
        assert!(b.allow(5_004).is_err(), "only one probe");
        b.record(PLAIN, true, 5_050);
        assert_eq!(
            b.state(5_050),
            BreakerState::HalfOpen,
            "a late older request decides nothing"
        );
        b.record(PROBE, false, 5_100);
        assert_eq!(b.state(5_100), BreakerState::Open);
        assert_eq!(b.allow(10_100), Ok(PROBE));
        b.record(PROBE, true, 10_200);
        assert_eq!(b.state(10_200), BreakerState::Closed);
        assert_eq!(b.opened, 2);
    }

    #[test]
    fn old_failures_leave_the_window() {
        let mut b = breaker();
        for t in 0..3 {
            b.record(PLAIN, false, t);
        }
        b.record(PLAIN, false, 20_000);
        assert_eq!(
            b.state(20_000),
            BreakerState::Closed,
            "the first three are out of the window"
        );
        for t in 0..10 {
            b.record(PLAIN, t % 4 != 0, 30_000 + t);
        }
        assert_eq!(
            b.state(30_010),
            BreakerState::Closed,
            "a quarter to a third failed: below 50 %"
        );
    }
}
