//! Helpers for end-to-end tests: start the real `vigil` binary on a loopback port of its own
//! choosing with its own data directory, talk HTTP to it, and build Kong events with known
//! content.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;

/// The binary under test.
pub fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

/// Runs `vigil ARGS` to completion.
pub fn run(args: &[&str]) -> Output {
    vigil()
        .args(args)
        .env("VIGIL_LOG", "warn")
        .output()
        .expect("vigil runs")
}

/// A free loopback port (bound and released), for a program that must be told its port. A
/// test running alongside may bind the same port in between: for `vigil` prefer port 0 and
/// [`serving_addr`].
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// Passes the child's stderr through to the test's and returns the address in its first line
/// that contains `marker` (written `http://ADDR` or `listen=ADDR`): where a `vigil` told to
/// listen on port 0 is serving. Panics if the child ends or a minute passes first.
pub fn serving_addr(child: &mut Child, marker: &'static str) -> SocketAddr {
    serving_addr_logged(child, marker, Log::default())
}

/// The lines a child wrote to stderr so far.
pub type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// [`serving_addr`], keeping every line in `log` too.
pub fn serving_addr_logged(child: &mut Child, marker: &'static str, log: Log) -> SocketAddr {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            if let Ok(mut l) = log.lock() {
                l.push(line.clone());
            }
            if line.contains(marker)
                && let Some(addr) = ["http://", "listen="].iter().find_map(|p| {
                    let rest = &line[line.find(p)? + p.len()..];
                    rest.split(|c: char| c.is_whitespace() || c == '/').next()?.parse().ok()
                })
            {
                let _ = tx.send(addr);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("vigil did not say where it serves ({marker:?}) within a minute"))
}

/// A running `vigil serve`.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// What it logged so far.
    pub log: Log,
}

impl Server {
    /// Starts `vigil serve` on `dir` with `config` (YAML) and waits until it answers.
    pub fn start(dir: &Path, config: &str) -> Server {
        let server = Server::spawn(dir, config);
        wait_until(Duration::from_secs(60), || get(server.addr, "/-/ready").0 == 200);
        server
    }

    /// Starts `vigil serve` on `dir` with `config` (YAML) and returns once it listens, ready or
    /// not.
    pub fn spawn(dir: &Path, config: &str) -> Server {
        let cfg_path = dir.with_extension("yaml");
        std::fs::write(&cfg_path, config).expect("write config");
        let mut child = vigil()
            .args(["serve", "--config"])
            .arg(&cfg_path)
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("VIGIL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vigil serve");
        let log = Log::default();
        let addr = serving_addr_logged(&mut child, "vigil is serving", log.clone());
        Server { child, addr, log }
    }

    /// How many lines it logged so far contain `text`.
    pub fn logged(&self, text: &str) -> usize {
        self.log
            .lock()
            .map_or(0, |l| l.iter().filter(|x| x.contains(text)).count())
    }

    /// Stops the server with SIGTERM (a graceful shutdown) and waits for it.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "vigil serve exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("vigil serve did not stop within 60 s of SIGTERM");
    }
}

impl Server {
    /// Kills the server with SIGKILL: no shutdown, no flush, whatever it was doing.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it holds; panics after `limit` (a generous bound, not a performance claim).
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("condition not met within {limit:?}");
}

/// One HTTP/1.1 request over a fresh connection; returns the status and body.
pub fn request(addr: SocketAddr, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes()).and_then(|()| s.write_all(body)).is_err() {
        return (0, String::new());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if headers.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, "GET", path, "text/plain", b"")
}

pub fn post(addr: SocketAddr, path: &str, body: &[u8]) -> (u16, String) {
    request(addr, "POST", path, "application/json", body)
}

/// `POST /api/v1/query` with a form body (as promtool sends it); returns the parsed response.
pub fn query(addr: SocketAddr, expr: &str, time_ms: i64) -> Value {
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("query", expr)
        .append_pair("time", &format!("{}.{:03}", time_ms / 1000, time_ms % 1000))
        .finish();
    let (status, body) = request(
        addr,
        "POST",
        "/api/v1/query",
        "application/x-www-form-urlencoded",
        form.as_bytes(),
    );
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{status} {body:?}: {e}"));
    assert_eq!(v["status"], "success", "query {expr} failed: {body}");
    v
}

/// The value of a query that returns exactly one sample (vector or scalar), if any.
pub fn value(addr: SocketAddr, expr: &str, time_ms: i64) -> Option<f64> {
    let v = query(addr, expr, time_ms);
    let data = &v["data"];
    let point = match data["resultType"].as_str() {
        Some("vector") => {
            let r = data["result"].as_array().expect("result");
            assert!(r.len() <= 1, "{expr} returned {} series: {data}", r.len());
            r.first().map(|s| s["value"].clone())?
        }
        Some("scalar") => data["result"].clone(),
        other => panic!("{expr}: unexpected result type {other:?}"),
    };
    point[1].as_str().and_then(|s| s.parse().ok())
}

/// Series of an instant vector result as (labels as a sorted `k=v,...` string, value).
pub fn vector(addr: SocketAddr, expr: &str, time_ms: i64) -> Vec<(String, f64)> {
    let v = query(addr, expr, time_ms);
    let mut out: Vec<(String, f64)> = v["data"]["result"]
        .as_array()
        .expect("vector result")
        .iter()
        .map(|s| {
            let m = s["metric"].as_object().expect("metric");
            let mut labels: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            labels.sort();
            (
                labels.join(","),
                s["value"][1].as_str().and_then(|x| x.parse().ok()).unwrap_or(f64::NAN),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A compact but complete Kong log event.
pub fn kong_event(t_ms: i64, method: &str, uri: &str, status: u16, latency_ms: u32) -> String {
    format!(
        concat!(
            r#"{{"response":{{"size":512,"status":{status}}},"route":{{"name":"orders-route","paths":["/v1/orders"]}},"#,
            r#""request":{{"method":"{method}","uri":"{uri}","id":"r1"}},"started_at":{t},"source":"upstream","#,
            r#""latencies":{{"kong":1,"proxy":{proxy},"request":{latency}}},"service":{{"name":"orders"}},"#,
            r#""client_ip":"10.0.0.1","consumer":{{"username":"mobile-app"}}}}"#
        ),
        status = status,
        method = method,
        uri = uri,
        t = t_ms,
        proxy = latency_ms.saturating_sub(1),
        latency = latency_ms,
    )
}

/// A Kong fixture of the repository (`testdata/kong/`).
pub fn kong_fixture(name: &str) -> Vec<u8> {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/kong").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Bodies POSTed to the webhook receiver.
pub type Received = Arc<Mutex<Vec<Value>>>;

/// An Alertmanager-style webhook receiver on a free loopback port, on its own thread.
pub fn webhook_receiver() -> (SocketAddr, Received) {
    let received: Received = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let state = received.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let app = axum::Router::new()
                .route(
                    "/hook",
                    axum::routing::post(
                        |axum::extract::State(r): axum::extract::State<Received>,
                         headers: axum::http::HeaderMap,
                         body: String| async move {
                            let mut v: Value = serde_json::from_str(&body).expect("webhook body is JSON");
                            // The notification's id, to tell a redelivery from a new notification.
                            if let (Some(key), Some(obj)) = (headers.get("idempotency-key"), v.as_object_mut()) {
                                obj.insert("_idempotencyKey".into(), key.to_str().unwrap_or_default().into());
                            }
                            r.lock().push(v);
                            "ok"
                        },
                    ),
                )
                .with_state(state);
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    (addr, received)
}

/// Whether the external `binary` (from the Debian `package`) runs here. Without it a test says
/// so and skips, unless `VIGIL_REQUIRE_EXTERNAL` (set by `.ci/run`) makes that a failure.
pub fn external_tool(binary: &str, package: &str) -> bool {
    let found = Command::new(binary)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found || std::env::var_os("VIGIL_REQUIRE_EXTERNAL").is_none(),
        "{binary} is required (VIGIL_REQUIRE_EXTERNAL is set): install Debian's {package} package"
    );
    if !found {
        eprintln!("{binary} not found: skipping (install Debian's {package} package to run this test)");
    }
    found
}
