//! One module per subcommand. They parse their flags, build what they need, and return errors
//! for `main` to print.

pub(crate) mod alerts;
pub(crate) mod anomaly;
pub(crate) mod backtest;
pub(crate) mod check;
pub(crate) mod demo;
pub(crate) mod events;
pub(crate) mod import;
pub(crate) mod query;
pub(crate) mod scenario;
pub(crate) mod serve;
pub(crate) mod simulate;
pub(crate) mod slo;
pub(crate) mod status;
pub(crate) mod test_rules;
pub(crate) mod tui;

/// A multi-threaded tokio runtime for commands that serve or call HTTP.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// How a client command reaches vigil's API: where, with which credentials, trusting which
/// CA (`vigil query`, `events`, `status`, `tui`).
#[derive(Clone, clap::Args)]
pub(crate) struct ApiArgs {
    /// Base URL of the API (`https://` for a vigil with TLS).
    #[arg(long, default_value = "http://127.0.0.1:9464")]
    pub(crate) url: String,
    /// A bearer token (`server.tokens`).
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A basic-auth user (the web configuration file's `basic_auth_users`).
    #[arg(long, env = "VIGIL_USER")]
    user: Option<String>,
    /// The user's password (better from the environment or `--password-file`).
    #[arg(long, env = "VIGIL_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// A file holding the user's password.
    #[arg(long, value_name = "FILE", conflicts_with = "password")]
    password_file: Option<std::path::PathBuf>,
    /// CA certificates (PEM) to trust for `https://` besides the system's.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<std::path::PathBuf>,
}

/// Shown without the token or the password.
impl std::fmt::Debug for ApiArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiArgs")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<secret>"))
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<secret>"))
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl ApiArgs {
    /// The base URL without a trailing slash.
    pub(crate) fn base(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    /// An HTTP client that sends the credentials with every request.
    pub(crate) fn client(&self) -> anyhow::Result<reqwest::Client> {
        use anyhow::Context;
        use base64::Engine as _;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = reqwest::header::HeaderMap::new();
        let auth = match (&self.token, &self.user) {
            (Some(t), _) => Some(format!("Bearer {t}")),
            (None, Some(user)) => {
                let password = match (&self.password, &self.password_file) {
                    (Some(p), _) => p.clone(),
                    (None, Some(f)) => std::fs::read_to_string(f)
                        .with_context(|| format!("reading {}", f.display()))?
                        .trim_end_matches(['\n', '\r'])
                        .to_owned(),
                    (None, None) => anyhow::bail!("--user needs a password (VIGIL_PASSWORD or --password-file)"),
                };
                let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Some(format!("Basic {pair}"))
            }
            (None, None) => None,
        };
        if let Some(a) = auth {
            if let Ok(url) = reqwest::Url::parse(&self.url)
                && url.scheme() == "http"
                && !matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
            {
                eprintln!("warning: credentials go to {} unencrypted (use https://)", self.base());
            }
            let mut v = reqwest::header::HeaderValue::from_str(&a).context("credentials")?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let mut builder = reqwest::Client::builder().default_headers(headers);
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("certificates in {}", ca.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder.build().context("building the HTTP client")
    }
}

/// GETs `path` and returns the body as it is (for Alertmanager's API, which has no envelope).
pub(crate) fn get_raw(api: &ApiArgs, path: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    let base = api.base();
    let client = api.client()?;
    runtime()?.block_on(async {
        let resp = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .with_context(|| format!("asking {base}"))?;
        let status = resp.status();
        let text = resp.text().await.context("reading the response")?;
        if !status.is_success() {
            anyhow::bail!("{base}{path} answered {status}: {}", text.trim());
        }
        Ok(text)
    })
}

/// Calls vigil's HTTP API: `path` with `form` posted (or a GET when there is none).
/// Returns the body and its parsed envelope, or the API's error as `errorType: error`.
pub(crate) fn call_api(
    api: &ApiArgs,
    path: &str,
    form: Option<&[(&str, String)]>,
) -> anyhow::Result<(String, serde_json::Value)> {
    use anyhow::Context;
    let base = api.base();
    let url = format!("{base}{path}");
    let client = api.client()?;
    let body = runtime()?.block_on(async {
        let req = match form {
            Some(f) => client.post(&url).form(f),
            None => client.get(&url),
        };
        let resp = req.send().await.with_context(|| format!("asking {base}"))?;
        let status = resp.status();
        let text = resp.text().await.context("reading the response")?;
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            anyhow::bail!("{base} answered {status}: {} (see --token, --user)", text.trim());
        }
        Ok(text)
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
