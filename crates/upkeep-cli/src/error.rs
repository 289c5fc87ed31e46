use std::fmt;

/// The exit codes of DESIGN.md, as the kinds of failure they stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Exit 1: the tool worked and the answer is "no" (a check failed, an
    /// update was rolled back, `--fail-on` matched).
    Negative,
    /// Exit 2: bad flags or bad input.
    Usage,
    /// Exit 3: the cluster or an upstream could not be reached, permission
    /// denied, disk full.
    Environment,
}

impl ErrorKind {
    pub fn code(self) -> u8 {
        match self {
            ErrorKind::Negative => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Environment => 3,
        }
    }
}

/// An error on its way to the user: one line and an exit code.
#[derive(Debug)]
pub struct CliError {
    kind: ErrorKind,
    message: String,
    /// Nothing to tell the user (the reader of stdout went away).
    silent: bool,
}

impl CliError {
    pub fn usage(message: impl fmt::Display) -> Self {
        CliError {
            kind: ErrorKind::Usage,
            message: message.to_string(),
            silent: false,
        }
    }

    pub fn environment(message: impl fmt::Display) -> Self {
        CliError {
            kind: ErrorKind::Environment,
            message: message.to_string(),
            silent: false,
        }
    }

    pub fn negative(message: impl fmt::Display) -> Self {
        CliError {
            kind: ErrorKind::Negative,
            message: message.to_string(),
            silent: false,
        }
    }

    /// stdout was closed by its reader: stop quietly, exit 0.
    pub(crate) fn closed_pipe() -> Self {
        CliError {
            kind: ErrorKind::Usage,
            message: String::new(),
            silent: true,
        }
    }

    pub(crate) fn is_silent(&self) -> bool {
        self.silent
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The same error with `what` (a flag) in front of its message.
    pub(crate) fn prefixed(self, what: &str) -> Self {
        CliError {
            message: format!("{what} {}", self.message),
            ..self
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// How a tool that did its job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Done,
    /// Exit 1 without an error message: the output already says why
    /// (e.g. `merge-report --fail-on security` found a security update).
    Negative,
    /// Exit 3 after writing the document: part of the work could not reach
    /// its upstream and the document's `errors` say so.
    Degraded,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Negative => 1,
            Outcome::Degraded => 3,
        }
    }
}
