//! The HTTPS admission server.

/// Arguments of `daemonset-guard serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

/// Runs the server until SIGTERM/SIGINT.
pub fn run(_args: ServeArgs) -> anyhow::Result<()> {
    Ok(())
}
