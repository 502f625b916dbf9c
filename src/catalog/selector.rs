//! Rule descriptions of the selector family (the checks are in `policy::selector`).

use crate::vocab::{Family, Mode, RuleInfo};

pub const IMMUTABLE: &str = "selector-immutable";
pub const EMPTY: &str = "selector-empty";
pub const INVALID: &str = "selector-invalid";
pub const MISMATCH: &str = "selector-mismatch";
pub const TEMPLATE_LABELS_INVALID: &str = "selector-template-labels-invalid";

/// Rules of this family.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: IMMUTABLE,

        api_server_rejects: true,
        family: Family::Selector,
        default_mode: Mode::Enforce,
        summary: "On UPDATE, spec.selector must equal the stored selector as the API server compares it: the order of matchLabels does not matter, but the order of matchExpressions and of their values does, and so do duplicates (an absent list equals an empty one).",
        why: "The API server rejects any change to a DaemonSet's selector (field is immutable); the mutating webhook says so with the way out, because validating webhooks never see the request.",
        fix: "Keep the old selector, or recreate the DaemonSet: kubectl delete ds NAME --cascade=orphan (its pods keep running), then apply the new manifest and delete the orphaned pods the new selector does not adopt.",
    },
    RuleInfo {
        id: EMPTY,

        api_server_rejects: true,
        family: Family::Selector,
        default_mode: Mode::Enforce,
        summary: "spec.selector must have matchLabels or matchExpressions.",
        why: "An empty selector would select every pod in the namespace; the API server rejects it for DaemonSets (\"empty selector is invalid for daemonset\"), and apps/v1 does not default it from the template.",
        fix: "Set spec.selector.matchLabels to one or more labels of spec.template.metadata.labels, e.g. app: my-agent.",
    },
    RuleInfo {
        id: INVALID,

        api_server_rejects: true,
        family: Family::Selector,
        default_mode: Mode::Enforce,
        summary: "spec.selector must be a valid label selector: operators In/NotIn/Exists/DoesNotExist, values only and always with In/NotIn, valid label keys and values.",
        why: "The API server rejects malformed selectors, so the apply fails.",
        fix: "Use In or NotIn with a non-empty values list, Exists or DoesNotExist without values; keys are [prefix/]name (name at most 63 characters), values at most 63 characters of [A-Za-z0-9_.-] starting and ending alphanumeric.",
    },
    RuleInfo {
        id: MISMATCH,

        api_server_rejects: true,
        family: Family::Selector,
        default_mode: Mode::Enforce,
        summary: "spec.selector must match spec.template.metadata.labels.",
        why: "A DaemonSet only manages pods its selector matches; the API server rejects a template whose labels the selector does not select.",
        fix: "Make every matchLabels entry and every matchExpression hold for the template labels (NotIn and DoesNotExist hold when the key is absent).",
    },
    RuleInfo {
        id: TEMPLATE_LABELS_INVALID,
        api_server_rejects: true,
        family: Family::Selector,
        default_mode: Mode::Enforce,
        summary: "spec.template.metadata.labels are valid labels: keys [prefix/]name, values at most 63 characters of [A-Za-z0-9_.-] starting and ending alphanumeric.",
        why: "The selector selects pods by these labels, and the API server rejects a template with an invalid one.",
        fix: "Fix the key or value: a key is an optional DNS subdomain prefix and '/', then a name of at most 63 characters; a value is empty or at most 63 characters of [A-Za-z0-9_.-] starting and ending with a letter or digit.",
    },
];
