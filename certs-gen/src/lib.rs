//! certs-gen: TLS certificates for the daemonset-guard admission webhook.
//!
//! - [`cert`]: a fresh CA plus a serving certificate (ECDSA P-256), and their verification.
//! - [`files`]: `certs-gen files`, PEM files for local use or self-managed TLS.
//! - [`secret`]: `certs-gen create`'s keep/rotate decision over an existing Secret (pure).
//! - [`webhook`]: `certs-gen patch`'s JSON Patch for webhook configurations (pure).
//! - [`api`]: the Kubernetes API calls around those decisions.

pub mod api;
pub mod cert;
mod error;
pub mod files;
pub mod secret;
pub mod webhook;

pub use error::Error;

/// What a command did to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The object did not exist and was created.
    Created,
    /// The object was already good and left alone.
    Kept,
    /// The object was replaced with new certificates.
    Rotated,
    /// The object was changed in place.
    Patched,
    /// The object already had the wanted values.
    Unchanged,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Kept => "kept",
            Outcome::Rotated => "rotated",
            Outcome::Patched => "patched",
            Outcome::Unchanged => "unchanged",
        })
    }
}

/// One line of a command's output: `<outcome> <object>[: <detail>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// What happened.
    pub outcome: Outcome,
    /// The object, e.g. `Secret ns/name` or a file path.
    pub object: String,
    /// Extra facts (validity, reason for rotation...).
    pub detail: Option<String>,
}

impl Report {
    /// A report without detail.
    pub fn new(outcome: Outcome, object: impl Into<String>) -> Report {
        Report {
            outcome,
            object: object.into(),
            detail: None,
        }
    }

    /// Adds the detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Report {
        self.detail = Some(detail.into());
        self
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.outcome, self.object)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}
