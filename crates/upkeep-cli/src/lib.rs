//! What every upkeep binary shares at its edges.
//!
//! A binary here is a `main` that calls [`main_with`]: flags are parsed with
//! clap (an unknown flag is one line on stderr and exit 2), logging goes to
//! stderr ([`LogArgs`]), the work returns a [`Outcome`] or a [`CliError`]
//! that maps to the exit codes of DESIGN.md (0 done, 1 negative result,
//! 2 bad input, 3 environment), and a panic is caught and reported in one
//! line instead of a backtrace. Documents go to stdout through [`Output`],
//! which treats a closed pipe (`| head`) as a normal end.

mod error;
mod input;
mod logging;
mod output;
mod progress;
mod settings;

pub use error::{CliError, ErrorKind, Outcome};
pub use input::{INPUT_LIMIT_BYTES, read_inputs};
pub use logging::{LogArgs, LogFormat, init_logging};
pub use output::{Format, Output};
pub use progress::progress_bar;
pub use settings::{ClusterArgs, ConfigArgs, UpstreamArgs, load_settings};

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// Parses flags, runs `body`, and turns its result into an exit code.
///
/// Every path out of here prints at most one line on stderr per error,
/// prefixed with the binary's name, and never lets a panic through.
pub fn main_with<A, F>(name: &str, body: F) -> ExitCode
where
    A: Parser,
    F: FnOnce(A) -> Result<Outcome, CliError>,
{
    let args = match A::try_parse() {
        Ok(a) => a,
        Err(e) => return clap_error(name, e),
    };
    // Panics are bugs; the default hook would print a backtrace hint in the
    // middle of the user's output, so report them ourselves.
    std::panic::set_hook(Box::new(|_| {}));
    // Nothing observes the closure's state after a panic: we only report it
    // and exit, so unwind safety does not matter here.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || body(args)));
    let _ = std::panic::take_hook();
    match result {
        Ok(Ok(outcome)) => ExitCode::from(outcome.code()),
        Ok(Err(e)) if e.is_silent() => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            report(name, &e.to_string());
            ExitCode::from(e.kind().code())
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            report(
                name,
                &format!("internal error (a bug in upkeep, please report it): {what}"),
            );
            ExitCode::from(ErrorKind::Environment.code())
        }
    }
}

fn report(name: &str, message: &str) {
    let line = upkeep_contract::sanitize(message).replace(['\n', '\r'], " ");
    let _ = writeln!(std::io::stderr(), "{name}: error: {line}");
}

/// Help and `--version` go to stdout with exit 0; usage errors become one
/// line (clap's first line, without the usage block) and exit 2.
fn clap_error(name: &str, e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind as K;
    match e.kind() {
        K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ")
                .to_string();
            report(name, &format!("{first} (see --help)"));
            ExitCode::from(ErrorKind::Usage.code())
        }
    }
}
