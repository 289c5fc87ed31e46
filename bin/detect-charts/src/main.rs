//! `detect-charts`: one ComponentUpdates document per Flux HelmRelease of a
//! GitOps checkout, of the cluster, or of both, with the chart versions it
//! can move to.
//!
//! Which cluster is read (the same rules as the platform detectors):
//! - `--cluster-dump FILE`: that file, never a live cluster;
//! - `--kubeconfig`/`--context` (or `cluster.kubeconfig`/`cluster.context`
//!   of upkeep.yaml): that cluster, also next to `--gitops`;
//! - otherwise the cluster kubectl would use, but only without a checkout,
//!   so a `--gitops` run never reaches whatever cluster the shell points at;
//! - none of these: a one-line usage error, exit 2.
//!
//! An unreachable cluster is exit 3; with a checkout the documents are
//! still written, the failure in each one's `errors`.

use std::process::ExitCode;

use clap::Parser;
use upkeep_charts::cli::{ChartsArgs, run};

/// Find every Flux HelmRelease (in a GitOps checkout, the cluster, or both)
/// and the chart versions it can move to; one ComponentUpdates document per
/// release on stdout, with where the cluster and the checkout disagree.
///
/// Example: detect-charts --gitops ~/src/home-ops --kubeconfig ~/.kube/config | merge-report -o text
#[derive(Debug, Parser)]
#[command(name = "detect-charts", version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    charts: ChartsArgs,
}

fn main() -> ExitCode {
    upkeep_cli::main_with("detect-charts", |a: Args| run(a.charts))
}
