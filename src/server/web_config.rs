//! Prometheus's web configuration file (`server.web_config_file`), read as Prometheus's
//! exporter-toolkit reads it: TLS (`tls_server_config`), response headers
//! (`http_server_config`) and basic-auth users with bcrypt hashes (`basic_auth_users`). The same
//! file that `promtool check web-config` accepts loads here; settings vigil cannot honour are
//! refused by name rather than ignored.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: vigil.crt          # relative to this file's directory
//!   key_file: vigil.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: clients-ca.crt
//!   min_version: TLS12
//! basic_auth_users:
//!   grafana: $2y$10$...            # htpasswd -nBC 10 "" | tr -d ':\n'
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// The whole file.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebConfig {
    #[serde(default)]
    pub(crate) tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    pub(crate) http_server_config: HttpServerConfig,
    /// User name to bcrypt hash.
    #[serde(default)]
    pub(crate) basic_auth_users: BTreeMap<String, String>,
}

/// `tls_server_config:`
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsServerConfig {
    #[serde(default)]
    cert_file: String,
    #[serde(default)]
    key_file: String,
    /// The certificate itself (PEM), instead of `cert_file`.
    #[serde(default)]
    cert: String,
    /// The key itself (PEM), instead of `key_file`.
    #[serde(default)]
    key: String,
    #[serde(default)]
    client_auth_type: String,
    #[serde(default)]
    client_ca_file: String,
    #[serde(default)]
    client_allowed_sans: Vec<String>,
    #[serde(default)]
    min_version: String,
    #[serde(default)]
    max_version: String,
    #[serde(default)]
    cipher_suites: Vec<String>,
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    curve_preferences: Vec<String>,
}

/// `http_server_config:`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpServerConfig {
    /// HTTP/2 is not served (HTTP/1.1 only); the key is accepted as Prometheus's files have it.
    #[serde(default, rename = "http2")]
    _http2: Option<bool>,
    /// Headers added to every response (the five exporter-toolkit allows).
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
}

/// The response headers a web configuration may set, as exporter-toolkit allows them.
const ALLOWED_HEADERS: [&str; 5] = [
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
];

impl WebConfig {
    /// Reads and checks the file; relative paths in it are relative to its directory.
    pub(crate) fn load(path: &Path) -> Result<WebConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut cfg: WebConfig = if text.trim().is_empty() {
            WebConfig::default()
        } else {
            serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Some(tls) = &mut cfg.tls_server_config {
            tls.resolve(dir);
        }
        cfg.check().with_context(|| format!("in {}", path.display()))?;
        Ok(cfg)
    }

    fn check(&self) -> Result<()> {
        for (name, hash) in &self.basic_auth_users {
            if hash.parse::<bcrypt::HashParts>().is_err() {
                bail!("basic_auth_users: the hash of {name:?} is not a bcrypt hash");
            }
        }
        for (name, value) in &self.http_server_config.headers {
            if !ALLOWED_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                bail!(
                    "http_server_config.headers: {name:?} may not be set (allowed: {})",
                    ALLOWED_HEADERS.join(", ")
                );
            }
            // The values exporter-toolkit allows where it restricts them.
            let allowed: &[&str] = if name.eq_ignore_ascii_case("X-Frame-Options") {
                &["deny", "sameorigin"]
            } else if name.eq_ignore_ascii_case("X-Content-Type-Options") {
                &["nosniff"]
            } else {
                &[]
            };
            if !allowed.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(value)) {
                bail!("invalid value for {name}: expected one of {allowed:?}, got {value:?}");
            }
            if axum::http::HeaderValue::from_str(value).is_err() {
                bail!("http_server_config.headers: the value of {name} is not a valid header value");
            }
        }
        self.tls().map(drop)
    }

    /// The TLS settings for the listener, if the file asks for TLS (a `tls_server_config` with
    /// no certificate, key or client authentication in it means plain HTTP, as in
    /// exporter-toolkit).
    pub(crate) fn tls(&self) -> Result<Option<Arc<rustls::ServerConfig>>> {
        self.tls_server_config
            .as_ref()
            .filter(|t| t.asks_for_tls())
            .map(TlsServerConfig::server_config)
            .transpose()
    }
}

/// Shown without the key or the password hashes.
impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field(
                "tls",
                &self
                    .tls_server_config
                    .as_ref()
                    .is_some_and(TlsServerConfig::asks_for_tls),
            )
            .field("headers", &self.http_server_config.headers)
            .field("users", &self.basic_auth_users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TlsServerConfig {
    fn asks_for_tls(&self) -> bool {
        [
            &self.cert_file,
            &self.key_file,
            &self.cert,
            &self.key,
            &self.client_auth_type,
            &self.client_ca_file,
        ]
        .iter()
        .any(|s| !s.is_empty())
    }

    fn resolve(&mut self, dir: &Path) {
        for f in [&mut self.cert_file, &mut self.key_file, &mut self.client_ca_file] {
            if !f.is_empty() && Path::new(f.as_str()).is_relative() {
                *f = dir.join(&*f).to_string_lossy().into_owned();
            }
        }
    }

    /// The rustls server settings these keys describe.
    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(self.provider()?);
        let versions = self.versions()?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .context("TLS versions")?;
        let builder = match self.client_auth_type.as_str() {
            "" | "NoClientCert" => {
                if !self.client_ca_file.is_empty() {
                    bail!("client_ca_file is set without a client_auth_type that verifies client certificates");
                }
                builder.with_no_client_auth()
            }
            kind @ ("VerifyClientCertIfGiven" | "RequireAndVerifyClientCert") => {
                if self.client_ca_file.is_empty() {
                    bail!("client_auth_type {kind} needs client_ca_file");
                }
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certs(Path::new(&self.client_ca_file))? {
                    roots.add(cert).context("client_ca_file")?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if kind == "VerifyClientCertIfGiven" {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(verifier.build().context("client certificate verifier")?)
            }
            kind @ ("RequestClientCert" | "RequireAnyClientCert") => {
                bail!(
                    "client_auth_type {kind} (client certificates taken without verification) is not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                )
            }
            other => bail!("invalid client_auth_type {other:?}"),
        };
        if !self.client_allowed_sans.is_empty() {
            bail!("client_allowed_sans is not supported yet");
        }
        let (certs, key) = self.certificate()?;
        let mut cfg = builder
            .with_single_cert(certs, key)
            .context("the certificate and key do not match")?;
        cfg.ignore_client_order = self.prefer_server_cipher_suites.unwrap_or(true);
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    fn certificate(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let certs = match (self.cert_file.is_empty(), self.cert.is_empty()) {
            (false, true) => read_certs(Path::new(&self.cert_file))?,
            (true, false) => CertificateDer::pem_slice_iter(self.cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .context("cert")?,
            (true, true) => bail!("missing cert_file"),
            (false, false) => bail!("at most one of cert and cert_file must be configured"),
        };
        let key = match (self.key_file.is_empty(), self.key.is_empty()) {
            (false, true) => {
                PrivateKeyDer::from_pem_file(&self.key_file).with_context(|| format!("key_file {}", self.key_file))?
            }
            (true, false) => PrivateKeyDer::from_pem_slice(self.key.as_bytes()).context("key")?,
            (true, true) => bail!("missing key_file"),
            (false, false) => bail!("at most one of key and key_file must be configured"),
        };
        if certs.is_empty() {
            bail!("no certificate in {}", self.cert_file);
        }
        Ok((certs, key))
    }

    fn versions(&self) -> Result<Vec<&'static rustls::SupportedProtocolVersion>> {
        let rank = |v: &str, default: u8| match v {
            "" => Ok(default),
            "TLS12" => Ok(12),
            "TLS13" => Ok(13),
            "TLS10" | "TLS11" => bail!("{v} is not supported (TLS12 and TLS13 are)"),
            other => bail!("unknown TLS version {other:?}"),
        };
        let (min, max) = (rank(&self.min_version, 12)?, rank(&self.max_version, 13)?);
        if min > max {
            bail!("min_version is above max_version");
        }
        Ok([(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect())
    }

    /// ring's provider with the configured TLS 1.2 suites and curves (TLS 1.3's suites are not
    /// configurable, as in Go).
    fn provider(&self) -> Result<rustls::crypto::CryptoProvider> {
        use rustls::crypto::ring::{cipher_suite as cs, kx_group};
        let mut p = rustls::crypto::ring::default_provider();
        if !self.cipher_suites.is_empty() {
            let mut suites: Vec<rustls::SupportedCipherSuite> = vec![
                cs::TLS13_AES_128_GCM_SHA256,
                cs::TLS13_AES_256_GCM_SHA384,
                cs::TLS13_CHACHA20_POLY1305_SHA256,
            ];
            for name in &self.cipher_suites {
                suites.push(match name.as_str() {
                    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
                        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                    }
                    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
                        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
                    }
                    other => {
                        bail!("cipher suite {other} is not supported (only ECDHE with AES-GCM or ChaCha20-Poly1305)")
                    }
                });
            }
            p.cipher_suites = suites;
        }
        if !self.curve_preferences.is_empty() {
            let mut groups = Vec::new();
            for name in &self.curve_preferences {
                groups.push(match name.as_str() {
                    "X25519" => kx_group::X25519,
                    "CurveP256" => kx_group::SECP256R1,
                    "CurveP384" => kx_group::SECP384R1,
                    other => bail!("curve {other} is not supported (X25519, CurveP256, CurveP384)"),
                });
            }
            p.kx_groups = groups;
        }
        Ok(p)
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("reading certificates from {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_hashes_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("web.yml");
        std::fs::write(&p, "basic_auth_users:\n  a: not-a-hash\n").expect("write");
        assert!(WebConfig::load(&p).is_err());
        std::fs::write(&p, "basic_auth_user:\n  a: x\n").expect("write");
        assert!(WebConfig::load(&p).is_err());
        std::fs::write(&p, "tls_server_config:\n  key_file: k\n").expect("write");
        let e = format!("{:#}", WebConfig::load(&p).expect_err("no cert"));
        assert!(e.contains("missing cert_file"), "{e}");
        let hash = bcrypt::hash("secret", 4).expect("hash");
        std::fs::write(
            &p,
            format!("basic_auth_users:\n  a: {hash}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"),
        )
        .expect("write");
        let cfg = WebConfig::load(&p).expect("valid");
        assert_eq!(cfg.basic_auth_users.len(), 1);
        std::fs::write(&p, "").expect("write");
        assert!(
            WebConfig::load(&p)
                .expect("an empty file is valid")
                .basic_auth_users
                .is_empty()
        );
        // As promtool: an empty tls_server_config is plain HTTP; header values are checked.
        std::fs::write(&p, "tls_server_config: {}\n").expect("write");
        assert!(WebConfig::load(&p).expect("valid").tls().expect("no TLS").is_none());
        std::fs::write(&p, "http_server_config:\n  headers:\n    X-Frame-Options: bogus\n").expect("write");
        let e = format!("{:#}", WebConfig::load(&p).expect_err("bad value"));
        assert!(e.contains("X-Frame-Options"), "{e}");
        // Shown without secrets.
        std::fs::write(&p, format!("basic_auth_users:\n  a: {hash}\n")).expect("write");
        let shown = format!("{:?}", WebConfig::load(&p).expect("valid"));
        assert!(!shown.contains(&hash) && shown.contains("\"a\""), "{shown}");
    }
}
