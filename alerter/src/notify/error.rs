//! Why a notification setup is refused: the errors of configuration and of building destinations.

use std::path::PathBuf;

use super::matcher::MatcherError;
use super::timeinterval::TimeIntervalError;

/// Why an alerting configuration (vigil's `alerting:` or an `alertmanager.yml`) is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file the configuration names could not be read.
    #[error("{what}: reading {}: {source}", path.display())]
    Read {
        /// The key naming the file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// An error inside a file the configuration names.
    #[error("{}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong in it.
        source: Box<ConfigError>,
    },
    /// The YAML does not have the expected shape.
    #[error(transparent)]
    Yaml(#[from] serde_yaml_ng::Error),
    /// A receiver type vigil does not send to.
    #[error(
        "{}receiver {receiver:?}: {kind} is not supported (vigil sends webhook_configs, slack_configs, email_configs and pagerduty_configs)",
        at_line(.line)
    )]
    UnsupportedReceiver {
        /// The receiver.
        receiver: String,
        /// Its key, such as `opsgenie_configs`.
        kind: String,
        /// The key's line in the file, when it can be found.
        line: Option<usize>,
    },
    /// A name defined twice.
    #[error("{what} {name:?} is defined twice")]
    Duplicate {
        /// What kind of name.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A name used but defined nowhere.
    #[error("{place}: undefined {what} {name:?}")]
    Undefined {
        /// Where it is used.
        place: String,
        /// What kind of name.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A route breaks one of Alertmanager's rules for routes.
    #[error("{0}")]
    Route(&'static str),
    /// A matcher list does not parse.
    #[error("matchers {text:?}: {source}")]
    Matchers {
        /// The list as written.
        text: String,
        /// Why it does not parse.
        source: MatcherError,
    },
    /// A time interval is refused.
    #[error("time interval {name:?}: {source}")]
    TimeInterval {
        /// Its name.
        name: String,
        /// Why.
        source: TimeIntervalError,
    },
    /// A receiver's settings are incomplete or contradictory.
    #[error("{place}: {problem}")]
    Receiver {
        /// The receiver, as `receiver "name"`.
        place: String,
        /// What is missing or wrong.
        problem: String,
    },
    /// A URL that is not http(s); a secret one is not repeated.
    #[error("{place} has an invalid URL{}", .url.as_ref().map_or(String::new(), |u| format!(" {u:?}")))]
    Url {
        /// Where it is set.
        place: String,
        /// The URL, unless it is a secret.
        url: Option<String>,
    },
}

fn at_line(line: &Option<usize>) -> String {
    line.map_or(String::new(), |l| format!("line {l}: "))
}

impl ConfigError {
    pub(super) fn receiver(place: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::Receiver {
            place: place.to_owned(),
            problem: problem.into(),
        }
    }
}

/// Why a destination (one integration of a receiver) could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// The HTTP client could not be built (its TLS roots, say).
    #[error("building an HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The email settings cannot make an SMTP transport.
    #[error("email to {to}: {problem}")]
    Email {
        /// The recipients.
        to: String,
        /// What is wrong.
        problem: String,
    },
    /// A forwarding target is not an http(s) URL.
    #[error(transparent)]
    Config(#[from] ConfigError),
}
