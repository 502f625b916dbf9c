//! Shared by the integration tests: a test PKI and Secret-volume layout ([`pki`]), the real
//! `daemonset-guard` binary started on 127.0.0.1 ([`server`], [`cli`]), the clients that talk to
//! it ([`http`]) and the shared fixtures ([`fixtures`]).
// Every test binary compiles this module on its own and uses only part of it (and of the
// re-exports below).
#![allow(dead_code, unused_imports)]

pub mod cli;
pub mod fixtures;
pub mod http;
pub mod pki;
pub mod server;

pub use cli::*;
pub use fixtures::*;
pub use http::*;
pub use pki::*;
pub use server::*;

use std::time::Duration;

/// Upper bound for anything a test waits for; reaching it fails the test instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The `daemonset-guard` binary built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_daemonset-guard")
}
