//! Kubernetes value semantics that the policy file and the engine both need: quantities,
//! int-or-percent values and JSON Pointer tokens. A leaf module: it imports nothing of the crate.

pub mod intstr;
pub mod pointer;
pub mod quantity;
