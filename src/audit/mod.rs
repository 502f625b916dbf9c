//! The cluster audit: what admission would say about the DaemonSets already in the cluster.
//!
//! [`cli`] is `daemonset-guard audit` (one pass, `lint`'s report); [`background`] is the
//! server's watcher (`serve --audit`). The engine is called in one
//! place, [`eval::decide`] (the CLI goes through `lint`'s own code path, which calls it the same
//! way).

pub mod background;
pub mod cli;
pub mod eval;
pub mod reports;

pub use background::AuditMetrics;
pub use cli::{run_cli, AuditArgs};
