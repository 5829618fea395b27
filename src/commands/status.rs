//! `vigil status`: what a running vigil's collector and sources are doing.

use std::fmt::Write;

use anyhow::Result;
use clap::Args;
use serde_json::Value;

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &StatusArgs) -> Result<()> {
    let (_, v) = super::call_api(&args.api, "/api/v1/status/collector", None)?;
    if args.json {
        println!("{}", v["data"]);
    } else {
        print!("{}", render(args.api.base(), &v["data"]));
    }
    Ok(())
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The status as text.
fn render(base: &str, d: &Value) -> String {
    let mut out = String::new();
    match d["ready"].as_str() {
        None => {
            let _ = writeln!(out, "vigil at {base}: ready");
        }
        Some(why) => {
            let _ = writeln!(out, "vigil at {base}: NOT READY: {why}");
        }
    }
    let c = &d["collector"];
    let rejected: Vec<String> = c["rejected"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k} {}", n(v))).collect())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "collector: {} events accepted ({} late but counted), {} rejected{}; {} windows committed, {} waiting; {} series",
        n(&c["accepted"]),
        n(&c["lateAccepted"]),
        c["rejected"].as_object().map_or(0, |m| m.values().map(n).sum::<u64>()),
        if rejected.is_empty() {
            String::new()
        } else {
            format!(" ({})", rejected.join(", "))
        },
        n(&c["windowsCommitted"]),
        n(&c["pendingWindows"]),
        n(&c["series"]),
    );
    let k = &d["kafka"];
    if k.is_object() {
        let parts = k["partitions"].as_array().cloned().unwrap_or_default();
        let lag: u64 = parts.iter().map(|p| n(&p["lag"])).sum();
        let _ = writeln!(
            out,
            "kafka: {} messages, {} partitions, total lag {lag}, {} brokers up, {} rebalances, {} dead letters{}",
            n(&k["messages"]),
            parts.len(),
            n(&k["brokersUp"]),
            n(&k["rebalances"]),
            n(&k["deadLetters"]),
            if k["paused"].as_bool() == Some(true) {
                ", PAUSED (the store is behind)"
            } else {
                ""
            },
        );
        if let Some(missing) = k["missingTopics"].as_array().filter(|m| !m.is_empty()) {
            let names: Vec<&str> = missing.iter().filter_map(Value::as_str).collect();
            let _ = writeln!(
                out,
                "  topics that do not exist (waiting for them): {}",
                names.join(", ")
            );
        }
        if let Some(e) = k["lastError"].as_object() {
            let _ = writeln!(
                out,
                "  last error at {}: {}",
                e.get("at").and_then(Value::as_str).unwrap_or(""),
                e.get("error").and_then(Value::as_str).unwrap_or("")
            );
        }
        if !parts.is_empty() {
            let _ = writeln!(
                out,
                "  {:<24} {:>9} {:>12} {:>10} {:>12}  EVENT TIME",
                "TOPIC", "PARTITION", "NEXT OFFSET", "LAG", "MESSAGES"
            );
        }
        for p in parts {
            let lag = p["lag"].as_i64().map_or_else(|| "?".to_owned(), |l| l.to_string());
            let _ = writeln!(
                out,
                "  {:<24} {:>9} {:>12} {:>10} {:>12}  {}{}",
                p["topic"].as_str().unwrap_or(""),
                n(&p["partition"]),
                p["nextOffset"].as_i64().unwrap_or(-1),
                lag,
                n(&p["messages"]),
                p["eventTime"].as_str().unwrap_or("-"),
                if p["heldBack"].as_bool() == Some(true) {
                    " (held back: ahead of the others)"
                } else {
                    ""
                },
            );
        }
    }
    render_notify(&mut out, &d["notify"]);
    out
}

/// Each receiver's destinations: circuit, counts, fallback.
fn render_notify(out: &mut String, notify: &Value) {
    let Some(dests) = notify["destinations"].as_array().filter(|d| !d.is_empty()) else {
        return;
    };
    let _ = writeln!(out, "notifications:");
    let _ = writeln!(
        out,
        "  {:<20} {:<10} {:<10} {:>7} {:>7} {:>8} {:>7} {:>10}  FALLBACK",
        "RECEIVER", "KIND", "CIRCUIT", "SENT", "FAILED", "RETRIES", "QUEUED", "FALLBACKS"
    );
    for d in dests {
        let _ = writeln!(
            out,
            "  {:<20} {:<10} {:<10} {:>7} {:>7} {:>8} {:>7} {:>10}  {}",
            d["receiver"].as_str().unwrap_or(""),
            d["integration"].as_str().unwrap_or(""),
            d["breaker"].as_str().unwrap_or(""),
            d["sent"].as_f64().unwrap_or(0.0),
            d["failed"].as_f64().unwrap_or(0.0),
            d["retries"].as_f64().unwrap_or(0.0),
            d["queued"].as_f64().unwrap_or(0.0),
            d["fallbacks"].as_f64().unwrap_or(0.0),
            d["fallback"].as_str().unwrap_or("-"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable() {
        let d: Value = serde_json::from_str(
            r#"{"ready":null,"collector":{"accepted":10,"rejected":{"late":2},"lateAccepted":1,"windowsCommitted":3,"pendingWindows":0,"series":40},
                "kafka":{"messages":10,"paused":false,"rebalances":1,"deadLetters":0,"brokersUp":1,"lastError":null,
                "partitions":[{"topic":"kong","partition":0,"nextOffset":10,"lag":0,"messages":10,"eventTime":"2026-11-20T05:00:00.000Z","heldBack":false}]}}"#,
        )
        .expect("json");
        let text = render("http://x", &d);
        assert!(text.starts_with("vigil at http://x: ready\n"), "{text}");
        assert!(
            text.contains("10 events accepted (1 late but counted), 2 rejected (late 2)"),
            "{text}"
        );
        assert!(text.contains("kafka: 10 messages, 1 partitions, total lag 0"), "{text}");
        assert!(text.contains("kong"), "{text}");
    }
}
