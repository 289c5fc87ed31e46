//! `snapshot`: restore points before every update.
//!
//! `create` writes one (cluster objects, Git and Flux revisions, Longhorn
//! snapshots or backups) and prints its SnapshotManifest; `verify` checks
//! one; `list` and `prune` manage a directory of them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use upkeep_cli::{CliError, ClusterArgs, ConfigArgs, LogArgs, Outcome, Output};
use upkeep_kube::{Cluster, ConnectOptions};
use upkeep_snapshot::{
    CreateOptions, Identity, LonghornMode, Recipients, Scope, SnapshotError, VerifyOptions,
};

/// Restore points: create one before an update, verify it, list and prune them.
#[derive(Debug, Parser)]
#[command(name = "snapshot", version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Capture the cluster into a restore point and print its manifest.
    Create(CreateArgs),
    /// Check a restore point: every checksum, the manifest, the encrypted
    /// parts (with --age-identity) and the recorded Longhorn objects (with a cluster).
    Verify(VerifyArgs),
    /// The restore points in a directory, newest first.
    List(DirArgs),
    /// Remove all but the newest N restore points of a directory.
    Prune(PruneArgs),
    /// Make an age key pair: the identity (secret) into a new 0600 file, the
    /// public key (for --age-recipient) on stdout.
    Keygen(KeygenArgs),
}

#[derive(Debug, clap::Args)]
struct KeygenArgs {
    /// Where to write the identity; never overwritten.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LonghornArg {
    None,
    Snapshot,
    Backup,
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// Where to write it: a directory, or an archive when the name ends in .tar.zst.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// GitOps checkout whose HEAD, branch, remote and dirty state are recorded.
    #[arg(long, value_name = "DIR")]
    gitops: Option<PathBuf>,
    /// What to capture, as a YAML file (namespaces, excludeKinds,
    /// sensitiveConfigMaps, excludeSecrets, includeStatus); flags add to it.
    #[arg(long, value_name = "FILE")]
    scope: Option<PathBuf>,
    /// Only this namespace (repeatable; default: the whole cluster).
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    namespaces: Vec<String>,
    /// age public key (age1...) Secrets are encrypted to (repeatable).
    #[arg(long = "age-recipient", value_name = "KEY")]
    recipients: Vec<String>,
    /// Leave Secrets and sensitive ConfigMaps out instead of encrypting them.
    #[arg(long)]
    exclude_secrets: bool,
    /// A ConfigMap (NAMESPACE/NAME) to encrypt like a Secret (repeatable); ConfigMaps
    /// labelled upkeep.dev/sensitive=true always are.
    #[arg(long = "sensitive-configmap", value_name = "NS/NAME")]
    sensitive_configmaps: Vec<String>,
    /// Keep each object's status too.
    #[arg(long)]
    include_status: bool,
    /// Longhorn volumes: none, an in-cluster snapshot (lost with the volume), or a backup
    /// to the configured backup target.
    #[arg(long, value_enum, default_value = "none")]
    longhorn: LonghornArg,
    /// Save the k3s datastore too (embedded etcd snapshot, or an online SQLite
    /// backup), by a short-lived privileged Job on a server node, with the server
    /// token (encrypted; needs --age-recipient).
    #[arg(long)]
    datastore: bool,
    /// Image of that Job: any image with a shell and chroot (the work runs in the host's root).
    #[arg(
        long,
        value_name = "IMAGE",
        default_value = "docker.io/library/busybox:1.37"
    )]
    datastore_image: String,
    /// How long to wait for the datastore Job.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    datastore_timeout: String,
    /// How long to wait for each Longhorn snapshot or backup.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    longhorn_timeout: String,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The restore point (directory or .tar.zst).
    path: PathBuf,
    /// age identity file to prove the encrypted parts open.
    #[arg(long, value_name = "FILE")]
    age_identity: Option<PathBuf>,
    /// Also check, on this cluster, that the recorded Longhorn snapshots and backups exist.
    #[arg(long)]
    check_cluster: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, clap::Args)]
struct DirArgs {
    /// Directory of restore points (default: snapshot.dir of upkeep.yaml, else <state dir>/restore-points, where `upkeep run` writes them).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct PruneArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// How many of the newest to keep.
    #[arg(long, value_name = "N")]
    keep: usize,
    /// Only say what would be removed.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> ExitCode {
    upkeep_cli::main_with("snapshot", run)
}

fn run(args: Args) -> Result<Outcome, CliError> {
    upkeep_cli::init_logging(&args.log);
    let cluster_args = match &args.command {
        Command::Create(c) => Some(&c.cluster),
        Command::Verify(v) => Some(&v.cluster),
        _ => None,
    };
    let settings = upkeep_cli::load_settings(&args.config, None, cluster_args, None)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::environment(format!("cannot start the async runtime: {e}")))?;
    let mut out = Output::new();
    let outcome = match args.command {
        Command::Create(c) => {
            let scope = match &c.scope {
                Some(p) => Scope::load(p).map_err(snapshot_error)?,
                None => Scope::default(),
            };
            let opts = CreateOptions {
                out: c.out,
                namespaces: union(scope.namespaces, c.namespaces),
                recipients: Recipients::parse(&c.recipients).map_err(snapshot_error)?,
                exclude_secrets: c.exclude_secrets || scope.exclude_secrets,
                sensitive_configmaps: union(scope.sensitive_config_maps, c.sensitive_configmaps),
                include_status: c.include_status || scope.include_status,
                exclude_kinds: scope.exclude_kinds,
                gitops: c.gitops,
                longhorn: match c.longhorn {
                    LonghornArg::None => LonghornMode::None,
                    LonghornArg::Snapshot => LonghornMode::Snapshot,
                    LonghornArg::Backup => LonghornMode::Backup,
                },
                longhorn_timeout: duration("--longhorn-timeout", &c.longhorn_timeout)?,
                datastore: c.datastore,
                datastore_image: c.datastore_image,
                datastore_timeout: duration("--datastore-timeout", &c.datastore_timeout)?,
                tool_version: env!("CARGO_PKG_VERSION").to_string(),
                page_size: 500,
            };
            // Our error names the operation and server; kube's own ERROR line would repeat it.
            let manifest = upkeep_cli::without_kube_errors(|| {
                runtime.block_on(async {
                    let cluster =
                        connect(upkeep_cli::cluster_choice(&c.cluster, &settings)).await?;
                    upkeep_snapshot::create(&cluster, &opts)
                        .await
                        .map_err(snapshot_error)
                })
            })?;
            if opts.longhorn == LonghornMode::Snapshot && !manifest.volumes.is_empty() {
                tracing::warn!(
                    "Longhorn snapshots live inside their volumes: they do not survive the loss of a volume; use --longhorn backup for that"
                );
            }
            out.json_line(&manifest)?;
            Outcome::Done
        }
        Command::Verify(v) => {
            let identity = v
                .age_identity
                .as_deref()
                .map(Identity::from_file)
                .transpose()
                .map_err(snapshot_error)?;
            let report = upkeep_cli::without_kube_errors(|| {
                runtime.block_on(async {
                    let cluster = if v.check_cluster {
                        Some(connect(upkeep_cli::cluster_choice(&v.cluster, &settings)).await?)
                    } else {
                        None
                    };
                    let opts = VerifyOptions {
                        identity: identity.as_ref(),
                        cluster: cluster.as_ref(),
                    };
                    upkeep_snapshot::verify(&v.path, &opts)
                        .await
                        .map_err(snapshot_error)
                })
            })?;
            for p in &report.problems {
                out.text(&format!("FAIL {p}\n"))?;
            }
            for n in &report.notes {
                out.text(&format!("NOTE {n}\n"))?;
            }
            out.text(&format!(
                "{}: {} files checked, {} decrypted, {} Longhorn objects found{}, {} problems\n",
                v.path.display(),
                report.files,
                report.decrypted,
                report.volumes_checked,
                if report.datastore_checked {
                    ", datastore snapshot found"
                } else {
                    ""
                },
                report.problems.len()
            ))?;
            if report.problems.is_empty() {
                Outcome::Done
            } else {
                Outcome::Negative
            }
        }
        Command::List(d) => {
            let Some(dir) = snapshots_dir(&d, &settings) else {
                return Ok(Outcome::Done);
            };
            let points = upkeep_snapshot::list(&dir).map_err(snapshot_error)?;
            for p in &points {
                out.text(&format!(
                    "{}\t{}\t{} files ({} encrypted)\t{} volumes\t{}\n",
                    p.name,
                    p.created_at,
                    p.files,
                    p.encrypted,
                    p.volumes,
                    p.path.display()
                ))?;
            }
            Outcome::Done
        }
        Command::Prune(p) => {
            let Some(dir) = snapshots_dir(&p.dir, &settings) else {
                return Ok(Outcome::Done);
            };
            let gone = upkeep_snapshot::prune(&dir, p.keep, p.dry_run).map_err(snapshot_error)?;
            let verb = if p.dry_run { "would remove" } else { "removed" };
            for g in &gone {
                out.text(&format!("{verb} {} ({})\n", g.name, g.path.display()))?;
            }
            Outcome::Done
        }
        Command::Keygen(k) => {
            let public = upkeep_snapshot::keygen(&k.out).map_err(snapshot_error)?;
            out.text(&format!("{public}\n"))?;
            Outcome::Done
        }
    };
    out.flush()?;
    Ok(outcome)
}

fn union(mut a: Vec<String>, b: Vec<String>) -> Vec<String> {
    for x in b {
        if !a.contains(&x) {
            a.push(x);
        }
    }
    a
}

/// The directory of restore points: `--dir`, else the default, which is
/// `None` when nothing was ever written there (no restore points yet).
fn snapshots_dir(d: &DirArgs, settings: &upkeep_config::Settings) -> Option<PathBuf> {
    if let Some(dir) = &d.dir {
        return Some(dir.clone());
    }
    let dir = settings.restore_point_dir();
    if !dir.exists() {
        tracing::info!("no restore points yet ({} does not exist)", dir.display());
        return None;
    }
    Some(dir)
}

fn duration(flag: &str, s: &str) -> Result<Duration, CliError> {
    upkeep_config::parse_duration(s).map_err(|e| CliError::usage(format!("{flag}: {e}")))
}

async fn connect(choice: upkeep_cli::ClusterChoice) -> Result<Cluster, CliError> {
    let opts = ConnectOptions {
        kubeconfig: choice.kubeconfig,
        context: choice.context,
        ..ConnectOptions::default()
    };
    Cluster::connect(&opts).await.map_err(|e| {
        if e.exit_code() == 2 {
            CliError::usage(e)
        } else {
            CliError::environment(e)
        }
    })
}

fn snapshot_error(e: SnapshotError) -> CliError {
    if e.is_input() {
        CliError::usage(e)
    } else if e.is_corrupt() {
        CliError::negative(e)
    } else {
        CliError::environment(e)
    }
}
