//! Query errors, classified the way Prometheus's HTTP API reports them (`errorType`).

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The expression does not parse, or a parameter is invalid (`bad_data`).
    #[error("{0}")]
    BadData(String),
    /// The expression parsed but could not be evaluated (`execution`).
    #[error("{0}")]
    Execution(String),
    /// The query would hold more samples in memory than allowed (`execution`).
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    /// The query would select more series than allowed (`execution`).
    #[error("query would select more than {0} series")]
    TooManySeries(usize),
    /// The query ran past its deadline (`timeout`).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The store failed underneath the query (`internal`).
    #[error("storage error: {0}")]
    Storage(#[from] crate::error::Error),
}

impl QueryError {
    /// The Prometheus API `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) | QueryError::TooManySamples(_) | QueryError::TooManySeries(_) => "execution",
            QueryError::Timeout(_) => "timeout",
            QueryError::Storage(_) => "internal",
        }
    }

    pub(crate) fn exec(msg: impl Into<String>) -> Self {
        QueryError::Execution(msg.into())
    }
}

/// Result alias for the engine.
pub type QueryResult<T> = Result<T, QueryError>;
