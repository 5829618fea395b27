//! Who may call what. People log in with basic auth (the users of Prometheus's web
//! configuration file, bcrypt hashes); machines send a bearer token from `server.tokens`, each
//! with scopes: `ingest` (`/ingest/*`), `read` (queries, status, rules, alerts, `/metrics`),
//! `admin` (`/-/reload`, `/api/v1/admin/*`). Users may do everything. `/-/healthy` and
//! `/-/ready` stay open. With no users and no tokens configured nothing is asked.
//!
//! A failed attempt is answered 401 (403 for a token without the scope) after a pause, counted
//! in `vigil_http_auth_failures_total{reason}` and logged with the user or token name, never
//! the secret. A bcrypt check costs tens of milliseconds, so a password that verified is
//! remembered (as a digest of user, hash and password), and at most two checks run at once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::Semaphore;

/// What a request needs to be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scope {
    /// `POST /ingest/*`.
    Ingest,
    /// Queries, status, rules, alerts, events, `/metrics`.
    Read,
    /// `/-/reload`, `/api/v1/admin/*`.
    Admin,
}

/// The scope a request needs, or `None` for the open health endpoints. Changing silences and
/// acknowledging alerts need `admin`.
pub(crate) fn scope_of(method: &Method, path: &str) -> Option<Scope> {
    let writes_alerts = (path.starts_with("/api/v2/silence") || path == "/api/v1/alerts/ack")
        && !matches!(*method, Method::GET | Method::HEAD);
    if path == "/-/healthy" || path == "/-/ready" {
        None
    } else if path.starts_with("/ingest/") {
        Some(Scope::Ingest)
    } else if path == "/-/reload" || path.starts_with("/api/v1/admin/") || writes_alerts {
        Some(Scope::Admin)
    } else {
        Some(Scope::Read)
    }
}

/// How long a failed attempt waits for its answer.
const FAILURE_PAUSE: Duration = Duration::from_millis(300);

/// Remembered verified passwords, at most (then forgotten all at once).
const MAX_REMEMBERED: usize = 4096;

/// Why an attempt failed, as counted.
/// `abandoned`: the caller hung up while its password was being checked.
const REASONS: [&str; 6] = [
    "missing",
    "unknown_user",
    "bad_password",
    "bad_token",
    "scope",
    "abandoned",
];

/// A machine's token.
struct Token {
    name: String,
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

/// The credentials vigil accepts.
pub(crate) struct Auth {
    users: BTreeMap<String, String>,
    tokens: Vec<Token>,
    verified: Arc<Mutex<HashSet<[u8; 32]>>>,
    /// Checked for unknown users, at the cost the configured hashes have.
    unknown_user_hash: String,
    checks: Arc<Semaphore>,
    failures: Arc<[std::sync::atomic::AtomicU64; REASONS.len()]>,
}

/// Shown with user and token names only.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("tokens", &self.tokens.iter().map(|t| &t.name).collect::<Vec<_>>())
            .finish()
    }
}

/// A password check under way: if the caller goes away before it ends, it is counted as
/// abandoned (so that hanging up during a check does not hide an attempt).
struct Checking<'a> {
    auth: &'a Auth,
    done: bool,
}

impl Drop for Checking<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.auth.count("abandoned");
            tracing::info!(reason = "abandoned", "authentication failed");
        }
    }
}

/// A refused request.
#[derive(Debug)]
enum Refused {
    Unauthorized(&'static str, String),
    Forbidden(String),
}

impl Auth {
    /// Basic-auth `users` (name to bcrypt hash) and `tokens` (name, secret, scopes).
    pub(crate) fn new(
        users: BTreeMap<String, String>,
        tokens: impl IntoIterator<Item = (String, String, Vec<Scope>)>,
    ) -> Self {
        // An unknown user costs a bcrypt check as long as a known one's, so that timing does
        // not tell which users exist.
        let cost = users
            .values()
            .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())
            .max();
        let unknown_user_hash = cost
            .and_then(|c| {
                let mut secret = [0u8; 18];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret).ok()?;
                bcrypt::hash(secret, c).ok()
            })
            .unwrap_or_else(|| UNKNOWN_USER_HASH.to_owned());
        Auth {
            users,
            tokens: tokens
                .into_iter()
                .map(|(name, secret, scopes)| Token {
                    name,
                    digest: digest(&[secret.as_bytes()]),
                    scopes,
                })
                .collect(),
            verified: Arc::new(Mutex::new(HashSet::new())),
            unknown_user_hash,
            checks: Arc::new(Semaphore::new(2)),
            failures: Default::default(),
        }
    }

    /// Whether anything is asked of callers.
    pub(crate) fn required(&self) -> bool {
        !self.users.is_empty() || !self.tokens.is_empty()
    }

    async fn check(&self, headers: &HeaderMap, scope: Scope) -> Result<(), Refused> {
        let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return Err(Refused::Unauthorized("missing", String::new()));
        };
        let (kind, credentials) = value.split_once(' ').unwrap_or((value, ""));
        if kind.eq_ignore_ascii_case("bearer") {
            let presented = digest(&[credentials.trim().as_bytes()]);
            let Some(token) = self.tokens.iter().find(|t| t.digest == presented) else {
                return Err(Refused::Unauthorized("bad_token", String::new()));
            };
            return if token.scopes.contains(&scope) {
                Ok(())
            } else {
                Err(Refused::Forbidden(token.name.clone()))
            };
        }
        if !kind.eq_ignore_ascii_case("basic") {
            return Err(Refused::Unauthorized("missing", String::new()));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(Refused::Unauthorized("missing", String::new()))?;
        let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        self.check_password(user, password).await
    }

    async fn check_password(&self, user: &str, password: &str) -> Result<(), Refused> {
        let known = self.users.get(user);
        let hash = known.unwrap_or(&self.unknown_user_hash);
        let key = digest(&[user.as_bytes(), hash.as_bytes(), password.as_bytes()]);
        if known.is_some() && self.verified.lock().contains(&key) {
            return Ok(());
        }
        let mut checking = Checking {
            auth: self,
            done: false,
        };
        let verified = {
            // The slot goes with the check itself, so a caller that hangs up does not free it
            // while bcrypt still runs.
            let slot = self
                .checks
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Refused::Unauthorized("missing", String::new()))?;
            let (password, hash) = (password.to_owned(), hash.to_owned());
            tokio::task::spawn_blocking(move || {
                let ok = bcrypt::verify(password, &hash).unwrap_or(false);
                drop(slot);
                ok
            })
            .await
            .unwrap_or(false)
        };
        checking.done = true;
        match (known, verified) {
            // The name of an unknown user is not logged: it may be a password typed into the
            // wrong field.
            (None, _) => Err(Refused::Unauthorized("unknown_user", String::new())),
            (Some(_), false) => Err(Refused::Unauthorized("bad_password", user.to_owned())),
            (Some(_), true) => {
                let mut v = self.verified.lock();
                if v.len() >= MAX_REMEMBERED {
                    v.clear();
                }
                v.insert(key);
                Ok(())
            }
        }
    }

    /// These settings in place of `old` (on reload): the failure counts, the bcrypt slots and
    /// the verified passwords (their digests include the hash, so a changed password is not
    /// among them) go on as one, even for checks still running under `old`.
    pub(crate) fn succeeding(mut self, old: &Auth) -> Auth {
        self.failures = old.failures.clone();
        self.checks = old.checks.clone();
        self.verified = old.verified.clone();
        self
    }

    fn count(&self, reason: &str) {
        if let Some(i) = REASONS.iter().position(|r| *r == reason) {
            self.failures[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Self-metrics: failed attempts by reason.
    pub(crate) fn telemetry(&self) -> Vec<(vigil_tsdb::Labels, f64)> {
        REASONS
            .iter()
            .zip(self.failures.iter())
            .map(|(reason, n)| {
                (
                    vigil_tsdb::Labels::from_pairs([
                        ("__name__", "vigil_http_auth_failures_total"),
                        ("reason", reason),
                    ]),
                    n.load(std::sync::atomic::Ordering::Relaxed) as f64,
                )
            })
            .collect()
    }
}

/// A bcrypt hash of nothing anyone can send, checked for unknown users when no user is
/// configured (and so no cost to match).
const UNKNOWN_USER_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_le_bytes());
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Middleware: lets a request through if its credentials allow its scope.
pub(crate) async fn authorize(auth: Arc<Auth>, req: Request, next: Next) -> Response {
    let Some(scope) = scope_of(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    if !auth.required() {
        return next.run(req).await;
    }
    match auth.check(req.headers(), scope).await {
        Ok(()) => next.run(req).await,
        Err(refused) => {
            // Counted and logged first: a caller that hangs up during the pause is still seen.
            let path = req.uri().path().to_owned();
            let response = match refused {
                Refused::Unauthorized(reason, user) => {
                    auth.count(reason);
                    tracing::info!(reason, user, path, "authentication failed");
                    let mut r = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"vigil\", Bearer"),
                    );
                    r
                }
                Refused::Forbidden(token) => {
                    auth.count("scope");
                    tracing::info!(token, path, ?scope, "token lacks the scope");
                    (StatusCode::FORBIDDEN, format!("token {token:?} may not {scope:?}\n")).into_response()
                }
            };
            tokio::time::sleep(FAILURE_PAUSE).await;
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {v}")).expect("header"),
        );
        h
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        h
    }

    #[tokio::test]
    async fn users_tokens_and_scopes() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let auth = Auth::new(
            BTreeMap::from([("grafana".to_owned(), hash)]),
            [("kong".to_owned(), "ingest-token".to_owned(), vec![Scope::Ingest])],
        );
        assert!(auth.check(&basic("grafana", "s3cret"), Scope::Admin).await.is_ok());
        // Remembered now; still right.
        assert!(auth.check(&basic("grafana", "s3cret"), Scope::Read).await.is_ok());
        assert!(matches!(
            auth.check(&basic("grafana", "wrong"), Scope::Read).await,
            Err(Refused::Unauthorized("bad_password", _))
        ));
        assert!(matches!(
            auth.check(&basic("nobody", "s3cret"), Scope::Read).await,
            Err(Refused::Unauthorized("unknown_user", _))
        ));
        assert!(auth.check(&bearer("ingest-token"), Scope::Ingest).await.is_ok());
        assert!(matches!(
            auth.check(&bearer("ingest-token"), Scope::Admin).await,
            Err(Refused::Forbidden(_))
        ));
        assert!(matches!(
            auth.check(&bearer("guess"), Scope::Ingest).await,
            Err(Refused::Unauthorized("bad_token", _))
        ));
        assert!(matches!(
            auth.check(&HeaderMap::new(), Scope::Read).await,
            Err(Refused::Unauthorized("missing", _))
        ));
    }

    #[test]
    fn scopes_of_paths() {
        assert_eq!(scope_of(&Method::GET, "/-/healthy"), None);
        assert_eq!(scope_of(&Method::POST, "/ingest/kong"), Some(Scope::Ingest));
        assert_eq!(scope_of(&Method::POST, "/-/reload"), Some(Scope::Admin));
        assert_eq!(
            scope_of(&Method::POST, "/api/v1/admin/tsdb/delete_series"),
            Some(Scope::Admin)
        );
        assert_eq!(scope_of(&Method::POST, "/api/v2/silences"), Some(Scope::Admin));
        assert_eq!(scope_of(&Method::DELETE, "/api/v2/silence/x"), Some(Scope::Admin));
        assert_eq!(scope_of(&Method::GET, "/api/v2/silences"), Some(Scope::Read));
        assert_eq!(scope_of(&Method::GET, "/api/v1/query"), Some(Scope::Read));
    }

    #[test]
    fn the_unknown_user_hash_is_a_hash() {
        assert!(UNKNOWN_USER_HASH.parse::<bcrypt::HashParts>().is_ok());
    }
}
