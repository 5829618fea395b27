//! `vigil.yaml`: one typed file for storage, server, collector and query settings. Unknown keys
//! are errors (a typo must not silently fall back to a default); the doc comments below are the
//! reference for each key.
//!
//! ```yaml
//! sources:
//!   kafka:
//!     brokers: "127.0.0.1:9092"
//!     group: vigil
//!     topics: [kong-logs]
//! storage:
//!   data_dir: ./vigil-data
//! server:
//!   listen: 127.0.0.1:9464
//! collector:
//!   window: 10s
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Deserializer};
use vigil_alerter::{AlertingConfig, EvalSettings, Secret};
use vigil_collector::AggregatorConfig;
use vigil_collector::kafka::KafkaConfig;
use vigil_tsdb::promql::EngineOptions;
use vigil_tsdb::time::parse_duration_ms;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// Where Kong events come from besides `POST /ingest/kong`.
    pub(crate) sources: SourcesConfig,
    /// Where and how series are stored.
    pub(crate) storage: StorageConfig,
    /// The HTTP server.
    pub(crate) server: ServerConfig,
    /// How Kong events become series.
    pub(crate) collector: CollectorConfig,
    /// PromQL evaluation limits.
    pub(crate) query: QueryConfig,
    /// Settings of rule evaluation.
    pub(crate) global: GlobalConfig,
    /// Rule files (Prometheus's format; `*` and `?` allowed in file names), relative to this
    /// file's directory.
    pub(crate) rule_files: Vec<String>,
    /// Receivers and routing of pages.
    pub(crate) alerting: AlertingConfig,
    /// The event store: a searchable sample of raw events.
    pub(crate) events: EventsConfig,
}

/// `events:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct EventsConfig {
    /// Keep a searchable sample of raw events in `<data_dir>/events`. Default true.
    pub(crate) enabled: bool,
    /// Every 5xx is kept, up to this many per route per minute. Default 600.
    pub(crate) errors_per_route_per_minute: u32,
    /// Share of the other events kept, from 0 to 1. Default 0.001.
    pub(crate) sample_rate: f64,
    /// Events older than this are deleted. Default `7d`.
    #[serde(deserialize_with = "duration")]
    pub(crate) retention: i64,
    /// Above this size on disk the oldest events are deleted: bytes, or with a unit (`500MB`,
    /// `1GiB`). Default `1GiB`.
    #[serde(deserialize_with = "byte_size")]
    pub(crate) max_size: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            enabled: true,
            errors_per_route_per_minute: 600,
            sample_rate: 0.001,
            retention: 7 * 86_400_000,
            max_size: 1 << 30,
        }
    }
}

impl EventsConfig {
    pub(crate) fn store(&self) -> vigil_tsdb::events::EventStoreConfig {
        vigil_tsdb::events::EventStoreConfig {
            max_age_ms: self.retention,
            max_bytes: self.max_size,
            ..Default::default()
        }
    }

    pub(crate) fn sampling(&self) -> vigil_collector::sample::SampleConfig {
        vigil_collector::sample::SampleConfig {
            errors_per_route_per_minute: self.errors_per_route_per_minute,
            sample_rate: self.sample_rate,
        }
    }
}

/// `sources:`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SourcesConfig {
    /// A Kafka consumer group (see `vigil_collector::kafka::KafkaConfig` for every key).
    pub(crate) kafka: Option<KafkaConfig>,
}

/// `global:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct GlobalConfig {
    /// Interval of rule groups that set none. Default `30s`.
    #[serde(deserialize_with = "duration")]
    pub(crate) evaluation_interval: i64,
    /// How far behind the evaluation time rules query, so that they see complete windows.
    /// Default: the collector's window plus its watermark delay (`15s`).
    #[serde(default, deserialize_with = "optional_duration")]
    pub(crate) rule_query_offset: Option<i64>,
    /// The URL vigil is reached at, for links in pages. Default `http://<server.listen>`.
    pub(crate) external_url: Option<String>,
    /// Labels available to templates as `$externalLabels`.
    pub(crate) external_labels: BTreeMap<String, String>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            evaluation_interval: 30_000,
            rule_query_offset: None,
            external_url: None,
            external_labels: BTreeMap::new(),
        }
    }
}

/// `storage:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StorageConfig {
    /// Data directory (write-ahead log, blocks, event store). Default `./vigil-data`.
    pub(crate) data_dir: PathBuf,
    /// Blocks whose newest sample is older than this are deleted. Default `15d` (D-7
    /// comparisons need a week and a bit).
    #[serde(deserialize_with = "duration")]
    pub(crate) retention: i64,
    /// The oldest blocks are deleted while blocks and WAL take more than this (`0`: no limit).
    /// Default no limit.
    #[serde(deserialize_with = "byte_size")]
    pub(crate) max_size: u64,
    /// Time span of a block cut from the head. Default `2h`.
    #[serde(deserialize_with = "duration")]
    pub(crate) block_range: i64,
    /// Downsampled copies of the blocks.
    pub(crate) rollups: RollupsConfig,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./vigil-data"),
            retention: 15 * 86_400_000,
            max_size: 0,
            block_range: vigil_tsdb::db::DEFAULT_BLOCK_RANGE_MS,
            rollups: RollupsConfig::default(),
        }
    }
}

/// `storage.rollups:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RollupsConfig {
    /// Whether blocks get 1 m and 5 m rollups, which queries with coarse steps read. Default on.
    pub(crate) enabled: bool,
    /// How long 1 m rollups are kept. Default `60d`.
    #[serde(deserialize_with = "duration")]
    pub(crate) retention_1m: i64,
    /// How long 5 m rollups are kept. Default `400d` (a year back and a bit).
    #[serde(deserialize_with = "duration")]
    pub(crate) retention_5m: i64,
}

impl Default for RollupsConfig {
    fn default() -> Self {
        RollupsConfig {
            enabled: true,
            retention_1m: 60 * 86_400_000,
            retention_5m: 400 * 86_400_000,
        }
    }
}

impl StorageConfig {
    /// How the store is opened.
    pub(crate) fn options(&self) -> vigil_tsdb::Options {
        vigil_tsdb::Options {
            block_range_ms: self.block_range,
            retention_ms: Some(self.retention),
            max_bytes: (self.max_size > 0).then_some(self.max_size),
            rollups: self.rollups.enabled,
            rollup_retention_ms: [Some(self.rollups.retention_1m), Some(self.rollups.retention_5m)],
            ..vigil_tsdb::Options::default()
        }
    }
}

/// `server:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerConfig {
    /// Address of the HTTP API. Default `127.0.0.1:9464`.
    pub(crate) listen: SocketAddr,
    /// Largest accepted body of `POST /ingest/*`, in bytes; larger ones get 413. Default 16 MiB.
    pub(crate) max_body_bytes: usize,
    /// Largest accepted body of the query endpoints (form-encoded `query`, `query_range`,
    /// `series`, labels, `events/search`...), in bytes. Default 4 MiB.
    pub(crate) max_query_body_bytes: usize,
    /// Largest accepted body of every other endpoint (reload, admin), in bytes. Default 64 KiB.
    pub(crate) max_other_body_bytes: usize,
    /// Time a client has to send a request's headers, from connecting (or from the first byte
    /// of a later request on the same connection); then the connection closes. Default `30s`.
    #[serde(deserialize_with = "duration")]
    pub(crate) read_header_timeout: i64,
    /// Time a client has to send a request's body; then the request fails. Default `2m`.
    #[serde(deserialize_with = "duration")]
    pub(crate) read_body_timeout: i64,
    /// A keep-alive connection with no request for this long is closed. Default `5m`.
    #[serde(deserialize_with = "duration")]
    pub(crate) idle_timeout: i64,
    /// Most connections open at once; further ones wait to be accepted (Prometheus's
    /// `--web.max-connections`). Default 512.
    pub(crate) max_connections: usize,
    /// Most queries (query, range query, series, labels, event search) evaluated at once
    /// (Prometheus's `--query.max-concurrency`). Default 20.
    pub(crate) max_concurrent_queries: usize,
    /// Queries beyond the concurrent ones wait, at most this many and each for at most
    /// `query.timeout`; past either they get 503. Default 100.
    pub(crate) max_queued_queries: usize,
    /// How often the server's own metrics are written to the store. Default `10s`.
    #[serde(deserialize_with = "duration")]
    pub(crate) self_metrics_interval: i64,
    /// Serve `/api/v1/admin/tsdb/delete_series`. Default false, as Prometheus's
    /// `--web.enable-admin-api`.
    pub(crate) enable_admin_api: bool,
    /// Prometheus's web configuration file (TLS and basic-auth users), relative to this
    /// file's directory. Default: none (plain HTTP, no users).
    pub(crate) web_config_file: Option<String>,
    /// Bearer tokens for machines, each with its scopes (`ingest`, `read`, `admin`).
    pub(crate) tokens: Vec<TokenConfig>,
}

/// `server.tokens[]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenConfig {
    /// Who uses it (in logs and refusals; never the token).
    pub(crate) name: String,
    /// The token: written here, or `{file: PATH}`, or `{env: NAME}`.
    pub(crate) token: Secret,
    /// What it may do.
    pub(crate) scopes: Vec<crate::server::Scope>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            max_body_bytes: 16 << 20,
            max_query_body_bytes: 4 << 20,
            max_other_body_bytes: 64 << 10,
            read_header_timeout: 30_000,
            read_body_timeout: 120_000,
            idle_timeout: 300_000,
            max_connections: 512,
            max_concurrent_queries: 20,
            max_queued_queries: 100,
            self_metrics_interval: 10_000,
            enable_admin_api: false,
            web_config_file: None,
            tokens: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// The connection limits.
    pub(crate) fn conn_limits(&self) -> crate::server::ConnLimits {
        crate::server::ConnLimits {
            read_header_timeout: vigil_tsdb::time::ms_to_duration(self.read_header_timeout),
            idle_timeout: vigil_tsdb::time::ms_to_duration(self.idle_timeout),
            max_connections: self.max_connections,
        }
    }
}

/// `collector:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct CollectorConfig {
    /// Aggregation window. Default `10s`.
    #[serde(deserialize_with = "duration")]
    pub(crate) window: i64,
    /// How far the watermark trails the newest event (the disorder expected between Kong nodes
    /// and batches); a window is written once the watermark passes its end. Default `5s`.
    #[serde(deserialize_with = "duration")]
    pub(crate) watermark_delay: i64,
    /// How far behind the written windows an event may arrive and still count (in the next
    /// window); later ones are rejected as `late`. Default `30s`.
    #[serde(deserialize_with = "duration")]
    pub(crate) allowed_lateness: i64,
    /// After this long without a request a series ends with a staleness marker. Default `15m`.
    #[serde(deserialize_with = "duration")]
    pub(crate) idle_timeout: i64,
    /// Distinct path templates per route before the rest are counted as `{other}`. Default 200.
    pub(crate) max_paths_per_route: usize,
    /// Distinct (service, route) pairs before the rest are counted as service and route
    /// `{other}`. Default 10000.
    pub(crate) max_routes: usize,
    /// Events starting further than this in the future are rejected as `future` (a Kong node
    /// with a wrong clock must not close every window). Default `5m`.
    #[serde(deserialize_with = "duration")]
    pub(crate) max_clock_skew: i64,
    /// Latency histogram buckets in seconds. Default Prometheus's (5 ms to 10 s).
    pub(crate) buckets: Vec<f64>,
    /// Keep `vigil_http_upstream_duration_seconds` (from `latencies.proxy`). Default true.
    pub(crate) upstream_histogram: bool,
    /// Keep `vigil_http_kong_duration_seconds` (from `latencies.kong`). Default true.
    pub(crate) kong_histogram: bool,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        let d = AggregatorConfig::default();
        CollectorConfig {
            window: d.window_ms,
            watermark_delay: d.watermark_delay_ms,
            allowed_lateness: d.allowed_lateness_ms,
            idle_timeout: d.idle_timeout_ms,
            max_paths_per_route: d.max_paths_per_route,
            max_routes: d.max_routes,
            max_clock_skew: d.max_clock_skew_ms,
            buckets: d.buckets,
            upstream_histogram: d.upstream_histogram,
            kong_histogram: d.kong_histogram,
        }
    }
}

impl CollectorConfig {
    /// The aggregator settings.
    pub(crate) fn aggregator(&self) -> AggregatorConfig {
        AggregatorConfig {
            window_ms: self.window,
            watermark_delay_ms: self.watermark_delay,
            allowed_lateness_ms: self.allowed_lateness,
            idle_timeout_ms: self.idle_timeout,
            max_paths_per_route: self.max_paths_per_route,
            max_routes: self.max_routes,
            max_clock_skew_ms: self.max_clock_skew,
            buckets: self.buckets.clone(),
            upstream_histogram: self.upstream_histogram,
            kong_histogram: self.kong_histogram,
        }
    }
}

/// `query:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct QueryConfig {
    /// How far back an instant selector looks. Default `5m`.
    #[serde(deserialize_with = "duration")]
    pub(crate) lookback_delta: i64,
    /// Longest a query may run. Default `2m`.
    #[serde(deserialize_with = "duration")]
    pub(crate) timeout: i64,
    /// Most samples a query may hold. Default 50,000,000.
    pub(crate) max_samples: usize,
    /// Most series one selector of a query may select. Default 1,000,000.
    pub(crate) max_series: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        let d = EngineOptions::default();
        QueryConfig {
            lookback_delta: d.lookback_delta_ms,
            timeout: d.timeout.as_millis() as i64,
            max_samples: d.max_samples,
            max_series: d.max_series,
        }
    }
}

impl QueryConfig {
    /// The engine settings.
    pub(crate) fn engine(&self) -> EngineOptions {
        EngineOptions {
            lookback_delta_ms: self.lookback_delta,
            max_samples: self.max_samples,
            max_series: self.max_series,
            timeout: vigil_tsdb::time::ms_to_duration(self.timeout),
            ..EngineOptions::default()
        }
    }
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    duration(d).map(Some)
}

/// A size in bytes: a number, or a number with `KB`, `MB`, `GB` (powers of 1000) or `KiB`,
/// `MiB`, `GiB` (powers of 1024).
fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(n) => Ok(n),
        Size::Text(s) => parse_byte_size(&s).map_err(serde::de::Error::custom),
    }
}

pub(crate) fn parse_byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("size {s:?}: not a number"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        u => {
            return Err(format!(
                "size {s:?}: unknown unit {u:?} (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ));
        }
    };
    Ok((n * mult as f64) as u64)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let s = String::deserialize(d)?;
    let ms = parse_duration_ms(&s).map_err(serde::de::Error::custom)?;
    if ms <= 0 {
        return Err(serde::de::Error::custom(format!("duration {s:?} must be positive")));
    }
    Ok(ms)
}

impl Config {
    /// Reads and validates a configuration file; errors name the file, line and column.
    pub(crate) fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut cfg = Config::parse(&text).with_context(|| format!("in {}", path.display()))?;
        // Rule files, the web configuration file and the alertmanager.yml are relative to the
        // configuration file, as in Prometheus.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            for f in cfg.rule_files.iter_mut().chain(cfg.server.web_config_file.as_mut()) {
                if Path::new(f).is_relative() {
                    *f = dir.join(&*f).display().to_string();
                }
            }
            if let Some(f) = cfg.alerting.alertmanager_config.as_mut()
                && f.is_relative()
            {
                *f = dir.join(&*f);
            }
        }
        if cfg.alerting.alertmanager_config.is_some() {
            // The alertmanager.yml is read (and checked) only now that its path is resolved.
            cfg.alerting
                .compile()
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("in {}", path.display()))?;
        }
        Ok(cfg)
    }

    /// Rule evaluation settings.
    pub(crate) fn eval_settings(&self) -> EvalSettings {
        EvalSettings {
            default_interval_ms: self.global.evaluation_interval,
            default_query_offset_ms: self
                .global
                .rule_query_offset
                .unwrap_or(self.collector.window + self.collector.watermark_delay),
            external_labels: self.global.external_labels.clone(),
            external_url: self.external_url(),
        }
    }

    /// The URL pages link to.
    pub(crate) fn external_url(&self) -> String {
        self.global
            .external_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.server.listen))
    }

    /// Parses and validates configuration text.
    pub(crate) fn parse(text: &str) -> Result<Config> {
        let cfg: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml_ng::from_str(text)?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let c = &self.collector;
        anyhow::ensure!(
            c.max_paths_per_route > 0,
            "collector.max_paths_per_route must be at least 1"
        );
        anyhow::ensure!(
            c.buckets.windows(2).all(|w| w[0] < w[1]) && c.buckets.iter().all(|b| b.is_finite()),
            "collector.buckets must be finite and strictly increasing"
        );
        let sv = &self.server;
        for (name, v) in [
            ("max_body_bytes", sv.max_body_bytes),
            ("max_query_body_bytes", sv.max_query_body_bytes),
            ("max_other_body_bytes", sv.max_other_body_bytes),
            ("max_connections", sv.max_connections),
            ("max_concurrent_queries", sv.max_concurrent_queries),
        ] {
            anyhow::ensure!(v > 0, "server.{name} must be positive");
        }
        for (name, v) in [
            ("read_header_timeout", sv.read_header_timeout),
            ("read_body_timeout", sv.read_body_timeout),
            ("idle_timeout", sv.idle_timeout),
        ] {
            anyhow::ensure!(v > 0, "server.{name} must be positive");
        }
        for (i, t) in sv.tokens.iter().enumerate() {
            anyhow::ensure!(!t.scopes.is_empty(), "server.tokens: {:?} has no scopes", t.name);
            for earlier in &sv.tokens[..i] {
                anyhow::ensure!(
                    earlier.name != t.name,
                    "server.tokens: the name {:?} is used twice",
                    t.name
                );
                anyhow::ensure!(
                    earlier.token != t.token,
                    "server.tokens: {:?} and {:?} have the same token",
                    earlier.name,
                    t.name
                );
            }
        }
        anyhow::ensure!(self.query.max_samples > 0, "query.max_samples must be positive");
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.events.sample_rate),
            "events.sample_rate must be between 0 and 1"
        );
        self.alerting.validate().map_err(anyhow::Error::msg)?;
        if let Some(k) = &self.sources.kafka {
            k.validate().map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_source_in_the_documented_shape() {
        let c = Config::parse(
            "sources:\n  kafka:\n    brokers: \"127.0.0.1:9092\"\n    group: vigil\n    topics: [kong-logs]\n    \
             properties: {\"security.protocol\": \"plaintext\"}\nstorage:\n  data_dir: ./vigil-data\n\
             server:\n  listen: 127.0.0.1:9464\n",
        )
        .expect("valid");
        let k = c.sources.kafka.expect("kafka");
        assert_eq!((k.brokers.as_str(), k.group.as_str()), ("127.0.0.1:9092", "vigil"));
        assert_eq!(k.topics, ["kong-logs"]);
        assert_eq!(k.properties["security.protocol"], "plaintext");
        let err =
            Config::parse("sources:\n  kafka:\n    brokers: b\n    group: g\n    topics: []\n").expect_err("no topics");
        assert!(format!("{err:#}").contains("at least one topic"), "{err:#}");
    }

    #[test]
    fn event_store_settings() {
        let c = Config::parse("events:\n  sample_rate: 0.01\n  retention: 2d\n  max_size: 500MiB\n").expect("valid");
        assert_eq!(
            (c.events.sample_rate, c.events.retention, c.events.max_size),
            (0.01, 2 * 86_400_000, 500 << 20)
        );
        assert_eq!(
            Config::parse("events:\n  max_size: 1000\n")
                .expect("valid")
                .events
                .max_size,
            1000
        );
        let err = Config::parse("events:\n  max_size: 5 parsecs\n").expect_err("bad unit");
        assert!(format!("{err:#}").contains("unknown unit"), "{err:#}");
        let err = Config::parse("events:\n  sample_rate: 2\n").expect_err("bad rate");
        assert!(format!("{err:#}").contains("between 0 and 1"), "{err:#}");
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = Config::parse("").expect("valid");
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:9464");
        assert_eq!(c.storage.data_dir, PathBuf::from("./vigil-data"));
        assert_eq!(c.collector.window, 10_000);
    }

    #[test]
    fn reads_durations_and_paths() {
        let c = Config::parse("storage:\n  data_dir: /tmp/x\ncollector:\n  window: 1s\n  idle_timeout: 1h\n")
            .expect("valid");
        assert_eq!(c.storage.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!((c.collector.window, c.collector.idle_timeout), (1_000, 3_600_000));
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let err = Config::parse("server:\n  listen: 127.0.0.1:9464\n  lisen: x\n").expect_err("typo");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("unknown field `lisen`") && msg.contains("line 3 column 3"),
            "{msg}"
        );
        let err = Config::parse("collector:\n  window: ten\n").expect_err("bad duration");
        assert!(format!("{err:#}").contains("invalid duration"), "{err:#}");
    }

    #[test]
    fn tokens_with_secrets_from_anywhere_shown_as_secret_and_never_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("kong.token");
        std::fs::write(&file, "from-a-file\n").expect("write");
        let c = Config::parse(&format!(
            "server:\n  tokens:\n    - {{ name: kong, token: {{ file: {} }}, scopes: [ingest] }}\n    - {{ name: grafana, token: inline-token, scopes: [read] }}\n",
            file.display()
        ))
        .expect("valid");
        assert_eq!(c.server.tokens[0].token.expose(), "from-a-file");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("from-a-file") && !shown.contains("inline-token"),
            "{shown}"
        );
        let twice = "server:\n  tokens:\n    - { name: a, token: same, scopes: [read] }\n    - { name: b, token: same, scopes: [ingest] }\n";
        assert!(format!("{:#}", Config::parse(twice).expect_err("twice")).contains("same token"));
        let none = "server:\n  tokens:\n    - { name: a, token: t, scopes: [] }\n";
        assert!(format!("{:#}", Config::parse(none).expect_err("no scopes")).contains("no scopes"));
    }
}
