//! Writing a restore point: a directory or a `.tar.zst` archive, built
//! under a temporary name next to the final path and renamed into place
//! only when complete, so an interrupted run leaves nothing that looks like
//! a restore point.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use upkeep_contract::{SnapshotFile, SnapshotManifest};

use crate::SnapshotError;
use crate::layout::MANIFEST;

type Archive = tar::Builder<zstd::Encoder<'static, BufWriter<File>>>;

pub(crate) enum Sink {
    Dir {
        tmp: tempfile::TempDir,
        out: PathBuf,
    },
    Archive {
        builder: Box<Archive>,
        tmp: tempfile::TempPath,
        out: PathBuf,
        mtime: u64,
    },
}

/// A `.tar.zst` (or `.tzst`) path is an archive; anything else a directory.
pub(crate) fn is_archive(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".tar.zst") || name.ends_with(".tzst")
}

impl Sink {
    pub(crate) fn create(out: &Path, mtime: u64) -> Result<Sink, SnapshotError> {
        if out.exists() {
            return Err(SnapshotError::input(
                out.display().to_string(),
                "already exists; a restore point is never overwritten",
            ));
        }
        let name = out
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| SnapshotError::input(out.display().to_string(), "no file name"))?;
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            return Err(SnapshotError::input(
                out.display().to_string(),
                format!("directory {} does not exist", parent.display()),
            ));
        }
        let prefix = format!(".{name}.partial-");
        if is_archive(out) {
            let file = tempfile::Builder::new()
                .prefix(&prefix)
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .tempfile_in(&parent)
                .map_err(|e| SnapshotError::io(&parent, e))?;
            let (file, tmp) = file.into_parts();
            let enc = zstd::Encoder::new(BufWriter::new(file), 3)
                .map_err(|e| SnapshotError::io(&tmp, e))?;
            let mut builder = tar::Builder::new(enc);
            builder.mode(tar::HeaderMode::Deterministic);
            Ok(Sink::Archive {
                builder: Box::new(builder),
                tmp,
                out: out.to_path_buf(),
                mtime,
            })
        } else {
            let tmp = tempfile::Builder::new()
                .prefix(&prefix)
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .tempdir_in(&parent)
                .map_err(|e| SnapshotError::io(&parent, e))?;
            Ok(Sink::Dir {
                tmp,
                out: out.to_path_buf(),
            })
        }
    }

    /// Adds one file and returns its manifest entry.
    pub(crate) fn add(
        &mut self,
        path: &str,
        bytes: &[u8],
        encrypted: bool,
    ) -> Result<SnapshotFile, SnapshotError> {
        self.put(path, bytes)?;
        Ok(SnapshotFile {
            path: path.to_string(),
            sha256: hex::encode(Sha256::digest(bytes)),
            size: bytes.len() as u64,
            encrypted,
        })
    }

    fn put(&mut self, path: &str, bytes: &[u8]) -> Result<(), SnapshotError> {
        match self {
            Sink::Dir { tmp, .. } => {
                let full = tmp.path().join(path);
                if let Some(dir) = full.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(|e| SnapshotError::io(dir, e))?;
                }
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&full)
                    .map_err(|e| SnapshotError::io(&full, e))?;
                f.write_all(bytes).map_err(|e| SnapshotError::io(&full, e))
            }
            Sink::Archive {
                builder,
                tmp,
                mtime,
                ..
            } => {
                let mut h = tar::Header::new_gnu();
                h.set_size(bytes.len() as u64);
                h.set_mode(0o600);
                h.set_mtime(*mtime);
                h.set_entry_type(tar::EntryType::Regular);
                builder
                    .append_data(&mut h, path, bytes)
                    .map_err(|e| SnapshotError::io(&**tmp, e))
            }
        }
    }

    /// Writes the manifest last and moves the restore point into place.
    pub(crate) fn finish(mut self, manifest: &SnapshotManifest) -> Result<PathBuf, SnapshotError> {
        let text = serde_json::to_vec_pretty(manifest)
            .map_err(|e| SnapshotError::input("manifest", e.to_string()))?;
        self.put(MANIFEST, &text)?;
        match self {
            Sink::Dir { tmp, out } => {
                let tmp = tmp.keep();
                if let Err(e) = std::fs::rename(&tmp, &out) {
                    let _ = std::fs::remove_dir_all(&tmp);
                    return Err(SnapshotError::io(&out, e));
                }
                Ok(out)
            }
            Sink::Archive {
                builder, tmp, out, ..
            } => {
                let enc = builder
                    .into_inner()
                    .map_err(|e| SnapshotError::io(&*tmp, e))?;
                let mut w = enc.finish().map_err(|e| SnapshotError::io(&*tmp, e))?;
                w.flush().map_err(|e| SnapshotError::io(&*tmp, e))?;
                let file = w
                    .into_inner()
                    .map_err(|e| SnapshotError::io(&*tmp, e.into_error()))?;
                file.sync_all().map_err(|e| SnapshotError::io(&*tmp, e))?;
                drop(file);
                // No clobbering: an archive that appeared meanwhile stays.
                std::fs::hard_link(&tmp, &out).map_err(|e| SnapshotError::io(&out, e))?;
                drop(tmp);
                Ok(out)
            }
        }
    }
}
