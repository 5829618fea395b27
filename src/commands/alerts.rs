//! `vigil ack` and `vigil silences`: the on-call engineer's side of a running vigil.
//! `vigil ack service=payments --comment "rolling back"` says "I'm on it": the alerts stop
//! repeating and their receivers hear who is on it. `vigil silences` lists the silences
//! (`amtool` adds and expires them, against vigil as against Alertmanager).

use std::fmt::Write as _;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;

#[derive(Debug, Args)]
pub(crate) struct AckArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    /// Matchers the alerts must all match (`service=payments`, `route=~"pay.*"`).
    #[arg(value_name = "MATCHER", required_unless_present = "fingerprint")]
    matchers: Vec<String>,
    /// One alert by its fingerprint instead.
    #[arg(long)]
    fingerprint: Option<String>,
    /// Who is on it (default: $USER).
    #[arg(long, env = "USER")]
    author: String,
    /// What they are doing.
    #[arg(long, short = 'm', default_value = "")]
    comment: String,
    /// End the acknowledgement after this long (default: when the alert resolves).
    #[arg(long, value_name = "DURATION")]
    expires: Option<String>,
}

pub(crate) fn ack(args: &AckArgs) -> Result<()> {
    let mut form: Vec<(&str, String)> = vec![("author", args.author.clone()), ("comment", args.comment.clone())];
    form.extend(args.matchers.iter().map(|m| ("matcher", m.clone())));
    if let Some(f) = &args.fingerprint {
        form.push(("fingerprint", f.clone()));
    }
    if let Some(e) = &args.expires {
        form.push(("expires", e.clone()));
    }
    let (_, v) = super::call_api(&args.api, "/api/v1/alerts/ack", Some(&form))?;
    let acked = v["data"]["acknowledged"].as_array().cloned().unwrap_or_default();
    println!(
        "acknowledged {} alert{} as {}",
        acked.len(),
        if acked.len() == 1 { "" } else { "s" },
        args.author
    );
    for fp in acked {
        println!("  {}", fp.as_str().unwrap_or_default());
    }
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct SilencesArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    /// Also expired silences.
    #[arg(long)]
    expired: bool,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn silences(args: &SilencesArgs) -> Result<()> {
    let body = super::get_raw(&args.api, "/api/v2/silences")?;
    let list: Vec<Value> = serde_json::from_str(&body).with_context(|| format!("not a list of silences: {body}"))?;
    let shown: Vec<&Value> = list
        .iter()
        .filter(|s| args.expired || s["status"]["state"] != "expired")
        .collect();
    if args.json {
        println!("{}", Value::Array(shown.into_iter().cloned().collect()));
        return Ok(());
    }
    print!("{}", render(&shown));
    Ok(())
}

/// Silences as a table: id, state, matchers, until, by, comment.
fn render(list: &[&Value]) -> String {
    if list.is_empty() {
        return "no silences\n".into();
    }
    let mut out = String::new();
    for s in list {
        let matchers: Vec<String> = s["matchers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let op = match (m["isRegex"].as_bool(), m["isEqual"].as_bool()) {
                    (Some(true), Some(false)) => "!~",
                    (Some(true), _) => "=~",
                    (_, Some(false)) => "!=",
                    _ => "=",
                };
                format!(
                    "{}{op}{:?}",
                    m["name"].as_str().unwrap_or(""),
                    m["value"].as_str().unwrap_or("")
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "{}  {:8}  {}  until {}  by {}: {}",
            s["id"].as_str().unwrap_or(""),
            s["status"]["state"].as_str().unwrap_or(""),
            matchers.join(","),
            s["endsAt"].as_str().unwrap_or(""),
            s["createdBy"].as_str().unwrap_or(""),
            s["comment"].as_str().unwrap_or(""),
        );
    }
    out
}
