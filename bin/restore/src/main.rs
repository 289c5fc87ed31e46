//! `restore`: puts a restore point back into the cluster and prints a RestoreResult.

use std::process::ExitCode;

use clap::Parser;
use upkeep_restore::cli::{RestoreArgs, run};

/// Puts a restore point (from `snapshot create`) back into the cluster.
///
/// CRDs first (waited until Established), then namespaces, storage, RBAC, accounts, secrets
/// and config, then the rest, admission webhooks last; Flux reconcilers are suspended around
/// the restore and resumed after. Prints one RestoreResult document. Exit 0 when every object
/// was restored or already matched, 1 when any failed, 2 for bad input (nothing changed),
/// 3 when the cluster could not be reached.
#[derive(Debug, Parser)]
#[command(name = "restore", version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    restore: RestoreArgs,
}

fn main() -> ExitCode {
    upkeep_cli::main_with("restore", |args: Args| run(args.restore))
}
