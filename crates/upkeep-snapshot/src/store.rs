//! Restore points kept in one directory: listed newest first, pruned to
//! the newest N.

use std::path::{Path, PathBuf};

use upkeep_contract::Timestamp;

use crate::SnapshotError;
use crate::read::Snapshot;

/// A restore point found in a directory.
#[derive(Debug, Clone)]
pub struct RestorePoint {
    pub path: PathBuf,
    pub name: String,
    pub created_at: Timestamp,
    pub files: usize,
    pub encrypted: usize,
    pub volumes: usize,
}

/// Every restore point directly under `dir`, newest first. Entries that are
/// not restore points (or are being written: `.partial-`) are ignored;
/// a damaged one is listed by `verify`, not here.
pub fn list(dir: &Path) -> Result<Vec<RestorePoint>, SnapshotError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        SnapshotError::input(dir.display().to_string(), format!("cannot list: {e}"))
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| SnapshotError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(snap) = Snapshot::open(&entry.path()) else {
            continue;
        };
        let m = snap.manifest();
        out.push(RestorePoint {
            path: entry.path(),
            name: m.name.clone(),
            created_at: m.created_at,
            files: m.files.len(),
            encrypted: m.files.iter().filter(|f| f.encrypted).count(),
            volumes: m.volumes.len(),
        });
    }
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.name.cmp(&a.name)));
    Ok(out)
}

/// Removes all but the newest `keep` restore points under `dir` (or, with
/// `dry_run`, only says which) and returns the ones removed.
pub fn prune(dir: &Path, keep: usize, dry_run: bool) -> Result<Vec<RestorePoint>, SnapshotError> {
    if keep == 0 {
        return Err(SnapshotError::input(
            "--keep",
            "must be at least 1: pruning every restore point leaves no way back",
        ));
    }
    let all = list(dir)?;
    let gone: Vec<RestorePoint> = all.into_iter().skip(keep).collect();
    if !dry_run {
        for p in &gone {
            let r = if p.path.is_dir() {
                std::fs::remove_dir_all(&p.path)
            } else {
                std::fs::remove_file(&p.path)
            };
            r.map_err(|e| SnapshotError::io(&p.path, e))?;
        }
    }
    Ok(gone)
}
