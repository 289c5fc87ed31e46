use std::io::{IsTerminal, Write};

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logging flags every binary takes.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// More detail on stderr (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
}

/// Sends logs to stderr (stdout carries documents only): colour only on a
/// terminal and never with `NO_COLOR` set; `UPKEEP_LOG` (an EnvFilter
/// directive) overrides the level from the flags.
pub fn init_logging(args: &LogArgs) {
    let level = if args.quiet {
        "error"
    } else {
        match args.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    let filter = std::env::var("UPKEEP_LOG")
        .ok()
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Redacting(std::io::stderr()))
        .with_target(false);
    // A second init (tests calling twice) is harmless; ignore it.
    let _ = match args.log_format {
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
        LogFormat::Text => builder.with_ansi(colour).try_init(),
    };
}

/// Passes everything written through `upkeep_redact::redact`: a token that
/// reaches a log line from any crate comes out as `***`. The fmt layer
/// writes one whole event per call, so a secret is never split across calls.
struct Redacting<W: Write>(W);

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(upkeep_redact::redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_writer_masks_registered_secrets() {
        upkeep_redact::register_secret("ghp_logWriterSecret42");
        let mut w = Redacting(Vec::new());
        w.write_all(b"GET https://api.github.com with ghp_logWriterSecret42 failed\n")
            .unwrap();
        assert_eq!(
            String::from_utf8(w.0).unwrap(),
            "GET https://api.github.com with *** failed\n"
        );
    }
}
