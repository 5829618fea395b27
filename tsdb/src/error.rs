//! The store's error type (the query engine's errors are in `promql::error`). Corruption always carries the file and byte offset where it was found.

use std::path::PathBuf;

/// Result alias for the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the store and its query engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a file of the data directory failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("open", "write", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file holds bytes that cannot be what the store wrote.
    #[error("corruption in {file} at offset {offset}: {reason}")]
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the first bad record.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another process (lock file held)")]
    Locked(PathBuf),
    /// A sample references a series the head does not know.
    #[error("unknown series reference {0}")]
    UnknownSeries(u64),
    /// A commit names a series the head garbage-collected after the reference was handed out
    /// (it had stopped and its samples were all in blocks). Nothing was written: append by
    /// labels again (the series comes back) and commit.
    #[error("a series reference names a series collected since; append by labels again")]
    SeriesCollected,
    /// A label set is not valid for storage.
    #[error("invalid labels: {0}")]
    InvalidLabels(String),
    /// A selection would hold more series than its caller allows.
    #[error("query would select more than {0} series")]
    TooManySeries(usize),
}

impl Error {
    /// Wraps an I/O error with what was being done and where.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
