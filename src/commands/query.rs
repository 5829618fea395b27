//! `vigil query EXPR`: asks a running vigil (or any Prometheus-compatible API) and prints the
//! answer as a table, or as the API's JSON with `-o json`.

use std::fmt::Write;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use serde_json::Value;
use vigil_tsdb::time::{format_rfc3339, now_ms, parse_duration_ms, parse_timestamp};

#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// PromQL expression.
    expr: String,
    #[command(flatten)]
    api: super::ApiArgs,
    /// Evaluation time for an instant query: RFC 3339, Unix seconds, `now` or `now-1h`.
    #[arg(long, conflicts_with_all = ["start", "end", "step"])]
    time: Option<String>,
    /// Start of a range query.
    #[arg(long, requires_all = ["end", "step"])]
    start: Option<String>,
    /// End of a range query.
    #[arg(long, requires_all = ["start", "step"])]
    end: Option<String>,
    /// Resolution of a range query (`15s`, `1m`).
    #[arg(long, requires_all = ["start", "end"])]
    step: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    /// A readable table.
    Text,
    /// The API's JSON response.
    Json,
}

/// `now`, `now-1h`, `now+5m`, RFC 3339 or Unix seconds, as Unix seconds for the API.
pub(crate) fn time_arg(s: &str, now: i64) -> Result<String> {
    let ms = if let Some(rest) = s.strip_prefix("now") {
        match rest.chars().next() {
            None => now,
            Some('-') => now - parse_duration_ms(&rest[1..]).map_err(anyhow::Error::msg)?,
            Some('+') => now + parse_duration_ms(&rest[1..]).map_err(anyhow::Error::msg)?,
            _ => bail!("invalid time {s:?}"),
        }
    } else {
        parse_timestamp(s).map_err(anyhow::Error::msg)?
    };
    Ok(format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000)))
}

pub(crate) fn run(args: &QueryArgs) -> Result<()> {
    let now = now_ms();
    let mut form = vec![("query", args.expr.clone())];
    let path = match (&args.start, &args.end, &args.step) {
        (Some(s), Some(e), Some(step)) => {
            form.push(("start", time_arg(s, now)?));
            form.push(("end", time_arg(e, now)?));
            form.push(("step", step.clone()));
            "/api/v1/query_range"
        }
        _ => {
            form.push(("time", time_arg(args.time.as_deref().unwrap_or("now"), now)?));
            "/api/v1/query"
        }
    };
    let (body, v) = super::call_api(&args.api, path, Some(&form))?;
    match args.output {
        Output::Json => println!("{body}"),
        Output::Text => print!("{}", render(&v["data"])),
    }
    Ok(())
}

fn labels(m: &Value) -> String {
    let Some(obj) = m.as_object() else { return "{}".into() };
    let name = obj.get("__name__").and_then(Value::as_str).unwrap_or("");
    let rest: Vec<String> = obj
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={}", v))
        .collect();
    if rest.is_empty() && !name.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{}}}", rest.join(", "))
    }
}

fn point(p: &Value) -> String {
    let t = p[0].as_f64().unwrap_or(0.0);
    format!(
        "{} @ {}",
        p[1].as_str().unwrap_or("?"),
        format_rfc3339((t * 1000.0).round() as i64)
    )
}

fn render(data: &Value) -> String {
    let mut out = String::new();
    match data["resultType"].as_str() {
        Some("vector") => {
            let result = data["result"].as_array().cloned().unwrap_or_default();
            if result.is_empty() {
                out.push_str("(empty vector)\n");
            }
            for s in result {
                let _ = writeln!(out, "{} => {}", labels(&s["metric"]), point(&s["value"]));
            }
        }
        Some("matrix") => {
            let result = data["result"].as_array().cloned().unwrap_or_default();
            if result.is_empty() {
                out.push_str("(empty matrix)\n");
            }
            for s in result {
                let _ = writeln!(out, "{}", labels(&s["metric"]));
                for p in s["values"].as_array().into_iter().flatten() {
                    let _ = writeln!(out, "  {}", point(p));
                }
            }
        }
        Some(_) => {
            let _ = writeln!(out, "{}", point(&data["result"]));
        }
        None => {
            let _ = writeln!(out, "{data}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_arguments() {
        let now = 1_795_305_600_000;
        assert_eq!(time_arg("now", now).expect("ok"), "1795305600.000");
        assert_eq!(time_arg("now-1h", now).expect("ok"), "1795302000.000");
        assert_eq!(time_arg("2026-11-22T00:00:00Z", now).expect("ok"), "1795305600.000");
        assert_eq!(time_arg("1795305600.5", now).expect("ok"), "1795305600.500");
        assert!(time_arg("yesterday", now).is_err());
    }

    #[test]
    fn renders_a_vector() {
        let v: Value = serde_json::from_str(
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"x"},"value":[1795305600,"1"]}]}"#,
        )
        .expect("json");
        assert_eq!(render(&v), "up{job=\"x\"} => 1 @ 2026-11-22T00:00:00.000Z\n");
    }
}
