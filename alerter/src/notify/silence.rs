//! Silences, as Alertmanager keeps them: matchers and a time range that mute every alert they
//! match while active. Pending until `starts_at`, active until `ends_at`, then expired and kept
//! for five days so they can be looked up. Durable: `<data_dir>/notify/silences.json`, rewritten
//! (write, sync, rename) on every change.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_tsdb::{Labels, Timestamp};

use super::matcher::{MatchType, Matcher};

/// How long expired silences are kept (Alertmanager's default data retention).
pub const RETENTION_MS: i64 = 120 * 3600 * 1000;

/// A silence's matcher as the API writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    /// Label name.
    pub name: String,
    /// Value or regex.
    pub value: String,
    /// Whether `value` is a regex.
    pub is_regex: bool,
    /// Whether it must match (false: must not). Default true.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl SilenceMatcher {
    fn compile(&self) -> Result<Matcher, SilenceError> {
        let kind = match (self.is_regex, self.is_equal) {
            (false, true) => MatchType::Equal,
            (false, false) => MatchType::NotEqual,
            (true, true) => MatchType::Regex,
            (true, false) => MatchType::NotRegex,
        };
        let valid_name = !self.name.is_empty()
            && self
                .name
                .char_indices()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if !valid_name {
            return Err(SilenceError::Invalid(format!("invalid label name {:?}", self.name)));
        }
        Matcher::new(self.name.clone(), kind, self.value.clone()).map_err(|e| SilenceError::Invalid(e.0))
    }
}

/// A silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    /// Its id (a UUID), empty when creating one.
    #[serde(default)]
    pub id: String,
    /// What it mutes: alerts matching all of these.
    pub matchers: Vec<SilenceMatcher>,
    /// From (ms).
    pub starts_at: Timestamp,
    /// Until (ms).
    pub ends_at: Timestamp,
    /// Last change (ms).
    #[serde(default)]
    pub updated_at: Timestamp,
    /// Who.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// `pending`, `active` or `expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SilenceState {
    /// Not started yet.
    Pending,
    /// Muting.
    Active,
    /// Over.
    Expired,
}

impl SilenceState {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

impl Silence {
    /// Its state at `now`.
    pub fn state(&self, now: Timestamp) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }
}

/// Why a silence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    /// No such silence.
    #[error("silence {0} not found")]
    NotFound(String),
    /// A bad silence.
    #[error("{0}")]
    Invalid(String),
    /// The file could not be written.
    #[error("saving silences: {0}")]
    Io(String),
}

#[derive(Debug, Clone)]
struct Entry {
    silence: Silence,
    matchers: Vec<Matcher>,
}

/// All silences.
#[derive(Debug, Default)]
pub struct Silences {
    entries: BTreeMap<String, Entry>,
    path: Option<PathBuf>,
}

impl Silences {
    /// Reads the silences at `path` (or keeps them in memory only).
    pub fn open(path: Option<&Path>) -> std::io::Result<Silences> {
        let mut s = Silences {
            entries: BTreeMap::new(),
            path: path.map(Path::to_owned),
        };
        let Some(path) = path else { return Ok(s) };
        let list: Vec<Silence> = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        for silence in list {
            match compile(&silence) {
                Ok(matchers) => {
                    s.entries.insert(silence.id.clone(), Entry { silence, matchers });
                }
                Err(e) => tracing::error!(id = %silence.id, error = %e, "a stored silence is invalid; dropped"),
            }
        }
        Ok(s)
    }

    /// Creates a silence, or updates the one with its id: in place where Alertmanager would
    /// (same matchers; a pending one keeps a future start, an active one its start), else by
    /// expiring it and creating a new one. Returns the id.
    pub fn set(&mut self, mut silence: Silence, now: Timestamp) -> Result<String, SilenceError> {
        let matchers = compile(&silence)?;
        if silence.ends_at <= silence.starts_at {
            return Err(SilenceError::Invalid("start time must be before end time".into()));
        }
        if silence.ends_at < now {
            return Err(SilenceError::Invalid("end time can't be in the past".into()));
        }
        if !silence.id.is_empty() {
            let prev = self
                .entries
                .get(&silence.id)
                .map(|e| e.silence.clone())
                .ok_or_else(|| SilenceError::NotFound(silence.id.clone()))?;
            if can_update(&prev, &silence, now) {
                silence.updated_at = now;
                let id = silence.id.clone();
                self.entries.insert(id.clone(), Entry { silence, matchers });
                self.save()?;
                return Ok(id);
            }
            if prev.state(now) != SilenceState::Expired {
                self.expire_entry(&prev.id, now);
            }
        }
        silence.id = uuid::Uuid::new_v4().to_string();
        silence.starts_at = silence.starts_at.max(now);
        silence.updated_at = now;
        let id = silence.id.clone();
        self.entries.insert(id.clone(), Entry { silence, matchers });
        self.save()?;
        Ok(id)
    }

    /// Ends a silence now.
    pub fn expire(&mut self, id: &str, now: Timestamp) -> Result<(), SilenceError> {
        let state = self
            .entries
            .get(id)
            .map(|e| e.silence.state(now))
            .ok_or_else(|| SilenceError::NotFound(id.to_owned()))?;
        // Expiring an expired silence changes nothing and is no error (Alertmanager 0.25).
        if state == SilenceState::Expired {
            return Ok(());
        }
        self.expire_entry(id, now);
        self.save()
    }

    fn expire_entry(&mut self, id: &str, now: Timestamp) {
        if let Some(e) = self.entries.get_mut(id) {
            if e.silence.state(now) == SilenceState::Pending {
                e.silence.starts_at = now;
            }
            e.silence.ends_at = now;
            e.silence.updated_at = now;
        }
    }

    /// One silence.
    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.entries.get(id).map(|e| &e.silence)
    }

    /// Every silence.
    pub fn all(&self) -> impl Iterator<Item = &Silence> {
        self.entries.values().map(|e| &e.silence)
    }

    /// Ids of the active silences that mute `labels`.
    pub fn silenced_by(&self, labels: &Labels, now: Timestamp) -> Vec<String> {
        self.entries
            .values()
            .filter(|e| e.silence.state(now) == SilenceState::Active && e.matchers.iter().all(|m| m.matches(labels)))
            .map(|e| e.silence.id.clone())
            .collect()
    }

    /// Drops silences expired for longer than the retention; returns how many.
    pub fn gc(&mut self, now: Timestamp) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| now - e.silence.ends_at <= RETENTION_MS);
        let dropped = before - self.entries.len();
        if dropped > 0
            && let Err(e) = self.save()
        {
            tracing::error!(error = %e, "saving silences after clean-up failed");
        }
        dropped
    }

    /// Counts by state.
    pub fn counts(&self, now: Timestamp) -> [(SilenceState, usize); 3] {
        let n = |s: SilenceState| self.entries.values().filter(|e| e.silence.state(now) == s).count();
        [
            (SilenceState::Active, n(SilenceState::Active)),
            (SilenceState::Pending, n(SilenceState::Pending)),
            (SilenceState::Expired, n(SilenceState::Expired)),
        ]
    }

    fn save(&self) -> Result<(), SilenceError> {
        let Some(path) = &self.path else { return Ok(()) };
        let list: Vec<&Silence> = self.all().collect();
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(&list).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| SilenceError::Io(e.to_string()))
    }
}

fn compile(s: &Silence) -> Result<Vec<Matcher>, SilenceError> {
    if s.matchers.is_empty() {
        return Err(SilenceError::Invalid("at least one matcher required".into()));
    }
    let matchers = s
        .matchers
        .iter()
        .map(SilenceMatcher::compile)
        .collect::<Result<Vec<_>, _>>()?;
    // As Alertmanager checks: only `=` and `=~` matchers can match everything; a silence of
    // `env!="prod"` alone is allowed.
    let matches_empty = |m: &Matcher| matches!(m.kind, MatchType::Equal | MatchType::Regex) && m.matches_value("");
    if matchers.iter().all(matches_empty) {
        return Err(SilenceError::Invalid(
            "at least one matcher must not match the empty string".into(),
        ));
    }
    Ok(matchers)
}

fn can_update(prev: &Silence, next: &Silence, now: Timestamp) -> bool {
    if prev.matchers != next.matchers {
        return false;
    }
    match prev.state(now) {
        // Times compare in whole seconds, as Alertmanager compares them.
        SilenceState::Active => next.starts_at / 1000 == prev.starts_at / 1000 && next.ends_at / 1000 >= now / 1000,
        SilenceState::Pending => next.starts_at / 1000 >= now / 1000,
        SilenceState::Expired => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(value: &str, starts_at: Timestamp, ends_at: Timestamp) -> Silence {
        Silence {
            id: String::new(),
            matchers: vec![SilenceMatcher {
                name: "service".into(),
                value: value.into(),
                is_regex: false,
                is_equal: true,
            }],
            starts_at,
            ends_at,
            updated_at: 0,
            created_by: "alice".into(),
            comment: "deploy".into(),
        }
    }

    #[test]
    fn silences_mute_while_active_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("silences.json");
        let mut s = Silences::open(Some(&path)).expect("open");
        let id = s.set(silence("payments", 1_000, 5_000), 1_000).expect("set");
        let pay = Labels::from_pairs([("service", "payments")]);
        assert_eq!(s.silenced_by(&pay, 2_000), vec![id.clone()]);
        assert!(
            s.silenced_by(&Labels::from_pairs([("service", "orders")]), 2_000)
                .is_empty()
        );
        assert!(s.silenced_by(&pay, 5_000).is_empty(), "expired at ends_at");
        let s2 = Silences::open(Some(&path)).expect("reopen");
        assert_eq!(s2.get(&id).map(|x| x.comment.as_str()), Some("deploy"));
    }

    #[test]
    fn updates_and_expiry_follow_alertmanager() {
        let mut s = Silences::open(None).expect("open");
        let id = s.set(silence("payments", 1_000, 5_000), 1_000).expect("set");
        // Extending an active silence keeps its id.
        let mut longer = s.get(&id).expect("there").clone();
        longer.ends_at = 9_000;
        assert_eq!(s.set(longer, 2_000).expect("update"), id);
        // Changing its matchers replaces it.
        let mut other = s.get(&id).expect("there").clone();
        other.matchers[0].value = "orders".into();
        let new_id = s.set(other, 3_000).expect("replace");
        assert_ne!(new_id, id);
        assert_eq!(s.get(&id).map(|x| x.state(3_000)), Some(SilenceState::Expired));
        s.expire(&new_id, 4_000).expect("expire");
        assert_eq!(s.expire(&new_id, 4_000), Ok(()), "expiring twice is no error");
        assert!(matches!(s.expire("nope", 4_000), Err(SilenceError::NotFound(_))));
        assert_eq!(s.gc(4_000 + RETENTION_MS + 1), 2);
    }

    #[test]
    fn bad_silences_are_refused() {
        let mut s = Silences::open(None).expect("open");
        let now = 10_000;
        assert!(s.set(silence("x", 5_000, 4_000), now).is_err());
        assert!(s.set(silence("x", 1_000, 2_000), now).is_err(), "ends in the past");
        assert!(s.set(silence("", now, now + 1), now).is_err(), "matches everything");
        let mut not_prod = silence("prod", now, now + 1);
        not_prod.matchers[0].is_equal = false;
        assert!(s.set(not_prod, now).is_ok(), "a negative matcher alone is allowed");
        let mut bad = silence("(", now, now + 1);
        bad.matchers[0].is_regex = true;
        assert!(s.set(bad, now).is_err());
    }
}
