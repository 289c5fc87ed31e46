//! `validate-storage`: is Longhorn healthy, and does data survive a round trip?

use std::process::ExitCode;

use clap::Parser;
use upkeep_validate::cli::{ValidateArgs, Validator, run};

/// Checks Longhorn: longhorn-manager and engine images deployed, nodes and disks ready and
/// schedulable, every volume healthy (a detached one judged by its replicas); then a data
/// test: a PVC on --storage-class, a Job that writes random data and its sha256, a Job on
/// another node that reads it back and checks the sum, all deleted afterwards.
///
/// Writes one ValidationReport. Exit 1 when a check fails (with --baseline: only when one
/// fails that passed before), 3 when the cluster cannot be read.
#[derive(Debug, Parser)]
#[command(name = "validate-storage", version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    validate: ValidateArgs,
}

fn main() -> ExitCode {
    upkeep_cli::main_with("validate-storage", |a: Args| {
        run(Validator::Storage, a.validate)
    })
}
