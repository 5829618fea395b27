//! vigil-tui: the terminal dashboard.
//!
//! A client of vigil's public HTTP API (and later its WebSocket stream) and nothing more: it does
//! not depend on any other crate of the workspace, so it works against a plain Prometheus too. It
//! renders the dashboards in `dashboards/*.yaml` with ratatui, state, events and rendering kept
//! apart. It holds no code yet: the dashboard issue builds it.
