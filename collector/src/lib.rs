//! vigil-collector: from Kong request events to time series.
//!
//! # Layout
//!
//! ```text
//!  sources (HTTP body, NDJSON file, simulator, kafka/ consumer group)
//!     │ bytes
//!     ▼
//!  kong/      decode on demand ──> KongEvent (borrowed)      malformed ──> Reject counts
//!     ▼
//!  template   /v1/orders/81723 ──> /v1/orders/{id}, per-route path cap
//!     ▼
//!  aggregate/ event-time windows ──> WindowOutput (cumulative samples per window end)
//!     ▼
//!  sink       WindowOutput (+ source positions and open windows) ──> vigil-tsdb Appender::commit
//! ```
//!
//! [`Collector`] wires these together behind a lock; the HTTP server, `vigil import`, the demo
//! and the [`kafka`] source all feed it.

pub mod aggregate;
mod error;
pub mod kafka;
pub mod kong;
pub mod pipeline;
pub mod sample;
pub mod sim;
pub mod sink;
pub mod template;

pub use aggregate::{Aggregator, AggregatorConfig, WindowOutput};
pub use error::{Error, Result};
pub use kong::{KongEvent, Reject, RejectCounts};
pub use pipeline::{Collector, CollectorStats, IngestReport};
