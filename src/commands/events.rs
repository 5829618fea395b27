//! `vigil events QUERY`: the sampled raw events that match a query, newest first, from a
//! running vigil: "which requests failed on /v2/payments in the last 10 minutes, and for which
//! consumers?" is `vigil events 'status:>=500 AND path:"/v2/payments"' --since 10m --by consumer`.

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::Result;
use clap::Args;
use serde_json::Value;
use vigil_tsdb::time::{now_ms, parse_duration_ms};

use super::query::time_arg;

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// The query, in tantivy's syntax: fields `time status service route method path template
    /// latency upstream kong consumer request_id client_ip kept`; bare words search the path,
    /// service, route, template, consumer and request id. Empty: every event.
    #[arg(default_value = "")]
    query: String,
    #[command(flatten)]
    api: super::ApiArgs,
    /// Only events of the last DURATION (`10m`, `2h`); default `1h`.
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["start", "end"])]
    since: Option<String>,
    /// Only events from this time (RFC 3339, Unix seconds, `now-1h`).
    #[arg(long)]
    start: Option<String>,
    /// Only events before this time.
    #[arg(long)]
    end: Option<String>,
    /// How many of the newest events to show (with `--by`: to count).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Count the matching events by a field (`consumer`, `route`, `status`, ...) instead of
    /// listing them.
    #[arg(long, value_name = "FIELD")]
    by: Option<String>,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &EventsArgs) -> Result<()> {
    let now = now_ms();
    let mut form: Vec<(&str, String)> = vec![("q", args.query.clone())];
    match (&args.start, &args.end) {
        (None, None) => {
            let since = parse_duration_ms(args.since.as_deref().unwrap_or("1h")).map_err(anyhow::Error::msg)?;
            form.push(("start", time_arg(&format!("now-{since}ms"), now)?));
        }
        (start, end) => {
            if let Some(s) = start {
                form.push(("start", time_arg(s, now)?));
            }
            if let Some(e) = end {
                form.push(("end", time_arg(e, now)?));
            }
        }
    }
    let limit = if args.by.is_some() {
        args.limit.max(10_000)
    } else {
        args.limit
    };
    form.push(("limit", limit.to_string()));
    let (_, v) = super::call_api(&args.api, "/api/v1/events/search", Some(&form))?;
    let data = &v["data"];
    if args.json {
        println!("{data}");
    } else if let Some(field) = &args.by {
        print!("{}", by_field(data, field));
    } else {
        print!("{}", table(data));
    }
    Ok(())
}

/// The API's name for a query field.
fn json_key(field: &str) -> &str {
    match field {
        "latency" => "latencyMs",
        "upstream" => "upstreamMs",
        "kong" => "kongMs",
        "request_id" => "requestId",
        "client_ip" => "clientIp",
        other => other,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The events as a table, newest first.
fn table(data: &Value) -> String {
    let events = data["events"].as_array().cloned().unwrap_or_default();
    let total = data["total"].as_u64().unwrap_or(0);
    let mut out = String::new();
    if events.is_empty() {
        let _ = writeln!(out, "no events match");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<24} {:>6} {:<7} {:<40} {:<28} {:<16} {:>9}  REQUEST ID",
        "TIME", "STATUS", "METHOD", "PATH", "SERVICE / ROUTE", "CONSUMER", "LATENCY"
    );
    for e in &events {
        if e["alert"].is_object() {
            let _ = writeln!(out, "{}", history_line(e));
            continue;
        }
        let _ = writeln!(
            out,
            "{:<24} {:>6} {:<7} {:<40} {:<28} {:<16} {:>7}ms  {}",
            text(&e["time"]),
            text(&e["status"]),
            text(&e["method"]),
            text(&e["path"]),
            format!("{} / {}", text(&e["service"]), text(&e["route"])),
            text(&e["consumer"]),
            e["latencyMs"]
                .as_f64()
                .map_or_else(|| "-".into(), |l| format!("{l:.0}")),
            text(&e["requestId"]),
        );
    }
    if total > events.len() as u64 {
        let _ = writeln!(out, "({} of {total} matching events; --limit shows more)", events.len());
    }
    out
}

/// One entry of the alert history: when, what happened, to which alert, and who or why.
fn history_line(e: &Value) -> String {
    let a = &e["alert"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let mut line = format!(
        "{:<24} {:>12} {:<24} {}",
        text(&e["time"]),
        s(&a["state"]).to_uppercase(),
        s(&a["alertname"]),
        s(&a["labels"])
    );
    if !s(&a["receiver"]).is_empty() {
        line.push_str(&format!(" → {}", s(&a["receiver"])));
    }
    if !s(&a["by"]).is_empty() {
        line.push_str(&format!(" by {}", s(&a["by"])));
    }
    if !s(&a["comment"]).is_empty() {
        line.push_str(&format!(": {}", s(&a["comment"])));
    }
    line
}

/// Matching events counted by one field, most first.
fn by_field(data: &Value, field: &str) -> String {
    let events = data["events"].as_array().cloned().unwrap_or_default();
    let total = data["total"].as_u64().unwrap_or(0);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for e in &events {
        *counts.entry(text(&e[json_key(field)])).or_insert(0) += 1;
    }
    let mut rows: Vec<(String, u64)> = counts.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out = String::new();
    let _ = writeln!(out, "{:<40} {:>8}", field.to_uppercase(), "EVENTS");
    for (k, n) in rows {
        let _ = writeln!(out, "{k:<40} {n:>8}");
    }
    if total > events.len() as u64 {
        let _ = writeln!(
            out,
            "(counted over the newest {} of {total} matching events)",
            events.len()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Value {
        serde_json::json!({"total": 3, "events": [
            {"time": "2026-11-30T02:00:02.000Z", "status": 503, "method": "POST", "path": "/v2/payments/9", "service": "payments",
             "route": "payments-route", "consumer": "mobile-app", "latencyMs": 30000.0, "requestId": "r2"},
            {"time": "2026-11-30T02:00:01.000Z", "status": 500, "method": "POST", "path": "/v2/payments/8", "service": "payments",
             "route": "payments-route", "consumer": null, "latencyMs": 12.0, "requestId": "r1"},
        ]})
    }

    #[test]
    fn lists_and_counts() {
        let t = table(&data());
        assert!(
            t.contains("/v2/payments/9") && t.contains("mobile-app") && t.contains("30000ms"),
            "{t}"
        );
        assert!(t.contains("(2 of 3 matching events"), "{t}");
        let b = by_field(&data(), "consumer");
        assert!(b.contains("mobile-app") && b.lines().any(|l| l.starts_with('-')), "{b}");
        assert!(b.contains("counted over the newest 2 of 3"), "{b}");
    }
}
