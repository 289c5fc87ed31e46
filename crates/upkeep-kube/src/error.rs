//! One error type for every cluster operation, each variant a one-line message that names the
//! file, context, object and operation involved, and a class that binaries map to exit codes.

use std::path::PathBuf;
use std::time::Duration;

/// What kind of failure an error is, for the binary's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The input was wrong: a kubeconfig, a context name, a file, an object. Exit 2.
    BadInput,
    /// The cluster could not be used: unreachable, too slow, refused us, broke. Exit 3.
    Environment,
    /// The object or resource asked for does not exist. The caller decides what that means.
    NotFound,
    /// A write lost a race (409 Conflict); re-reading and retrying may succeed.
    Conflict,
    /// A wait ended at its deadline without the condition holding: a negative result. Exit 1.
    Unmet,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// A kubeconfig file that cannot be read or understood.
    #[error("kubeconfig {sources}: {problem}")]
    Kubeconfig { sources: String, problem: String },

    /// A context (named by `--context` or `current-context`) the kubeconfig does not define.
    #[error("kubeconfig {sources}: context \"{context}\" not found (defined: {defined})")]
    MissingContext {
        sources: String,
        context: String,
        defined: String,
    },

    /// A kubeconfig whose selected context cannot be turned into a connection.
    #[error("kubeconfig {sources}: context \"{context}\": {problem}")]
    BadContext {
        sources: String,
        context: String,
        problem: String,
    },

    /// Neither a kubeconfig nor an in-cluster service account was found.
    #[error("no cluster configured: {detail}")]
    NoConfig { detail: String },

    /// Running in a pod, but its service account or CA could not be read.
    #[error("in-cluster config: {detail}")]
    InCluster { detail: String },

    /// The server could not be reached or the connection broke (DNS, refused, TLS, reset).
    #[error("{op} {target}: cannot reach {server}: {detail}")]
    Unreachable {
        op: String,
        target: String,
        server: String,
        detail: String,
    },

    /// The server did not answer within the timeout.
    #[error("{op} {target}: no answer from {server} within {}s", after.as_secs_f64())]
    Timeout {
        op: String,
        target: String,
        server: String,
        after: Duration,
    },

    /// The server answered with an error Status.
    #[error("{op} {target}: {code} {reason}: {message}")]
    Api {
        op: String,
        target: String,
        code: u16,
        reason: String,
        message: String,
    },

    /// The server answered something that is not what the API promises.
    #[error("{op} {target}: unexpected answer from {server}: {detail}")]
    Protocol {
        op: String,
        target: String,
        server: String,
        detail: String,
    },

    /// A group/version/kind the cluster (or the files) does not serve.
    #[error("{what} is not served by {source_name}")]
    NotServed { what: String, source_name: String },

    /// An object handed to an operation lacks what the operation needs.
    #[error("{op} {target}: {detail}")]
    InvalidObject {
        op: String,
        target: String,
        detail: String,
    },

    /// A `kubectl get -o json|yaml` file that cannot be read or understood.
    #[error("{}: {detail}", path.display())]
    File { path: PathBuf, detail: String },

    /// A wait whose condition did not hold by its deadline.
    #[error("wait for {target} {condition}: not met within {}s ({last})", after.as_secs_f64())]
    WaitTimeout {
        target: String,
        condition: String,
        after: Duration,
        last: String,
    },
}

impl KubeError {
    pub fn class(&self) -> ErrorClass {
        match self {
            KubeError::Kubeconfig { .. }
            | KubeError::MissingContext { .. }
            | KubeError::BadContext { .. }
            | KubeError::InvalidObject { .. }
            | KubeError::File { .. } => ErrorClass::BadInput,
            KubeError::NoConfig { .. }
            | KubeError::InCluster { .. }
            | KubeError::Unreachable { .. }
            | KubeError::Timeout { .. }
            | KubeError::Protocol { .. } => ErrorClass::Environment,
            KubeError::NotServed { .. } => ErrorClass::NotFound,
            KubeError::WaitTimeout { .. } => ErrorClass::Unmet,
            KubeError::Api { code, .. } => match code {
                404 => ErrorClass::NotFound,
                // 410 Gone: a continue token or resourceVersion expired; starting over works.
                409 | 410 => ErrorClass::Conflict,
                // The request we built from the user's input was refused as invalid.
                400 | 422 => ErrorClass::BadInput,
                // 401/403 (permission denied), 429, 5xx and anything else: the cluster's doing.
                _ => ErrorClass::Environment,
            },
        }
    }

    /// True when the cluster (not the input) is at fault: exit code 3.
    pub fn is_environment(&self) -> bool {
        self.class() == ErrorClass::Environment
    }

    pub fn is_not_found(&self) -> bool {
        self.class() == ErrorClass::NotFound
    }

    pub fn is_conflict(&self) -> bool {
        self.class() == ErrorClass::Conflict
    }

    /// The exit code a binary should end with: 1 for an unmet wait, 3 for environment failures
    /// (and conflicts, which are races with someone else), 2 for everything the input caused.
    pub fn exit_code(&self) -> u8 {
        match self.class() {
            ErrorClass::Unmet => 1,
            ErrorClass::Environment | ErrorClass::Conflict => 3,
            ErrorClass::BadInput | ErrorClass::NotFound => 2,
        }
    }

    /// The HTTP status code, when the server answered with an error Status.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            KubeError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Joins an error and its sources into one line, dropping sources whose text the outer
/// message already contains (many wrappers repeat their cause).
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = one_line(&err.to_string());
    let mut cur = err.source();
    while let Some(e) = cur {
        let text = one_line(&e.to_string());
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = e.source();
    }
    out
}

/// The headline of a parser error whose later lines draw a source snippet (serde-saphyr's do).
pub(crate) fn headline(s: &str) -> String {
    let first = s.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    one_line(first.trim().strip_prefix("error: ").unwrap_or(first.trim()))
}

/// Collapses any whitespace run (including newlines from YAML parser snippets) into one space.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_are_classed_by_status_code() {
        let api = |code| KubeError::Api {
            op: "get".into(),
            target: "ConfigMap a/b".into(),
            code,
            reason: "X".into(),
            message: "m".into(),
        };
        assert_eq!(api(404).class(), ErrorClass::NotFound);
        assert_eq!(api(409).class(), ErrorClass::Conflict);
        assert_eq!(api(422).exit_code(), 2);
        assert!(api(403).is_environment());
        assert!(api(503).is_environment());
        assert_eq!(api(503).exit_code(), 3);
    }

    #[test]
    fn chain_is_one_line_without_repeats() {
        let inner = std::io::Error::other("connection refused\n(os error 111)");
        let outer = KubeError::Kubeconfig {
            sources: "/x".into(),
            problem: "bad".into(),
        };
        assert_eq!(chain(&inner), "connection refused (os error 111)");
        assert_eq!(chain(&outer), "kubeconfig /x: bad");
        assert_eq!(
            headline("error: line 3 column 3: bad\n --> <input>:3:3\n  | x"),
            "line 3 column 3: bad"
        );
    }
}
