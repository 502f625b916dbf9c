//! Kubernetes value semantics that the policy file and the engine both need: quantities,
//! int-or-percent values and JSON Pointer tokens; and node selection as the scheduler does it,
//! shared by the rule families. A leaf module: it imports nothing of the crate.

pub mod intstr;
pub mod nodeaffinity;
pub mod pointer;
pub mod quantity;
