//! `validate-flux`: is Flux well, and has it applied what Git says?

use std::process::ExitCode;

use clap::Parser;
use upkeep_validate::cli::{ValidateArgs, Validator, run};

/// Checks Flux: controllers available; every source, Kustomization and HelmRelease
/// Ready, reconciled since its last change and not Stalled; each Kustomization at its
/// source's revision; each HelmRelease at the chart version its spec asks for.
///
/// Writes one ValidationReport. Exit 1 when a check fails (with --baseline: only
/// when one fails that passed before), 3 when the cluster cannot be read.
#[derive(Debug, Parser)]
#[command(name = "validate-flux", version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    validate: ValidateArgs,
}

fn main() -> ExitCode {
    upkeep_cli::main_with("validate-flux", |a: Args| run(Validator::Flux, a.validate))
}
