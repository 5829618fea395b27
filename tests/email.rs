//! Email against a real SMTP server in the test process: STARTTLS (required by default) with
//! AUTH PLAIN, implicit TLS, and a plain local relay. A page storm of forty routes of one service
//! is one mail; the test reads the delivered message and checks its headers and its plain-text
//! and HTML parts, then the resolved mail of the same thread. The same storm through `vigil
//! serve` and an `alertmanager.yml` is one webhook and one mail per group.
//!
//! The server speaks just enough SMTP for this (EHLO, STARTTLS, AUTH PLAIN and LOGIN, MAIL,
//! RCPT, DATA, RSET, NOOP, QUIT), over tokio-rustls with a certificate made by rcgen.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use mail_parser::MessageParser;
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use vigil_alerter::notify::config::AlertingConfig;
use vigil_alerter::notify::{Notifier, PipelineAlert};
use vigil_tsdb::Labels;

/// One delivered mail.
#[derive(Debug, Clone)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
    user: Option<String>,
    tls: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Plain, offering STARTTLS.
    Starttls,
    /// TLS from the first byte.
    Implicit,
    /// Plain, no TLS offered.
    Plain,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Certs {
    ca_pem: String,
    acceptor: tokio_rustls::TlsAcceptor,
}

fn certs() -> Certs {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "vigil test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    let cert = params.signed_by(&key, &issuer).expect("cert");
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key der"),
        )
        .expect("server config");
    Certs {
        ca_pem: ca_cert.pem(),
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    }
}

type Inbox = Arc<Mutex<Vec<Mail>>>;

/// Starts an SMTP server on a free loopback port.
async fn smtp_server(mode: Mode, acceptor: tokio_rustls::TlsAcceptor) -> (SocketAddr, Inbox) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let inbox: Inbox = Arc::default();
    let mails = inbox.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, mails) = (acceptor.clone(), mails.clone());
            tokio::spawn(async move {
                let (io, tls): (Box<dyn Io>, bool) = if mode == Mode::Implicit {
                    match acceptor.accept(tcp).await {
                        Ok(s) => (Box::new(s), true),
                        Err(_) => return,
                    }
                } else {
                    (Box::new(tcp), false)
                };
                let _ = session(io, tls, mode, acceptor, mails).await;
            });
        }
    });
    (addr, inbox)
}

async fn session(
    io: Box<dyn Io>,
    mut tls: bool,
    mode: Mode,
    acceptor: tokio_rustls::TlsAcceptor,
    inbox: Inbox,
) -> std::io::Result<()> {
    let mut io = BufReader::new(io);
    io.write_all(b"220 localhost ESMTP test\r\n").await?;
    let (mut from, mut to, mut user) = (String::new(), Vec::new(), None);
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_owned();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            let mut reply = String::from("250-localhost\r\n");
            if mode == Mode::Starttls && !tls {
                reply.push_str("250-STARTTLS\r\n");
            }
            reply.push_str("250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n");
            io.write_all(reply.as_bytes()).await?;
        } else if upper == "STARTTLS" {
            io.write_all(b"220 ready\r\n").await?;
            let plain = io.into_inner();
            let secured = acceptor.accept(plain).await?;
            io = BufReader::new(Box::new(secured));
            tls = true;
        } else if let Some(rest) = upper.strip_prefix("AUTH PLAIN") {
            let b64 = if rest.trim().is_empty() {
                io.write_all(b"334 \r\n").await?;
                let mut l = String::new();
                io.read_line(&mut l).await?;
                l.trim().to_owned()
            } else {
                cmd[10..].trim().to_owned()
            };
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default();
            let parts: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
            let ok = parts.len() == 3 && parts[1] == b"vigil" && parts[2] == b"s3cret";
            user = ok.then(|| "vigil".to_owned());
            io.write_all(if ok { b"235 ok\r\n" } else { b"535 bad credentials\r\n" })
                .await?;
        } else if upper.starts_with("MAIL FROM:") {
            from = cmd[10..].trim().trim_matches(['<', '>']).to_owned();
            io.write_all(b"250 ok\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            to.push(cmd[8..].trim().trim_matches(['<', '>']).to_owned());
            io.write_all(b"250 ok\r\n").await?;
        } else if upper == "DATA" {
            io.write_all(b"354 go on\r\n").await?;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if io.read_until(b'\n', &mut l).await? == 0 {
                    return Ok(());
                }
                if l == b".\r\n" {
                    break;
                }
                let l = if l.starts_with(b"..") { &l[1..] } else { &l[..] };
                data.extend_from_slice(l);
            }
            inbox.lock().push(Mail {
                from: std::mem::take(&mut from),
                to: std::mem::take(&mut to),
                data,
                user: user.clone(),
                tls,
            });
            io.write_all(b"250 queued\r\n").await?;
        } else if upper == "QUIT" {
            io.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            io.write_all(b"250 ok\r\n").await?;
        } else {
            io.write_all(b"502 not implemented\r\n").await?;
        }
    }
}

fn alert(route: &str, resolved: bool) -> PipelineAlert {
    PipelineAlert {
        labels: Labels::from_pairs([
            ("alertname", "RouteErrors"),
            ("service", "payments"),
            ("route", route),
            ("severity", "page"),
        ]),
        annotations: vec![
            ("summary".into(), "payments answers 5xx".into()),
            ("runbook_url".into(), "https://runbooks.example.com/payments".into()),
        ],
        starts_at: 1_796_601_600_000,
        fired_at: 1_796_601_660_000,
        ends_at: resolved.then_some(1_796_602_200_000),
        value: 0.25,
        d1: Some(0.002),
        d7: Some(0.001),
        rule_group: "api".into(),
        expr: "route:errors:ratio5m > 0.05".into(),
        ack: None,
    }
}

async fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..600 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 30 s");
}

fn config(addr: SocketAddr, email: &str) -> AlertingConfig {
    let yaml = format!(
        "receivers:\n  - name: oncall\n    email: {{ to: [oncall@example.com, lead@example.com], from: vigil@example.com, smarthost: 'localhost:{}', hello: vigil.test, {email} }}\n    retry: {{ initial_backoff: 50ms, max_backoff: 200ms }}\nroute: {{ receiver: oncall, group_by: [alertname, service], group_wait: 0s, group_interval: 1s }}\n",
        addr.port()
    );
    serde_yaml_ng::from_str(&yaml).expect("valid configuration")
}

fn console() -> vigil_alerter::notify::ConsoleOut {
    Arc::new(Mutex::new(Box::new(std::io::sink())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_storm_is_one_mail_over_starttls_and_its_resolution_follows_in_the_thread() {
    let certs = certs();
    let (addr, inbox) = smtp_server(Mode::Starttls, certs.acceptor.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &certs.ca_pem).expect("write CA");
    // The server's certificate is verified against the test's CA.
    let cfg = config(
        addr,
        &format!(
            "auth_username: vigil, auth_password: s3cret, ca_file: '{}'",
            ca.display()
        ),
    );
    let n = Notifier::start(&cfg, None, "http://vigil.example.com".into(), &console()).expect("start");
    let routes: Vec<String> = (0..40).map(|i| format!("route-{i:02}")).collect();
    let now = vigil_tsdb::time::now_ms();
    n.sync(routes.iter().map(|r| alert(r, false)).collect(), now);
    wait_for(|| inbox.lock().len() == 1).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        inbox.lock().len(),
        1,
        "forty failing routes of one service are one mail"
    );

    let mail = inbox.lock()[0].clone();
    assert!(mail.tls, "STARTTLS was used");
    assert_eq!(mail.user.as_deref(), Some("vigil"), "AUTH PLAIN");
    assert_eq!(mail.from, "vigil@example.com");
    assert_eq!(mail.to, ["oncall@example.com", "lead@example.com"]);
    let msg = MessageParser::default().parse(&mail.data).expect("a MIME message");
    let subject = msg.subject().expect("subject");
    assert!(subject.starts_with("[FIRING:40] RouteErrors payments"), "{subject}");
    assert!(subject.ends_with("(page)"), "{subject}");
    let thread = msg.in_reply_to().as_text().expect("In-Reply-To").to_owned();
    assert!(msg.message_id().is_some());
    assert_eq!(msg.text_body_count(), 1);
    assert_eq!(msg.html_body_count(), 1);
    let text = msg.body_text(0).expect("text part");
    let html = msg.body_html(0).expect("html part");
    for part in [&text, &html] {
        for want in [
            "route-00",
            "route-39",
            "payments answers 5xx",
            "runbooks.example.com/payments",
            "yesterday 2m",
        ] {
            assert!(part.contains(want), "{want} not in\n{part}");
        }
    }
    assert!(html.contains("<table"), "{html}");
    assert!(text.contains("Since: 2026-12-07T00:01:00.000Z"), "{text}");

    // Resolved: a second mail in the same thread.
    n.sync(routes.iter().map(|r| alert(r, true)).collect(), now + 1);
    wait_for(|| inbox.lock().len() == 2).await;
    let resolved = inbox.lock()[1].clone();
    let msg = MessageParser::default().parse(&resolved.data).expect("a MIME message");
    assert!(
        msg.subject()
            .is_some_and(|s| s.starts_with("[RESOLVED] RouteErrors payments")),
        "{:?}",
        msg.subject()
    );
    assert_eq!(msg.in_reply_to().as_text(), Some(thread.as_str()));
    assert!(
        msg.body_text(0)
            .is_some_and(|t| t.contains("Resolved: 2026-12-07T00:10:00.000Z"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_and_a_plain_relay() {
    let certs = certs();
    let (tls_addr, tls_inbox) = smtp_server(Mode::Implicit, certs.acceptor.clone()).await;
    let (plain_addr, plain_inbox) = smtp_server(Mode::Plain, certs.acceptor.clone()).await;
    let now = vigil_tsdb::time::now_ms();
    let implicit = Notifier::start(
        &config(tls_addr, "tls: implicit, insecure_skip_verify: true"),
        None,
        "http://vigil".into(),
        &console(),
    )
    .expect("start");
    implicit.sync(vec![alert("r1", false)], now);
    let relay = Notifier::start(
        &config(plain_addr, "tls: none"),
        None,
        "http://vigil".into(),
        &console(),
    )
    .expect("start");
    relay.sync(vec![alert("r1", false)], now);
    wait_for(|| tls_inbox.lock().len() == 1 && plain_inbox.lock().len() == 1).await;
    assert!(tls_inbox.lock()[0].tls);
    assert!(!plain_inbox.lock()[0].tls);
    assert_eq!(plain_inbox.lock()[0].user, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_required_by_default() {
    let certs = certs();
    let (addr, inbox) = smtp_server(Mode::Plain, certs.acceptor.clone()).await;
    let n = Notifier::start(
        &config(addr, "insecure_skip_verify: true"),
        None,
        "http://vigil".into(),
        &console(),
    )
    .expect("start");
    n.sync(vec![alert("r1", false)], vigil_tsdb::time::now_ms());
    let failed = || {
        n.telemetry()
            .iter()
            .filter(|(l, _)| l.get("__name__") == Some("vigil_notify_retries_total"))
            .map(|(_, v)| *v)
            .sum::<f64>()
    };
    wait_for(|| failed() >= 1.0).await;
    assert!(inbox.lock().is_empty(), "nothing is sent without TLS");
}

/// Forty failing routes of one service and one of another, through `vigil serve` and an
/// `alertmanager.yml` whose receiver has a webhook and an email: one webhook and one mail per
/// group, and nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_storm_through_vigil_serve_is_one_webhook_and_one_mail_per_group() {
    let certs = certs();
    let (smtp, inbox) = smtp_server(Mode::Plain, certs.acceptor.clone()).await;
    let (hook, pages) = common::webhook_receiver();
    let dir = tempfile::tempdir().expect("tempdir");
    let am = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am,
        format!(
            "global:\n  smtp_smarthost: 'localhost:{}'\n  smtp_from: vigil@example.com\n  smtp_require_tls: false\nroute:\n  receiver: oncall\n  group_by: [alertname, service]\n  group_wait: 2s\n  group_interval: 1h\nreceivers:\n  - name: oncall\n    webhook_configs:\n      - url: 'http://{hook}/hook'\n    email_configs:\n      - to: oncall@example.com\n",
            smtp.port()
        ),
    )
    .expect("write alertmanager.yml");
    let series = |service: &str, route: &str| {
        format!(
            r#"label_replace(label_replace(vector(1), "service", "{service}", "", ""), "route", "{route}", "", "")"#
        )
    };
    let mut failing: Vec<String> = (0..40).map(|i| series("payments", &format!("route-{i:02}"))).collect();
    failing.push(series("orders", "checkout"));
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        format!(
            "groups:\n  - name: api\n    interval: 1s\n    rules:\n      - alert: RouteErrors\n        expr: '{}'\n        labels: {{ severity: page }}\n",
            failing.join(" or ")
        ),
    )
    .expect("write rules");
    let config = format!(
        "rule_files: ['{}']\nalerting:\n  alertmanager_config: {}\n",
        rules.display(),
        am.display()
    );
    let data = dir.path().join("data");
    let server = tokio::task::spawn_blocking(move || common::Server::start(&data, &config))
        .await
        .expect("server");

    wait_for(|| pages.lock().len() == 2 && inbox.lock().len() == 2).await;
    // Long enough for a second evaluation and flush to page again if they were going to.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pages = pages.lock().clone();
    assert_eq!(pages.len(), 2, "one webhook per group: {pages:?}");
    let mut sizes: Vec<(String, usize)> = pages
        .iter()
        .map(|p| {
            (
                p["groupLabels"]["service"].as_str().unwrap_or_default().to_owned(),
                p["alerts"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    sizes.sort();
    assert_eq!(sizes, [("orders".to_owned(), 1), ("payments".to_owned(), 40)]);
    let mails = inbox.lock().clone();
    assert_eq!(mails.len(), 2, "one mail per group");
    let mut subjects: Vec<String> = mails
        .iter()
        .map(|m| {
            let msg = MessageParser::default().parse(&m.data).expect("a MIME message");
            msg.subject().unwrap_or_default().to_owned()
        })
        .collect();
    subjects.sort();
    assert!(subjects[0].starts_with("[FIRING:1] RouteErrors orders"), "{subjects:?}");
    assert!(
        subjects[1].starts_with("[FIRING:40] RouteErrors payments"),
        "{subjects:?}"
    );
    tokio::task::spawn_blocking(move || server.stop()).await.expect("stop");
}
