//! The cluster audit: what admission would say about the DaemonSets already in the cluster.
//!
//! [`cli`] is `daemonset-guard audit` (one pass, `lint`'s report). The engine is called in one
//! place, [`eval::decide`] (the CLI goes through `lint`'s own code path, which calls it the same
//! way).

pub mod cli;
pub mod eval;

pub use cli::{run_cli, AuditArgs};
