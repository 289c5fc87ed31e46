//! `validate-apps`: are the workloads running as asked?

use std::process::ExitCode;

use clap::Parser;
use upkeep_validate::cli::{ValidateArgs, Validator, run};

/// Checks the workloads: Deployments, StatefulSets and DaemonSets at their desired ready
/// replicas, no pod stuck in CrashLoopBackOff or ImagePullBackOff, no failed Job.
///
/// Writes one ValidationReport. Exit 1 when a check fails (with --baseline: only
/// when one fails that passed before), 3 when the cluster cannot be read.
#[derive(Debug, Parser)]
#[command(name = "validate-apps", version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    validate: ValidateArgs,
}

fn main() -> ExitCode {
    upkeep_cli::main_with("validate-apps", |a: Args| run(Validator::Apps, a.validate))
}
