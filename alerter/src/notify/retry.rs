//! When to try a send again: exponential backoff with jitter, and which failures are worth it.

use std::time::Duration;

use super::config::RetryConfig;

/// The outcome of one send attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth another try: a timeout, a refused connection, 429 or a 5xx.
    Retryable(String),
    /// Not worth it: another 4xx, or a page the receiver cannot take.
    Permanent(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Retryable(m) => write!(f, "{m} (will retry)"),
            SendError::Permanent(m) => write!(f, "{m} (not retried)"),
        }
    }
}

/// Classifies an HTTP status: success, retry (429 and 5xx), or give up (other 4xx).
pub fn classify_status(status: u16, body: &str) -> Result<(), SendError> {
    let detail = || {
        let body = body.trim();
        let body: String = body.chars().take(200).collect();
        if body.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {body}")
        }
    };
    match status {
        200..=299 => Ok(()),
        429 | 500..=599 => Err(SendError::Retryable(detail())),
        _ => Err(SendError::Permanent(detail())),
    }
}

/// The wait before attempt `attempt` (the first retry is attempt 1): `initial * 2^(attempt-1)`,
/// capped at `max`, then scaled by a random factor in [0.5, 1.5) so that many senders that
/// failed together do not retry together.
pub fn backoff(cfg: &RetryConfig, attempt: u32, random_unit: f64) -> Duration {
    let ms = |d: Duration| (d.as_millis() as f64).max(1.0);
    let base = ms(cfg.initial_backoff) * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
    let capped = base.min(ms(cfg.max_backoff));
    Duration::from_millis((capped * (0.5 + random_unit)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify_status(200, ""), Ok(()));
        assert_eq!(classify_status(204, ""), Ok(()));
        assert!(matches!(classify_status(429, ""), Err(SendError::Retryable(_))));
        assert!(matches!(classify_status(503, "down"), Err(SendError::Retryable(m)) if m == "HTTP 503: down"));
        assert!(matches!(classify_status(400, "bad"), Err(SendError::Permanent(_))));
        assert!(matches!(classify_status(404, ""), Err(SendError::Permanent(_))));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let cfg = RetryConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..Default::default()
        };
        let mid = |a| backoff(&cfg, a, 0.5).as_millis();
        assert_eq!(
            (mid(1), mid(2), mid(3), mid(4), mid(5), mid(30)),
            (100, 200, 400, 800, 1000, 1000)
        );
        assert_eq!(backoff(&cfg, 1, 0.0).as_millis(), 50);
        assert_eq!(backoff(&cfg, 1, 0.999).as_millis(), 149);
    }
}
