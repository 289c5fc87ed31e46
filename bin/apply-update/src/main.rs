//! `apply-update`: one update step, applied through Git and Flux or directly, and taken back.

use std::process::ExitCode;

use clap::Parser;
use upkeep_apply::cli::{ApplyArgs, run};

/// Applies one update: edits the version line in the GitOps checkout (a HelmRelease's chart
/// version, an OCIRepository's tag, the system-upgrade-controller Plans' version), commits it
/// with a structured message, pushes with --push, asks Flux to reconcile and waits until the
/// HelmRelease or the nodes are at the new version. Without --gitops, patches the object in
/// the cluster with server-side apply. --rollback takes a step back (a revert commit).
///
/// Writes one ApplyResult. Exit 1 when the cluster refused the update, 2 for bad input or a
/// checkout that changed since the plan, 3 when git or the cluster cannot be reached.
///
/// Example: apply-update --report report.json --component apps/podinfo --to 6.6.0 --gitops ~/src/home-ops --push
#[derive(Debug, Parser)]
#[command(name = "apply-update", version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    apply: ApplyArgs,
}

fn main() -> ExitCode {
    upkeep_cli::main_with("apply-update", |a: Args| run(a.apply))
}
