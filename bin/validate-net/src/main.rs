//! `validate-net`: does the cluster's network still work?

use std::process::ExitCode;

use clap::Parser;
use upkeep_validate::cli::{ValidateArgs, run_net};
use upkeep_validate::net::NetArgs;

/// Checks the cluster's network: every Service with a selector has a ready endpoint; every
/// Ingress answers through the ingress controller (its LoadBalancer address, or
/// --ingress-address) with the right Host and SNI and no 5xx, and its certificate is not
/// about to expire; --dns-name names resolve through --resolver; and, from short-lived
/// pods, the cluster DNS answers and pods on each node reach pods on every other node
/// (all deleted afterwards).
///
/// Writes one ValidationReport. Exit 1 when a check fails (with --baseline: only when one
/// fails that passed before), 2 for bad flags, 3 when the cluster cannot be read.
#[derive(Debug, Parser)]
#[command(name = "validate-net", version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    validate: ValidateArgs,
    #[command(flatten)]
    net: NetArgs,
}

fn main() -> ExitCode {
    upkeep_cli::main_with("validate-net", |a: Args| run_net(a.validate, a.net))
}
