//! The GitOps repository, through the `git` CLI.
//!
//! gix has no push or revert, and shelling out to git is what jj does too;
//! it also means the operator's own git configuration (signing, hooks,
//! credentials helpers) applies to our commits exactly as to theirs. Every
//! call runs with a clean environment for git's own variables, a timeout,
//! no terminal prompt, and its stderr captured into the error.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A git command that failed, with what git said.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{dir}: not a git repository")]
    NotARepo { dir: PathBuf },
    #[error("{dir}: git {args}: {stderr}")]
    Failed {
        dir: PathBuf,
        args: String,
        stderr: String,
    },
    #[error("{dir}: git {args}: no answer after {secs} s")]
    Timeout {
        dir: PathBuf,
        args: String,
        secs: u64,
    },
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    #[error(
        "{dir}: the working tree has uncommitted changes in {files}; commit or stash them first"
    )]
    Dirty { dir: PathBuf, files: String },
}

/// Where a repository stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoState {
    pub head: String,
    /// `None` on a detached HEAD.
    pub branch: Option<String>,
    /// The URL of `origin`, when there is one.
    pub remote: Option<String>,
    /// Paths with uncommitted changes (tracked or not).
    pub dirty: Vec<String>,
}

/// The most of a git command's output read (a diff or a log).
const MAX_OUTPUT: u64 = 64 * 1024 * 1024;

/// A GitOps checkout.
#[derive(Debug, Clone)]
pub struct Repo {
    dir: PathBuf,
    timeout: Duration,
}

impl Repo {
    /// Opens the repository that contains `dir`.
    pub fn open(dir: &Path) -> Result<Repo, GitError> {
        let probe = Repo {
            dir: dir.to_path_buf(),
            timeout: Duration::from_secs(60),
        };
        let top = probe
            .git(&["rev-parse", "--show-toplevel"])
            .map_err(|_| GitError::NotARepo {
                dir: dir.to_path_buf(),
            })?;
        Ok(Repo {
            dir: PathBuf::from(top.trim()),
            timeout: probe.timeout,
        })
    }

    /// The repository's top directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Longest a single git command may take (pushes to a slow remote).
    pub fn with_timeout(mut self, t: Duration) -> Repo {
        self.timeout = t;
        self
    }

    fn git(&self, args: &[&str]) -> Result<String, GitError> {
        use std::io::Read;
        let mut child = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            // Never wait for a password on a terminal nobody is watching.
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(GitError::Spawn)?;
        // Drained while git runs: a full pipe would block git until the timeout.
        let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(r) = r {
                    let _ = r.take(MAX_OUTPUT).read_to_end(&mut buf);
                }
                buf
            })
        };
        let stdout = drain(
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
        );
        let stderr = drain(
            child
                .stderr
                .take()
                .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
        );
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait().map_err(GitError::Spawn)? {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let _ = (stdout.join(), stderr.join());
                    return Err(GitError::Timeout {
                        dir: self.dir.clone(),
                        args: args.join(" "),
                        secs: self.timeout.as_secs(),
                    });
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let out = std::process::Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        };
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(GitError::Failed {
                dir: self.dir.clone(),
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            })
        }
    }

    pub fn state(&self) -> Result<RepoState, GitError> {
        let head = self.git(&["rev-parse", "HEAD"])?.trim().to_string();
        let branch = self
            .git(&["symbolic-ref", "--quiet", "--short", "HEAD"])
            .ok()
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty());
        let remote = self
            .git(&["remote", "get-url", "origin"])
            .ok()
            .map(|r| r.trim().to_string());
        let dirty = self
            .git(&["status", "--porcelain=v1", "-z"])?
            .split('\0')
            .filter(|l| l.len() > 3)
            .map(|l| l[3..].to_string())
            .collect();
        Ok(RepoState {
            head,
            branch,
            remote,
            dirty,
        })
    }

    /// Removes the temporary files an atomic write of ours left in the
    /// working tree when its process was killed before the rename
    /// (untracked `.upkeep-tmp-*`): they are never the operator's, and left
    /// there they make the tree dirty, so no update could go in again.
    /// Returns the paths removed.
    pub fn remove_upkeep_leftovers(&self) -> Result<Vec<String>, GitError> {
        let mut removed = Vec::new();
        for entry in self
            .git(&["status", "--porcelain=v1", "-z", "--untracked-files=all"])?
            .split('\0')
        {
            let Some(path) = entry.strip_prefix("?? ") else {
                continue;
            };
            let name = path.rsplit('/').next().unwrap_or(path);
            if name.starts_with(upkeep_fs::TEMP_PREFIX) {
                match std::fs::remove_file(self.dir.join(path)) {
                    Ok(()) => removed.push(path.to_string()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(GitError::Failed {
                            dir: self.dir.clone(),
                            args: format!("(remove {path})"),
                            stderr: e.to_string(),
                        });
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Commits exactly `paths` (relative to the top) with `message`. Refuses
    /// when other files are dirty, so an update commit never sweeps up the
    /// operator's unrelated work. Returns the new commit id.
    pub fn commit_paths(&self, paths: &[&str], message: &str) -> Result<String, GitError> {
        let others: Vec<String> = self
            .state()?
            .dirty
            .into_iter()
            .filter(|d| !paths.contains(&d.as_str()))
            .collect();
        if !others.is_empty() {
            return Err(GitError::Dirty {
                dir: self.dir.clone(),
                files: others.join(", "),
            });
        }
        let mut add = vec!["add", "--"];
        add.extend_from_slice(paths);
        self.git(&add)?;
        let mut commit = vec!["commit", "--quiet", "-m", message, "--"];
        commit.extend_from_slice(paths);
        self.git(&commit)?;
        Ok(self.git(&["rev-parse", "HEAD"])?.trim().to_string())
    }

    /// Reverts `commit` with a new commit (the GitOps way back). Returns the
    /// revert commit's id.
    pub fn revert(&self, commit: &str, message: &str) -> Result<String, GitError> {
        if let Err(e) = self.git(&["revert", "--no-edit", "--no-commit", commit]) {
            // A conflicting revert leaves a half-applied tree: undo it.
            let _ = self.git(&["revert", "--abort"]);
            return Err(e);
        }
        if let Err(e) = self.git(&["commit", "--quiet", "-m", message]) {
            // Leave the tree as it was rather than half-reverted.
            let _ = self.git(&["revert", "--abort"]);
            return Err(e);
        }
        Ok(self.git(&["rev-parse", "HEAD"])?.trim().to_string())
    }

    /// Fetches `origin` (to learn of commits pushed by others).
    pub fn fetch(&self) -> Result<(), GitError> {
        self.git(&["fetch", "--quiet", "origin"]).map(|_| ())
    }

    /// Whether the commit is in the local repository.
    pub fn has_commit(&self, id: &str) -> bool {
        self.git(&["cat-file", "-e", &format!("{id}^{{commit}}")])
            .is_ok()
    }

    /// Whether `ancestor` is in the history of `descendant` (both known
    /// locally; an unknown id is `false`, not an error).
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool {
        self.git(&["merge-base", ancestor, descendant])
            .is_ok_and(|base| base.trim() == ancestor)
    }

    /// Pushes the current branch to `origin`.
    pub fn push(&self) -> Result<(), GitError> {
        self.git(&["push", "--quiet", "origin", "HEAD"]).map(|_| ())
    }

    /// The newest `n` commits of HEAD's history: (id, the message's trailers,
    /// `Key: value` lines).
    pub fn trailers(&self, n: usize) -> Result<Vec<(String, String)>, GitError> {
        let count = format!("-n{n}");
        // Only the trailers: whole bodies (long bot commit messages) are not needed.
        let out = self.git(&["log", &count, "--format=%H%x1f%(trailers:unfold)%x1e"])?;
        Ok(out
            .split('\u{1e}')
            .filter_map(|entry| {
                let (id, body) = entry.trim_start().split_once('\u{1f}')?;
                Some((id.to_string(), body.trim_end().to_string()))
            })
            .collect())
    }

    /// The paths a commit changed.
    pub fn changed_paths(&self, commit: &str) -> Result<Vec<String>, GitError> {
        Ok(self
            .git(&["show", "--pretty=format:", "--name-only", commit])?
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// The unified diff of a commit (for showing and for proving minimal edits).
    pub fn diff(&self, commit: &str) -> Result<String, GitError> {
        self.git(&["show", "--pretty=format:", "--unified=0", commit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    }

    fn repo() -> (tempfile::TempDir, Repo) {
        let d = tempfile::tempdir().unwrap();
        sh(d.path(), &["init", "-q", "-b", "main"]);
        sh(d.path(), &["config", "user.email", "t@example.invalid"]);
        sh(d.path(), &["config", "user.name", "test"]);
        std::fs::create_dir_all(d.path().join("apps")).unwrap();
        std::fs::write(d.path().join("apps/hr.yaml"), "version: 1.0.0\n").unwrap();
        sh(d.path(), &["add", "."]);
        sh(d.path(), &["commit", "-q", "-m", "init"]);
        let r = Repo::open(&d.path().join("apps")).unwrap();
        (d, r)
    }

    #[test]
    fn state_commit_revert_round_trip() {
        let (d, r) = repo();
        let s = r.state().unwrap();
        assert_eq!(s.branch.as_deref(), Some("main"));
        assert!(s.dirty.is_empty() && s.remote.is_none());
        std::fs::write(d.path().join("apps/hr.yaml"), "version: 1.1.0\n").unwrap();
        assert_eq!(r.state().unwrap().dirty, vec!["apps/hr.yaml".to_string()]);
        let c = r
            .commit_paths(
                &["apps/hr.yaml"],
                "upkeep: chart x 1.0.0 -> 1.1.0\n\nrun: r1",
            )
            .unwrap();
        assert_eq!(
            r.changed_paths(&c).unwrap(),
            vec!["apps/hr.yaml".to_string()]
        );
        assert!(r.diff(&c).unwrap().contains("+version: 1.1.0"));
        let rv = r.revert(&c, "upkeep: roll back chart x").unwrap();
        assert_ne!(rv, c);
        assert_eq!(
            std::fs::read_to_string(d.path().join("apps/hr.yaml")).unwrap(),
            "version: 1.0.0\n"
        );
        assert!(r.state().unwrap().dirty.is_empty());
    }

    #[test]
    fn trailers_are_read_back_newest_first() {
        let (d, r) = repo();
        std::fs::write(d.path().join("apps/hr.yaml"), "version: 1.1.0\n").unwrap();
        let c = r
            .commit_paths(
                &["apps/hr.yaml"],
                "subject\n\nUpkeep-Run: r1\nUpkeep-To: 1.1.0",
            )
            .unwrap();
        let m = r.trailers(5).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].0, c);
        assert_eq!(m[0].1, "Upkeep-Run: r1\nUpkeep-To: 1.1.0");
        assert_eq!(m[1].1, "");
    }

    #[test]
    fn only_our_untracked_temporary_files_are_removed() {
        let (d, r) = repo();
        let ours = d.path().join("apps/.upkeep-tmp-Ab12Cd");
        std::fs::write(&ours, "half a file").unwrap();
        std::fs::write(d.path().join("notes.txt"), "mine").unwrap();
        std::fs::write(d.path().join("apps/hr.yaml"), "version: 1.1.0\n").unwrap();
        assert_eq!(
            r.remove_upkeep_leftovers().unwrap(),
            ["apps/.upkeep-tmp-Ab12Cd"]
        );
        assert!(!ours.exists());
        let mut dirty = r.state().unwrap().dirty;
        dirty.sort();
        assert_eq!(dirty, ["apps/hr.yaml", "notes.txt"]);
        assert!(r.remove_upkeep_leftovers().unwrap().is_empty());
    }

    #[test]
    fn unrelated_dirty_files_block_the_commit() {
        let (d, r) = repo();
        std::fs::write(d.path().join("apps/hr.yaml"), "version: 1.1.0\n").unwrap();
        std::fs::write(d.path().join("notes.txt"), "mine").unwrap();
        let e = r.commit_paths(&["apps/hr.yaml"], "m").unwrap_err();
        assert!(
            e.to_string().contains("uncommitted changes in notes.txt"),
            "{e}"
        );
    }

    #[test]
    fn push_to_a_bare_remote_and_errors_name_the_command() {
        let (_d, r) = repo();
        let bare = tempfile::tempdir().unwrap();
        sh(bare.path(), &["init", "-q", "--bare"]);
        sh(
            r.dir(),
            &["remote", "add", "origin", bare.path().to_str().unwrap()],
        );
        r.push().unwrap();
        assert!(r.state().unwrap().remote.is_some());
        let e = r
            .revert("0000000000000000000000000000000000000000", "m")
            .unwrap_err();
        assert!(e.to_string().contains("git revert"), "{e}");
        let nowhere = tempfile::tempdir().unwrap();
        assert!(matches!(
            Repo::open(nowhere.path()),
            Err(GitError::NotARepo { .. })
        ));
    }
}
