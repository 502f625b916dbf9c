//! Rule family: spec (the other apps/v1 DaemonSet rules the API server enforces).

use super::{Ctx, RuleInfo};

/// Rules of this family.
pub const RULES: &[RuleInfo] = &[];

pub(crate) fn check(_ctx: &mut Ctx<'_>) {}
