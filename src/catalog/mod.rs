//! The rule catalog: every rule's id, family, default mode and description, one module per
//! family. A leaf module (it imports only [`crate::vocab`]), so the policy file can validate rule
//! ids without depending on the engine; the engine's families use the ids from here.

pub mod health;
pub mod image;
pub mod platform;
pub mod priority;
pub mod resources;
pub mod rollout;
pub mod security;
pub mod selector;
pub mod spec;
pub mod tolerations;

use crate::vocab::RuleInfo;

/// Every rule the engine knows, grouped by family.
pub fn rules() -> impl Iterator<Item = &'static RuleInfo> {
    resources::RULES
        .iter()
        .chain(tolerations::RULES)
        .chain(security::RULES)
        .chain(spec::RULES)
        .chain(selector::RULES)
        .chain(rollout::RULES)
        .chain(health::RULES)
        .chain(platform::RULES)
        .chain(priority::RULES)
        .chain(image::RULES)
}

/// Looks a rule up by id. Every id starts with its family's name, which picks the one table to
/// search: this runs for every check of every container.
pub fn rule(id: &str) -> Option<&'static RuleInfo> {
    let table: &[RuleInfo] = match id.split_once('-')?.0 {
        "resources" => resources::RULES,
        "tolerations" => tolerations::RULES,
        "security" => security::RULES,
        "spec" => spec::RULES,
        "selector" => selector::RULES,
        "rollout" => rollout::RULES,
        "health" => health::RULES,
        "platform" => platform::RULES,
        "priority" => priority::RULES,
        "image" => image::RULES,
        _ => return None,
    };
    table.iter().find(|r| r.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_unique_kebab_case() {
        let mut seen = std::collections::HashSet::new();
        for r in rules() {
            assert!(seen.insert(r.id), "duplicate rule id {}", r.id);
            assert!(
                r.id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{} is not kebab-case",
                r.id
            );
            assert!(!r.summary.is_empty() && !r.why.is_empty() && !r.fix.is_empty());
        }
        assert!(seen.len() >= 20);
    }

    #[test]
    fn every_rule_is_found_by_id_and_named_after_its_family() {
        for r in rules() {
            assert!(
                r.id.starts_with(&format!("{}-", r.family.as_str())),
                "{} is not prefixed by its family {}",
                r.id,
                r.family.as_str()
            );
            assert_eq!(rule(r.id).map(|found| found.id), Some(r.id));
        }
        assert!(rule("security").is_none());
        assert!(rule("nope-rule").is_none());
        assert!(rule("").is_none());
    }
}
