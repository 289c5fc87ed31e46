//! Atomic file writes and run locks for upkeep's state, history and
//! snapshots.
//!
//! A write that matters goes to a temporary file in the same directory, is
//! fsynced, renamed over the target, and the directory is fsynced: a crash
//! or a full disk leaves either the old file or the new one, never half of
//! either. A run holds an exclusive lock on a file in the state directory;
//! a second run is refused with a message saying who holds it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A filesystem operation that failed, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path}: another upkeep run holds the lock ({holder}); wait for it to finish, or remove the file if that process is gone"
    )]
    Locked { path: PathBuf, holder: String },
}

impl FsError {
    fn io(path: &Path, op: &'static str, source: io::Error) -> Self {
        FsError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }

    /// True when the disk is full or the quota is exhausted.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, FsError::Io { source, .. }
            if source.raw_os_error() == Some(28) || source.raw_os_error() == Some(122))
    }
}

/// The name prefix of [`atomic_write`]'s temporary files: a process killed
/// between the write and the rename leaves one behind, which whoever holds
/// the lock next may remove.
pub const TEMP_PREFIX: &str = ".upkeep-tmp-";

/// Writes `bytes` to `path` atomically with the given permission bits
/// (e.g. 0o600 for anything that may hold secrets). On any error the target
/// is untouched and no temporary file is left behind.
pub fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FsError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| FsError::io(dir, "create directory", e))?;
    // tempfile removes the file on drop unless it is persisted, which covers
    // every early return below.
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(|e| FsError::io(dir, "create temporary file", e))?;
    tmp.write_all(bytes)
        .map_err(|e| FsError::io(path, "write", e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| FsError::io(path, "fsync", e))?;
    tmp.persist(path)
        .map_err(|e| FsError::io(path, "rename into place", e.error))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FsError::io(dir, "fsync directory", e))
}

/// An exclusive lock held for the life of a run. Dropping it releases it;
/// so does the process dying, because the kernel drops the lock with the
/// file descriptor, so a killed run never leaves a stale lock behind.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
    previous: Option<String>,
}

impl RunLock {
    /// Takes the lock at `path` or fails at once with [`FsError::Locked`]
    /// naming the holder. `holder` (e.g. "run 20261128-0400 pid 4242") is
    /// written into the file for the next one to read.
    pub fn acquire(path: &Path, holder: &str) -> Result<RunLock, FsError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| FsError::io(dir, "create directory", e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| FsError::io(path, "open lock file", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut who = String::new();
                let _ = file.read_to_string(&mut who);
                let who = who.trim();
                return Err(FsError::Locked {
                    path: path.to_path_buf(),
                    holder: if who.is_empty() {
                        "unknown holder".into()
                    } else {
                        who.to_string()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(FsError::io(path, "lock", e)),
        }
        // A holder that ended cleanly cleared the file; one still named
        // here was killed while it held the lock.
        let mut previous = String::new();
        let _ = file.read_to_string(&mut previous);
        let previous = Some(previous.trim().to_string()).filter(|p| !p.is_empty());
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(holder.as_bytes()))
            .and_then(|_| file.sync_all())
            .map_err(|e| FsError::io(path, "record lock holder", e))?;
        Ok(RunLock {
            file,
            path: path.to_path_buf(),
            previous,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The holder a killed process left in the file (it never released the
    /// lock, which clears it); `None` after a clean release.
    pub fn previous_holder(&self) -> Option<&str> {
        self.previous.as_deref()
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Clearing the holder first means a reader never sees a released
        // lock that still names a finished run.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(".upkeep-tmp-"))
            .collect()
    }

    #[test]
    fn atomic_write_replaces_whole_file_with_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state/run.json");
        atomic_write(&p, b"first", 0o600).unwrap();
        atomic_write(&p, b"second, longer", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second, longer");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(leftovers(p.parent().unwrap()).is_empty());
    }

    #[test]
    fn failed_write_leaves_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("target");
        atomic_write(&p, b"old", 0o644).unwrap();
        // Renaming a file over a directory fails after the temp file is written.
        let blocker = dir.path().join("blocker");
        std::fs::create_dir(&blocker).unwrap();
        std::fs::write(blocker.join("x"), b"x").unwrap();
        let err = atomic_write(&blocker, b"new", 0o600).unwrap_err();
        assert!(err.to_string().contains("rename into place"), "{err}");
        assert!(leftovers(dir.path()).is_empty(), "temp file removed");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
    }

    #[test]
    fn second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("upkeep.lock");
        let first = RunLock::acquire(&p, "run r1 pid 1").unwrap();
        let err = RunLock::acquire(&p, "run r2 pid 2").unwrap_err();
        assert!(matches!(err, FsError::Locked { .. }));
        assert!(
            err.to_string()
                .contains("another upkeep run holds the lock (run r1 pid 1)"),
            "{err}"
        );
        drop(first);
        let again = RunLock::acquire(&p, "run r3 pid 3").unwrap();
        assert_eq!(
            std::fs::read_to_string(again.path()).unwrap(),
            "run r3 pid 3"
        );
        // A clean release leaves no holder behind.
        assert_eq!(again.previous_holder(), None);
        drop(again);
        // A killed holder's name stays in the file (the kernel drops the
        // lock but nothing clears the file): the next one learns it.
        std::fs::write(&p, "run r4 (pid 4)").unwrap();
        let next = RunLock::acquire(&p, "run r5 pid 5").unwrap();
        assert_eq!(next.previous_holder(), Some("run r4 (pid 4)"));
    }

    #[test]
    fn disk_full_is_recognised() {
        let e = FsError::io(Path::new("/x"), "write", io::Error::from_raw_os_error(28));
        assert!(e.is_disk_full());
        let e = FsError::io(Path::new("/x"), "write", io::Error::from_raw_os_error(13));
        assert!(!e.is_disk_full());
    }
}
