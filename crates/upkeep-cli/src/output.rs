use std::io::{self, Write};

use clap::ValueEnum;
use serde::Serialize;

use crate::CliError;

/// `-o` values. Each tool picks its default and which ones it supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
    Text,
    Markdown,
}

/// Buffered stdout for documents. A reader that goes away early
/// (`merge-report | head`) ends the tool quietly instead of with an error.
pub struct Output {
    out: io::BufWriter<io::Stdout>,
}

impl Default for Output {
    fn default() -> Self {
        Self::new()
    }
}

impl Output {
    pub fn new() -> Self {
        Output {
            out: io::BufWriter::new(io::stdout()),
        }
    }

    fn map(e: io::Error) -> CliError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            CliError::closed_pipe()
        } else {
            CliError::environment(format!("cannot write to stdout: {e}"))
        }
    }

    /// Writes text as is.
    pub fn text(&mut self, s: &str) -> Result<(), CliError> {
        self.out.write_all(s.as_bytes()).map_err(Self::map)
    }

    /// Writes one document as one line of JSON.
    pub fn json_line<T: Serialize>(&mut self, doc: &T) -> Result<(), CliError> {
        let line = upkeep_contract::to_json_line(doc);
        self.text(&line)?;
        self.text("\n")
    }

    /// Writes one document as a YAML document (`---` separated).
    pub fn yaml<T: Serialize>(&mut self, doc: &T) -> Result<(), CliError> {
        let yaml = serde_saphyr::to_string(doc)
            .map_err(|e| CliError::environment(format!("cannot render YAML: {e}")))?;
        self.text("---\n")?;
        self.text(&yaml)?;
        if !yaml.ends_with('\n') {
            self.text("\n")?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), CliError> {
        self.out.flush().map_err(Self::map)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}
