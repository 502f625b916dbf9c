//! Rule family: rollout.

use super::{Ctx, RuleInfo};

/// Rules of this family.
pub const RULES: &[RuleInfo] = &[];

pub(crate) fn check(_ctx: &mut Ctx<'_>) {}

/// Parses an int-or-percent value.
pub fn parse_int_or_percent(
    _v: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
) -> Result<(), String> {
    Ok(())
}
