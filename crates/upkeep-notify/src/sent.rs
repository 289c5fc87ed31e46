//! What has been sent, kept in `<stateDir>/notify-sent.json`, so a resumed
//! run (a new process that sees the run's record afresh) or a cron job
//! that runs `upkeep notify window` every quarter hour does not say the
//! same thing twice.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// Keys kept; the oldest go first. A run has a handful of events, so this
/// covers months of runs.
const KEEP: usize = 2000;

#[derive(Debug, Clone)]
pub struct SentLog {
    path: PathBuf,
}

impl SentLog {
    pub fn new(state_dir: &Path) -> SentLog {
        SentLog {
            path: state_dir.join("notify-sent.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> BTreeMap<String, String> {
        match std::fs::read(&self.path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(map) => map,
                Err(e) => {
                    // Better a repeated message than none at all.
                    tracing::warn!(
                        "notify: {} is unreadable ({e}); starting it afresh",
                        self.path.display()
                    );
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::warn!("notify: cannot read {}: {e}", self.path.display());
                BTreeMap::new()
            }
        }
    }

    /// The keys sent so far.
    pub fn keys(&self) -> HashSet<String> {
        self.read().into_keys().collect()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.read().contains_key(key)
    }

    /// Records `key` as sent. Read again right before the write, so that a
    /// key another process recorded meanwhile is kept.
    pub fn mark(&self, key: &str) {
        let mut map = self.read();
        map.insert(key.to_string(), jiff::Timestamp::now().to_string());
        if map.len() > KEEP {
            let mut by_age: Vec<(String, String)> = map.into_iter().collect();
            by_age.sort_by(|a, b| b.1.cmp(&a.1));
            by_age.truncate(KEEP);
            map = by_age.into_iter().collect();
        }
        if let Some(dir) = self.path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            tracing::warn!("notify: cannot create {}: {e}", dir.display());
            return;
        }
        let text = match serde_json::to_string_pretty(&map) {
            Ok(t) => t + "\n",
            Err(e) => {
                tracing::warn!("notify: cannot write the sent-events list: {e}");
                return;
            }
        };
        if let Err(e) = upkeep_fs::atomic_write(&self.path, text.as_bytes(), 0o600) {
            tracing::warn!("notify: cannot write {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn marks_survive_a_new_instance_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let log = SentLog::new(dir.path());
        assert!(!log.contains("run/a/started"));
        log.mark("run/a/started");
        log.mark("run/a/step/0/applied");
        let again = SentLog::new(dir.path());
        assert!(again.contains("run/a/started"));
        assert_eq!(again.keys().len(), 2);
        let mode = std::fs::metadata(log.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_corrupt_file_is_started_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let log = SentLog::new(dir.path());
        std::fs::write(log.path(), "{not json").unwrap();
        assert!(log.keys().is_empty());
        log.mark("k");
        assert!(log.contains("k"));
    }
}
