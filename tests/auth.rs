//! A vigil behind Prometheus's web configuration file (TLS, a basic-auth user with a bcrypt
//! hash) and bearer tokens with scopes: no credentials and wrong ones get 401, the right ones
//! 200 over TLS (from reqwest, curl and `vigil query`), an ingest token cannot reload rules or
//! delete series, a read token cannot ingest, and the health endpoints stay open. The same file
//! passes `promtool check web-config`. Without promtool or curl those checks say so and are
//! skipped, unless `VIGIL_REQUIRE_EXTERNAL=1` (set by `.ci/run`) makes that a failure.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Server, kong_event, vigil, wait_until};

struct Tls {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

/// A CA and a certificate for 127.0.0.1 and localhost signed by it.
fn certificates() -> Tls {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "vigil test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("params");
    let cert = params.signed_by(&key, &issuer).expect("cert");
    Tls {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn client(ca: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA"))
        .build()
        .expect("client")
}

/// Status of one request with optional basic auth or bearer token.
fn status(c: &reqwest::Client, method: &str, url: &str, auth: Auth<'_>, body: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut req = match method {
            "POST" => c.post(url).body(body.to_owned()),
            _ => c.get(url),
        };
        req = match auth {
            Auth::None => req,
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            Auth::Bearer(t) => req.bearer_auth(t),
        };
        if method == "POST" && url.contains("/api/v1/") {
            req = req.header("Content-Type", "application/x-www-form-urlencoded");
        }
        req.send().await.map_or(0, |r| r.status().as_u16())
    })
}

/// Whether `tool` can be run; where it cannot, says so, and fails under
/// `VIGIL_REQUIRE_EXTERNAL`.
fn have(tool: &str, package: &str) -> bool {
    if Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
    {
        return true;
    }
    assert!(
        std::env::var_os("VIGIL_REQUIRE_EXTERNAL").is_none(),
        "{tool} is required (VIGIL_REQUIRE_EXTERNAL is set): install Debian's {package} package"
    );
    eprintln!("{tool} is not installed: skipping its part of this test");
    false
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Basic(&'a str, &'a str),
    Bearer(&'a str),
}

#[test]
fn a_locked_vigil_lets_in_only_who_may() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = certificates();
    let root = dir.path();
    std::fs::write(root.join("ca.pem"), &tls.ca_pem).expect("write");
    std::fs::write(root.join("vigil.crt"), &tls.cert_pem).expect("write");
    std::fs::write(root.join("vigil.key"), &tls.key_pem).expect("write");
    std::fs::write(root.join("kong.token"), "kong-ingest-token\n").expect("write");
    let hash = bcrypt::hash("right horse battery", 6).expect("hash");
    std::fs::write(
        root.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: vigil.crt\n  key_file: vigil.key\n  min_version: TLS12\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  oncall: {hash}\n"
        ),
    )
    .expect("write");
    if have("promtool", "prometheus") {
        let out = Command::new("promtool")
            .args(["check", "web-config"])
            .arg(root.join("web.yml"))
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "promtool refuses the file: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let config = format!(
        "collector:\n  window: 1s\nserver:\n  web_config_file: {}\n  enable_admin_api: true\n  tokens:\n    - name: kong\n      token: {{ file: {} }}\n      scopes: [ingest]\n    - name: dashboards\n      token: read-token\n      scopes: [read]\n",
        root.join("web.yml").display(),
        root.join("kong.token").display()
    );
    let server = Server::spawn(&root.join("data"), &config);
    let base = format!("https://localhost:{}", server.addr.port());
    let c = client(&tls.ca_pem);
    wait_until(Duration::from_secs(60), || {
        status(&c, "GET", &format!("{base}/-/ready"), Auth::None, "") == 200
    });

    let query = format!("{base}/api/v1/query?query=1");
    let user = Auth::Basic("oncall", "right horse battery");
    assert_eq!(status(&c, "GET", &query, Auth::None, ""), 401, "no credentials");
    assert_eq!(
        status(&c, "GET", &query, Auth::Basic("oncall", "wrong"), ""),
        401,
        "wrong password"
    );
    assert_eq!(
        status(&c, "GET", &query, Auth::Basic("nobody", "right horse battery"), ""),
        401,
        "unknown user"
    );
    assert_eq!(status(&c, "GET", &query, user, ""), 200, "right password");
    assert_eq!(status(&c, "GET", &query, user, ""), 200, "right password, remembered");
    assert_eq!(status(&c, "GET", &format!("{base}/-/healthy"), Auth::None, ""), 200);

    let ingest = format!("{base}/ingest/kong");
    let event = kong_event(1_795_255_200_000, "GET", "/v1/orders/1", 200, 10);
    let kong = Auth::Bearer("kong-ingest-token");
    let read = Auth::Bearer("read-token");
    assert_eq!(
        status(&c, "POST", &ingest, kong, &event),
        200,
        "the ingest token ingests"
    );
    assert_eq!(
        status(&c, "POST", &format!("{base}/-/reload"), kong, ""),
        403,
        "but cannot reload"
    );
    let delete = format!("{base}/api/v1/admin/tsdb/delete_series?match[]=up");
    assert_eq!(status(&c, "POST", &delete, kong, ""), 403, "nor delete series");
    assert_eq!(status(&c, "GET", &query, kong, ""), 403, "nor query");
    assert_eq!(
        status(&c, "POST", &ingest, read, &event),
        403,
        "the read token cannot ingest"
    );
    assert_eq!(status(&c, "GET", &query, read, ""), 200, "but queries");
    assert_eq!(status(&c, "POST", &ingest, Auth::Bearer("guess"), &event), 401);
    assert_eq!(
        status(&c, "POST", &format!("{base}/-/reload"), user, ""),
        200,
        "users may do everything"
    );

    // Plain HTTP to the TLS port gets nowhere.
    assert_eq!(common::get(server.addr, "/api/v1/query?query=1").0, 0);

    // curl, as an operator would.
    if have("curl", "curl") {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(root.join("ca.pem"))
            .args(["-u", "oncall:right horse battery", &query])
            .output()
            .expect("curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    }

    // vigil's own client, with the user from the environment.
    let out = vigil()
        .args(["query", "vector(42)", "--url", &base, "--ca-file"])
        .arg(root.join("ca.pem"))
        .env("VIGIL_USER", "oncall")
        .env("VIGIL_PASSWORD", "right horse battery")
        .output()
        .expect("vigil query");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("42"));
    let out = vigil()
        .args(["query", "vector(42)", "--url", &base, "--ca-file"])
        .arg(root.join("ca.pem"))
        .output()
        .expect("vigil query");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Failures are counted by reason, and no secret reaches the log.
    let metrics = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            c.get(format!("{base}/metrics"))
                .basic_auth("oncall", Some("right horse battery"))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text")
        })
    };
    assert!(
        metrics.contains("vigil_http_auth_failures_total{reason=\"bad_password\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vigil_http_auth_failures_total{reason=\"scope\"} 4"),
        "{metrics}"
    );
    assert_eq!(
        server.logged("right horse battery") + server.logged("kong-ingest-token") + server.logged("read-token"),
        0
    );
    assert!(server.logged("authentication failed") >= 3);

    // A reload re-reads the web configuration file and the tokens: another user, another
    // token, another certificate (from another CA) for the connections that follow.
    let rotated = certificates();
    std::fs::write(root.join("vigil.crt"), &rotated.cert_pem).expect("write");
    std::fs::write(root.join("vigil.key"), &rotated.key_pem).expect("write");
    let second = bcrypt::hash("second horse", 6).expect("hash");
    std::fs::write(
        root.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: vigil.crt\n  key_file: vigil.key\nbasic_auth_users:\n  second: {second}\n"
        ),
    )
    .expect("write");
    std::fs::write(
        root.join("data.yaml"),
        config.replace("token: read-token", "token: new-read-token"),
    )
    .expect("write");
    assert_eq!(
        status(&c, "POST", &format!("{base}/-/reload"), user, ""),
        200,
        "reloaded"
    );
    let fresh = client(&rotated.ca_pem);
    let stale = client(&tls.ca_pem);
    assert_eq!(
        status(&stale, "GET", &query, user, ""),
        0,
        "the old CA no longer verifies new connections"
    );
    assert_eq!(status(&fresh, "GET", &query, user, ""), 401, "the removed user");
    assert_eq!(
        status(&fresh, "GET", &query, Auth::Basic("second", "second horse"), ""),
        200,
        "the new user"
    );
    assert_eq!(
        status(&fresh, "GET", &query, Auth::Bearer("new-read-token"), ""),
        200,
        "the new token"
    );
    assert_eq!(
        status(&fresh, "GET", &query, Auth::Bearer("read-token"), ""),
        401,
        "the old token"
    );
    // A broken file keeps what is in place.
    std::fs::write(root.join("web.yml"), "basic_auth_users:\n  second: not-a-hash\n").expect("write");
    let admin = Auth::Basic("second", "second horse");
    assert_eq!(
        status(&fresh, "POST", &format!("{base}/-/reload"), admin, ""),
        500,
        "refused"
    );
    assert_eq!(
        status(&fresh, "GET", &query, admin, ""),
        200,
        "the settings in place stay"
    );
}
