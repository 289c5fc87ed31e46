//! `upkeep`: bring the cluster up to date, safely, and say what happened.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use upkeep_run::cli::{Command, Common, main as run};

/// Plans updates from an UpdateReport and upkeep.yaml's policy, and runs the plan: for each
/// step a restore point, the validators, the update through Git and Flux, the validators
/// again with the first run as the baseline, and on a regression the rollback and a stop.
/// Every transition is saved, so a stopped run resumes where it stopped.
///
/// Exit 0 when done, 1 when a step was rolled back or failed, 2 for bad input (or another
/// run holding the lock, or outside the maintenance window), 3 when the cluster or git
/// cannot be reached.
#[derive(Debug, Parser)]
#[command(name = "upkeep", version, about)]
struct Args {
    #[command(subcommand)]
    command: Top,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// The whole job on the built-in demo world (simulated cluster and upstreams, a
    /// temporary GitOps repository): scan, plan, run, every stage printed.
    Demo {
        /// Leave the demo's folder (GitOps repository, run folder, restore points) for a look.
        #[arg(long)]
        keep: bool,
    },
    #[command(flatten)]
    Other(Command),
}

fn main() -> ExitCode {
    upkeep_cli::main_with("upkeep", |a: Args| match a.command {
        Top::Demo { keep } => {
            upkeep_cli::init_logging(&a.common.log);
            upkeep_demo::demo(keep)
        }
        Top::Other(c) => run(a.common, c),
    })
}
