//! Periodic blocking work with cooperative shutdown (mini-redis's recipe): one helper, [`every`],
//! for the loops of a running vigil (the collector's clock, self-metrics, store maintenance,
//! rule evaluation). On shutdown a job under way finishes; no new one starts.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

/// Tells the loops to stop.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// What a loop watches to know it should stop.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A trigger and the signal it sends.
pub fn shutdown_channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Stops every loop watching (each after its job under way).
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Whether shutdown was asked for.
    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once shutdown is asked for (or the trigger is gone).
    pub async fn recv(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Runs `job` on a blocking thread every `period` (a late tick waits rather than bunching up)
/// until `shutdown`; a job under way finishes first. A job that panics is logged and the loop
/// goes on.
pub async fn every<F>(name: &'static str, period: Duration, mut shutdown: Shutdown, job: F)
where
    F: FnMut() + Send + 'static,
{
    let job = Arc::new(Mutex::new(job));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.recv() => return,
        }
        let job = job.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || (job.lock())()).await {
            tracing::error!(task = name, error = %e, "a periodic job failed");
        }
        if shutdown.is_shutdown() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn runs_until_shutdown_and_lets_the_job_under_way_finish() {
        let (trigger, shutdown) = shutdown_channel();
        let (runs, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (r, f) = (runs.clone(), finished.clone());
        let task = tokio::spawn(every("test", Duration::from_millis(10), shutdown, move || {
            r.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(30));
            f.fetch_add(1, Ordering::SeqCst);
        }));
        while runs.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        trigger.trigger();
        task.await.expect("the loop ends");
        assert_eq!(
            runs.load(Ordering::SeqCst),
            finished.load(Ordering::SeqCst),
            "no job cut off"
        );
        let after = runs.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(runs.load(Ordering::SeqCst), after, "no job after shutdown");
    }
}
