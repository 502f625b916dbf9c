//! Rule family: security.

use super::{Ctx, RuleInfo};

/// Rules of this family.
pub const RULES: &[RuleInfo] = &[];

pub(crate) fn check(_ctx: &mut Ctx<'_>) {}
