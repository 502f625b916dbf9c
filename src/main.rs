//! The `daemonset-guard` binary: `serve`, `lint`, `audit`, `rules`, `policy default`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use daemonset_guard::{audit, lint, server};

/// mimalloc on every target. The image ships a static musl binary, and musl's allocator is slow
/// under multi-threaded allocation and returns memory unlike glibc's: with one allocator of our
/// own the image allocates exactly like the glibc build the figures in README.md were measured
/// on, and memory freed after a burst goes back to the OS (README.md, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Kubernetes admission webhook and linter that guards DaemonSets.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the admission webhook (HTTPS) and the metrics listener.
    Serve(Box<server::ServeArgs>),
    /// Lint manifests offline (or through a running server): exactly what admission would say.
    Lint(lint::LintArgs),
    /// Audit the DaemonSets in a cluster: what admission would say about each (read-only).
    Audit(audit::AuditArgs),
    /// List every rule with its default mode, what it checks, why, and how to fix it.
    Rules(lint::RulesArgs),
    /// Policy file helpers.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print the embedded default policy.
    Default,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => match server::run(*args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Lint(args) => lint::run_cli(args),
        Command::Audit(args) => audit::run_cli(args),
        Command::Rules(args) => lint::print_rules(args),
        Command::Policy {
            command: PolicyCommand::Default,
        } => {
            print!("{}", daemonset_guard::config::DEFAULT_POLICY_YAML);
            ExitCode::SUCCESS
        }
    }
}
