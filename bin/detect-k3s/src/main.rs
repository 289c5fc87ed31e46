//! `detect-k3s`: one ComponentUpdates document for k3s: the installed
//! version, newer releases, and the safe hop-by-hop path with what each hop
//! brings and what blocks it.

use std::process::ExitCode;

use clap::Parser;
use upkeep_platform::cli::{DetectArgs, Platform, run};

/// What k3s can be updated to, by which safe path, and why it matters.
///
/// Reads the installed version from the cluster (--kubeconfig, --context,
/// KUBECONFIG, in-cluster), --current, --gitops or --cluster-dump,
/// the releases from upstream, and writes one ComponentUpdates document.
/// Exit 3 (document still written) when an upstream could not be reached.
#[derive(Debug, Parser)]
#[command(name = "detect-k3s", version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    detect: DetectArgs,
}

fn main() -> ExitCode {
    upkeep_cli::main_with("detect-k3s", |args: Args| run(Platform::K3s, args.detect))
}
