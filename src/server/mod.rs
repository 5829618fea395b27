//! The HTTP server: Prometheus's query API, Kong ingest, self-metrics and health, plus the
//! background tasks a running vigil needs (the collector's clock, self-metrics to the store).

mod api;
mod ingest;
pub(crate) mod json;
mod params;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use vigil_collector::Collector;
use vigil_tsdb::Db;
use vigil_tsdb::promql::Engine;
use vigil_tsdb::time::now_ms;

use crate::config::Config;
use crate::telemetry;

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) db: Arc<Db>,
    pub(crate) engine: Engine,
    pub(crate) collector: Arc<Collector>,
}

impl App {
    /// Opens the store in the configured directory and sets up the collector on it.
    pub(crate) fn open(cfg: &Config) -> Result<Arc<App>> {
        let dir = &cfg.storage.data_dir;
        let db = Db::open(dir, vigil_tsdb::Options::default())
            .with_context(|| format!("opening the store in {}", dir.display()))?;
        Ok(App::with_db(cfg, Arc::new(db)))
    }

    pub(crate) fn with_db(cfg: &Config, db: Arc<Db>) -> Arc<App> {
        let collector = Arc::new(Collector::new(db.clone(), cfg.collector.aggregator()));
        Arc::new(App {
            db,
            engine: Engine::new(cfg.query.engine()),
            collector,
        })
    }
}

/// The routes.
pub(crate) fn router(app: Arc<App>, max_body: usize) -> Router {
    Router::new()
        .route("/api/v1/query", get(api::query).post(api::query))
        .route("/api/v1/query_range", get(api::query_range).post(api::query_range))
        .route("/api/v1/series", get(api::series).post(api::series))
        .route("/api/v1/labels", get(api::labels).post(api::labels))
        .route("/api/v1/label/{name}/values", get(api::label_values))
        .route("/api/v1/status/buildinfo", get(api::buildinfo))
        .route(
            "/ingest/kong",
            post(ingest::kong).layer(DefaultBodyLimit::max(max_body)),
        )
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "vigil is Healthy.\n" }))
        .route("/-/ready", get(|| async { "vigil is Ready.\n" }))
        .fallback(not_found)
        .with_state(app)
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let samples = telemetry::gather(&app.db, Some(&app.collector));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        telemetry::exposition(&samples),
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

/// Binds the listen address.
pub(crate) async fn bind(cfg: &Config) -> Result<TcpListener> {
    TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.server.listen))
}

/// Serves until `shutdown` completes, then flushes the collector's open windows.
pub(crate) async fn serve(
    cfg: &Config,
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let background = spawn_background(cfg, app.clone());
    let router = router(app.clone(), cfg.server.max_body_bytes);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server")?;
    for task in background {
        task.abort();
    }
    let collector = app.collector.clone();
    tokio::task::spawn_blocking(move || collector.flush())
        .await?
        .context("flushing the collector")?;
    app.db.sync().context("syncing the store")?;
    Ok(())
}

/// The collector's wall clock and a sync of the WAL to disk (every second), and self-metrics to
/// the store. Commits are written at once but synced here, so a power loss costs at most about a
/// second of acknowledged samples (a crash of the process alone costs none).
fn spawn_background(cfg: &Config, app: Arc<App>) -> Vec<JoinHandle<()>> {
    let ticker = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let app = app.clone();
                let done = tokio::task::spawn_blocking(move || {
                    if let Err(e) = app.collector.tick(now_ms()) {
                        tracing::error!(error = %e, "collector could not write to the store");
                    }
                    if let Err(e) = app.db.sync() {
                        tracing::error!(error = %e, "syncing the WAL failed");
                    }
                })
                .await;
                if let Err(e) = done {
                    tracing::error!(error = %e, "collector tick failed");
                }
            }
        })
    };
    let interval = vigil_tsdb::time::ms_to_duration(cfg.server.self_metrics_interval);
    let self_metrics = tokio::spawn(async move {
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let app = app.clone();
            let r = tokio::task::spawn_blocking(move || {
                let samples = telemetry::gather(&app.db, Some(&app.collector));
                telemetry::store(&app.db, &samples, now_ms())
            })
            .await;
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %e, "writing self-metrics failed");
            }
        }
    });
    vec![ticker, self_metrics]
}

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
