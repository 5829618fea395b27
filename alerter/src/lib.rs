//! vigil-alerter: turns series into alerts and alerts into pages.
//!
//! This crate is where rule files (Prometheus's format, plus SLO and D-1/D-7 anomaly rules), their
//! evaluation against the store, the alert state machine (inactive, pending, firing, resolved) and
//! the notification pipeline (route, group, silence, retry, receivers for Slack, email and
//! webhooks) live. It depends on `vigil-tsdb` for PromQL and storage and on nothing else of the
//! workspace. It holds no code yet: the alerting issue builds it.
