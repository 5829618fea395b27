//! vigil-alerter: turns series into alerts and alerts into pages.
//!
//! # Layout
//!
//! ```text
//!  rules.rs (files, yaml.rs positions, template/)      notify/ (stages, outbox, delivery, receivers)
//!        │                                                     ▲
//!        ▼                                                     │ firing and resolved alerts
//!  manager.rs ── every interval ──> group.rs ── PromQL over vigil-tsdb ──> alert.rs state machine
//!                                       │
//!                                       └── recording results, ALERTS, ALERTS_FOR_STATE ──> store
//! ```
//!
//! - [`rules`]: Prometheus rule files, checked with line and column ([`yaml`] keeps positions).
//! - [`slo`]: SLO specs (`slos:`), checked and compiled to rule groups (multiwindow,
//!   multi-burn-rate alerts, error budgets); the manager loads them beside rule files.
//! - [`template`]: Go templates in labels and annotations, with Prometheus's functions.
//! - [`alert`]: the alert state machine (inactive, pending, firing, resolved), a pure function.
//! - [`context`]: what a page compares with D-1 and D-7.
//! - [`group`]: evaluating one group at one time against the store.
//! - [`manager`]: loading, reloading, scheduling, and keeping alert state across restarts.
//! - [`task`]: the one loop helper for periodic blocking work, with cooperative shutdown.
//! - [`unittest`]: rule unit tests in promtool's format (`vigil test rules`), run by the same
//!   evaluator over a scratch store.
//! - [`notify`]: the notification pipeline (Alertmanager's route, group, inhibit, time
//!   intervals, silence and dedup stages), the durable outbox and notification log, delivery
//!   with retries, circuit breakers and fallbacks, and the receivers.

pub mod alert;
pub mod anomaly;
pub mod backtest;
pub mod context;
pub mod group;
pub mod manager;
pub mod notify;
pub mod rules;
pub mod secret;
pub mod slo;
pub mod specfile;
pub mod task;
pub mod template;
pub mod unittest;
pub mod yaml;

pub use group::{EvalSettings, Notice};
pub use manager::RuleManager;
pub use notify::{AlertingConfig, Notifier};
pub use secret::Secret;
