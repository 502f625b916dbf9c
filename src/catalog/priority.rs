//! Rule descriptions of the priority family (the checks are in `policy::priority`).

use crate::vocab::{Family, Mode, RuleInfo};

pub const MISSING: &str = "priority-class-missing";
pub const SYSTEM_OUTSIDE: &str = "priority-system-class-namespace";

/// Rules of this family.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: MISSING,
        api_server_rejects: false,
        family: Family::Priority,
        default_mode: Mode::Warn,
        summary: "A node agent should set spec.template.spec.priorityClassName.",
        why: "Without a priority class the agent's pods have the default priority: on a node that is full they cannot preempt anything and stay Pending, so that node runs without the agent, and under memory or disk pressure the kubelet evicts them before pods of higher priority.",
        fix: "In kube-system set priorityClassName: system-node-critical. Elsewhere create a PriorityClass for node agents (value up to 1000000000) and use it; system-node-critical there needs a ResourceQuota that allows it on clusters that limit the system classes (GKE does), and is rejected by API servers older than the removal of the Priority plugin's kube-system check.",
    },
    RuleInfo {
        id: SYSTEM_OUTSIDE,
        api_server_rejects: false,
        family: Family::Priority,
        default_mode: Mode::Warn,
        summary: "system-node-critical and system-cluster-critical outside kube-system only work where the cluster allows them.",
        why: "The DaemonSet is admitted, but its pods may not be: clusters that limit the system priority classes through ResourceQuota admission (GKE by default) reject each pod with \"insufficient quota to match these scopes\" unless a ResourceQuota in the namespace allows the class, and older API servers reject them outside kube-system outright. The DaemonSet then runs on no node at all.",
        fix: "Create a ResourceQuota in the namespace with scopeSelector PriorityClass In [the class] (and a pods limit above the node count), or use a PriorityClass of your own.",
    },
];
