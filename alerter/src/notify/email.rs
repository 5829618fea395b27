//! Email over SMTP (lettre): STARTTLS required by default as in Alertmanager, implicit TLS on
//! port 465, or plain for a local relay; AUTH PLAIN or LOGIN. One mail per notification with a
//! plain-text and an HTML part that say what is wrong, where, how bad against yesterday and last
//! week, since when, and link the runbook. The subject is Alertmanager's (`[FIRING:2] name
//! service (page)`), and every mail of a group refers to the same thread, so mail clients keep a
//! group's mails together.

use std::fmt::Write as _;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use vigil_tsdb::time::format_rfc3339;

use super::alerts::PipelineAlert;
use super::config::{EmailConfig, SmtpTls};
use super::retry::SendError;
use super::slack::{against_history, place};
use super::stages::Notification;
use super::{SendContext, Sender, Status};

/// Sends notifications as mail.
#[derive(Debug, Clone)]
pub struct EmailSender {
    from: Mailbox,
    to: Vec<Mailbox>,
    headers: Vec<(String, String)>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl EmailSender {
    /// A sender for `cfg`; `timeout` bounds each SMTP exchange.
    pub fn new(cfg: &EmailConfig, timeout: std::time::Duration) -> Result<Self, super::DestinationError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let what = |e: &dyn std::fmt::Display| super::DestinationError::Email {
            to: cfg.to.join(", "),
            problem: e.to_string(),
        };
        let (host, port) = cfg
            .smarthost
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .ok_or_else(|| what(&format!("smarthost {:?} must be host:port", cfg.smarthost)))?;
        let mut tls = TlsParameters::builder(host.to_owned()).dangerous_accept_invalid_certs(cfg.insecure_skip_verify);
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca).map_err(|e| what(&format!("reading {}: {e}", ca.display())))?;
            tls = tls.add_root_certificate(Certificate::from_pem(&pem).map_err(|e| what(&e))?);
        }
        let tls = tls.build_rustls().map_err(|e| what(&e))?;
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .hello_name(ClientId::Domain(cfg.hello.clone()))
            .timeout(Some(timeout))
            .tls(tls_mode(cfg.tls_mode(), tls));
        if let Some(user) = &cfg.auth_username {
            let password = cfg
                .auth_password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            b = b
                .credentials(Credentials::new(user.clone(), password))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        let parse = |a: &str| a.parse::<Mailbox>().map_err(|e| what(&format!("address {a:?}: {e}")));
        Ok(EmailSender {
            from: parse(&cfg.from)?,
            to: cfg.to.iter().map(|a| parse(a)).collect::<Result<_, _>>()?,
            headers: cfg.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            transport: b.build(),
        })
    }
}

fn tls_mode(mode: SmtpTls, params: TlsParameters) -> Tls {
    match mode {
        SmtpTls::Starttls => Tls::Required(params),
        SmtpTls::Implicit => Tls::Wrapper(params),
        SmtpTls::Opportunistic => Tls::Opportunistic(params),
        SmtpTls::None => Tls::None,
    }
}

/// Alertmanager's default subject: status, firing count, the group's label values, and the
/// other common label values in parentheses.
pub fn subject(n: &Notification) -> String {
    let status = match (n.status(), &n.ack) {
        (_, Some(ack)) => format!("ACKNOWLEDGED by {}", ack.by),
        (Status::Firing, None) => format!("FIRING:{}", n.firing().count()),
        (Status::Resolved, None) => "RESOLVED".to_owned(),
    };
    let group: Vec<String> = n.group_labels.iter().map(|l| l.value.to_string()).collect();
    let rest: Vec<String> = n
        .common_labels()
        .into_iter()
        .filter(|(k, _)| n.group_labels.get(k).is_none())
        .map(|(_, v)| v)
        .collect();
    let mut s = format!("[{status}] {}", group.join(" "));
    if !rest.is_empty() {
        let _ = write!(s, " ({})", rest.join(" "));
    }
    s.trim_end().to_owned()
}

/// A stable id for the group's mail thread.
fn thread_id(n: &Notification) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in n.group_key.bytes().chain(n.receiver.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("<{h:016x}@vigil>")
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What one alert says, as (label, text, link) rows.
fn rows(a: &PipelineAlert, ctx: &SendContext) -> Vec<(&'static str, String, Option<String>)> {
    let mut rows = vec![
        (
            "What",
            a.annotation("summary").unwrap_or(a.alertname()).to_owned(),
            None,
        ),
        ("Where", place(a), None),
        ("How bad", against_history(a), None),
        ("Since", format_rfc3339(a.fired_at), None),
    ];
    if let Some(end) = a.ends_at {
        rows.push(("Resolved", format_rfc3339(end), None));
    }
    if let Some(ack) = &a.ack {
        rows.push((
            "Acknowledged",
            format!("by {} at {}: {}", ack.by, format_rfc3339(ack.at), ack.comment),
            None,
        ));
    }
    if let Some(d) = a.annotation("description") {
        rows.push(("Details", d.to_owned(), None));
    }
    if let Some(r) = a.annotation("runbook_url").or_else(|| a.annotation("runbook")) {
        rows.push(("Runbook", r.to_owned(), Some(r.to_owned())));
    }
    rows.push(("Query", a.expr.clone(), Some(ctx.generator_url(&a.expr))));
    rows
}

/// The plain-text part.
pub fn text_body(n: &Notification, ctx: &SendContext) -> String {
    let mut out = format!("{}\n", subject(n));
    if let Some(r) = &n.fallback_for {
        let _ = writeln!(out, "(sent to you because {r} could not be reached)");
    }
    for a in &n.alerts {
        let state = if a.ends_at.is_some() { "RESOLVED" } else { "FIRING" };
        let _ = writeln!(out, "\n{state}: {}", a.alertname());
        for (k, v, link) in rows(a, ctx) {
            match link.filter(|l| *l != v) {
                Some(l) => {
                    let _ = writeln!(out, "  {k}: {v}\n    {l}");
                }
                None => {
                    let _ = writeln!(out, "  {k}: {v}");
                }
            }
        }
    }
    let _ = writeln!(out, "\nvigil: {}", ctx.external_url);
    out
}

/// The HTML part.
pub fn html_body(n: &Notification, ctx: &SendContext) -> String {
    let mut out = format!(
        "<!DOCTYPE html><html><body style=\"font-family:sans-serif\"><h2>{}</h2>",
        html_escape(&subject(n))
    );
    if let Some(r) = &n.fallback_for {
        let _ = write!(
            out,
            "<p><em>Sent to you because {} could not be reached.</em></p>",
            html_escape(r)
        );
    }
    for a in &n.alerts {
        let (state, color) = if a.ends_at.is_some() {
            ("RESOLVED", "#2e7d32")
        } else {
            ("FIRING", "#c62828")
        };
        let _ = write!(
            out,
            "<h3><span style=\"color:{color}\">{state}</span> {}</h3><table cellpadding=\"4\">",
            html_escape(a.alertname())
        );
        for (k, v, link) in rows(a, ctx) {
            let v = match link {
                Some(l) => format!("<a href=\"{}\">{}</a>", html_escape(&l), html_escape(&v)),
                None => html_escape(&v),
            };
            let _ = write!(out, "<tr><th align=\"left\">{k}</th><td>{v}</td></tr>");
        }
        out.push_str("</table>");
    }
    let _ = write!(
        out,
        "<p><a href=\"{0}\">{0}</a></p></body></html>",
        html_escape(&ctx.external_url)
    );
    out
}

impl EmailSender {
    /// The message for a notification.
    pub fn message(&self, n: &Notification, ctx: &SendContext) -> Result<Message, SendError> {
        let custom_subject = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("subject"))
            .map(|(_, v)| v.clone());
        let thread = thread_id(n);
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(custom_subject.unwrap_or_else(|| subject(n)))
            .message_id(Some(format!("<{}.{}.{}@vigil>", n.seq, n.created_at, &thread[1..17])))
            .in_reply_to(thread.clone())
            .references(thread);
        for to in &self.to {
            b = b.to(to.clone());
        }
        // Subject is taken above; To and From come from the configuration's own keys.
        let own = |k: &str| ["subject", "to", "from"].iter().any(|o| k.eq_ignore_ascii_case(o));
        for (k, v) in self.headers.iter().filter(|(k, _)| !own(k)) {
            let name = HeaderName::new_from_ascii(k.clone())
                .map_err(|e| SendError::Permanent(format!("header {k:?}: {e}")))?;
            b = b.raw_header(HeaderValue::new(name, v.clone()));
        }
        b.multipart(MultiPart::alternative_plain_html(text_body(n, ctx), html_body(n, ctx)))
            .map_err(|e| SendError::Permanent(format!("building the mail: {e}")))
    }
}

impl Sender for EmailSender {
    async fn send(&self, n: &Notification, ctx: &SendContext) -> Result<(), SendError> {
        let msg = self.message(n, ctx)?;
        match self.transport.send(msg).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(SendError::Retryable(format!("SMTP: {e}"))),
        }
    }
}
