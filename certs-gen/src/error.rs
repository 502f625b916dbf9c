//! The library's error type: every variant renders as one line an operator can act on.

use std::path::PathBuf;

/// Everything that can go wrong in certs-gen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command-line value is unusable (bad host name, inconsistent durations...).
    #[error("{0}")]
    InvalidArgument(String),

    /// Certificate generation failed inside rcgen.
    #[error("cannot generate certificate: {0}")]
    Generate(#[from] rcgen::Error),

    /// Reading or writing a local file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },

    /// `files` found output files and `--force` was not given.
    #[error("refusing to overwrite existing {}; pass --force to replace them", join_paths(.0))]
    FilesExist(Vec<PathBuf>),

    /// The API server answered 403.
    #[error("forbidden: cannot {verb} {target}: {rule}; API server said: {message}")]
    Forbidden {
        /// Verb that was refused (get, create, update, patch).
        verb: &'static str,
        /// Human description of the object, e.g. `secrets "tls" in namespace ns`.
        target: String,
        /// The RBAC rule that would allow it.
        rule: String,
        /// The API server's own message (names the user).
        message: String,
    },

    /// The API server answered 401.
    #[error("unauthorized: the API server rejected our credentials while trying to {verb} {target}: {message}")]
    Unauthorized {
        /// Verb attempted.
        verb: &'static str,
        /// Object attempted.
        target: String,
        /// The API server's message.
        message: String,
    },

    /// An object we need does not exist.
    #[error("{target} not found: {hint}")]
    NotFound {
        /// Object that is missing, e.g. `ValidatingWebhookConfiguration "x"`.
        target: String,
        /// What to do about it.
        hint: String,
    },

    /// Any other unsuccessful API response.
    #[error("cannot {verb} {target}: API server answered {code} {reason}: {message}")]
    Api {
        /// Verb attempted.
        verb: &'static str,
        /// Object attempted.
        target: String,
        /// HTTP status code.
        code: u16,
        /// Kubernetes `Status.reason`.
        reason: String,
        /// Kubernetes `Status.message`.
        message: String,
    },

    /// The request never got an API answer (connection, TLS, decoding...).
    #[error("cannot {verb} {target}: {source}")]
    Transport {
        /// Verb attempted.
        verb: &'static str,
        /// Object attempted.
        target: String,
        /// Client error.
        source: kube::Error,
    },

    /// Optimistic concurrency kept failing.
    #[error(
        "gave up on {target} after {attempts} attempts: it kept changing under us (409 Conflict)"
    )]
    Conflict {
        /// Object contended.
        target: String,
        /// Attempts made.
        attempts: u32,
    },

    /// An existing Secret cannot be used or replaced as is.
    #[error("{target}: {reason}")]
    BadSecret {
        /// The Secret.
        target: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
