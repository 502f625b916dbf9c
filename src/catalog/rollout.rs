//! Rule descriptions of the rollout family (the checks are in `policy::rollout`).

use crate::vocab::{Family, Mode, RuleInfo};

pub const STRATEGY_INVALID: &str = "rollout-strategy-invalid";
pub const MAX_UNAVAILABLE_INVALID: &str = "rollout-max-unavailable-invalid";
pub const MAX_SURGE_INVALID: &str = "rollout-max-surge-invalid";
pub const CONFLICT: &str = "rollout-surge-unavailable-conflict";
pub const BOUND: &str = "rollout-max-unavailable-bound";
pub const SURGE_HOST_PORT: &str = "rollout-surge-host-port";

/// Rules of this family.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: STRATEGY_INVALID,

        api_server_rejects: true,
        family: Family::Rollout,
        default_mode: Mode::Enforce,
        summary: "spec.updateStrategy.type must be RollingUpdate (the default) or OnDelete.",
        why: "The API server rejects any other strategy type, so the apply fails.",
        fix: "Set spec.updateStrategy.type to RollingUpdate or OnDelete (case matters), or remove it to get RollingUpdate.",
    },
    RuleInfo {
        id: MAX_UNAVAILABLE_INVALID,

        api_server_rejects: true,
        family: Family::Rollout,
        default_mode: Mode::Enforce,
        summary: "rollingUpdate.maxUnavailable must be an integer >= 0 or a percentage string from \"0%\" to \"100%\".",
        why: "The API server rejects strings that are not of the form [0-9]+% (\"5\", \"-5%\", \"5.5%\"), percentages above 100% and negative integers.",
        fix: "Write a node count as an integer (maxUnavailable: 5) or a share of nodes as a percentage string (maxUnavailable: \"10%\").",
    },
    RuleInfo {
        id: MAX_SURGE_INVALID,

        api_server_rejects: true,
        family: Family::Rollout,
        default_mode: Mode::Enforce,
        summary: "rollingUpdate.maxSurge must be an integer >= 0 or a percentage string from \"0%\" to \"100%\".",
        why: "The API server rejects strings that are not of the form [0-9]+% (\"5\", \"-5%\", \"5.5%\"), percentages above 100% and negative integers.",
        fix: "Write a node count as an integer (maxSurge: 1) or a share of nodes as a percentage string (maxSurge: \"10%\").",
    },
    RuleInfo {
        id: CONFLICT,

        api_server_rejects: true,
        family: Family::Rollout,
        default_mode: Mode::Enforce,
        summary: "Exactly one of rollingUpdate.maxUnavailable and maxSurge must be non-zero (unset means maxUnavailable 1, maxSurge 0).",
        why: "The API server rejects both zero (the rollout could never progress) and both non-zero; setting only maxSurge leaves maxUnavailable at its default of 1, which is rejected too.",
        fix: "To replace pods in place set maxUnavailable > 0 and maxSurge 0; to start the new pod before stopping the old one set maxSurge > 0 and maxUnavailable: 0.",
    },
    RuleInfo {
        id: BOUND,

        api_server_rejects: false,
        family: Family::Rollout,
        default_mode: Mode::Warn,
        summary: "rollingUpdate.maxUnavailable must not exceed the policy bound (rollout.maxUnavailable, default 25%).",
        why: "maxUnavailable is how many nodes lose their agent at once during a rollout; a bad image then takes down logging, networking or storage on that many nodes before anyone notices.",
        fix: "Lower maxUnavailable to the bound or below, or roll with maxSurge: 1 and maxUnavailable: 0 when the pod uses no hostPort.",
    },
    RuleInfo {
        id: SURGE_HOST_PORT,

        api_server_rejects: false,
        family: Family::Rollout,
        default_mode: Mode::Warn,
        summary: "A DaemonSet that rolls with maxSurge > 0 claims no hostPort (with hostNetwork: true every containerPort is one), in its containers or sidecars.",
        why: "With maxSurge the controller starts the new pod on a node while the old one still runs there and deletes the old pod only once the new one is available; the scheduler keeps the new pod Pending while the old one holds the host port, so the rollout stalls on its first nodes and never progresses.",
        fix: "Roll in place with maxSurge: 0 and maxUnavailable: 1 (or more), or drop the hostPort (with hostNetwork: true, the containerPort) when the agent does not need it.",
    },
];
