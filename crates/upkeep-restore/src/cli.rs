//! The flags and the run of the `restore` binary:
//! `restore PATH [--age-identity FILE] [--only KIND|NAMESPACE ...] [--dry-run] [--mode create|replace]
//! [--volumes [--volume-timeout D] [--check-image IMAGE]]`.
//!
//! Everything that can be wrong with the input (the restore point, the identity, `--only`,
//! encrypted objects without an identity) is found before the cluster is touched: one line,
//! exit 2. The document is printed whenever the restore started; exit 1 when any object
//! failed (or Flux could not be suspended or resumed), 3 when the cluster stopped answering.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde_json::Value;
use upkeep_cli::{CliError, ClusterArgs, ConfigArgs, LogArgs, Outcome, Output};
use upkeep_contract::{RestoreAction, RestoreMode};
use upkeep_kube::{Cluster, ConnectOptions};
use upkeep_snapshot::{Identity, Snapshot, SnapshotError};

use crate::select::{Selection, StoredPath};
use crate::{RestoreError, RestoreOptions};

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Create what is missing; leave existing objects alone.
    Create,
    /// Replace what differs from the restore point (the rollback mode).
    Replace,
}

impl From<Mode> for RestoreMode {
    fn from(m: Mode) -> RestoreMode {
        match m {
            Mode::Create => RestoreMode::Create,
            Mode::Replace => RestoreMode::Replace,
        }
    }
}

/// `-o`: the document is for machines first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DocFormat {
    Json,
    Yaml,
}

#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The restore point: a directory or a .tar.zst archive written by `snapshot create`.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// age identity file (as age-keygen writes it) that opens the restore point's encrypted
    /// objects (Secrets, sensitive ConfigMaps).
    #[arg(long, value_name = "FILE")]
    pub age_identity: Option<PathBuf>,
    /// Restore only these kinds (Deployment, configmaps, helmreleases.helm.toolkit.fluxcd.io)
    /// or namespaces (repeatable or comma-separated; kinds and namespaces narrow each other).
    #[arg(long, value_name = "KIND|NAMESPACE", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Ask the server to check every write without storing it (dryRun=All); Flux is not
    /// suspended, and the document says what would change.
    #[arg(long)]
    pub dry_run: bool,
    /// create: create what is missing, leave existing objects alone; replace: also replace
    /// objects that differ from the restore point (the rollback mode).
    #[arg(long, value_enum, default_value = "create")]
    pub mode: Mode,
    /// Also bring back the Longhorn volumes the restore point recorded (`snapshot create
    /// --longhorn snapshot|backup`): each claim is created from its snapshot or backup (a
    /// claim that exists is replaced only in --mode replace, and never while a running pod
    /// mounts it), then a Job reads every file back and its digest goes in the result.
    #[arg(long)]
    pub volumes: bool,
    /// --volumes: how long each wait (snapshot ready, claim bound, data check) may take.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub volume_timeout: String,
    /// --volumes: the data check's image (needs sh, find, sort, xargs, sha256sum).
    #[arg(
        long,
        value_name = "IMAGE",
        default_value = "docker.io/library/busybox:1.37"
    )]
    pub check_image: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "json")]
    pub output: DocFormat,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
}

fn cli_error(e: RestoreError) -> CliError {
    if e.is_input() {
        CliError::usage(e)
    } else {
        CliError::environment(e)
    }
}

/// The selected objects of the restore point, each with its path, decrypted. Encrypted
/// objects the selection needs and no identity can open are an error before any is read.
pub fn read_objects(
    snapshot: &Snapshot,
    identity: Option<&Identity>,
    only: &[String],
) -> Result<Vec<(String, Value)>, RestoreError> {
    let files = &snapshot.manifest().files;
    let stored: Vec<StoredPath> = files
        .iter()
        .filter_map(|f| StoredPath::parse(&f.path))
        .collect();
    let selection = Selection::parse(only, &stored)?;
    let needed = |path: &str| StoredPath::parse(path).is_some_and(|p| selection.needs(&p, &stored));
    if identity.is_none() {
        let locked: Vec<&str> = files
            .iter()
            .filter(|f| f.encrypted && needed(&f.path))
            .map(|f| f.path.as_str())
            .collect();
        if let Some(first) = locked.first() {
            return Err(RestoreError::NeedsIdentity {
                path: format!("{}/{first}", snapshot.path().display()),
                more: match locked.len() {
                    1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                },
            });
        }
    }
    let mut out = Vec::new();
    for item in snapshot.objects(identity)? {
        match item {
            Ok(o) if needed(&o.path) => out.push((o.path, o.object)),
            Ok(_) => {}
            // Left out by --only (checked above): never opened.
            Err(SnapshotError::NeedsIdentity { path })
                if files
                    .iter()
                    .any(|f| path.ends_with(&format!("/{}", f.path)) && !needed(&f.path)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// The restore point's PersistentVolumes, claims and Longhorn Volumes, whatever `--only`
/// selects: what maps a recorded volume to its claim. None of them is encrypted; an object
/// that is (no identity given) is not one of them.
pub fn volume_sources(
    snapshot: &Snapshot,
    identity: Option<&Identity>,
) -> Result<Vec<Value>, RestoreError> {
    let mut out = Vec::new();
    for item in snapshot.objects(identity)? {
        match item {
            Ok(o) => {
                let (g, k) = crate::order::group_kind(&o.object);
                if matches!(
                    (g, k),
                    ("", "PersistentVolume" | "PersistentVolumeClaim") | ("longhorn.io", "Volume")
                ) {
                    out.push(o.object);
                }
            }
            Err(SnapshotError::NeedsIdentity { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

fn open_identity(path: Option<&Path>) -> Result<Option<Identity>, RestoreError> {
    path.map(Identity::from_file)
        .transpose()
        .map_err(Into::into)
}

/// Runs `restore`.
pub fn run(args: RestoreArgs) -> Result<Outcome, CliError> {
    upkeep_cli::init_logging(&args.log);
    let settings = upkeep_cli::load_settings(&args.config, None, Some(&args.cluster), None)?;
    let snapshot = Snapshot::open(&args.path).map_err(|e| cli_error(e.into()))?;
    let identity = open_identity(args.age_identity.as_deref()).map_err(cli_error)?;
    let stored = read_objects(&snapshot, identity.as_ref(), &args.only).map_err(cli_error)?;
    crate::check_objects(&stored).map_err(cli_error)?;
    let objects: Vec<Value> = stored.into_iter().map(|(_, o)| o).collect();
    let volumes = if args.volumes {
        let timeout = upkeep_config::parse_duration(&args.volume_timeout)
            .map_err(|e| CliError::usage(format!("--volume-timeout: {e}")))?;
        let recorded = snapshot.manifest().volumes.clone();
        if recorded.is_empty() {
            return Err(CliError::usage(format!(
                "--volumes: {} records no Longhorn snapshot or backup (it was taken with --longhorn none); restore without --volumes, or from a restore point taken with --longhorn snapshot|backup",
                snapshot.path().display()
            )));
        }
        Some(crate::volumes::VolumeOptions {
            recorded,
            stored: volume_sources(&snapshot, identity.as_ref()).map_err(cli_error)?,
            check_image: args.check_image.clone(),
            timeout,
        })
    } else {
        None
    };
    tracing::info!(
        "restoring {} objects from {} ({} mode{})",
        objects.len(),
        snapshot.manifest().name,
        match args.mode {
            Mode::Create => "create",
            Mode::Replace => "replace",
        },
        if args.dry_run { ", server dry run" } else { "" }
    );

    let choice = upkeep_cli::cluster_choice(&args.cluster, &settings);
    let connect = ConnectOptions {
        kubeconfig: choice.kubeconfig,
        context: choice.context,
        ..ConnectOptions::default()
    };
    let mut opts = RestoreOptions::new(args.mode.into());
    opts.dry_run = args.dry_run;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::environment(format!("cannot start the async runtime: {e}")))?;
    let name = snapshot.manifest().name.clone();
    let run = upkeep_cli::without_kube_errors(|| {
        runtime.block_on(async {
            let cluster = Cluster::connect(&connect).await?;
            crate::restore_with_volumes(&cluster, &name, objects, &opts, volumes.as_ref()).await
        })
    })
    .map_err(cli_error)?;

    let count = |a: RestoreAction| run.result.objects.iter().filter(|o| o.action == a).count();
    for o in &run.result.objects {
        if o.action == RestoreAction::Failed {
            tracing::error!(
                "{}: {}",
                o.object,
                o.message.as_ref().map(|m| m.as_str()).unwrap_or("failed")
            );
        }
    }
    for v in &run.result.volumes {
        match &v.digest {
            Some(d) => tracing::info!("volume {} as {}: read back, sha256:{d}", v.volume, v.claim),
            None => tracing::info!(
                "volume {} as {}: {}",
                v.volume,
                v.claim,
                v.message.as_ref().map(|m| m.as_str()).unwrap_or("")
            ),
        }
    }
    for e in &run.result.errors {
        tracing::error!("{}", e.message);
    }
    // A dry run suspends nothing: its list is what a real restore would suspend.
    let flux = if run.result.dry_run {
        "Flux objects a restore would suspend and resume"
    } else {
        "Flux objects suspended and resumed"
    };
    tracing::info!(
        "{} created, {} replaced, {} unchanged, {} skipped, {} failed; {} {flux}",
        count(RestoreAction::Created),
        count(RestoreAction::Replaced),
        count(RestoreAction::Unchanged),
        count(RestoreAction::Skipped),
        count(RestoreAction::Failed),
        run.result.suspended.len()
    );
    let mut out = Output::new();
    match args.output {
        DocFormat::Json => out.json_line(&run.result)?,
        DocFormat::Yaml => out.yaml(&run.result)?,
    }
    out.flush()?;
    Ok(if run.stopped.is_some() {
        Outcome::Degraded
    } else if run.has_failures() {
        Outcome::Negative
    } else {
        Outcome::Done
    })
}
