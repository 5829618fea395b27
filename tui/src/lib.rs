//! vigil-tui: the terminal dashboard.
//!
//! A client of vigil's public HTTP API and nothing more: it depends on no other crate of the
//! workspace, so it also works against a plain Prometheus for queries. It renders the dashboards
//! of `dashboards/*.yaml` with ratatui.
//!
//! # Layout
//!
//! ```text
//!  terminal thread ──┐
//!  fetcher task ─────┼── Event ──> App::handle (state.rs) ──> Effect (quit, refresh, view)
//!  1 s ticker ───────┘                  │
//!                                       └──> render(&App, &mut Frame) (render.rs, layout.rs)
//! ```
//!
//! - [`state`]: the state and [`state::App::handle`]; no I/O.
//! - [`render`]: drawing, from the state alone; [`layout`] says where things go, for drawing and
//!   for mouse clicks alike.
//! - [`fetch`] and [`api`]: the queries and the HTTP API client.
//! - [`dashboard`]: the dashboard definitions.
//! - [`run`](mod@run): the terminal, the tasks and the main loop.

pub mod api;
pub mod dashboard;
pub mod fetch;
pub mod layout;
pub mod render;
pub mod run;
pub mod state;
pub mod time;

use std::path::PathBuf;
use std::time::Duration;

pub use run::{run, run_until};

/// Why the dashboard could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A dashboard definition is wrong.
    #[error("dashboard definition: {0}")]
    Dashboard(String),
    /// The server could not be reached.
    #[error("{0}")]
    Http(String),
    /// The server answered with an error.
    #[error("{0}")]
    Api(String),
    /// The terminal could not be set up or drawn to.
    #[error("terminal: {0}")]
    Terminal(std::io::Error),
}

/// How to run the dashboard.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server, e.g. `http://127.0.0.1:9464`.
    pub url: String,
    /// How often data is fetched.
    pub refresh: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// A directory with `overview.yaml` and `api-detail.yaml` instead of the built-in ones.
    pub dashboards: Option<PathBuf>,
    /// The HTTP client to call the server with (its credentials and trusted CAs); a plain one
    /// when `None`.
    pub http: Option<reqwest::Client>,
}

impl Options {
    /// Defaults for `url`: a refresh every 2 s, 10 s timeouts, the built-in dashboards.
    pub fn new(url: &str) -> Options {
        Options {
            url: url.to_owned(),
            refresh: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            dashboards: None,
            http: None,
        }
    }
}
