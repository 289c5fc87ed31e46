//! Reading a restore point back: its manifest, its objects (checked against
//! their sha256 and decrypted as they are read), and `verify`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde_json::Value;
use sha2::{Digest, Sha256};
use upkeep_contract::{SnapshotFile, SnapshotManifest};
use upkeep_kube::{Cluster, ClusterRead, ResourceRef};

use crate::SnapshotError;
use crate::crypt::Identity;
use crate::layout::{MANIFEST, is_safe_relative};
use crate::write::is_archive;

/// Largest manifest or single object read: far beyond any real one, small
/// enough that a crafted archive cannot exhaust memory.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// An opened restore point.
pub struct Snapshot {
    path: PathBuf,
    archive: bool,
    manifest: SnapshotManifest,
}

/// One object of a restore point.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub path: String,
    pub encrypted: bool,
    pub object: Value,
}

type Objects<'a> = Box<dyn Iterator<Item = Result<StoredObject, SnapshotError>> + 'a>;

impl Snapshot {
    /// Opens a restore point (a directory or a `.tar.zst` archive) and reads
    /// its manifest.
    pub fn open(path: &Path) -> Result<Snapshot, SnapshotError> {
        let what = path.display().to_string();
        let meta = std::fs::metadata(path)
            .map_err(|e| SnapshotError::input(&what, format!("cannot open: {e}")))?;
        let archive = meta.is_file();
        if archive && !is_archive(path) {
            return Err(SnapshotError::input(
                &what,
                "not a restore point: expected a directory or a .tar.zst archive",
            ));
        }
        let bytes = if archive {
            let mut found = None;
            for_each_entry(path, |name, bytes| {
                if name == MANIFEST {
                    found = Some(bytes);
                }
                Ok(())
            })?;
            found.ok_or_else(|| {
                SnapshotError::corrupt(&what, "no manifest.json in the archive (truncated?)")
            })?
        } else {
            let p = path.join(MANIFEST);
            read_limited(&p).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    SnapshotError::input(&what, "not a restore point: no manifest.json")
                }
                _ => SnapshotError::io(&p, e),
            })?
        };
        let manifest: SnapshotManifest = serde_json::from_slice(&bytes).map_err(|e| {
            SnapshotError::corrupt(
                format!("{what}/{MANIFEST}"),
                format!("line {}, column {}: {e}", e.line(), e.column()),
            )
        })?;
        if let Some(bad) = manifest.files.iter().find(|f| !is_safe_relative(&f.path)) {
            return Err(SnapshotError::corrupt(
                format!("{what}/{MANIFEST}"),
                format!("unsafe file path {:?}", bad.path),
            ));
        }
        Ok(Snapshot {
            path: path.to_path_buf(),
            archive,
            manifest,
        })
    }

    pub fn manifest(&self) -> &SnapshotManifest {
        &self.manifest
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every stored object (the files under `resources/`), in the
    /// manifest's file order, checked against its sha256 and decrypted with
    /// `identity` when encrypted.
    pub fn objects<'a>(
        &'a self,
        identity: Option<&'a Identity>,
    ) -> Result<Objects<'a>, SnapshotError> {
        let it = self.files(identity)?.filter_map(|item| match item {
            Ok(f) if !f.path.starts_with(RESOURCES_PREFIX) => None,
            Ok(f) => Some(parse_object(&self.path, f)),
            Err(e) => Some(Err(e)),
        });
        Ok(Box::new(it))
    }

    /// Every file of the restore point (the manifest aside), checked and
    /// decrypted as [`Snapshot::objects`] does, with its plain bytes.
    fn files<'a>(&'a self, identity: Option<&'a Identity>) -> Result<Files<'a>, SnapshotError> {
        let open = move |f: &SnapshotFile, bytes: Vec<u8>| -> Result<StoredFile, SnapshotError> {
            let shown = format!("{}/{}", self.path.display(), f.path);
            check(f, &bytes, &shown)?;
            let plain = if f.encrypted {
                let Some(id) = identity else {
                    return Err(SnapshotError::NeedsIdentity { path: shown });
                };
                id.decrypt(&shown, &bytes)?
            } else {
                bytes
            };
            Ok(StoredFile {
                path: f.path.clone(),
                encrypted: f.encrypted,
                bytes: plain,
            })
        };
        if !self.archive {
            let it = self.manifest.files.iter().map(move |f| {
                let p = self.path.join(&f.path);
                let bytes = read_limited(&p).map_err(|e| {
                    SnapshotError::corrupt(
                        format!("{}/{}", self.path.display(), f.path),
                        format!("cannot read: {e}"),
                    )
                })?;
                open(f, bytes)
            });
            return Ok(Box::new(it));
        }
        // tar entries borrow their archive; a reader thread hands them over
        // one at a time through a small queue, so memory stays flat.
        let (tx, rx) = mpsc::sync_channel::<Result<(String, Vec<u8>), SnapshotError>>(32);
        let path = self.path.clone();
        std::thread::spawn(move || {
            let r = for_each_entry(&path, |name, bytes| {
                if name == MANIFEST {
                    return Ok(());
                }
                tx.send(Ok((name.to_string(), bytes)))
                    .map_err(|_| SnapshotError::input("reader", "stopped"))
            });
            if let Err(e) = r {
                let _ = tx.send(Err(e));
            }
        });
        let by_path: HashMap<&str, &SnapshotFile> = self
            .manifest
            .files
            .iter()
            .map(|f| (f.path.as_str(), f))
            .collect();
        let mut seen = 0usize;
        let total = self.manifest.files.len();
        let shown = self.path.display().to_string();
        let mut done = false;
        let it = std::iter::from_fn(move || {
            if done {
                return None;
            }
            match rx.recv() {
                Ok(Ok((name, bytes))) => {
                    let Some(f) = by_path.get(name.as_str()) else {
                        done = true;
                        return Some(Err(SnapshotError::corrupt(
                            format!("{shown}/{name}"),
                            "in the archive but not in its manifest",
                        )));
                    };
                    seen += 1;
                    Some(open(f, bytes))
                }
                Ok(Err(e)) => {
                    done = true;
                    Some(Err(e))
                }
                Err(_) => {
                    done = true;
                    (seen != total).then(|| {
                        Err(SnapshotError::corrupt(
                            &shown,
                            format!("{} of {total} files missing from the archive", total - seen),
                        ))
                    })
                }
            }
        });
        Ok(Box::new(it))
    }
}

const RESOURCES_PREFIX: &str = "resources/";

/// A file's plain bytes.
struct StoredFile {
    path: String,
    encrypted: bool,
    bytes: Vec<u8>,
}

type Files<'a> = Box<dyn Iterator<Item = Result<StoredFile, SnapshotError>> + 'a>;

fn parse_object(root: &Path, f: StoredFile) -> Result<StoredObject, SnapshotError> {
    let object = serde_json::from_slice(&f.bytes).map_err(|e| {
        SnapshotError::corrupt(
            format!("{}/{}", root.display(), f.path),
            format!("not JSON: {e}"),
        )
    })?;
    Ok(StoredObject {
        path: f.path,
        encrypted: f.encrypted,
        object,
    })
}

fn check(f: &SnapshotFile, bytes: &[u8], shown: &str) -> Result<(), SnapshotError> {
    if bytes.len() as u64 != f.size {
        return Err(SnapshotError::corrupt(
            shown,
            format!("size {} but the manifest says {}", bytes.len(), f.size),
        ));
    }
    let sum = hex::encode(Sha256::digest(bytes));
    if sum != f.sha256 {
        return Err(SnapshotError::corrupt(
            shown,
            format!("sha256 {sum} but the manifest says {}", f.sha256),
        ));
    }
    Ok(())
}

fn read_limited(p: &Path) -> std::io::Result<Vec<u8>> {
    let f = File::open(p)?;
    let mut out = Vec::new();
    f.take(MAX_FILE_BYTES + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            MAX_FILE_BYTES >> 20
        )));
    }
    Ok(out)
}

/// Reads every entry of a `.tar.zst` in order. A damaged or truncated
/// archive is an error naming the archive and the entry reached.
fn for_each_entry(
    path: &Path,
    mut f: impl FnMut(&str, Vec<u8>) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|e| SnapshotError::io(path, e))?;
    let dec = zstd::Decoder::new(BufReader::new(file))
        .map_err(|e| SnapshotError::corrupt(&shown, format!("not zstd: {e}")))?;
    let mut archive = tar::Archive::new(dec);
    let entries = archive
        .entries()
        .map_err(|e| SnapshotError::corrupt(&shown, format!("not a tar archive: {e}")))?;
    let mut last = String::from("the start");
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            SnapshotError::corrupt(&shown, format!("damaged or truncated after {last}: {e}"))
        })?;
        let name = entry
            .path()
            .map_err(|e| SnapshotError::corrupt(&shown, format!("bad entry name: {e}")))?
            .to_string_lossy()
            .into_owned();
        if !is_safe_relative(&name) {
            return Err(SnapshotError::corrupt(
                &shown,
                format!("unsafe entry name {name:?}"),
            ));
        }
        if entry.size() > MAX_FILE_BYTES {
            return Err(SnapshotError::corrupt(
                format!("{shown}/{name}"),
                format!("larger than {} MiB", MAX_FILE_BYTES >> 20),
            ));
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(|e| {
            SnapshotError::corrupt(
                format!("{shown}/{name}"),
                format!("damaged or truncated: {e}"),
            )
        })?;
        f(&name, bytes)?;
        last = name;
    }
    Ok(())
}

/// What `verify` checks beyond the files themselves.
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// Decrypt the encrypted parts with this, proving the key opens them.
    pub identity: Option<&'a Identity>,
    /// Check that the Longhorn snapshots and backups the manifest records
    /// still exist.
    pub cluster: Option<&'a Cluster>,
}

/// The outcome of `verify`: how much was checked, and every problem found.
#[derive(Debug, Default)]
pub struct Verified {
    pub files: usize,
    pub decrypted: usize,
    pub volumes_checked: usize,
    /// The recorded etcd snapshot is still listed by k3s.
    pub datastore_checked: bool,
    pub problems: Vec<String>,
    /// What could not be checked, and why.
    pub notes: Vec<String>,
}

/// Whether k3s still lists the etcd snapshot (k3s 1.29+ keeps an
/// `ETCDSnapshotFile` per snapshot file); `None` when that cannot be told.
async fn etcd_snapshot_exists(
    cluster: &Cluster,
    d: &upkeep_contract::DatastoreBackup,
) -> Result<Option<bool>, SnapshotError> {
    if d.datastore != "etcd" {
        return Ok(None);
    }
    let res = match cluster
        .resource(&ResourceRef::preferred("k3s.cattle.io", "ETCDSnapshotFile"))
        .await
    {
        Ok(r) => r,
        Err(upkeep_kube::KubeError::NotServed { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let file = d.name.rsplit('/').next().unwrap_or(&d.name);
    let listed: Vec<_> = futures_util::TryStreamExt::try_collect(
        cluster.list(&res, &upkeep_kube::ListOptions::all_namespaces()),
    )
    .await?;
    Ok(Some(listed.iter().any(|o| {
        let at = |p: &str| o.data.pointer(p).and_then(Value::as_str).unwrap_or("");
        at("/spec/snapshotName") == file || at("/spec/location").ends_with(&format!("/{file}"))
    })))
}

/// Checks every file against the manifest (size, sha256, JSON), decrypts
/// the encrypted ones when an identity is given, and looks the recorded
/// Longhorn objects up when a cluster is given.
pub async fn verify(path: &Path, opts: &VerifyOptions<'_>) -> Result<Verified, SnapshotError> {
    let snap = Snapshot::open(path)?;
    let mut out = Verified::default();
    // Without an identity the encrypted parts are checked by sum only.
    for item in snap.files(opts.identity)? {
        let item = item.and_then(|f| {
            if f.path.starts_with(RESOURCES_PREFIX) {
                parse_object(&snap.path, f).map(|o| o.encrypted)
            } else {
                Ok(f.encrypted)
            }
        });
        match item {
            Ok(encrypted) => {
                out.files += 1;
                if encrypted {
                    out.decrypted += 1;
                }
            }
            Err(SnapshotError::NeedsIdentity { .. }) => out.files += 1,
            Err(e) => out.problems.push(e.to_string()),
        }
    }
    if let (Some(cluster), Some(d)) = (opts.cluster, &snap.manifest.datastore) {
        match etcd_snapshot_exists(cluster, d).await? {
            Some(true) => out.datastore_checked = true,
            Some(false) => out.problems.push(format!(
                "{}: the recorded {} snapshot is no longer listed by k3s (ETCDSnapshotFile)",
                d.name, d.datastore
            )),
            None => out.notes.push(format!(
                "{}: not checked ({})",
                d.name,
                if d.datastore == "etcd" {
                    "this k3s serves no ETCDSnapshotFile objects; k3s 1.29+ does"
                } else {
                    "a SQLite backup is a file on the server; check it there"
                }
            )),
        }
    }
    if let Some(cluster) = opts.cluster {
        for v in &snap.manifest.volumes {
            let r = ResourceRef::from_api_version(&v.object.api_version, &v.object.kind);
            let res = cluster.resource(&r).await?;
            match cluster
                .get(&res, v.object.namespace.as_deref(), &v.object.name)
                .await?
            {
                Some(_) => out.volumes_checked += 1,
                None => out.problems.push(format!(
                    "{}: the recorded Longhorn {} of volume {} no longer exists",
                    v.object, v.object.kind, v.volume
                )),
            }
        }
    }
    Ok(out)
}
