//! The HTTP server: Prometheus's query, rules and alerts API, Kong ingest, self-metrics and
//! health, plus the background tasks a running vigil needs (the collector's clock, rule
//! evaluation and pages, self-metrics to the store).

mod am_api;
mod api;
mod auth;
mod conn;
mod events_api;
mod gate;
mod ingest;
pub(crate) mod json;
mod params;
mod rules_api;
mod slo_api;
mod status;
mod status_api;
mod web_config;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use vigil_alerter::task::{Shutdown, every, shutdown_channel};
use vigil_alerter::{Notifier, RuleManager};
use vigil_collector::Collector;
use vigil_collector::kafka::{KafkaSource, KafkaStatus};
use vigil_tsdb::Db;
use vigil_tsdb::events::EventStore;
use vigil_tsdb::promql::Engine;
use vigil_tsdb::time::now_ms;

use crate::config::{Config, ServerConfig};
use crate::telemetry;
use auth::Auth;
pub(crate) use auth::Scope;
pub(crate) use conn::ConnLimits;
use gate::QueryGate;
use web_config::WebConfig;

/// Where console receivers write.
pub(crate) type ConsoleWriter = Arc<Mutex<Box<dyn std::io::Write + Send>>>;

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) db: Arc<Db>,
    pub(crate) engine: Engine,
    pub(crate) collector: Arc<Collector>,
    pub(crate) rules: Arc<RuleManager>,
    /// Started with the server (it needs the async runtime).
    pub(crate) notifier: OnceLock<Arc<Notifier>>,
    /// The Kafka source, when configured (started with the server, stopped before the store).
    kafka: Mutex<Option<KafkaSource>>,
    pub(crate) kafka_status: OnceLock<Arc<KafkaStatus>>,
    /// The searchable sample of raw events, unless disabled.
    pub(crate) events: Option<Arc<EventStore>>,
    /// Where the rule files are listed, re-read on reload.
    config_path: Option<PathBuf>,
    rule_files: Mutex<Vec<String>>,
    /// Whether `/api/v1/admin/*` answers (`server.enable_admin_api`).
    pub(crate) admin_api: bool,
    /// Start time and settings, for the status endpoints.
    pub(crate) runtime: status_api::Runtime,
    /// Admission of queries (`server.max_concurrent_queries`).
    pub(crate) queries: Arc<QueryGate>,
    /// Who may call what, response headers and TLS: from `server.web_config_file` and
    /// `server.tokens`, replaced whole on reload.
    access: parking_lot::RwLock<Arc<Access>>,
    /// The TLS settings new connections take (shared with the accept loop), when TLS is on.
    tls: Option<conn::TlsSettings>,
    /// Held by the reload under way.
    reloading: Mutex<()>,
}

/// What the web configuration file and `server.tokens` set.
#[derive(Debug)]
struct Access {
    auth: Arc<Auth>,
    headers: ExtraHeaders,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Access {
    /// Reads the web configuration file (if any) and the tokens of `cfg`; on reload, in place
    /// of `current`.
    fn load(cfg: &Config, current: Option<&Auth>) -> Result<Access> {
        let web = match &cfg.server.web_config_file {
            Some(f) => WebConfig::load(std::path::Path::new(f))?,
            None => WebConfig::default(),
        };
        let auth = Auth::new(
            web.basic_auth_users.clone(),
            cfg.server
                .tokens
                .iter()
                .map(|t| (t.name.clone(), t.token.expose().to_owned(), t.scopes.clone())),
        );
        let auth = Arc::new(match current {
            Some(current) => auth.succeeding(current),
            None => auth,
        });
        Ok(Access {
            auth,
            headers: response_headers(&web),
            tls: web.tls()?,
        })
    }
}

impl App {
    /// Opens the store in the configured directory and sets up the collector and the rules on
    /// it; `config_path` is re-read when rules are reloaded.
    pub(crate) fn open(cfg: &Config, config_path: Option<PathBuf>) -> Result<Arc<App>> {
        let dir = &cfg.storage.data_dir;
        let db =
            Db::open(dir, cfg.storage.options()).with_context(|| format!("opening the store in {}", dir.display()))?;
        let db = Arc::new(db);
        let collector = Arc::new(Collector::new(db.clone(), cfg.collector.aggregator()));
        let events = if cfg.events.enabled {
            let store = EventStore::open(&dir.join("events"), cfg.events.store())
                .with_context(|| format!("opening the event store in {}", dir.join("events").display()))?;
            let store = Arc::new(store);
            collector.set_event_store(store.clone(), cfg.events.sampling());
            Some(store)
        } else {
            None
        };
        let engine = Engine::new(cfg.query.engine());
        let state = dir.join("alerts").join("state.json");
        let rules = Arc::new(
            RuleManager::new(db.clone(), engine.clone(), cfg.eval_settings(), Some(state))
                .with_latency_buckets(cfg.collector.buckets.clone()),
        );
        let runtime = status_api::Runtime::new(cfg, config_path.as_deref());
        let access = Access::load(cfg, None)?;
        let tls = access.tls.clone().map(|t| Arc::new(parking_lot::RwLock::new(t)));
        let app = App {
            db,
            engine,
            collector,
            rules,
            notifier: OnceLock::new(),
            kafka: Mutex::new(None),
            kafka_status: OnceLock::new(),
            events,
            config_path,
            rule_files: Mutex::new(cfg.rule_files.clone()),
            admin_api: cfg.server.enable_admin_api,
            runtime,
            queries: Arc::new(QueryGate::new(
                cfg.server.max_concurrent_queries,
                cfg.server.max_queued_queries,
                vigil_tsdb::time::ms_to_duration(cfg.query.timeout),
            )),
            access: parking_lot::RwLock::new(Arc::new(access)),
            tls,
            reloading: Mutex::new(()),
        };
        if !cfg.rule_files.is_empty() {
            app.rules
                .load_files(&cfg.rule_files)
                .map_err(|errs| rule_errors(&errs))?;
        }
        Ok(Arc::new(app))
    }

    /// Re-reads the configuration's rule files, its `alerting:` section (and the
    /// `alertmanager.yml` it names), the web configuration file and the tokens; on any error the
    /// current ones stay.
    ///
    /// Everything is read and checked before anything is applied, and one reload runs at a
    /// time (SIGHUP and `/-/reload` may come together). Other settings of `vigil.yaml` take a
    /// restart.
    pub(crate) fn reload(&self) -> Result<String, String> {
        let _one_at_a_time = self.reloading.lock();
        let failed = |e: String| {
            *self.runtime.last_reload.lock() = (false, vigil_tsdb::time::now_ms());
            tracing::error!(error = %e, "reload failed; the current settings stay");
            e
        };
        let mut access = None;
        let mut alerting = None;
        let mut files = self.rule_files.lock().clone();
        if let Some(path) = &self.config_path {
            let cfg = Config::load(path).map_err(|e| failed(format!("reloading {}: {e:#}", path.display())))?;
            let current = self.auth();
            let next = Access::load(&cfg, Some(&current))
                .map_err(|e| failed(format!("reloading the web configuration: {e:#}")))?;
            self.check_tls_switch(&next).map_err(failed)?;
            if let Some(n) = self.notifier.get() {
                let next = n
                    .prepare(&cfg.alerting)
                    .map_err(|e| failed(format!("reloading alerting: {e}")))?;
                alerting = Some((n, next));
            }
            files = cfg.rule_files;
            access = Some(next);
        }
        let groups = self
            .rules
            .load_files(&files)
            .map_err(|errs| failed(rule_errors(&errs).to_string()))?;
        *self.rule_files.lock() = files;
        if let Some(next) = access {
            self.replace_access(next);
        }
        if let Some((notifier, next)) = alerting {
            notifier.apply(next);
        }
        *self.runtime.last_reload.lock() = (true, vigil_tsdb::time::now_ms());
        tracing::info!(groups, "reloaded");
        Ok(format!("reloaded {groups} rule groups\n"))
    }
}

impl App {
    /// TLS is switched on or off only by a restart.
    fn check_tls_switch(&self, new: &Access) -> Result<(), String> {
        match (&self.tls, &new.tls) {
            (Some(_), None) => Err("the web configuration no longer asks for TLS; that takes a restart".into()),
            (None, Some(_)) => Err("the web configuration now asks for TLS; that takes a restart".into()),
            _ => Ok(()),
        }
    }

    /// Puts reloaded access settings in place: new credentials for the next request, new TLS
    /// settings for the next connection.
    fn replace_access(&self, new: Access) {
        if let (Some(current), Some(next)) = (&self.tls, &new.tls) {
            *current.write() = next.clone();
        }
        let mut access = self.access.write();
        if access.auth.required() && !new.auth.required() {
            tracing::warn!("the reloaded configuration has no users and no tokens: every endpoint is open now");
        }
        *access = Arc::new(new);
    }

    fn auth(&self) -> Arc<Auth> {
        self.access.read().auth.clone()
    }

    /// Every self-metric of this process now: collector, store, rules and pages.
    pub(crate) fn self_metrics(&self) -> Vec<(vigil_tsdb::Labels, f64)> {
        let mut out = telemetry::gather(&self.db, Some(&self.collector));
        out.extend(self.rules.telemetry());
        if let Some(n) = self.notifier.get() {
            out.extend(n.telemetry());
        }
        if let Some(k) = self.kafka_status.get() {
            out.extend(k.telemetry());
        }
        if let Some(e) = &self.events {
            out.extend(events_api::telemetry(e));
        }
        out.extend(self.queries.telemetry());
        out.extend(self.auth().telemetry());
        out
    }

    /// Starts consuming from Kafka when the configuration says so.
    fn start_sources(&self, cfg: &Config) -> Result<()> {
        if let Some(k) = &cfg.sources.kafka {
            let source = KafkaSource::start(k, self.collector.clone()).context("starting the Kafka source")?;
            let _ = self.kafka_status.set(source.status().clone());
            *self.kafka.lock() = Some(source);
        }
        Ok(())
    }

    /// Whether vigil can serve: `Err` says why not.
    pub(crate) fn readiness(&self) -> Result<(), String> {
        match self.kafka_status.get() {
            Some(k) => k.readiness(),
            None => Ok(()),
        }
    }
}

fn rule_errors(errs: &[vigil_alerter::rules::RuleError]) -> anyhow::Error {
    let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
    anyhow::anyhow!("invalid rule files:\n{}", lines.join("\n"))
}

/// The routes, each group with its body limit (`server.max_*body_bytes`), every body with its
/// deadline (`server.read_body_timeout`).
pub(crate) fn router(app: Arc<App>, server: &ServerConfig) -> Router {
    let queries = Router::new()
        .route("/api/v1/query", get(api::query).post(api::query))
        .route("/api/v1/query_range", get(api::query_range).post(api::query_range))
        .route("/api/v1/series", get(api::series).post(api::series))
        .route("/api/v1/labels", get(api::labels).post(api::labels))
        .route("/api/v1/label/{name}/values", get(api::label_values))
        .route(
            "/api/v1/format_query",
            get(status_api::format_query).post(status_api::format_query),
        )
        .route(
            "/api/v1/query_exemplars",
            get(status_api::query_exemplars).post(status_api::query_exemplars),
        )
        .route(
            "/api/v1/events/search",
            get(events_api::search).post(events_api::search),
        )
        .layer(DefaultBodyLimit::max(server.max_query_body_bytes));
    let ingest = Router::new()
        .route("/ingest/kong", post(ingest::kong))
        .layer(DefaultBodyLimit::max(server.max_body_bytes));
    let other = Router::new()
        .route("/api/v1/status/buildinfo", get(api::buildinfo))
        .route("/api/v1/status/runtimeinfo", get(status_api::runtimeinfo))
        .route("/api/v1/status/flags", get(status_api::flags))
        .route("/api/v1/status/tsdb", get(status_api::tsdb))
        .route("/api/v1/metadata", get(status_api::metadata))
        .route(
            "/api/v1/admin/tsdb/delete_series",
            post(api::delete_series).put(api::delete_series),
        )
        .route("/api/v1/status/collector", get(status::collector))
        .route("/api/v1/rules", get(rules_api::rules))
        .route("/api/v1/alerts", get(rules_api::alerts))
        .route("/api/v1/slos", get(slo_api::slos))
        .route("/api/v1/alerts/ack", post(am_api::ack))
        .route("/api/v2/status", get(am_api::status))
        .route("/api/v2/receivers", get(am_api::receivers))
        .route("/api/v2/alerts", get(am_api::alerts))
        .route("/api/v2/alerts/groups", get(am_api::alert_groups))
        .route("/api/v2/silences", get(am_api::silences).post(am_api::post_silence))
        .route(
            "/api/v2/silence/{id}",
            get(am_api::get_silence).delete(am_api::delete_silence),
        )
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "vigil is Healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(rules_api::reload).put(rules_api::reload))
        .layer(DefaultBodyLimit::max(server.max_other_body_bytes));
    let body_timeout = vigil_tsdb::time::ms_to_duration(server.read_body_timeout);
    queries
        .merge(ingest)
        .merge(other)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(body_timeout, conn::body_deadline))
        .layer(axum::middleware::from_fn_with_state(app.clone(), authorize))
        .layer(axum::middleware::from_fn_with_state(app.clone(), add_headers))
        .with_state(app)
}

/// The response headers the web configuration file sets.
type ExtraHeaders = Arc<Vec<(header::HeaderName, header::HeaderValue)>>;

fn response_headers(web: &WebConfig) -> ExtraHeaders {
    Arc::new(
        web.http_server_config
            .headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    header::HeaderName::from_bytes(k.as_bytes()).ok()?,
                    header::HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect(),
    )
}

async fn authorize(State(app): State<Arc<App>>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    auth::authorize(app.auth(), req, next).await
}

async fn add_headers(
    State(app): State<Arc<App>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let extra = app.access.read().headers.clone();
    let mut r = next.run(req).await;
    for (k, v) in extra.iter() {
        r.headers_mut().insert(k.clone(), v.clone());
    }
    r
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let samples = app.self_metrics();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        telemetry::exposition(&samples),
    )
        .into_response()
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    match app.readiness() {
        Ok(()) => "vigil is Ready.\n".into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("vigil is not ready: {why}\n")).into_response(),
    }
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

/// Serves until `shutdown` completes, then flushes the collector's open windows. Rules are
/// evaluated and pages sent (with `console` as the console receivers' output) while it runs.
pub(crate) async fn serve(
    cfg: &Config,
    app: Arc<App>,
    listener: TcpListener,
    console: ConsoleWriter,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let notify_dir = cfg.storage.data_dir.join("notify");
    let notifier = Notifier::start(&cfg.alerting, Some(&notify_dir), cfg.external_url(), &console)?;
    if let Some(events) = &app.events {
        // The alert history goes to the event store beside the sampled requests.
        let events = events.clone();
        notifier.history().connect(Arc::new(move |ev| {
            events.offer(ev);
        }));
    }
    let _ = app.notifier.set(notifier.clone());
    app.start_sources(cfg)?;
    let (stop_loops, loops_stop) = shutdown_channel();
    let mut background = spawn_background(cfg, &app, &loops_stop);
    background.push(tokio::spawn(app.rules.clone().run(Some(notifier), loops_stop)));
    let sighup = tokio::spawn(reload_on_sighup(app.clone()));
    let router = router(app.clone(), &cfg.server);
    conn::serve(listener, router, cfg.server.conn_limits(), app.tls.clone(), shutdown).await;
    // The loops stop after the job each has under way (a compaction, an evaluation).
    sighup.abort();
    stop_loops.trigger();
    for task in background {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "a background loop failed");
        }
    }
    let closing = app.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        // The source first: what it read is aggregated and its positions stored (with the open
        // windows, written when it was caught up). Without a source that replays, the open
        // windows are written now.
        if let Some(k) = closing.kafka.lock().take() {
            k.stop();
        }
        closing.collector.shutdown().context("flushing the collector")?;
        if let Some(e) = &closing.events {
            e.close();
        }
        // The last counts, so that the collector's counters continue exactly after a restart.
        telemetry::store(&closing.db, &closing.self_metrics(), now_ms()).context("writing self-metrics")?;
        closing.db.sync().context("syncing the store")
    })
    .await?
}

/// Reloads the rules and the web configuration on SIGHUP, as Prometheus does.
async fn reload_on_sighup(app: Arc<App>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let app = app.clone();
            let _ = tokio::task::spawn_blocking(move || app.reload()).await;
        }
    }
    #[cfg(not(unix))]
    let _ = app;
}

/// The collector's wall clock and a sync of the WAL to disk (every second), self-metrics to
/// the store, and the store's maintenance (blocks, compaction, retention; every minute), until
/// `shutdown` (each job under way finishes). Commits are written at once but synced here, so a
/// power loss costs at most about a second of acknowledged samples (a crash of the process alone
/// costs none).
fn spawn_background(cfg: &Config, app: &Arc<App>, shutdown: &Shutdown) -> Vec<JoinHandle<()>> {
    let ticker = {
        let app = app.clone();
        every("collector tick", Duration::from_secs(1), shutdown.clone(), move || {
            if let Err(e) = app.collector.tick(now_ms()) {
                tracing::error!(error = %e, "collector could not write to the store");
            }
            if let Err(e) = app.db.sync() {
                tracing::error!(error = %e, "syncing the WAL failed");
            }
        })
    };
    let self_metrics = {
        let app = app.clone();
        let interval = vigil_tsdb::time::ms_to_duration(cfg.server.self_metrics_interval);
        every("self-metrics", interval, shutdown.clone(), move || {
            if let Err(e) = telemetry::store(&app.db, &app.self_metrics(), now_ms()) {
                tracing::warn!(error = %e, "writing self-metrics failed");
            }
        })
    };
    let maintenance = {
        let db = app.db.clone();
        every("store maintenance", MAINTENANCE_INTERVAL, shutdown.clone(), move || {
            if let Err(e) = db.maintain() {
                tracing::error!(error = %e, "store maintenance failed; retried next round");
            }
        })
    };
    vec![
        tokio::spawn(ticker),
        tokio::spawn(self_metrics),
        tokio::spawn(maintenance),
    ]
}

/// How often blocks are cut from the head, compacted and retired.
const MAINTENANCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

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
