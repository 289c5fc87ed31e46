//! `merge-report`: reads ComponentUpdates (and UpdateReport) documents from
//! stdin and files, merges them into one UpdateReport, and writes it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use upkeep_cli::{CliError, ConfigArgs, Format, LogArgs, Outcome, Output};
use upkeep_contract::{Document, Timestamp, read_documents};
use upkeep_report::FailOn;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FailOnArg {
    Any,
    Security,
    Breaking,
    Errors,
}

/// Merge ComponentUpdates documents into one UpdateReport.
///
/// Reads the files given (`-` is stdin), or stdin when none are.
/// Example: { detect-k3s; detect-charts --gitops .; } | merge-report -o text
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Files of documents to merge (default: stdin).
    #[arg(value_name = "FILE")]
    inputs: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "json")]
    output: Format,
    /// Exit 1 when the report has any update, a security update, a breaking
    /// or blocked one, or a component whose detector hit errors.
    #[arg(long, value_enum, value_name = "WHAT")]
    fail_on: Option<FailOnArg>,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    config: ConfigArgs,
}

fn run(args: Args) -> Result<Outcome, CliError> {
    upkeep_cli::init_logging(&args.log);
    // merge-report needs no upstream settings, but a broken upkeep.yaml
    // should be reported by whichever tool meets it first.
    upkeep_cli::load_settings(&args.config, None, None, None)?;
    let mut components = Vec::new();
    // Read and check everything before writing anything: bad input leaves
    // stdout empty.
    for (name, bytes) in upkeep_cli::read_inputs(&args.inputs)? {
        let docs = read_documents(&bytes, &name).map_err(CliError::usage)?;
        tracing::debug!("read {} documents from {name}", docs.len());
        for (i, doc) in docs.into_iter().enumerate() {
            match doc {
                Document::ComponentUpdates(d) => components.push(*d),
                Document::UpdateReport(r) => components.extend(r.components),
                other => {
                    return Err(CliError::usage(format!(
                        "{name}: document {}: field `kind`: {} cannot be merged (expected ComponentUpdates or UpdateReport)",
                        i + 1,
                        other.kind()
                    )));
                }
            }
        }
    }
    let report = upkeep_report::merge(components, Timestamp::now());
    let mut out = Output::new();
    match args.output {
        Format::Json => out.json_line(&report)?,
        Format::Yaml => out.yaml(&report)?,
        Format::Text => out.text(&upkeep_report::render_text(&report))?,
        Format::Markdown => out.text(&upkeep_report::render_markdown(&report))?,
    }
    out.flush()?;
    let fail_on = args.fail_on.map(|f| match f {
        FailOnArg::Any => FailOn::Any,
        FailOnArg::Security => FailOn::Security,
        FailOnArg::Breaking => FailOn::Breaking,
        FailOnArg::Errors => FailOn::Errors,
    });
    match fail_on {
        Some(on) if upkeep_report::matches_fail_on(&report, on) => Ok(Outcome::Negative),
        _ => Ok(Outcome::Done),
    }
}

fn main() -> ExitCode {
    upkeep_cli::main_with("merge-report", run)
}
