//! The query gate: at most `server.max_concurrent_queries` reads are evaluated at once (as
//! Prometheus's `--query.max-concurrency`); the rest wait in a queue of at most
//! `server.max_queued_queries`, each for at most `query.timeout`, and beyond either get 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::json::ApiError;

/// Admission of queries.
#[derive(Debug)]
pub(crate) struct QueryGate {
    slots: Arc<Semaphore>,
    max_running: usize,
    queued: AtomicUsize,
    max_queued: usize,
    max_wait: Duration,
    /// Queries refused (queue full or waited too long), for `/metrics`.
    refused: AtomicU64,
}

/// A place in the queue, given back when dropped.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A query's place among those running; the slot frees when it drops.
#[derive(Debug)]
pub(crate) struct Admitted(#[allow(dead_code)] OwnedSemaphorePermit);

impl QueryGate {
    pub(crate) fn new(max_running: usize, max_queued: usize, max_wait: Duration) -> Self {
        let max_running = max_running.max(1);
        QueryGate {
            slots: Arc::new(Semaphore::new(max_running)),
            max_running,
            queued: AtomicUsize::new(0),
            max_queued,
            max_wait,
            refused: AtomicU64::new(0),
        }
    }

    /// Waits for a slot, or says why not.
    pub(crate) async fn enter(&self) -> Result<Admitted, ApiError> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(Admitted(p));
        }
        // The place in the queue is given back however the wait ends, a caller that goes
        // away included.
        let place = Queued(&self.queued);
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            drop(place);
            return Err(self.refuse(format!(
                "{} queries running and {} waiting (server.max_concurrent_queries, server.max_queued_queries)",
                self.max_running, self.max_queued
            )));
        }
        let waited = tokio::time::timeout(self.max_wait, self.slots.clone().acquire_owned()).await;
        drop(place);
        match waited {
            Ok(Ok(p)) => Ok(Admitted(p)),
            _ => Err(self.refuse(format!(
                "no query slot free within {:?} ({} queries running)",
                self.max_wait, self.max_running
            ))),
        }
    }

    fn refuse(&self, why: String) -> ApiError {
        self.refused.fetch_add(1, Ordering::Relaxed);
        ApiError::unavailable(why)
    }

    /// Self-metrics: queries running, waiting and refused.
    pub(crate) fn telemetry(&self) -> Vec<(vigil_tsdb::Labels, f64)> {
        let m = |name: &str, v: f64| (vigil_tsdb::Labels::from_pairs([("__name__", name)]), v);
        vec![
            m("vigil_http_queries_running", self.running() as f64),
            m("vigil_http_queries_queued", self.queued() as f64),
            m("vigil_http_queries_refused_total", self.refused() as f64),
        ]
    }

    /// Queries evaluating now.
    pub(crate) fn running(&self) -> usize {
        self.max_running - self.slots.available_permits()
    }

    /// Queries waiting for a slot.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Queries refused with 503 since start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_the_slots_queries_wait_and_beyond_the_queue_they_are_refused() {
        let gate = Arc::new(QueryGate::new(2, 1, Duration::from_secs(60)));
        let a = gate.enter().await.expect("slot");
        let _b = gate.enter().await.expect("slot");
        assert_eq!(gate.running(), 2);
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter().await.map(|_| ()) }
        });
        while gate.queued() == 0 {
            tokio::task::yield_now().await;
        }
        let refused = gate.enter().await.expect_err("queue full");
        assert_eq!(refused.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(gate.refused(), 1);
        drop(a);
        waiting.await.expect("task").expect("admitted once a slot freed");
    }

    #[tokio::test]
    async fn a_query_that_waits_too_long_is_refused() {
        let gate = QueryGate::new(1, 10, Duration::from_millis(200));
        let _a = gate.enter().await.expect("slot");
        let e = gate.enter().await.expect_err("timed out");
        assert!(e.message.contains("within 200ms"), "{}", e.message);
        assert_eq!(gate.queued(), 0);
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_gives_its_place_back() {
        let gate = Arc::new(QueryGate::new(1, 1, Duration::from_secs(60)));
        let a = gate.enter().await.expect("slot");
        for _ in 0..3 {
            let waiting = tokio::spawn({
                let gate = gate.clone();
                async move { gate.enter().await.map(|_| ()) }
            });
            while gate.queued() == 0 {
                tokio::task::yield_now().await;
            }
            waiting.abort();
            let _ = waiting.await;
            assert_eq!(gate.queued(), 0, "the abandoned wait left the queue");
        }
        drop(a);
        gate.enter().await.expect("the queue is whole again");
    }
}
