//! Secrets in configuration files (tokens, webhook URLs, passwords): written in place, or read
//! from a file or the environment, and never shown.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

/// A secret in `vigil.yaml`: written in place, or read from a file (`{file: PATH}`, its
/// content without the final newline) or the environment (`{env: NAME}`) when the file is
/// read. It prints as `<secret>` wherever the configuration is shown.
///
/// An `alertmanager.yml`'s `*_file` secrets are read again at each use, as Alertmanager reads
/// them, so a rotated file takes effect without a reload and a file missing at start-up fails
/// only the sends that need it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
    file: Option<PathBuf>,
}

impl Secret {
    /// A secret from its value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret {
            value: value.into(),
            file: None,
        }
    }

    /// A secret kept in a file, read now if it can be and again at each [`Secret::current`].
    pub fn from_file(path: &Path) -> Secret {
        Secret {
            value: read_file(path).unwrap_or_default(),
            file: Some(path.to_owned()),
        }
    }

    /// The secret as read when the configuration was.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The secret now: its file read again if it has one.
    pub fn current(&self) -> Result<Cow<'_, str>, SecretError> {
        match &self.file {
            None => Ok(Cow::Borrowed(&self.value)),
            Some(path) => read_file(path).map(Cow::Owned).map_err(|source| SecretError {
                path: path.clone(),
                source,
            }),
        }
    }
}

/// A secret's file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading the secret in {}: {source}", path.display())]
pub struct SecretError {
    /// The file.
    pub path: PathBuf,
    /// Why it could not be read.
    pub source: std::io::Error,
}

fn read_file(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path).map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, deny_unknown_fields)]
        enum Source {
            Inline(String),
            File { file: PathBuf },
            Env { env: String },
        }
        use serde::de::Error;
        let value = match Source::deserialize(d)? {
            Source::Inline(s) => s,
            Source::File { file } => std::fs::read_to_string(&file)
                .map_err(|e| D::Error::custom(format!("reading the secret in {}: {e}", file.display())))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
            Source::Env { env } => std::env::var(&env)
                .map_err(|_| D::Error::custom(format!("the environment variable {env} holding a secret is not set")))?,
        };
        if value.is_empty() {
            return Err(D::Error::custom("a secret may not be empty"));
        }
        Ok(Secret::new(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        url: Secret,
    }

    #[test]
    fn secrets_come_inline_from_files_or_the_environment_and_never_show() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("slack.url");
        std::fs::write(&file, "https://hooks.example.com/T0/B0/filed\n").expect("write");
        let cases = [
            ("url: https://hooks.example.com/T0/B0/inline".to_owned(), "inline"),
            (format!("url: {{ file: {} }}", file.display()), "filed"),
        ];
        for (yaml, tail) in cases {
            let h: Holder = serde_yaml_ng::from_str(&yaml).expect("parses");
            assert_eq!(h.url.expose(), format!("https://hooks.example.com/T0/B0/{tail}"));
            assert_eq!(format!("{h:?}"), "Holder { url: <secret> }");
        }
        // From the environment (PATH is set wherever tests run).
        let h: Holder = serde_yaml_ng::from_str("url: { env: PATH }").expect("parses");
        assert_eq!(Some(h.url.expose().to_owned()), std::env::var("PATH").ok());
        assert_eq!(format!("{h:?}"), "Holder { url: <secret> }");
        let e = serde_yaml_ng::from_str::<Holder>("url: { env: VIGIL_TEST_NOT_SET }").expect_err("unset");
        assert!(e.to_string().contains("VIGIL_TEST_NOT_SET"), "{e}");
        let e = serde_yaml_ng::from_str::<Holder>("url: { file: /nonexistent/secret }").expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/secret"), "{e}");
    }
}
