//! Kubernetes value semantics that the policy file and the engine both need: quantities,
//! int-or-percent values and JSON Pointer tokens; and node selection and host ports as the
//! scheduler sees them, shared by the rule families. A leaf module: it imports nothing of the crate.

pub mod hostports;
pub mod intstr;
pub mod nodeaffinity;
pub mod pointer;
pub mod quantity;
