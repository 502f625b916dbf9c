//! Manifests (YAML/JSON, multi-document) <-> engine, and report formats.

use std::process::ExitCode;

/// Arguments of `daemonset-guard lint`.
#[derive(Debug, clap::Args)]
pub struct LintArgs {}

/// Arguments of `daemonset-guard rules`.
#[derive(Debug, clap::Args)]
pub struct RulesArgs {}

/// Runs `lint`; the exit code is 0 (nothing denied), 1 (a deny) or 2 (unreadable input).
pub fn run_cli(_args: LintArgs) -> ExitCode {
    ExitCode::from(2)
}

/// Runs `rules`.
pub fn print_rules(_args: RulesArgs) -> ExitCode {
    ExitCode::SUCCESS
}
