//! One module per subcommand. They parse their flags, build what they need, and return errors
//! for `main` to print.

pub(crate) mod check;
pub(crate) mod demo;
pub(crate) mod events;
pub(crate) mod import;
pub(crate) mod query;
pub(crate) mod serve;
pub(crate) mod simulate;
pub(crate) mod status;
pub(crate) mod tui;

/// A multi-threaded tokio runtime for commands that serve or call HTTP.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Calls vigil's HTTP API at `base`: `path` with `form` posted (or a GET when there is none).
/// Returns the body and its parsed envelope, or the API's error as `errorType: error`.
pub(crate) fn call_api(
    base: &str,
    path: &str,
    form: Option<&[(&str, String)]>,
) -> anyhow::Result<(String, serde_json::Value)> {
    use anyhow::Context;
    let url = format!("{base}{path}");
    let body = runtime()?.block_on(async {
        let client = reqwest::Client::new();
        let req = match form {
            Some(f) => client.post(&url).form(f),
            None => client.get(&url),
        };
        let resp = req.send().await.with_context(|| format!("asking {base}"))?;
        resp.text().await.context("reading the response")
    })?;
    let v: serde_json::Value = serde_json::from_str(&body).with_context(|| format!("not an API response: {body}"))?;
    if v["status"] != "success" {
        anyhow::bail!(
            "{}: {}",
            v["errorType"].as_str().unwrap_or("error"),
            v["error"].as_str().unwrap_or(&body)
        );
    }
    Ok((body, v))
}
