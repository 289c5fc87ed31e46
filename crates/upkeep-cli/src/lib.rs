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
mod generate;
mod input;
mod logging;
mod output;
mod progress;
mod quiet;
mod settings;

pub use error::{CliError, ErrorKind, Outcome};
pub use generate::KINDS as GENERATE_KINDS;
pub use input::{INPUT_LIMIT_BYTES, read_document, read_inputs};
pub use logging::{LogArgs, LogFormat, init_logging};
pub use output::{Format, Output};
pub use progress::progress_bar;
pub use quiet::without_kube_errors;
pub use settings::{
    ClusterArgs, ClusterChoice, ConfigArgs, UpstreamArgs, cluster_choice, load_settings,
};

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
    ExitCode::from(run_with(
        name,
        std::env::args_os(),
        body,
        &mut std::io::stderr(),
    ))
}

/// The testable core of [`main_with`]: explicit arguments and error sink,
/// the exit code as a number.
fn run_with<A, F, I, T>(name: &str, argv: I, body: F, err: &mut dyn Write) -> u8
where
    A: Parser,
    F: FnOnce(A) -> Result<Outcome, CliError>,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let argv: Vec<std::ffi::OsString> = argv.into_iter().map(Into::into).collect();
    if let Some(code) = generate::generate(
        name,
        &argv,
        A::command(),
        &mut std::io::stdout().lock(),
        err,
    ) {
        return code;
    }
    let args = match A::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => return clap_error(name, e, err),
    };
    // Panics are bugs; the default hook would print a backtrace hint in the
    // middle of the user's output, so report them ourselves.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    // Nothing observes the closure's state after a panic: we only report it
    // and exit, so unwind safety does not matter here.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || body(args)));
    std::panic::set_hook(previous);
    match result {
        Ok(Ok(outcome)) => outcome.code(),
        Ok(Err(e)) if e.is_silent() => 0,
        Ok(Err(e)) => {
            report(name, &e.to_string(), err);
            e.kind().code()
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
                err,
            );
            ErrorKind::Environment.code()
        }
    }
}

fn report(name: &str, message: &str, err: &mut dyn Write) {
    let line =
        upkeep_redact::redact(&upkeep_contract::sanitize(message)).replace(['\n', '\r'], " ");
    let _ = writeln!(err, "{name}: error: {line}");
}

/// Help and `--version` go to stdout with exit 0; usage errors become one
/// line (clap's first line, without the usage block) and exit 2.
fn clap_error(name: &str, e: clap::Error, err: &mut dyn Write) -> u8 {
    use clap::error::ErrorKind as K;
    match e.kind() {
        K::DisplayHelp | K::DisplayVersion => {
            let _ = e.print();
            0
        }
        // A missing subcommand is a usage error (a typo in a cron line must
        // not "succeed"); the help it carries is what the user needs.
        K::DisplayHelpOnMissingArgumentOrSubcommand => {
            report(name, "a subcommand is required (see --help)", err);
            ErrorKind::Usage.code()
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ")
                .to_string();
            report(name, &format!("{first} (see --help)"), err);
            ErrorKind::Usage.code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[arg(long)]
        n: Option<u32>,
    }

    fn run(argv: &[&str], body: impl FnOnce(T) -> Result<Outcome, CliError>) -> (u8, String) {
        let mut err = Vec::new();
        let code = run_with("tool", argv.iter().copied(), body, &mut err);
        (code, String::from_utf8(err).unwrap())
    }

    #[test]
    fn outcomes_map_to_exit_codes() {
        assert_eq!(run(&["tool"], |_| Ok(Outcome::Done)).0, 0);
        assert_eq!(run(&["tool"], |_| Ok(Outcome::Negative)).0, 1);
        assert_eq!(run(&["tool"], |_| Ok(Outcome::Degraded)).0, 3);
        let (code, err) = run(&["tool"], |_| {
            Err(CliError::usage("stdin: document 2: field `x`: bad"))
        });
        assert_eq!(code, 2);
        assert_eq!(err, "tool: error: stdin: document 2: field `x`: bad\n");
        assert_eq!(
            run(&["tool"], |_| Err(CliError::environment("unreachable"))).0,
            3
        );
        assert_eq!(run(&["tool"], |_| Err(CliError::negative("failed"))).0, 1);
        let (code, err) = run(&["tool"], |_| Err(CliError::closed_pipe()));
        assert_eq!((code, err.as_str()), (0, ""));
    }

    #[test]
    fn a_panic_becomes_one_line() {
        let (code, err) = run(&["tool", "--n", "3"], |t| {
            let v: Vec<u32> = Vec::new();
            Ok(if v[t.n.unwrap_or(0) as usize] == 0 {
                Outcome::Done
            } else {
                Outcome::Negative
            })
        });
        assert_eq!(code, 3);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("tool: error: internal error (a bug in upkeep"),
            "{err}"
        );
    }

    #[test]
    fn usage_errors_are_one_line_exit_two() {
        let (code, err) = run(&["tool", "--bogus"], |_| Ok(Outcome::Done));
        assert_eq!(code, 2);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("unexpected argument '--bogus'") && err.ends_with("(see --help)\n"),
            "{err}"
        );
        let (code, err) = run(&["tool", "--n", "minus one"], |_| Ok(Outcome::Done));
        assert_eq!(code, 2);
        assert!(err.contains("invalid value 'minus one'"), "{err}");
    }

    #[test]
    fn error_messages_are_redacted() {
        upkeep_redact::register_secret("ghp_reportSecret77");
        let (_, err) = run(&["tool"], |_| {
            Err(CliError::environment(
                "401 from api with token ghp_reportSecret77",
            ))
        });
        assert_eq!(err, "tool: error: 401 from api with token ***\n");
    }

    #[test]
    fn error_messages_are_sanitised() {
        let (_, err) = run(&["tool"], |_| {
            Err(CliError::usage("bad\u{1b}[2J name\nsecond line"))
        });
        assert_eq!(err, "tool: error: bad name second line\n");
    }
}
