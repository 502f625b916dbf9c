//! Where `lint` and `audit` take their policy from: one set of flags, flattened into both
//! commands, and one place that turns them into what to evaluate with.

use std::path::{Path, PathBuf};

use super::remote::Remote;
use crate::config::Policy;

/// The policy flags `lint` and `audit` share.
#[derive(Debug, clap::Args)]
pub struct PolicySource {
    /// Policy file (default: the embedded default policy).
    #[arg(long, value_name = "FILE", conflicts_with = "remote")]
    pub config: Option<PathBuf>,
    /// Evaluate through a running server's /lint (e.g. https://127.0.0.1:8444), with its policy;
    /// while it answers 503 (busy), waits as its Retry-After asks, up to 30 s in all.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// PEM CA certificate(s) to trust for --remote (default: the system bundle).
    #[arg(long, value_name = "FILE", requires = "remote")]
    pub ca_cert: Option<PathBuf>,
}

/// What a command evaluates with: the policy (of `--config`, or the embedded default), and with
/// `--remote` the server whose `/lint` decides instead.
pub(crate) struct Evaluator {
    pub policy: Policy,
    pub remote: Option<Remote>,
}

impl PolicySource {
    /// Reads the policy file and sets up the remote endpoint. `Remote` owns a runtime of its own
    /// and blocks on it, so call this outside any async runtime.
    pub(crate) fn evaluator(&self) -> Result<Evaluator, String> {
        let policy = load_policy(self.config.as_deref())?;
        let remote = match &self.remote {
            Some(url) => Some(Remote::new(url, self.ca_cert.as_deref())?),
            None => None,
        };
        Ok(Evaluator { policy, remote })
    }
}

/// The policy of `--config FILE`, or the embedded default.
fn load_policy(path: Option<&Path>) -> Result<Policy, String> {
    let Some(path) = path else {
        return Ok(Policy::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Policy::from_yaml(&text, &path.display().to_string()).map_err(|e| e.to_string())
}
