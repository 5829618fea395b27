//! The collector's errors.

/// Why the collector could not take or write input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store has been failing long enough that windows are piling up; new input is refused
    /// before anything is counted, so that the sender may retry without double counting.
    #[error("the store is not taking writes: {pending} windows are waiting (last error: {last_error})")]
    Backpressure {
        /// Windows waiting to be committed.
        pending: usize,
        /// The store error that keeps them waiting.
        last_error: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] vigil_tsdb::Error),
}

/// Result alias for the collector.
pub type Result<T, E = Error> = std::result::Result<T, E>;
