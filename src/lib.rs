//! daemonset-guard: a Kubernetes admission webhook and linter for DaemonSets.
//!
//! [`policy`] is the pure engine; [`admission`], [`lint`] and [`server`] are thin adapters over it.

pub mod admission;
pub mod audit;
pub mod catalog;
pub mod config;
pub mod k8s;
pub mod lint;
pub mod policy;
pub mod server;
pub mod strict;
pub mod vocab;
pub mod yaml;
